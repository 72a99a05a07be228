//! The JSON shapes of Pictor's HTTP API (camelCase, as the reference card
//! spells them). The server serialises these and clients deserialise them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where an image is in its life: `UPLOADED → INGESTED → PROCESSING → STORED`, or `FAILED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ImageStatus {
    /// Bytes are arriving.
    Uploaded,
    /// The temp file is durable and its header was read.
    Ingested,
    /// The original is offloaded; assets are being made.
    Processing,
    /// The original and every asset are ready.
    Stored,
    /// A job ran out of attempts; `error` says why.
    Failed,
}

/// What a queued job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobKind {
    /// Move the uploaded temp file to permanent, content-addressed storage.
    OffloadOriginal,
    /// Make the 64/128/256/512 px JPEG thumbnails.
    ThumbnailGeneration,
    /// Make the web-optimised progressive JPEG preview.
    PreviewGeneration,
    /// POST an image event to `PICTOR_WEBHOOK_URL` (no image of its own: the event is its payload).
    WebhookDelivery,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// Waiting for `run_at`, then for a runner.
    Pending,
    /// Claimed by a runner holding a lease.
    Running,
    /// Finished successfully.
    Completed,
    /// Out of attempts, or failed with a permanent error.
    Failed,
    /// Cancelled by an operator.
    Cancelled,
}

macro_rules! card_names {
    ($ty:ty, $($variant:ident => $name:literal),+ $(,)?) => {
        impl $ty {
            /// Every value, in life-cycle order.
            pub const ALL: &'static [$ty] = &[$(<$ty>::$variant),+];

            /// The name as the reference card spells it (and as stored in the database).
            pub fn as_str(self) -> &'static str {
                match self { $(<$ty>::$variant => $name),+ }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.to_ascii_uppercase().as_str() {
                    $($name => Ok(<$ty>::$variant),)+
                    _ => Err(UnknownName {
                        kind: stringify!($ty),
                        name: s.to_owned(),
                        expected: &[$($name),+],
                    }),
                }
            }
        }
    };
}

card_names!(ImageStatus,
    Uploaded => "UPLOADED", Ingested => "INGESTED", Processing => "PROCESSING",
    Stored => "STORED", Failed => "FAILED");
card_names!(JobKind,
    OffloadOriginal => "OFFLOAD_ORIGINAL", ThumbnailGeneration => "THUMBNAIL_GENERATION",
    PreviewGeneration => "PREVIEW_GENERATION", WebhookDelivery => "WEBHOOK_DELIVERY");
card_names!(JobStatus,
    Pending => "PENDING", Running => "RUNNING", Completed => "COMPLETED",
    Failed => "FAILED", Cancelled => "CANCELLED");

/// A name that is not one of a card enum's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// The enum it was parsed as.
    pub kind: &'static str,
    /// What was given.
    pub name: String,
    /// What would have been accepted.
    pub expected: &'static [&'static str],
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?} (expected one of {})", self.kind, self.name, self.expected.join(", "))
    }
}

impl std::error::Error for UnknownName {}

/// `201` answer to `POST /api/upload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UploadResponse {
    /// The new image's id.
    pub image_id: String,
    /// The image's state when the answer was sent (`INGESTED`).
    pub status: ImageStatus,
    /// SHA-256 of the uploaded bytes, lowercase hex.
    pub checksum: String,
    /// Size of the uploaded file in bytes.
    pub size_bytes: u64,
    /// RFC 3339 time the upload was accepted.
    pub uploaded_at: String,
}

/// One of an image's jobs, as listed on the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ProcessingJob {
    /// Job id.
    pub id: i64,
    /// Job type.
    #[serde(rename = "type")]
    pub kind: JobKind,
    /// Job state.
    pub status: JobStatus,
    /// Attempts started so far.
    pub attempts: i64,
}

/// An image as `GET /api/images` and `GET /api/images/:id` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// Image id.
    pub id: String,
    /// Title (the file name without extension when none was given).
    pub title: String,
    /// Collection, if any.
    pub collection: Option<String>,
    /// Life-cycle state.
    pub status: ImageStatus,
    /// SHA-256 of the original, lowercase hex.
    pub checksum: String,
    /// Size of the original in bytes.
    pub size_bytes: u64,
    /// Format recognised from the content (`jpeg`, `png`, ...).
    pub format: String,
    /// Width as displayed (after EXIF orientation).
    pub width: u32,
    /// Height as displayed (after EXIF orientation).
    pub height: u32,
    /// URL path of the 256 px thumbnail, once made.
    pub thumbnail_path: Option<String>,
    /// URL path of each thumbnail by its longest-edge size (`"64"`, `"128"`, ...), once made.
    pub thumbnails: BTreeMap<String, String>,
    /// ThumbHash of the image (base64), once the thumbnails exist: a
    /// placeholder a UI can paint at once.
    #[serde(default)]
    pub thumbhash: Option<String>,
    /// URL path of the web preview (JPEG), once made.
    pub preview_path: Option<String>,
    /// URL path of each encoding of the preview by format (`"jpeg"`, and
    /// `"webp"` or `"avif"` when the server makes them), once made.
    #[serde(default)]
    pub previews: BTreeMap<String, String>,
    /// The image's jobs, oldest first.
    pub processing_jobs: Vec<ProcessingJob>,
    /// True while the image is neither STORED nor FAILED.
    pub is_processing: bool,
    /// True once the original and every asset exist.
    pub is_stored: bool,
    /// Why processing failed, for a person to act on.
    pub error: Option<String>,
    /// RFC 3339 time of the upload.
    pub uploaded_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

