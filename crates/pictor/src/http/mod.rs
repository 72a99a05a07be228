//! The HTTP API: one `router()` per resource, merged here over an
//! [`ApiState`]. Handlers parse, call the images layer and present JSON;
//! the only error type they return is [`ApiError`](crate::api_error::ApiError).

mod admin;
mod assets;
pub mod auth;
mod events;
pub mod hosts;
mod images;
mod upload;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::images::Images;

/// What the API's handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The domain.
    pub images: Images,
    /// Public base URL for absolute links (the upload's `Location`).
    pub api_base: String,
}

/// The whole API.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .merge(upload::router(&state))
        .merge(images::router())
        .merge(admin::router())
        .merge(assets::router())
        .merge(events::router())
        .route("/healthz", get(healthz))
        .with_state(state)
}

/// 200 when the database and the storage answer, else 503.
async fn healthz(State(state): State<ApiState>) -> (StatusCode, &'static str) {
    match state.images.check_health().await {
        Ok(()) => (StatusCode::OK, "ok\n"),
        Err(e) => {
            tracing::error!(error = ?e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database or storage unavailable\n")
        }
    }
}
