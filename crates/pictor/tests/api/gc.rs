//! Keeping the storage and the job table clean: `pictor gc` on the local
//! folder and on a bucket (planted orphans listed by the dry run, which
//! changes nothing, then removed exactly, referenced objects kept), and the
//! pruning of finished jobs by their retention.

use std::time::Duration;

use object_store::{ObjectStoreExt as _, PutPayload};
use pictor::app::Overrides;
use pictor::clock::Clock as _;
use pictor::db;
use pictor::queue::NewJob;
use pictor::queue::pruner::{Retention, prune_once};
use pictor_client::models::ImageStatus;
use pictor_client::models::JobKind;
use sha2::{Digest, Sha256};

use crate::helpers::{Backend, TestApp, clocked_app, files_under, spawn_app_on};
use crate::moto::{Moto, PREFIX};
use crate::processes::command;

/// The orphans a test plants: an original no image has, the assets of an
/// image that does not exist, an abandoned upload.
fn orphans() -> Vec<(String, Vec<u8>)> {
    let sum = hex::encode(Sha256::digest(b"orphan"));
    let mut planted = vec![
        (format!("originals/{}/{sum}", &sum[..2]), b"orphan".to_vec()),
        ("assets/0190aaaa-0000-7000-8000-000000000000/thumb-64.jpg".to_owned(), b"x".to_vec()),
        ("tmp/0190aaaa-0000-7000-8000-000000000001.upload".to_owned(), b"partial".to_vec()),
    ];
    planted.sort();
    planted
}

/// Where the test's storage is.
enum Place {
    Folder,
    Bucket(Moto),
}

impl Place {
    async fn plant(&self, app: &TestApp, key: &str, bytes: &[u8]) {
        match self {
            Self::Folder => {
                let path = app.dir.path().join("storage").join(key);
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                std::fs::write(path, bytes).expect("plant");
            }
            Self::Bucket(moto) => {
                let path = format!("{PREFIX}/{key}");
                moto.store().put(&path.as_str().into(), PutPayload::from(bytes.to_vec())).await.expect("plant");
            }
        }
    }

    /// Every key stored, sorted.
    async fn keys(&self, app: &TestApp) -> Vec<String> {
        match self {
            Self::Folder => {
                let root = app.dir.path().join("storage");
                let mut keys: Vec<String> = files_under(&root)
                    .iter()
                    .map(|f| f.strip_prefix(&root).expect("under").display().to_string())
                    .collect();
                keys.sort();
                keys
            }
            Self::Bucket(moto) => moto.keys().await,
        }
    }
}

async fn collect_on(backend: Backend, place: Place) {
    let scratch = tempfile::tempdir().expect("scratch");
    let configure = |c: &mut pictor::config::Config| {
        // Everything older than a second is old enough.
        c.temp_grace_secs = 1;
        if let Place::Bucket(moto) = &place {
            moto.configure(c);
            c.scratch_dir = Some(scratch.path().to_owned());
        }
    };
    let Some(app) = spawn_app_on(backend, configure, Overrides::default(), true).await else { return };
    let id = app.upload_ok("mpl-grace-hopper.jpg").await;
    assert_eq!(app.wait_terminal(&id, Duration::from_secs(120)).await.status, ImageStatus::Stored);
    let kept = place.keys(&app).await;
    assert_eq!(kept.len(), 6, "the image's original and assets: {kept:?}");
    for (key, bytes) in orphans() {
        place.plant(&app, &key, &bytes).await;
    }
    let planted = place.keys(&app).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let expected: Vec<String> = orphans().into_iter().map(|(key, _)| key).collect();

    let listed = app.app.gc.collect(true).await.expect("dry run");
    let mut listed: Vec<String> = listed.iter().map(ToString::to_string).collect();
    listed.sort();
    assert_eq!(listed, expected, "the dry run lists exactly the orphans");
    assert_eq!(place.keys(&app).await, planted, "the dry run changes nothing");

    let removed = app.app.gc.collect(false).await.expect("gc");
    let mut removed: Vec<String> = removed.iter().map(ToString::to_string).collect();
    removed.sort();
    assert_eq!(removed, expected, "gc removes exactly the orphans");
    assert_eq!(place.keys(&app).await, kept, "nothing referenced is removed");
    assert_eq!(app.image(&id).await.status, ImageStatus::Stored);
    assert!(app.app.gc.collect(false).await.expect("again").is_empty(), "a second run finds nothing");
    app.stop().await;
}

