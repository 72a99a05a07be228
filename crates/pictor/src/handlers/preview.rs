//! `PREVIEW_GENERATION`: a progressive, web-sized JPEG (and a WebP or AVIF
//! of it when `PICTOR_PREVIEW_FORMATS` asks), from the decode it shares with
//! the image's thumbnail job.

use std::collections::BTreeMap;

use pictor_imaging::AssetFormat;

use super::{HandlerContext, HandlerError, ImageEffect, JobHandler, Outcome, Taker, payload};
use crate::queue::job::{Job, PreviewPayload};
use crate::storage::preview_key;

/// Makes the web preview of an original.
#[derive(Debug, Clone, Copy)]
pub struct PreviewGeneration;

#[async_trait::async_trait]
impl JobHandler for PreviewGeneration {
    async fn handle(&self, job: &Job, ctx: &HandlerContext) -> Result<Outcome, HandlerError> {
        let p: PreviewPayload = payload(job)?;
        let prepared = ctx.shared_prepared(&p.original_path, Taker::Preview).await?;
        let (max_edge, formats, options) =
            (ctx.assets.preview_max_edge, ctx.assets.preview_formats.clone(), ctx.assets.render.clone());
        let assets = ctx.run_cpu(move || Ok(prepared.previews(max_edge, &formats, &options)?)).await?;
        let mut previews = BTreeMap::new();
        let mut objects = Vec::with_capacity(assets.len());
        for asset in assets {
            let key = preview_key(&p.image_id, asset.format);
            objects.push((key.clone(), asset.bytes));
            previews.insert(asset.format.name().to_owned(), key);
        }
        ctx.storage.put_many(objects).await?;
        let preview_path = previews
            .get(AssetFormat::Jpeg.name())
            .cloned()
            .ok_or_else(|| HandlerError::Permanent("the JPEG preview is not among PICTOR_PREVIEW_FORMATS".into()))?;
        Ok(Outcome {
            effects: vec![ImageEffect::Preview { image_id: p.image_id, preview_path, previews }],
            children: Vec::new(),
        })
    }
}
