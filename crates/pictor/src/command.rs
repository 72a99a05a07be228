//! The `pictor` command line: the service commands (`serve`, `worker`,
//! `migrate`), which `main` runs, and the client commands, which [`crate::cli`]
//! runs. The service's settings themselves are [`Config`].

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, DEFAULT_DATABASE_URL};

/// Default address: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1:3000";

/// Pictor: image ingestion and processing.
#[derive(Debug, Parser)]
#[command(name = "pictor", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API and the job runner in one process.
    Serve(ServeArgs),
    /// Run the job runner alone (HTTP only for its metrics, with `--metrics-bind`).
    Worker(WorkerArgs),
    /// Apply the embedded database migrations and print the schema version.
    Migrate(MigrateArgs),
    /// Upload files and folders of images, with progress bars and a summary.
    Upload(crate::cli::upload::UploadArgs),
    /// List images, newest first.
    Images(crate::cli::images::ImagesArgs),
    /// Show one image with its assets and jobs.
    Image(crate::cli::image::ImageArgs),
    /// List queued, running and finished jobs.
    Jobs(crate::cli::jobs::JobsArgs),
    /// Show one job: payload, lease and retry state.
    Job(crate::cli::job::JobArgs),
    /// Re-queue a failed or cancelled job, or every failed job.
    Retry(crate::cli::retry::RetryArgs),
    /// Cancel a pending job.
    Cancel(crate::cli::cancel::CancelArgs),
    /// Delete an image, its assets and its idle jobs.
    Delete(crate::cli::delete::DeleteArgs),
    /// Change an image's title or collection.
    Edit(crate::cli::edit::EditArgs),
    /// Follow an image until it is stored or failed, or the queue without an ID.
    Watch(crate::cli::watch::WatchArgs),
    /// Check the local configuration and say how to fix what is wrong.
    Doctor(crate::cli::doctor::DoctorArgs),
}

/// `pictor serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PICTOR_BIND", default_value = DEFAULT_BIND)]
    pub bind: SocketAddr,
    /// Run the API without a job runner (run `pictor worker` elsewhere).
    #[arg(long)]
    pub no_runner: bool,
    /// Everything else.
    #[command(flatten)]
    pub config: Config,
}

/// `pictor worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Address of the worker's own HTTP listener for `/metrics`, `/healthz`
    /// and `/readyz` (none by default; `/metrics` needs the admin token once set).
    #[arg(long, env = "PICTOR_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,
    /// Everything else.
    #[command(flatten)]
    pub config: Config,
}

/// `pictor migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Database to migrate.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
}
