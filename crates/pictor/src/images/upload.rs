//! Accepting an upload: the bytes stream to a durable temp file (ingest),
//! then the image row and its first job commit in one transaction (DESIGN
//! invariant 1) before the upload is acknowledged.

use bytes::Bytes;
use futures_util::Stream;
use pictor_client::models::ImageStatus;
use pictor_imaging::Limits;

use super::{Images, ImagesError, ImagesResult};
use crate::clock::Millis;
use crate::db::{self, Durability, ImageId};
use crate::handlers::payload::{OffloadPayload, offload_job};
use crate::ingest::{self, IngestError, Ingested};

/// Longest accepted title or collection, in characters.
pub const MAX_TEXT_FIELD_CHARS: usize = 500;
/// Most bytes a text field may arrive as, surrounding blanks included: a
/// surface reading one stops here instead of buffering whatever is sent.
pub const MAX_TEXT_FIELD_BYTES: usize = MAX_TEXT_FIELD_CHARS * 4 + 1024;

/// The refusal of a title or collection that is too long.
pub fn text_field_too_long(name: &str) -> ImagesError {
    ImagesError::invalid("field_too_long", format!("`{name}` is longer than {MAX_TEXT_FIELD_CHARS} characters"))
}

/// Limits applied to uploads.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Largest upload, bytes.
    pub max_upload_bytes: u64,
    /// Largest image, pixels.
    pub max_pixels: u64,
    /// Most uploads received at once.
    pub max_concurrent_uploads: usize,
    /// Most bytes of uploads in flight.
    pub max_temp_bytes: u64,
}

/// What the uploader said of the file besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct UploadDetails {
    /// Title; defaults to the file's name without its extension.
    pub title: Option<String>,
    /// Collection, if any.
    pub collection: Option<String>,
    /// The client's name for the file.
    pub file_name: Option<String>,
}

/// An acknowledged upload.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The new image's id.
    pub image_id: String,
    /// SHA-256 of the bytes, hex.
    pub checksum: String,
    /// Bytes.
    pub size_bytes: u64,
    /// When it was accepted.
    pub uploaded_at: Millis,
    /// Its state now (INGESTED).
    pub status: ImageStatus,
}

/// A trimmed text field of an upload; empty means absent.
///
/// # Errors
/// `field_too_long` past [`MAX_TEXT_FIELD_CHARS`].
pub fn text_field(name: &str, value: &str) -> ImagesResult<Option<String>> {
    let value = value.trim();
    if value.chars().count() > MAX_TEXT_FIELD_CHARS {
        return Err(text_field_too_long(name));
    }
    Ok((!value.is_empty()).then(|| value.to_owned()))
}

impl Images {
    /// Admits an upload that says it is `declared_bytes` long (the upload
    /// limit when it does not say), before any of it is read.
    ///
    /// # Errors
    /// [`ImagesError::Busy`] while too many uploads are in flight.
    pub fn admit_upload(&self, declared_bytes: Option<u64>) -> ImagesResult<super::UploadTicket> {
        let bytes = declared_bytes.unwrap_or(self.limits.max_upload_bytes).min(self.limits.max_upload_bytes);
        self.admission.admit(bytes)
    }

    /// Streams an upload's bytes to a durable temp file and reads its
    /// header; nothing is recorded yet ([`Images::accept`] does).
    ///
    /// # Errors
    /// A refusal (size, format, header) or a disk failure; nothing is left behind.
    pub async fn ingest<S>(&self, body: S) -> ImagesResult<Ingested>
    where
        S: Stream<Item = Result<Bytes, IngestError>> + Unpin,
    {
        let limits = Limits { max_pixels: self.limits.max_pixels, ..Limits::default() };
        Ok(ingest::ingest(self.storage.as_ref(), body, self.limits.max_upload_bytes, limits).await?)
    }

    /// Records an ingested upload: the image row (INGESTED) and its offload
    /// job, in one transaction, then wakes the runner. On an error the temp
    /// file is removed.
    ///
    /// # Errors
    /// The database failed.
    pub async fn accept(&self, ingested: &Ingested, details: UploadDetails) -> ImagesResult<Accepted> {
        let accepted = self.record(ingested, details).await;
        if accepted.is_err() {
            self.discard(ingested).await;
        }
        let accepted = accepted?;
        self.queue
            .telemetry
            .record(|| metrics::counter!(crate::telemetry::UPLOAD_BYTES).increment(ingested.size_bytes));
        // The poller reads the new row and publishes it.
        self.events.nudge();
        Ok(accepted)
    }

    /// Drops an ingested upload that will not be accepted.
    pub async fn discard(&self, ingested: &Ingested) {
        if let Err(e) = self.storage.abort(&ingested.temp_key).await {
            tracing::warn!(key = %ingested.temp_key, error = ?e, "cannot remove a refused upload");
        }
    }

    async fn record(&self, ingested: &Ingested, details: UploadDetails) -> ImagesResult<Accepted> {
        let id = ImageId::new_v7();
        let (width, height) = ingested.info.display_size();
        let image = db::images::NewImage {
            id: id.clone(),
            title: details.title.unwrap_or_else(|| title_from_file_name(details.file_name.as_deref())),
            collection: details.collection,
            checksum: ingested.checksum.clone(),
            size_bytes: i64::try_from(ingested.size_bytes).unwrap_or(i64::MAX),
            format: ingested.info.format.as_str().to_owned(),
            width: width.into(),
            height: height.into(),
            orientation: ingested.info.orientation.into(),
            temp_path: ingested.temp_key.to_string(),
        };
        let payload = OffloadPayload {
            image_id: id.clone(),
            temp_path: ingested.temp_key.to_string(),
            checksum: ingested.checksum.clone(),
        };
        let job = offload_job(&payload).map_err(|e| ImagesError::invalid("invalid_payload", e.to_string()))?;
        let now = self.now();
        // DESIGN invariant 1: the row and its first job commit together.
        let mut tx = self.db.begin_write(Durability::Acknowledged).await?;
        db::images::insert_ingested(&mut *tx, &image, now).await?;
        self.queue.enqueue_in(&mut tx, &job).await?;
        tx.commit().await?;
        self.queue.wake();
        Ok(Accepted {
            image_id: id.to_string(),
            checksum: ingested.checksum.clone(),
            size_bytes: ingested.size_bytes,
            uploaded_at: now,
            status: ImageStatus::Ingested,
        })
    }
}

/// The default title: the client's file name without folders or extension.
fn title_from_file_name(file_name: Option<&str>) -> String {
    let base = file_name.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let stem = match base.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => base,
    };
    let stem = stem.trim();
    if stem.is_empty() { "Untitled".to_owned() } else { stem.chars().take(MAX_TEXT_FIELD_CHARS).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_title_is_the_file_name_without_folders_or_extension() {
        assert_eq!(title_from_file_name(Some("holiday.beach.jpg")), "holiday.beach");
        assert_eq!(title_from_file_name(Some("C:\\photos\\cat.png")), "cat");
        assert_eq!(title_from_file_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(title_from_file_name(Some(".hidden")), ".hidden");
        assert_eq!(title_from_file_name(None), "Untitled");
    }

    #[test]
    fn text_fields_are_trimmed_empty_is_absent_and_long_is_refused() {
        assert_eq!(text_field("title", "  cat ").expect("ok").as_deref(), Some("cat"));
        assert_eq!(text_field("title", "   ").expect("ok"), None);
        assert!(text_field("title", &"x".repeat(MAX_TEXT_FIELD_CHARS + 1)).is_err());
    }
}