both_backends! {
    async fn gc_on_the_local_folder_removes_exactly_the_orphans_and_its_dry_run_nothing(backend) {
        collect_on(backend, Place::Folder).await;
    }
}

both_backends! {
    async fn gc_on_a_bucket_removes_exactly_the_orphans_and_its_dry_run_nothing(backend) {
        let Some(moto) = Moto::start("gc::gc_on_a_bucket").await else { return };
        collect_on(backend, Place::Bucket(moto)).await;
    }
}

#[tokio::test]
async fn the_gc_command_lists_with_dry_run_then_removes() {
    let dir = tempfile::tempdir().expect("dir");
    let storage = dir.path().join("storage");
    let run = |args: &[&str]| {
        let output = command(dir.path())
            .arg("gc")
            .args(args)
            .env("DATABASE_URL", format!("sqlite://{}", dir.path().join("pictor.db").display()))
            .env("STORAGE_DIR", &storage)
            .env("PICTOR_TEMP_GRACE_SECS", "0")
            .output()
            .expect("pictor gc");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf-8")
    };
    run(&["--dry-run"]);
    let (key, bytes) = orphans().remove(0);
    std::fs::create_dir_all(storage.join(&key).parent().expect("parent")).expect("mkdir");
    std::fs::write(storage.join(&key), bytes).expect("plant");

    let dry = run(&["--dry-run"]);
    assert!(dry.contains(&format!("would remove {key}")) && dry.contains("would remove 1 object(s)"), "{dry}");
    assert!(storage.join(&key).exists(), "the dry run keeps it");
    let real = run(&[]);
    assert!(real.contains(&format!("removed {key}")), "{real}");
    assert!(!storage.join(&key).exists());
}

both_backends! {
    async fn finished_jobs_are_pruned_after_their_retention_completed_after_a_day_failed_after_two_weeks(backend) {
        let Some(f) = clocked_app(backend, |_| {}).await else { return };
        f.insert_image("img").await;
        let db = &f.app.db;
        let mut ids = Vec::new();
        for _ in 0..4 {
            let job = NewJob { kind: JobKind::PreviewGeneration, payload: "{}".into(), image_id: Some("img".into()), priority: 0, dedupe_key: None };
            let id = db::jobs::insert(&db.pool, db.backend, &job, 5, f.clock.now()).await.expect("insert").expect("inserted");
            ids.push(id);
        }
        let hour: i64 = 3_600_000;
        // (status, ended this long ago): two of each kind, one on each side of its retention.
        let ended = [("COMPLETED", 23 * hour), ("COMPLETED", 25 * hour), ("FAILED", 13 * 24 * hour), ("FAILED", 15 * 24 * hour)];
        for (id, (status, ago)) in ids.iter().zip(ended) {
            sqlx::query("UPDATE job SET status = $1, finished_at = $2 WHERE id = $3")
                .bind(status)
                .bind(f.clock.now().get() - ago)
                .bind(id.get())
                .execute(&db.pool)
                .await
                .expect("end the job");
        }
        let pruned = prune_once(&f.app.queue, Retention::default()).await.expect("prune");
        assert_eq!(pruned.deleted, 2, "the completed job older than a day and the failed one older than 14 days");
        let left: Vec<i64> = sqlx::query_scalar("SELECT id FROM job ORDER BY id").fetch_all(&db.pool).await.expect("jobs");
        // The offload job of the image row stays too (PENDING).
        assert!(left.contains(&ids[0].get()) && left.contains(&ids[2].get()), "{left:?}");
        assert!(!left.contains(&ids[1].get()) && !left.contains(&ids[3].get()), "{left:?}");

        let short = Retention { completed: Duration::from_secs(3600), failed: Duration::from_secs(3600) };
        assert_eq!(prune_once(&f.app.queue, short).await.expect("prune").deleted, 2, "shorter settings prune the rest that ended");
    }
}

#[tokio::test]
async fn serve_collects_by_itself_every_pictor_gc_interval() {
    let configure = |c: &mut pictor::config::Config| {
        c.temp_grace_secs = 1;
        c.gc_interval = Some(1);
    };
    let app = spawn_app_on(Backend::Sqlite, configure, Overrides::default(), true).await.expect("sqlite");
    let (key, bytes) = orphans().remove(0);
    Place::Folder.plant(&app, &key, &bytes).await;
    let path = app.dir.path().join("storage").join(&key);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while path.exists() {
        assert!(std::time::Instant::now() < deadline, "the periodic gc never removed {key}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}
