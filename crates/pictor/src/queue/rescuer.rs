//! Returns jobs whose lease expired (their runner crashed or hung) to
//! PENDING, or to FAILED when out of attempts (DESIGN invariant 4).

use super::completer::fail_images_of;
use super::{Queue, QueueError};
use crate::db::{self, Durability, jobs::Rescued};

/// The error a rescued job carries.
pub const LEASE_EXPIRED: &str = "the runner's lease expired (it crashed, hung or lost the database)";

/// Rescues every expired job once; returns what moved.
///
/// # Errors
/// The database failed.
pub async fn rescue_once(queue: &Queue) -> Result<Vec<Rescued>, QueueError> {
    let now = queue.clock.now_ms();
    let mut tx = queue.db.begin_write(Durability::Bookkeeping).await?;
    let rescued = db::jobs::rescue_expired(&mut *tx, LEASE_EXPIRED, now).await?;
    fail_images_of(&mut tx, &rescued, &format!("processing failed: {LEASE_EXPIRED}"), now).await?;
    tx.commit().await?;
    if !rescued.is_empty() {
        tracing::warn!(target: "job_runner", count = rescued.len(), "rescued jobs with expired leases");
        queue.wake();
    }
    Ok(rescued)
}
