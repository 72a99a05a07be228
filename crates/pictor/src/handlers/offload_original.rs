//! `OFFLOAD_ORIGINAL`: temp file → `originals/<checksum>`, checksum verified;
//! then the thumbnail and preview jobs are enqueued with the completion.

use pictor_client::models::JobKind;
use sha2::{Digest, Sha256};

use super::{HandlerContext, HandlerError, ImageEffect, JobHandler, Outcome, payload};
use crate::queue::job::{
    ASSET_JOB_PRIORITY, DEFAULT_THUMBNAIL_SIZES, Job, NewJob, OffloadPayload, PreviewPayload, ThumbnailPayload,
};
use crate::storage::{original_key, validate_key};

/// Moves an upload to permanent, content-addressed storage.
#[derive(Debug, Clone, Copy)]
pub struct OffloadOriginal;

#[async_trait::async_trait]
impl JobHandler for OffloadOriginal {
    async fn handle(&self, job: &Job, ctx: &HandlerContext) -> Result<Outcome, HandlerError> {
        let p: OffloadPayload = payload(job)?;
        validate_key(&p.temp_path)?;
        let original = original_key(&p.checksum);
        let temp_name = p
            .temp_path
            .strip_prefix("tmp/")
            .ok_or_else(|| HandlerError::Permanent(format!("temp path {:?} is not under tmp/", p.temp_path)))?;
        let temp_file = ctx.tmp_dir.join(temp_name);

        let file = temp_file.clone();
        let checksum = ctx.run_cpu(move || checksum_of(&file)).await?;
        if let Some(actual) = checksum {
            if actual != p.checksum {
                return Err(HandlerError::Permanent(format!(
                    "the uploaded file changed on disk: checksum {actual}, expected {}",
                    p.checksum
                )));
            }
            ctx.storage.put_file(&original, &temp_file).await?;
        } else if !ctx.storage.exists(&original).await? {
            // A re-run after a crash finds the temp file already moved; any
            // other absence means the upload is gone.
            return Err(HandlerError::Permanent(format!(
                "the uploaded file {} is missing and no original with checksum {} exists",
                p.temp_path, p.checksum
            )));
        }

        let thumbnails = ThumbnailPayload {
            image_id: p.image_id.clone(),
            original_path: original.clone(),
            sizes: if ctx.assets.thumbnail_sizes.is_empty() {
                DEFAULT_THUMBNAIL_SIZES.to_vec()
            } else {
                ctx.assets.thumbnail_sizes.clone()
            },
        };
        let preview = PreviewPayload { image_id: p.image_id.clone(), original_path: original.clone() };
        let encode = |e: serde_json::Error| HandlerError::Permanent(e.to_string());
        Ok(Outcome {
            effects: vec![ImageEffect::Original { image_id: p.image_id.clone(), original_path: original }],
            children: vec![
                NewJob::for_image(JobKind::ThumbnailGeneration, &p.image_id, &thumbnails)
                    .map_err(encode)?
                    .with_priority(ASSET_JOB_PRIORITY),
                NewJob::for_image(JobKind::PreviewGeneration, &p.image_id, &preview)
                    .map_err(encode)?
                    .with_priority(ASSET_JOB_PRIORITY),
            ],
        })
    }
}

/// The SHA-256 (lowercase hex) of `file`, or `None` if it does not exist.
fn checksum_of(file: &std::path::Path) -> Result<Option<String>, HandlerError> {
    let io = |e: std::io::Error| HandlerError::Retryable(format!("cannot read the upload: {e}"));
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
