//! Where bytes live: the [`Storage`] trait and its local-folder
//! implementation. Keys are relative paths: `tmp/` for uploads in flight,
//! `originals/` keyed by checksum, `assets/` for thumbnails and previews.

mod local;

use std::path::Path;

pub use local::LocalStorage;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Nothing is stored under the key.
    #[error("nothing stored under {0:?}")]
    NotFound(String),
    /// The key is not one Pictor makes (never built from client input).
    #[error("invalid storage key {0:?}")]
    InvalidKey(String),
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

/// A place to keep originals and assets. Writes are atomic: a reader sees
/// the whole object or none (DESIGN invariant 3).
#[async_trait::async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// Moves a local, already written file in under `key`. If `key` exists
    /// already the file is dropped instead (content-addressed keys hold the
    /// same bytes).
    async fn put_file(&self, key: &str, src: &Path) -> Result<(), StorageError>;
    /// Stores each `(key, bytes)`, replacing what was there; every object is
    /// durable when this returns, and each one appears whole or not at all.
    async fn put_many(&self, objects: Vec<(String, Vec<u8>)>) -> Result<(), StorageError>;
    /// Stores `bytes` under `key`, replacing what was there.
    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.put_many(vec![(key.to_owned(), bytes)]).await
    }
    /// Reads a whole object.
    async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError>;
    /// Whether `key` exists.
    async fn exists(&self, key: &str) -> Result<bool, StorageError>;
    /// Deletes `key`; a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;
    /// Deletes every key under `prefix/`; a missing prefix is not an error.
    async fn delete_prefix(&self, prefix: &str) -> Result<(), StorageError>;
    /// Checks that the storage can be written now (for `/healthz`).
    async fn check_writable(&self) -> Result<(), StorageError>;
}

/// Storage key of an original: content-addressed, so the same bytes are
/// stored once.
pub fn original_key(checksum: &str) -> String {
    let fan_out = checksum.get(..2).unwrap_or("00");
    format!("originals/{fan_out}/{checksum}")
}

/// Storage key of an image's thumbnail of the given longest edge.
pub fn thumbnail_key(image_id: &str, size: u32) -> String {
    format!("assets/{image_id}/thumb-{size}.jpg")
}

/// Storage key of an image's preview in one encoding (`preview.jpg`, `preview.webp`, `preview.avif`).
pub fn preview_key(image_id: &str, format: pictor_imaging::AssetFormat) -> String {
    format!("assets/{image_id}/preview.{}", format.extension())
}

/// Storage prefix of all of an image's assets.
pub fn assets_prefix(image_id: &str) -> String {
    format!("assets/{image_id}")
}

/// Checks that a key is one Pictor could have made: relative, no `..`, only
/// `[A-Za-z0-9._-]` segments.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    let ok = !key.is_empty()
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    if ok { Ok(()) } else { Err(StorageError::InvalidKey(key.to_owned())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_escape_the_root_are_refused() {
        for bad in ["", "/etc/passwd", "assets/../x", "assets//x", "a/./b", "assets/x y.jpg", "a\\b"] {
            assert!(validate_key(bad).is_err(), "{bad:?} accepted");
        }
        validate_key(&thumbnail_key("0190-ab", 64)).expect("own keys are valid");
        validate_key(&original_key("abcdef")).expect("own keys are valid");
    }
}
