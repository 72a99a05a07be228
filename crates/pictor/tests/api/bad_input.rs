//! Bad input gets a clear error and loses nothing: the manifest's bad files,
//! malformed requests and limits, with the server still answering after.

use std::time::Duration;

use pictor::app::Overrides;
use pictor_client::models::{ErrorBody, ImageStatus, JobStatus};

use crate::helpers::{count_files, manifest, spawn_app, spawn_app_with, testdata};

async fn error_of(response: reqwest::Response) -> (u16, ErrorBody) {
    let status = response.status().as_u16();
    let body: ErrorBody = response.json().await.expect("a JSON error body");
    assert!(!body.error.code.is_empty() && !body.error.message.is_empty());
    (status, body)
}

#[tokio::test]
async fn every_bad_file_of_the_manifest_is_refused_or_fails_with_a_readable_error() {
    let app = spawn_app().await;
    let bad: Vec<String> = manifest().into_iter().filter(|e| e.role == "bad").map(|e| e.file).collect();
    assert_eq!(bad.len(), 5, "the manifest's bad files");
    for file in &bad {
        let response = app.upload_file(file).await;
        if response.status() == 201 {
            let body: serde_json::Value = response.json().await.expect("json");
            let id = body["imageId"].as_str().expect("id").to_owned();
            let image = app.wait_terminal(&id, Duration::from_secs(60)).await;
            assert_eq!(image.status, ImageStatus::Failed, "{file} was stored");
            assert!(image.error.as_deref().is_some_and(|e| e.len() > 10), "{file}: {:?}", image.error);
            for job in &image.processing_jobs {
                if job.status == JobStatus::Failed {
                    assert_eq!(job.attempts, 1, "{file}: a corrupt file fails at once, without retries");
                }
            }
        } else {
            let (status, body) = error_of(response).await;
            assert!((400..500).contains(&status), "{file}: {status}");
            assert!(!body.error.message.contains("internal"), "{file}: {}", body.error.message);
        }
    }
    let health = app.client.get(app.url("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), 200, "the server keeps serving");
    assert_eq!(count_files(&app.dir.path().join("storage/tmp")), 0, "refusals leave nothing in tmp/");
    app.stop().await;
}

#[tokio::test]
async fn each_kind_of_refusal_has_its_documented_status_and_code() {
    let app = spawn_app().await;
    let cases = [
        ("bad-zero-bytes.jpg", 415, "empty_file"),
        ("bad-text-named.jpg", 415, "unsupported_format"),
        ("bad-png-bomb-30000x30000.png", 422, "too_many_pixels"),
        ("bad-jpeg-dims-65500x65500-ladybird.jpg", 422, "too_many_pixels"),
    ];
    for (file, want_status, want_code) in cases {
        let (status, body) = error_of(app.upload_file(file).await).await;
        assert_eq!((status, body.error.code.as_str()), (want_status, want_code), "{file}: {}", body.error.message);
    }
    let (status, body) = error_of(
        app.client
            .post(app.url("/api/upload"))
            .multipart(reqwest::multipart::Form::new().text("title", "no file"))
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!((status, body.error.code.as_str()), (400, "missing_file"));

    let malformed = app
        .client
        .post(app.url("/api/upload"))
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\nabc")
        .send()
        .await
        .expect("request");
    let (status, _) = error_of(malformed).await;
    assert_eq!(status, 400, "a body cut off mid-part is malformed");
    assert_eq!(count_files(&app.dir.path().join("storage/tmp")), 0, "nothing left in tmp/");
    app.stop().await;
}

#[tokio::test]
async fn an_upload_over_the_size_limit_is_refused_with_413_and_leaves_nothing() {
    let app = spawn_app_with(|c| c.max_upload_bytes = 100_000, Overrides::default(), false).await;
    let (status, body) = error_of(app.upload_file("bridge-klootwijk.jpg").await).await;
    assert_eq!((status, body.error.code.as_str()), (413, "file_too_large"));
    assert_eq!(count_files(&app.dir.path().join("storage/tmp")), 0);
    let small = std::fs::read(testdata("mpl-grace-hopper.jpg")).expect("image");
    assert_eq!(app.upload_bytes("ok.jpg", small, None, None).await.status(), 201, "under the limit still works");
    app.stop().await;
}

#[tokio::test]
async fn a_truncated_jpeg_fails_at_once_with_a_message_a_person_can_act_on() {
    let app = spawn_app().await;
    let response = app.upload_file("bad-truncated-bridge.jpg").await;
    if response.status() == 201 {
        let body: serde_json::Value = response.json().await.expect("json");
        let image = app.wait_terminal(body["imageId"].as_str().expect("id"), Duration::from_secs(60)).await;
        assert_eq!(image.status, ImageStatus::Failed);
        let error = image.error.unwrap_or_default().to_lowercase();
        assert!(error.contains("truncat") || error.contains("ends early") || error.contains("premature"), "{error}");
    } else {
        let (status, _) = error_of(response).await;
        assert_eq!(status, 422);
    }
    app.stop().await;
}

/// A text field larger than the whole upload limit is refused as a too-long
/// field while it is read (a server that read it whole would hit the body
/// limit first and answer 413), and so is an upload of too many parts; the
/// file sent with them is not kept.
#[tokio::test]
async fn an_oversized_text_field_and_too_many_parts_are_refused_as_they_arrive() {
    let app = spawn_app_with(|c| c.max_upload_bytes = 1024 * 1024, Overrides::default(), false).await;
    let photo = std::fs::read(testdata("mpl-grace-hopper.jpg")).expect("photo");
    let with_file = |form: reqwest::multipart::Form| {
        form.part("file", reqwest::multipart::Part::bytes(photo.clone()).file_name("a.jpg"))
    };

    let huge_title = with_file(reqwest::multipart::Form::new()).text("title", "x".repeat(2 * 1024 * 1024));
    let response = app.client.post(app.url("/api/upload")).multipart(huge_title).send().await.expect("request");
    let (status, body) = error_of(response).await;
    assert_eq!((status, body.error.code.as_str()), (400, "field_too_long"), "{}", body.error.message);

    let mut many = with_file(reqwest::multipart::Form::new());
    for i in 0..20 {
        many = many.text(format!("extra{i}"), "x");
    }
    let response = app.client.post(app.url("/api/upload")).multipart(many).send().await.expect("request");
    let (status, body) = error_of(response).await;
    assert_eq!((status, body.error.code.as_str()), (400, "too_many_parts"), "{}", body.error.message);

    assert_eq!(count_files(&app.dir.path().join("storage")), 0, "nothing kept of the refused uploads");
    app.stop().await;
}

both_backends! {
    /// Page numbers, offsets and limits at the edge of a 64-bit integer,
    /// past it, and negative: each list and page answers 200 (a page past
    /// the end, empty) or 400, never a 5xx (the page arithmetic saturates).
    async fn page_numbers_and_offsets_at_the_integer_limits_answer_200_or_400(backend) {
        let Some(app) = crate::helpers::spawn_app_on(backend, |_| {}, Overrides::default(), false).await else {
            return;
        };
        let id = app.upload_ok("tiny-microaneurysms.png").await;
        for value in ["9223372036854775807", "9223372036854775808", "-9223372036854775808", "-1", "0"] {
            for path in [
                format!("/?page={value}"),
                format!("/?page={value}&status=INGESTED"),
                format!("/admin/jobs?page={value}"),
                format!("/api/images?offset={value}"),
                format!("/api/images?limit={value}"),
                format!("/api/images?offset={value}&limit=1&status=INGESTED"),
                format!("/api/admin/jobs?offset={value}"),
                format!("/api/admin/jobs?limit={value}&status=PENDING"),
            ] {
                let response = app.client.get(app.url(&path)).send().await.expect("request");
                let status = response.status().as_u16();
                assert!(status == 200 || status == 400, "{path}: {status} {}", response.text().await.unwrap_or_default());
            }
        }
        assert_eq!(app.image(&id).await.status, ImageStatus::Ingested, "the server still answers");
        app.stop().await;
    }
}

/// A PATCH with a 1 MiB title is refused (the same limits as upload) and
/// the image keeps its title.
#[tokio::test]
async fn a_patch_with_a_1_mib_title_is_refused_and_changes_nothing() {
    let app = spawn_app_with(|_| {}, Overrides::default(), false).await;
    let id = app.upload_ok("tiny-microaneurysms.png").await;
    let response = app
        .client
        .patch(app.url(&format!("/api/images/{id}")))
        .json(&serde_json::json!({ "title": "x".repeat(1024 * 1024) }))
        .send()
        .await
        .expect("patch");
    let (status, body) = error_of(response).await;
    assert!(status == 400 || status == 413, "{status}: {}", body.error.message);
    assert_eq!(app.image(&id).await.title, "tiny-microaneurysms", "the title is unchanged");
    app.stop().await;
}
