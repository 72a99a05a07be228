//! `GET /api/events`: image and job changes arrive as Server-Sent Events,
//! from this process's API and from the runner alike.

use std::time::{Duration, Instant};

use pictor::app::Overrides;
use pictor::config::Secret;
use pictor_client::models::{Image, ImageStatus, JobStatus, JobSummary};

use crate::helpers::{TestApp, spawn_app_on};

/// One parsed SSE event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// `event:` name.
    pub name: String,
    /// `data:` text.
    pub data: String,
}

/// An open event stream, read chunk by chunk.
pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    /// Connects to `/api/events`, asserting the SSE content type.
    pub async fn connect(app: &TestApp) -> Self {
        Self::connect_as(app, None).await
    }

    /// Connects with the admin token, or without any.
    pub async fn connect_as(app: &TestApp, token: Option<&str>) -> Self {
        let mut request = app.client.get(app.url("/api/events"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("events request");
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().expect("content type").to_owned();
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        Self { response, buffer: String::new() }
    }

    /// The next event, or `None` when the stream ended or `deadline` passed.
    pub async fn next(&mut self, deadline: Instant) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent { name: "message".into(), data: String::new() };
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event.name = name.trim().to_owned();
                    } else if let Some(data) = line.strip_prefix("data:") {
                        event.data.push_str(data.trim_start());
                    }
                }
                if event.data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some(event);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// Whether the server closes the stream before `deadline`; events and
    /// keep-alives still arriving are skipped. A stream still open at the
    /// deadline is `false`, so "ended" is never confused with "quiet".
    pub async fn closes_before(&mut self, deadline: Instant) -> bool {
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { return false };
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None) | Err(_)) => return true,
                Err(_elapsed) => return false,
            }
        }
    }
}

/// The position of a status in the life cycle (FAILED last).
fn stage(status: ImageStatus) -> usize {
    ImageStatus::ALL.iter().position(|s| *s == status).unwrap_or(usize::MAX)
}

both_backends! {
    async fn an_upload_streams_its_image_stages_in_order_up_to_stored_and_its_jobs(backend) {
        // Arrange
        let Some(app) = spawn_app_on(backend, |_| {}, Overrides::default(), true).await else { return };
        let mut events = EventStream::connect(&app).await;

        // Act
        let id = app.upload_ok("mpl-grace-hopper.jpg").await;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut statuses = Vec::new();
        // A job may be announced COMPLETED more than once; count kinds.
        let mut completed_jobs = std::collections::BTreeSet::new();
        while let Some(event) = events.next(deadline).await {
            match event.name.as_str() {
                "image" => {
                    let image: Image = serde_json::from_str(&event.data).expect("image json");
                    if image.id == id && statuses.last() != Some(&image.status) {
                        statuses.push(image.status);
                    }
                }
                "job" => {
                    let job: JobSummary = serde_json::from_str(&event.data).expect("job json");
                    if job.image_id.as_deref() == Some(id.as_str()) && job.status == JobStatus::Completed {
                        completed_jobs.insert(job.kind.as_str());
                    }
                }
                _ => {}
            }
            if statuses.last() == Some(&ImageStatus::Stored) && completed_jobs.len() == 3 {
                break;
            }
        }

        // Assert
        assert_eq!(statuses.last(), Some(&ImageStatus::Stored), "statuses seen: {statuses:?}");
        assert!(statuses.windows(2).all(|w| stage(w[0]) < stage(w[1])), "out of order: {statuses:?}");
        assert_eq!(completed_jobs.len(), 3, "completed jobs seen: {completed_jobs:?}");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_deleted_image_is_announced_and_open_streams_end_at_shutdown() {
    // Arrange
    let app = crate::helpers::spawn_app().await;
    let id = app.upload_ok("mpl-grace-hopper.jpg").await;
    app.wait_terminal(&id, Duration::from_secs(60)).await;
    let mut events = EventStream::connect(&app).await;

    // Act
    let response = app.client.delete(app.url(&format!("/api/images/{id}"))).send().await.expect("delete");
    assert_eq!(response.status(), 204);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut deleted = false;
    while let Some(event) = events.next(deadline).await {
        if event.name == "image-deleted" && event.data.contains(&id) {
            deleted = true;
            break;
        }
    }

    // Assert
    assert!(deleted, "no image-deleted event for {id}");
    let stopped = tokio::time::timeout(Duration::from_secs(10), app.stop()).await;
    assert!(stopped.is_ok(), "shutdown waited on the open event stream");
    assert!(events.closes_before(Instant::now() + Duration::from_secs(5)).await, "the stream was closed at shutdown");
}

/// Names of the events that arrive until the image is STORED (or 60 s).
async fn event_names_until_stored(events: &mut EventStream, id: &str) -> std::collections::BTreeSet<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut names = std::collections::BTreeSet::new();
    while let Some(event) = events.next(deadline).await {
        names.insert(event.name.clone());
        if event.name == "image" && event.data.contains(id) && event.data.contains("\"STORED\"") {
            break;
        }
    }
    names
}

#[tokio::test]
async fn with_an_admin_token_only_its_holders_receive_job_events() {
    // Arrange
    let token = "s3cret-token";
    let app =
        crate::helpers::spawn_app_with(|c| c.admin_token = Some(Secret::new(token)), Overrides::default(), true).await;
    let mut public = EventStream::connect_as(&app, None).await;
    let mut admin = EventStream::connect_as(&app, Some(token)).await;

    // Act
    let bytes = std::fs::read(crate::helpers::testdata("mpl-grace-hopper.jpg")).expect("image");
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name("a.jpg"));
    let response =
        app.client.post(app.url("/api/upload")).bearer_auth(token).multipart(form).send().await.expect("upload");
    assert_eq!(response.status(), 201);
    let id = response.json::<serde_json::Value>().await.expect("json")["imageId"].as_str().expect("id").to_owned();
    let public_names = event_names_until_stored(&mut public, &id).await;
    let admin_names = event_names_until_stored(&mut admin, &id).await;

    // Assert
    assert!(public_names.contains("image"), "image events are public: {public_names:?}");
    assert!(!public_names.contains("job"), "job events need the token: {public_names:?}");
    assert!(admin_names.contains("job"), "the token holder sees jobs: {admin_names:?}");
    app.stop().await;
}
