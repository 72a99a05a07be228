//! The temp sweeper: removes the temporary files a crash left behind (an
//! upload cut off by a kill, the part files of a job killed while it wrote
//! its assets) once no image needs them and they are older than the grace
//! period (DESIGN invariant 9). It runs at start-up and every few minutes
//! in every `serve` and `worker`; sweeping twice is harmless.

use std::time::{Duration, SystemTime};

use super::{Images, ImagesResult};
use crate::db;
use crate::shutdown::Shutdown;

/// Default age, seconds, after which an unreferenced temp file is swept: long
/// enough for another process sharing the storage to finish any upload.
pub const DEFAULT_TEMP_GRACE_SECS: u64 = 3600;
/// How often the temp area is swept.
pub const TEMP_SWEEP_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Sweeps the temp files of one storage.
#[derive(Debug, Clone)]
pub struct TempSweeper {
    images: Images,
    /// Age under which a temp file is left alone, needed or not.
    grace: Duration,
}

impl TempSweeper {
    /// A sweeper of `images`' storage leaving files younger than `grace`.
    pub fn new(images: Images, grace: Duration) -> Self {
        Self { images, grace }
    }

    /// Sweeps at once, then every [`TEMP_SWEEP_INTERVAL`] until `shutdown`.
    /// The first sweep, and one per grace period after it, also looks for
    /// the part files older versions left beside assets and originals
    /// (a walk of every asset folder, so not every few minutes).
    pub async fn run(self, shutdown: Shutdown) {
        // When the last walk beside the objects was (the closure's only state).
        let beside_objects_at = std::sync::Mutex::new(None::<tokio::time::Instant>);
        shutdown
            .every(TEMP_SWEEP_INTERVAL, || async {
                let now = tokio::time::Instant::now();
                let beside_objects = {
                    let mut at = beside_objects_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let due = at.is_none_or(|at| now.duration_since(at) >= self.grace);
                    if due {
                        *at = Some(now);
                    }
                    due
                };
                match self.sweep(beside_objects).await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "swept temp files left behind"),
                    Err(e) => tracing::warn!(error = %e, "sweeping temp files failed; trying again later"),
                }
            })
            .await;
    }

    /// Removes the temp files older than the grace period that no image
    /// needs (an upload is needed until its image's offload has recorded
    /// the original), and with `beside_objects` the old part files beside
    /// assets and originals; returns how many.
    ///
    /// # Errors
    /// Listing the storage or asking the database failed; files found
    /// before the failure may have been removed.
    pub async fn sweep(&self, beside_objects: bool) -> ImagesResult<usize> {
        let before = SystemTime::now().checked_sub(self.grace).unwrap_or(SystemTime::UNIX_EPOCH);
        let storage = &self.images.storage;
        let mut removed = 0;
        for key in storage.temp_files_before(before, beside_objects).await? {
            if key.as_str().starts_with("tmp/") && db::images::uses_temp(&self.images.db.pool, key.as_str()).await? {
                continue;
            }
            storage.delete(&key).await?;
            tracing::debug!(%key, "swept a temp file");
            removed += 1;
        }
        Ok(removed)
    }
}
