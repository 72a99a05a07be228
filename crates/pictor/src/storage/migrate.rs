//! `pictor storage migrate`: copies every original and asset from one
//! storage to another (folder → bucket, bucket → folder, bucket → bucket),
//! verifying each copy by its SHA-256, while Pictor keeps serving from the
//! source. Resumable: an object already at the destination with the same
//! bytes is skipped, so a re-run copies only what is missing (or differs).
//! Temp objects are not copied (they belong to uploads in flight).

use std::ops::ControlFlow;

use sha2::{Digest, Sha256};

use super::{Key, OriginalKey, Storage, StorageError};

/// The areas copied, in order.
pub const AREAS: [&str; 2] = ["originals", "assets"];

/// What a migration did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// Objects found at the source.
    pub total: usize,
    /// Objects copied (and verified).
    pub copied: usize,
    /// Objects already at the destination with the same bytes.
    pub skipped: usize,
}

/// One object done: reported to the caller, which may stop the migration.
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// The object.
    pub key: &'a Key,
    /// Whether it was copied (false: it was there already).
    pub copied: bool,
    /// Objects done so far, and in all.
    pub done: usize,
    /// Objects found at the source.
    pub total: usize,
}

/// Why a copy is refused.
fn corrupt(key: &Key, actual: String, expected: String) -> StorageError {
    StorageError::ChecksumMismatch { key: key.to_string(), actual, expected }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Copies every original and asset of `from` to `to`, calling `step` after
/// each; stops early (an interruption, resumable) when `step` breaks.
///
/// # Errors
/// Either storage failed, a source original does not have the checksum it
/// is named by, or a copy read back differs from its source.
pub async fn migrate(
    from: &dyn Storage,
    to: &dyn Storage,
    mut step: impl FnMut(Step<'_>) -> ControlFlow<()>,
) -> Result<Migrated, StorageError> {
    let mut keys = Vec::new();
    for area in AREAS {
        // Part files a crash left beside objects (older versions) are not objects.
        let listed = from.list(area).await?.into_iter().map(|listed| listed.key);
        keys.extend(listed.filter(|key| !key.as_str().ends_with(".part")));
    }
    let mut report = Migrated { total: keys.len(), ..Migrated::default() };
    for (done, key) in keys.iter().enumerate() {
        let bytes = from.get(key).await?;
        let expected = sha256(&bytes);
        if let Ok(original) = OriginalKey::parse(key.as_str())
            && OriginalKey::for_checksum(original.checksum()).is_ok()
            && original.checksum() != expected
        {
            return Err(corrupt(key, expected, original.checksum().to_owned()));
        }
        let present = match to.stat(key).await {
            Ok(info) if info.size == bytes.len() as u64 => sha256(&to.get(key).await?) == expected,
            Ok(_) | Err(StorageError::NotFound(_)) => false,
            Err(e) => return Err(e),
        };
        if present {
            report.skipped += 1;
        } else {
            to.put(key, bytes).await?;
            let copied = sha256(&to.get(key).await?);
            if copied != expected {
                return Err(corrupt(key, copied, expected));
            }
            report.copied += 1;
        }
        if step(Step { key, copied: !present, done: done + 1, total: report.total }).is_break() {
            break;
        }
    }
    Ok(report)
}
