//! `THUMBNAIL_GENERATION`: JPEG thumbnails by longest edge, from the decode
//! it shares with the image's preview job.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;

use super::payload::ThumbnailPayload;
use super::{HandlerContext, ImageEffect, Outcome, Taker, payload};
use crate::queue::Job;
use crate::queue::handler::{HandlerError, JobHandler};
use crate::sandbox::Work;
use crate::storage::AssetKey;

/// Makes the thumbnails of an original.
#[derive(Debug, Clone)]
pub struct ThumbnailGeneration {
    ctx: Arc<HandlerContext>,
}

impl ThumbnailGeneration {
    /// The handler, working with `ctx`.
    pub fn new(ctx: Arc<HandlerContext>) -> Self {
        Self { ctx }
    }
}

#[async_trait::async_trait]
impl JobHandler<ImageEffect> for ThumbnailGeneration {
    async fn handle(&self, job: &Job) -> Result<Outcome, HandlerError> {
        let ctx = &self.ctx;
        let p: ThumbnailPayload = payload(job)?;
        if p.sizes.is_empty() || p.sizes.contains(&0) {
            return Err(HandlerError::permanent(format!("invalid thumbnail sizes {:?}", p.sizes)));
        }
        let largest = p.sizes.iter().copied().max().unwrap_or_default();
        // Sizes beyond what the shared decode covers (a job enqueued under
        // other settings) get a decode of their own.
        let shared_edge = ctx.assets.shared_edge();
        let (share, edge) =
            if largest <= shared_edge { (Some(Taker::Thumbnails), shared_edge) } else { (None, largest) };
        let rendered = ctx.render(&p.original_path, share, edge, Work::Thumbnails { sizes: p.sizes.clone() }).await?;
        let (assets, thumbhash) = (rendered.assets, rendered.thumbhash);
        let thumbhash = placeholder(
            thumbhash.unwrap_or_else(|| Err(pictor_imaging::ImagingError::Internal("no thumbhash was made".into()))),
        );
        let mut keys = BTreeMap::new();
        let mut objects = Vec::with_capacity(assets.len());
        for (size, asset) in p.sizes.iter().zip(assets) {
            let key = AssetKey::thumbnail(&p.image_id, *size)?;
            keys.insert(*size, key.to_string());
            objects.push((key, asset.bytes));
        }
        ctx.storage.put_assets(objects).await?;
        let settings = ctx.assets.thumbnail_settings(&p.sizes);
        Ok(Outcome {
            effects: vec![ImageEffect::Thumbnails { image_id: p.image_id, keys, thumbhash, settings }],
            children: Vec::new(),
        })
    }
}

/// The ThumbHash in base64. A placeholder is a nicety: failing to make one
/// is logged, never a job failure.
fn placeholder(hash: pictor_imaging::ThumbhashResult) -> Option<String> {
    match hash {
        Ok(hash) => Some(base64::engine::general_purpose::STANDARD.encode(hash)),
        Err(e) => {
            tracing::warn!(target: "job_runner", error = %e, "no thumbhash for this image");
            None
        }
    }
}
