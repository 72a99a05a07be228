//! Deletes racing the jobs of the same bytes or of the same image: no
//! acknowledged original is destroyed, and nothing is left in storage once
//! every image is deleted and the queue is idle (DESIGN invariant 9). The
//! races are made deterministic by a storage wrapper that pauses a call on
//! a gate while the test deletes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pictor::app::Overrides;
use pictor::storage::{
    AssetKey, ByteStream, Key, Listed, LocalCopy, ObjectInfo, ObjectRead, OriginalKey, OriginalLocks, Promoted,
    Storage, StorageError, TempKey, UploadWriter,
};
use pictor_client::models::ImageStatus;
use tokio::sync::oneshot;

use crate::helpers::{Backend, TestApp, count_files, spawn_app_on, testdata};

/// An age past the default grace of the temp sweeper.
const LONG_AGO: Duration = Duration::from_secs(2 * 3600);

/// One pause of a storage call: the call reports that it got there, then
/// waits until the test lets it go on.
struct Gate {
    reached: oneshot::Sender<()>,
    resume: oneshot::Receiver<()>,
}

/// The test's side of a [`Gate`].
struct GateHandle {
    reached: oneshot::Receiver<()>,
    resume: oneshot::Sender<()>,
}

impl GateHandle {
    /// Waits until the paused call is at the gate.
    async fn reached(&mut self) {
        tokio::time::timeout(Duration::from_secs(60), &mut self.reached)
            .await
            .expect("the storage call reached its gate in time")
            .expect("gate dropped");
    }

    /// Lets the paused call go on.
    fn resume(self) {
        let _ = self.resume.send(());
    }
}

fn gate() -> (Gate, GateHandle) {
    let (reached_tx, reached_rx) = oneshot::channel();
    let (resume_tx, resume_rx) = oneshot::channel();
    (Gate { reached: reached_tx, resume: resume_rx }, GateHandle { reached: reached_rx, resume: resume_tx })
}

impl Gate {
    async fn pass(self) {
        let _ = self.reached.send(());
        let _ = self.resume.await;
    }
}

/// Storage that pauses where the test arms it: the next `promote` once it
/// has done its work (the file is in place, the offload's completion not yet
/// written), or the next `put_assets` calls before they write.
#[derive(Debug)]
struct PausingStorage {
    inner: Arc<dyn Storage>,
    gates: Arc<Gates>,
}

/// The armed pauses, and a full disk while `full` is set.
#[derive(Default)]
struct Gates {
    after_promote: Mutex<Option<Gate>>,
    before_put_assets: Mutex<Vec<Gate>>,
    /// While set, new uploads and asset writes fail as on a full disk.
    full: std::sync::atomic::AtomicBool,
}

impl Gates {
    fn refuse_if_full(&self, key: &str) -> Result<(), StorageError> {
        if self.full.load(std::sync::atomic::Ordering::SeqCst) {
            let source = std::io::Error::from(std::io::ErrorKind::StorageFull);
            return Err(StorageError::Full { key: key.to_owned(), source });
        }
        Ok(())
    }
}

impl std::fmt::Debug for Gates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gates")
    }
}

impl Gates {
    fn arm_after_promote(&self) -> GateHandle {
        let (gate, handle) = gate();
        *self.after_promote.lock().expect("lock") = Some(gate);
        handle
    }

    fn arm_before_put_assets(&self) -> GateHandle {
        let (gate, handle) = gate();
        self.before_put_assets.lock().expect("lock").push(gate);
        handle
    }
}

#[async_trait::async_trait]
impl Storage for PausingStorage {
    async fn begin_upload(&self) -> Result<Box<dyn UploadWriter>, StorageError> {
        self.gates.refuse_if_full("tmp")?;
        self.inner.begin_upload().await
    }

    async fn promote(
        &self,
        upload: &TempKey,
        original: &OriginalKey,
        sha256: &str,
        locks: &dyn OriginalLocks,
    ) -> Result<Promoted, StorageError> {
        let promoted = self.inner.promote(upload, original, sha256, locks).await;
        let gate = self.gates.after_promote.lock().expect("lock").take();
        if let Some(gate) = gate {
            gate.pass().await;
        }
        promoted
    }

