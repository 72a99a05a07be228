//! Writes every ending of an attempt: a success with its effects and
//! children, a retry with backoff, a wait for a resource (a full disk: the
//! attempt given back), a final failure, or nothing when the lease was
//! lost. Whatever finished while the previous commit ran goes
//! into the next one (group commit): one commit, one sync, serves many jobs
//! without delaying any. Every success of a group completes in one
//! statement; then each success writes its effects and children (one
//! statement for all of a job's children), each failure its ending, in the
//! group's transaction (DESIGN invariant 2: together or not at all). Every
//! write checks the lease.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Any;
use sqlx::pool::PoolConnection;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::handler::{Applied, Effects, ErrorKind, FailedJob, HandlerError, Outcome};
use super::in_flight::InFlight;
use super::retry::RetryPolicy;
use super::{Job, Lease, Queue, QueueError};
use crate::clock::Millis;
use crate::db::{self, Durability, Tx};

/// Attempts at writing a group's endings before leaving its jobs to the rescuer.
pub const COMPLETION_TRIES: u32 = 4;
/// Wait before the second attempt at writing; doubled before each next one.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(500);
/// Default most jobs written in one group.
pub const DEFAULT_COMPLETION_BATCH: usize = 500;

/// An attempt that ended, on its way to the completer.
#[derive(Debug)]
pub struct Finished<E> {
    /// The job, as claimed.
    pub job: Job,
    /// What its handler returned.
    pub result: Result<Outcome<E>, HandlerError>,
    /// How long the handler ran.
    pub elapsed: Duration,
}

/// How an attempt ended, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// COMPLETED; `children` jobs were enqueued.
    Completed {
        /// Children actually inserted (deduplicated ones excluded).
        children: usize,
    },
    /// Back to PENDING, due again at `run_at`.
    Retrying {
        /// When.
        run_at: Millis,
    },
    /// Back to PENDING until `run_at` with its attempt given back: it
    /// failed for want of a resource (a full disk), not of itself.
    Waiting {
        /// When it tries again.
        run_at: Millis,
    },
    /// FAILED for good; its image too.
    Failed,
    /// Another runner owns the job now: nothing was written.
    LeaseLost,
}

/// Writes the endings of one runner's jobs.
pub struct Completer<F: Effects> {
    queue: Queue,
    effects: Arc<F>,
    runner: Arc<str>,
    retry: RetryPolicy,
    max_batch: usize,
    /// The completer's own write connection where the backend allows one
    /// (as the runner's claims have theirs): its statements and
    /// transactions skip the pool's ping before and after each checkout.
    /// Only used through `&mut self`: a connection is `Send` but not `Sync`.
    conn: Option<PoolConnection<Any>>,
    /// Jobs that failed for want of a resource (a full disk) since this
    /// completer last completed one: their wait grows with it.
    waits: i64,
}

impl<F: Effects> Completer<F> {
    /// A completer for the jobs `runner` holds, writing at most `max_batch`
    /// endings per commit.
    pub fn new(queue: Queue, effects: Arc<F>, runner: Arc<str>, retry: RetryPolicy, max_batch: usize) -> Self {
        Self { queue, effects, runner, retry, max_batch: max_batch.max(1), conn: None, waits: 0 }
    }

    /// Starts writing what arrives on the returned sender, in groups; each
    /// group's jobs leave `in_flight` once their endings are written, or
    /// once writing failed [`COMPLETION_TRIES`] times (the rescuer then
    /// takes them). The task ends when every sender is dropped and the
    /// backlog (at most two groups) is written.
    pub fn start(self, in_flight: Arc<InFlight>) -> (mpsc::Sender<Finished<F::Effect>>, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(self.max_batch.saturating_mul(2));
        (tx, tokio::spawn(self.run(rx, in_flight)))
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Finished<F::Effect>>, in_flight: Arc<InFlight>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        while rx.recv_many(&mut batch, self.max_batch).await > 0 {
            let endings = self.write_or_split(&batch).await;
            if endings.iter().any(|e| matches!(e, Some(Ending::Completed { .. }))) {
                self.waits = 0; // work gets done: whatever was missing is back
            }
            for (finished, ending) in batch.iter().zip(&endings) {
                log(finished, ending.as_ref());
            }
            self.queue.telemetry.record(|| {
                for (finished, ending) in batch.iter().zip(&endings) {
                    record(finished, ending.as_ref());
                }
            });
            in_flight.ended(batch.iter().map(|f| f.job.lease()));
            batch.clear();
        }
    }

