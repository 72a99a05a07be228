//! Reads whose cost does not grow with the library: the kept counts
//! (`job_count`, `image_count`) against `COUNT(*)` of the tables through
//! every kind of write, and keyset and deep-offset pages against the
//! list's order, on both backends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pictor::app::App;
use pictor::clock::Clock as _;
use pictor::db::ImageId;
use pictor::db::images::NewImage;
use pictor::images::{ImageFilter, JobFilter, Page};
use pictor::queue::NewJob;
use pictor::queue::pruner::prune_once;
use pictor_client::models::{ImageList, ImageStatus, JobKind, JobStatus};
use serde_json::json;
use sqlx::Row;

use crate::helpers::{TestApp, clocked_app, spawn_app_on, with_breakable_thumbnails};

/// Rows of a grouped count as a map, zero counts left out.
async fn grouped(app: &App, sql: &str) -> BTreeMap<(String, String), i64> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).fetch_all(&app.db.pool).await.expect("count");
    rows.iter()
        .map(|r| ((r.get::<String, _>(0), r.get::<String, _>(1)), r.get::<i64, _>(2)))
        .filter(|(_, n)| *n != 0)
        .collect()
}

/// The kept counts equal `COUNT(*)` of the tables, and the API shows them;
/// returns the job counts, so that a step can check it changed something.
async fn assert_counts_exact(app: &TestApp, step: &str) -> BTreeMap<(String, String), i64> {
    let jobs = grouped(&app.app, "SELECT status, type, COUNT(*) FROM job GROUP BY status, type").await;
    let kept_jobs: BTreeMap<_, _> = pictor::db::jobs::counts_by_status_and_type(&app.app.db.pool)
        .await
        .expect("kept job counts")
        .into_iter()
        .filter(|(_, _, n)| *n != 0)
        .map(|(s, t, n)| ((s, t), n))
        .collect();
    assert_eq!(kept_jobs, jobs, "job counts after {step}");
    let images = grouped(
        &app.app,
        "SELECT COALESCE(collection, ''), status, COUNT(*) FROM image GROUP BY COALESCE(collection, ''), status",
    )
    .await;
    let kept_images = grouped(
        &app.app,
        "SELECT collection, status, CAST(SUM(n) AS BIGINT) FROM image_count GROUP BY collection, status",
    )
    .await;
    assert_eq!(kept_images, images, "image counts after {step}");

    let list: ImageList =
        app.client.get(app.url("/api/images")).send().await.expect("list").json().await.expect("json");
    let all_images: i64 = images.values().sum();
    assert_eq!(list.pagination.total, all_images.unsigned_abs(), "the image list's total after {step}");
    let mut per_collection: BTreeMap<String, u64> = BTreeMap::new();
    for ((collection, _), n) in &images {
        if !collection.is_empty() {
            *per_collection.entry(collection.clone()).or_default() += n.unsigned_abs();
        }
    }
    let listed: BTreeMap<String, u64> = list.collections.iter().map(|c| (c.name.clone(), c.count)).collect();
    assert_eq!(listed, per_collection, "the collections summary after {step}");
    let completed: i64 = jobs.iter().filter(|((s, _), _)| s == "COMPLETED").map(|(_, n)| n).sum();
    let page = app.jobs("status=COMPLETED&limit=1").await;
    assert_eq!(page.pagination.total, completed.unsigned_abs(), "the COMPLETED job list's total after {step}");
    jobs
}

