//! The card's job payloads, the jobs' priorities, and the jobs an image
//! gets: its offload at upload, its two asset jobs when the offload ends,
//! the same two again when it is reprocessed.

use pictor_client::models::JobKind;
use serde::{Deserialize, Serialize};

use crate::db::ImageId;
use crate::queue::NewJob;

/// The thumbnail sizes (longest edge, px) the card names.
pub const DEFAULT_THUMBNAIL_SIZES: [u32; 4] = [64, 128, 256, 512];

/// Priority of the thumbnail and preview jobs an offload enqueues: above the
/// offloads of newer uploads (priority 0), so the images already started are
/// finished before more are started. A burst of uploads then keeps the CPUs
/// on imaging instead of running every queued offload first, and the first
/// images of the burst are STORED early.
pub const ASSET_JOB_PRIORITY: i64 = 1;

/// The asset jobs of an image, which a runner claims together
/// (`RunnerSettings::claim_together`): the thumbnail and preview jobs share
/// one decode of the original when they run in one process.
pub const ASSET_JOB_KINDS: [JobKind; 2] = [JobKind::ThumbnailGeneration, JobKind::PreviewGeneration];

/// Priority of regeneration (`pictor reprocess`): below every job of a new
/// upload (0 and 1) and below webhook deliveries (-1), so that a library
/// being reprocessed never delays a new image or an event.
pub const REGENERATION_PRIORITY: i64 = -2;

/// `OFFLOAD_ORIGINAL` payload: `{ imageId, tempPath, checksum }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OffloadPayload {
    /// The image.
    pub image_id: ImageId,
    /// Storage key of the uploaded temp file.
    pub temp_path: String,
    /// SHA-256 of the upload, lowercase hex.
    pub checksum: String,
}

/// `THUMBNAIL_GENERATION` payload: `{ imageId, originalPath, sizes }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThumbnailPayload {
    /// The image.
    pub image_id: ImageId,
    /// Storage key of the original.
    pub original_path: String,
    /// Longest edges to make, px.
    pub sizes: Vec<u32>,
}

/// `PREVIEW_GENERATION` payload: `{ imageId, originalPath }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewPayload {
    /// The image.
    pub image_id: ImageId,
    /// Storage key of the original.
    pub original_path: String,
}

/// The first job of an uploaded image: its offload.
///
/// # Errors
/// The payload cannot be serialised.
pub fn offload_job(payload: &OffloadPayload) -> Result<NewJob, serde_json::Error> {
    NewJob::for_image(JobKind::OffloadOriginal, &payload.image_id, payload)
}

/// The jobs an offloaded image gets: its thumbnails and its preview.
///
/// # Errors
/// A payload cannot be serialised.
pub fn asset_jobs(thumbnails: &ThumbnailPayload, preview: &PreviewPayload) -> Result<Vec<NewJob>, serde_json::Error> {
    Ok(vec![
        NewJob::for_image(JobKind::ThumbnailGeneration, &thumbnails.image_id, thumbnails)?
            .with_priority(ASSET_JOB_PRIORITY),
        NewJob::for_image(JobKind::PreviewGeneration, &preview.image_id, preview)?.with_priority(ASSET_JOB_PRIORITY),
    ])
}

/// The jobs that regenerate a stored image's assets from its original: its
/// thumbnails and its preview at [`REGENERATION_PRIORITY`]. Their dedupe
/// keys are their own (`regenerate:TYPE:IMAGE`, not the first asset jobs'),
/// one per image and kind, re-armed by each reprocess once the last one has
/// finished (`Queue::enqueue_or_rearm_many_in`).
///
/// # Errors
/// A payload cannot be serialised.
pub fn regeneration_jobs(
    thumbnails: &ThumbnailPayload,
    preview: &PreviewPayload,
) -> Result<Vec<NewJob>, serde_json::Error> {
    let regeneration = |job: NewJob| NewJob {
        dedupe_key: job.image_id.as_ref().map(|image| format!("regenerate:{}:{image}", job.kind)),
        ..job.with_priority(REGENERATION_PRIORITY)
    };
    Ok(vec![
        regeneration(NewJob::for_image(JobKind::ThumbnailGeneration, &thumbnails.image_id, thumbnails)?),
        regeneration(NewJob::for_image(JobKind::PreviewGeneration, &preview.image_id, preview)?),
    ])
}
