//! Storage in a local folder (`STORAGE_DIR`): write to a temporary name,
//! fsync, rename, fsync the folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Storage, StorageError, validate_key};

/// A [`Storage`] rooted at a folder.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// Storage under `root`, creating it and its `tmp/` folder.
    ///
    /// # Errors
    /// The folders cannot be created.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        std::fs::create_dir_all(root.join("tmp")).map_err(|source| StorageError::Io { key: "tmp".into(), source })?;
        Ok(Self { root })
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The local folder where uploads stream to.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The file behind a key.
    ///
    /// # Errors
    /// The key is invalid.
    pub fn path_of(&self, key: &str) -> Result<PathBuf, StorageError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }
}

fn io(key: &str, source: std::io::Error) -> StorageError {
    StorageError::Io { key: key.to_owned(), source }
}

/// Runs blocking file work on tokio's blocking pool: one trip for a whole
/// operation, where each `tokio::fs` call would be a trip of its own.
async fn blocking<T: Send + 'static>(
    key: &str,
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| io(key, std::io::Error::other(e)))?
}

/// Syncs a folder, making the names created or renamed in it durable.
fn sync_folder(folder: &Path) -> std::io::Result<()> {
    std::fs::File::open(folder)?.sync_all()
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

/// Moves `src` (synced by ingest) to `dest` on the same file system and
/// syncs the folder; if `dest` exists already (same content, by its
/// content-addressed key), drops `src` instead.
fn move_synced(key: &str, src: &Path, dest: &Path) -> Result<(), StorageError> {
    if dest.try_exists().map_err(|e| io(key, e))? {
        return std::fs::remove_file(src).map_err(|e| io(key, e));
    }
    let folder = dest.parent();
    if let Some(folder) = folder {
        std::fs::create_dir_all(folder).map_err(|e| io(key, e))?;
    }
    // Same file system: rename is atomic.
    std::fs::rename(src, dest).map_err(|e| io(key, e))?;
    folder.map_or(Ok(()), |folder| sync_folder(folder).map_err(|e| io(key, e)))
}

/// Writes each `(path, key, bytes)` to a part file, syncs them all (their
/// writeback started together, see [`start_writeback`]), renames them into
/// place, then syncs each folder once. On an error no part file is left
/// behind (a renamed object may stay: a retry overwrites it).
fn write_synced(targets: Vec<(PathBuf, String, Vec<u8>)>) -> Result<(), StorageError> {
    let mut written: Vec<(&str, PathBuf, &Path)> = Vec::with_capacity(targets.len());
    let mut files: Vec<(&str, std::fs::File)> = Vec::with_capacity(targets.len());
    let result = (|| {
        let mut made: Option<&Path> = None;
        for (dest, key, bytes) in &targets {
            let folder = dest.parent();
            // A job's objects share a folder: create it once.
            if let Some(folder) = folder
                && made != Some(folder)
            {
                std::fs::create_dir_all(folder).map_err(|e| io(key, e))?;
                made = Some(folder);
            }
            let part = dest.with_extension(format!("{}.part", uuid::Uuid::now_v7().simple()));
            written.push((key, part.clone(), dest));
            let write = || -> std::io::Result<std::fs::File> {
                let mut file = std::fs::File::create(&part)?;
                std::io::Write::write_all(&mut file, bytes)?;
                start_writeback(&file);
                Ok(file)
            };
            files.push((key, write().map_err(|e| io(key, e))?));
        }
        for (key, file) in files.drain(..) {
            file.sync_all().map_err(|e| io(key, e))?;
        }
        let mut folders: BTreeMap<&Path, &str> = BTreeMap::new();
        for (key, part, dest) in &written {
            std::fs::rename(part, dest).map_err(|e| io(key, e))?;
            if let Some(folder) = dest.parent() {
                folders.entry(folder).or_insert(key);
            }
        }
        for (folder, key) in folders {
            sync_folder(folder).map_err(|e| io(key, e))?;
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

#[async_trait::async_trait]
impl Storage for LocalStorage {
    async fn put_file(&self, key: &str, src: &Path) -> Result<(), StorageError> {
        let dest = self.path_of(key)?;
        let (owned_key, src) = (key.to_owned(), src.to_owned());
        blocking(key, move || move_synced(&owned_key, &src, &dest)).await
    }

    /// Writes every object to a temporary name and syncs it, then renames
    /// them all and syncs each folder once: an image's four thumbnails cost
    /// one folder sync instead of four.
    async fn put_many(&self, objects: Vec<(String, Vec<u8>)>) -> Result<(), StorageError> {
        // One trip to the blocking pool for the whole set (each tokio::fs
        // call would be one: ~18 for a job's four thumbnails).
        let targets = objects
            .into_iter()
            .map(|(key, bytes)| Ok((self.path_of(&key)?, key, bytes)))
            .collect::<Result<Vec<_>, StorageError>>()?;
        blocking("assets", move || write_synced(targets)).await
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, StorageError> {
        let path = self.path_of(key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StorageError::NotFound(key.to_owned())),
            Err(e) => Err(io(key, e)),
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        let path = self.path_of(key)?;
        tokio::fs::try_exists(&path).await.map_err(|e| io(key, e))
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(key, e)),
            _ => Ok(()),
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<(), StorageError> {
        let path = self.path_of(prefix)?;
        match tokio::fs::remove_dir_all(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(prefix, e)),
            _ => Ok(()),
        }
    }

    async fn check_writable(&self) -> Result<(), StorageError> {
        let key = "tmp/.healthz";
        self.put_bytes(key, b"ok".to_vec()).await?;
        self.delete(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_bytes_then_get_returns_the_bytes_and_leaves_no_part_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = LocalStorage::open(dir.path()).expect("open");
        storage.put_bytes("assets/x/thumb-64.jpg", b"abc".to_vec()).await.expect("put");
        assert_eq!(storage.get("assets/x/thumb-64.jpg").await.expect("get"), b"abc");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("assets/x"))
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("thumb-64.jpg")]);
        assert!(matches!(storage.get("assets/x/none.jpg").await, Err(StorageError::NotFound(_))));
    }

    #[tokio::test]
    async fn put_many_stores_every_object_and_leaves_no_part_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = LocalStorage::open(dir.path()).expect("open");
        let objects = vec![
            ("assets/y/thumb-64.jpg".to_owned(), b"small".to_vec()),
            ("assets/y/thumb-128.jpg".to_owned(), b"bigger".to_vec()),
            ("assets/z/preview.jpg".to_owned(), b"preview".to_vec()),
        ];
        storage.put_many(objects.clone()).await.expect("put");
        for (key, bytes) in objects {
            assert_eq!(storage.get(&key).await.expect("get"), bytes, "{key}");
        }
        let mut names: Vec<_> = std::fs::read_dir(dir.path().join("assets/y"))
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        assert_eq!(names, vec![std::ffi::OsString::from("thumb-128.jpg"), std::ffi::OsString::from("thumb-64.jpg")]);
    }

    #[tokio::test]
    async fn put_many_with_an_invalid_key_stores_nothing_and_cleans_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = LocalStorage::open(dir.path()).expect("open");
        let objects =
            vec![("assets/w/thumb-64.jpg".to_owned(), b"ok".to_vec()), ("../escape".to_owned(), b"no".to_vec())];
        assert!(storage.put_many(objects).await.is_err());
        assert!(!storage.exists("assets/w/thumb-64.jpg").await.expect("exists"));
        // Every key is checked before anything is written, so the folder
        // may not even exist.
        let left = std::fs::read_dir(dir.path().join("assets/w")).map_or(0, Iterator::count);
        assert_eq!(left, 0, "part files left behind");
    }

    #[tokio::test]
    async fn put_file_onto_an_existing_key_keeps_the_first_and_drops_the_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = LocalStorage::open(dir.path()).expect("open");
        let (a, b) = (dir.path().join("tmp/a"), dir.path().join("tmp/b"));
        std::fs::write(&a, b"same").expect("write");
        std::fs::write(&b, b"same").expect("write");
        storage.put_file("originals/ab/abc", &a).await.expect("first");
        storage.put_file("originals/ab/abc", &b).await.expect("second");
        assert!(!a.exists() && !b.exists());
        assert_eq!(storage.get("originals/ab/abc").await.expect("get"), b"same");
    }
}
