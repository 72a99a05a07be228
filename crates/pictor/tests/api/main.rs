//! Pictor's integration tests: one binary, one module per feature.
//!
//! - `helpers`: `spawn_app()` (the same start-up `main` uses, on 127.0.0.1:0,
//!   with a fresh SQLite file and storage folder per test), test data, JPEG
//!   inspection.
//! - `pipeline`: every shared photo uploaded → STORED, assets checked.
//! - `bad_input`: the manifest's bad files, refused or FAILED, server alive.
//! - `images`: list, filters, edit, delete.
//! - `admin`: job list, detail, retry, cancel.
//! - `queue`: claim, lease, rescue, backoff, retries, kill test; hand-turned clock.

mod admin;
mod bad_input;
mod helpers;
mod images;
mod pipeline;
mod queue;
