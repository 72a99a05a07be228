//! Pictor: a self-hostable image ingestion and processing service.
//!
//! ```text
//! POST /api/upload ─▶ images ─▶ ingest (stream to tmp/, SHA-256, size limit, magic bytes,
//!   │                          header + pixel limit) ─▶ one transaction: image (INGESTED)
//!   │                          + OFFLOAD_ORIGINAL
//! queue runner ─▶ claims a batch with a lease, runs handlers on a bounded pool
//!   ├─ OFFLOAD_ORIGINAL      tmp → originals/<checksum>; image PROCESSING; enqueues ↓
//!   ├─ THUMBNAIL_GENERATION  one decode → 512/256/128/64 JPEGs
//!   └─ PREVIEW_GENERATION    one decode → progressive web preview
//!   the job completing the last asset sets the image STORED in its transaction
//! ```
//!
//! Layers, each importing only from those below it:
//! - surfaces: [`http`] (the JSON API), [`web`] (the pages), [`cli`] (the
//!   client commands), sharing [`api_error`]; [`app`] wires everything and
//!   [`command`] is the command line;
//! - the domain: [`images`] (accept, find, list, edit, delete, operators'
//!   job actions, what a job's ending means for its image, change events);
//! - [`handlers`]: one per job kind, bytes in, effects out;
//! - [`sandbox`]: image work (→ `pictor-imaging`) in limited child processes;
//! - [`queue`] (jobs, not images), [`ingest`], [`storage`], [`db`];
//! - [`config`], [`clock`], [`shutdown`], [`telemetry`] (the metrics recorder),
//!   [`sessions`] (the admin token and the browser sessions it signs).

pub mod api_error;
pub mod app;
pub mod cli;
pub mod clock;
pub mod command;
pub mod config;
pub mod db;
pub mod handlers;
pub mod http;
pub mod images;
pub mod ingest;
pub mod queue;
pub mod sandbox;
pub mod server;
pub mod sessions;
pub mod shutdown;
pub mod storage;
pub mod telemetry;
pub mod web;
