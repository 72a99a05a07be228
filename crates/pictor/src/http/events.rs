//! `GET /api/events`: the images layer's change events as a Server-Sent
//! Events stream (`event: image`, `event: job`, `event: image-deleted`,
//! and `event: lagged` for a client that fell behind). Streams end at
//! shutdown, so that the graceful shutdown does not wait for them.

use std::convert::Infallible;

use axum::Extension;
use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::broadcast;

use super::ApiState;
use super::auth::Access;
use crate::images::events::{Change, Subscription};

/// The events route.
pub fn router() -> Router<ApiState> {
    Router::new().route("/api/events", get(stream))
}

/// Body of an `image-deleted` event.
#[derive(Debug, Serialize)]
struct Deleted<'a> {
    id: &'a str,
}

/// A change as an SSE event: its name and JSON data.
fn to_event(change: &Change) -> Event {
    let event = match change {
        Change::Image(image) => Event::default().event("image").json_data(image.as_ref()),
        Change::ImageDeleted(id) => Event::default().event("image-deleted").json_data(Deleted { id }),
        Change::Job(job) => Event::default().event("job").json_data(job.as_ref()),
    };
    event.unwrap_or_else(|e| Event::default().event("error").data(e.to_string()))
}

/// Server-Sent Events: `image` (an Image), `job` (a job as the admin list shows it), `image-deleted` (`{"id"}`).
#[utoipa::path(get, path = "/api/events", operation_id = "events", tag = "images",
    responses((status = 200, description = "an endless event stream", content_type = "text/event-stream", body = String)))]
/// The stream; without the admin token (once one is set) job events are
/// left out.
async fn stream(
    State(state): State<ApiState>,
    access: Option<Extension<Access>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let with_jobs = access.is_none_or(|Extension(access)| access == Access::Full);
    let Subscription { changes, closed } = state.images.events().subscribe();
    let events = futures_util::stream::unfold((changes, closed), move |(mut changes, mut closed)| async move {
        let next = loop {
            let message = tokio::select! {
                _ = closed.wait_for(|c| *c) => break None,
                message = changes.recv() => message,
            };
            break match message {
                Ok(change) if matches!(change, Change::Job(_)) && !with_jobs => continue,
                Ok(change) => Some(to_event(&change)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    Some(Event::default().event("lagged").data(missed.to_string()))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            };
        };
        next.map(|event| (Ok(event), (changes, closed)))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
