//! `pictor_client::Client` against a spawned server: every call, its errors,
//! the upload progress, waits and asset URLs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use pictor::app::Overrides;
use pictor_client::models::{ImageStatus, ImageUpdate, JobKind, JobStatus};
use pictor_client::{Client, Error, ImageQuery, JobQuery, UploadOptions, is_image_ready, is_settled, status_label};

use crate::helpers::{TestApp, spawn_app, spawn_app_with, testdata};

fn client_of(app: &TestApp) -> Client {
    Client::new(&app.base).expect("client").with_poll_interval(Duration::from_millis(50))
}

#[tokio::test]
async fn an_upload_streams_with_progress_waits_until_stored_and_gives_asset_urls() {
    let app = spawn_app().await;
    let client = client_of(&app);
    let path = testdata("sklearn-china.jpg");
    let size = std::fs::metadata(&path).expect("size").len();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&calls);

    let uploaded = client
        .upload_image(
            &path,
            &UploadOptions { title: Some("China".into()), collection: Some("asia".into()) },
            move |p| seen.lock().expect("lock").push((p.sent, p.total)),
        )
        .await
        .expect("upload");
    let image = client.wait_until_stored(&uploaded.image_id, Duration::from_secs(60)).await.expect("stored");

    assert_eq!(uploaded.status, ImageStatus::Ingested);
    assert_eq!(uploaded.size_bytes, size);
    let calls = calls.lock().expect("lock").clone();
    assert_eq!(calls.first(), Some(&(0, size)), "the callback starts at 0");
    assert_eq!(calls.last(), Some(&(size, size)), "and ends at the file size");
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0), "never goes back: {calls:?}");
    assert!(calls.len() > 2, "a 192 KiB file is sent in several chunks");
    assert_eq!((image.title.as_str(), image.collection.as_deref()), ("China", Some("asia")));
    assert!(is_image_ready(&image) && is_settled(image.status));
    assert_eq!(status_label(image.status), "Ready");
    let thumb = client.thumbnail_url(&image, 256).expect("256 px thumbnail");
    assert!(thumb.starts_with(&format!("{}/assets/", app.base)), "{thumb}");
    let response = reqwest::get(&thumb).await.expect("thumbnail");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    assert_eq!(client.thumbnail_url(&image, 300), None, "no such size");
    let preview = client.preview_url(&image).expect("preview");
    assert_eq!(reqwest::get(&preview).await.expect("preview").status(), 200);
    assert_eq!(client.asset_url("/assets/x.jpg"), format!("{}/assets/x.jpg", app.base));
    assert_eq!(client.asset_url("http://cdn.example/x.jpg"), "http://cdn.example/x.jpg");
    app.stop().await;
}

#[tokio::test]
async fn images_are_listed_with_filters_and_pages_then_edited_and_deleted() {
    let app = spawn_app_with(|_| {}, Overrides::default(), false).await;
    let client = client_of(&app);
    let options = |collection: &str| UploadOptions { collection: Some(collection.into()), ..UploadOptions::default() };
    let mut ids = Vec::new();
    for (name, collection) in
        [("mpl-grace-hopper.jpg", "people"), ("sklearn-china.jpg", "places"), ("grey-grace-hopper.jpg", "people")]
    {
        ids.push(client.upload_image(&testdata(name), &options(collection), |_| {}).await.expect("upload").image_id);
    }

    let people = client
        .get_images(&ImageQuery { collection: Some("people".into()), ..ImageQuery::default() })
        .await
        .expect("list");
    let page = client
        .get_images(&ImageQuery { limit: Some(2), offset: Some(1), ..ImageQuery::default() })
        .await
        .expect("page");
    let ingested = client
        .get_images(&ImageQuery { status: Some(ImageStatus::Ingested), ..ImageQuery::default() })
        .await
        .expect("by status");
    let stored = client
        .get_images(&ImageQuery { status: Some(ImageStatus::Stored), ..ImageQuery::default() })
        .await
        .expect("by status");

    assert_eq!(people.count, 2);
    assert!(people.data.iter().all(|i| i.collection.as_deref() == Some("people")));
    assert_eq!((page.data.len(), page.pagination.total, page.pagination.has_more), (2, 3, false));
    assert_eq!((ingested.count, stored.count), (3, 0));
    assert_eq!(
        people.collections.iter().map(|c| (c.name.as_str(), c.count)).collect::<Vec<_>>(),
        [("people", 2), ("places", 1)]
    );

    let one = client.get_image(&ids[0]).await.expect("get");
    assert_eq!(one.title, "mpl-grace-hopper");
    assert_eq!(status_label(one.status), "Queued for processing");
    assert!(!is_image_ready(&one));
    let renamed = client
        .update_image(&ids[0], &ImageUpdate { title: Some("Grace".into()), collection: Some(None) })
        .await
        .expect("update");
    assert_eq!((renamed.title.as_str(), renamed.collection), ("Grace", None));
    let refused = client.update_image(&ids[0], &ImageUpdate::default()).await.expect_err("nothing to update");
    assert_eq!((refused.status(), refused.code()), (Some(400), Some("nothing_to_update")));

    client.delete_image(&ids[1]).await.expect("delete");
    let gone = client.get_image(&ids[1]).await.expect_err("deleted");
    assert_eq!((gone.status(), gone.code()), (Some(404), Some("not_found")));
    assert!(gone.to_string().contains("not found"), "{gone}");
    app.stop().await;
}

