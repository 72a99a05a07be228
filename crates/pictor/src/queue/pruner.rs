//! Drops finished jobs once they are older than their retention, so the
//! job table stays small: COMPLETED and CANCELLED ones after a day, FAILED
//! ones (which an operator may still retry) after two weeks, by default.

use std::time::Duration;

use super::{Queue, QueueError};
use crate::db::{self, Durability};
use crate::shutdown::Shutdown;

/// Seconds a COMPLETED or CANCELLED job is kept by default (one day).
pub const DEFAULT_COMPLETED_RETENTION_SECS: u64 = 24 * 60 * 60;
/// Seconds a FAILED job is kept by default (14 days).
pub const DEFAULT_FAILED_RETENTION_SECS: u64 = 14 * 24 * 60 * 60;

/// How long finished jobs are kept, by how they ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// COMPLETED and CANCELLED jobs.
    pub completed: Duration,
    /// FAILED jobs.
    pub failed: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            completed: Duration::from_secs(DEFAULT_COMPLETED_RETENTION_SECS),
            failed: Duration::from_secs(DEFAULT_FAILED_RETENTION_SECS),
        }
    }
}
/// How often old jobs are pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

/// Prunes periodically.
pub struct Pruner {
    /// The queue.
    pub queue: Queue,
    /// Ages after which finished jobs go.
    pub retention: Retention,
}

impl Pruner {
    /// Prunes at once, then every [`PRUNE_EVERY`], until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) {
        shutdown
            .every(PRUNE_EVERY, || async {
                match prune_once(&self.queue, self.retention).await {
                    Ok(n) if n > 0 => tracing::info!(target: "job_runner", pruned = n, "pruned finished jobs"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(target: "job_runner", error = %e, "prune failed"),
                }
            })
            .await;
    }
}

/// Prunes once; returns how many jobs were deleted.
///
/// # Errors
/// The database failed.
pub async fn prune_once(queue: &Queue, retention: Retention) -> Result<u64, QueueError> {
    let now = queue.clock.now();
    let ago = |age: Duration| now.plus_ms(-i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
    let mut conn = queue.db.write_connection(Durability::Bookkeeping).await?;
    Ok(db::jobs::prune_finished(&mut *conn, ago(retention.completed), ago(retention.failed)).await?)
}
