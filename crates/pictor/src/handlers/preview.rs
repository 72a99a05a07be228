//! `PREVIEW_GENERATION`: a progressive, web-sized JPEG (and a WebP or AVIF
//! of it when `PICTOR_PREVIEW_FORMATS` asks), from the decode it shares with
//! the image's thumbnail job.

use std::collections::BTreeMap;
use std::sync::Arc;

use pictor_imaging::AssetFormat;

use super::payload::PreviewPayload;
use super::{HandlerContext, ImageEffect, Outcome, Taker, payload};
use crate::queue::Job;
use crate::queue::handler::{HandlerError, JobHandler};
use crate::sandbox::Work;
use crate::storage::AssetKey;

/// Makes the web preview of an original.
#[derive(Debug, Clone)]
pub struct PreviewGeneration {
    ctx: Arc<HandlerContext>,
}

impl PreviewGeneration {
    /// The handler, working with `ctx`.
    pub fn new(ctx: Arc<HandlerContext>) -> Self {
        Self { ctx }
    }
}

#[async_trait::async_trait]
impl JobHandler<ImageEffect> for PreviewGeneration {
    async fn handle(&self, job: &Job) -> Result<Outcome, HandlerError> {
        let ctx = &self.ctx;
        let p: PreviewPayload = payload(job)?;
        let work =
            Work::Previews { max_edge: ctx.assets.preview_max_edge, formats: ctx.assets.preview_formats.clone() };
        let assets = ctx.render(&p.original_path, Some(Taker::Preview), ctx.assets.shared_edge(), work).await?.assets;
        let mut previews = BTreeMap::new();
        let mut objects = Vec::with_capacity(assets.len());
        for asset in assets {
            let key = AssetKey::preview(&p.image_id, asset.format)?;
            previews.insert(asset.format.name().to_owned(), key.to_string());
            objects.push((key, asset.bytes));
        }
        ctx.storage.put_assets(objects).await?;
        let preview_path = previews
            .get(AssetFormat::Jpeg.name())
            .cloned()
            .ok_or_else(|| HandlerError::permanent("the JPEG preview is not among PICTOR_PREVIEW_FORMATS"))?;
        Ok(Outcome {
            effects: vec![ImageEffect::Preview {
                image_id: p.image_id,
                preview_path,
                previews,
                settings: ctx.assets.preview_settings(),
            }],
            children: Vec::new(),
        })
    }
}
