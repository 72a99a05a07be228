//! Many processes on one PostgreSQL database: one `serve --no-runner` and
//! several `pictor worker`s sharing the database and the storage folder;
//! and a worker killed with SIGKILL mid-run.

use std::time::{Duration, Instant};

use sqlx::Row;

use crate::helpers::{Backend, drop_database, fresh_database, testdata};
use crate::processes::{PictorProcess, kill_while_it_holds_a_job, start, upload};

/// Small photos, so that the test measures coordination, not decoding.
const PHOTOS: [&str; 4] = ["mpl-grace-hopper.jpg", "sklearn-china.jpg", "skimage-coffee.png", "grey-grace-hopper.jpg"];

struct Cluster {
    api: PictorProcess,
    workers: Vec<PictorProcess>,
    base: String,
    database_url: String,
    db: pictor::db::Db,
    _dir: tempfile::TempDir,
}

/// Migrates a fresh PostgreSQL database, then starts the API and `workers`
/// worker processes on it; `None` when PostgreSQL is not available here.
async fn cluster(workers: usize, env: &[(&str, &str)]) -> Option<Cluster> {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = fresh_database(Backend::Postgres, dir.path()).await?;
    let db = pictor::db::Db::connect(&database_url).await.expect("connect");
    db.migrate().await.expect("migrate");
    let mut api = start(dir.path(), &database_url, &["serve", "--no-runner", "--bind", "127.0.0.1:0"], env);
    let base = format!("http://{}", api.address());
    let workers = (0..workers)
        .map(|_| {
            let mut worker = start(dir.path(), &database_url, &["worker"], env);
            worker.wait_for_log("job runner started", Duration::from_secs(60));
            worker
        })
        .collect();
    Some(Cluster { api, workers, base, database_url, db, _dir: dir })
}

impl Cluster {
    async fn upload_many(&self, count: usize) -> Vec<String> {
        let client = reqwest::Client::new();
        let files: Vec<Vec<u8>> = PHOTOS.iter().map(|f| std::fs::read(testdata(f)).expect("photo")).collect();
        let mut ids = Vec::new();
        for chunk in (0..count).collect::<Vec<_>>().chunks(8) {
            let mut uploads = tokio::task::JoinSet::new();
            for i in chunk {
                let bytes = files[i % files.len()].clone();
                uploads.spawn(upload(client.clone(), self.base.clone(), format!("p{i}.jpg"), bytes));
            }
            while let Some(id) = uploads.join_next().await {
                ids.push(id.expect("upload task"));
            }
        }
        ids
    }

    async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query(sql).fetch_one(&self.db.pool).await.expect("query").try_get("n").expect("n")
    }

    async fn wait_all_stored(&self, count: i64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let stored = self.count("SELECT COUNT(*) AS n FROM image WHERE status = 'STORED'").await;
            if stored == count {
                return;
            }
            let failed = self.count("SELECT COUNT(*) AS n FROM image WHERE status = 'FAILED'").await;
            assert_eq!(failed, 0, "no image fails");
            assert!(Instant::now() < deadline, "{stored} of {count} stored after {timeout:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn shut_down(self) {
        for worker in self.workers {
            assert!(worker.stop(), "a worker exits cleanly on SIGTERM");
        }
        assert!(self.api.stop(), "the API exits cleanly on SIGTERM");
        self.db.pool.close().await;
        drop_database(&self.database_url).await;
    }
}

#[tokio::test]
async fn one_api_and_three_workers_on_postgres_store_100_uploads_running_every_job_once() {
    let Some(cluster) = cluster(3, &[]).await else { return };
    let ids = cluster.upload_many(100).await;
    assert_eq!(ids.len(), 100);
    cluster.wait_all_stored(100, Duration::from_secs(300)).await;

    assert_eq!(cluster.count("SELECT COUNT(*) AS n FROM job").await, 300, "three jobs per image, none duplicated");
    assert_eq!(cluster.count("SELECT COUNT(*) AS n FROM job WHERE status = 'COMPLETED' AND attempts = 1").await, 300);
    let runners = cluster.count("SELECT COUNT(DISTINCT locked_by) AS n FROM job").await;
    assert!(runners >= 2, "the work was shared: {runners} worker(s) took jobs");
    let assets = crate::helpers::count_files(&cluster._dir.path().join("storage/assets"));
    assert_eq!(assets, 500, "every asset written, none twice under another name");
    cluster.shut_down().await;
}

#[tokio::test]
async fn a_worker_killed_mid_run_has_its_jobs_rescued_and_every_image_stored_once() {
    let env = [("PICTOR_LOCK_TIMEOUT_SECS", "2"), ("PICTOR_RUNNER_POLL_INTERVAL_MS", "500")];
    let Some(mut cluster) = cluster(3, &env).await else { return };
    let ids = cluster.upload_many(60).await;
    // Kill the first worker while it holds a job.
    kill_while_it_holds_a_job(cluster.workers.remove(0), &cluster.db.pool).await;

    cluster.wait_all_stored(ids.len() as i64, Duration::from_secs(300)).await;
    assert_eq!(cluster.count("SELECT COUNT(*) AS n FROM job").await, 180, "no job duplicated");
    assert_eq!(cluster.count("SELECT COUNT(*) AS n FROM job WHERE status <> 'COMPLETED'").await, 0);
    let rescued = cluster.count("SELECT COUNT(*) AS n FROM job WHERE attempts = 2").await;
    assert!(rescued >= 1, "the killed worker's job ran again after its lease expired");
    cluster.shut_down().await;
}

#[tokio::test]
async fn an_upload_wakes_an_idle_worker_in_another_process_without_waiting_for_its_poll() {
    // A one-minute poll: only LISTEN/NOTIFY can make the worker start within seconds.
    let Some(mut cluster) = cluster(1, &[("PICTOR_RUNNER_POLL_INTERVAL_MS", "60000")]).await else { return };
    // Once it listens, the worker makes one claim (for jobs sent before it
    // listened) and then sleeps for the whole poll: an upload after that
    // settles can only reach it by NOTIFY.
    cluster.workers[0].wait_for_log("listening for new jobs", Duration::from_secs(60));
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.upload_many(1).await;
    cluster.wait_all_stored(1, Duration::from_secs(20)).await;
    cluster.shut_down().await;
}