    async fn abort(&self, upload: &TempKey) -> Result<(), StorageError> {
        self.inner.abort(upload).await
    }

    fn open_blocking(&self, key: &Key) -> Result<Box<dyn ObjectRead>, StorageError> {
        self.inner.open_blocking(key)
    }

    async fn put_assets(&self, assets: Vec<(AssetKey, Vec<u8>)>) -> Result<(), StorageError> {
        let gate = self.gates.before_put_assets.lock().expect("lock").pop();
        if let Some(gate) = gate {
            gate.pass().await;
        }
        self.gates.refuse_if_full("assets")?;
        self.inner.put_assets(assets).await
    }

    async fn get(&self, key: &Key) -> Result<Vec<u8>, StorageError> {
        self.inner.get(key).await
    }

    async fn direct_url(&self, key: &Key, how: pictor::storage::AssetRedirect) -> Result<Option<String>, StorageError> {
        self.inner.direct_url(key, how).await
    }

    async fn put(&self, key: &Key, bytes: Vec<u8>) -> Result<(), StorageError> {
        self.inner.put(key, bytes).await
    }

    async fn stat(&self, key: &Key) -> Result<ObjectInfo, StorageError> {
        self.inner.stat(key).await
    }

    async fn read_range(&self, key: &Key, range: std::ops::Range<u64>) -> Result<ByteStream, StorageError> {
        self.inner.read_range(key, range).await
    }

    async fn local_copy(&self, key: &Key) -> Result<LocalCopy, StorageError> {
        self.inner.local_copy(key).await
    }

    async fn list(&self, area: &str) -> Result<Vec<Listed>, StorageError> {
        self.inner.list(area).await
    }

    async fn exists(&self, key: &Key) -> Result<bool, StorageError> {
        self.inner.exists(key).await
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        self.inner.delete(key).await
    }

    async fn delete_assets(&self, image_id: &str) -> Result<(), StorageError> {
        self.inner.delete_assets(image_id).await
    }

    async fn temp_files_before(
        &self,
        before: std::time::SystemTime,
        beside_objects: bool,
    ) -> Result<Vec<Key>, StorageError> {
        self.inner.temp_files_before(before, beside_objects).await
    }

    async fn check_writable(&self) -> Result<(), StorageError> {
        self.inner.check_writable().await
    }
}

/// Pictor on `backend` whose storage pauses where the test arms it.
async fn pausing_app(backend: Backend) -> Option<(TestApp, Arc<Gates>)> {
    let gates = Arc::new(Gates::default());
    let shared = gates.clone();
    let overrides = Overrides {
        storage: Some(Box::new(move |inner| Arc::new(PausingStorage { inner, gates: shared }) as Arc<dyn Storage>)),
        // Retries within a test's patience.
        retry: Some(pictor::queue::retry::RetryPolicy { base_delay_ms: 100, max_delay_ms: 400, jitter: 0.0 }),
        ..Default::default()
    };
    let app = spawn_app_on(backend, |_| {}, overrides, true).await?;
    Some((app, gates))
}

async fn delete(app: &TestApp, id: &str) {
    let response = app.client.delete(app.url(&format!("/api/images/{id}"))).send().await.expect("delete");
    assert_eq!(response.status(), 204, "DELETE {id}");
}

/// Waits until no job is PENDING or RUNNING.
async fn wait_idle(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending = app.jobs("status=PENDING&limit=1").await.pagination.total;
        let running = app.jobs("status=RUNNING&limit=1").await.pagination.total;
        if pending == 0 && running == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the queue is still busy: {pending} pending, {running} running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every file left under the storage folder, by path.
fn files_left(app: &TestApp) -> Vec<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() { walk(&path, out) } else { out.push(path.display().to_string()) }
        }
    }
    let mut out = Vec::new();
    walk(&app.dir.path().join("storage"), &mut out);
    out
}

fn photo() -> Vec<u8> {
    std::fs::read(testdata("mpl-grace-hopper.jpg")).expect("test image")
}

async fn upload(app: &TestApp, bytes: Vec<u8>) -> String {
    let response = app.upload_bytes("photo.jpg", bytes, None, None).await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.expect("json");
    body["imageId"].as_str().expect("imageId").to_owned()
}

