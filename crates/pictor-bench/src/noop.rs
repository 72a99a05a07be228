//! The benchmarks' no-op job and the timed drain of a batch of them.
//!
//! Pictor's job kinds are the card's three, and a benchmark-only fourth kind
//! would leak into the public wire model. So the benches insert
//! `PREVIEW_GENERATION` jobs with payload `{"i": i}` and no image, and
//! register, for that kind only, a handler that counts the run and returns an
//! empty [`Outcome`]: a bare success, which the completer completes many to a
//! statement, as any effect-free job would.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use pictor::app::App;
use pictor::db::Durability;
use pictor::handlers::{ImageEffect, Outcome};
use pictor::queue::handler::{HandlerError, JobHandler, Registry};
use pictor::queue::runner::{Runner, RunnerSettings};
use pictor::queue::{Job, NewJob};
use pictor::shutdown;
use pictor_client::models::JobKind;
use serde_json::json;
use tokio::sync::Notify;

/// The job kind the no-op jobs use (see the module doc).
pub const NOOP_KIND: JobKind = JobKind::PreviewGeneration;

/// The `tuned` settings of `pictor-queue-bench`: runners side by side in
/// the process (so claims and completions of one overlap those of the
/// other, as several `pictor worker` processes would), large claims, many
/// handler slots and completion batches, and a short fallback poll
/// (wake-ups do the real work).
const TUNED_RUNNERS: usize = 2;
const TUNED_BATCH_SIZE: usize = 500;
const TUNED_CONCURRENCY: usize = 1_000;
const TUNED_COMPLETION_BATCH: usize = 500;
const TUNED_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The tuned variant: how many runners, and their settings.
#[must_use]
pub fn tuned() -> (usize, RunnerSettings) {
    let settings = RunnerSettings {
        batch_size: TUNED_BATCH_SIZE,
        concurrency: TUNED_CONCURRENCY,
        completion_batch: TUNED_COMPLETION_BATCH,
        poll_interval: TUNED_POLL_INTERVAL,
        ..RunnerSettings::default()
    };
    (TUNED_RUNNERS, settings)
}

/// How often [`drain`] checks that no no-op job is left PENDING or RUNNING
/// once the handler ran N times.
const DRAIN_CHECK_EVERY: Duration = Duration::from_millis(2);

/// The `i`-th no-op job.
#[must_use]
pub fn job(i: u64) -> NewJob {
    NewJob { kind: NOOP_KIND, payload: json!({"i": i}).to_string(), image_id: None, priority: 0, dedupe_key: None }
}

/// A registry with the counting no-op handler for [`NOOP_KIND`] only, and
/// the counter it reports to.
#[must_use]
pub fn registry() -> (Registry<ImageEffect>, Arc<Counter>) {
    let counter = Arc::new(Counter::default());
    let mut registry = Registry::default();
    registry.register(NOOP_KIND, Noop(counter.clone()));
    (registry, counter)
}

/// Inserts `n` no-op jobs in one statement and transaction (acknowledged,
/// as an application's bulk enqueue is), then wakes the runners.
///
/// # Errors
/// The database failed, or fewer jobs were inserted.
pub async fn enqueue_bulk(app: &App, n: u64) -> anyhow::Result<()> {
    let queue = &app.queue;
    let jobs = (0..n).map(job).collect::<Vec<_>>();
    let mut tx = queue.db.begin_write(Durability::Acknowledged).await?;
    let inserted = queue.enqueue_many_in(&mut tx, &jobs).await?;
    tx.commit().await?;
    queue.wake();
    anyhow::ensure!(inserted == n, "inserted {inserted} jobs of {n}");
    Ok(())
}

/// How long a drain took.
#[derive(Debug, Clone, Copy)]
pub struct Drained {
    /// Until the handler had run N times.
    pub handlers_seconds: f64,
    /// Until no job was left PENDING or RUNNING (every completion committed).
    pub seconds: f64,
}

/// Starts `runners` runners with `settings` over `registry`, times them until
/// the handler has run `n` times and no no-op job is left PENDING or RUNNING
/// (other jobs in the table, such as the scale bench's, are not waited for), then
/// stops them gracefully. The jobs must be enqueued already.
///
/// # Errors
/// The database failed, a runner failed or panicked, or the handler ran
/// other than `n` times.
pub async fn drain(
    app: &App,
    registry: &Registry<ImageEffect>,
    counter: &Counter,
    runners: usize,
    settings: &RunnerSettings,
    n: u64,
) -> anyhow::Result<Drained> {
    counter.ran.store(0, Ordering::SeqCst);
    counter.target.store(n, Ordering::SeqCst);
    let (trigger, shutdown) = shutdown::channel();
    let start = Instant::now();
    let tasks = (0..runners.max(1))
        .map(|_| {
            let runner = Runner::new(app.queue.clone(), app.effects.clone(), registry.clone(), settings.clone());
            tokio::spawn(runner.run(shutdown.clone()))
        })
        .collect::<Vec<_>>();
    counter.all_ran.notified().await;
    let handlers_seconds = start.elapsed().as_secs_f64();
    loop {
        // One count per status, so that each reads its partial index
        // (`status IN (…)` matches neither, and SQLite would scan the table).
        let left: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM job WHERE status = 'PENDING' AND image_id IS NULL AND type = $1) \
                  + (SELECT COUNT(*) FROM job WHERE status = 'RUNNING' AND image_id IS NULL AND type = $1)",
        )
        .bind(NOOP_KIND.as_str())
        .fetch_one(&app.db.pool)
        .await?;
        if left == 0 {
            break;
        }
        tokio::time::sleep(DRAIN_CHECK_EVERY).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    trigger.trigger();
    for task in tasks {
        task.await.context("a runner panicked")??;
    }
    let ran = counter.ran.load(Ordering::SeqCst);
    anyhow::ensure!(ran == n, "the handler ran {ran} times for {n} jobs");
    Ok(Drained { handlers_seconds, seconds })
}

/// Counts handler runs and signals when the target is reached.
#[derive(Debug, Default)]
pub struct Counter {
    ran: AtomicU64,
    target: AtomicU64,
    all_ran: Notify,
}

/// The no-op handler: counts the run, commits nothing but the completion.
struct Noop(Arc<Counter>);

#[async_trait::async_trait]
impl JobHandler<ImageEffect> for Noop {
    async fn handle(&self, _job: &Job) -> Result<Outcome, HandlerError> {
        let ran = self.0.ran.fetch_add(1, Ordering::SeqCst) + 1;
        if ran == self.0.target.load(Ordering::SeqCst) {
            // notify_one keeps the permit if `drain` is not waiting yet.
            self.0.all_ran.notify_one();
        }
        Ok(Outcome::default())
    }
}
