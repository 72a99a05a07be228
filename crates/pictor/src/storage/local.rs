//! Storage in a local folder (`STORAGE_DIR`): write to a temporary name in
//! `tmp/`, fsync, rename into place, fsync the folder. An upload is a file
//! in `tmp/`; its promotion to an original is a rename on the same file
//! system. Every temporary file (uploads in flight, asset parts) lives in
//! `tmp/`, where the temp sweeper looks.
//!
//! The order of the syncs (DESIGN invariants 1 and 3), each step done
//! before the next starts (`DurableFs`; the tests below record it):
//!
//! - **Upload** (before the 201): the file in `tmp/` written and fsynced,
//!   then `tmp/` fsynced, so that its name survives a crash too.
//! - **Promotion**: a missing `originals/<xx>/` created, and each folder
//!   created has its parent fsynced; the upload renamed into it; the
//!   folder fsynced. Only then does the offload's completion commit.
//! - **Asset set**: each asset written to a part file in `tmp/` and
//!   fsynced (writeback started for all first); a missing `assets/<id>/`
//!   created with `assets/` (and any new parent) fsynced; the parts
//!   renamed into it; the folder fsynced once. Only then does the job's
//!   completion commit.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::durable::DurableFs;
use super::{
    AssetKey, ByteStream, Key, Listed, LocalCopy, ObjectInfo, ObjectRead, OriginalKey, OriginalLocks, Promoted,
    Storage, StorageError, TempKey, UploadWriter,
};

/// Bytes read at a time when streaming an object.
const STREAM_CHUNK_BYTES: usize = 64 * 1024;

/// Tries at removing an image's asset folder while a job writes into it.
const DELETE_FOLDER_TRIES: usize = 3;

/// Bytes read at a time when hashing an upload.
const HASH_BUFFER_BYTES: usize = 256 * 1024;

/// A [`Storage`] rooted at a folder.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
    fs: DurableFs,
}

impl LocalStorage {
    /// Storage under `root`, creating it and its `tmp/` folder.
    ///
    /// # Errors
    /// The folders cannot be created.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        Self::with_fs(root.clone(), DurableFs::new(root))
    }

    /// Storage under `root` recording its durable steps in `trace`.
    #[cfg(test)]
    fn open_traced(root: &Path, trace: std::sync::Arc<std::sync::Mutex<Vec<String>>>) -> Result<Self, StorageError> {
        Self::with_fs(root.to_owned(), DurableFs::traced(root.to_owned(), trace))
    }

    fn with_fs(root: PathBuf, fs: DurableFs) -> Result<Self, StorageError> {
        fs.create_folder(&root.join("tmp")).map_err(|e| io("tmp", e))?;
        Ok(Self { root, fs })
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file behind a key.
    pub fn path_of(&self, key: &Key) -> PathBuf {
        self.root.join(key.as_str())
    }
}

/// A file-system error on `key`; a full disk (or quota) is
/// [`StorageError::Full`], the one place it is recognised.
fn io(key: &str, source: std::io::Error) -> StorageError {
    let full = source.kind() == std::io::ErrorKind::StorageFull
        || source.kind() == std::io::ErrorKind::QuotaExceeded
        || matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT));
    if full {
        StorageError::Full { key: key.to_owned(), source }
    } else {
        StorageError::Io { key: key.to_owned(), source }
    }
}

/// Runs blocking file work on tokio's blocking pool: one trip for a whole
/// operation, where each `tokio::fs` call would be a trip of its own.
async fn blocking<T: Send + 'static>(
    key: &str,
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| io(key, std::io::Error::other(e)))?
}

/// Starts writing `file`'s dirty pages to disk without waiting. Done for
/// every file of a set before the first fsync, their blocks are allocated
/// in one journal transaction, which that fsync commits: the others then
/// find their data written and committed (ext4: one journal commit for an
/// image's four thumbnails instead of four). A failure here is harmless:
/// the fsync that follows reports any real one.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn start_writeback(file: &std::fs::File) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: the descriptor is borrowed from `file`, so it stays open for
    // the call, which only reads its integer arguments.
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn start_writeback(_file: &std::fs::File) {}