both_backends! {
    async fn a_delete_keeps_the_original_that_an_offload_of_the_same_bytes_just_found_stored(backend) {
        let Some((app, gates)) = pausing_app(backend).await else { return };
        let first = upload(&app, photo()).await;
        assert_eq!(app.wait_terminal(&first, Duration::from_secs(60)).await.status, ImageStatus::Stored);
        let mut paused = gates.arm_after_promote();
        let second = upload(&app, photo()).await;
        // The second offload found the original stored and dropped its upload.
        paused.reached().await;

        delete(&app, &first).await;
        paused.resume();

        let image = app.wait_terminal(&second, Duration::from_secs(60)).await;
        assert_eq!(image.status, ImageStatus::Stored, "{:?}", image.error);
        assert_eq!(count_files(&app.dir.path().join("storage/originals")), 1, "the original is kept");
        app.bytes(image.preview_path.as_deref().expect("preview")).await;
        delete(&app, &second).await;
        wait_idle(&app).await;
        assert_eq!(files_left(&app), Vec::<String>::new());
        app.stop().await;
    }
}

both_backends! {
    async fn an_image_deleted_while_its_offload_runs_gets_no_asset_jobs_and_leaves_no_file(backend) {
        let Some((app, gates)) = pausing_app(backend).await else { return };
        let mut paused = gates.arm_after_promote();
        let id = upload(&app, photo()).await;
        // The upload is now the original; the offload's completion is not written.
        paused.reached().await;

        delete(&app, &id).await;
        paused.resume();
        wait_idle(&app).await;

        let jobs = app.jobs("limit=100").await;
        let kinds: Vec<String> = jobs.jobs.iter().map(|j| j.kind.to_string()).collect();
        assert_eq!(kinds, vec!["OFFLOAD_ORIGINAL".to_owned()], "no asset job for a deleted image");
        assert_eq!(files_left(&app), Vec::<String>::new());
        app.stop().await;
    }
}

both_backends! {
    async fn assets_written_after_their_image_was_deleted_are_removed(backend) {
        let Some((app, gates)) = pausing_app(backend).await else { return };
        let mut paused = [gates.arm_before_put_assets(), gates.arm_before_put_assets()];
        let id = upload(&app, photo()).await;
        // Both asset jobs have made their files and are about to write them.
        for gate in &mut paused {
            gate.reached().await;
        }

        delete(&app, &id).await;
        for gate in paused {
            gate.resume();
        }
        wait_idle(&app).await;

        assert_eq!(files_left(&app), Vec::<String>::new());
        app.stop().await;
    }
}

both_backends! {
    async fn once_every_image_is_deleted_and_the_queue_is_idle_the_storage_holds_no_file(backend) {
        let Some(app) = spawn_app_on(backend, |_| {}, Overrides::default(), true).await else { return };
        let other = std::fs::read(testdata("skimage-coffee.png")).expect("test image");
        let mut ids = Vec::new();
        for bytes in [photo(), photo(), other.clone(), photo(), other] {
            ids.push(upload(&app, bytes).await);
        }
        // Some go at once, in the middle of their jobs; the rest once stored.
        for id in ids.iter().step_by(2) {
            delete(&app, id).await;
        }
        for id in ids.iter().skip(1).step_by(2) {
            assert_eq!(app.wait_terminal(id, Duration::from_secs(60)).await.status, ImageStatus::Stored);
        }
        for id in ids.iter().skip(1).step_by(2) {
            delete(&app, id).await;
        }
        wait_idle(&app).await;

        assert_eq!(files_left(&app), Vec::<String>::new());
        app.stop().await;
    }
}

/// Creates `relative` under `root` (and its folders), last written `age` ago.
fn make_file(root: &std::path::Path, relative: &str, age: Duration) -> std::path::PathBuf {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let file = std::fs::File::create(&path).expect("create");
    file.set_modified(std::time::SystemTime::now() - age).expect("mtime");
    path
}

