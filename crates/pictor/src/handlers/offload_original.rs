//! `OFFLOAD_ORIGINAL`: temp file → `originals/<checksum>`, checksum verified;
//! then the thumbnail and preview jobs are enqueued with the completion.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::payload::{self as payloads, OffloadPayload, PreviewPayload, ThumbnailPayload};
use super::{HandlerContext, ImageEffect, Outcome, payload};
use crate::queue::Job;
use crate::queue::handler::{HandlerError, JobHandler};
use crate::storage::{original_key, validate_key};

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
        validate_key(&p.temp_path)?;
        let original = original_key(&p.checksum);
        let temp_name = p
            .temp_path
            .strip_prefix("tmp/")
            .ok_or_else(|| HandlerError::permanent(format!("temp path {:?} is not under tmp/", p.temp_path)))?;
        let temp_file = ctx.tmp_dir.join(temp_name);

        let file = temp_file.clone();
        let checksum = ctx.run_cpu(move || checksum_of(&file)).await?;
        if let Some(actual) = checksum {
            if actual != p.checksum {
                return Err(HandlerError::permanent(format!(
                    "the uploaded file changed on disk: checksum {actual}, expected {}",
                    p.checksum
                )));
            }
            ctx.storage.put_file(&original, &temp_file).await?;
        } else if !ctx.storage.exists(&original).await? {
            // A re-run after a crash finds the temp file already moved; any
            // other absence means the upload is gone.
            return Err(HandlerError::permanent(format!(
                "the uploaded file {} is missing and no original with checksum {} exists",
                p.temp_path, p.checksum
            )));
        }

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

/// The SHA-256 (lowercase hex) of `file`, or `None` if it does not exist.
fn checksum_of(file: &std::path::Path) -> Result<Option<String>, HandlerError> {
    let io = |e: std::io::Error| HandlerError::retryable(format!("cannot read the upload: {e}"));
    let mut reader = match std::fs::File::open(file) {
        Ok(reader) => reader,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0_u8; 256 * 1024];
    loop {
        let n = std::io::Read::read(&mut reader, &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Some(hex::encode(hasher.finalize())))
}
