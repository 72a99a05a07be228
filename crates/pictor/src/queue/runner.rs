//! The runner: claims due jobs in batches up to its free slots and starts an
//! executor for each, beside its other parts (the completer, the
//! heartbeat, the rescuer, the pruner and, on PostgreSQL, the notification
//! listener). Every part stops through one [`Shutdown`]; the runner then
//! lets running jobs finish within the shutdown timeout, has the completer
//! write what finished, and releases the rest. An enqueue wakes it at once;
//! the poll interval is the fallback.

use std::sync::Arc;
use std::time::Duration;

use pictor_client::models::JobKind;
use sqlx::{AnyConnection, Connection as _};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::completer::{self, Completer, Finished};
use super::executor::{self, AbortOnDrop, Executor};
use super::handler::{Effects, Registry};
use super::heartbeat::Heartbeat;
use super::in_flight::InFlight;
use super::pruner::{self, Pruner};
use super::rescuer::Rescuer;
use super::retry::RetryPolicy;
use super::{
    DEFAULT_BATCH_SIZE, DEFAULT_JOB_TIMEOUT_SECS, DEFAULT_LOCK_TIMEOUT_SECS, DEFAULT_POLL_INTERVAL_MS,
    DEFAULT_SHUTDOWN_TIMEOUT_SECS, Job, Queue, QueueError,
};
use crate::db::{self, Durability, leases::Claim};
use crate::shutdown::{self, Shutdown};

/// First wait after a failed claim; doubled after each next failure.
const CLAIM_RETRY_FIRST: Duration = Duration::from_millis(250);
/// Longest wait between failed claims.
const CLAIM_RETRY_MAX: Duration = Duration::from_secs(30);

/// How a runner behaves.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// Most jobs claimed per statement.
    pub batch_size: usize,
    /// Most handlers running at once. A finished job leaves its slot when
    /// handed to the completer, whose backlog holds at most two groups more.
    pub concurrency: usize,
    /// Most endings written per commit.
    pub completion_batch: usize,
    /// Fallback poll interval when nothing wakes the runner.
    pub poll_interval: Duration,
    /// Lease length; renewed every third of it while a job runs.
    pub lock_timeout: Duration,
    /// Time in-flight jobs get at shutdown before they are released.
    pub shutdown_timeout: Duration,
    /// Longest one attempt may run: past it the attempt fails (retryably)
    /// and its lease is no longer renewed.
    pub job_timeout: Duration,
    /// Backoff between attempts.
    pub retry: RetryPolicy,
    /// Age after which finished jobs are pruned.
    pub retention: pruner::Retention,
    /// Kinds whose due jobs of one image are claimed together, beyond the
    /// batch (the domain's: an image's asset jobs, so that one process
    /// decodes its original once for both); empty by default.
    pub claim_together: Vec<JobKind>,
}

/// Jobs in flight by default: 4 per CPU. Image work itself is bounded to the
/// CPUs (the handlers' CPU pool); the other slots keep the cores busy while
/// jobs read, write, sync and commit. On 2 cores, 8 slots stored 17 % more
/// images per second than 4, 16 slots 23 % (BENCHMARKS.md, 2026-11-30).
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from) * 4
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
            concurrency: default_concurrency(),
            completion_batch: completer::DEFAULT_COMPLETION_BATCH,
            poll_interval: Duration::from_millis(DEFAULT_POLL_INTERVAL_MS),
            lock_timeout: Duration::from_secs(DEFAULT_LOCK_TIMEOUT_SECS),
            shutdown_timeout: Duration::from_secs(DEFAULT_SHUTDOWN_TIMEOUT_SECS),
            job_timeout: Duration::from_secs(DEFAULT_JOB_TIMEOUT_SECS),
            retry: RetryPolicy::default(),
            retention: pruner::Retention::default(),
            claim_together: Vec::new(),
        }
    }
}

