//! Pictor's client side: the JSON types of the HTTP API, shared with the
//! server so that both ends serialise exactly the same shapes.

pub mod models;
