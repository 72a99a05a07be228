//! What a job's ending means for its image, written in the ending's own
//! transaction: the effects of a success (original offloaded, thumbnails,
//! preview; STORED once all exist, DESIGN's rule), and FAILED with a
//! message a person can act on when a job fails for good. A success whose
//! image was deleted while the job ran writes nothing and removes what the
//! job left in storage (DESIGN invariant 9).

use std::sync::Arc;

use async_trait::async_trait;
use pictor_client::models::ImageStatus;

use super::originals;
use super::webhooks::{Event, Webhooks};
use crate::clock::Millis;
use crate::db::{self, Backend, DbResult, Tx};
use crate::handlers::ImageEffect;
use crate::queue::handler::{Applied, Effects, FailedJob};
use crate::storage::{OriginalKey, Storage};

/// The images layer's side of the queue's [`Effects`].
#[derive(Debug, Clone)]
pub struct ImageEffects {
    /// Where a deleted image's leftovers are removed from.
    storage: Arc<dyn Storage>,
    /// The backend of the transactions it writes in (for the originals' lock).
    backend: Backend,
    /// Whether STORED and FAILED queue webhook events.
    webhooks: Webhooks,
}

impl ImageEffects {
    /// Effects on the images of a database of `backend`, whose files are in `storage`.
    pub fn new(storage: Arc<dyn Storage>, backend: Backend) -> Self {
        Self { storage, backend, webhooks: Webhooks::default() }
    }

    /// The same effects, queuing webhook events as `webhooks` says.
    #[must_use]
    pub fn with_webhooks(self, webhooks: Webhooks) -> Self {
        Self { webhooks, ..self }
    }

    /// Removes what a job of a deleted image wrote: its assets, or the
    /// original its offload stored when no other image uses it. The check
    /// of the original's users runs under its lock, taken in `tx` (the
    /// completion's own transaction: on SQLite a second write transaction
    /// would wait for this one). A database failure fails the completion,
    /// which is written again; a storage failure is logged (the files stay,
    /// as after a crash).
    async fn remove_leftovers(&self, tx: &mut Tx<'_>, effect: &ImageEffect) -> DbResult<()> {
        let removed = match effect {
            ImageEffect::Original { original_path, .. } => match OriginalKey::parse(original_path.as_str()) {
                Ok(original) if originals::unused_in(tx, self.backend, &original).await? => {
                    self.storage.delete(&original).await
                }
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            },
            ImageEffect::Thumbnails { image_id, .. } | ImageEffect::Preview { image_id, .. } => {
                self.storage.delete_assets(image_id).await
            }
        };
        if let Err(e) = removed {
            tracing::warn!(target: "job_runner", error = %e, "cannot remove the files of a deleted image");
        }
        Ok(())
    }
}

#[async_trait]
impl Effects for ImageEffects {
    type Effect = ImageEffect;

    async fn apply(&self, tx: &mut Tx<'_>, effects: &[ImageEffect], now: Millis) -> DbResult<Applied> {
        let mut applied = Applied::Written;
        for effect in effects {
            let (image_id, complete) = match effect {
                ImageEffect::Original { image_id, original_path } => {
                    (image_id, db::images::set_original(&mut **tx, image_id, original_path, now).await?)
                }
                ImageEffect::Thumbnails { image_id, keys, thumbhash, settings } => {
                    let done =
                        db::images::set_thumbnails(&mut **tx, image_id, keys, thumbhash.as_deref(), settings, now)
                            .await?;
                    (image_id, done)
                }
                ImageEffect::Preview { image_id, preview_path, previews, settings } => {
                    let done =
                        db::images::set_preview(&mut **tx, image_id, preview_path, previews, settings, now).await?;
                    (image_id, done)
                }
            };
            match complete {
                None => {
                    self.remove_leftovers(tx, effect).await?;
                    applied = Applied::SubjectGone;
                }
                Some(true) => {
                    if db::images::mark_stored_if_complete(&mut **tx, image_id, now).await? {
                        self.webhooks.queue_for(tx, self.backend, Event::Stored, image_id, now).await?;
                    }
                }
                Some(false) => {}
            }
        }
        Ok(applied)
    }

    async fn failed(&self, tx: &mut Tx<'_>, job: FailedJob<'_>, now: Millis) -> DbResult<()> {
        if let Some(image_id) = job.image_id {
            // One event per failure of the image, not one per failed job of it.
            let was_failed = self.webhooks.enabled()
                && db::images::get(&mut **tx, image_id).await?.is_some_and(|r| r.status == ImageStatus::Failed);
            let for_person = format!("{} failed: {}", job.kind, job.error);
            db::images::mark_failed(&mut **tx, image_id, &for_person, now).await?;
            if !was_failed {
                self.webhooks.queue_for(tx, self.backend, Event::Failed, image_id, now).await?;
            }
        }
        Ok(())
    }
}
