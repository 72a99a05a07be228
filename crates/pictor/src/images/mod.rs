//! The images layer: Pictor's domain, between the surfaces (HTTP API, web
//! pages, CLI through the API) and the layers below (ingest, storage, db,
//! queue). It accepts uploads, finds, lists, edits and deletes images, lets
//! operators inspect and steer their jobs, writes what a job's success or
//! failure means for its image ([`ImageEffects`]), and publishes every
//! change as an [`events::Change`] for `GET /api/events`.

mod admission;
mod catalog;
mod effects;
pub mod events;
mod gauges;
mod gc;
mod jobs;
mod originals;
mod readiness;
mod reprocess;
mod sweeper;
mod upload;
pub mod view;
pub mod webhooks;

use std::sync::Arc;

pub use crate::db::ImageId;
pub use admission::{
    Admission, DEFAULT_MAX_CONCURRENT_UPLOADS, DEFAULT_MAX_TEMP_BYTES, RETRY_AFTER_SECS, UploadTicket,
};
pub use catalog::ImageFilter;
pub use effects::ImageEffects;
pub use gauges::Gauges;
pub use gc::Gc;
pub use jobs::{JobCounts, JobFilter};
pub use originals::DbOriginalLocks;
pub use readiness::{Check, Readiness, STORAGE_CHECK_TTL, error_chain};
pub use reprocess::{Progress as ReprocessProgress, REPROCESS_BATCH_SIZE, Selection as ReprocessSelection};
pub use sweeper::{DEFAULT_TEMP_GRACE_SECS, TEMP_SWEEP_INTERVAL, TempSweeper};
pub use upload::{
    Accepted, MAX_TEXT_FIELD_BYTES, UploadDetails, UploadLimits, text_field as upload_text_field, text_field_too_long,
};

use crate::clock::Millis;
use crate::db::{Db, DbError, Window};
use crate::handlers::AssetSettings;
use crate::ingest::IngestError;
use crate::queue::{Queue, QueueError};
use crate::storage::{AssetKey, AssetRedirect, ByteStream, ObjectInfo, Storage, StorageError};

/// Default page size of a list.
pub const DEFAULT_PAGE_SIZE: i64 = 50;
/// Largest page size of a list.
pub const MAX_PAGE_SIZE: i64 = 1_000;

/// Why the images layer refused or failed a request.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    /// The upload was refused (size, format, header).
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// A job operation was refused (unknown job, wrong state) or failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Storage failed, or holds nothing under a key.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A request the domain cannot take: a stable code and a message.
    #[error("{message}")]
    Invalid {
        /// Stable code (`invalid_limit`, `field_too_long`, ...).
        code: &'static str,
        /// For a person.
        message: String,
    },
    /// No such image (or job, or asset).
    #[error("{0} not found")]
    NotFound(String),
    /// Too many uploads in flight: try again after [`RETRY_AFTER_SECS`].
    #[error("{0}")]
    Busy(String),
}

impl ImagesError {
    /// A refusal with a code.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid { code, message: message.into() }
    }
}

impl From<sqlx::Error> for ImagesError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e.into())
    }
}

/// The result of an images operation.
pub type ImagesResult<T> = Result<T, ImagesError>;

/// A page of a list: how many items, after which cursor and how many more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Items on the page, `1..=MAX_PAGE_SIZE`.
    pub limit: i64,
    /// Items skipped (after the cursor, when there is one).
    pub offset: i64,
    /// The `nextCursor` of the page before: this page starts after it
    /// (keyset pagination, whose cost does not grow with the depth).
    pub cursor: Option<String>,
}

impl Page {
    /// Checks paging parameters; absent ones take their defaults.
    ///
    /// # Errors
    /// `invalid_limit` outside `1..=MAX_PAGE_SIZE`, `invalid_offset` below zero.
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> ImagesResult<Self> {
        let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
        let offset = offset.unwrap_or(0);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            return Err(ImagesError::invalid("invalid_limit", format!("limit must be between 1 and {MAX_PAGE_SIZE}")));
        }
        if offset < 0 {
            return Err(ImagesError::invalid("invalid_offset", "offset must not be negative"));
        }
        Ok(Self { limit, offset, cursor: None })
    }

    /// Page `number` (1-based) of `size` items.
    pub fn numbered(number: i64, size: i64) -> Self {
        Self { limit: size, offset: number.saturating_sub(1).saturating_mul(size), cursor: None }
    }

    /// The same page starting after `cursor` (a `nextCursor`; empty is none).
    #[must_use]
    pub fn after(self, cursor: Option<String>) -> Self {
        Self { cursor: cursor.filter(|c| !c.is_empty()), ..self }
    }

    /// The database's window of this page, its cursor parsed by `parse`.
    fn window<K>(&self, parse: impl Fn(&str) -> Option<K>) -> ImagesResult<Window<K>> {
        let after = match &self.cursor {
            Some(cursor) => Some(parse(cursor).ok_or_else(|| {
                ImagesError::invalid("invalid_cursor", "cursor must be a nextCursor from a previous page")
            })?),
            None => None,
        };
        Ok(Window { after, limit: self.limit, offset: self.offset })
    }
}

