//! Crash rounds (issue 13): `pictor serve` (with its runner) and a
//! `pictor worker` share one database and storage folder; each round
//! uploads a burst of photos, kills one of the two with SIGKILL while it
//! holds a job, restarts it and drains the queue. After the rounds every
//! acknowledged upload must be STORED once, with its five assets and its
//! original, and nothing may be left RUNNING, orphaned or in the temp area.
//!
//! A test binary of its own, so that its minutes are not shared with the
//! `api` tests. `PICTOR_CRASH_ROUNDS` sets the rounds (all backends
//! together, default 30); `PICTOR_CRASH_SEED` replays a printed seed.

// Tests and benchmarks may unwrap: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "api/processes.rs"]
#[allow(dead_code)]
mod processes;
#[path = "support/skip.rs"]
mod skip;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::Row;

use helpers::{Backend, drop_database, files_under, fresh_database, testdata, with_jpeg_comment};
use processes::{PictorProcess, start};

/// Rounds of a CI run, both backends together (the issue asks for 30).
const DEFAULT_ROUNDS: usize = 30;
/// Small real photos, so that a round is short: decoding is not under test.
const PHOTOS: [&str; 5] =
    ["mpl-grace-hopper.jpg", "sklearn-china.jpg", "grey-grace-hopper.jpg", "skimage-chelsea.png", "skimage-coffee.png"];
/// Most uploads the trickle beside a round's burst sends.
const TRICKLE_MAX: usize = 8;
/// A photo over the upload's 1 MiB write buffer, cut off by a kill.
const STALLED_PHOTO: &str = "png16-bridge.png";
/// Assets per image: four thumbnails and the JPEG preview.
const ASSETS_PER_IMAGE: usize = 5;
/// Job types every image must have completed exactly once.
const JOB_TYPES: [&str; 3] = ["OFFLOAD_ORIGINAL", "THUMBNAIL_GENERATION", "PREVIEW_GENERATION"];
/// The longest a drain may take (a killed process's leases expire after 2 s).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(90);

/// Settings of every process: short leases (a killed process's jobs are
/// rescued after 2 s), a fast poll, a one-second temp grace (the start-up
/// sweep of a restart removes what an earlier kill left), and few slots, so
/// that both processes hold jobs.
const ENV: [(&str, &str); 6] = [
    ("PICTOR_LOCK_TIMEOUT_SECS", "2"),
    ("PICTOR_RUNNER_POLL_INTERVAL_MS", "100"),
    ("PICTOR_TEMP_GRACE_SECS", "1"),
    ("PICTOR_RUNNER_CONCURRENCY", "3"),
    ("PICTOR_RUNNER_BATCH_SIZE", "2"),
    ("PICTOR_MAX_ATTEMPTS", "5"),
];

/// Which process a round kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    /// `serve`: the API (uploads in flight are cut off) and its runner.
    Serve,
    /// `worker`: a runner alone.
    Worker,
}

/// What the rounds did, printed at the end.
#[derive(Debug, Default)]
struct Tally {
    rounds: usize,
    serve_kills: usize,
    worker_kills: usize,
    /// Jobs the victim held, summed over the kills.
    jobs_held_at_kills: i64,
    /// Uploads answered 201.
    acknowledged: usize,
    /// Uploads cut off by a kill (no answer): not acknowledged.
    cut_off: usize,
}

/// `serve` and `worker` on one database and storage folder.
struct Cluster {
    backend: Backend,
    dir: tempfile::TempDir,
    database_url: String,
    db: pictor::db::Db,
    serve: Option<PictorProcess>,
    worker: Option<PictorProcess>,
    base: String,
    client: reqwest::Client,
}

