//! Reprocessing (`pictor reprocess`, `POST /api/admin/reprocess`): the
//! images whose assets were made under other settings than the current ones
//! (or before settings were recorded) get their thumbnails and preview made
//! again from their original, below every new upload's jobs. An image keeps
//! serving its old assets meanwhile: each asset job replaces its objects
//! whole (DESIGN invariant 3) and its effect swaps the row's keys and
//! settings as it commits. Thumbnails of sizes no longer configured are left
//! to `pictor gc`, which removes assets that no image row references.

use std::collections::BTreeSet;

use pictor_client::models::{ImageStatus, Reprocessed};

use super::{Images, ImagesError, ImagesResult};
use crate::db::images::{ImageKey, OutdatedFilter, OutdatedImage};
use crate::db::{self, Durability, ImageId};
use crate::handlers::payload::{PreviewPayload, ThumbnailPayload, regeneration_jobs};

/// Images read, and queued, per batch (one statement and one transaction each).
pub const REPROCESS_BATCH_SIZE: i64 = 500;

/// Which images a reprocess looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Only this collection; `None`: every one.
    pub collection: Option<String>,
    /// Only images in this state: STORED (`None`) or FAILED.
    pub status: Option<ImageStatus>,
}

/// Where a reprocess is, after each batch.
#[derive(Debug)]
pub struct Progress<'a> {
    /// The outdated images of the batch just read.
    pub batch: &'a [OutdatedImage],
    /// Totals so far.
    pub so_far: Reprocessed,
}

impl Images {
    /// Finds the selected images whose assets are outdated and, unless
    /// `dry_run`, queues their regeneration, in batches of
    /// [`REPROCESS_BATCH_SIZE`]; `progress` hears of each batch. A FAILED
    /// image (selected with `status`) goes back to PROCESSING with its jobs.
    /// What was queued before a failure stays queued; running it again
    /// queues the rest (an image whose regeneration is queued or running is
    /// never queued twice).
    ///
    /// # Errors
    /// `invalid_status` for a state other than STORED or FAILED (the others
    /// have no assets yet); the database failed.
    pub async fn reprocess(
        &self,
        selection: &Selection,
        dry_run: bool,
        mut progress: impl FnMut(&Progress<'_>),
    ) -> ImagesResult<Reprocessed> {
        let status = match selection.status {
            None | Some(ImageStatus::Stored) => ImageStatus::Stored,
            Some(ImageStatus::Failed) => ImageStatus::Failed,
            Some(other) => {
                return Err(ImagesError::invalid(
                    "invalid_status",
                    format!("{other} images have no assets to reprocess: choose STORED or FAILED"),
                ));
            }
        };
        let thumbnail_settings = self.assets.thumbnail_settings(&self.assets.thumbnail_sizes);
        let preview_settings = self.assets.preview_settings();
        let filter = OutdatedFilter {
            status,
            collection: selection.collection.as_deref(),
            thumbnail_settings: &thumbnail_settings,
            preview_settings: &preview_settings,
        };
        let mut so_far = Reprocessed::default();
        let mut after: Option<ImageKey> = None;
        loop {
            let batch = db::images::outdated(&self.db.pool, &filter, after.as_ref(), REPROCESS_BATCH_SIZE).await?;
            let Some(last) = batch.last() else { break };
            after = Some(last.key.clone());
            so_far.matched += batch.len() as u64;
            if !dry_run {
                so_far.enqueued += self.queue_regeneration(&batch).await?;
            }
            progress(&Progress { batch: &batch, so_far });
            if (batch.len() as i64) < REPROCESS_BATCH_SIZE {
                break;
            }
        }
        if so_far.enqueued > 0 {
            self.events.nudge();
        }
        Ok(so_far)
    }

    /// Queues the regeneration of `batch` in one transaction (FAILED images
    /// back to PROCESSING in it); returns how many images got jobs.
    async fn queue_regeneration(&self, batch: &[OutdatedImage]) -> ImagesResult<u64> {
        let mut jobs = Vec::with_capacity(batch.len() * 2);
        for image in batch {
            let thumbnails = ThumbnailPayload {
                image_id: image.id.clone(),
                original_path: image.original_path.clone(),
                sizes: self.assets.thumbnail_sizes.clone(),
            };
            let preview = PreviewPayload { image_id: image.id.clone(), original_path: image.original_path.clone() };
            jobs.extend(regeneration_jobs(&thumbnails, &preview).map_err(|e| sqlx::Error::Encode(Box::new(e)))?);
        }
        let mut tx = self.db.begin_write(Durability::Acknowledged).await?;
        let queued: BTreeSet<ImageId> =
            self.queue.enqueue_or_rearm_many_in(&mut tx, &jobs).await?.into_iter().flatten().collect();
        let now = self.now();
        for image in batch.iter().filter(|i| i.status == ImageStatus::Failed) {
            if queued.contains(&image.id) {
                db::images::mark_processing(&mut *tx, &image.id, now).await?;
            }
        }
        tx.commit().await?;
        if !queued.is_empty() {
            self.queue.wake();
        }
        Ok(queued.len() as u64)
    }
}
