//! Where bytes live: the [`Storage`] trait and its local-folder
//! implementation. Storage owns the whole life of an upload's bytes: an
//! upload is written through an [`UploadWriter`] into the temp area, then
//! [`promoted`](Storage::promote) to its content-addressed original or
//! [`aborted`](Storage::abort); assets are written in sets. Keys are typed
//! by area ([`keys`]). Whether an original is still needed is decided under
//! an [`OriginalLocks`] lock, which the caller supplies.

mod durable;
pub mod keys;
mod local;
pub mod migrate;
mod object;

use std::io::{Read, Seek};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use keys::{AssetKey, Key, OriginalKey, TempKey, assets_prefix};
pub use local::LocalStorage;
pub use object::{ObjectSettings, ObjectStorage};

/// `Cache-Control` of every asset: its URL never changes content.
pub const ASSET_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// How asset requests may be answered by a redirect to the store itself
/// (`PICTOR_ASSET_REDIRECT`) instead of bytes streamed through Pictor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AssetRedirect {
    /// A presigned GET URL, valid for [`PRESIGNED_URL_SECS`].
    Presigned,
    /// The object's plain URL (the bucket or a CDN in front of it must allow public reads).
    Public,
}

/// How long a presigned asset URL is valid, seconds.
pub const PRESIGNED_URL_SECS: u64 = 3600;

/// A stream of an object's bytes.
pub type ByteStream = futures_util::stream::BoxStream<'static, Result<bytes::Bytes, StorageError>>;

/// Size and entity tag of a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Bytes.
    pub size: u64,
    /// A strong entity tag, quoted (changes whenever the content does).
    pub etag: String,
}

/// An object listed by [`Storage::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key.
    pub key: Key,
    /// When it was last written.
    pub modified: SystemTime,
}

/// A local file holding an object's bytes, for decoding: the object's own
/// file on local storage, or a copy in the process's scratch folder
/// (removed when this is dropped) on an object store.
#[derive(Debug)]
pub struct LocalCopy {
    path: PathBuf,
    scratch: bool,
}

