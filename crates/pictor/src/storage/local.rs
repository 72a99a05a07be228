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

    async fn ensure_parent(&self, key: &str, path: &Path) -> Result<(), StorageError> {
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|source| io(key, source))?;
        }
        Ok(())
    }
}

fn io(key: &str, source: std::io::Error) -> StorageError {
    StorageError::Io { key: key.to_owned(), source }
}

/// Makes a rename durable by syncing the folder that holds the new name.
async fn sync_parent(key: &str, path: &Path) -> Result<(), StorageError> {
    match path.parent() {
        Some(folder) => sync_folder(key, folder).await,
        None => Ok(()),
    }
}

async fn sync_folder(key: &str, folder: &Path) -> Result<(), StorageError> {
    let dir = tokio::fs::File::open(folder).await.map_err(|e| io(key, e))?;
    dir.sync_all().await.map_err(|e| io(key, e))
}

/// Writes each `(path, key, bytes)` to a part file and syncs it, renames the
/// part files into place, then syncs each folder once. On an error no part
/// file is left behind (a renamed object may stay: a retry overwrites it).
fn write_synced(targets: Vec<(PathBuf, String, Vec<u8>)>) -> Result<(), StorageError> {
    let mut written: Vec<(&str, PathBuf, &Path)> = Vec::with_capacity(targets.len());
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
            let write = || -> std::io::Result<()> {
                let mut file = std::fs::File::create(&part)?;
                std::io::Write::write_all(&mut file, bytes)?;
                file.sync_all()
            };
            write().map_err(|e| io(key, e))?;
        }
        let mut folders: BTreeMap<&Path, &str> = BTreeMap::new();
        for (key, part, dest) in &written {
            std::fs::rename(part, dest).map_err(|e| io(key, e))?;
            if let Some(folder) = dest.parent() {
                folders.entry(folder).or_insert(key);
            }
        }
        for (folder, key) in folders {
            std::fs::File::open(folder).and_then(|dir| dir.sync_all()).map_err(|e| io(key, e))?;
        }
        Ok(())
    })();
    if result.is_err() {
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
        if tokio::fs::try_exists(&dest).await.map_err(|e| io(key, e))? {
            tokio::fs::remove_file(src).await.map_err(|e| io(key, e))?;
            return Ok(());
        }
        self.ensure_parent(key, &dest).await?;
        // Same file system: rename is atomic; the source was fsynced by ingest.
        tokio::fs::rename(src, &dest).await.map_err(|e| io(key, e))?;
        sync_parent(key, &dest).await
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
        tokio::task::spawn_blocking(move || write_synced(targets))
            .await
            .map_err(|e| StorageError::Io { key: "assets".into(), source: std::io::Error::other(e) })?
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
