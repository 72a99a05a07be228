//! The database-backed job queue: enqueue, claim with a lease, run handlers,
//! commit every ending, rescue expired leases. It knows jobs, not images:
//! what a job's success means is the [`handler::Effects`] of the domain it
//! serves. Roles are one per file, as agent nouns: the [`runner`] claims
//! and starts the others, the [`executor`] runs one job, the [`completer`]
//! writes every ending, the [`heartbeat`] renews leases, the [`rescuer`]
//! returns expired ones, the [`pruner`] drops old finished jobs.

pub mod completer;
pub mod executor;
pub mod handler;
pub mod heartbeat;
pub mod in_flight;
pub mod pruner;
pub mod rescuer;
pub mod retry;
pub mod runner;
pub mod wakeup;

use pictor_client::models::JobStatus;

use crate::clock::SharedClock;
pub use crate::db::jobs::{Job, JobId, Lease, NewJob};
use crate::db::{self, Db, DbError, Durability, ImageId, Tx};
use wakeup::Wakeup;

/// Default jobs claimed per statement (the card's batch size).
pub const DEFAULT_BATCH_SIZE: usize = 5;
/// Default fallback poll interval, ms (the card's 5 s; an enqueue wakes the runner at once).
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 5_000;
/// Default lease, seconds (the card's 30 s lock timeout).
pub const DEFAULT_LOCK_TIMEOUT_SECS: u64 = 30;
/// Default time in-flight jobs get to finish at shutdown, seconds.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 30;
/// Default longest run of one attempt, seconds. Image jobs take well under a
/// second on ordinary photos; five minutes leaves room for the largest
/// images on a slow machine and still frees a hung job's slot.
pub const DEFAULT_JOB_TIMEOUT_SECS: u64 = 300;
/// Default attempts before a job ends FAILED.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// Errors of queue operations.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The database failed.
    #[error("job queue database error")]
    Db(#[from] DbError),
    /// No job has that id.
    #[error("no job {0}")]
    NotFound(JobId),
    /// The job is not in a state that allows the operation.
    #[error("job {id} is {status}: {action} needs it {needed}")]
    WrongState {
        /// The job.
        id: JobId,
        /// Its state.
        status: JobStatus,
        /// What was asked.
        action: &'static str,
        /// What state it needs.
        needed: &'static str,
    },
}

/// The producer side of the queue, shared by the images layer and the runner.
#[derive(Debug, Clone)]
pub struct Queue {
    /// The database.
    pub db: Db,
    /// Where "now" comes from.
    pub clock: SharedClock,
    /// Wakes idle runners in this process.
    pub wakeup: Wakeup,
    /// Attempts a new job gets.
    pub max_attempts: i64,
    /// Where the runner, completer and rescuer record job metrics.
    pub telemetry: crate::telemetry::Telemetry,
}

impl Queue {
    /// Inserts a job inside the caller's transaction (on PostgreSQL the
    /// insert notifies every process's runners as it commits). Call
    /// [`Queue::wake`] after the commit.
    ///
    /// # Errors
    /// The database failed.
    pub async fn enqueue_in(&self, tx: &mut Tx<'_>, job: &NewJob) -> Result<Option<JobId>, QueueError> {
        Ok(db::jobs::insert(&mut **tx, self.db.backend, job, self.max_attempts, self.clock.now()).await?)
    }

    /// Inserts one job on its own: one statement in its own transaction,
    /// then wakes this process's runners. Returns its id, or `None` when its
    /// dedupe key exists already.
    ///
    /// # Errors
    /// The database failed.
    pub async fn enqueue(&self, job: &NewJob) -> Result<Option<JobId>, QueueError> {
        let mut conn = self.db.write_connection(Durability::Acknowledged).await?;
        let id = db::jobs::insert(&mut *conn, self.db.backend, job, self.max_attempts, self.clock.now()).await?;
        drop(conn);
        if id.is_some() {
            self.wake();
        }
        Ok(id)
    }

    /// Inserts many jobs inside the caller's transaction in one statement
    /// (on PostgreSQL it also notifies every process's runners as it
    /// commits); returns how many were inserted (jobs whose dedupe key
    /// exists already are skipped). Call [`Queue::wake`] after the commit.
    ///
    /// # Errors
    /// The database failed.
    pub async fn enqueue_many_in(&self, tx: &mut Tx<'_>, jobs: &[NewJob]) -> Result<u64, QueueError> {
        Ok(db::jobs::insert_many(&mut **tx, self.db.backend, jobs, self.max_attempts, self.clock.now()).await?)
    }

    /// Inserts many jobs inside the caller's transaction in one statement,
    /// re-arming finished jobs of the same dedupe key and leaving pending or
    /// running ones (work redone on request, never queued twice); returns
    /// the image of each job queued. Call [`Queue::wake`] after the commit.
    ///
    /// # Errors
    /// The database failed.
    pub async fn enqueue_or_rearm_many_in(
        &self,
        tx: &mut Tx<'_>,
        jobs: &[NewJob],
    ) -> Result<Vec<Option<ImageId>>, QueueError> {
        let queued =
            db::jobs::insert_or_rearm_many(&mut **tx, self.db.backend, jobs, self.max_attempts, self.clock.now())
                .await?;
        if !queued.is_empty() {
            db::jobs::notify(&mut **tx, self.db.backend).await?;
        }
        Ok(queued)
    }

    /// Wakes an idle runner: jobs were committed.
    pub fn wake(&self) {
        self.wakeup.notify();
    }

    /// One job.
    ///
    /// # Errors
    /// The database failed.
    pub async fn get(&self, id: JobId) -> Result<Option<Job>, QueueError> {
        Ok(db::jobs::get(&self.db.pool, id).await?)
    }

    /// Re-queues a FAILED or CANCELLED job with fresh attempts inside the
    /// caller's transaction, notifying the runners on commit; call
    /// [`Queue::wake`] after it.
    ///
    /// # Errors
    /// No such job, a job in another state, or a database failure.
    pub async fn requeue_in(&self, tx: &mut Tx<'_>, id: JobId) -> Result<Job, QueueError> {
        match db::jobs::requeue(&mut **tx, id, self.clock.now()).await? {
            Some(job) => {
                db::jobs::notify(&mut **tx, self.db.backend).await?;
                Ok(job)
            }
            None => Err(self.state_error(&mut **tx, id, "retry", "FAILED or CANCELLED").await),
        }
    }

    /// Cancels a PENDING or FAILED job.
    ///
    /// # Errors
    /// No such job, a job in another state, or a database failure.
    pub async fn cancel(&self, id: JobId) -> Result<Job, QueueError> {
        let mut conn = self.db.write_connection(Durability::Acknowledged).await?;
        match db::jobs::cancel(&mut *conn, id, self.clock.now()).await? {
            Some(job) => Ok(job),
            None => Err(self.state_error(&mut *conn, id, "cancel", "PENDING or FAILED").await),
        }
    }

    /// Why `action` found no job `id` in the state it needs.
    async fn state_error<'c>(
        &self,
        exec: impl sqlx::Executor<'c, Database = sqlx::Any>,
        id: JobId,
        action: &'static str,
        needed: &'static str,
    ) -> QueueError {
        match db::jobs::get(exec, id).await {
            Ok(Some(job)) => QueueError::WrongState { id, status: job.status, action, needed },
            Ok(None) => QueueError::NotFound(id),
            Err(e) => QueueError::Db(e),
        }
    }
}
