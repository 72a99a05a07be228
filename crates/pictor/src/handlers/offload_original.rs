//! `OFFLOAD_ORIGINAL`: the upload is promoted to `originals/<checksum>`,
//! its checksum verified by the storage; then the thumbnail and preview jobs
//! are enqueued with the completion.

use std::sync::Arc;

use super::payload::{self as payloads, OffloadPayload, PreviewPayload, ThumbnailPayload};
use super::{HandlerContext, ImageEffect, Outcome, payload};
use crate::queue::Job;
use crate::queue::handler::{HandlerError, JobHandler};
use crate::storage::{OriginalKey, Promoted, StorageError, TempKey};

/// Moves an upload to permanent, content-addressed storage.
#[derive(Debug, Clone)]
pub struct OffloadOriginal {
    ctx: Arc<HandlerContext>,
}

impl OffloadOriginal {
    /// The handler, working with `ctx`.
    pub fn new(ctx: Arc<HandlerContext>) -> Self {
        Self { ctx }
    }
}

#[async_trait::async_trait]
impl JobHandler<ImageEffect> for OffloadOriginal {
    async fn handle(&self, job: &Job) -> Result<Outcome, HandlerError> {
        let ctx = &self.ctx;
        let p: OffloadPayload = payload(job)?;
        let upload = TempKey::parse(p.temp_path.as_str())?;
        let original = OriginalKey::for_checksum(&p.checksum)?;
        match ctx.storage.promote(&upload, &original, &p.checksum, ctx.originals.as_ref()).await {
            Ok(Promoted::Moved | Promoted::AlreadyStored) => {}
            // A re-run after a crash finds the upload already promoted; any
            // other absence means the upload is gone.
            Err(StorageError::NotFound(_)) if ctx.storage.exists(&original).await? => {}
            Err(StorageError::NotFound(_)) => {
                return Err(HandlerError::permanent(format!(
                    "the uploaded file {} is missing and no original with checksum {} exists",
                    p.temp_path, p.checksum
                )));
            }
            Err(e) => return Err(e.into()),
        }
        let original = original.to_string();

        let thumbnails = ThumbnailPayload {
            image_id: p.image_id.clone(),
            original_path: original.clone(),
            sizes: if ctx.assets.thumbnail_sizes.is_empty() {
                payloads::DEFAULT_THUMBNAIL_SIZES.to_vec()
            } else {
                ctx.assets.thumbnail_sizes.clone()
            },
        };
        let preview = PreviewPayload { image_id: p.image_id.clone(), original_path: original.clone() };
        let children = payloads::asset_jobs(&thumbnails, &preview)
            .map_err(|e| HandlerError::permanent("cannot make the asset jobs").caused_by(e))?;
        Ok(Outcome {
            effects: vec![ImageEffect::Original { image_id: p.image_id.clone(), original_path: original }],
            children,
        })
    }
}
