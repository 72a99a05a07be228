//! A job as the queue stores it, a job to enqueue, and the card's payloads.

use pictor_client::models::{JobKind, JobStatus};
use serde::{Deserialize, Serialize};

/// The thumbnail sizes (longest edge, px) the card names.
pub const DEFAULT_THUMBNAIL_SIZES: [u32; 4] = [64, 128, 256, 512];

/// Priority of the thumbnail and preview jobs an offload enqueues: above the
/// offloads of newer uploads (priority 0), so the images already started are
/// finished before more are started. A burst of uploads then keeps the CPUs
/// on imaging instead of running every queued offload first, and the first
/// images of the burst are STORED early.
pub const ASSET_JOB_PRIORITY: i64 = 1;

/// A row of the `job` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Id.
    pub id: i64,
    /// What it does.
    pub kind: JobKind,
    /// Where it is in its life.
    pub status: JobStatus,
    /// The card's payload for its kind, as JSON text.
    pub payload: String,
    /// The image it works on.
    pub image_id: Option<String>,
    /// Higher runs first.
    pub priority: i64,
    /// Attempts started (the claim increments it).
    pub attempts: i64,
    /// Attempts allowed before it ends FAILED.
    pub max_attempts: i64,
    /// Not claimed before this time (ms since the epoch).
    pub run_at: i64,
    /// The runner holding its lease.
    pub locked_by: Option<String>,
    /// End of the lease (ms).
    pub locked_until: Option<i64>,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
    /// When it ended, if it has (ms).
    pub finished_at: Option<i64>,
}

impl Job {
    /// Parses the payload as the type its kind expects.
    ///
    /// # Errors
    /// The payload is not valid for the kind.
    pub fn payload_as<T: for<'de> Deserialize<'de>>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.payload)
    }
}

/// A job to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// What it does.
    pub kind: JobKind,
    /// The card's payload, serialised.
    pub payload: String,
    /// The image it works on.
    pub image_id: Option<String>,
    /// Higher runs first.
    pub priority: i64,
    /// Inserting a second job with the same key does nothing, so a re-run
    /// parent cannot enqueue its children twice (DESIGN invariant 2).
    pub dedupe_key: Option<String>,
}

impl NewJob {
    /// A job for one image, deduplicated per image and kind.
    ///
    /// # Errors
    /// The payload cannot be serialised.
    pub fn for_image<P: Serialize>(kind: JobKind, image_id: &str, payload: &P) -> Result<Self, serde_json::Error> {
        Ok(Self {
            kind,
            payload: serde_json::to_string(payload)?,
            image_id: Some(image_id.to_owned()),
            priority: 0,
            dedupe_key: Some(format!("{kind}:{image_id}")),
        })
    }

    /// The same job with another priority (higher runs first).
    #[must_use]
    pub fn with_priority(self, priority: i64) -> Self {
        Self { priority, ..self }
    }
}

/// `OFFLOAD_ORIGINAL` payload: `{ imageId, tempPath, checksum }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OffloadPayload {
    /// The image.
    pub image_id: String,
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
    pub image_id: String,
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
    pub image_id: String,
    /// Storage key of the original.
    pub original_path: String,
}