/// A job runner: one per process, or several in tests.
pub struct Runner<F: Effects> {
    id: Arc<str>,
    queue: Queue,
    effects: Arc<F>,
    registry: Arc<Registry<F::Effect>>,
    settings: Arc<RunnerSettings>,
}

impl<F: Effects> Clone for Runner<F> {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            queue: self.queue.clone(),
            effects: self.effects.clone(),
            registry: self.registry.clone(),
            settings: self.settings.clone(),
        }
    }
}

impl<F: Effects> std::fmt::Debug for Runner<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("id", &self.id).field("registry", &self.registry).finish_non_exhaustive()
    }
}

/// A unique name for this runner, stored in `locked_by`.
fn runner_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "pictor".into());
    let short = uuid::Uuid::now_v7().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &short[short.len() - 8..])
}

impl<F: Effects> Runner<F> {
    /// A runner over `queue` with these handlers, whose successes and
    /// failures `effects` writes.
    pub fn new(queue: Queue, effects: Arc<F>, registry: Registry<F::Effect>, settings: RunnerSettings) -> Self {
        Self { id: runner_name().into(), queue, effects, registry: Arc::new(registry), settings: Arc::new(settings) }
    }

    /// This runner's name, as `locked_by` shows it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A completer writing as this runner, for tests that end attempts by hand.
    pub fn completer(&self) -> Completer<F> {
        Completer::new(
            self.queue.clone(),
            self.effects.clone(),
            self.id.clone(),
            self.settings.retry,
            self.settings.completion_batch,
        )
    }

    /// Runs until `shutdown`, then stops claiming, lets running jobs finish
    /// within the shutdown timeout, has their endings written, and releases
    /// the jobs left.
    ///
    /// # Errors
    /// Only a failure to release jobs at shutdown; database errors while
    /// running are logged and retried.
    pub async fn run(self, shutdown: Shutdown) -> Result<(), QueueError> {
        let settings = self.settings.clone();
        tracing::info!(target: "job_runner", runner = %self.id, batch = settings.batch_size,
            concurrency = settings.concurrency, "job runner started");
        let in_flight = Arc::new(InFlight::default());
        let (stop_parts, parts_shutdown) = shutdown::channel();
        let mut parts = JoinSet::new();
        parts.spawn(
            Heartbeat {
                queue: self.queue.clone(),
                runner: self.id.clone(),
                in_flight: in_flight.clone(),
                lease: settings.lock_timeout,
            }
            .run(parts_shutdown.clone()),
        );
        parts.spawn(
            Rescuer { queue: self.queue.clone(), effects: self.effects.clone(), every: settings.lock_timeout / 3 }
                .run(parts_shutdown.clone()),
        );
        parts.spawn(Pruner { queue: self.queue.clone(), retention: settings.retention }.run(parts_shutdown.clone()));
        if self.queue.db.backend == db::Backend::Postgres {
            let (url, wakeup) = (self.queue.db.url().to_owned(), self.queue.wakeup.clone());
            parts.spawn(super::wakeup::listen_postgres(url, wakeup, parts_shutdown.clone()));
        }
        let (completer, completer_task) = self.completer().start(in_flight.clone());
        let (hard_stop, hard_stop_signal) = shutdown::channel();

        self.claim_until(shutdown, &in_flight, &completer, &hard_stop_signal).await;

        tracing::info!(target: "job_runner", runner = %self.id, running = in_flight.running(), "stopping: no more claims");
        if tokio::time::timeout(settings.shutdown_timeout, in_flight.none_running()).await.is_err() {
            tracing::warn!(target: "job_runner", runner = %self.id, "jobs still running at the shutdown timeout");
            hard_stop.trigger();
        }
        // The executors hold the other senders: once they are gone the
        // completer writes its backlog and ends. What it cannot write in
        // time is released below, with the jobs that never finished.
        drop(completer);
        let completer_task = AbortOnDrop(completer_task);
        let completer_done = tokio::time::timeout(settings.shutdown_timeout, async {
            let mut task = completer_task;
            let _ = (&mut task.0).await;
        });
        if completer_done.await.is_err() {
            tracing::warn!(target: "job_runner", runner = %self.id, "the completer did not finish in time");
        }
        stop_parts.trigger();
        while parts.join_next().await.is_some() {}

        let released = super::rescuer::release(&self.queue, self.effects.as_ref(), &self.id).await?;
        let failed = released.iter().filter(|j| j.status == pictor_client::models::JobStatus::Failed).count();
        tracing::info!(target: "job_runner", runner = %self.id, released = released.len(), failed,
            "job runner stopped");
        Ok(())
    }