/// Waits until no job of `image` is PENDING or RUNNING: an image is FAILED
/// the moment one of its jobs fails for good, while its sibling (the
/// preview, in a sandbox child) may still be completing, which would change
/// the counts between two reads.
async fn wait_until_settled(app: &TestApp, image: &str) {
    for _ in 0..1_200 {
        let jobs = app.jobs(&format!("imageId={image}")).await.jobs;
        if jobs.iter().all(|j| !matches!(j.status, JobStatus::Pending | JobStatus::Running)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the jobs of {image} are still running after a minute");
}

async fn patch_collection(app: &TestApp, id: &str, collection: serde_json::Value) {
    let response = app
        .client
        .patch(app.url(&format!("/api/images/{id}")))
        .json(&json!({ "collection": collection }))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 200);
}

both_backends! {
    async fn the_kept_counts_match_the_tables_through_every_kind_of_write(backend) {
        let broken = Arc::new(AtomicBool::new(false));
        let Some(app) = spawn_app_on(backend, |_| {}, with_breakable_thumbnails(&broken), true).await else {
            return;
        };
        let photo = std::fs::read(crate::helpers::testdata("mpl-grace-hopper.jpg")).expect("photo");
        let mut ids = Vec::new();
        for collection in [Some("a"), Some("a"), Some("b"), None] {
            let response = app.upload_bytes("p.jpg", photo.clone(), None, collection).await;
            assert_eq!(response.status(), 201);
            let body: serde_json::Value = response.json().await.expect("json");
            ids.push(body["imageId"].as_str().expect("id").to_owned());
        }
        for id in &ids {
            assert_eq!(app.wait_terminal(id, Duration::from_secs(60)).await.status, ImageStatus::Stored);
        }
        let stored = assert_counts_exact(&app, "uploads").await;
        assert_eq!(stored.get(&("COMPLETED".into(), "THUMBNAIL_GENERATION".into())), Some(&4));

        // A job that fails for good, retried by an operator, completes.
        broken.store(true, Ordering::SeqCst);
        let failing = app.upload_bytes("f.jpg", photo.clone(), None, Some("a")).await;
        let failing: serde_json::Value = failing.json().await.expect("json");
        let failing = failing["imageId"].as_str().expect("id").to_owned();
        assert_eq!(app.wait_terminal(&failing, Duration::from_secs(60)).await.status, ImageStatus::Failed);
        wait_until_settled(&app, &failing).await;
        let failed = assert_counts_exact(&app, "a failure").await;
        assert_eq!(failed.get(&("FAILED".into(), "THUMBNAIL_GENERATION".into())), Some(&1));
        broken.store(false, Ordering::SeqCst);
        let job = app.jobs("status=FAILED").await.jobs[0].id;
        let response = app.client.post(app.url(&format!("/api/admin/jobs/{job}/retry"))).send().await.expect("retry");
        assert_eq!(response.status(), 200);
        assert_eq!(app.wait_terminal(&failing, Duration::from_secs(60)).await.status, ImageStatus::Stored);
        assert_counts_exact(&app, "a retry").await;

        // A failed job cancelled.
        broken.store(true, Ordering::SeqCst);
        let cancelled = app.upload_bytes("c.jpg", photo.clone(), None, Some("b")).await;
        let cancelled: serde_json::Value = cancelled.json().await.expect("json");
        let cancelled = cancelled["imageId"].as_str().expect("id").to_owned();
        assert_eq!(app.wait_terminal(&cancelled, Duration::from_secs(60)).await.status, ImageStatus::Failed);
        wait_until_settled(&app, &cancelled).await;
        let job = app.jobs("status=FAILED").await.jobs[0].id;
        let response = app.client.post(app.url(&format!("/api/admin/jobs/{job}/cancel"))).send().await.expect("cancel");
        assert_eq!(response.status(), 200);
        let after_cancel = assert_counts_exact(&app, "a cancel").await;
        assert_eq!(after_cancel.get(&("CANCELLED".into(), "THUMBNAIL_GENERATION".into())), Some(&1));

        // Collections changed and cleared, an image deleted.
        patch_collection(&app, &ids[0], json!("b")).await;
        patch_collection(&app, &ids[2], json!(null)).await;
        assert_counts_exact(&app, "edits").await;
        let response = app.client.delete(app.url(&format!("/api/images/{}", ids[1]))).send().await.expect("delete");
        assert_eq!(response.status(), 204);
        let before_pruning = assert_counts_exact(&app, "a delete").await;
        let finished: i64 = before_pruning
            .iter()
            .filter(|((status, _), _)| status == "COMPLETED" || status == "CANCELLED")
            .map(|(_, n)| n)
            .sum();
        assert!(finished > 0);

        // Pruning everything finished, in batches, then folding the counts.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let pruned = prune_once(&app.app.queue, completed_now()).await.expect("prune");
        assert_eq!(pruned.deleted, finished.unsigned_abs(), "every finished job is pruned: {pruned:?}");
        let left = assert_counts_exact(&app, "pruning").await;
        assert!(left.keys().all(|(status, _)| status != "COMPLETED"), "{left:?}");

        if backend == crate::helpers::Backend::Postgres {
            // Counts written by a connection that ended are folded into a
            // live one's by the next pruning.
            let other = pictor::db::Db::connect(&app.database_url).await.expect("connect");
            let mut conn = other.pool.acquire().await.expect("connection");
            let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn).await.expect("pid");
            sqlx::query("UPDATE image SET collection = 'c' WHERE id = $1")
                .bind(&ids[3])
                .execute(&mut *conn)
                .await
                .expect("update");
            drop(conn);
            other.pool.close().await;
            for _ in 0..100 {
                let alive: Option<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE pid = $1")
                    .bind(pid)
                    .fetch_optional(&app.app.db.pool)
                    .await
                    .expect("activity");
                if alive.is_none() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let dead_slots = "SELECT COUNT(*) FROM image_count WHERE slot NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)";
            let before: i64 = sqlx::query_scalar(dead_slots).fetch_one(&app.app.db.pool).await.expect("slots");
            assert!(before > 0, "the ended connection's counts are in its own rows");
            prune_once(&app.app.queue, completed_now()).await.expect("prune");
            let after: i64 = sqlx::query_scalar(dead_slots).fetch_one(&app.app.db.pool).await.expect("slots");
            assert_eq!(after, 0, "folded into a live connection's rows");
            assert_counts_exact(&app, "folding").await;
        }

        let response = app.client.get(app.url("/api/images?cursor=nonsense")).send().await.expect("list");
        assert_eq!(response.status(), 400);
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "invalid_cursor");
        app.stop().await;
    }
}

