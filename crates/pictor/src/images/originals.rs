//! Shared originals: who may remove one, and when. An original is stored
//! once per checksum and used by every image with those bytes, from its
//! upload on (its row's `checksum`). Its removal and an offload's reliance
//! on it are serialised by a lock taken in the database every process
//! shares ([`DbOriginalLocks`]).

use crate::db::{self, Backend, Db, DbResult, Durability, Tx};
use crate::storage::{HeldLock, OriginalKey, OriginalLocks, Storage, StorageError};

/// The locks of originals, in the database.
///
/// Why a database lock: the decision "no image uses this original, remove
/// it" (a delete, or a job finding its image deleted) and the decision "the
/// original is stored, drop my upload" (an offload of the same bytes) are
/// each a check followed by a file operation, made by any process sharing
/// the database and the storage. A reference row written first would not
/// be enough on its own: a delete could count before it and remove after
/// the offload's check. Both sides therefore run their check and their
/// file operation under one lock per original, and count users by
/// `image.checksum`, which exists from the upload on, so an offload's image
/// is counted before it can look for the original. The database is the one
/// thing every process shares (a file lock would not span hosts on an
/// object store), and its lock cannot outlive a crashed holder: on SQLite
/// the write transaction (`BEGIN IMMEDIATE`, the database's one write lock,
/// across processes), on PostgreSQL a transaction-scoped advisory lock. It
/// is held only for an existence check and a rename or unlink, never while
/// an upload is hashed.
#[derive(Debug, Clone)]
pub struct DbOriginalLocks {
    db: Db,
}

impl DbOriginalLocks {
    /// Locks kept in `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Takes the lock of `original` in a transaction of its own.
    async fn acquire(&self, original: &OriginalKey) -> DbResult<Tx<'static>> {
        let mut tx = self.db.begin_write(Durability::Bookkeeping).await?;
        db::images::lock_original(&mut *tx, self.db.backend, original.checksum()).await?;
        Ok(tx)
    }

    /// Whether no image uses `original`, asked under its lock (for a dry
    /// run: by the time the answer is read, it may have changed).
    ///
    /// # Errors
    /// The database failed.
    pub async fn is_unused(&self, original: &OriginalKey) -> Result<bool, StorageError> {
        let mut tx = self.acquire(original).await.map_err(|e| lock_error(original, e))?;
        let unused = unused_in(&mut tx, self.db.backend, original).await.map_err(|e| lock_error(original, e));
        let _ = tx.rollback().await;
        unused
    }

    /// Removes `original` from `storage` if no image uses it, under its
    /// lock. True when it was removed.
    ///
    /// # Errors
    /// The database or the storage failed; the original is then kept.
    pub async fn remove_if_unused(&self, storage: &dyn Storage, original: &OriginalKey) -> Result<bool, StorageError> {
        let mut tx = self.acquire(original).await.map_err(|e| lock_error(original, e))?;
        let removed = match unused_in(&mut tx, self.db.backend, original).await {
            Ok(true) => storage.delete(original).await.map(|()| true),
            Ok(false) => Ok(false),
            Err(e) => Err(lock_error(original, e)),
        };
        // Nothing was written: ending the transaction releases the lock.
        let _ = tx.rollback().await;
        removed
    }
}

/// The lock as the storage holds it during a promotion.
struct HeldTx(Tx<'static>);

#[async_trait::async_trait]
impl HeldLock for HeldTx {
    async fn release(self: Box<Self>) {
        // Nothing was written: ending the transaction releases the lock.
        if let Err(e) = self.0.rollback().await {
            tracing::warn!(error = %e, "releasing an original's lock failed; the connection drops it");
        }
    }
}

#[async_trait::async_trait]
impl OriginalLocks for DbOriginalLocks {
    async fn lock(&self, original: &OriginalKey) -> Result<Box<dyn HeldLock>, StorageError> {
        let tx = self.acquire(original).await.map_err(|e| lock_error(original, e))?;
        Ok(Box::new(HeldTx(tx)))
    }
}

/// Takes the lock of `original` in `tx` (a write transaction, which holds
/// it until it ends) and says whether no image uses the original: the
/// caller may then remove it before `tx` ends.
///
/// # Errors
/// The database failed.
pub async fn unused_in(tx: &mut Tx<'_>, backend: Backend, original: &OriginalKey) -> DbResult<bool> {
    db::images::lock_original(&mut **tx, backend, original.checksum()).await?;
    Ok(db::images::count_with_checksum(&mut **tx, original.checksum()).await? == 0)
}

fn lock_error(original: &OriginalKey, e: db::DbError) -> StorageError {
    StorageError::Lock { key: original.to_string(), source: Box::new(e) }
}