/// SHA-256 (lowercase hex) of a file, or `None` if it does not exist.
fn sha256_of(key: &str, path: &Path) -> Result<Option<String>, StorageError> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(key, e)),
    };
    let mut hasher = Sha256::new();
    let mut buf = vec![0_u8; HASH_BUFFER_BYTES];
    loop {
        let n = file.read(&mut buf).map_err(|e| io(key, e))?;
        if n == 0 {
            return Ok(Some(hex::encode(hasher.finalize())));
        }
        hasher.update(&buf[..n]);
    }
}

/// Checks that the upload at `src` still has the acknowledged checksum.
fn verify_upload(key: &str, src: &Path, expected: &str) -> Result<(), StorageError> {
    let Some(actual) = sha256_of(key, src)? else {
        return Err(StorageError::NotFound(key.to_owned()));
    };
    if actual != expected {
        return Err(StorageError::ChecksumMismatch { key: key.to_owned(), actual, expected: expected.to_owned() });
    }
    Ok(())
}

/// Moves the upload at `src` (synced by its writer) to `dest` on the same
/// file system, creating its folder, or drops it if `dest` exists already
/// (same content, by its content-addressed key). Run under the original's
/// lock; `dest`'s folder is synced by the caller.
fn place(fs: &DurableFs, key: &str, src: &Path, dest: &Path) -> Result<Promoted, StorageError> {
    if dest.try_exists().map_err(|e| io(key, e))? {
        match std::fs::remove_file(src) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StorageError::NotFound(key.to_owned())),
            other => other.map_err(|e| io(key, e))?,
        }
        return Ok(Promoted::AlreadyStored);
    }
    if let Some(folder) = dest.parent() {
        fs.create_folder(folder).map_err(|e| io(key, e))?;
    }
    // Same file system: rename is atomic.
    match fs.rename(src, dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StorageError::NotFound(key.to_owned())),
        other => other.map(|()| Promoted::Moved).map_err(|e| io(key, e)),
    }
}

/// Writes each `(path, key, bytes)` to a part file in `tmp`, syncs them
/// all (their writeback started together, see [`start_writeback`]),
/// creates their folders (synced, see [`DurableFs::create_folder`]),
/// renames them into place, then syncs each folder once. On an error no
/// part file is left behind (a renamed object may stay: a retry overwrites
/// it).
fn write_synced(fs: &DurableFs, tmp: &Path, targets: Vec<(PathBuf, String, Vec<u8>)>) -> Result<(), StorageError> {
    let mut written: Vec<(&str, PathBuf, &Path)> = Vec::with_capacity(targets.len());
    let mut files: Vec<(&str, PathBuf, std::fs::File)> = Vec::with_capacity(targets.len());
    let result = (|| {
        for (dest, key, bytes) in &targets {
            let part = tmp.join(format!("{}.part", uuid::Uuid::now_v7().simple()));
            written.push((key, part.clone(), dest));
            let write = || -> std::io::Result<std::fs::File> {
                let mut file = std::fs::File::create(&part)?;
                std::io::Write::write_all(&mut file, bytes)?;
                start_writeback(&file);
                Ok(file)
            };
            files.push((key, part.clone(), write().map_err(|e| io(key, e))?));
        }
        for (key, part, file) in files.drain(..) {
            fs.sync_file(&file, &part).map_err(|e| io(key, e))?;
        }
        // A job's objects share a folder: created (and synced) once, just
        // before the renames into it.
        let mut folders: BTreeMap<&Path, &str> = BTreeMap::new();
        for (key, _, dest) in &written {
            if let Some(folder) = dest.parent() {
                folders.entry(folder).or_insert(key);
            }
        }
        for (folder, key) in &folders {
            fs.create_folder(folder).map_err(|e| io(key, e))?;
        }
        for (key, part, dest) in &written {
            fs.rename(part, dest).map_err(|e| io(key, e))?;
        }
        for (folder, key) in folders {
            fs.sync_folder(folder).map_err(|e| io(key, e))?;
        }
        Ok(())
    })();
    if result.is_err() {
        drop(files);
        for (_, part, _) in &written {
            let _ = std::fs::remove_file(part);
        }
    }
    result
}

