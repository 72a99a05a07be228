//! The `pictor` binary: parse → run → exit code. Service commands (`serve`,
//! `worker`, `migrate`) run here; client commands go to `pictor::cli::run`.
//!
//! Exit codes: 0 ok; 1 the service failed, or a client command's items
//! partly failed (a refused upload, a FAILED image, an unknown id, a failed
//! doctor check); 2 usage or configuration error, or no server to talk to
//! (unreachable, invalid address, refused token); 3 the service's image work
//! hung on more threads than it could replace (`app::EXIT_WEDGED`): its
//! supervisor should restart it.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use pictor::app;
use pictor::command::{Cli, Command, LogFormat, StorageCommand};
use pictor::db::Db;
use pictor::shutdown::{self, Shutdown};
use pictor::storage::migrate;

/// glibc malloc arenas of a service process, unless `MALLOC_ARENA_MAX` or
/// `GLIBC_TUNABLES` says otherwise. glibc's default (8 per core) gives each
/// blocking-pool thread that decodes an image an arena of its own, each
/// keeping its freed buffers: the e2e benchmark's peak RSS fell from 340 to
/// 170 MB with 2, at no measurable CPU cost (BENCHMARKS.md).
const DEFAULT_MALLOC_ARENAS: i32 = 2;

fn main() -> ExitCode {
    // `.env` is read here only; a missing file is fine. A sandbox child
    // reads none: its environment is the little its parent gave it.
    if std::env::args_os().nth(1).is_none_or(|command| command != pictor::sandbox::child::SUBCOMMAND) {
        let _ = dotenvy::dotenv();
    }
    let cli = Cli::parse();
    if let Command::SandboxChild(args) = &cli.command {
        limit_malloc_arenas();
        pictor_imaging::keep_image_buffers_allocated();
        // Before any thread exists: it hardens itself, which needs a single thread.
        return pictor::sandbox::child::run(args.memory_mb);
    }
    if matches!(cli.command, Command::Serve(_) | Command::Worker(_)) {
        limit_malloc_arenas();
        pictor_imaging::keep_image_buffers_allocated();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pictor: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let service = match cli.command {
        service @ (Command::Serve(_)
        | Command::Worker(_)
        | Command::Migrate(_)
        | Command::Gc(_)
        | Command::Reprocess(_)
        | Command::Storage(_)) => service,
        client => return runtime.block_on(pictor::cli::run(client)),
    };
    let format = service.log().map_or(LogFormat::Text, |log| log.format);
    init_tracing(format);
    match runtime.block_on(run(service)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // In JSON, the last words are a log line too: a log shipper parses every line.
            match format {
                LogFormat::Text => eprintln!("pictor: {e:#}"),
                LogFormat::Json => tracing::error!(target: "pictor", error = format!("{e:#}"), "pictor stopped"),
            }
            if e.downcast_ref::<app::StartupError>().is_some_and(|s| matches!(s, app::StartupError::Config(_))) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Caps glibc's malloc arenas at [`DEFAULT_MALLOC_ARENAS`], before any
/// other thread exists.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() || std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    // SAFETY: mallopt only sets an allocator parameter; it is called once,
    // from main, before the runtime starts any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, DEFAULT_MALLOC_ARENAS);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

/// Logs to stderr, one line per event, in `format`, filtered by `RUST_LOG`.
fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        // Event fields at the top level; every enclosing span (a job's, a
        // request's) with its fields in `spans`, so each line stands alone.
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).with_span_list(true).init(),
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let listener = tokio::net::TcpListener::bind(args.bind)
                .await
                .with_context(|| format!("cannot listen on {}", args.bind))?;
            let local = listener.local_addr()?;
            let app = app::build(&args.config, &format!("http://{local}")).await?;
            tracing::info!(address = %local, runner = !args.no_runner, "pictor serving");
            Ok(app::serve(listener, app, !args.no_runner, signal_shutdown()).await?)
        }
        Command::Worker(args) => {
            let metrics = match args.metrics_bind {
                Some(bind) => Some(
                    tokio::net::TcpListener::bind(bind)
                        .await
                        .with_context(|| format!("cannot listen on {bind} for metrics"))?,
                ),
                None => None,
            };
            let app = app::build(&args.config, "").await?;
            match &metrics {
                Some(listener) => {
                    tracing::info!(address = %listener.local_addr()?, "pictor worker running; metrics served")
                }
                None => tracing::info!("pictor worker running"),
            }
            Ok(app::work(app, metrics, signal_shutdown()).await?)
        }
        Command::Migrate(args) => {
            let db = Db::connect(&args.database_url).await?;
            let version = db.migrate().await?;
            println!("database migrated: schema version {version} ({:?})", db.backend);
            Ok(())
        }
        Command::Gc(args) => {
            let app = app::build(&args.config, "").await?;
            let garbage = app.gc.collect(args.dry_run).await?;
            let verb = if args.dry_run { "would remove" } else { "removed" };
            for key in &garbage {
                println!("{verb} {key}");
            }
            println!("{verb} {} object(s)", garbage.len());
            Ok(())
        }
        Command::Reprocess(args) => pictor::cli::reprocess::run(args).await,
        Command::Storage(StorageCommand::Migrate(args)) => {
            let from = app::open_storage(&args.config)?;
            let to = app::open_storage_at(&args.config, &args.to)?;
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} objects {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let done = migrate::migrate(from.as_ref(), to.as_ref(), |step| {
                bar.set_length(step.total as u64);
                bar.set_position(step.done as u64);
                bar.set_message(step.key.to_string());
                std::ops::ControlFlow::Continue(())
            })
            .await;
            bar.finish_and_clear();
            let done = done.with_context(|| format!("migrating to {} stopped; run it again to resume", args.to))?;
            println!(
                "{} object(s): {} copied and verified, {} already there; {} holds every original and asset",
                done.total, done.copied, done.skipped, args.to
            );
            Ok(())
        }
        _ => anyhow::bail!("not a service command"),
    }
}

/// A shutdown signal fired by SIGINT or SIGTERM.
fn signal_shutdown() -> Shutdown {
    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            () = term => {}
        }
        tracing::info!("shutdown requested: finishing in-flight work");
        trigger.trigger();
    });
    shutdown
}