#[tokio::test]
async fn jobs_are_listed_shown_cancelled_and_retried() {
    let app = spawn_app_with(|_| {}, Overrides::default(), false).await;
    let client = client_of(&app);
    let id = client
        .upload_image(&testdata("mpl-grace-hopper.jpg"), &UploadOptions::default(), |_| {})
        .await
        .expect("upload")
        .image_id;

    let pending = client
        .get_jobs(&JobQuery { status: Some(JobStatus::Pending), image_id: Some(id.clone()), ..JobQuery::default() })
        .await
        .expect("jobs");
    assert_eq!(pending.jobs.len(), 1);
    let job_id = pending.jobs[0].id;
    assert_eq!(pending.jobs[0].kind, JobKind::OffloadOriginal);
    let none = client
        .get_jobs(&JobQuery { kind: Some(JobKind::PreviewGeneration), ..JobQuery::default() })
        .await
        .expect("jobs");
    assert_eq!(none.pagination.total, 0);
    let detail = client.get_job(job_id).await.expect("job");
    assert_eq!(detail.image.as_ref().map(|i| i.id.as_str()), Some(id.as_str()));

    assert_eq!(client.cancel_job(job_id).await.expect("cancel").status, JobStatus::Cancelled);
    let twice = client.cancel_job(job_id).await.expect_err("already cancelled");
    assert_eq!((twice.status(), twice.code()), (Some(409), Some("wrong_state")));
    assert_eq!(client.retry_job(job_id).await.expect("retry").status, JobStatus::Pending);
    assert_eq!(client.retry_all_failed().await.expect("retry all"), 0, "nothing has failed");
    let unknown = client.get_job(999_999).await.expect_err("unknown");
    assert_eq!(unknown.code(), Some("not_found"));
    app.stop().await;
}

#[tokio::test]
async fn a_failed_image_ends_the_wait_with_its_error_and_retry_all_failed_requeues_its_jobs() {
    let app = spawn_app().await;
    let client = client_of(&app);
    let id = client
        .upload_image(&testdata("bad-truncated-bridge.jpg"), &UploadOptions::default(), |_| {})
        .await
        .expect("a truncated JPEG is accepted: its header is whole")
        .image_id;

    let changes: Vec<_> = client.status_changes(&id).collect().await;
    let failed = client.wait_until_stored(&id, Duration::from_secs(60)).await.expect_err("it fails");

    let last = changes.last().expect("changes").as_ref().expect("no request error");
    assert_eq!(last.status, ImageStatus::Failed, "the stream ends at FAILED");
    match &failed {
        Error::ImageFailed { id: failed_id, message } => {
            assert_eq!(failed_id, &id);
            assert!(message.contains("ends early"), "{message}");
        }
        other => panic!("expected ImageFailed, got {other}"),
    }
    let settled = client.wait_until_settled(&id, Duration::from_secs(5)).await.expect("settled");
    assert_eq!(settled.status, ImageStatus::Failed);
    // The image is FAILED as soon as one job fails; a sibling job may still be running.
    let finished = jobs_all_finished(&client, &id).await;
    let failed_jobs = finished.processing_jobs.iter().filter(|j| j.status == JobStatus::Failed).count() as u64;
    assert!(failed_jobs >= 1, "{:?}", finished.processing_jobs);
    assert_eq!(client.retry_all_failed().await.expect("retry all"), failed_jobs);
    app.stop().await;
}

