//! `GET /api/events`: a Server-Sent Events stream of image and job changes.
//! One poller per process reads the rows changed lately, so changes made by
//! any process (`pictor worker`s included) show; it runs only while a client
//! listens, and a mutation through this API makes it look at once.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures_util::Stream;
use pictor_client::models::{Image, JobSummary};
use serde::Serialize;
use tokio::sync::{Notify, broadcast, watch};

use super::AppState;
use super::error::ApiResult;
use super::{images, present};
use crate::db;

/// How often the poller looks for changed rows while a client listens.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How far back each poll looks: covers transactions that commit a while
/// after the `updated_at` they wrote, and clocks of other processes.
const LOOKBACK_MS: i64 = 10_000;
/// Changes a slow client may fall behind by before it is told it lagged.
const CHANNEL_CAPACITY: usize = 1_024;

/// One change, as sent to every listener.
#[derive(Debug, Clone)]
pub enum Change {
    /// An image's state or details changed (`event: image`).
    Image(Arc<Image>),
    /// An image was deleted (`event: image-deleted`).
    ImageDeleted(String),
    /// A job's state or attempts changed (`event: job`).
    Job(Arc<JobSummary>),
}

/// Body of an `image-deleted` event.
#[derive(Debug, Serialize)]
struct Deleted<'a> {
    id: &'a str,
}

impl Change {
    /// The SSE event: its name and JSON data.
    fn to_event(&self) -> Event {
        let event = match self {
            Self::Image(image) => Event::default().event("image").json_data(image.as_ref()),
            Self::ImageDeleted(id) => Event::default().event("image-deleted").json_data(Deleted { id }),
            Self::Job(job) => Event::default().event("job").json_data(job.as_ref()),
        };
        event.unwrap_or_else(|e| Event::default().event("error").data(e.to_string()))
    }
}

/// The hub: a broadcast channel, the poller's switch, and the stop signal
/// that ends open streams at shutdown (graceful shutdown waits for them).
#[derive(Debug, Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: broadcast::Sender<Change>,
    /// Asks the poller to look now rather than at its next tick.
    nudge: Notify,
    /// True while a poller task runs.
    polling: AtomicBool,
    /// Becomes true at shutdown.
    closed: watch::Sender<bool>,
    interval: Duration,
}

impl Default for Events {
    fn default() -> Self {
        Self::new(POLL_INTERVAL)
    }
}

impl Events {
    /// A hub whose poller looks every `interval` while someone listens.
    pub fn new(interval: Duration) -> Self {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        let (closed, _) = watch::channel(false);
        Self { inner: Arc::new(Inner { tx, nudge: Notify::new(), polling: AtomicBool::new(false), closed, interval }) }
    }

    /// Sends a change to every listener (none listening is fine).
    pub fn publish(&self, change: Change) {
        let _ = self.inner.tx.send(change);
    }

    /// Makes the poller look now: something changed in this process.
    pub fn nudge(&self) {
        self.inner.nudge.notify_one();
    }

    /// Ends every open stream; called at shutdown.
    pub fn close(&self) {
        let _ = self.inner.closed.send(true);
    }

    /// Listens, starting the poller when it is not running.
    fn subscribe(&self, state: &AppState) -> broadcast::Receiver<Change> {
        let rx = self.inner.tx.subscribe();
        if !self.inner.polling.swap(true, Ordering::SeqCst) {
            tokio::spawn(poll_loop(state.clone()));
        }
        rx
    }
}

/// The events route.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/events", get(stream))
}

async fn stream(State(state): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = state.events.subscribe(&state);
    let closed = state.events.inner.closed.subscribe();
    let events = futures_util::stream::unfold((rx, closed), |(mut rx, mut closed)| async move {
        let next = tokio::select! {
            _ = closed.wait_for(|c| *c) => None,
            message = rx.recv() => match message {
                Ok(change) => Some(change.to_event()),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    Some(Event::default().event("lagged").data(missed.to_string()))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            },
        };
        next.map(|event| (Ok(event), (rx, closed)))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// After a successful mutation through the API, nudges the poller; a
/// deleted image is announced here, as no row is left to poll.
pub async fn after_mutation(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mutation = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let deleted = (*request.method() == Method::DELETE)
        .then(|| request.uri().path().strip_prefix("/api/images/").map(str::to_owned))
        .flatten();
    let response = next.run(request).await;
    if mutation && response.status().is_success() {
        if let Some(id) = deleted.filter(|_| response.status() == StatusCode::NO_CONTENT) {
            state.events.publish(Change::ImageDeleted(id));
        }
        state.events.nudge();
    }
    response
}

/// What was last sent per row, to send only real changes.
#[derive(Debug, Default)]
struct Seen {
    /// Image id → (updated_at, status).
    images: HashMap<String, (i64, String)>,
    /// Job id → (updated_at, status, attempts); a heartbeat moves only updated_at.
    jobs: HashMap<i64, (i64, String, i64)>,
}

async fn poll_loop(state: AppState) {
    let inner = state.events.inner.clone();
    let mut seen = Seen::default();
    let mut closed = inner.closed.subscribe();
    loop {
        if inner.tx.receiver_count() == 0 {
            inner.polling.store(false, Ordering::SeqCst);
            // A client may have subscribed between the count and the store:
            // then whoever sets the flag first keeps polling.
            if inner.tx.receiver_count() == 0 || inner.polling.swap(true, Ordering::SeqCst) {
                return;
            }
        }
        if let Err(e) = poll_once(&state, &mut seen).await {
            tracing::warn!(error = %e, "events: polling for changes failed");
        }
        tokio::select! {
            () = tokio::time::sleep(inner.interval) => {}
            () = inner.nudge.notified() => {}
            _ = closed.wait_for(|c| *c) => return,
        }
    }
}

/// Publishes the images and jobs changed since the last look.
async fn poll_once(state: &AppState, seen: &mut Seen) -> ApiResult<()> {
    let since = state.queue.clock.now_ms() - LOOKBACK_MS;
    let pool = &state.db.pool;
    let mut changed = Vec::new();
    for (id, status, updated) in db::images::changed_since(pool, since).await? {
        if seen.images.get(&id) != Some(&(updated, status.clone())) {
            seen.images.insert(id.clone(), (updated, status));
            changed.push(id);
        }
    }
    seen.images.retain(|_, (updated, _)| *updated > since);
    for id in changed {
        match images::find(state, &id).await {
            Ok(image) => state.events.publish(Change::Image(Arc::new(image))),
            Err(super::error::ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }

    let mut changed = Vec::new();
    for (id, status, attempts, updated) in db::jobs::changed_since(pool, since).await? {
        let before = seen.jobs.insert(id, (updated, status.clone(), attempts));
        if before.is_none_or(|(_, s, a)| s != status || a != attempts) {
            changed.push(id);
        }
    }
    seen.jobs.retain(|_, (updated, _, _)| *updated > since);
    for id in changed {
        if let Some(job) = db::jobs::get(pool, id).await? {
            // Remember what was sent, which may be newer than what the scan saw.
            seen.jobs.insert(id, (job.updated_at, job.status.as_str().to_owned(), job.attempts));
            state.events.publish(Change::Job(Arc::new(present::job_summary(&job))));
        }
    }
    Ok(())
}