/// A collection name with the number of images in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CollectionCount {
    /// Collection name.
    pub name: String,
    /// Images in it.
    pub count: u64,
}

/// `GET /api/images` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ImageList {
    /// The page of images, newest first.
    pub data: Vec<Image>,
    /// Every collection with its image count (regardless of filters).
    pub collections: Vec<CollectionCount>,
    /// How many images match the filters in all (not just this page).
    pub count: u64,
    /// The page that was asked for.
    pub pagination: Pagination,
}

/// `PATCH /api/images/:id` body: fields left out are kept; a `null` collection clears it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ImageUpdate {
    /// New title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// New collection: absent keeps it, `null` or `""` clears it.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub collection: Option<Option<String>>,
}

mod double_option {
    //! Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Option<String>>, s: S) -> Result<S::Ok, S::Error> {
        value.as_ref().and_then(|v| v.as_ref()).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

/// Paging of a list answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    /// Items matching the filters in all.
    pub total: u64,
    /// Page size asked for.
    pub limit: u64,
    /// Items skipped.
    pub offset: u64,
    /// True when items follow this page.
    pub has_more: bool,
    /// Pass as `cursor` to get the page after this one (keyset paging, as
    /// fast at any depth); absent on the last page. Not in the card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A job as `GET /api/admin/jobs` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct JobSummary {
    /// Job id.
    pub id: i64,
    /// Job type.
    #[serde(rename = "type")]
    pub kind: JobKind,
    /// Job state.
    pub status: JobStatus,
    /// The image it works on.
    pub image_id: Option<String>,
    /// Attempts started so far.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// Last error, if any attempt failed.
    pub last_error: Option<String>,
    /// RFC 3339 time it is (or was) due to run.
    pub run_at: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
    /// RFC 3339 time it ended, if it has.
    pub finished_at: Option<String>,
}

/// `GET /api/admin/jobs` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct JobList {
    /// The page of jobs, newest first.
    pub jobs: Vec<JobSummary>,
    /// Paging.
    pub pagination: Pagination,
}

/// When and how a job is retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RetryInfo {
    /// Attempts started so far.
    pub attempt: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// RFC 3339 time of the next attempt, while the job is PENDING.
    pub next_run_at: Option<String>,
    /// The last attempt's error.
    pub last_error: Option<String>,
}

/// `GET /api/admin/jobs/:id` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct JobDetail {
    /// Job id.
    pub id: i64,
    /// Job type.
    #[serde(rename = "type")]
    pub kind: JobKind,
    /// Job state.
    pub status: JobStatus,
    /// Attempts started so far.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// The job's payload, as the card defines it per type.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
    /// True while a runner holds an unexpired lease on it.
    pub locked: bool,
    /// The runner holding it, if any.
    pub locked_by: Option<String>,
    /// RFC 3339 end of the lease, if any.
    pub locked_until: Option<String>,
    /// Retry state.
    pub retry_info: RetryInfo,
    /// The image it works on, if it still exists.
    pub image: Option<Image>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
    /// RFC 3339 time it ended, if it has.
    pub finished_at: Option<String>,
}

/// `POST /api/admin/jobs/retry-failed` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Retried {
    /// How many FAILED jobs were put back to PENDING.
    pub retried: u64,
}

/// `POST /api/admin/reprocess` body: which images to look at. Only those
/// whose assets were made under other settings than the server's current
/// ones are regenerated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ReprocessRequest {
    /// Only this collection (absent: every collection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// Only images in this state: `STORED` (the default) or `FAILED`
    /// (those whose original was stored; they go back to `PROCESSING`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ImageStatus>,
    /// Count what would be regenerated and change nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// `POST /api/admin/reprocess` answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Reprocessed {
    /// Images selected whose assets are outdated.
    pub matched: u64,
    /// Of those, images whose regeneration was queued now (0 on a dry run;
    /// an image whose regeneration is still queued or running is not queued
    /// again).
    pub enqueued: u64,
}

/// Every 4xx/5xx answer: `{"error": {"code", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error inside an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable machine-readable code (`file_too_large`, `unsupported_format`, ...).
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_enums_round_trip_through_their_card_names() {
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(*status));
            let json = serde_json::to_string(status).expect("serialise");
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert_eq!("thumbnail_generation".parse::<JobKind>(), Ok(JobKind::ThumbnailGeneration));
        assert!("STOREDX".parse::<ImageStatus>().is_err());
    }

    #[test]
    fn image_update_tells_absent_collection_from_null() {
        let absent: ImageUpdate = serde_json::from_str(r#"{"title":"a"}"#).expect("parse");
        assert_eq!(absent.collection, None);
        let cleared: ImageUpdate = serde_json::from_str(r#"{"collection":null}"#).expect("parse");
        assert_eq!(cleared.collection, Some(None));
    }
}
