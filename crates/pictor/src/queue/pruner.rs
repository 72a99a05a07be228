//! Drops COMPLETED and CANCELLED jobs older than the retention, so the job
//! table stays small. FAILED jobs stay until an operator acts on them.

use std::time::Duration;

use super::{Queue, QueueError};
use crate::db::{self, Durability};
use crate::shutdown::Shutdown;

/// How long finished jobs are kept by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// How often old jobs are pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3_600);

/// Prunes periodically.
pub struct Pruner {
    /// The queue.
    pub queue: Queue,
    /// Age after which finished jobs go.
    pub retention: Duration,
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
pub async fn prune_once(queue: &Queue, retention: Duration) -> Result<u64, QueueError> {
    let before = queue.clock.now().plus_ms(-i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
    let mut conn = queue.db.write_connection(Durability::Bookkeeping).await?;
    Ok(db::jobs::prune_finished(&mut *conn, before).await?)
}
