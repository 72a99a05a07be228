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
    /// Remove originals and assets no image references and old temp objects
    /// from the storage (local folder or bucket); list them with --dry-run.
    Gc(GcArgs),
    /// Storage operations: `pictor storage migrate --to URL`.
    #[command(subcommand)]
    Storage(StorageCommand),
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
    /// How log lines are written.
    #[command(flatten)]
    pub log: LogArgs,
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
    /// How log lines are written.
    #[command(flatten)]
    pub log: LogArgs,
    /// Everything else.
    #[command(flatten)]
    pub config: Config,
}

/// `pictor gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// List what would be removed and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How log lines are written.
    #[command(flatten)]
    pub log: LogArgs,
    /// The database and storage to clean (and every other setting).
    #[command(flatten)]
    pub config: Config,
}

/// `pictor storage …`.
#[derive(Debug, clap::Subcommand)]
pub enum StorageCommand {
    /// Copy every original and asset of the configured storage to another
    /// (verified by SHA-256; re-running copies only what is missing).
    Migrate(StorageMigrateArgs),
}

/// `pictor storage migrate`.
#[derive(Debug, Args)]
pub struct StorageMigrateArgs {
    /// Destination: `s3://bucket/prefix` (with the AWS_* settings) or a folder.
    #[arg(long)]
    pub to: String,
    /// How log lines are written.
    #[command(flatten)]
    pub log: LogArgs,
    /// The source storage (STORAGE_URL or STORAGE_DIR) and every other setting.
    #[command(flatten)]
    pub config: Config,
}

/// `pictor migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Database to migrate.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// How log lines are written.
    #[command(flatten)]
    pub log: LogArgs,
}

impl Command {
    /// The log settings of a service command; `None` for client commands,
    /// which print rather than log.
    pub fn log(&self) -> Option<&LogArgs> {
        match self {
            Self::Serve(args) => Some(&args.log),
            Self::Worker(args) => Some(&args.log),
            Self::Migrate(args) => Some(&args.log),
            Self::Gc(args) => Some(&args.log),
            Self::Storage(StorageCommand::Migrate(args)) => Some(&args.log),
            _ => None,
        }
    }
}

/// How the service commands write their logs (to stderr, one line per event).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines, with spans' fields before the message.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, the event's
    /// fields (`message` among them), and `spans` (outermost first) with their
    /// fields, such as a job's `job_id`, `job_type` and `image_id` or a
    /// request's `request_id`.
    Json,
}

/// The log settings of the service commands.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log line format: `text` or `json`.
    #[arg(long = "log-format", env = "PICTOR_LOG_FORMAT", default_value = "text", value_parser = parse_log_format)]
    pub format: LogFormat,
}

/// Parses `text` or `json`; the error names the variable, since a bad value
/// most often comes from the environment.
fn parse_log_format(value: &str) -> Result<LogFormat, String> {
    match value {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("PICTOR_LOG_FORMAT (or --log-format) must be `text` or `json`".to_owned()),
    }
}
