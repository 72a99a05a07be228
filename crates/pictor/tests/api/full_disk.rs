//! A full disk, for real: the storage folder is a 4 MiB tmpfs that the test
//! mounts (root only) and fills. Uploads are refused with 507 and keep
//! nothing, jobs wait for space without spending their attempts, and once
//! space is freed every acknowledged upload is STORED with no operator's
//! action.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pictor::app::Overrides;
use sha2::Digest as _;
use sqlx::Row;

use crate::helpers::{TestApp, files_under, spawn_app_on, testdata, with_jpeg_comment};

/// Size of the file system under test.
const TMPFS_SIZE: &str = "4m";
/// Room left beside the filler: a few uploads and some of their assets.
const ROOM_BYTES: u64 = 700 * 1024;
/// How long the disk stays full: long enough for today's default retry
/// policy (2, 4, 8 s…) to have spent three or four attempts of each job.
const FULL_FOR: Duration = Duration::from_secs(20);
/// Small photos; each upload gets a comment of its own (new bytes).
const PHOTOS: [&str; 3] = ["mpl-grace-hopper.jpg", "grey-grace-hopper.jpg", "sklearn-china.jpg"];

/// A tmpfs mounted on a temp folder, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount's syntax); why not when this machine
    /// cannot (not root, no mount).
    fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn free_bytes(&self) -> u64 {
        let stat = rustix::fs::statvfs(self.path()).expect("statvfs");
        stat.f_bavail * stat.f_frsize
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a file still open somewhere must not keep the mount.
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Nothing half-written is visible: every original has the bytes its name
/// says, every asset is a whole JPEG, and every upload in the temp area is
/// one an image row needs.
async fn assert_nothing_half_written(app: &TestApp, storage: &Path) {
    for original in files_under(&storage.join("originals")) {
        let bytes = std::fs::read(&original).expect("read original");
        let name = original.file_name().expect("name").to_string_lossy().into_owned();
        assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), name, "original {} is whole", original.display());
    }
    for asset in files_under(&storage.join("assets")) {
        let bytes = std::fs::read(&asset).expect("read asset");
        let whole = bytes.starts_with(&[0xFF, 0xD8]) && bytes.ends_with(&[0xFF, 0xD9]);
        assert!(whole, "asset {} is a whole JPEG ({} bytes)", asset.display(), bytes.len());
    }
    let needed: Vec<String> = sqlx::query("SELECT temp_path FROM image WHERE temp_path IS NOT NULL")
        .fetch_all(&app.app.db.pool)
        .await
        .expect("images")
        .iter()
        .map(|r| r.get("temp_path"))
        .collect();
    for file in files_under(&storage.join("tmp")) {
        let name = file.file_name().expect("name").to_string_lossy().into_owned();
        if name.ends_with(".upload") {
            assert!(needed.iter().any(|k| k.ends_with(&name)), "upload {name} kept though no image needs it");
        }
    }
}

