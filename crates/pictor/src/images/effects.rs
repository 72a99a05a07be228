//! What a job's ending means for its image, written in the ending's own
//! transaction: the effects of a success (original offloaded, thumbnails,
//! preview; STORED once all exist, DESIGN's rule), and FAILED with a
//! message a person can act on when a job fails for good.

use async_trait::async_trait;

use crate::clock::Millis;
use crate::db::{self, DbResult, Tx};
use crate::handlers::ImageEffect;
use crate::queue::handler::{Effects, FailedJob};

/// The images layer's side of the queue's [`Effects`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ImageEffects;

#[async_trait]
impl Effects for ImageEffects {
    type Effect = ImageEffect;

    async fn apply(&self, tx: &mut Tx, effects: &[ImageEffect], now: Millis) -> DbResult<()> {
        for effect in effects {
            let (image_id, complete) = match effect {
                ImageEffect::Original { image_id, original_path } => {
                    (image_id, db::images::set_original(&mut **tx, image_id, original_path, now).await?)
                }
                ImageEffect::Thumbnails { image_id, keys, thumbhash } => {
                    let done = db::images::set_thumbnails(&mut **tx, image_id, keys, thumbhash.as_deref(), now).await?;
                    (image_id, done)
                }
                ImageEffect::Preview { image_id, preview_path, previews } => {
                    (image_id, db::images::set_preview(&mut **tx, image_id, preview_path, previews, now).await?)
                }
            };
            if complete {
                db::images::mark_stored_if_complete(&mut **tx, image_id, now).await?;
            }
        }
        Ok(())
    }

    async fn failed(&self, tx: &mut Tx, job: FailedJob<'_>, now: Millis) -> DbResult<()> {
        if let Some(image_id) = job.image_id {
            let for_person = format!("{} failed: {}", job.kind, job.error);
            db::images::mark_failed(&mut **tx, image_id, &for_person, now).await?;
        }
        Ok(())
    }
}
