//! Drops COMPLETED and CANCELLED jobs older than the retention, so the job
//! table stays small. FAILED jobs stay until an operator acts on them.

use super::{Queue, QueueError};
use crate::db::{self, Durability};

/// How long finished jobs are kept by default.
pub const DEFAULT_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1_000;

/// Prunes once; returns how many jobs were deleted.
///
/// # Errors
/// The database failed.
pub async fn prune_once(queue: &Queue, retention_ms: i64) -> Result<u64, QueueError> {
    let before = queue.clock.now_ms() - retention_ms;
    let mut conn = queue.db.write_connection(Durability::Bookkeeping).await?;
    Ok(db::jobs::prune_finished(&mut *conn, before).await?)
}