/// Ids of every page of a list, following `nextCursor` from the first.
async fn walk<F, Fut>(mut page: F) -> Vec<String>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = (Vec<String>, Option<String>)>,
{
    let mut all = Vec::new();
    let mut cursor = None;
    for _ in 0..1_000 {
        let (ids, next) = page(cursor).await;
        all.extend(ids);
        match next {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
    panic!("the cursors never ended");
}

/// 53 images (some sharing an upload time, so that the id breaks ties) in
/// two collections, with a job of each kind.
async fn fill(app: &App, clock: &pictor::clock::ManualClock) -> Vec<ImageId> {
    let mut ids = Vec::new();
    for i in 0..53 {
        if i % 4 == 0 {
            clock.advance(Duration::from_millis(1));
        }
        let id = ImageId::new_v7();
        let image = NewImage {
            id: id.clone(),
            title: format!("image {i}"),
            collection: Some(if i % 3 == 0 { "x" } else { "y" }.to_owned()),
            checksum: format!("{i:064}"),
            size_bytes: 1,
            format: "jpeg".into(),
            width: 1,
            height: 1,
            orientation: 1,
            temp_path: format!("tmp/{id}.upload"),
        };
        pictor::db::images::insert_ingested(&app.db.pool, &image, clock.now()).await.expect("insert image");
        for kind in JobKind::ALL.iter() {
            let job = NewJob::for_image(*kind, &id, &json!({ "imageId": id })).expect("job");
            app.queue.enqueue(&job).await.expect("enqueue");
        }
        ids.push(id);
    }
    ids
}

both_backends! {
    async fn keyset_and_deep_offset_pages_walk_every_row_once_in_order(backend) {
        let Some(clocked) = clocked_app(backend, |_| {}).await else { return };
        let app = &clocked.app;
        fill(app, &clocked.clock).await;

        for collection in [None, Some("x")] {
            let filter = ImageFilter { collection: collection.map(str::to_owned), status: None };
            let order: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM image{} ORDER BY created_at DESC, id DESC",
                if collection.is_some() { " WHERE collection = 'x'" } else { "" }
            )))
            .fetch_all(&app.db.pool)
            .await
            .expect("order");
            let expected_total = order.len() as u64;
            let walked = walk(|cursor| {
                let filter = filter.clone();
                async move {
                    let page = Page::new(Some(7), None).expect("page").after(cursor);
                    let list = app.images.list(&filter, page).await.expect("list");
                    assert_eq!(list.pagination.total, expected_total);
                    (list.data.iter().map(|i| i.id.clone()).collect(), list.pagination.next_cursor)
                }
            })
            .await;
            assert_eq!(walked, order, "the cursors walk every image once, in order ({collection:?})");
            // Offsets, before the middle and past it (read from the oldest end).
            for offset in (0..order.len() + 3).step_by(5) {
                let page = Page::new(Some(7), Some(offset as i64)).expect("page");
                let list = app.images.list(&filter, page).await.expect("list");
                let ids: Vec<String> = list.data.iter().map(|i| i.id.clone()).collect();
                let expected = order.iter().skip(offset).take(7).cloned().collect::<Vec<_>>();
                assert_eq!(ids, expected, "offset {offset} ({collection:?})");
                assert_eq!(list.pagination.has_more, offset + 7 < order.len(), "hasMore at offset {offset}");
            }
        }

        for kind in [None, Some(JobKind::ThumbnailGeneration)] {
            let filter = JobFilter { status: None, kind, image_id: None };
            let order: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM job{} ORDER BY id DESC",
                if kind.is_some() { " WHERE type = 'THUMBNAIL_GENERATION'" } else { "" }
            )))
            .fetch_all(&app.db.pool)
            .await
            .expect("order");
            let expected_total = order.len() as u64;
            let walked = walk(|cursor| {
                let filter = filter.clone();
                async move {
                    let page = Page::new(Some(10), None).expect("page").after(cursor);
                    let list = app.images.jobs(&filter, page).await.expect("jobs");
                    assert_eq!(list.pagination.total, expected_total);
                    (list.jobs.iter().map(|j| j.id.to_string()).collect(), list.pagination.next_cursor)
                }
            })
            .await;
            let order_text: Vec<String> = order.iter().map(i64::to_string).collect();
            assert_eq!(walked, order_text, "the cursors walk every job once, in order ({kind:?})");
            for offset in (0..order.len() + 3).step_by(11) {
                let page = Page::new(Some(10), Some(offset as i64)).expect("page");
                let list = app.images.jobs(&filter, page).await.expect("jobs");
                let ids: Vec<i64> = list.jobs.iter().map(|j| j.id).collect();
                let expected = order.iter().skip(offset).take(10).copied().collect::<Vec<_>>();
                assert_eq!(ids, expected, "job offset {offset} ({kind:?})");
            }
        }
        let pending = JobFilter { status: Some(JobStatus::Pending), kind: None, image_id: None };
        let list = app.images.jobs(&pending, Page::new(Some(1), None).expect("page")).await.expect("jobs");
        assert_eq!(list.pagination.total, 53 * JobKind::ALL.len() as u64, "every job is PENDING, as the kept count says");
    }
}

