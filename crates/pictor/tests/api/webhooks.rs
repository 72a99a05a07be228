//! Webhooks (`PICTOR_WEBHOOK_URL`, `PICTOR_WEBHOOK_SECRET`): a receiver in
//! the test (a small axum server) gets `image.stored`, `image.failed` and
//! `image.deleted` with valid HMAC-SHA256 signatures, as jobs of the queue
//! the admin API and page show; a dead receiver leaves uploads unaffected
//! while its deliveries retry, then fail.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use hmac::{KeyInit as _, Mac as _};
use pictor::app::Overrides;
use pictor::queue::retry::RetryPolicy;
use pictor_client::models::{ImageStatus, JobKind, JobStatus};
use serde_json::Value;

use crate::helpers::{TestApp, spawn_app_on};

const SECRET: &str = "webhook-test-secret";

/// What the receiver got: headers and body of each POST.
type Received = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A receiver on 127.0.0.1 answering 200; its `/hook` URL and what it got.
async fn receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let store = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                store.lock().unwrap().push((headers, body.to_vec()));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// The events received so far, each checked against its signature.
fn events(received: &Received) -> Vec<Value> {
    let received = received.lock().unwrap();
    received
        .iter()
        .map(|(headers, body)| {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(body);
            let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
            assert_eq!(headers["x-pictor-signature"].to_str().unwrap(), expected, "signature");
            assert_eq!(headers["content-type"].to_str().unwrap(), "application/json");
            let event: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(headers["x-pictor-event"].to_str().unwrap(), event["event"].as_str().unwrap());
            assert!(headers.contains_key("x-pictor-delivery"));
            event
        })
        .collect()
}

