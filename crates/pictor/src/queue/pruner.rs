//! Drops finished jobs once they are older than their retention, so the
//! job table stays small: COMPLETED and CANCELLED ones after a day, FAILED
//! ones (which an operator may still retry) after two weeks, by default. It
//! deletes in small batches, each its own short transaction, so that it
//! never holds the writer (SQLite's one write lock) for long, and then
//! folds the job and image counts of connections that ended.

use std::time::{Duration, Instant};

use super::{Queue, QueueError};
use crate::clock::Millis;
use crate::db::jobs::Ended;
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
/// Most jobs deleted per statement: a few milliseconds of the writer each
/// (BENCHMARKS.md, "Scale"), so uploads and completions wait at most that.
pub const PRUNE_BATCH: i64 = 250;
/// Fewest jobs a statement deletes while the batches shrink.
pub const PRUNE_BATCH_MIN: i64 = 16;
/// A statement slower than this halves the next batch (a busy disk, a
/// checkpoint, a cold cache); one faster than a quarter of it doubles the
/// next, up to [`PRUNE_BATCH`]. So a slow machine keeps each hold of the
/// writer near this, not at whatever 250 deletes cost there.
pub const PRUNE_STATEMENT_TARGET: Duration = Duration::from_millis(20);

/// The next batch size after a statement of `batch` jobs took `took`.
#[must_use]
pub fn next_batch(batch: i64, took: Duration) -> i64 {
    if took > PRUNE_STATEMENT_TARGET {
        (batch / 2).max(PRUNE_BATCH_MIN)
    } else if took < PRUNE_STATEMENT_TARGET / 4 {
        (batch * 2).min(PRUNE_BATCH)
    } else {
        batch
    }
}

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
                    Ok(p) if p.deleted > 0 => tracing::info!(target: "job_runner", pruned = p.deleted,
                        batches = p.batches, longest_ms = p.longest.as_millis(), "pruned finished jobs"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(target: "job_runner", error = %e, "prune failed"),
                }
            })
            .await;
    }
}

/// What one pruning did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Jobs deleted.
    pub deleted: u64,
    /// Statements (each its own transaction).
    pub batches: u64,
    /// The longest statement, from taking the writer to releasing it.
    pub longest: Duration,
}

/// Prunes once, at most [`PRUNE_BATCH`] jobs at a time (fewer while
/// statements run slow, [`next_batch`]) until none is left; the writer is
/// given back between batches.
///
/// # Errors
/// The database failed.
pub async fn prune_once(queue: &Queue, retention: Retention) -> Result<Pruned, QueueError> {
    let now = queue.clock.now();
    let ago = |age: Duration| now.plus_ms(-i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
    let mut pruned = Pruned::default();
    for (ended, before) in
        [(Ended::CompletedOrCancelled, ago(retention.completed)), (Ended::Failed, ago(retention.failed))]
    {
        let (mut from, mut batch) = (Millis(i64::MIN), PRUNE_BATCH);
        loop {
            // A transaction of the queue's bookkeeping: on PostgreSQL its
            // commit does not wait for the WAL flush (a pruning a crash
            // undoes is done again by the next one). As a bare statement
            // it waited for one per batch, and a slow flush held it for
            // 140-160 ms at 1M jobs.
            let start = Instant::now();
            let mut tx = queue.db.begin_write(Durability::Bookkeeping).await?;
            let (deleted, latest) = db::jobs::prune_finished(&mut *tx, ended, from, before, batch).await?;
            tx.commit().await.map_err(db::DbError::from)?;
            let took = start.elapsed();
            pruned.longest = pruned.longest.max(took);
            pruned.batches += 1;
            pruned.deleted += deleted;
            match latest {
                Some(latest) if deleted >= batch.unsigned_abs() => from = latest,
                _ => break,
            }
            batch = next_batch(batch, took);
            // Let writers queued behind this batch have the writer first.
            tokio::task::yield_now().await;
        }
    }
    let mut conn = queue.db.write_connection(Durability::Bookkeeping).await?;
    db::jobs::fold_counts(&mut *conn, queue.db.backend).await?;
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_statement_halves_the_batch_down_to_the_floor_and_fast_ones_double_it_up_to_the_cap() {
        let slow = PRUNE_STATEMENT_TARGET * 3;
        let fast = PRUNE_STATEMENT_TARGET / 10;
        let steady = PRUNE_STATEMENT_TARGET / 2;
        assert_eq!(next_batch(PRUNE_BATCH, slow), PRUNE_BATCH / 2);
        assert_eq!(next_batch(PRUNE_BATCH_MIN + 1, slow), PRUNE_BATCH_MIN);
        assert_eq!(next_batch(PRUNE_BATCH_MIN, slow), PRUNE_BATCH_MIN);
        assert_eq!(next_batch(PRUNE_BATCH / 2, fast), PRUNE_BATCH - PRUNE_BATCH % 2);
        assert_eq!(next_batch(PRUNE_BATCH, fast), PRUNE_BATCH);
        assert_eq!(next_batch(100, steady), 100);
    }
}
