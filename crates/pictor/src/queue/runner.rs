//! The runner: claims due jobs in batches up to its free slots, runs each
//! job's handler, and has the batch completer commit the successes (whatever
//! finished meanwhile in one commit) and the completer record the failures
//! one by one. A maintenance task beside it renews leases (heartbeat),
//! rescues expired ones and prunes old jobs. An enqueue wakes it at once; the
//! poll interval is the fallback.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::{AnyConnection, Connection as _};
use tokio::task::JoinSet;

use super::completer::{self, BatchCompleter, COMPLETION_TRIES, CompleterStopped, Ending};
use super::job::Job;
use super::retry::RetryPolicy;
use super::{Queue, QueueError, pruner, rescuer};
use crate::db::{self, Durability};
use crate::handlers::{HandlerContext, HandlerError, Registry};

/// Default jobs claimed per statement (the card's batch size).
pub const DEFAULT_BATCH_SIZE: usize = 5;
/// Default fallback poll interval (the card's 5 s).
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(5_000);
/// Default lease (the card's 30 s lock timeout).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time in-flight jobs get to finish at shutdown.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often old jobs are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

/// How a runner behaves.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// Most jobs claimed per statement.
    pub batch_size: usize,
    /// Most handlers running at once. A finished effect-free job leaves its
    /// slot when handed to the batch completer, whose backlog holds at most
    /// two batches more.
    pub concurrency: usize,
    /// Most effect-free jobs completed per statement.
    pub completion_batch: usize,
    /// Fallback poll interval when nothing wakes the runner.
    pub poll_interval: Duration,
    /// Lease length; renewed every third of it while a job runs.
    pub lock_timeout: Duration,
    /// Time in-flight jobs get at shutdown before they are released.
    pub shutdown_timeout: Duration,
    /// Backoff between attempts.
    pub retry: RetryPolicy,
    /// Age after which finished jobs are pruned, ms.
    pub retention_ms: i64,
}

/// Jobs in flight by default: 4 per CPU. Image work itself is bounded to the
/// CPUs (`HandlerContext::run_cpu`); the other slots keep the cores busy
/// while jobs read, write, sync and commit. On 2 cores, 8 slots stored 17 %
/// more images per second than 4, 16 slots 23 % (BENCHMARKS.md, 2026-11-30).
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from) * 4
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
            concurrency: default_concurrency(),
            completion_batch: completer::DEFAULT_COMPLETION_BATCH,
            poll_interval: DEFAULT_POLL_INTERVAL,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            retry: RetryPolicy::default(),
            retention_ms: pruner::DEFAULT_RETENTION_MS,
        }
    }
}

/// A job runner: one per process, or several in tests.
#[derive(Debug, Clone)]
pub struct Runner {
    id: Arc<str>,
    queue: Queue,
    registry: Arc<Registry>,
    ctx: HandlerContext,
    settings: Arc<RunnerSettings>,
    in_flight: Arc<Mutex<HashSet<i64>>>,
}

/// A unique name for this runner, stored in `locked_by`.
fn runner_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "pictor".into());
    let short = uuid::Uuid::now_v7().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &short[short.len() - 8..])
}

impl Runner {
    /// A runner over `queue` with these handlers.
    pub fn new(queue: Queue, registry: Registry, ctx: HandlerContext, settings: RunnerSettings) -> Self {
        Self {
            id: runner_name().into(),
            queue,
            registry: Arc::new(registry),
            ctx,
            settings: Arc::new(settings),
            in_flight: Arc::default(),
        }
    }

    /// What its handlers are given (storage, CPU pool, asset settings).
    pub fn handler_context(&self) -> &HandlerContext {
        &self.ctx
    }

