//! The HTTP API: one `router()` per resource, merged here over an
//! [`ApiState`]. Handlers parse, call the images layer and present JSON;
//! the only error type they return is [`ApiError`](crate::api_error::ApiError).

mod admin;
mod assets;
pub mod auth;
pub mod cors;
mod events;
mod extract;
pub mod health;
pub mod hosts;
mod images;
pub mod metrics;
pub mod openapi;
pub mod request_id;
mod upload;

use axum::Router;
use axum::extract::FromRef;

use crate::images::Images;

/// What the API's handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The domain.
    pub images: Images,
    /// Public base URL for absolute links (the upload's `Location`).
    pub api_base: String,
    /// Answer asset requests with a redirect to the bucket (`PICTOR_ASSET_REDIRECT`).
    pub asset_redirect: Option<crate::storage::AssetRedirect>,
}

impl FromRef<ApiState> for Images {
    fn from_ref(state: &ApiState) -> Self {
        state.images.clone()
    }
}

/// The whole API.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .merge(upload::router(&state))
        .merge(images::router())
        .merge(admin::router())
        .merge(assets::router())
        .merge(events::router())
        .merge(health::router())
        .merge(openapi::router())
        .with_state(state)
}
