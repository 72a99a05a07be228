//! `pictor-queue-bench`: Pictor's own queue (its `Db`, migrations, `Queue`
//! and `Runner`) driven by the adapter contract of `shared/bench/queue/`, so
//! that it can be measured beside graphile-worker and pgqueuer in one run.
//! See `BENCHMARKS.md` for the commands.
//!
//! The contract's `noop` job is [`pictor_bench::noop`]'s: a
//! `PREVIEW_GENERATION` job with no image whose handler only counts.
//!
//! Exit codes: 0 done, 1 failure (the cause chain is printed to stderr).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use pictor::app::{self, App, Overrides};
use pictor::config::Config;
use pictor::db::{Backend, Db, SqliteSynchronous};
use pictor::handlers::ImageEffect;
use pictor::queue::completer::DEFAULT_COMPLETION_BATCH;
use pictor::queue::handler::Registry;
use pictor::queue::runner::RunnerSettings;
use pictor_bench::noop::{self, Counter};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(about = "Pictor's queue under the shared queue-bench adapter contract")]
struct Args {
    /// Which database: PostgreSQL from `QB_DSN`, or a SQLite file at `--path`.
    #[arg(long, value_enum)]
    backend: BackendArg,
    /// The SQLite file (with `--backend sqlite`).
    #[arg(long)]
    path: Option<PathBuf>,
    /// SQLite only: Pictor's `PICTOR_SQLITE_SYNCHRONOUS`. `full` (the
    /// default) syncs acknowledged writes (the enqueue ops) and not the
    /// queue's bookkeeping; `normal` syncs no commit.
    #[arg(long, default_value = "full")]
    sqlite_synchronous: SqliteSynchronous,
    /// Overrides the variant's number of runners (for exploring settings).
    #[arg(long)]
    runners: Option<usize>,
    /// Overrides the variant's jobs claimed per statement.
    #[arg(long)]
    batch: Option<usize>,
    /// Overrides the variant's handler slots per runner.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Overrides the variant's jobs completed per statement.
    #[arg(long)]
    completion_batch: Option<usize>,
    #[command(subcommand)]
    op: Op,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    Postgres,
    Sqlite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Variant {
    /// Pictor's defaults: batch 5, concurrency 2 × CPUs, poll 5 s.
    Default,
    /// The settings that drain no-op jobs fastest here.
    Tuned,
}

#[derive(Debug, Subcommand)]
enum Op {
    /// Drops and recreates the schema.
    Reset,
    /// Enqueues N jobs, each in its own transaction.
    EnqueueSingle {
        #[arg(long)]
        n: u64,
    },
    /// Enqueues N jobs in one statement.
    EnqueueBulk {
        #[arg(long)]
        n: u64,
    },
    /// Bulk-inserts N jobs, then times a runner draining them.
    Work {
        #[arg(long)]
        n: u64,
        #[arg(long, value_enum, default_value_t = Variant::Default)]
        variant: Variant,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one op and returns its JSON result line.
async fn run(args: Args) -> anyhow::Result<serde_json::Value> {
    let url = database_url(&args)?;
    if matches!(args.op, Op::Reset) {
        reset(&args, &url).await?;
        return Ok(json!({"op": "reset", "ok": true}));
    }
    let storage = std::env::temp_dir().join(format!("pictor-queue-bench-{}", std::process::id()));
    let result = measure(&args, &url, &storage).await;
    let _ = std::fs::remove_dir_all(&storage);
    result
}

fn database_url(args: &Args) -> anyhow::Result<String> {
    match args.backend {
        BackendArg::Postgres => std::env::var("QB_DSN").context("QB_DSN must hold the PostgreSQL URL"),
        BackendArg::Sqlite => {
            let path = args.path.as_ref().context("--backend sqlite needs --path FILE")?;
            let path = std::path::absolute(path).context("cannot resolve --path")?;
            Ok(format!("sqlite://{}", path.display()))
        }
    }
}

/// Drops the schema (the SQLite file itself) and migrates afresh.
async fn reset(args: &Args, url: &str) -> anyhow::Result<()> {
    if let (BackendArg::Sqlite, Some(path)) = (args.backend, &args.path) {
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("cannot remove {}", file.display())),
            }
        }
    }
    let db = Db::connect(url).await?;
    if db.backend == Backend::Postgres {
        // Every table the migrations made (the kept counts too), not only the two of the card.
        sqlx::query("DROP SCHEMA public CASCADE").execute(&db.pool).await?;
        sqlx::query("CREATE SCHEMA public").execute(&db.pool).await?;
    }
    db.migrate().await?;
    db.pool.close().await;
    Ok(())
}