/// Files under `folder` last modified before `before`, as keys under
/// `prefix`, those whose name ends with `suffix` only (when given).
fn files_before(folder: &Path, prefix: &str, suffix: Option<&str>, before: SystemTime) -> std::io::Result<Vec<Key>> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut keys = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Ok(meta) = entry.metadata() else { continue };
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !meta.is_file() || suffix.is_some_and(|s| !name.ends_with(s)) {
            continue;
        }
        if meta.modified().is_ok_and(|modified| modified < before)
            && let Ok(key) = Key::parse(format!("{prefix}/{name}"))
        {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// Every file under `folder` (recursively), as keys under `prefix`, with
/// their modification times; none when it does not exist.
fn walk(folder: &Path, prefix: &str, out: &mut Vec<Listed>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(meta) = entry.metadata() else { continue };
        let Some(name) = entry.file_name().to_str().map(|name| format!("{prefix}/{name}")) else { continue };
        if meta.is_dir() {
            walk(&entry.path(), &name, out)?;
        } else if let (true, Ok(key), Ok(modified)) = (meta.is_file(), Key::parse(name), meta.modified()) {
            out.push(Listed { key, modified });
        }
    }
    Ok(())
}

/// Folders directly under `folder` (none when it does not exist).
fn subfolders(folder: &Path) -> std::io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && let Some(name) = entry.file_name().to_str()
        {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// An upload being written to a file in `tmp/`, created at its first block.
#[derive(Debug)]
struct LocalUpload {
    key: TempKey,
    path: PathBuf,
    file: Option<std::fs::File>,
    fs: DurableFs,
}

impl LocalUpload {
    /// Runs `work` on the open (or newly created) file on the blocking pool.
    async fn with_file<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut std::fs::File) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, StorageError> {
        let (path, open) = (self.path.clone(), self.file.take());
        let (file, result) = blocking(self.key.as_str(), move || {
            let mut file = match open {
                Some(file) => file,
                None => match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                    Ok(file) => file,
                    Err(e) => return Ok((None, Err(e))),
                },
            };
            let result = work(&mut file);
            Ok((Some(file), result))
        })
        .await?;
        self.file = file;
        result.map_err(|e| io(self.key.as_str(), e))
    }
}

#[async_trait::async_trait]
impl UploadWriter for LocalUpload {
    fn key(&self) -> &TempKey {
        &self.key
    }

    async fn write(&mut self, mut block: Vec<u8>) -> Result<Vec<u8>, StorageError> {
        self.with_file(move |file| {
            file.write_all(&block)?;
            block.clear();
            Ok(block)
        })
        .await
    }

    async fn finish(mut self: Box<Self>, last: Vec<u8>) -> Result<TempKey, StorageError> {
        let (fs, path) = (self.fs.clone(), self.path.clone());
        let finished = self
            .with_file(move |file| {
                file.write_all(&last)?;
                // DESIGN invariant 1: durable, name included, before it is acknowledged.
                fs.sync_file(file, &path)?;
                if let Some(folder) = path.parent() {
                    fs.sync_folder(folder)?;
                }
                // An upload that stalled longer than the temp sweeper's grace
                // may have been swept meanwhile: refuse it rather than
                // acknowledge bytes that are gone.
                if path.try_exists()? {
                    Ok(())
                } else {
                    Err(std::io::Error::new(std::io::ErrorKind::NotFound, "the upload was swept while it was written"))
                }
            })
            .await;
        match finished {
            Ok(()) => Ok(self.key.clone()),
            Err(e) => {
                // A refused upload keeps nothing (a full disk's 507 included):
                // the file is gone before the refusal is answered.
                self.abort().await;
                Err(e)
            }
        }
    }

    async fn abort(mut self: Box<Self>) {
        let (path, file) = (self.path.clone(), self.file.take());
        drop(file);
        let _ = tokio::fs::remove_file(path).await;
    }
}

#[async_trait::async_trait]
impl Storage for LocalStorage {
    async fn begin_upload(&self) -> Result<Box<dyn UploadWriter>, StorageError> {
        let key = TempKey::new_upload();
        let path = self.path_of(&key);
        Ok(Box::new(LocalUpload { key, path, file: None, fs: self.fs.clone() }))
    }

