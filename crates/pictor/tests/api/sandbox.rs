//! The image sandbox (`PICTOR_IMAGE_SANDBOX=process`, the default): a
//! decoder that segfaults, one that never returns, one that allocates
//! without bound, and one that tries the network, each set off by the
//! children's test hooks (a marker in a JPEG comment). Each fails its own
//! image with a readable error while another upload is STORED, and the
//! server keeps answering. Plus: hooks stay inert unless the test arms
//! them, and the in-process mode still works.

use std::time::Duration;

use pictor::app::Overrides;
use pictor::queue::retry::RetryPolicy;
use pictor_client::models::{ImageStatus, JobKind, JobStatus};

use crate::helpers::{Backend, TestApp, spawn_app_on, spawn_app_with, testdata, with_jpeg_comment};

/// What a test waits for an image at most.
const PATIENCE: Duration = Duration::from_secs(90);

/// A valid JPEG carrying the marker of the test hook `hook`.
fn marked_jpeg(hook: &str) -> Vec<u8> {
    let jpeg = std::fs::read(testdata("mpl-grace-hopper.jpg")).expect("test image");
    with_jpeg_comment(&jpeg, &format!("PICTOR-SANDBOX-TEST:{hook}"))
}

/// Pictor with armed test hooks, children limited to 256 MB and 2 s, two
/// attempts per job and fast retries.
async fn app_with_hooks(backend: Backend) -> Option<TestApp> {
    let overrides = Overrides {
        sandbox_test_hooks: true,
        retry: Some(RetryPolicy { base_delay_ms: 100, max_delay_ms: 100, jitter: 0.0 }),
        ..Overrides::default()
    };
    let configure = |c: &mut pictor::config::Config| {
        c.sandbox_timeout_secs = 2;
        c.sandbox_memory_mb = pictor::sandbox::MIN_MEMORY_MB;
        c.max_attempts = 2;
    };
    spawn_app_on(backend, configure, overrides, true).await
}

/// Uploads a JPEG carrying `hook`'s marker beside a healthy photo, and
/// checks that the healthy one is STORED while the marked one ends FAILED
/// with `expected` in its error and its asset jobs' `lastError`; then that
/// the server still stores a new upload.
async fn a_fault_fails_its_image_only(app: &TestApp, hook: &str, expected: &str) {
    let name = format!("{hook}.jpg");
    let (faulty, healthy) =
        tokio::join!(app.upload_bytes(&name, marked_jpeg(hook), None, None), app.upload_ok("grey-grace-hopper.jpg"));
    assert_eq!(faulty.status(), 201, "a marked JPEG is a valid upload");
    let faulty: serde_json::Value = faulty.json().await.expect("json");
    let faulty = faulty["imageId"].as_str().expect("imageId").to_owned();

    let stored = app.wait_terminal(&healthy, PATIENCE).await;
    let failed = app.wait_terminal(&faulty, PATIENCE).await;

    assert_eq!(stored.status, ImageStatus::Stored, "the healthy upload: {:?}", stored.error);
    assert_eq!(failed.status, ImageStatus::Failed);
    let error = failed.error.clone().unwrap_or_default();
    assert!(error.contains(expected), "the image says why: {error:?}");
    let jobs = app.jobs(&format!("imageId={faulty}")).await.jobs;
    let asset_jobs =
        || jobs.iter().filter(|j| matches!(j.kind, JobKind::ThumbnailGeneration | JobKind::PreviewGeneration));
    assert!(
        asset_jobs()
            .any(|j| j.status == JobStatus::Failed && j.last_error.as_deref().is_some_and(|e| e.contains(expected))),
        "an asset job FAILED saying {expected:?}: {jobs:?}"
    );
    let after = app.upload_ok("mpl-grace-hopper.jpg").await;
    assert_eq!(app.wait_terminal(&after, PATIENCE).await.status, ImageStatus::Stored, "the pool still works");
}

both_backends! {
    async fn a_decoder_that_segfaults_fails_its_image_while_another_upload_is_stored(backend) {
        let Some(app) = app_with_hooks(backend).await else { return };

        a_fault_fails_its_image_only(&app, "segv", "the image decoder crashed on this file (killed by SIGSEGV)").await;

        app.stop().await;
    }
}

both_backends! {
    async fn a_decoder_that_never_returns_is_killed_at_its_deadline_while_another_upload_is_stored(backend) {
        let Some(app) = app_with_hooks(backend).await else { return };

        // Retryable (time depends on load): both attempts run out of time.
        a_fault_fails_its_image_only(&app, "hang", "the image decoder ran past its 2 s deadline and was stopped").await;

        app.stop().await;
    }
}

both_backends! {
    async fn a_decoder_that_allocates_without_bound_fails_at_its_memory_limit_while_another_upload_is_stored(backend) {
        let Some(app) = app_with_hooks(backend).await else { return };

        a_fault_fails_its_image_only(&app, "alloc", "the image decoder ran out of its 256 MB memory limit").await;

        app.stop().await;
    }
}

#[tokio::test]
async fn a_sandbox_child_cannot_open_a_network_socket() {
    let Some(app) = app_with_hooks(Backend::Sqlite).await else { return };

    // The hook reports socket()'s answer as the job's error: the seccomp
    // filter's EPERM, where a namespace alone would give another errno.
    a_fault_fails_its_image_only(&app, "socket", "test hook: socket refused: Operation not permitted").await;

    app.stop().await;
}

#[tokio::test]
async fn test_hooks_stay_inert_unless_a_test_arms_them() {
    let app = spawn_app_with(|_| {}, Overrides::default(), true).await;

    let id = app.upload_bytes("segv.jpg", marked_jpeg("segv"), None, None).await;

    let id: serde_json::Value = id.json().await.expect("json");
    let image = app.wait_terminal(id["imageId"].as_str().expect("imageId"), PATIENCE).await;
    assert_eq!(image.status, ImageStatus::Stored, "the marker is only a comment: {:?}", image.error);
    app.stop().await;
}

#[tokio::test]
async fn with_the_sandbox_off_images_are_made_in_process_and_stored() {
    let app =
        spawn_app_with(|c| c.image_sandbox = pictor::sandbox::ImageSandbox::Off, Overrides::default(), true).await;
    assert!(app.app.handlers.sandbox.is_none(), "no children");

    let id = app.upload_ok("plasma-coldripple.jpg").await;

    let image = app.wait_terminal(&id, PATIENCE).await;
    assert_eq!(image.status, ImageStatus::Stored, "{:?}", image.error);
    assert!(image.thumbhash.is_some(), "the thumbnails job made its placeholder too");
    app.stop().await;
}