both_backends! {
    async fn the_temp_sweeper_removes_old_temp_files_that_no_image_needs_and_keeps_the_rest(backend) {
        // No runner: the upload stays INGESTED, its temp file needed.
        let Some(app) = spawn_app_on(backend, |_| {}, Overrides::default(), false).await else { return };
        upload(&app, photo()).await;
        let storage = app.dir.path().join("storage");
        let needed = std::fs::read_dir(storage.join("tmp")).expect("tmp").next().expect("the upload").expect("entry").path();
        std::fs::File::options().write(true).open(&needed).expect("open").set_modified(std::time::SystemTime::now() - LONG_AGO).expect("mtime");
        // What kills left: an upload cut off, a job's part files (in the
        // temp area, and beside assets as older versions wrote them).
        let cut_off = make_file(&storage, "tmp/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b.upload", LONG_AGO);
        let part = make_file(&storage, "tmp/0190a1b2c3d47e5f8a9b0c1d2e3f4a5b.part", LONG_AGO);
        let beside = make_file(&storage, "assets/0190a1b2-0000-7000-8000-000000000000/preview.0190a1b2c3d4.part", LONG_AGO);
        let finished = make_file(&storage, "assets/0190a1b2-0000-7000-8000-000000000000/preview.jpg", LONG_AGO);
        let fresh = make_file(&storage, "tmp/0190a1b2-c3d4-7e5f-8a9b-ffffffffffff.upload", Duration::ZERO);

        let removed = app.app.sweeper.sweep(true).await.expect("sweep");

        assert_eq!(removed, 3);
        for gone in [&cut_off, &part, &beside] {
            assert!(!gone.exists(), "{} swept", gone.display());
        }
        for kept in [&needed, &finished, &fresh] {
            assert!(kept.exists(), "{} kept", kept.display());
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn the_temp_sweeper_runs_when_pictor_starts() {
    let storage = tempfile::tempdir().expect("tempdir");
    let left = make_file(storage.path(), "tmp/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b.upload", LONG_AGO);
    let folder = storage.path().to_owned();

    let app = spawn_app_on(Backend::Sqlite, |c| c.storage_dir = folder, Overrides::default(), true)
        .await
        .expect("SQLite is always there");

    let deadline = Instant::now() + Duration::from_secs(30);
    while left.exists() {
        assert!(Instant::now() < deadline, "the upload left by a crash is still there");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}

both_backends! {
    async fn a_full_storage_refuses_uploads_with_507_and_its_jobs_retry_until_space_returns(backend) {
        let Some((app, gates)) = pausing_app(backend).await else { return };
        gates.full.store(true, std::sync::atomic::Ordering::SeqCst);

        let refused = app.upload_bytes("photo.jpg", photo(), None, None).await;

        assert_eq!(refused.status(), 507);
        let body: serde_json::Value = refused.json().await.expect("json");
        assert_eq!(body["error"]["code"], "insufficient_storage", "{body}");
        assert_eq!(files_left(&app), Vec::<String>::new(), "nothing half-written is kept");

        gates.full.store(false, std::sync::atomic::Ordering::SeqCst);
        let mut paused = [gates.arm_before_put_assets(), gates.arm_before_put_assets()];
        let id = upload(&app, photo()).await;
        for gate in &mut paused {
            gate.reached().await;
        }
        gates.full.store(true, std::sync::atomic::Ordering::SeqCst);
        for gate in paused {
            gate.resume();
        }
        // The asset jobs fail for want of space, retryably, saying why.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let image = app.image(&id).await;
            let mut errors = Vec::new();
            for job in image.processing_jobs.iter().filter(|j| j.kind.as_str() != "OFFLOAD_ORIGINAL") {
                errors.extend(app.job(job.id).await.retry_info.last_error);
            }
            if errors.len() == 2 {
                assert!(errors.iter().all(|e| e.contains("storage is full")), "{errors:?}");
                break;
            }
            assert!(Instant::now() < deadline, "the asset jobs did not fail: {image:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_ne!(app.image(&id).await.status, ImageStatus::Failed);

        gates.full.store(false, std::sync::atomic::Ordering::SeqCst);

        let image = app.wait_terminal(&id, Duration::from_secs(60)).await;
        assert_eq!(image.status, ImageStatus::Stored, "{:?}", image.error);
        app.stop().await;
    }
}
