//! Returns jobs whose lease expired (their runner crashed or hung) to
//! PENDING, or to FAILED when out of attempts (DESIGN invariant 4), telling
//! the domain of the failed ones in the same transaction. A runner stopping
//! gives back what it still holds the same way: the interrupted attempt
//! counts, so a job that hangs every runner ends FAILED, restarts or not.

use std::sync::Arc;
use std::time::Duration;

use pictor_client::models::JobStatus;

use super::handler::{Effects, FailedJob};
use super::{Queue, QueueError};
use crate::db::{self, Durability, leases::GiveBack, leases::Rescued};
use crate::shutdown::Shutdown;

/// The error a rescued job carries.
pub const LEASE_EXPIRED: &str = "the runner's lease expired (it crashed, hung or lost the database)";
/// The error a job released by a stopping runner carries.
pub const RELEASED: &str = "the runner stopped before the job finished";

/// Rescues expired leases periodically.
pub struct Rescuer<F> {
    /// The queue.
    pub queue: Queue,
    /// Told of jobs that end FAILED.
    pub effects: Arc<F>,
    /// How often it looks.
    pub every: Duration,
}

impl<F: Effects> Rescuer<F> {
    /// Rescues every `every` until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) {
        let mut tick = tokio::time::interval(self.every.max(Duration::from_millis(50)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = rescue_once(&self.queue, self.effects.as_ref()).await {
                tracing::warn!(target: "job_runner", error = %e, "rescue failed");
            }
        }
    }
}

/// Rescues every expired job once; returns what moved.
///
/// # Errors
/// The database failed.
pub async fn rescue_once<F: Effects>(queue: &Queue, effects: &F) -> Result<Vec<Rescued>, QueueError> {
    let rescued = give_back(queue, effects, GiveBack::Expired, LEASE_EXPIRED).await?;
    if !rescued.is_empty() {
        tracing::warn!(target: "job_runner", count = rescued.len(), "rescued jobs with expired leases");
    }
    Ok(rescued)
}

/// Gives back every job `runner` holds, as it stops; returns what moved.
///
/// # Errors
/// The database failed.
pub async fn release<F: Effects>(queue: &Queue, effects: &F, runner: &str) -> Result<Vec<Rescued>, QueueError> {
    give_back(queue, effects, GiveBack::HeldBy(runner), RELEASED).await
}

/// Returns the jobs `which` selects, telling `effects` of those out of
/// attempts, in one transaction; wakes the runners when some will run again.
async fn give_back<F: Effects>(
    queue: &Queue,
    effects: &F,
    which: GiveBack<'_>,
    error: &str,
) -> Result<Vec<Rescued>, QueueError> {
    let now = queue.clock.now();
    let mut tx = queue.db.begin_write(Durability::Bookkeeping).await?;
    let returned = db::leases::give_back(&mut *tx, queue.db.backend, which, error, queue.clock.lease_time()).await?;
    for job in returned.iter().filter(|j| j.status == JobStatus::Failed) {
        let failed = FailedJob { kind: job.kind, image_id: job.image_id.as_ref(), error };
        effects.failed(&mut tx, failed, now).await?;
    }
    tx.commit().await.map_err(db::DbError::from)?;
    if returned.iter().any(|j| j.status == JobStatus::Pending) {
        queue.wake();
    }
    Ok(returned)
}
