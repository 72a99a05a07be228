//! Reprocessing (`POST /api/admin/reprocess`, `pictor reprocess`): new
//! thumbnail sizes reach every stored image while the old assets stay
//! served until then; only outdated images are touched; a dry run changes
//! nothing; regeneration waits behind a new upload's jobs; a FAILED image
//! on request; the command end to end; the admin token.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pictor::app::Overrides;
use pictor::clock::LeaseTime;
use pictor::config::Config;
use pictor::db;
use pictor_client::models::{ImageStatus, JobKind};
use serde_json::{Value, json};
use sqlx::Row as _;

use crate::helpers::{TestApp, spawn_app_on, spawn_app_with, with_breakable_thumbnails};
use crate::processes::command;

/// The sizes the tests change to.
const NEW_SIZES: [u32; 2] = [100, 300];

fn new_sizes(c: &mut Config) {
    c.thumbnail_sizes = NEW_SIZES.to_vec();
}

/// `POST /api/admin/reprocess` with `body`: status and answer.
async fn reprocess(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app.client.post(app.url("/api/admin/reprocess")).json(&body).send().await.expect("reprocess");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// Uploads and waits for STORED; returns the id.
async fn stored(app: &TestApp, name: &str) -> String {
    let id = app.upload_ok(name).await;
    assert_eq!(app.wait_terminal(&id, Duration::from_secs(120)).await.status, ImageStatus::Stored);
    id
}

/// Waits until no job is PENDING or RUNNING.
async fn drained(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(app.jobs("status=PENDING").await.jobs.is_empty() && app.jobs("status=RUNNING").await.jobs.is_empty()) {
        assert!(Instant::now() < deadline, "jobs still waiting: {:?}", app.jobs("").await.jobs);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `(type, status, priority)` of an image's jobs, oldest first.
async fn jobs_of(app: &TestApp, id: &str) -> Vec<(String, String, i64)> {
    let rows = sqlx::query("SELECT type, status, priority FROM job WHERE image_id = $1 ORDER BY id")
        .bind(id)
        .fetch_all(&app.app.db.pool)
        .await
        .expect("jobs");
    rows.iter().map(|r| (r.get("type"), r.get("status"), r.get("priority"))).collect()
}

/// The settings recorded with an image's assets.
async fn recorded(app: &TestApp, id: &str) -> (Option<String>, Option<String>) {
    let record = db::images::get(&app.app.db.pool, &db::ImageId::from(id)).await.expect("get").expect("image");
    (record.thumbnail_settings, record.preview_settings)
}

/// Forgets the settings of an image's assets, as for one stored before they were recorded.
async fn forget_settings(app: &TestApp, id: &str) {
    sqlx::query("UPDATE image SET thumbnail_settings = NULL, preview_settings = NULL WHERE id = $1")
        .bind(id)
        .execute(&app.app.db.pool)
        .await
        .expect("forget");
}

/// `(status, count)` of the jobs, from the kept `job_count`.
async fn kept_job_counts(app: &TestApp) -> Vec<(String, i64)> {
    let sql =
        "SELECT status, CAST(SUM(n) AS BIGINT) AS n FROM job_count GROUP BY status HAVING SUM(n) <> 0 ORDER BY status";
    let rows = sqlx::query(sql).fetch_all(&app.app.db.pool).await.expect("kept counts");
    rows.iter().map(|r| (r.get("status"), r.get("n"))).collect()
}

/// `(status, count)` of the jobs, counted.
async fn counted_jobs(app: &TestApp) -> Vec<(String, i64)> {
    let sql = "SELECT status, CAST(COUNT(*) AS BIGINT) AS n FROM job GROUP BY status ORDER BY status";
    let rows = sqlx::query(sql).fetch_all(&app.app.db.pool).await.expect("counts");
    rows.iter().map(|r| (r.get("status"), r.get("n"))).collect()
}

fn sizes(image: &pictor_client::models::Image) -> Vec<String> {
    image.thumbnails.keys().cloned().collect()
}

both_backends! {
    async fn new_thumbnail_sizes_reach_every_image_after_a_reprocess_and_the_old_assets_are_served_until_then(backend) {
        let configure = |c: &mut Config| c.temp_grace_secs = 1;
        let Some(app) = spawn_app_on(backend, configure, Overrides::default(), true).await else { return };
        let ids = [stored(&app, "mpl-grace-hopper.jpg").await, stored(&app, "png-rgba-mpl-logo2.png").await];
        let old = app.image(&ids[0]).await;
        assert_eq!(sizes(&old), ["128", "256", "512", "64"]);

        // Restarted with new sizes and no runner: the regeneration waits in the queue.
        let app = app.restart_with(|c| { configure(c); new_sizes(c) }, false).await;
        let (status, body) = reprocess(&app, json!({})).await;
        assert_eq!((status, &body), (200, &json!({"matched": 2, "enqueued": 2})));
        for id in &ids {
            let image = app.image(id).await;
            assert_eq!(image.status, ImageStatus::Stored, "still STORED while regenerating");
            assert_eq!(sizes(&image), ["128", "256", "512", "64"], "the old thumbnails until the new ones exist");
            for url in image.thumbnails.values().chain(image.preview_path.iter()) {
                assert!(!app.bytes(url).await.is_empty(), "{url} is served");
            }
            let regeneration: Vec<_> = jobs_of(&app, id).await.into_iter().skip(3).collect();
            assert_eq!(regeneration, [
                ("THUMBNAIL_GENERATION".to_owned(), "PENDING".to_owned(), -2),
                ("PREVIEW_GENERATION".to_owned(), "PENDING".to_owned(), -2),
            ]);
        }

        let app = app.restart_with(|c| { configure(c); new_sizes(c) }, true).await;
        drained(&app).await;
        let current = app.app.handlers.assets.thumbnail_settings(&NEW_SIZES);
        for id in &ids {
            let image = app.image(id).await;
            assert_eq!(image.status, ImageStatus::Stored);
            assert_eq!(sizes(&image), ["100", "300"], "{image:?}");
            let largest = crate::helpers::decode_rgb(&app.bytes(&image.thumbnails["300"]).await);
            assert_eq!(largest.width().max(largest.height()), 300);
            assert_eq!(recorded(&app, id).await.0.as_deref(), Some(current.as_str()));
        }
        assert_eq!(reprocess(&app, json!({})).await.1, json!({"matched": 0, "enqueued": 0}), "nothing left outdated");

        // The sizes no longer made are no image's: gc removes them, and only them.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut removed: Vec<String> =
            app.app.gc.collect(false).await.expect("gc").iter().map(ToString::to_string).collect();
        removed.sort();
        let mut expected: Vec<String> = ids
            .iter()
            .flat_map(|id| [64, 128, 256, 512].map(|size| format!("assets/{id}/thumb-{size}.jpg")))
            .collect();
        expected.sort();
        assert_eq!(removed, expected);
        for id in &ids {
            let image = app.image(id).await;
            for url in image.thumbnails.values().chain(image.preview_path.iter()) {
                assert!(!app.bytes(url).await.is_empty(), "{url} is still served after gc");
            }
        }
        app.stop().await;
    }
}

both_backends! {
    async fn reprocess_regenerates_only_outdated_images(backend) {
        let Some(app) = spawn_app_on(backend, |_| {}, Overrides::default(), true).await else { return };
        let outdated = stored(&app, "mpl-grace-hopper.jpg").await;
        let current = stored(&app, "png-rgba-mpl-logo2.png").await;
        let settings = recorded(&app, &current).await;
        assert!(settings.0.is_some() && settings.1.is_some(), "assets record what made them: {settings:?}");
        forget_settings(&app, &outdated).await;
        let current_jobs = jobs_of(&app, &current).await;

        let (status, body) = reprocess(&app, json!({})).await;
        assert_eq!((status, &body), (200, &json!({"matched": 1, "enqueued": 1})));
        drained(&app).await;

        assert_eq!(jobs_of(&app, &current).await, current_jobs, "no job for the image already current");
        let kinds: Vec<String> = jobs_of(&app, &outdated).await.into_iter().skip(3).map(|j| j.0).collect();
        assert_eq!(kinds, ["THUMBNAIL_GENERATION", "PREVIEW_GENERATION"]);
        assert_eq!(recorded(&app, &outdated).await, settings, "regenerated under the current settings");
        assert_eq!(app.image(&outdated).await.status, ImageStatus::Stored);
        assert_eq!(reprocess(&app, json!({})).await.1, json!({"matched": 0, "enqueued": 0}));

        // Outdated again: its finished regeneration jobs are queued again, not copied.
        forget_settings(&app, &outdated).await;
        assert_eq!(reprocess(&app, json!({})).await.1, json!({"matched": 1, "enqueued": 1}));
        drained(&app).await;
        let regenerations: Vec<(String, String, i64)> = jobs_of(&app, &outdated).await.into_iter().skip(3).collect();
        assert_eq!(regenerations, [
            ("THUMBNAIL_GENERATION".to_owned(), "COMPLETED".to_owned(), -2),
            ("PREVIEW_GENERATION".to_owned(), "COMPLETED".to_owned(), -2),
        ]);
        assert_eq!(recorded(&app, &outdated).await, settings);
        assert_eq!(kept_job_counts(&app).await, counted_jobs(&app).await, "the kept counts follow a re-armed job");
        app.stop().await;
    }
}

both_backends! {
    async fn a_reprocess_dry_run_changes_nothing(backend) {
        let Some(app) = spawn_app_on(backend, |_| {}, Overrides::default(), true).await else { return };
        let id = stored(&app, "mpl-grace-hopper.jpg").await;
        forget_settings(&app, &id).await;
        let before = db::images::get(&app.app.db.pool, &db::ImageId::from(id.as_str())).await.expect("get");
        let jobs_before = jobs_of(&app, &id).await;

        let (status, body) = reprocess(&app, json!({"dryRun": true})).await;
        assert_eq!((status, &body), (200, &json!({"matched": 1, "enqueued": 0})));
        let (status, body) = reprocess(&app, json!({"dryRun": true, "collection": "elsewhere"})).await;
        assert_eq!((status, &body), (200, &json!({"matched": 0, "enqueued": 0})), "another collection's images only");

        let after = db::images::get(&app.app.db.pool, &db::ImageId::from(id.as_str())).await.expect("get");
        assert_eq!(after, before, "the image row is untouched (settings still unrecorded)");
        assert_eq!(jobs_of(&app, &id).await, jobs_before, "no job queued");
        let (status, body) = reprocess(&app, json!({"status": "PROCESSING"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_status")));
        app.stop().await;
    }
}

both_backends! {
    async fn regeneration_is_claimed_after_a_new_uploads_jobs_and_never_queued_twice(backend) {
        let Some(app) = spawn_app_on(backend, |_| {}, Overrides::default(), true).await else { return };
        let old = stored(&app, "mpl-grace-hopper.jpg").await;
        let app = app.restart_with(new_sizes, false).await;
        assert_eq!(reprocess(&app, json!({})).await.1, json!({"matched": 1, "enqueued": 1}));
        assert_eq!(
            reprocess(&app, json!({})).await.1,
            json!({"matched": 1, "enqueued": 0}),
            "still outdated, but its regeneration is queued already"
        );
        let new = app.upload_ok("png-rgba-mpl-logo2.png").await;

        let claim = db::leases::Claim {
            runner: "test",
            limit: 10,
            lease: Duration::from_secs(30),
            at: LeaseTime::Database,
            together: &[],
        };
        let claimed = db::leases::claim(&app.app.db.pool, app.app.db.backend, claim).await.expect("claim");
        let order: Vec<(JobKind, String)> =
            claimed.iter().map(|j| (j.kind, j.image_id.as_ref().expect("image").to_string())).collect();
        assert_eq!(order, [
            (JobKind::OffloadOriginal, new.clone()),
            (JobKind::ThumbnailGeneration, old.clone()),
            (JobKind::PreviewGeneration, old.clone()),
        ]);
        app.stop().await;
    }
}

both_backends! {
    async fn a_failed_image_with_its_original_is_reprocessed_only_when_failed_ones_are_asked_for_and_ends_stored(backend) {
        let broken = Arc::new(AtomicBool::new(true));
        let Some(app) = spawn_app_on(backend, |_| {}, with_breakable_thumbnails(&broken), true).await else { return };
        let id = app.upload_ok("mpl-grace-hopper.jpg").await;
        assert_eq!(app.wait_terminal(&id, Duration::from_secs(120)).await.status, ImageStatus::Failed);
        drained(&app).await;
        broken.store(false, Ordering::SeqCst);

        assert_eq!(reprocess(&app, json!({})).await.1, json!({"matched": 0, "enqueued": 0}), "STORED images only");
        let (status, body) = reprocess(&app, json!({"status": "FAILED"})).await;
        assert_eq!((status, &body), (200, &json!({"matched": 1, "enqueued": 1})));

        let image = app.wait_terminal(&id, Duration::from_secs(120)).await;
        assert_eq!(image.status, ImageStatus::Stored, "{image:?}");
        assert_eq!(sizes(&image), ["128", "256", "512", "64"]);
        assert_eq!(image.error, None);
        app.stop().await;
    }
}

#[tokio::test]
async fn the_reprocess_endpoint_needs_the_admin_token_once_one_is_set() {
    let app = spawn_app_with(
        |c| c.admin_token = Some(pictor::config::Secret::new("reprocess-token")),
        Overrides::default(),
        false,
    )
    .await;
    let url = app.url("/api/admin/reprocess");
    let anonymous = app.client.post(&url).json(&json!({"dryRun": true})).send().await.expect("post");
    assert_eq!(anonymous.status(), 401);
    let wrong = app.client.post(&url).bearer_auth("nope").json(&json!({"dryRun": true})).send().await.expect("post");
    assert_eq!(wrong.status(), 401);
    let allowed =
        app.client.post(&url).bearer_auth("reprocess-token").json(&json!({"dryRun": true})).send().await.expect("post");
    assert_eq!(allowed.status(), 200);
    assert_eq!(allowed.json::<Value>().await.expect("json"), json!({"matched": 0, "enqueued": 0}));
    app.stop().await;
}

#[tokio::test]
async fn the_reprocess_command_lists_with_dry_run_then_queues_and_the_new_sizes_are_made() {
    let app = spawn_app_with(|_| {}, Overrides::default(), true).await;
    let id = stored(&app, "mpl-grace-hopper.jpg").await;
    let run = |args: &[&str]| {
        command(app.dir.path())
            .arg("reprocess")
            .args(args)
            .env("DATABASE_URL", &app.database_url)
            .env("STORAGE_DIR", app.dir.path().join("storage"))
            .env("PICTOR_THUMBNAIL_SIZES", "100,300")
            .output()
            .expect("pictor reprocess")
    };
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();

    let refused = run(&["--dry-run"]);
    assert_eq!(refused.status.code(), Some(2), "no selector: {}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("--all"), "{}", text(&refused.stderr));

    let dry = run(&["--all", "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let out = text(&dry.stdout);
    assert!(out.contains(&format!("would regenerate {id} (STORED)")), "{out}");
    assert!(out.contains("1 outdated image(s) would be regenerated; nothing changed"), "{out}");
    assert_eq!(jobs_of(&app, &id).await.len(), 3, "the dry run queued nothing");

    let queued = run(&["--all"]);
    assert!(queued.status.success(), "{}", text(&queued.stderr));
    let out = text(&queued.stdout);
    assert!(out.contains(&format!("regenerating {id} (STORED)")), "{out}");
    assert!(out.contains("1 outdated image(s); regeneration queued for 1"), "{out}");
    assert!(text(&queued.stderr).contains("1 outdated image(s) so far, 1 queued"), "{}", text(&queued.stderr));
    drained(&app).await;
    assert_eq!(sizes(&app.image(&id).await), ["100", "300"]);

    let again = run(&["--collection", "none-such"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stdout).contains("0 outdated image(s)"), "{}", text(&again.stdout));
    let again = run(&["--all"]);
    assert!(text(&again.stdout).contains("0 outdated image(s)"), "current now: {}", text(&again.stdout));
    app.stop().await;
}