/// Uploads a new photo (bytes of its own); the status and the body.
async fn upload(app: &TestApp, i: usize) -> (u16, serde_json::Value) {
    let photo = std::fs::read(testdata(PHOTOS[i % PHOTOS.len()])).expect("photo");
    let bytes = with_jpeg_comment(&photo, &format!("full disk upload {i}"));
    let response = app.upload_bytes("photo.jpg", bytes, None, None).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

/// `(type, status, attempts, last_error)` of every job.
async fn jobs(app: &TestApp) -> Vec<(String, String, i64, Option<String>)> {
    sqlx::query("SELECT type, status, attempts, last_error FROM job ORDER BY id")
        .fetch_all(&app.app.db.pool)
        .await
        .expect("jobs")
        .iter()
        .map(|r| (r.get("type"), r.get("status"), r.get("attempts"), r.get("last_error")))
        .collect()
}

both_backends! {
    async fn a_full_disk_refuses_uploads_with_507_and_its_jobs_wait_for_space_without_spending_attempts(backend) {
        let tmpfs = match Tmpfs::mount(TMPFS_SIZE) {
            Ok(tmpfs) => tmpfs,
            Err(why) => {
                crate::skip::skip("the full-disk test (a tmpfs mounted as root)", &why);
                return;
            }
        };
        let storage = tmpfs.path().to_owned();
        let folder = storage.clone();
        // Default settings: 5 attempts, the default retry policy.
        let Some(app) = spawn_app_on(backend, |c| c.storage_dir = folder, Overrides::default(), true).await else {
            return;
        };
        let filler = storage.join("filler");
        let room = tmpfs.free_bytes().saturating_sub(ROOM_BYTES);
        std::fs::write(&filler, vec![0_u8; usize::try_from(room).expect("size")]).expect("filler");

        // Upload until the disk refuses three in a row; uploads and their
        // jobs race for the last bytes.
        let mut acknowledged = Vec::new();
        let mut refused = 0;
        let mut i = 0;
        while refused < 3 {
            let (status, body) = upload(&app, i).await;
            i += 1;
            match status {
                201 => {
                    refused = 0;
                    acknowledged.push(body["imageId"].as_str().expect("imageId").to_owned());
                }
                507 => {
                    assert_eq!(body["error"]["code"], "insufficient_storage", "{body}");
                    refused += 1;
                }
                other => panic!("an upload to a full disk answered {other}: {body}"),
            }
            assert!(i < 200, "the disk never filled up");
        }
        let full_since = Instant::now();
        assert!(!acknowledged.is_empty(), "some uploads fit before the disk was full");
        assert_nothing_half_written(&app, &storage).await;

        // The disk stays full: jobs fail for want of space, say so, and do
        // not spend their attempts.
        tokio::time::sleep(FULL_FOR.saturating_sub(full_since.elapsed())).await;
        let jobs_while_full = jobs(&app).await;
        let waiting: Vec<_> =
            jobs_while_full.iter().filter(|(_, s, _, e)| s != "COMPLETED" && e.is_some()).collect();
        assert!(!waiting.is_empty(), "no job failed for want of space: nothing was tested: {jobs_while_full:?}");
        for (kind, status, attempts, error) in &jobs_while_full {
            assert_ne!(status, "FAILED", "{kind} FAILED while the disk was full: {error:?}");
            assert!(*attempts <= 1, "{kind} spent {attempts} attempts on a full disk: {error:?}");
            if let Some(error) = error {
                assert!(error.contains("storage is full"), "{kind}: last_error {error:?} says why");
            }
        }
        let failed_images: i64 = sqlx::query("SELECT COUNT(*) AS n FROM image WHERE status = 'FAILED'")
            .fetch_one(&app.app.db.pool)
            .await
            .expect("count")
            .get("n");
        assert_eq!(failed_images, 0, "no image FAILED while the disk was full");
        let (status, body) = upload(&app, i).await;
        assert_eq!((status, &body["error"]["code"]), (507, &serde_json::json!("insufficient_storage")), "{body}");
        assert_nothing_half_written(&app, &storage).await;

        // Space returns: every acknowledged upload is STORED on its own, and
        // new uploads succeed.
        std::fs::remove_file(&filler).expect("free the space");
        let freed = Instant::now();
        for id in &acknowledged {
            let image = app.wait_terminal(id, Duration::from_secs(120)).await;
            assert_eq!(image.status, pictor_client::models::ImageStatus::Stored, "{id}: {:?}", image.error);
        }
        let stored_after = freed.elapsed();
        let (status, body) = upload(&app, i + 1).await;
        assert_eq!(status, 201, "{body}");
        let id = body["imageId"].as_str().expect("imageId");
        let image = app.wait_terminal(id, Duration::from_secs(60)).await;
        assert_eq!(image.status, pictor_client::models::ImageStatus::Stored, "{:?}", image.error);
        eprintln!(
            "full disk on {backend:?}: {} uploads answered 201, then 507 insufficient_storage; {} jobs waited \
             for space {FULL_FOR:?} with no attempt spent (e.g. {:?}); all STORED {stored_after:.1?} after \
             space was freed; the next upload 201",
            acknowledged.len(),
            waiting.len(),
            waiting[0].3,
        );
        app.stop().await;
        drop(tmpfs);
    }
}
