//! Pictor: a self-hostable image ingestion and processing service.
//!
//! ```text
//! POST /api/upload ─▶ ingest ─▶ one transaction: image (INGESTED) + OFFLOAD_ORIGINAL
//!   (stream to tmp/, SHA-256, size limit, magic bytes, header + pixel limit)
//! runner ─▶ claims a batch with a lease, runs handlers on a bounded pool
//!   ├─ OFFLOAD_ORIGINAL      tmp → originals/<checksum>; image PROCESSING; enqueues ↓
//!   ├─ THUMBNAIL_GENERATION  one decode → 512/256/128/64 JPEGs
//!   └─ PREVIEW_GENERATION    one decode → progressive web preview
//!   the job completing the last asset sets the image STORED in its transaction
//! ```
//!
//! Modules follow the data: [`config`] → [`ingest`] → [`storage`] → [`db`]
//! → [`queue`] → [`handlers`] (→ `pictor-imaging`), with [`http`], [`web`]
//! (the pages) and [`app`] (start-up) on top; [`cli`] is the client side of
//! the binary.

pub mod app;
pub mod cli;
pub mod command;
pub mod config;
pub mod db;
pub mod handlers;
pub mod http;
pub mod ingest;
pub mod queue;
pub mod storage;
pub mod web;
