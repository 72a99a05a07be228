//! Storage garbage collection (`pictor gc [--dry-run]`, and in `serve`
//! every `PICTOR_GC_INTERVAL` seconds): removes, on either backend, the
//! originals no image references, the assets no image row names (those of
//! deleted images, and thumbnail sizes a reprocess dropped) and the temp
//! objects no image needs, each older than the grace period (so nothing
//! being written now is touched). An original is removed only under its
//! lock and only when no image has its checksum, the same rule as a
//! delete's ([`DbOriginalLocks`]).

use std::time::{Duration, SystemTime};

use super::originals::DbOriginalLocks;
use super::{Images, ImagesResult};
use crate::db::{self, ImageId};
use crate::shutdown::Shutdown;
use crate::storage::{Key, OriginalKey};

/// Collects one storage's garbage.
#[derive(Debug, Clone)]
pub struct Gc {
    images: Images,
    grace: Duration,
}

impl Gc {
    /// A collector of `images`' storage leaving objects younger than `grace`.
    pub fn new(images: Images, grace: Duration) -> Self {
        Self { images, grace }
    }

    /// Collects at once, then every `interval`, until `shutdown`.
    pub async fn run_every(self, interval: Duration, shutdown: Shutdown) {
        shutdown
            .every(interval, || async {
                match self.collect(false).await {
                    Ok(removed) if removed.is_empty() => {}
                    Ok(removed) => tracing::info!(removed = removed.len(), "storage gc removed unreferenced objects"),
                    Err(e) => tracing::warn!(error = %e, "storage gc failed; trying again later"),
                }
            })
            .await;
    }

    /// Finds the garbage and, unless `dry_run`, removes it; returns its keys.
    ///
    /// # Errors
    /// Listing the storage, asking the database or removing failed; what
    /// was removed before the failure stays removed.
    pub async fn collect(&self, dry_run: bool) -> ImagesResult<Vec<Key>> {
        let before = SystemTime::now().checked_sub(self.grace).unwrap_or(SystemTime::UNIX_EPOCH);
        let storage = &self.images.storage;
        let pool = &self.images.db.pool;
        let locks = DbOriginalLocks::new(self.images.db.clone());
        let mut garbage = Vec::new();
        for listed in storage.list("originals").await? {
            if listed.modified >= before {
                continue;
            }
            let original = OriginalKey::parse(listed.key.as_str())
                .ok()
                .filter(|key| OriginalKey::for_checksum(key.checksum()).is_ok_and(|own| own == *key));
            match original {
                // Decided and removed under the original's lock.
                Some(original) if dry_run => {
                    if locks.is_unused(&original).await? {
                        garbage.push(listed.key);
                    }
                }
                Some(original) => {
                    if locks.remove_if_unused(storage.as_ref(), &original).await? {
                        garbage.push(listed.key);
                    }
                }
                // Not an original's name: a part file an older version left.
                None => garbage.push(self.remove(listed.key, dry_run).await?),
            }
        }
        for listed in storage.list("assets").await? {
            if listed.modified >= before {
                continue;
            }
            let image = listed.key.as_str().split('/').nth(1).unwrap_or_default().to_owned();
            // An image's row names each of its assets; one it no longer
            // names (a thumbnail size dropped by a reprocess) is garbage too.
            let referenced = db::images::get(pool, &ImageId::from(image))
                .await?
                .is_some_and(|record| record.references(listed.key.as_str()));
            if !referenced {
                garbage.push(self.remove(listed.key, dry_run).await?);
            }
        }
        for listed in storage.list("tmp").await? {
            if listed.modified < before && !db::images::uses_temp(pool, listed.key.as_str()).await? {
                garbage.push(self.remove(listed.key, dry_run).await?);
            }
        }
        Ok(garbage)
    }

    async fn remove(&self, key: Key, dry_run: bool) -> ImagesResult<Key> {
        if !dry_run {
            self.images.storage.delete(&key).await?;
        }
        Ok(key)
    }
}