impl Cluster {
    /// A fresh database (migrated here, so that the two processes do not
    /// race to migrate it) and both processes; `None` when `backend` is not
    /// available on this machine.
    async fn start(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = fresh_database(backend, dir.path()).await?;
        let db = pictor::db::Db::connect(&database_url).await.expect("connect");
        db.migrate().await.expect("migrate");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
        let mut cluster =
            Self { backend, dir, database_url, db, serve: None, worker: None, base: String::new(), client };
        cluster.start_serve();
        cluster.start_worker();
        Some(cluster)
    }

    fn start_serve(&mut self) {
        let mut serve = start(self.dir.path(), &self.database_url, &["serve", "--bind", "127.0.0.1:0"], &ENV);
        self.base = format!("http://{}", serve.address());
        serve.wait_for_log("job runner started", Duration::from_secs(60));
        self.serve = Some(serve);
    }

    fn start_worker(&mut self) {
        let mut worker = start(self.dir.path(), &self.database_url, &["worker"], &ENV);
        worker.wait_for_log("job runner started", Duration::from_secs(60));
        self.worker = Some(worker);
    }

    fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.db.pool)
            .await
            .expect("query")
            .try_get("n")
            .expect("n")
    }

    /// Jobs RUNNING under a lease of the process `pid`.
    async fn held_by(&self, pid: u32) -> i64 {
        self.count(&format!("SELECT COUNT(*) AS n FROM job WHERE status = 'RUNNING' AND locked_by LIKE '%:{pid}:%'"))
            .await
    }

    async fn queue_idle(&self) -> bool {
        self.count("SELECT COUNT(*) AS n FROM job WHERE status IN ('PENDING', 'RUNNING')").await == 0
    }

    /// One upload of a random photo: the image id of its 201, or `None`
    /// when a kill cut it off.
    fn upload(&self, rng: &mut fastrand::Rng, tag: &str) -> impl Future<Output = Option<String>> + Send + use<> {
        let name = PHOTOS[rng.usize(..PHOTOS.len())];
        let mut bytes = std::fs::read(testdata(name)).expect("photo");
        // Half the JPEGs get a comment of their own: new bytes, a new
        // original; the others share an original with earlier uploads.
        if name.ends_with(".jpg") && rng.bool() {
            bytes = with_jpeg_comment(&bytes, &format!("{tag}, {}", rng.u64(..)));
        }
        let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned());
        let request = self
            .client
            .post(format!("{}/api/upload", self.base))
            .multipart(reqwest::multipart::Form::new().part("file", part));
        async move {
            let response = request.send().await.ok()?;
            let status = response.status();
            // Any answer but a 201 is a failure: a kill gives no answer at all.
            let body: serde_json::Value = response.json().await.ok()?;
            assert_eq!(status, 201, "an upload answered {status}: {body}");
            Some(body["imageId"].as_str().expect("imageId").to_owned())
        }
    }

    /// Sends `count` uploads at once, in the background.
    fn burst(&self, rng: &mut fastrand::Rng, round: usize, count: usize) -> tokio::task::JoinSet<Option<String>> {
        let mut uploads = tokio::task::JoinSet::new();
        for i in 0..count {
            uploads.spawn(self.upload(rng, &format!("round {round}, burst upload {i}")));
        }
        uploads
    }

    /// Uploads one photo after another, a random pause between them, until
    /// `stop` is set or a kill cuts one off: `serve` is then often killed in
    /// the middle of an upload.
    fn trickle(
        &self,
        mut rng: fastrand::Rng,
        round: usize,
        stop: Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<Vec<Option<String>>> {
        let uploads: Vec<_> =
            (0..TRICKLE_MAX).map(|i| self.upload(&mut rng, &format!("round {round}, trickle {i}"))).collect();
        let pauses: Vec<u64> = (0..TRICKLE_MAX).map(|_| rng.u64(20..200)).collect();
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for (upload, pause) in uploads.into_iter().zip(pauses) {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let answer = upload.await;
                let cut_off = answer.is_none();
                answers.push(answer);
                if cut_off {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            answers
        })
    }

    /// Starts an upload of a photo over 1 MiB (the upload's write buffer)
    /// and sends all but its last bytes, then stalls: returns once its
    /// first block is in the temp area, with the connection to keep open.
    async fn stalled_upload(&self) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt as _;
        let photo = std::fs::read(testdata(STALLED_PHOTO)).expect("photo");
        let boundary = "crash-round-boundary";
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"stalled.png\"\r\n\
             Content-Type: image/png\r\n\r\n"
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        let address = self.base.trim_start_matches("http://");
        let request = format!(
            "POST /api/upload HTTP/1.1\r\nHost: {address}\r\n\
             Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n{head}",
            head.len() + photo.len() + tail.len()
        );
        let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("send the head");
        stream.write_all(&photo[..photo.len() - 1000]).await.expect("send most of the photo");
        let tmp = self.storage().join("tmp");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !files_under(&tmp).iter().any(|f| f.metadata().is_ok_and(|m| m.len() >= 1 << 20)) {
            assert!(Instant::now() < deadline, "the stalled upload's first block never reached the temp area");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stream
    }

    /// One round: a burst, a kill of `victim` at a random moment while it
    /// holds a job, its restart, and a drain. Returns the ids acknowledged.
    async fn round(&mut self, round: usize, rng: &mut fastrand::Rng, tally: &mut Tally) -> Vec<String> {
        let victim = if rng.bool() { Victim::Serve } else { Victim::Worker };
        let size = rng.usize(3..=6);
        let mut bursts = vec![self.burst(rng, round, size)];
        let stop_trickle = Arc::new(AtomicBool::new(false));
        let trickle = self.trickle(rng.fork(), round, stop_trickle.clone());
        tokio::time::sleep(Duration::from_millis(rng.u64(..600))).await;

        // A `serve` to be killed is in the middle of a large upload too: its
        // first megabyte is on disk, in the temp area, for the sweep to find.
        let stalled = match victim {
            Victim::Serve => Some(self.stalled_upload().await),
            Victim::Worker => None,
        };
        // The kill: the victim is frozen (SIGSTOP) as soon as it holds a job,
        // and the count taken again, so that it cannot finish the job
        // between the look and the kill (a commit already sent lands in the
        // pause). Should the other process take every job, another burst.
        let pid = self.process(victim).pid();
        let mut answers = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let held = loop {
            if self.held_by(pid).await > 0 {
                self.process(victim).signal("STOP");
                tokio::time::sleep(Duration::from_millis(150)).await;
                let held = self.held_by(pid).await;
                if held > 0 {
                    break held;
                }
                self.process(victim).signal("CONT");
            } else if bursts.iter().all(tokio::task::JoinSet::is_empty) && self.queue_idle().await {
                bursts.push(self.burst(rng, round, 3));
            }
            assert!(Instant::now() < deadline, "round {round}: the {victim:?} never held a job");
            for burst in &mut bursts {
                while let Some(done) = burst.try_join_next() {
                    answers.push(done.expect("upload task"));
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        self.process(victim).signal("KILL");
        match victim {
            Victim::Serve => {
                drop(self.serve.take()); // waits for the exit
                tally.serve_kills += 1;
            }
            Victim::Worker => {
                drop(self.worker.take());
                tally.worker_kills += 1;
            }
        }
        stop_trickle.store(true, Ordering::SeqCst);
        drop(stalled);
        tally.jobs_held_at_kills += held;
        eprintln!("{:?} round {round}: killed the {victim:?} holding {held} running job(s)", self.backend);

        for mut burst in bursts {
            while let Some(done) = burst.join_next().await {
                answers.push(done.expect("upload task"));
            }
        }
        answers.extend(trickle.await.expect("trickle task"));
        let acknowledged: Vec<String> = answers.iter().flatten().cloned().collect();
        tally.cut_off += answers.len() - acknowledged.len();
        match victim {
            Victim::Serve => self.start_serve(),
            Victim::Worker => self.start_worker(),
        }
        self.drain(round).await;
        tally.rounds += 1;
        tally.acknowledged += acknowledged.len();
        acknowledged
    }

    fn process(&self, victim: Victim) -> &PictorProcess {
        match victim {
            Victim::Serve => self.serve.as_ref(),
            Victim::Worker => self.worker.as_ref(),
        }
        .expect("the victim runs")
    }

    /// Waits until the queue is idle and every image is STORED; an image
    /// that FAILED fails the test at once.
    async fn drain(&self, round: usize) {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        loop {
            let failed = self.count("SELECT COUNT(*) AS n FROM image WHERE status = 'FAILED'").await;
            assert_eq!(failed, 0, "round {round}: an image FAILED: {:?}", self.not_stored().await);
            let unstored = self.count("SELECT COUNT(*) AS n FROM image WHERE status <> 'STORED'").await;
            if unstored == 0 && self.queue_idle().await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: not drained after {DRAIN_TIMEOUT:?}: {:?}",
                self.not_stored().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn not_stored(&self) -> Vec<(String, String, Option<String>)> {
        sqlx::query("SELECT id, status, last_error FROM image WHERE status <> 'STORED'")
            .fetch_all(&self.db.pool)
            .await
            .expect("images")
            .iter()
            .map(|r| (r.get("id"), r.get("status"), r.get("last_error")))
            .collect()
    }

    /// Stops both processes (they must exit cleanly), then starts `serve`
    /// alone once more: its start-up sweep removes the temp files the kills
    /// left, all older than the one-second grace by now.
    async fn restart_for_the_sweep(&mut self) {
        let serve = self.serve.take().expect("serve");
        let worker = self.worker.take().expect("worker");
        assert!(worker.stop(), "the worker exits cleanly on SIGTERM");
        assert!(serve.stop(), "serve exits cleanly on SIGTERM");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        self.start_serve();
    }

    /// Every invariant of the issue, over all rounds.
    async fn check_invariants(&self, acknowledged: &[String]) {
        let images: BTreeMap<String, (String, String)> = sqlx::query("SELECT id, status, checksum FROM image")
            .fetch_all(&self.db.pool)
            .await
            .expect("images")
            .iter()
            .map(|r| (r.get("id"), (r.get("status"), r.get("checksum"))))
            .collect();

        // Every acknowledged upload ends STORED (and so does every upload
        // committed before its answer was cut off).
        for id in acknowledged {
            let status = images.get(id).map(|(s, _)| s.as_str());
            assert_eq!(status, Some("STORED"), "acknowledged upload {id}");
        }
        let unstored: Vec<_> = images.iter().filter(|(_, (s, _))| s != "STORED").collect();
        assert!(unstored.is_empty(), "images not STORED: {unstored:?}");

        // No job RUNNING (nor anything but COMPLETED), attempts within bounds.
        let unfinished = self.count("SELECT COUNT(*) AS n FROM job WHERE status <> 'COMPLETED'").await;
        assert_eq!(unfinished, 0, "jobs not COMPLETED (RUNNING, PENDING or FAILED) after the drain");
        let over = self.count("SELECT COUNT(*) AS n FROM job WHERE attempts > max_attempts").await;
        assert_eq!(over, 0, "jobs over their max_attempts");

        // Exactly one COMPLETED job of each type per image.
        let rows = sqlx::query(
            "SELECT image_id, type, COUNT(*) AS n FROM job WHERE status = 'COMPLETED' GROUP BY image_id, type",
        )
        .fetch_all(&self.db.pool)
        .await
        .expect("jobs");
        let mut completed: BTreeMap<(String, String), i64> = BTreeMap::new();
        for row in &rows {
            completed.insert((row.get("image_id"), row.get("type")), row.get("n"));
        }
        for id in images.keys() {
            for kind in JOB_TYPES {
                let n = completed.remove(&(id.clone(), kind.to_owned())).unwrap_or(0);
                assert_eq!(n, 1, "image {id}: {n} COMPLETED {kind} job(s)");
            }
        }
        assert!(completed.is_empty(), "completed jobs of no image or of another type: {completed:?}");
        let jobs = self.count("SELECT COUNT(*) AS n FROM job").await;
        assert_eq!(jobs as usize, JOB_TYPES.len() * images.len(), "no job duplicated");

        // Five asset files per image, in the image's own folder.
        let storage = self.storage();
        let mut folders = BTreeSet::new();
        for entry in std::fs::read_dir(storage.join("assets")).expect("assets").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let files = files_under(&entry.path());
            assert_eq!(files.len(), ASSETS_PER_IMAGE, "assets of {name}: {files:?}");
            folders.insert(name);
        }
        let ids: BTreeSet<String> = images.keys().cloned().collect();
        assert_eq!(folders, ids, "one asset folder per image, none for anything else");
        assert_eq!(files_under(&storage.join("assets")).len(), ASSETS_PER_IMAGE * images.len());

        // No orphan original: the originals are exactly the images' checksums.
        let originals: BTreeSet<String> = files_under(&storage.join("originals"))
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        let checksums: BTreeSet<String> = images.values().map(|(_, c)| c.clone()).collect();
        assert_eq!(originals, checksums, "originals on disk = checksums of the images");

        // Nothing left in the temp area once the start-up sweep has run.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = files_under(&storage.join("tmp"));
            if left.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "temp files left after the sweep: {left:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn shut_down(mut self) {
        if let Some(serve) = self.serve.take() {
            assert!(serve.stop(), "serve exits cleanly on SIGTERM");
        }
        self.db.pool.close().await;
        drop_database(&self.database_url).await;
    }
}

/// The rounds of this run for one backend and the seed of its kill
/// moments, from `PICTOR_CRASH_ROUNDS` and `PICTOR_CRASH_SEED`.
fn plan(backend: Backend) -> (usize, u64) {
    let total = std::env::var("PICTOR_CRASH_ROUNDS")
        .ok()
        .map_or(DEFAULT_ROUNDS, |v| v.parse().expect("PICTOR_CRASH_ROUNDS is a number of rounds"));
    let seed = std::env::var("PICTOR_CRASH_SEED")
        .ok()
        .map_or_else(|| fastrand::u64(..), |v| v.parse().expect("PICTOR_CRASH_SEED is the number a run printed"));
    let rounds = total.div_ceil(2);
    eprintln!("crash rounds on {backend:?}: {rounds} rounds, PICTOR_CRASH_SEED={seed}");
    (rounds, seed)
}

async fn crash_rounds(backend: Backend) {
    let (rounds, seed) = plan(backend);
    let Some(mut cluster) = Cluster::start(backend).await else { return };
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut tally = Tally::default();
    let mut acknowledged = Vec::new();
    let started = Instant::now();
    for round in 1..=rounds {
        acknowledged.extend(cluster.round(round, &mut rng, &mut tally).await);
    }
    cluster.restart_for_the_sweep().await;
    cluster.check_invariants(&acknowledged).await;
    let images = cluster.count("SELECT COUNT(*) AS n FROM image").await;
    eprintln!(
        "crash rounds on {:?} (PICTOR_CRASH_SEED={seed}): {tally:?}, {images} images STORED, \
         0 lost, 0 duplicated, 0 stuck, 0 orphaned, in {:.1?}",
        cluster.backend,
        started.elapsed()
    );
    assert!(tally.rounds == rounds && tally.acknowledged > 0);
    cluster.shut_down().await;
}

#[tokio::test]
async fn kill_9_rounds_on_sqlite_lose_no_acknowledged_upload_and_leave_nothing_behind() {
    crash_rounds(Backend::Sqlite).await;
}

#[tokio::test]
async fn kill_9_rounds_on_postgres_lose_no_acknowledged_upload_and_leave_nothing_behind() {
    crash_rounds(Backend::Postgres).await;
}
