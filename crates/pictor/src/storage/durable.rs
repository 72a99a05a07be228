//! The file-system calls that a local folder's durability rests on, in one
//! place: syncing a file, syncing a folder (which makes the names created,
//! renamed or removed in it durable: POSIX does not promise that a synced
//! file's name survives a crash otherwise), creating folders with their
//! parents synced, renaming. Tests record the order in which they happen.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Durable steps under a root, optionally recorded.
#[derive(Debug, Clone)]
pub(super) struct DurableFs {
    root: PathBuf,
    /// Every step as it happened (`"sync tmp/x.upload"`, `"sync-dir tmp"`,
    /// `"mkdir assets/1"`, `"rename assets/1/preview.jpg"`), paths relative to
    /// the root; only a test sets it.
    trace: Option<Arc<Mutex<Vec<String>>>>,
}

impl DurableFs {
    /// Steps under `root`, not recorded.
    pub(super) fn new(root: PathBuf) -> Self {
        Self { root, trace: None }
    }

    /// Steps under `root`, recorded in `trace`.
    #[cfg(test)]
    pub(super) fn traced(root: PathBuf, trace: Arc<Mutex<Vec<String>>>) -> Self {
        Self { root, trace: Some(trace) }
    }

    fn note(&self, step: &str, path: &Path) {
        if let Some(trace) = &self.trace {
            let relative = path.strip_prefix(&self.root).unwrap_or(path);
            let shown = if relative.as_os_str().is_empty() { ".".into() } else { relative.display().to_string() };
            if let Ok(mut steps) = trace.lock() {
                steps.push(format!("{step} {shown}"));
            }
        }
    }

    /// Syncs a file's data and metadata.
    pub(super) fn sync_file(&self, file: &File, path: &Path) -> std::io::Result<()> {
        file.sync_all()?;
        self.note("sync", path);
        Ok(())
    }

    /// Syncs a folder, making the names created or renamed in it durable.
    pub(super) fn sync_folder(&self, folder: &Path) -> std::io::Result<()> {
        File::open(folder)?.sync_all()?;
        self.note("sync-dir", folder);
        Ok(())
    }

    /// Renames within the root's file system (atomic).
    pub(super) fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::rename(from, to)?;
        self.note("rename", to);
        Ok(())
    }

    /// Creates `folder` and its missing parents, syncing the parent of each
    /// one created, so that their names are durable before anything is
    /// renamed into them. A folder another writer created at the same
    /// moment gets its parent synced here too (its creator may not have
    /// synced it yet). A folder found existing is left as it is: whoever
    /// created it synced its parent before writing into it.
    pub(super) fn create_folder(&self, folder: &Path) -> std::io::Result<()> {
        if folder.is_dir() {
            return Ok(());
        }
        let parent = folder.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(parent) = parent {
            self.create_folder(parent)?;
        }
        match std::fs::create_dir(folder) {
            Ok(()) => self.note("mkdir", folder),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        match parent {
            Some(parent) => self.sync_folder(parent),
            None => Ok(()),
        }
    }
}
