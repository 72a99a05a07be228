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
//! - `sandbox`: image work in child processes: a segfault, a hang, a memory
//!   blow-up and a socket in a decoder (test hooks) fail their image only.
//! - `queue_deadline`: jobs that never return: the deadline, the CPU pool's
//!   replaced threads, attempts kept across restarts.
//! - `queue_batch`: batch completion (lease-checked per job), bulk enqueue, a
//!   runner draining effect-free jobs through the batch completer.
//! - `service`: the `pictor` binary itself (migrate, serve, SIGTERM) and the admin token.
//! - `login`: browser sessions opened with the admin token; `PICTOR_PUBLIC_READ=false`.
//! - `client`: `pictor_client::Client`, every call against a spawned server.
//! - `cli`: the client subcommands of `pictor` as processes (exit codes, output).
//! - `scale_out`: one API and several worker processes on PostgreSQL; a worker killed mid-run.
//! - `processes`: starting `pictor` processes for those tests.
//! - `data_safety`: deletes racing offloads and asset jobs (paused on a gate); nothing left behind.
//! - `full_disk`: a real full disk (a tmpfs mounted as root): 507s, jobs
//!   waiting for space without spending attempts, STORED once space returns.
//! - `s3`: object storage against moto's S3 server (`moto`): the pipeline,
//!   delete safety, two workers sharing only PostgreSQL and the bucket, a
//!   bucket that stops answering.
//! - `gc`: `pictor gc` on the folder and on a bucket (planted orphans), and
//!   the retention of finished jobs.
//! - `storage_migrate`: `pictor storage migrate` folder → bucket (interrupted,
//!   resumed) → folder, verified.
//! - `scale`: the kept job and image counts against `COUNT(*)` through every
//!   kind of write; keyset and deep-offset pages against the list's order.
//! - `reprocess`: `POST /api/admin/reprocess` and `pictor reprocess`: new sizes
//!   for every image, old assets served meanwhile, only outdated images, dry run,
//!   priority below new uploads, the admin token.
//! - `events`: `GET /api/events`, the Server-Sent Events stream.
//! - `metrics`: `GET /metrics` on `serve` and on `pictor worker --metrics-bind`.
//! - `health`: `/healthz` (liveness) and `/readyz` (database, storage, schema).
//! - `logs`: JSON logs from the binary (request ids, job spans), `X-Request-Id`, a bad log format.
//! - `openapi`: `GET /api/openapi.json` against real answers of every operation (jsonschema).
//! - `cors`: `PICTOR_CORS_ORIGINS`: preflight and response headers for a listed origin, none for another.
//! - `webhooks`: `PICTOR_WEBHOOK_URL`: signed events to a receiver in the test; a dead receiver's deliveries.
//! - `web`: the pages over HTTP, CSP, foreign-origin refusal, the JS client's `node --test`.
//! - `browser`: the pages end to end in headless Chromium, with screenshots.

// Tests and benchmarks may unwrap: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// Runs one test body on both databases, as ripgrep's `rgtest!` reruns
/// tests per feature: `name::sqlite` and `name::postgres`. The body gets the
/// [`helpers::Backend`]; on a machine without PostgreSQL the second half
/// skips with a notice (never on CI).
macro_rules! both_backends {
    ($(#[$meta:meta])* async fn $name:ident($backend:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($backend: crate::helpers::Backend) $body

            #[tokio::test]
            async fn sqlite() {
                body(crate::helpers::Backend::Sqlite).await;
            }

            #[tokio::test]
            async fn postgres() {
                body(crate::helpers::Backend::Postgres).await;
            }
        }
    };
}

mod admin;
mod bad_input;
mod browser;
mod cli;
mod client;
mod cors;
mod data_safety;
mod events;
mod full_disk;
mod gc;
mod health;
mod helpers;
mod images;
mod login;
mod logs;
mod metrics;
mod moto;
mod openapi;
mod pipeline;
mod processes;
mod queue;
mod queue_batch;
mod queue_deadline;
mod reprocess;
mod s3;
mod sandbox;
mod scale;
mod scale_out;
mod service;
#[path = "../support/skip.rs"]
mod skip;
mod slow_clients;
mod storage_migrate;
mod web;
mod webhooks;
