//! Start-up: resolves a [`Config`] once into runtime objects (database,
//! storage, queue, runner, HTTP state), and runs them until shutdown. `main`
//! and the tests start Pictor through the same functions.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, ConfigError};
use crate::db::{Db, DbError};
use crate::handlers::{AssetSettings, CpuPool, HandlerContext, Registry};
use crate::http::{self, AppState, UploadLimits};
use crate::queue::Queue;
use crate::queue::clock::{SharedClock, SystemClock};
use crate::queue::retry::RetryPolicy;
use crate::queue::runner::{Runner, RunnerSettings};
use crate::queue::wakeup::Wakeup;
use crate::storage::{LocalStorage, StorageError};

/// Why Pictor could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A setting is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The storage folder could not be created.
    #[error("cannot open the storage folder")]
    Storage(#[from] StorageError),
    /// The CPU pool's threads could not be started.
    #[error("cannot start the CPU pool's threads")]
    CpuPool(#[source] std::io::Error),
}

/// Replacements for tests: a hand-turned clock, other handlers, a faster
/// retry policy.
#[derive(Debug, Default)]
pub struct Overrides {
    /// Clock instead of the system clock.
    pub clock: Option<SharedClock>,
    /// Handlers instead of the standard three.
    pub registry: Option<Registry>,
    /// Retry policy instead of the default.
    pub retry: Option<RetryPolicy>,
}

/// A resolved, migrated Pictor, ready to serve or work.
#[derive(Debug, Clone)]
pub struct App {
    /// What the HTTP handlers share.
    pub state: AppState,
    /// The job runner.
    pub runner: Runner,
}

/// Builds Pictor from its configuration: opens and migrates the database,
/// opens the storage, and wires the queue and runner.
///
/// # Errors
/// Invalid settings, an unreachable database or an unwritable storage folder.
pub async fn build(config: &Config, api_base_default: &str) -> Result<App, StartupError> {
    build_with(config, api_base_default, Overrides::default()).await
}

/// [`build`] with test replacements.
///
/// # Errors
/// The configured preview encodings, JPEG first, each once.
fn preview_formats(configured: &[pictor_imaging::AssetFormat]) -> Vec<pictor_imaging::AssetFormat> {
    let mut formats = vec![pictor_imaging::AssetFormat::Jpeg];
    for format in configured {
        if !formats.contains(format) {
            formats.push(*format);
        }
    }
    formats
}

/// As [`build`].
pub async fn build_with(config: &Config, api_base_default: &str, overrides: Overrides) -> Result<App, StartupError> {
    config.validate()?;
    let db = Db::connect_with(&config.database_url, config.sqlite_synchronous).await?;
    let version = db.migrate().await?;
    tracing::info!(backend = ?db.backend, schema_version = version, "database ready");
    let local = LocalStorage::open(&config.storage_dir)?;
    let tmp_dir = local.tmp_dir();
    let storage: Arc<dyn crate::storage::Storage> = Arc::new(local);

    let clock = overrides.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let queue = Queue { db: db.clone(), clock, wakeup: Wakeup::default(), max_attempts: config.max_attempts.into() };
    let cpus = std::thread::available_parallelism().map_or(2, usize::from);
    let ctx = HandlerContext {
        storage: storage.clone(),
        tmp_dir: tmp_dir.clone(),
        cpu: Arc::new(CpuPool::new(cpus).map_err(StartupError::CpuPool)?),
        assets: Arc::new(AssetSettings {
            thumbnail_sizes: config.thumbnail_sizes.clone(),
            preview_max_edge: config.preview_max_edge,
            preview_formats: preview_formats(&config.preview_formats),
            render: pictor_imaging::RenderOptions {
                jpeg_quality: config.jpeg_quality,
                avif_quality: config.avif_quality,
                limits: pictor_imaging::Limits { max_pixels: config.max_pixels, ..pictor_imaging::Limits::default() },
                ..pictor_imaging::RenderOptions::default()
            },
        }),
        decodes: Arc::default(),
    };
    let settings = RunnerSettings {
        batch_size: config.runner_batch_size,
        concurrency: config.runner_concurrency.unwrap_or_else(crate::queue::runner::default_concurrency),
        poll_interval: Duration::from_millis(config.runner_poll_interval_ms),
        lock_timeout: Duration::from_secs(config.lock_timeout_secs),
        shutdown_timeout: Duration::from_secs(config.shutdown_timeout_secs),
        retry: overrides.retry.unwrap_or_default(),
        ..RunnerSettings::default()
    };
    let runner = Runner::new(queue.clone(), overrides.registry.unwrap_or_else(Registry::standard), ctx, settings);
    let state = AppState {
        db,
        storage,
        tmp_dir,
        queue,
        limits: UploadLimits { max_upload_bytes: config.max_upload_bytes, max_pixels: config.max_pixels },
        api_base: config.api_base.clone().unwrap_or_else(|| api_base_default.to_owned()),
        admin_token: config.admin_token.clone(),
        events: http::events::Events::default(),
    };
    Ok(App { state, runner })
}

/// Tells every part of a running Pictor to stop.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Resolves when a stop was asked for; clone one per task.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A connected trigger and signal.
pub fn shutdown_channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Asks everything to stop.
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Waits for the stop (also when the trigger is dropped).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// Serves HTTP on `listener` (and runs the job runner unless `with_runner`
/// is false) until `shutdown`; in-flight requests and jobs finish first.
///
/// # Errors
/// The listener failed, or the runner could not release its jobs.
pub async fn serve(listener: TcpListener, app: App, with_runner: bool, shutdown: Shutdown) -> anyhow::Result<()> {
    let router = http::router(app.state.clone());
    let events = app.state.events.clone();
    let stopping = shutdown.clone();
    // Open event streams never end on their own: close them, or the graceful shutdown waits forever.
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        stopping.wait().await;
        events.close();
    });
    if with_runner {
        let runner = app.runner.clone();
        let (served, worked) = tokio::join!(server, runner.run(shutdown.wait()));
        served?;
        worked?;
    } else {
        server.await?;
    }
    Ok(())
}

/// Runs the job runner alone until `shutdown`.
///
/// # Errors
/// The runner could not release its jobs at shutdown.
pub async fn work(app: App, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    app.runner.run(shutdown).await?;
    Ok(())
}
