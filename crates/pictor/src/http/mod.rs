//! The HTTP API: one `router()` per resource, merged here, over a shared
//! [`AppState`]. Handlers parse, call the layers below and present JSON; the
//! only error type they return is [`error::ApiError`].

mod admin;
mod assets;
mod auth;
pub mod error;
pub mod events;
pub(crate) mod images;
pub(crate) mod present;
mod upload;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tower_http::trace::TraceLayer;

use crate::db::Db;
use crate::queue::Queue;
use crate::storage::Storage;

/// Limits applied to uploads.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Largest upload, bytes.
    pub max_upload_bytes: u64,
    /// Largest image, pixels.
    pub max_pixels: u64,
}

/// What every request handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// Originals and assets.
    pub storage: Arc<dyn Storage>,
    /// Local folder uploads stream to.
    pub tmp_dir: PathBuf,
    /// The job queue (enqueue, retry, cancel).
    pub queue: Queue,
    /// Upload limits.
    pub limits: UploadLimits,
    /// Public base URL for absolute links.
    pub api_base: String,
    /// Token required for admin endpoints and mutations, once set.
    pub admin_token: Option<crate::config::Secret>,
    /// Image and job changes for `GET /api/events` and the web pages.
    pub events: events::Events,
}

/// The whole API, and the web UI.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(upload::router(&state))
        .merge(images::router())
        .merge(admin::router())
        .merge(assets::router())
        .merge(events::router())
        .merge(crate::web::router())
        .route("/healthz", get(healthz))
        .layer(axum::middleware::from_fn_with_state(state.clone(), events::after_mutation))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token))
        .layer(axum::middleware::from_fn(crate::web::guard::same_origin))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// 200 when the database and the storage answer, else 503.
async fn healthz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if let Err(e) = state.db.ping().await {
        tracing::error!(error = %e, "health check: database unreachable");
        return (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n");
    }
    if let Err(e) = state.storage.check_writable().await {
        tracing::error!(error = ?e, "health check: storage not writable");
        return (StatusCode::SERVICE_UNAVAILABLE, "storage not writable\n");
    }
    (StatusCode::OK, "ok\n")
}
