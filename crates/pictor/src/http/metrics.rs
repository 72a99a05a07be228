//! `GET /metrics` (Prometheus text) and the middleware that counts and
//! times every request by its matched route. Scrape-time gauges (jobs,
//! images, the oldest pending job, the CPU pool) are read as the scrape
//! arrives. With an admin token set, `/metrics` needs it (see [`super::auth`]).

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::api_error::ApiError;
use crate::handlers::HandlerContext;
use crate::images::Images;
use crate::telemetry::{CPU_POOL_BUSY, HTTP_DURATION, HTTP_REQUESTS, IMAGES, JOBS, OLDEST_PENDING_AGE, Telemetry};

/// What a scrape reads.
#[derive(Debug, Clone)]
pub struct MetricsState {
    /// The domain (its database counts and the process's recorder).
    pub images: Images,
    /// The handlers' image work (sandbox children or CPU threads), for its busy share.
    pub image_work: Arc<HandlerContext>,
}

/// `GET /metrics`.
pub fn router(state: MetricsState) -> Router {
    Router::new().route("/metrics", get(scrape)).with_state(state)
}

/// Refreshes the scrape-time gauges, then renders everything.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)))]
async fn scrape(State(state): State<MetricsState>) -> Result<Response, ApiError> {
    let gauges = state.images.gauges().await?;
    let telemetry = state.images.telemetry();
    telemetry.record(|| {
        for (kind, status, n) in &gauges.jobs {
            #[allow(clippy::cast_precision_loss)] // Counts are far below 2^52.
            metrics::gauge!(JOBS, "type" => *kind, "status" => *status).set(*n as f64);
        }
        for (status, n) in &gauges.images {
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!(IMAGES, "status" => *status).set(*n as f64);
        }
        metrics::gauge!(OLDEST_PENDING_AGE).set(gauges.oldest_pending_wait.as_secs_f64());
        metrics::gauge!(CPU_POOL_BUSY).set(state.image_work.busy_share());
    });
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], telemetry.render()).into_response())
}

/// Counts and times a request by method, matched route template (never the
/// raw path, whose ids would make a series per image) and status.
pub async fn track(State(telemetry): State<Telemetry>, request: Request, next: Next) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    telemetry.record(|| {
        let labels = [("method", method), ("route", route), ("status", status)];
        metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
        metrics::histogram!(HTTP_DURATION, &labels).record(started.elapsed().as_secs_f64());
    });
    response
}