    /// Each job's ending, `None` where it could not be written. A group
    /// that cannot be written together is written job by job, so that one
    /// bad result cannot hold back the others.
    async fn write_or_split(&mut self, batch: &[Finished<F::Effect>]) -> Vec<Option<Ending>> {
        let all_bare = batch.iter().all(|f| f.result.as_ref().is_ok_and(Outcome::is_bare));
        if batch.len() > 1 && !all_bare {
            match self.write(batch).await {
                Ok(endings) => return endings.into_iter().map(Some).collect(),
                Err(e) => tracing::warn!(target: "job_runner", jobs = batch.len(), error = %e,
                    "cannot record the jobs' results together; recording each alone"),
            }
            let mut endings = Vec::with_capacity(batch.len());
            for finished in batch {
                endings.push(self.write_with_retries(std::slice::from_ref(finished)).await.and_then(|mut e| e.pop()));
            }
            return endings;
        }
        match self.write_with_retries(batch).await {
            Some(endings) => endings.into_iter().map(Some).collect(),
            None => vec![None; batch.len()],
        }
    }

    /// [`Completer::write`] until it succeeds, at most [`COMPLETION_TRIES`]
    /// times, with doubling waits between: the queue's one retry loop.
    async fn write_with_retries(&mut self, batch: &[Finished<F::Effect>]) -> Option<Vec<Ending>> {
        let mut delay = FIRST_RETRY_DELAY;
        for attempt in 1..=COMPLETION_TRIES {
            match self.write(batch).await {
                Ok(endings) => return Some(endings),
                Err(e) if attempt < COMPLETION_TRIES => {
                    tracing::warn!(target: "job_runner", jobs = batch.len(), error = %e,
                        "cannot record the jobs' results; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => tracing::error!(target: "job_runner", jobs = batch.len(), error = %e,
                    "cannot record the jobs' results; leaving them to the rescuer"),
            }
        }
        None
    }

    /// Writes the endings of `batch` in one commit (bare successes alone:
    /// one statement; every success's completion: one statement) and says
    /// how each job ended, in order.
    ///
    /// # Errors
    /// The database failed: nothing was written, and the jobs stay RUNNING
    /// until written again or rescued.
    pub async fn write(&mut self, batch: &[Finished<F::Effect>]) -> Result<Vec<Ending>, QueueError> {
        let now = self.queue.clock.now();
        let all_bare = batch.iter().all(|f| f.result.as_ref().is_ok_and(Outcome::is_bare));
        let succeeded: Vec<Lease> = batch.iter().filter(|f| f.result.is_ok()).map(|f| f.job.lease()).collect();
        if all_bare {
            let completed: HashSet<Lease> = self.complete_bare(&succeeded, now).await?.into_iter().collect();
            return Ok(succeeded.iter().map(|lease| bare_ending(&completed, *lease)).collect());
        }
        let db = self.queue.db.clone();
        let mut held = self.take_own_connection().await?;
        let mut tx = match held.as_mut() {
            Some(conn) => db.begin_write_on(conn, Durability::Bookkeeping).await?,
            None => db.begin_write(Durability::Bookkeeping).await?,
        };
        let completed: HashSet<Lease> =
            db::leases::complete_many(&mut *tx, db.backend, &succeeded, &self.runner, now).await?.into_iter().collect();
        let mut endings = Vec::with_capacity(batch.len());
        for finished in batch {
            let ending = match &finished.result {
                // Matched by lease: an earlier execution of a job held again
                // in the same group writes nothing.
                Ok(outcome) if outcome.is_bare() || !completed.contains(&finished.job.lease()) => {
                    bare_ending(&completed, finished.job.lease())
                }
                Ok(outcome) => self.apply(&mut tx, &finished.job, outcome, now).await?,
                Err(error) => self.fail(&mut tx, &finished.job, error, now).await?,
            };
            endings.push(ending);
        }
        tx.commit().await.map_err(db::DbError::from)?;
        self.conn = held;
        if endings.iter().any(|e| matches!(e, Ending::Completed { children } if *children > 0)) {
            self.queue.wake();
        }
        Ok(endings)
    }

    /// Completes bare successes in one statement, on the completer's own
    /// connection where the backend allows one.
    async fn complete_bare(&mut self, leases: &[Lease], now: Millis) -> Result<Vec<Lease>, QueueError> {
        let db = self.queue.db.clone();
        let Some(mut conn) = self.take_own_connection().await? else {
            let mut writer = db.write_connection(Durability::Bookkeeping).await?;
            return Ok(db::leases::complete_many(&mut *writer, db.backend, leases, &self.runner, now).await?);
        };
        let completed = db::leases::complete_many(&mut *conn, db.backend, leases, &self.runner, now).await?;
        self.conn = Some(conn);
        Ok(completed)
    }

    /// The completer's own write connection, where the backend allows one,
    /// taken out of `self` (or opened) for one write: the caller puts it
    /// back once the write succeeded, and after an error lets it go to the
    /// pool, which checks it (its state is unknown).
    async fn take_own_connection(&mut self) -> Result<Option<PoolConnection<Any>>, QueueError> {
        let db = &self.queue.db;
        if !db.may_hold_writer() {
            return Ok(None);
        }
        Ok(Some(match self.conn.take() {
            Some(conn) => conn,
            None => db.write_connection(Durability::Bookkeeping).await?,
        }))
    }

    /// Writes what a completed job's success brings: its effects and its
    /// children (none when the effects find their subject gone).
    async fn apply(
        &mut self,
        tx: &mut Tx<'_>,
        job: &Job,
        outcome: &Outcome<F::Effect>,
        now: Millis,
    ) -> Result<Ending, QueueError> {
        if self.effects.apply(tx, &outcome.effects, now).await? == Applied::SubjectGone {
            let _span = super::executor::span(job).entered();
            tracing::info!(target: "job_runner", dropped = outcome.children.len(),
                "the job's subject was deleted while it ran; its children are not enqueued");
            return Ok(Ending::Completed { children: 0 });
        }
        let children = self.queue.enqueue_many_in(tx, &outcome.children).await?;
        Ok(Ending::Completed { children: usize::try_from(children).unwrap_or(usize::MAX) })
    }

    /// Writes a failed attempt: a retry with backoff while attempts remain
    /// and the error is retryable, else FAILED for the job and, through the
    /// effects, its image.
    async fn fail(
        &mut self,
        tx: &mut Tx<'_>,
        job: &Job,
        error: &HandlerError,
        now: Millis,
    ) -> Result<Ending, QueueError> {
        let message = error.chain();
        if error.kind() == ErrorKind::Unavailable {
            // However long the disk stays full, the job waits for space
            // rather than fail: its attempt is given back, and its wait
            // grows while such failures follow each other.
            self.waits = self.waits.saturating_add(1);
            let run_at = now.plus_ms(self.retry.next_wait_ms(self.waits));
            let given_back = db::leases::Attempt::GivenBack;
            if !db::leases::retry_later(&mut **tx, job.lease(), &self.runner, &message, run_at, now, given_back).await?
            {
                return Ok(Ending::LeaseLost);
            }
            return Ok(Ending::Waiting { run_at });
        }
        if error.kind() == ErrorKind::Permanent || job.attempts >= job.max_attempts {
            if !db::leases::fail(&mut **tx, job.lease(), &self.runner, &message, now).await? {
                return Ok(Ending::LeaseLost);
            }
            let failed = FailedJob { kind: job.kind, image_id: job.image_id.as_ref(), error: &message };
            self.effects.failed(tx, failed, now).await?;
            return Ok(Ending::Failed);
        }
        let run_at = now.plus_ms(self.retry.next_delay_ms(job.attempts));
        let spent = db::leases::Attempt::Spent;
        if !db::leases::retry_later(&mut **tx, job.lease(), &self.runner, &message, run_at, now, spent).await? {
            return Ok(Ending::LeaseLost);
        }
        Ok(Ending::Retrying { run_at })
    }
}

/// How a success ended once its completion statement ran: completed when
/// the statement returned its lease.
fn bare_ending(completed: &HashSet<Lease>, lease: Lease) -> Ending {
    if completed.contains(&lease) { Ending::Completed { children: 0 } } else { Ending::LeaseLost }
}

/// Records an attempt's run time by its ending, and retries and failures
/// (into the current recorder: the completer's `Telemetry::record`).
fn record<E>(finished: &Finished<E>, ending: Option<&Ending>) {
    use crate::telemetry::{JOB_DURATION, JOB_FAILURES, JOB_RETRIES};
    let kind = finished.job.kind.to_string();
    let outcome = match ending {
        Some(Ending::Completed { .. }) => "completed",
        Some(Ending::Retrying { .. }) => "retrying",
        Some(Ending::Waiting { .. }) => "waiting",
        Some(Ending::Failed) => "failed",
        Some(Ending::LeaseLost) => "lease_lost",
        // Not written: the rescuer decides later.
        None => return,
    };
    metrics::histogram!(JOB_DURATION, "type" => kind.clone(), "outcome" => outcome)
        .record(finished.elapsed.as_secs_f64());
    match ending {
        Some(Ending::Retrying { .. }) => metrics::counter!(JOB_RETRIES, "type" => kind).increment(1),
        Some(Ending::Failed) => metrics::counter!(JOB_FAILURES, "type" => kind).increment(1),
        _ => {}
    }
}

/// Logs a job's ending inside the job's span (its id, type and image id).
fn log<E>(finished: &Finished<E>, ending: Option<&Ending>) {
    let job = &finished.job;
    let _span = super::executor::span(job).entered();
    let error = finished.result.as_ref().err().map(HandlerError::chain);
    match ending {
        Some(Ending::Completed { children }) => {
            tracing::info!(target: "job_runner", children, "job completed");
        }
        Some(Ending::Retrying { run_at }) => tracing::warn!(target: "job_runner",
            attempt = job.attempts, run_at = run_at.get(), error, "job failed; will retry"),
        Some(Ending::Waiting { run_at }) => tracing::warn!(target: "job_runner", run_at = run_at.get(), error,
            "job waits for a resource; its attempt is given back"),
        Some(Ending::Failed) => {
            tracing::warn!(target: "job_runner", attempt = job.attempts, error, "job failed for good")
        }
        Some(Ending::LeaseLost) => tracing::warn!(target: "job_runner", "lease lost to another runner; result dropped"),
        None => {}
    }
}