    /// The claimer: claims as many jobs as there are free slots, up to a
    /// batch, and starts their executors, until `shutdown`.
    async fn claim_until(
        &self,
        shutdown: Shutdown,
        in_flight: &Arc<InFlight>,
        completer: &mpsc::Sender<Finished<F::Effect>>,
        hard_stop: &Shutdown,
    ) {
        let settings = &self.settings;
        // The claims' own connection (`db::leases::claimer`): one round trip per claim.
        let mut conn = None;
        let mut retry_in = CLAIM_RETRY_FIRST;
        let mut running = in_flight.watch_running();
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            let free = settings.concurrency.saturating_sub(in_flight.running());
            let mut full_batch = false;
            if free > 0 {
                let want = free.min(settings.batch_size.max(1));
                match self.claim(&mut conn, want).await {
                    Ok(claimed) => {
                        retry_in = CLAIM_RETRY_FIRST;
                        full_batch = claimed.len() == want;
                        let deadline = tokio::time::Instant::now() + settings.job_timeout;
                        in_flight.claimed(claimed.iter().map(Job::lease), deadline);
                        for job in claimed {
                            let executor = Executor {
                                handler: self.registry.get(job.kind),
                                completer: completer.clone(),
                                in_flight: in_flight.clone(),
                                hard_stop: hard_stop.clone(),
                                timeout: settings.job_timeout,
                            };
                            let span = executor::span(&job);
                            tokio::spawn(executor.execute(job).instrument(span));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(target: "job_runner", error = %e, retry_in = ?retry_in, "claim failed");
                        tokio::select! {
                            () = &mut stop => break,
                            () = tokio::time::sleep(retry_in) => {}
                        }
                        retry_in = (retry_in * 2).min(CLAIM_RETRY_MAX);
                        continue;
                    }
                }
            }
            if full_batch && in_flight.running() < settings.concurrency {
                continue; // more may be due: claim again at once
            }
            // Its own claims changed the count too: only later changes wake it.
            running.borrow_and_update();
            tokio::select! {
                () = &mut stop => break,
                () = self.queue.wakeup.wait() => {}
                _ = running.changed() => {}
                () = tokio::time::sleep(settings.poll_interval) => {}
            }
        }
        if let Some(conn) = conn.take()
            && let Err(e) = conn.close().await
        {
            tracing::debug!(target: "job_runner", error = %e, "closing the claims' connection failed");
        }
    }

    /// Claims up to `want` jobs on `conn`, opening the claims' connection
    /// when it holds none; after an error it holds none (the next claim
    /// opens a fresh one).
    async fn claim(&self, conn: &mut Option<AnyConnection>, want: usize) -> Result<Vec<Job>, QueueError> {
        let db = &self.queue.db;
        let at = self.queue.clock.lease_time();
        let claim = Claim {
            runner: &self.id,
            limit: want,
            lease: self.settings.lock_timeout,
            at,
            together: &self.settings.claim_together,
        };
        if !db.may_hold_writer() {
            let mut writer = db.write_connection(Durability::Bookkeeping).await?;
            return Ok(db::leases::claim(&mut *writer, db.backend, claim).await?);
        }
        let held = match conn {
            Some(held) => held,
            None => conn.insert(db::leases::claimer(db).await?),
        };
        match db::leases::claim(&mut *held, db.backend, claim).await {
            Ok(claimed) => Ok(claimed),
            Err(e) => {
                *conn = None;
                Err(e.into())
            }
        }
    }
}
