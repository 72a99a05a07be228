//! Start-up: resolves a [`Config`] once into runtime objects (database,
//! storage, queue, images layer, handlers, runner), serves them until
//! shutdown, and merges the surfaces' routers. `main` and the tests start
//! Pictor through the same functions.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use pictor_client::models::JobKind;
use tokio::net::TcpListener;

use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, ConfigError};
use crate::db::{Db, DbError};
use crate::handlers::{self, AssetSettings, CpuPool, HandlerContext, ImageEffect};
use crate::images::webhooks::Webhooks;
use crate::images::{DbOriginalLocks, Gc, ImageEffects, Images, TempSweeper, UploadLimits};
use crate::queue::handler::Registry;
use crate::queue::pruner::Retention;
use crate::queue::retry::RetryPolicy;
use crate::queue::runner::{Runner, RunnerSettings};
use crate::queue::wakeup::Wakeup;
use crate::queue::{Queue, QueueError};
use crate::sandbox::{ImageSandbox, PoolSettings, ProcessPool};
use crate::shutdown::Shutdown;
use crate::storage::{LocalStorage, ObjectSettings, ObjectStorage, Storage, StorageError};
use crate::telemetry::Telemetry;
use crate::{http, web};

/// Why Pictor could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A setting is out of range.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The storage folder could not be created, or the bucket's URL is bad.
    #[error("cannot open the storage")]
    Storage(#[from] StorageError),
    /// The CPU pool's threads could not be started.
    #[error("cannot start the CPU pool's threads")]
    CpuPool(#[source] std::io::Error),
    /// The binary to start image sandbox children from cannot be found.
    #[error("cannot find this program's executable for the image sandbox's children")]
    SandboxExecutable(#[source] std::io::Error),
}

/// Why a running Pictor stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The runner could not release its jobs at shutdown.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Makes the handlers of a test instead of the standard three.
pub type RegistryFactory = Box<dyn FnOnce(&Arc<HandlerContext>) -> Registry<ImageEffect> + Send>;

/// Wraps the configured storage for a test (to pause or fail its calls).
pub type StorageWrapper = Box<dyn FnOnce(Arc<dyn Storage>) -> Arc<dyn Storage> + Send>;

/// Replacements for tests: a hand-turned clock, other handlers, a faster
/// retry policy.
#[derive(Default)]
pub struct Overrides {
    /// Clock instead of the system clock.
    pub clock: Option<SharedClock>,
    /// Handlers instead of the standard three.
    pub registry: Option<RegistryFactory>,
    /// Retry policy instead of the default.
    pub retry: Option<RetryPolicy>,
    /// A wrapper around the storage every part uses.
    pub storage: Option<StorageWrapper>,
    /// The `pictor` binary the image sandbox starts its children from,
    /// instead of this process's own executable (a test binary is not one).
    pub sandbox_executable: Option<std::path::PathBuf>,
    /// Arms the sandbox children's test hooks (a crash, a hang, a memory
    /// blow-up, a socket, set off by a marker in an image). No setting or
    /// variable reaches it.
    pub sandbox_test_hooks: bool,
}

/// A resolved, migrated Pictor, ready to serve or work.
#[derive(Debug, Clone)]
pub struct App {
    /// The database.
    pub db: Db,
    /// The job queue.
    pub queue: Queue,
    /// The domain the surfaces call.
    pub images: Images,
    /// What jobs' endings mean for images (the runner's, for tests that
    /// complete jobs by hand).
    pub effects: Arc<ImageEffects>,
    /// What the handlers share (storage, CPU pool, asset settings).
    pub handlers: Arc<HandlerContext>,
    /// The job runner.
    pub runner: Runner<ImageEffects>,
    /// Removes the temp files crashes leave behind, in `serve` and `worker`.
    pub sweeper: TempSweeper,
    /// The storage's garbage collector (`pictor gc`).
    pub gc: Gc,
    /// How often `serve` runs it; never when `None`.
    pub gc_interval: Option<Duration>,
    /// Public base URL for absolute links.
    pub api_base: String,
    /// Whether assets are answered with a redirect to the bucket.
    pub asset_redirect: Option<crate::storage::AssetRedirect>,
    /// Who may see what: the admin token, its browser sessions, public reads.
    pub gate: http::auth::Gate,
    /// Host names answered besides IP literals, localhost and API_BASE's host.
    pub allowed_hosts: Vec<String>,
    /// Origins whose pages may use the API (CORS).
    pub cors_origins: Vec<String>,
    /// How long HTTP clients get (headers, idle bodies, requests, shutdown).
    pub deadlines: crate::server::Deadlines,
}

/// Builds Pictor from its configuration: opens and migrates the database,
/// opens the storage, and wires the queue and runner.
///
/// # Errors
/// Invalid settings, an unreachable database or an unwritable storage folder.
pub async fn build(config: &Config, api_base_default: &str) -> Result<App, StartupError> {
    build_with(config, api_base_default, Overrides::default()).await
}

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

/// Exit status of a process whose image work hangs beyond what its CPU pool
/// replaces (the binary's exit codes).
pub const EXIT_WEDGED: i32 = 3;

/// Once more CPU threads are stuck in image work than the pool has, work
/// hangs faster than threads can be replaced: exit, so that the supervisor
/// (systemd, the container runtime) restarts Pictor with a fresh pool. The
/// jobs are rescued once their leases expire, their attempts counted, so a
/// poison image ends FAILED after its attempts (DESIGN invariant 10).
fn exit_wedged(stuck: usize) {
    tracing::error!(target: "job_runner", stuck,
        "more CPU threads are stuck in image work than the pool has; exiting for the supervisor to restart Pictor");
    std::process::exit(EXIT_WEDGED);
}

/// The configured storage: the bucket of `STORAGE_URL`, else the folder
/// `STORAGE_DIR`.
///
/// # Errors
/// A bad URL, or the folder cannot be created.
pub fn open_storage(config: &Config) -> Result<Arc<dyn Storage>, StorageError> {
    match &config.storage_url {
        Some(url) => open_storage_at(config, url),
        None => Ok(Arc::new(LocalStorage::open(&config.storage_dir)?)),
    }
}

/// The storage at `url`: `s3://bucket/prefix` (with the config's `AWS_*`
/// settings), else a local folder path.
///
/// # Errors
/// A bad URL, or the folder cannot be created.
pub fn open_storage_at(config: &Config, url: &str) -> Result<Arc<dyn Storage>, StorageError> {
    if !url.starts_with("s3://") {
        return Ok(Arc::new(LocalStorage::open(url)?));
    }
    let timeout = Duration::from_secs(config.s3_timeout_secs.max(1));
    Ok(Arc::new(ObjectStorage::open(&ObjectSettings {
        url: url.to_owned(),
        endpoint: config.s3_endpoint.clone(),
        region: config.s3_region.clone(),
        credentials: config.s3_access_key_id.clone().zip(config.s3_secret_access_key.clone()),
        allow_http: config.s3_allow_http,
        timeout,
        connect_timeout: timeout.min(Duration::from_secs(5)),
        max_retries: config.s3_max_retries,
        retry_timeout: timeout * 2,
        scratch_dir: config.scratch_dir.clone().unwrap_or_else(std::env::temp_dir),
    })?))
}

/// [`build`] with test replacements.
///
/// # Errors
/// As [`build`].
pub async fn build_with(config: &Config, api_base_default: &str, overrides: Overrides) -> Result<App, StartupError> {
    config.validate()?;
    let db = Db::connect_with(&config.database_url, config.sqlite_synchronous).await?;
    let version = db.migrate().await?;
    tracing::info!(backend = ?db.backend, schema_version = version, "database ready");
    let mut storage = open_storage(config)?;
    if let Some(wrap) = overrides.storage {
        storage = wrap(storage);
    }

    let clock = overrides.clock.unwrap_or_else(|| Arc::new(SystemClock));
    let telemetry = Telemetry::new();
    let queue = Queue {
        db: db.clone(),
        clock,
        wakeup: Wakeup::default(),
        max_attempts: config.max_attempts.into(),
        telemetry: telemetry.clone(),
    };
    let cpus = std::thread::available_parallelism().map_or(2, usize::from);
    // As many children as CPU threads: image work stays bounded by the CPUs (DESIGN invariant 6).
    let sandbox = match config.image_sandbox {
        ImageSandbox::Off => None,
        ImageSandbox::Process => {
            let executable = match overrides.sandbox_executable {
                Some(path) => path,
                None => std::env::current_exe().map_err(StartupError::SandboxExecutable)?,
            };
            Some(Arc::new(ProcessPool::new(PoolSettings {
                executable,
                children: cpus,
                memory_mb: config.sandbox_memory_mb,
                timeout: Duration::from_secs(config.sandbox_timeout_secs),
                test_hooks: overrides.sandbox_test_hooks,
            })))
        }
    };
    let handlers = Arc::new(HandlerContext {
        storage: storage.clone(),
        originals: Arc::new(DbOriginalLocks::new(db.clone())),
        cpu: Arc::new(CpuPool::new(cpus, exit_wedged).map_err(StartupError::CpuPool)?),
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
        sandbox,
    });
    let settings = RunnerSettings {
        batch_size: config.runner_batch_size,
        concurrency: config.runner_concurrency.unwrap_or_else(crate::queue::runner::default_concurrency),
        poll_interval: Duration::from_millis(config.runner_poll_interval_ms),
        lock_timeout: Duration::from_secs(config.lock_timeout_secs),
        shutdown_timeout: Duration::from_secs(config.shutdown_timeout_secs),
        job_timeout: Duration::from_secs(config.job_timeout_secs),
        retry: overrides.retry.unwrap_or_default(),
        retention: Retention {
            completed: Duration::from_secs(config.completed_retention_secs),
            failed: Duration::from_secs(config.failed_retention_secs),
        },
        claim_together: handlers::payload::ASSET_JOB_KINDS.to_vec(),
        ..RunnerSettings::default()
    };
    let mut registry = match overrides.registry {
        Some(make) => make(&handlers),
        None => handlers::registry(&handlers),
    };
    let target = config.webhook_url.as_ref().map(|url| handlers::WebhookTarget {
        url: url.clone(),
        secret: config.webhook_secret.as_ref().map(|s| s.expose().to_owned()),
    });
    let webhooks = Webhooks::new(target.is_some(), config.max_attempts.into());
    // Registered even when unset: deliveries queued before it was unset then fail, saying why.
    registry.register(JobKind::WebhookDelivery, handlers::WebhookDelivery::new(target));
    let effects = Arc::new(ImageEffects::new(storage.clone(), db.backend).with_webhooks(webhooks));
    let runner = Runner::new(queue.clone(), effects.clone(), registry, settings);
    let limits = UploadLimits {
        max_upload_bytes: config.max_upload_bytes,
        max_pixels: config.max_pixels,
        max_concurrent_uploads: config.max_concurrent_uploads,
        max_temp_bytes: config.max_temp_bytes,
    };
    let images =
        Images::new(db.clone(), storage, queue.clone(), limits, handlers.assets.clone()).with_webhooks(webhooks);
    let sweeper = TempSweeper::new(images.clone(), Duration::from_secs(config.temp_grace_secs));
    let gc = Gc::new(images.clone(), Duration::from_secs(config.temp_grace_secs));
    let gc_interval = config.gc_interval.map(|secs| Duration::from_secs(secs.max(1)));
    Ok(App {
        db,
        queue,
        images,
        effects,
        handlers,
        runner,
        sweeper,
        gc,
        gc_interval,
        api_base: config.api_base.clone().unwrap_or_else(|| api_base_default.to_owned()),
        asset_redirect: config.asset_redirect,
        gate: http::auth::Gate {
            sessions: config.admin_token.clone().map(|token| {
                let public_https = config.api_base.as_deref().is_some_and(|base| base.starts_with("https://"));
                crate::sessions::Sessions::new(token, public_https)
            }),
            public_read: config.public_read,
        },
        allowed_hosts: config.allowed_hosts.clone(),
        cors_origins: config.cors_origins.clone(),
        deadlines: crate::server::Deadlines {
            header: Duration::from_secs(config.header_timeout_secs),
            body_idle: Duration::from_secs(config.body_idle_timeout_secs),
            request: Duration::from_secs(config.request_timeout_secs),
            shutdown: Duration::from_secs(config.shutdown_timeout_secs),
        },
    })
}

impl App {
    /// The API, the pages and `/metrics` on one router, behind the admin
    /// token, the cross-origin guard, CORS (once origins are configured),
    /// the host allow-list, request metrics, request tracing and request
    /// ids (`X-Request-Id`).
    pub fn router(&self) -> Router {
        let api = http::router(http::ApiState {
            images: self.images.clone(),
            api_base: self.api_base.clone(),
            asset_redirect: self.asset_redirect,
        });
        let pages = web::router(web::PageState {
            images: self.images.clone(),
            sessions: self.gate.sessions.clone(),
            public_read: self.gate.public_read,
        });
        let trusted = web::guard::TrustedOrigins::new(&self.cors_origins);
        let router = api
            .merge(pages)
            .merge(self.metrics_routes())
            .layer(axum::middleware::from_fn_with_state(self.gate.clone(), http::auth::require_token))
            .layer(axum::middleware::from_fn_with_state(trusted, web::guard::same_origin));
        // Outside the token and the guard: a preflight carries neither credentials nor a same origin.
        let router = match http::cors::layer(&self.cors_origins) {
            Some(cors) => router.layer(cors).layer(axum::middleware::map_response(http::cors::only_for_listed)),
            None => router,
        };
        let router = router
            .layer(axum::middleware::from_fn_with_state(
                http::hosts::AllowedHosts::new(&self.allowed_hosts, &self.api_base),
                http::hosts::known_host,
            ))
            .layer(axum::middleware::from_fn_with_state(self.telemetry().clone(), http::metrics::track));
        http::request_id::traced(router)
    }

    /// A worker's own listener: `/metrics`, `/healthz` and `/readyz`,
    /// behind the admin token and the host allow-list.
    pub fn worker_router(&self) -> Router {
        let router = http::health::router()
            .with_state(self.images.clone())
            .merge(self.metrics_routes())
            .layer(axum::middleware::from_fn_with_state(self.gate.clone(), http::auth::require_token))
            .layer(axum::middleware::from_fn_with_state(
                http::hosts::AllowedHosts::new(&self.allowed_hosts, &self.api_base),
                http::hosts::known_host,
            ))
            .layer(axum::middleware::from_fn_with_state(self.telemetry().clone(), http::metrics::track));
        http::request_id::traced(router)
    }

    /// This process's metrics recorder.
    pub fn telemetry(&self) -> &Telemetry {
        &self.queue.telemetry
    }

    fn metrics_routes(&self) -> Router {
        http::metrics::router(http::metrics::MetricsState {
            images: self.images.clone(),
            image_work: self.handlers.clone(),
        })
    }
}

/// Serves HTTP on `listener` (and runs the job runner unless `with_runner`
/// is false) until `shutdown`; in-flight requests and jobs finish first.
/// The temp sweeper runs beside them.
///
/// # Errors
/// The runner could not release its jobs (a failed accept is logged and retried).
pub async fn serve(listener: TcpListener, app: App, with_runner: bool, shutdown: Shutdown) -> Result<(), RunError> {
    let router = app.router();
    let events = app.images.events().clone();
    let stopping = shutdown.clone();
    // Open event streams never end on their own: close them, or the graceful shutdown waits for them.
    let close_events = async move {
        stopping.wait().await;
        events.close();
    };
    let server = crate::server::serve(listener, router, app.deadlines, shutdown.clone());
    let telemetry = app.telemetry().clone();
    let upkeep = telemetry.upkeep(shutdown.clone());
    let sweeper = app.sweeper.run(shutdown.clone());
    let (gc, gc_stop) = (app.gc.clone(), shutdown.clone());
    let sweeper = async move {
        match app.gc_interval {
            Some(interval) => tokio::join!(sweeper, gc.run_every(interval, gc_stop)).0,
            None => sweeper.await,
        }
    };
    if with_runner {
        let ((), worked, (), (), ()) = tokio::join!(server, app.runner.run(shutdown), sweeper, close_events, upkeep);
        worked?;
    } else {
        tokio::join!(server, sweeper, close_events, upkeep);
    }
    Ok(())
}

/// Runs the job runner alone (with the temp sweeper) until `shutdown`,
/// and, given a `metrics` listener, serves [`App::worker_router`] on it.
///
/// # Errors
/// The runner could not release its jobs at shutdown.
pub async fn work(app: App, metrics: Option<TcpListener>, shutdown: Shutdown) -> Result<(), RunError> {
    let (stopping, router, telemetry) = (shutdown.clone(), app.worker_router(), app.telemetry().clone());
    let deadlines = app.deadlines;
    let listener = async move {
        if let Some(listener) = metrics {
            crate::server::serve(listener, router, deadlines, stopping).await;
        }
    };
    let (worked, (), (), ()) = tokio::join!(
        app.runner.run(shutdown.clone()),
        listener,
        app.sweeper.run(shutdown.clone()),
        telemetry.upkeep(shutdown)
    );
    worked?;
    Ok(())
}