/// Polls the image until none of its jobs is pending or running.
async fn jobs_all_finished(client: &Client, id: &str) -> pictor_client::models::Image {
    for _ in 0..200 {
        let image = client.get_image(id).await.expect("image");
        if image.processing_jobs.iter().all(|j| !matches!(j.status, JobStatus::Pending | JobStatus::Running)) {
            return image;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the jobs of {id} did not finish within 10 s");
}

#[tokio::test]
async fn a_wait_with_no_runner_times_out_with_the_last_status() {
    let app = spawn_app_with(|_| {}, Overrides::default(), false).await;
    let client = client_of(&app);
    let id = client
        .upload_image(&testdata("mpl-grace-hopper.jpg"), &UploadOptions::default(), |_| {})
        .await
        .expect("upload")
        .image_id;

    let started = std::time::Instant::now();
    let waited = client.wait_until_stored(&id, Duration::from_millis(300)).await.expect_err("nothing processes it");
    let elapsed = started.elapsed();

    match waited {
        Error::Timeout { status, waited, .. } => {
            assert_eq!(status, ImageStatus::Ingested);
            // Measured by the client, not echoed from its argument.
            assert!(waited >= Duration::from_millis(300), "gave up early, after {waited:?}");
            assert!(waited <= elapsed, "reported {waited:?} but the call took {elapsed:?}");
        }
        other => panic!("expected Timeout, got {other}"),
    }
    app.stop().await;
}

#[tokio::test]
async fn the_token_is_sent_as_a_bearer_header_and_a_refusal_carries_the_code() {
    let app = spawn_app_with(
        |c| c.admin_token = Some("s3cret-admin-token".parse().expect("token")),
        Overrides::default(),
        false,
    )
    .await;
    let anonymous = client_of(&app);
    let admin = client_of(&app).with_token("s3cret-admin-token");

    let refused = anonymous.get_jobs(&JobQuery::default()).await.expect_err("no token");
    let listed = admin.get_jobs(&JobQuery::default()).await.expect("with the token");
    let reads = anonymous.get_images(&ImageQuery::default()).await.expect("reads stay open");

    assert_eq!((refused.status(), refused.code()), (Some(401), Some("unauthorized")));
    assert!(refused.to_string().contains("admin token"), "{refused}");
    assert_eq!(listed.pagination.total, 0);
    assert_eq!(reads.count, 0);
    assert!(!format!("{admin:?}").contains("s3cret"), "the token stays out of Debug");
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_or_invalid_server_is_a_connect_error() {
    let bad_scheme = Client::new("ftp://127.0.0.1:21").expect_err("not http");
    let not_a_url = Client::new("pictor").expect_err("not a URL");
    let unreachable = Client::new("http://127.0.0.1:1").expect("a valid address");

    let refused = unreachable.health().await.expect_err("nothing listens on port 1");
    let counted = AtomicU64::new(0);
    let upload = unreachable
        .upload_image(&testdata("missing-file.jpg"), &UploadOptions::default(), move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
        })
        .await
        .expect_err("no such file");

    assert!(bad_scheme.is_connect() && bad_scheme.to_string().contains("ftp"), "{bad_scheme}");
    assert!(not_a_url.is_connect());
    assert!(refused.is_connect(), "{refused}");
    assert!(refused.to_string().starts_with("cannot reach the Pictor server at http://127.0.0.1:1"));
    assert!(matches!(upload, Error::File { .. }), "{upload}");
    assert_eq!(unreachable.base_url(), "http://127.0.0.1:1");
}

/// A server with its one upload slot taken answers 503 `too_busy` with
/// `Retry-After`; the client waits that long and sends the file again.
#[tokio::test]
async fn an_upload_turned_away_as_too_busy_is_sent_again_after_retry_after() {
    let app = spawn_app_with(|c| c.max_concurrent_uploads = 1, Overrides::default(), false).await;
    let client = client_of(&app);
    let stalled = crate::helpers::hold_an_upload_slot(app.base.trim_start_matches("http://")).await;
    let busy = app.upload_file("mpl-grace-hopper.jpg").await;
    assert_eq!(busy.status(), 503, "the slot is taken");

    let (photo, options) = (testdata("mpl-grace-hopper.jpg"), UploadOptions::default());
    let upload = client.upload_image(&photo, &options, |_| {});
    let free_the_slot = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(stalled);
    };
    let (uploaded, ()) = tokio::join!(upload, free_the_slot);

    let uploaded = uploaded.expect("stored after the retry");
    assert_eq!(uploaded.status, ImageStatus::Ingested);
    app.stop().await;
}