    /// Hashes the upload outside the original's lock (the slow part, and
    /// the upload is this job's alone), then checks for the original and
    /// moves or drops the upload under it, and syncs the folder after it:
    /// what a delete decides needs the names, not their durability.
    async fn promote(
        &self,
        upload: &TempKey,
        original: &OriginalKey,
        sha256: &str,
        locks: &dyn OriginalLocks,
    ) -> Result<Promoted, StorageError> {
        let (src, dest) = (self.path_of(upload), self.path_of(original));
        let (key, expected) = (upload.as_str().to_owned(), sha256.to_owned());
        let (hashed, k) = (src.clone(), key.clone());
        blocking(upload.as_str(), move || verify_upload(&k, &hashed, &expected)).await?;
        let lock = locks.lock(original).await?;
        let folder = dest.parent().map(Path::to_owned);
        let fs = self.fs.clone();
        let placed = blocking(upload.as_str(), move || place(&fs, &key, &src, &dest)).await;
        lock.release().await;
        if placed? == Promoted::AlreadyStored {
            return Ok(Promoted::AlreadyStored);
        }
        if let Some(folder) = folder {
            let (fs, key) = (self.fs.clone(), original.as_str().to_owned());
            blocking(original.as_str(), move || fs.sync_folder(&folder).map_err(|e| io(&key, e))).await?;
        }
        Ok(Promoted::Moved)
    }

    async fn abort(&self, upload: &TempKey) -> Result<(), StorageError> {
        self.delete(upload).await
    }

    fn open_blocking(&self, key: &Key) -> Result<Box<dyn ObjectRead>, StorageError> {
        match std::fs::File::open(self.path_of(key)) {
            Ok(file) => Ok(Box::new(file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StorageError::NotFound(key.to_string())),
            Err(e) => Err(io(key.as_str(), e)),
        }
    }

    /// Writes every asset to a part file in `tmp/` and syncs it, then
    /// renames them all into place and syncs each folder once: an image's
    /// four thumbnails cost one folder sync instead of four.
    async fn put_assets(&self, assets: Vec<(AssetKey, Vec<u8>)>) -> Result<(), StorageError> {
        // One trip to the blocking pool for the whole set (each tokio::fs
        // call would be one: ~18 for a job's four thumbnails).
        let targets = assets.into_iter().map(|(key, bytes)| (self.path_of(&key), key.to_string(), bytes)).collect();
        let (fs, tmp) = (self.fs.clone(), self.root.join("tmp"));
        blocking("assets", move || write_synced(&fs, &tmp, targets)).await
    }

    async fn put(&self, key: &Key, bytes: Vec<u8>) -> Result<(), StorageError> {
        let targets = vec![(self.path_of(key), key.to_string(), bytes)];
        let (fs, tmp) = (self.fs.clone(), self.root.join("tmp"));
        blocking(key.as_str(), move || write_synced(&fs, &tmp, targets)).await
    }

    async fn get(&self, key: &Key) -> Result<Vec<u8>, StorageError> {
        match tokio::fs::read(self.path_of(key)).await {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StorageError::NotFound(key.to_string())),
            Err(e) => Err(io(key.as_str(), e)),
        }
    }