/// Waits until `received` holds an event named `name` about `image_id`.
async fn event_about(received: &Received, name: &str, image_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = events(received).into_iter().find(|e| e["event"] == name && e["image"]["id"] == image_id);
        if let Some(event) = found {
            return event;
        }
        assert!(Instant::now() < deadline, "no {name} event for {image_id}: {:?}", events(received));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The WEBHOOK_DELIVERY jobs, through the admin API.
async fn deliveries(app: &TestApp) -> Vec<pictor_client::models::JobSummary> {
    app.jobs("type=WEBHOOK_DELIVERY&limit=100").await.jobs
}

both_backends! {
    async fn a_receiver_gets_stored_failed_and_deleted_events_signed(backend) {
        let (url, received) = receiver().await;
        let configure = |c: &mut pictor::config::Config| {
            c.webhook_url = Some(url);
            c.webhook_secret = Some(pictor::config::Secret::new(SECRET));
        };
        let Some(app) = spawn_app_on(backend, configure, Overrides::default(), true).await else { return };
        let stored = app.upload_ok("mpl-grace-hopper.jpg").await;
        let failed = app.upload_ok("bad-truncated-bridge.jpg").await;
        assert_eq!(app.wait_terminal(&stored, Duration::from_secs(60)).await.status, ImageStatus::Stored);
        assert_eq!(app.wait_terminal(&failed, Duration::from_secs(60)).await.status, ImageStatus::Failed);

        let event = event_about(&received, "image.stored", &stored).await;
        assert_eq!(event["image"]["status"], "STORED");
        assert_eq!(event["image"]["isStored"], true);
        // The image as the card shows it: its three jobs, each COMPLETED (the
        // last one's completion is the event's own transaction).
        let jobs = event["image"]["processingJobs"].as_array().expect("processingJobs");
        let mut kinds: Vec<&str> = jobs.iter().map(|j| j["type"].as_str().unwrap_or_default()).collect();
        kinds.sort_unstable();
        assert_eq!(kinds, ["OFFLOAD_ORIGINAL", "PREVIEW_GENERATION", "THUMBNAIL_GENERATION"], "{event}");
        assert!(jobs.iter().all(|j| j["status"] == "COMPLETED"), "{event}");
        assert!(event["image"]["thumbnails"]["256"].as_str().is_some_and(|u| u.starts_with("/assets/")), "{event}");
        let timestamp = event["timestamp"].as_str().unwrap();
        assert!(time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339).is_ok(), "{timestamp}");
        let event = event_about(&received, "image.failed", &failed).await;
        assert_eq!(event["image"]["status"], "FAILED");
        assert!(event["image"]["error"].as_str().is_some_and(|e| e.contains("failed")), "{event}");

        let deleted = app.client.delete(app.url(&format!("/api/images/{stored}"))).send().await.unwrap();
        assert_eq!(deleted.status(), 204);
        let event = event_about(&received, "image.deleted", &stored).await;
        assert_eq!(event["image"]["title"], "mpl-grace-hopper");

        // One event per change: the failed image's two failed jobs make one image.failed.
        // Once no job is left to run, every event has been delivered.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !(app.jobs("status=PENDING").await.jobs.is_empty() && app.jobs("status=RUNNING").await.jobs.is_empty()) {
            assert!(Instant::now() < deadline, "jobs still waiting: {:?}", app.jobs("").await.jobs);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let all = events(&received);
        assert_eq!(all.len(), 3, "{all:#?}");
        // Deliveries are jobs of the queue, visible to operators, and none of an image's own jobs.
        let jobs = deliveries(&app).await;
        assert_eq!(jobs.len(), 3);
        assert!(jobs.iter().all(|j| j.status == JobStatus::Completed && j.image_id.is_none()), "{jobs:?}");
        let image = app.image(&failed).await;
        assert!(image.processing_jobs.iter().all(|j| j.kind != JobKind::WebhookDelivery));
        let page = app.client.get(app.url("/admin/jobs?type=WEBHOOK_DELIVERY")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let page = page.text().await.unwrap();
        for job in &jobs {
            assert!(page.contains(&format!("data-job-id=\"{}\" data-status=\"COMPLETED\"", job.id)), "job {} not listed", job.id);
        }
        app.stop().await;
    }
}

both_backends! {
    async fn a_dead_receiver_leaves_uploads_alone_and_its_deliveries_retry_then_fail(backend) {
        // A port nothing listens on: every delivery is refused.
        let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", dead.local_addr().unwrap());
        drop(dead);
        let configure = |c: &mut pictor::config::Config| {
            c.webhook_url = Some(url);
            c.max_attempts = 3;
        };
        let overrides =
            Overrides { retry: Some(RetryPolicy { base_delay_ms: 100, max_delay_ms: 200, jitter: 0.0 }), ..Default::default() };
        let Some(app) = spawn_app_on(backend, configure, overrides, true).await else { return };
        let ids = [app.upload_ok("mpl-grace-hopper.jpg").await, app.upload_ok("sklearn-china.jpg").await];
        for id in &ids {
            let image = app.wait_terminal(id, Duration::from_secs(60)).await;
            assert_eq!(image.status, ImageStatus::Stored, "{image:?}");
            assert!(image.processing_jobs.iter().all(|j| j.status == JobStatus::Completed && j.attempts == 1));
        }

        let deadline = Instant::now() + Duration::from_secs(30);
        let jobs = loop {
            let jobs = deliveries(&app).await;
            if jobs.len() == 2 && jobs.iter().all(|j| j.status == JobStatus::Failed) {
                break jobs;
            }
            assert!(Instant::now() < deadline, "deliveries never failed: {jobs:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        for job in &jobs {
            assert_eq!((job.attempts, job.max_attempts), (3, 3), "{job:?}");
            let error = job.last_error.as_deref().unwrap_or_default();
            assert!(error.contains("cannot deliver the webhook"), "{error}");
        }
        for id in &ids {
            assert_eq!(app.image(id).await.status, ImageStatus::Stored);
        }
        app.stop().await;
    }
}