/// Builds Pictor as `main` does (no-op handler instead of the card's three),
/// empties the job table, and runs the timed op.
async fn measure(args: &Args, url: &str, storage: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let (registry, counter) = noop::registry();
    let config = Config {
        database_url: url.to_owned(),
        storage_dir: storage.to_owned(),
        sqlite_synchronous: args.sqlite_synchronous,
        ..Config::defaults()?
    };
    let for_app = registry.clone();
    let overrides = Overrides { registry: Some(Box::new(move |_| for_app)), ..Overrides::default() };
    let app = app::build_with(&config, "http://127.0.0.1", overrides).await?;
    let db = &app.db;
    let empty = match db.backend {
        Backend::Postgres => "TRUNCATE job",
        Backend::Sqlite => "DELETE FROM job",
    };
    sqlx::query(empty).execute(&db.pool).await?;
    let backend = match db.backend {
        Backend::Postgres => "postgres",
        Backend::Sqlite => "sqlite",
    };
    let synchronous = match (db.backend, args.sqlite_synchronous) {
        (Backend::Postgres, _) => "n/a",
        (Backend::Sqlite, SqliteSynchronous::Full) => "FULL (enqueues), NORMAL (bookkeeping)",
        (Backend::Sqlite, SqliteSynchronous::Normal) => "NORMAL",
    };
    let mut line = match args.op {
        Op::Reset => anyhow::bail!("reset is not a measured op"),
        Op::EnqueueSingle { n } => enqueue_single(&app, n).await?,
        Op::EnqueueBulk { n } => {
            let start = Instant::now();
            noop::enqueue_bulk(&app, n).await?;
            let seconds = start.elapsed().as_secs_f64();
            json!({"op": "enqueue-bulk", "n": n, "seconds": seconds, "rate": n as f64 / seconds,
                   "settings": {"api": "Queue::enqueue_many_in (one statement, one transaction)"}})
        }
        Op::Work { n, variant } => work(&app, args, registry, counter, n, variant).await?,
    };
    line["settings"]["backend"] = json!(backend);
    line["settings"]["sqlite_synchronous"] = json!(synchronous);
    app.db.pool.close().await;
    Ok(line)
}

/// One call per job, each its own transaction, as an application enqueues
/// one job per request.
async fn enqueue_single(app: &App, n: u64) -> anyhow::Result<serde_json::Value> {
    let queue = &app.queue;
    let jobs = (0..n).map(noop::job).collect::<Vec<_>>();
    let start = Instant::now();
    for job in &jobs {
        queue.enqueue(job).await?;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(json!({"op": "enqueue-single", "n": n, "seconds": seconds, "rate": n as f64 / seconds,
              "settings": {"api": "Queue::enqueue (one statement and transaction per job, NOTIFY in it on PostgreSQL)"}}))
}

/// Bulk-inserts N jobs (untimed), then times a runner until the handler ran
/// N times and no job is left PENDING or RUNNING; then stops it gracefully.
async fn work(
    app: &App,
    args: &Args,
    registry: Registry<ImageEffect>,
    counter: Arc<Counter>,
    n: u64,
    variant: Variant,
) -> anyhow::Result<serde_json::Value> {
    noop::enqueue_bulk(app, n).await?;
    let (mut runners, mut settings) = match variant {
        Variant::Default => (1, RunnerSettings::default()),
        Variant::Tuned => noop::tuned(),
    };
    runners = args.runners.unwrap_or(runners).max(1);
    settings.batch_size = args.batch.unwrap_or(settings.batch_size);
    settings.concurrency = args.concurrency.unwrap_or(settings.concurrency);
    settings.completion_batch = args.completion_batch.unwrap_or(settings.completion_batch);
    let settings_json = json!({
        "runners": runners,
        "batch_size": settings.batch_size,
        "concurrency": settings.concurrency,
        "completion_batch": settings.completion_batch,
        "poll_interval_ms": settings.poll_interval.as_millis(),
        "default_completion_batch": DEFAULT_COMPLETION_BATCH,
        "runtime": "tokio multi-thread",
    });
    let drained = noop::drain(app, &registry, &counter, runners, &settings, n).await?;
    let variant = match variant {
        Variant::Default => "default",
        Variant::Tuned => "tuned",
    };
    Ok(json!({"op": "work", "n": n, "seconds": drained.seconds, "rate": n as f64 / drained.seconds,
              "handlers_seconds": drained.handlers_seconds, "variant": variant, "settings": settings_json}))
}