    /// The entity tag is the file's size and modification time (an asset
    /// is rewritten whole, under a new name then renamed, so either changes
    /// with its content).
    async fn stat(&self, key: &Key) -> Result<ObjectInfo, StorageError> {
        let meta = match tokio::fs::metadata(self.path_of(key)).await {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StorageError::NotFound(key.to_string())),
            Err(e) => return Err(io(key.as_str(), e)),
        };
        let modified = meta.modified().map_err(|e| io(key.as_str(), e))?;
        let nanos = modified.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Ok(ObjectInfo { size: meta.len(), etag: format!("\"{:x}-{nanos:x}\"", meta.len()) })
    }

    async fn read_range(&self, key: &Key, range: std::ops::Range<u64>) -> Result<ByteStream, StorageError> {
        use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
        let name = key.to_string();
        let mut file = match tokio::fs::File::open(self.path_of(key)).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StorageError::NotFound(name)),
            Err(e) => return Err(io(&name, e)),
        };
        file.seek(std::io::SeekFrom::Start(range.start)).await.map_err(|e| io(&name, e))?;
        let left = range.end.saturating_sub(range.start);
        let stream = futures_util::stream::try_unfold((file.take(left), name), |(mut file, name)| async move {
            let mut chunk = bytes::BytesMut::with_capacity(STREAM_CHUNK_BYTES);
            let n = file.read_buf(&mut chunk).await.map_err(|e| io(&name, e))?;
            Ok((n > 0).then(|| (chunk.freeze(), (file, name))))
        });
        Ok(Box::pin(stream))
    }

    async fn local_copy(&self, key: &Key) -> Result<LocalCopy, StorageError> {
        let path = self.path_of(key);
        match tokio::fs::try_exists(&path).await {
            Ok(true) => Ok(LocalCopy { path, scratch: false }),
            Ok(false) => Err(StorageError::NotFound(key.to_string())),
            Err(e) => Err(io(key.as_str(), e)),
        }
    }

    async fn list(&self, area: &str) -> Result<Vec<Listed>, StorageError> {
        let (folder, area) = (self.root.join(area), area.to_owned());
        blocking("list", move || {
            let mut out = Vec::new();
            walk(&folder, &area, &mut out).map_err(|e| io(&area, e))?;
            Ok(out)
        })
        .await
    }

    async fn direct_url(&self, _key: &Key, _how: super::AssetRedirect) -> Result<Option<String>, StorageError> {
        Ok(None)
    }

    async fn exists(&self, key: &Key) -> Result<bool, StorageError> {
        tokio::fs::try_exists(self.path_of(key)).await.map_err(|e| io(key.as_str(), e))
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        match tokio::fs::remove_file(self.path_of(key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(key.as_str(), e)),
            _ => Ok(()),
        }
    }

    async fn delete_assets(&self, image_id: &str) -> Result<(), StorageError> {
        let prefix = super::assets_prefix(image_id)?;
        let mut tries = 0;
        loop {
            tries += 1;
            match tokio::fs::remove_dir_all(self.path_of(&prefix)).await {
                // A job of the image renamed a file in while the folder was
                // emptied: empty it again (that job, finding the image gone,
                // removes its files as well).
                Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty && tries < DELETE_FOLDER_TRIES => {}
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(prefix.as_str(), e)),
                _ => return Ok(()),
            }
        }
    }

    async fn temp_files_before(&self, before: SystemTime, beside_objects: bool) -> Result<Vec<Key>, StorageError> {
        let root = self.root.clone();
        blocking("tmp", move || {
            let mut keys = files_before(&root.join("tmp"), "tmp", None, before).map_err(|e| io("tmp", e))?;
            if beside_objects {
                for area in ["assets", "originals"] {
                    for folder in subfolders(&root.join(area)).map_err(|e| io(area, e))? {
                        let prefix = format!("{area}/{folder}");
                        let found = files_before(&root.join(&prefix), &prefix, Some(".part"), before)
                            .map_err(|e| io(&prefix, e))?;
                        keys.extend(found);
                    }
                }
            }
            Ok(keys)
        })
        .await
    }

    async fn check_writable(&self) -> Result<(), StorageError> {
        let mut upload = self.begin_upload().await?;
        let emptied = upload.write(b"ok".to_vec()).await;
        upload.abort().await;
        emptied.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Locks that lock nothing: one test, one task.
    #[derive(Debug)]
    struct NoLocks;

    struct NoLock;

    #[async_trait::async_trait]
    impl OriginalLocks for NoLocks {
        async fn lock(&self, _original: &OriginalKey) -> Result<Box<dyn super::super::HeldLock>, StorageError> {
            Ok(Box::new(NoLock))
        }
    }

    #[async_trait::async_trait]
    impl super::super::HeldLock for NoLock {
        async fn release(self: Box<Self>) {}
    }

    fn asset(key: &str) -> AssetKey {
        AssetKey::parse(key).expect("an asset key")
    }

    fn sha256(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    async fn upload(storage: &LocalStorage, bytes: &[u8]) -> TempKey {
        let mut writer = storage.begin_upload().await.expect("begin");
        let half = bytes.len() / 2;
        writer.write(bytes[..half].to_vec()).await.expect("write");
        writer.finish(bytes[half..].to_vec()).await.expect("finish")
    }

    #[tokio::test]
    async fn put_assets_stores_every_object_and_leaves_no_part_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = LocalStorage::open(dir.path()).expect("open");
        let objects = vec![
            (asset("assets/y/thumb-64.jpg"), b"small".to_vec()),
            (asset("assets/y/thumb-128.jpg"), b"bigger".to_vec()),
            (asset("assets/z/preview.jpg"), b"preview".to_vec()),
        ];
        storage.put_assets(objects.clone()).await.expect("put");
        for (key, bytes) in objects {
            assert_eq!(storage.get(&key).await.expect("get"), bytes, "{key}");
        }
        let mut names: Vec<_> = std::fs::read_dir(dir.path().join("assets/y"))
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        assert_eq!(names, vec![std::ffi::OsString::from("thumb-128.jpg"), std::ffi::OsString::from("thumb-64.jpg")]);
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).expect("tmp").count(), 0, "no part file left");
        assert!(matches!(storage.get(&asset("assets/y/none.jpg")).await, Err(StorageError::NotFound(_))));
    }

    fn traced() -> (tempfile::TempDir, LocalStorage, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let trace = std::sync::Arc::default();
        let storage = LocalStorage::open_traced(&dir.path().join("root"), std::sync::Arc::clone(&trace)).expect("open");
        (dir, storage, trace)
    }

    /// The steps recorded since the last call, with the varying part of
    /// temp names replaced by `*`.
    fn steps(trace: &std::sync::Mutex<Vec<String>>) -> Vec<String> {
        let steps = std::mem::take(&mut *trace.lock().expect("trace"));
        steps
            .into_iter()
            .map(|step| match step.split_once("tmp/") {
                Some((head, name)) => format!("{head}tmp/*{}", &name[name.find('.').unwrap_or(name.len())..]),
                None => step,
            })
            .collect()
    }

    #[tokio::test]
    async fn an_upload_is_synced_then_its_folder_before_it_is_acknowledged() {
        let (_dir, storage, trace) = traced();
        let opened = steps(&trace);
        assert_eq!(opened[opened.len() - 2..], ["mkdir tmp", "sync-dir ."], "the storage's folders are synced");

        upload(&storage, b"bytes").await;

        assert_eq!(steps(&trace), ["sync tmp/*.upload", "sync-dir tmp"]);
    }

    #[tokio::test]
    async fn a_promotion_syncs_each_new_folders_parent_before_the_rename_and_the_folder_after() {
        let (_dir, storage, trace) = traced();
        let key = upload(&storage, b"original").await;
        let original = OriginalKey::for_checksum(&sha256(b"original")).expect("key");
        steps(&trace);

        storage.promote(&key, &original, &sha256(b"original"), &NoLocks).await.expect("promote");

        let folder = original.as_str().rsplit_once('/').expect("folder").0.to_owned();
        assert_eq!(
            steps(&trace),
            [
                "mkdir originals".to_owned(),
                "sync-dir .".to_owned(),
                format!("mkdir {folder}"),
                "sync-dir originals".to_owned(),
                format!("rename {original}"),
                format!("sync-dir {folder}"),
            ]
        );
    }

    #[tokio::test]
    async fn an_asset_set_syncs_its_parts_then_its_new_folder_then_renames_then_syncs_the_folder() {
        let (_dir, storage, trace) = traced();
        steps(&trace);
        let objects =
            vec![(asset("assets/i/thumb-64.jpg"), b"a".to_vec()), (asset("assets/i/preview.jpg"), b"b".to_vec())];

        storage.put_assets(objects.clone()).await.expect("put");

        assert_eq!(
            steps(&trace),
            [
                "sync tmp/*.part",
                "sync tmp/*.part",
                "mkdir assets",
                "sync-dir .",
                "mkdir assets/i",
                "sync-dir assets",
                "rename assets/i/thumb-64.jpg",
                "rename assets/i/preview.jpg",
                "sync-dir assets/i",
            ]
        );
        storage.put_assets(objects).await.expect("put again");
        assert_eq!(
            steps(&trace),
            [
                "sync tmp/*.part",
                "sync tmp/*.part",
                "rename assets/i/thumb-64.jpg",
                "rename assets/i/preview.jpg",
                "sync-dir assets/i",
            ],
            "an existing folder is not created again"
        );
    }

    #[test]
    fn a_full_disk_or_quota_is_storage_full_and_other_errors_are_io() {
        for errno in [libc::ENOSPC, libc::EDQUOT] {
            let error = io("tmp/x.upload", std::io::Error::from_raw_os_error(errno));
            assert!(matches!(error, StorageError::Full { .. }), "{errno}: {error:?}");
        }
        let error = io("tmp/x.upload", std::io::Error::from_raw_os_error(libc::EIO));
        assert!(matches!(error, StorageError::Io { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn temp_files_before_lists_old_temp_files_and_old_parts_beside_objects_only_when_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = LocalStorage::open(dir.path()).expect("open");
        let old = SystemTime::now() - std::time::Duration::from_secs(7200);
        let make = |relative: &str, modified: SystemTime| {
            let path = dir.path().join(relative);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::File::create(&path).expect("create").set_modified(modified).expect("mtime");
        };
        make("tmp/old.upload", old);
        make("tmp/old.part", old);
        make("tmp/new.upload", SystemTime::now());
        make("assets/i/preview.0190abcd.part", old);
        make("assets/i/preview.jpg", old);
        make("originals/ab/x.part", old);
        let cutoff = SystemTime::now() - std::time::Duration::from_secs(3600);

        let mut in_tmp: Vec<String> =
            storage.temp_files_before(cutoff, false).await.expect("list").iter().map(ToString::to_string).collect();
        let mut everywhere: Vec<String> =
            storage.temp_files_before(cutoff, true).await.expect("list").iter().map(ToString::to_string).collect();

        in_tmp.sort();
        everywhere.sort();
        assert_eq!(in_tmp, ["tmp/old.part", "tmp/old.upload"]);
        assert_eq!(
            everywhere,
            ["assets/i/preview.0190abcd.part", "originals/ab/x.part", "tmp/old.part", "tmp/old.upload"]
        );
    }

    #[tokio::test]
    async fn an_upload_is_written_promoted_once_and_a_second_copy_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = LocalStorage::open(dir.path()).expect("open");
        let original = OriginalKey::for_checksum(&sha256(b"same")).expect("key");
        let (a, b) = (upload(&storage, b"same").await, upload(&storage, b"same").await);
        assert_eq!(storage.get(&a).await.expect("the upload is readable"), b"same");

        assert_eq!(storage.promote(&a, &original, &sha256(b"same"), &NoLocks).await.expect("first"), Promoted::Moved);
        assert_eq!(
            storage.promote(&b, &original, &sha256(b"same"), &NoLocks).await.expect("second"),
            Promoted::AlreadyStored
        );

        assert!(!storage.exists(&a).await.expect("exists") && !storage.exists(&b).await.expect("exists"));
        assert_eq!(storage.get(&original).await.expect("get"), b"same");
        let again = storage.promote(&a, &original, &sha256(b"same"), &NoLocks).await;
        assert!(matches!(again, Err(StorageError::NotFound(_))), "{again:?}");
    }

    #[tokio::test]
    async fn an_upload_whose_bytes_changed_is_not_promoted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = LocalStorage::open(dir.path()).expect("open");
        let key = upload(&storage, b"changed").await;
        let original = OriginalKey::for_checksum(&sha256(b"acknowledged")).expect("key");
        let promoted = storage.promote(&key, &original, &sha256(b"acknowledged"), &NoLocks).await;
        assert!(matches!(promoted, Err(StorageError::ChecksumMismatch { .. })), "{promoted:?}");
        assert!(!storage.exists(&original).await.expect("exists"));
    }

    #[tokio::test]
    async fn an_aborted_upload_leaves_nothing_in_the_temp_area() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = LocalStorage::open(dir.path()).expect("open");
        let mut writer = storage.begin_upload().await.expect("begin");
        writer.write(b"partial".to_vec()).await.expect("write");
        writer.abort().await;
        let finished = upload(&storage, b"whole").await;
        storage.abort(&finished).await.expect("abort");
        storage.check_writable().await.expect("writable");
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).expect("tmp").count(), 0);
    }
}
