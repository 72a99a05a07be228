//! `THUMBNAIL_GENERATION`: one decode → JPEG thumbnails by longest edge.

use std::collections::BTreeMap;

use super::{HandlerContext, HandlerError, ImageEffect, JobHandler, Outcome, payload};
use crate::queue::job::{Job, ThumbnailPayload};
use crate::storage::thumbnail_key;

/// Makes the thumbnails of an original.
#[derive(Debug, Clone, Copy)]
pub struct ThumbnailGeneration;

#[async_trait::async_trait]
impl JobHandler for ThumbnailGeneration {
    async fn handle(&self, job: &Job, ctx: &HandlerContext) -> Result<Outcome, HandlerError> {
        let p: ThumbnailPayload = payload(job)?;
        if p.sizes.is_empty() || p.sizes.contains(&0) {
            return Err(HandlerError::Permanent(format!("invalid thumbnail sizes {:?}", p.sizes)));
        }
        let original = ctx.storage.get(&p.original_path).await?;
        let sizes = p.sizes.clone();
        let options = ctx.assets.render.clone();
        let assets = ctx.run_cpu(move || Ok(pictor_imaging::render_thumbnails(&original, &sizes, &options)?)).await?;
        let mut keys = BTreeMap::new();
        for (size, asset) in p.sizes.iter().zip(assets) {
            let key = thumbnail_key(&p.image_id, *size);
            ctx.storage.put_bytes(&key, asset.jpeg).await?;
            keys.insert(*size, key);
        }
        Ok(Outcome { effects: vec![ImageEffect::Thumbnails { image_id: p.image_id, keys }], children: Vec::new() })
    }
}