    /// This runner's name, as `locked_by` shows it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs until `shutdown` resolves, then stops claiming, lets in-flight
    /// jobs finish within the shutdown timeout and releases the rest.
    ///
    /// # Errors
    /// Only a failure to release jobs at shutdown; database errors while
    /// running are logged and retried.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), QueueError> {
        tracing::info!(target: "job_runner", runner = %self.id, batch = self.settings.batch_size,
            concurrency = self.settings.concurrency, "job runner started");
        let maintenance = AbortOnDrop(tokio::spawn(self.clone().maintain()));
        let _listener = (self.queue.db.backend == db::Backend::Postgres).then(|| {
            AbortOnDrop(tokio::spawn(super::wakeup::listen_postgres(
                self.queue.db.url().to_owned(),
                self.queue.wakeup.clone(),
            )))
        });
        let in_flight = self.in_flight.clone();
        let (batch_completer, completer_task) =
            BatchCompleter::start(self.queue.clone(), self.id.clone(), self.settings.completion_batch, move |ids| {
                if let Ok(mut set) = in_flight.lock() {
                    for id in ids {
                        set.remove(id);
                    }
                }
            });
        let mut jobs = JoinSet::new();
        // The claims' own connection (`db::jobs::claimer`): one round trip
        // per claim.
        let mut claimer = None;
        let mut db_backoff = Duration::from_millis(250);
        tokio::pin!(shutdown);
        loop {
            while jobs.try_join_next().is_some() {}
            let free = self.settings.concurrency.saturating_sub(jobs.len());
            let mut full_batch = false;
            if free > 0 {
                let want = free.min(self.settings.batch_size.max(1));
                match self.claim(&mut claimer, want).await {
                    Ok(claimed) => {
                        db_backoff = Duration::from_millis(250);
                        full_batch = claimed.len() == want;
                        for job in claimed {
                            jobs.spawn(self.clone().execute(job, batch_completer.clone()));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(target: "job_runner", error = %e, retry_in = ?db_backoff, "claim failed");
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(db_backoff) => {}
                        }
                        db_backoff = (db_backoff * 2).min(Duration::from_secs(30));
                        continue;
                    }
                }
            }
            if full_batch && jobs.len() < self.settings.concurrency {
                continue; // more may be due: claim again at once
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = self.queue.wakeup.wait() => {}
                Some(_) = jobs.join_next(), if !jobs.is_empty() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
        if let Some(conn) = claimer.take()
            && let Err(e) = conn.close().await
        {
            tracing::debug!(target: "job_runner", error = %e, "closing the claims' connection failed");
        }
        tracing::info!(target: "job_runner", runner = %self.id, in_flight = jobs.len(), "stopping: no more claims");
        let drained =
            tokio::time::timeout(self.settings.shutdown_timeout, async { while jobs.join_next().await.is_some() {} })
                .await;
        if drained.is_err() {
            jobs.abort_all();
        }
        // Every execution is over, so this was the last sender: the completer
        // writes its backlog and stops. What it cannot write in time is
        // released below, as unfinished jobs are.
        drop(batch_completer);
        let mut completer_task = AbortOnDrop(completer_task);
        if tokio::time::timeout(self.settings.shutdown_timeout, &mut completer_task.0).await.is_err() {
            tracing::warn!(target: "job_runner", runner = %self.id, "the batch completer did not finish in time");
        }
        drop(maintenance);
        let mut conn = self.queue.db.write_connection(Durability::Bookkeeping).await?;
        let released = db::jobs::release(&mut *conn, &self.id, self.queue.clock.now_ms()).await?;
        drop(conn);
        tracing::info!(target: "job_runner", runner = %self.id, released, "job runner stopped");
        Ok(())
    }

    /// Claims up to `want` jobs on `conn`, opening the claimer's connection
    /// when it holds none; after an error it holds none (the next claim
    /// opens a fresh one).
    async fn claim(&self, conn: &mut Option<AnyConnection>, want: usize) -> Result<Vec<Job>, sqlx::Error> {
        let db = &self.queue.db;
        let now = self.queue.clock.now_ms();
        let until = now + lease_ms(&self.settings);
        let limit = i64::try_from(want).unwrap_or(i64::MAX);
        let claimed = if db.may_hold_writer() {
            let held = match conn {
                Some(held) => held,
                None => conn.insert(db::jobs::claimer(db).await?),
            };
            match db::jobs::claim(&mut *held, db.backend, &self.id, limit, until, now).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    *conn = None;
                    return Err(e);
                }
            }
        } else {
            let mut writer = db.write_connection(Durability::Bookkeeping).await?;
            db::jobs::claim(&mut *writer, db.backend, &self.id, limit, until, now).await?
        };
        if let Ok(mut set) = self.in_flight.lock() {
            set.extend(claimed.iter().map(|j| j.id));
        }
        Ok(claimed)
    }

    /// Runs one claimed job and hands a success to the batch completer, which
    /// ends it; records a failure (or a success the stopped completer would
    /// not take) itself.
    async fn execute(self, job: Job, batch_completer: BatchCompleter) {
        let outcome = match self.registry.get(job.kind) {
            Some(handler) => {
                let (ctx, job) = (self.ctx.clone(), job.clone());
                tokio::spawn(async move { handler.handle(&job, &ctx).await })
                    .await
                    .unwrap_or_else(|e| Err(HandlerError::Permanent(format!("the handler crashed: {e}"))))
            }
            None => Err(HandlerError::Permanent(format!("no handler is registered for {}", job.kind))),
        };
        let outcome = match outcome {
            Ok(outcome) => match batch_completer.submit(&job, outcome).await {
                Ok(()) => {
                    // The completer writes the completion and drops the job
                    // from `in_flight`; the slot is free now.
                    self.queue.wakeup.notify();
                    return;
                }
                Err(CompleterStopped(outcome)) => Ok(outcome),
            },
            Err(error) => Err(error),
        };
        let mut delay = Duration::from_millis(500);
        for attempt in 1..=COMPLETION_TRIES {
            let ending = match &outcome {
                Ok(outcome) => completer::complete(&self.queue, &job, &self.id, outcome).await,
                Err(error) => completer::fail(&self.queue, &self.settings.retry, &job, &self.id, error).await,
            };
            match ending {
                Ok(ending) => {
                    log_ending(&job, &ending, outcome.as_ref().err());
                    break;
                }
                Err(e) if attempt < COMPLETION_TRIES => {
                    tracing::warn!(target: "job_runner", job = job.id, error = %e, "cannot record the job's result; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => tracing::error!(target: "job_runner", job = job.id, error = %e,
                    "cannot record the job's result; leaving it to the rescuer"),
            }
        }
        if let Ok(mut set) = self.in_flight.lock() {
            set.remove(&job.id);
        }
        // A slot is free.
        self.queue.wakeup.notify();
    }

    /// Renews the leases of the jobs in `ids` (the heartbeat).
    async fn extend_leases(&self, ids: &[i64], now: i64) -> Result<u64, sqlx::Error> {
        let mut conn = self.queue.db.write_connection(Durability::Bookkeeping).await?;
        db::jobs::extend_leases(&mut *conn, &self.id, ids, now + lease_ms(&self.settings), now).await
    }

    /// Heartbeat, rescue and prune, until aborted.
    async fn maintain(self) {
        let every = Duration::from_millis(u64::try_from(lease_ms(&self.settings) / 3).unwrap_or(1_000).max(50));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut since_prune = PRUNE_EVERY;
        loop {
            tick.tick().await;
            let ids: Vec<i64> = self.in_flight.lock().map(|s| s.iter().copied().collect()).unwrap_or_default();
            let now = self.queue.clock.now_ms();
            if let Err(e) = self.extend_leases(&ids, now).await {
                tracing::warn!(target: "job_runner", error = %e, "heartbeat failed");
            }
            if let Err(e) = rescuer::rescue_once(&self.queue).await {
                tracing::warn!(target: "job_runner", error = %e, "rescue failed");
            }
            since_prune += every;
            if since_prune >= PRUNE_EVERY {
                since_prune = Duration::ZERO;
                match pruner::prune_once(&self.queue, self.settings.retention_ms).await {
                    Ok(n) if n > 0 => {
                        tracing::info!(target: "job_runner", pruned = n, "pruned finished jobs")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(target: "job_runner", error = %e, "prune failed"),
                }
            }
        }
    }
}

fn lease_ms(settings: &RunnerSettings) -> i64 {
    i64::try_from(settings.lock_timeout.as_millis()).unwrap_or(i64::MAX)
}

fn log_ending(job: &Job, ending: &Ending, error: Option<&HandlerError>) {
    match ending {
        Ending::Completed { children } => {
            tracing::info!(target: "job_runner", job = job.id, kind = %job.kind, children, "job completed");
        }
        Ending::Retrying { run_at } => {
            tracing::warn!(target: "job_runner", job = job.id, kind = %job.kind,
            attempt = job.attempts, run_at, error = ?error.map(ToString::to_string), "job failed; will retry")
        }
        Ending::Failed => tracing::warn!(target: "job_runner", job = job.id, kind = %job.kind,
            attempt = job.attempts, error = ?error.map(ToString::to_string), "job failed for good"),
        Ending::LeaseLost => tracing::warn!(target: "job_runner", job = job.id, kind = %job.kind,
            "lease lost to another runner; result dropped"),
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
