//! `PREVIEW_GENERATION`: one decode → a progressive, web-sized JPEG.

use super::{HandlerContext, HandlerError, ImageEffect, JobHandler, Outcome, payload};
use crate::queue::job::{Job, PreviewPayload};
use crate::storage::preview_key;

/// Makes the web preview of an original.
#[derive(Debug, Clone, Copy)]
pub struct PreviewGeneration;

#[async_trait::async_trait]
impl JobHandler for PreviewGeneration {
    async fn handle(&self, job: &Job, ctx: &HandlerContext) -> Result<Outcome, HandlerError> {
        let p: PreviewPayload = payload(job)?;
        let original = ctx.storage.get(&p.original_path).await?;
        let max_edge = ctx.assets.preview_max_edge;
        let options = ctx.assets.render.clone();
        let asset = ctx.run_cpu(move || Ok(pictor_imaging::render_preview(&original, max_edge, &options)?)).await?;
        let key = preview_key(&p.image_id);
        ctx.storage.put_bytes(&key, asset.jpeg).await?;
        Ok(Outcome {
            effects: vec![ImageEffect::Preview { image_id: p.image_id, preview_path: key }],
            children: Vec::new(),
        })
    }
}