/// Parses an optional card-named filter value (a status, a job type); empty
/// means absent.
///
/// # Errors
/// `code` when the value is not one of the type's names.
pub fn parse_name<T>(value: Option<String>, code: &'static str) -> ImagesResult<Option<T>>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<T>())
        .transpose()
        .map_err(|e| ImagesError::invalid(code, e.to_string()))
}

/// The images service: what every surface calls. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Images {
    db: Db,
    storage: Arc<dyn Storage>,
    queue: Queue,
    events: events::Events,
    limits: UploadLimits,
    originals: DbOriginalLocks,
    admission: Admission,
    /// Whether deletions queue webhook events.
    webhooks: webhooks::Webhooks,
    /// The last storage check, reused by `/readyz` for a few seconds.
    storage_check: readiness::StorageCheckCache,
    /// The asset settings in force, which reprocessing compares images with.
    assets: Arc<AssetSettings>,
}

impl Images {
    /// The service over these layers, its assets made as `assets` says.
    pub fn new(
        db: Db,
        storage: Arc<dyn Storage>,
        queue: Queue,
        limits: UploadLimits,
        assets: Arc<AssetSettings>,
    ) -> Self {
        let events = events::Events::new(db.clone(), queue.clock.clone());
        let originals = DbOriginalLocks::new(db.clone());
        let admission = Admission::new(limits.max_concurrent_uploads, limits.max_temp_bytes);
        let webhooks = webhooks::Webhooks::default();
        Self {
            db,
            storage,
            queue,
            events,
            limits,
            originals,
            admission,
            webhooks,
            storage_check: Arc::default(),
            assets,
        }
    }

    /// The same service, queuing webhook events for deletions as `webhooks` says.
    #[must_use]
    pub fn with_webhooks(self, webhooks: webhooks::Webhooks) -> Self {
        Self { webhooks, ..self }
    }

    /// The change events of images and jobs.
    pub fn events(&self) -> &events::Events {
        &self.events
    }

    /// What uploads may be.
    pub fn limits(&self) -> UploadLimits {
        self.limits
    }

    /// Now, on the queue's clock.
    pub fn now(&self) -> Millis {
        self.queue.clock.now()
    }

    /// An asset's key, size and entity tag, by the key its URL names
    /// (`assets/...`), without reading it.
    ///
    /// # Errors
    /// Not an asset key Pictor makes, nothing stored under it, or storage failed.
    pub async fn asset(&self, key: &str) -> ImagesResult<(AssetKey, ObjectInfo)> {
        let key = AssetKey::parse(key)?;
        let info = self.storage.stat(&key).await?;
        Ok((key, info))
    }

    /// A URL to fetch an asset from the store directly, by the key its URL
    /// names, or `None` when the storage has none.
    ///
    /// # Errors
    /// Not an asset key Pictor makes, or the URL cannot be signed.
    pub async fn asset_url(&self, key: &str, how: AssetRedirect) -> ImagesResult<Option<String>> {
        let key = AssetKey::parse(key)?;
        Ok(self.storage.direct_url(&key, how).await?)
    }

    /// Streams the bytes `range` of an asset found by [`Images::asset`].
    ///
    /// # Errors
    /// The asset is gone, or storage failed.
    pub async fn asset_bytes(&self, key: &AssetKey, range: std::ops::Range<u64>) -> ImagesResult<ByteStream> {
        Ok(self.storage.read_range(key, range).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_checked_and_numbered_pages_start_at_one() {
        assert_eq!(
            Page::new(None, None).expect("defaults"),
            Page { limit: DEFAULT_PAGE_SIZE, offset: 0, cursor: None }
        );
        assert!(Page::new(Some(0), None).is_err());
        assert!(Page::new(Some(MAX_PAGE_SIZE + 1), None).is_err());
        assert!(Page::new(None, Some(-1)).is_err());
        assert_eq!(Page::numbered(3, 24), Page { limit: 24, offset: 48, cursor: None });
        assert_eq!(Page::numbered(1, 5).after(Some(String::new())).cursor, None, "an empty cursor is none");
    }
}