impl LocalCopy {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LocalCopy {
    fn drop(&mut self) {
        if self.scratch {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Nothing is stored under the key.
    #[error("nothing stored under {0:?}")]
    NotFound(String),
    /// The key is not one Pictor makes (never built from client input).
    #[error("invalid storage key {0:?}")]
    InvalidKey(String),
    /// An upload's bytes are not the ones that were acknowledged.
    #[error("the upload {key:?} changed: its checksum is {actual}, expected {expected}")]
    ChecksumMismatch {
        /// The upload.
        key: String,
        /// SHA-256 of what is stored now.
        actual: String,
        /// SHA-256 that was acknowledged.
        expected: String,
    },
    /// The lock of an original could not be taken (its database failed).
    #[error("cannot lock the original {key:?}")]
    Lock {
        /// The original.
        key: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The storage is full (no space, or over quota): retry once space is freed.
    #[error("the storage is full (writing {key:?})")]
    Full {
        /// The key being written.
        key: String,
        /// The file system's error.
        #[source]
        source: std::io::Error,
    },
    /// The object store failed or could not be reached (after its own
    /// retries): retry later.
    #[error("the object store failed on {key:?}: {source}")]
    Unavailable {
        /// The key.
        key: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The file system failed.
    #[error("storage I/O failed on {key:?}")]
    Io {
        /// The key.
        key: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What [`Storage::promote`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promoted {
    /// The upload is now the original.
    Moved,
    /// The original existed already (the same bytes uploaded before): the
    /// upload was dropped.
    AlreadyStored,
}

/// Serialises what is done to one original across every process sharing
/// the storage: an offload's "is it stored already? then drop my upload"
/// and a delete's "does any image still use it? then remove it" never
/// interleave. Originals are shared by content (the same bytes uploaded
/// twice are stored once), so without it a delete could count no user of
/// an original just before a concurrent offload of the same bytes relied on
/// it and dropped its own copy. The images layer implements it on the
/// database every process shares.
#[async_trait::async_trait]
pub trait OriginalLocks: Send + Sync + std::fmt::Debug {
    /// Waits for the lock of `original` and holds it until the returned
    /// guard is released.
    ///
    /// # Errors
    /// [`StorageError::Lock`] when the lock cannot be taken.
    async fn lock(&self, original: &OriginalKey) -> Result<Box<dyn HeldLock>, StorageError>;
}

/// A held [`OriginalLocks`] lock.
#[async_trait::async_trait]
pub trait HeldLock: Send {
    /// Releases the lock (dropping the guard releases it too, later).
    async fn release(self: Box<Self>);
}

/// A blocking reader of a stored object, for work already on a blocking
/// thread (the header probe).
pub trait ObjectRead: Read + Seek + Send {}

impl<T: Read + Seek + Send> ObjectRead for T {}

/// An upload being written to the temp area. Dropping it without
/// [`finish`](UploadWriter::finish) or [`abort`](UploadWriter::abort) may
/// leave a partial temp object for the sweeper.
#[async_trait::async_trait]
pub trait UploadWriter: Send {
    /// Where the upload is written.
    fn key(&self) -> &TempKey;
    /// Appends a block; gives the block's buffer back, emptied, for reuse.
    async fn write(&mut self, block: Vec<u8>) -> Result<Vec<u8>, StorageError>;
    /// Appends the last block and makes the whole upload durable (DESIGN
    /// invariant 1: nothing is acknowledged before this returns).
    ///
    /// # Errors
    /// I/O (a full disk among them); what was written is then discarded.
    async fn finish(self: Box<Self>, last: Vec<u8>) -> Result<TempKey, StorageError>;
    /// Discards what was written.
    async fn abort(self: Box<Self>);
}

/// A place to keep uploads, originals and assets. Writes are atomic: a
/// reader sees the whole object or none (DESIGN invariant 3).
#[async_trait::async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Starts writing a new upload into the temp area.
    ///
    /// # Errors
    /// The temp area cannot be written.
    async fn begin_upload(&self) -> Result<Box<dyn UploadWriter>, StorageError>;
    /// Makes a finished upload the original `original`, after checking that
    /// its bytes still have the acknowledged SHA-256. If the original
    /// exists already (same bytes, by its content-addressed key), drops the
    /// upload instead. The check for the original and the move or drop
    /// happen under the original's lock from `locks`.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] when the upload is gone,
    /// [`StorageError::ChecksumMismatch`], [`StorageError::Lock`], or I/O.
    async fn promote(
        &self,
        upload: &TempKey,
        original: &OriginalKey,
        sha256: &str,
        locks: &dyn OriginalLocks,
    ) -> Result<Promoted, StorageError>;
    /// Discards an upload; a missing one is not an error.
    ///
    /// # Errors
    /// I/O.
    async fn abort(&self, upload: &TempKey) -> Result<(), StorageError>;
    /// A blocking reader of an object. Call it from a blocking thread.
    ///
    /// # Errors
    /// Nothing stored under the key, or I/O.
    fn open_blocking(&self, key: &Key) -> Result<Box<dyn ObjectRead>, StorageError>;
    /// Stores a set of assets, replacing what was there; every one is
    /// durable when this returns, and each appears whole or not at all.
    ///
    /// # Errors
    /// I/O; no partial object is left.
    async fn put_assets(&self, assets: Vec<(AssetKey, Vec<u8>)>) -> Result<(), StorageError>;
    /// Stores one object whole under `key` (any area), replacing what was
    /// there; durable when this returns (`pictor storage migrate`).
    ///
    /// # Errors
    /// I/O; no partial object is left.
    async fn put(&self, key: &Key, bytes: Vec<u8>) -> Result<(), StorageError>;
    /// Reads a whole object.
    ///
    /// # Errors
    /// Nothing stored under the key, or I/O.
    async fn get(&self, key: &Key) -> Result<Vec<u8>, StorageError>;
    /// Size and entity tag of an object, without reading it.
    ///
    /// # Errors
    /// Nothing stored under the key, or I/O.
    async fn stat(&self, key: &Key) -> Result<ObjectInfo, StorageError>;
    /// Streams the bytes `range` of an object (within its size).
    ///
    /// # Errors
    /// Nothing stored under the key, or I/O.
    async fn read_range(&self, key: &Key, range: Range<u64>) -> Result<ByteStream, StorageError>;
    /// A local file with an object's bytes, for decoding: the file itself,
    /// or a download into this process's scratch folder.
    ///
    /// # Errors
    /// Nothing stored under the key, or I/O.
    async fn local_copy(&self, key: &Key) -> Result<LocalCopy, StorageError>;
    /// Every object under an area (`originals`, `assets`, `tmp`).
    ///
    /// # Errors
    /// I/O.
    async fn list(&self, area: &str) -> Result<Vec<Listed>, StorageError>;
    /// A URL the client may fetch the object from directly, or `None` when
    /// this storage has none (a local folder: assets are served by Pictor).
    ///
    /// # Errors
    /// The URL cannot be signed.
    async fn direct_url(&self, key: &Key, how: AssetRedirect) -> Result<Option<String>, StorageError>;
    /// Whether `key` exists.
    ///
    /// # Errors
    /// I/O.
    async fn exists(&self, key: &Key) -> Result<bool, StorageError>;
    /// Deletes `key`; a missing key is not an error.
    ///
    /// # Errors
    /// I/O.
    async fn delete(&self, key: &Key) -> Result<(), StorageError>;
    /// Deletes every asset of an image; none is not an error.
    ///
    /// # Errors
    /// An image id that makes no key, or I/O.
    async fn delete_assets(&self, image_id: &str) -> Result<(), StorageError>;
    /// Temporary files last written before `before`, for the temp sweeper:
    /// everything in the temp area (uploads in flight or abandoned, parts
    /// of objects being written) and, with `beside_objects`, the `.part`
    /// files that older versions wrote beside assets and originals and a
    /// crash left there. Which of them are still needed is the caller's
    /// question (an upload whose image is not offloaded yet is).
    ///
    /// # Errors
    /// I/O.
    async fn temp_files_before(&self, before: SystemTime, beside_objects: bool) -> Result<Vec<Key>, StorageError>;
    /// Checks that the storage can be written now (for `/readyz`).
    ///
    /// # Errors
    /// It cannot.
    async fn check_writable(&self) -> Result<(), StorageError>;
}
