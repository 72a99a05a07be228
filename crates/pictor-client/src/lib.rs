//! Pictor's client side: the JSON types of the HTTP API ([`models`], shared
//! with the server so that both ends serialise exactly the same shapes) and
//! a typed async HTTP [`Client`] used by the CLI, the tests and Rust programs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pictor_client::Error> {
//! use std::time::Duration;
//! use pictor_client::{Client, UploadOptions};
//!
//! let client = Client::new("http://127.0.0.1:3000")?;
//! let uploaded = client
//!     .upload_image("photo.jpg".as_ref(), &UploadOptions::default(), |p| {
//!         eprintln!("{}/{} bytes", p.sent, p.total);
//!     })
//!     .await?;
//! let image = client.wait_until_stored(&uploaded.image_id, Duration::from_secs(60)).await?;
//! println!("{:?}", client.thumbnail_url(&image, 256));
//! # Ok(()) }
//! ```

mod client;
mod error;
pub mod models;
mod query;
mod status;
mod upload;
mod watch;

pub use client::{Client, DEFAULT_POLL_INTERVAL, DEFAULT_SERVER};
pub use error::Error;
pub use query::{ImageQuery, JobQuery};
pub use status::{is_image_ready, is_settled, status_label};
pub use upload::{Progress, UploadOptions};
pub use watch::StatusSource;
