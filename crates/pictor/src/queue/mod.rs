//! The database-backed job queue: enqueue, claim with a lease, run handlers
//! on a bounded pool, complete or retry with backoff, rescue expired leases.
//! Roles are one per file, as agent nouns: [`runner`] (claims and
//! dispatches), [`completer`] (commits outcomes), [`rescuer`] (returns
//! expired leases), [`pruner`] (drops old finished jobs).

pub mod clock;
pub mod completer;
pub mod job;
pub mod pruner;
pub mod rescuer;
pub mod retry;
pub mod runner;
pub mod wakeup;

use pictor_client::models::JobStatus;

use crate::db::{self, Db, Durability, Tx};
use clock::SharedClock;
use job::{Job, NewJob};
use wakeup::Wakeup;

/// Errors of queue operations.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The database failed.
    #[error("job queue database error")]
    Db(#[from] sqlx::Error),
    /// No job has that id.
    #[error("no job {0}")]
    NotFound(i64),
    /// The job is not in a state that allows the operation.
    #[error("job {id} is {status}: {action} needs it {needed}")]
    WrongState {
        /// The job.
        id: i64,
        /// Its state.
        status: JobStatus,
        /// What was asked.
        action: &'static str,
        /// What state it needs.
        needed: &'static str,
    },
}

/// Default attempts before a job ends FAILED.
pub const DEFAULT_MAX_ATTEMPTS: i64 = 5;

/// The producer side of the queue, shared by the HTTP API and the runner.
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
}

impl Queue {
    /// Inserts a job inside the caller's transaction. Call [`Queue::wake`]
    /// after the commit.
    ///
    /// # Errors
    /// The database failed.
    pub async fn enqueue_in(&self, tx: &mut Tx, job: &NewJob) -> Result<Option<i64>, QueueError> {
        // On PostgreSQL the insert notifies the runners itself.
        Ok(db::jobs::insert(&mut **tx, self.db.backend, job, self.max_attempts, self.clock.now_ms()).await?)
    }

    /// Inserts one job on its own: one statement in its own transaction
    /// (on PostgreSQL it notifies every process's runners as it commits),
    /// then wakes this process's runners. Returns its id, or `None` when its
    /// dedupe key exists already.
    ///
    /// # Errors
    /// The database failed.
    pub async fn enqueue(&self, job: &NewJob) -> Result<Option<i64>, QueueError> {
        let mut conn = self.db.write_connection(Durability::Acknowledged).await?;
        let id = db::jobs::insert(&mut *conn, self.db.backend, job, self.max_attempts, self.clock.now_ms()).await?;
        drop(conn);
        if id.is_some() {
            self.wake();
        }
        Ok(id)
    }

    /// Inserts many jobs inside the caller's transaction in one statement;
    /// returns how many were inserted (jobs whose dedupe key exists already
    /// are skipped). Call [`Queue::wake`] after the commit.
    ///
    /// # Errors
    /// The database failed.
    pub async fn enqueue_many_in(&self, tx: &mut Tx, jobs: &[NewJob]) -> Result<u64, QueueError> {
        let inserted =
            db::jobs::insert_many(&mut **tx, self.db.backend, jobs, self.max_attempts, self.clock.now_ms()).await?;
        if inserted > 0 {
            self.notify_in(tx).await?;
        }
        Ok(inserted)
    }

    /// On PostgreSQL, notifies every process's runner when `tx` commits.
    async fn notify_in(&self, tx: &mut Tx) -> Result<(), QueueError> {
        Ok(db::jobs::notify(&mut **tx, self.db.backend).await?)
    }

    /// Wakes an idle runner: jobs were committed.
    pub fn wake(&self) {
        self.wakeup.notify();
    }

    /// Re-queues a FAILED or CANCELLED job with fresh attempts and puts its
    /// image back to PROCESSING.
    ///
    /// # Errors
    /// No such job, a job in another state, or a database failure.
    pub async fn retry(&self, id: i64) -> Result<Job, QueueError> {
        let now = self.clock.now_ms();
        let mut tx = self.db.begin_write(Durability::Acknowledged).await?;
        let Some(job) = db::jobs::requeue(&mut *tx, id, now).await? else {
            drop(tx);
            return Err(self.state_error(id, "retry", "FAILED or CANCELLED").await);
        };
        if let Some(image_id) = &job.image_id {
            db::images::mark_processing(&mut *tx, image_id, now).await?;
        }
        self.notify_in(&mut tx).await?;
        tx.commit().await?;
        self.wake();
        Ok(job)
    }

    /// Re-queues every FAILED job; returns how many.
    ///
    /// # Errors
    /// A database failure.
    pub async fn retry_all_failed(&self) -> Result<u64, QueueError> {
        let filter = db::jobs::JobFilter { status: Some(JobStatus::Failed), ..Default::default() };
        let mut retried = 0;
        loop {
            let (jobs, _) = db::jobs::list(&self.db.pool, &filter, 500, 0).await?;
            if jobs.is_empty() {
                return Ok(retried);
            }
            for job in jobs {
                self.retry(job.id).await?;
                retried += 1;
            }
        }
    }

    /// Cancels a PENDING or FAILED job.
    ///
    /// # Errors
    /// No such job, a job in another state, or a database failure.
    pub async fn cancel(&self, id: i64) -> Result<Job, QueueError> {
        let mut conn = self.db.write_connection(Durability::Acknowledged).await?;
        let cancelled = db::jobs::cancel(&mut *conn, id, self.clock.now_ms()).await?;
        drop(conn);
        match cancelled {
            Some(job) => Ok(job),
            None => Err(self.state_error(id, "cancel", "PENDING or FAILED").await),
        }
    }

    async fn state_error(&self, id: i64, action: &'static str, needed: &'static str) -> QueueError {
        match db::jobs::get(&self.db.pool, id).await {
            Ok(Some(job)) => QueueError::WrongState { id, status: job.status, action, needed },
            Ok(None) => QueueError::NotFound(id),
            Err(e) => QueueError::Db(e),
        }
    }
}