both_backends! {
    async fn the_pruner_deletes_every_old_finished_job_in_batches_and_keeps_the_rest(backend) {
        let Some(clocked) = clocked_app(backend, |_| {}).await else { return };
        let app = &clocked.app;
        let jobs: Vec<NewJob> = (0..700)
            .map(|i| NewJob {
                kind: JobKind::PreviewGeneration,
                payload: json!({ "i": i }).to_string(),
                image_id: None,
                priority: 0,
                dedupe_key: None,
            })
            .collect();
        let mut tx = app.db.begin_write(pictor::db::Durability::Acknowledged).await.expect("begin");
        app.queue.enqueue_many_in(&mut tx, &jobs).await.expect("enqueue");
        tx.commit().await.expect("commit");
        let now = clocked.clock.now().get();
        // Ends shared by many jobs (ties across batches); every tenth job
        // FAILED and every seventh ended after the cut: both are kept.
        sqlx::query(
            "UPDATE job SET status = CASE WHEN id % 10 = 0 THEN 'FAILED' WHEN id % 3 = 0 THEN 'CANCELLED' \
                                          ELSE 'COMPLETED' END, \
                            finished_at = CASE WHEN id % 7 = 0 THEN $1 + 1 ELSE $1 - 1000 - id % 5 END",
        )
        .bind(now)
        .execute(&app.db.pool)
        .await
        .expect("finish");
        let doomed: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM job WHERE status IN ('COMPLETED', 'CANCELLED') AND finished_at < $1",
        )
        .bind(now)
        .fetch_one(&app.db.pool)
        .await
        .expect("count");
        assert!(doomed > 2 * pictor::queue::pruner::PRUNE_BATCH, "enough for several batches: {doomed}");
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM job").fetch_one(&app.db.pool).await.expect("count");

        let pruned = prune_once(&app.queue, completed_now()).await.expect("prune");
        assert_eq!(pruned.deleted, doomed.unsigned_abs(), "{pruned:?}");
        assert!(pruned.batches >= 3, "{pruned:?}");
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM job").fetch_one(&app.db.pool).await.expect("count");
        assert_eq!(left, total - doomed);
        let old_left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM job WHERE status IN ('COMPLETED', 'CANCELLED') AND finished_at < $1",
        )
        .bind(now)
        .fetch_one(&app.db.pool)
        .await
        .expect("count");
        assert_eq!(old_left, 0);
        let kept = grouped(app, "SELECT status, type, COUNT(*) FROM job GROUP BY status, type").await;
        let counted: BTreeMap<_, _> = pictor::db::jobs::counts_by_status_and_type(&app.db.pool)
            .await
            .expect("kept counts")
            .into_iter()
            .filter(|(_, _, n)| *n != 0)
            .map(|(s, t, n)| ((s, t), n))
            .collect();
        assert_eq!(counted, kept, "the kept counts follow the batches");
    }
}

/// Retention that prunes every COMPLETED or CANCELLED job and keeps FAILED
/// ones for their default two weeks.
fn completed_now() -> pictor::queue::pruner::Retention {
    pictor::queue::pruner::Retention { completed: Duration::ZERO, ..Default::default() }
}
