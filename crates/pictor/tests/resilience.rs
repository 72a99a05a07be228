//! PostgreSQL restarted under a running cluster: the API and the worker
//! recover by themselves and every image ends STORED; PostgreSQL stopped:
//! `/readyz` says 503 and why, then 200 once it is back. A test binary of its
//! own, because cargo runs test binaries one after another, so the restart
//! cannot disturb the database tests of the `api` binary.

// Tests and benchmarks may unwrap: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "api/processes.rs"]
#[allow(dead_code)]
mod processes;
#[path = "support/skip.rs"]
mod skip;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::Row;

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Runs `pg_ctlcluster VERSION main ACTION` on the local PostgreSQL
/// cluster; false when this machine cannot.
fn pg_ctlcluster(action: &str) -> bool {
    let Some(version) = std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
    else {
        return false;
    };
    Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", action])
        .status()
        .is_ok_and(|s| s.success())
}

/// Restarts the local PostgreSQL cluster; false when this machine cannot.
fn restart_postgres() -> bool {
    pg_ctlcluster("restart")
}

/// Held by the test that stops or restarts the cluster: the tests of this
/// binary run side by side, and one stopping PostgreSQL would fail the other.
static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A database of its own for a test on a PostgreSQL cluster it may stop
/// (else the test records a visible skip): its name and URL, with the right
/// to stop the cluster until the guard is dropped.
async fn postgres_to_stop(test: &str) -> Option<(TestDatabase, tokio::sync::MutexGuard<'static, ()>)> {
    let cluster = CLUSTER.lock().await;
    let admin = match pictor::db::Db::connect(ADMIN_URL).await {
        Ok(db) => db,
        Err(e) => {
            skip::skip(test, &format!("PostgreSQL not reachable: {e}"));
            return None;
        }
    };
    if !Path::new("/etc/postgresql").is_dir() || Command::new("pg_ctlcluster").arg("--help").output().is_err() {
        skip::skip(test, "no pg_ctlcluster here to stop PostgreSQL with");
        return None;
    }
    let name = format!("pictor_test_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin.pool).await.expect("create");
    admin.pool.close().await;
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
    Some((TestDatabase { name, url }, cluster))
}

/// A test's own database on the local cluster.
struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    /// Drops it (best effort: a leftover is dropped by CI's next run).
    async fn drop(self) {
        if let Ok(admin) = pictor::db::Db::connect(ADMIN_URL).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)))
                .execute(&admin.pool)
                .await;
        }
    }
}

/// Starts PostgreSQL again when dropped, so that a failing test never leaves
/// it stopped for everyone else.
struct StartOnDrop;

impl Drop for StartOnDrop {
    fn drop(&mut self) {
        pg_ctlcluster("start");
    }
}

async fn count(db: &pictor::db::Db, sql: &'static str) -> Result<i64, sqlx::Error> {
    sqlx::query(sql).fetch_one(&db.pool).await?.try_get("n")
}

#[tokio::test]
async fn workers_recover_from_a_postgres_restart_and_every_image_is_stored() {
    let Some((test_db, _cluster)) = postgres_to_stop("the PostgreSQL restart test").await else { return };
    let url = test_db.url.clone();
    let dir = tempfile::tempdir().expect("temp dir");
    let env = [("PICTOR_LOCK_TIMEOUT_SECS", "3"), ("PICTOR_RUNNER_POLL_INTERVAL_MS", "500")];
    let mut api = processes::start(dir.path(), &url, &["serve", "--bind", "127.0.0.1:0"], &env);
    let base = format!("http://{}", api.address());
    let mut worker = processes::start(dir.path(), &url, &["worker"], &env);
    worker.wait_for_log("job runner started", Duration::from_secs(60));

    let client = reqwest::Client::new();
    let photo =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/images/plasma-coldripple.jpg"))
            .expect("photo");
    for i in 0..24 {
        processes::upload(client.clone(), base.clone(), format!("p{i}.jpg"), photo.clone()).await;
    }
    let db = pictor::db::Db::connect(&url).await.expect("connect");
    let pending =
        count(&db, "SELECT COUNT(*) AS n FROM job WHERE status IN ('PENDING', 'RUNNING')").await.expect("count");
    eprintln!("jobs unfinished at the restart: {pending}");
    assert!(pending > 0, "every job had finished before the restart: nothing was tested");
    assert!(restart_postgres(), "pg_ctlcluster restart failed");

    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        // Errors while the server restarts are expected: keep asking.
        if let Ok(24) = count(&db, "SELECT COUNT(*) AS n FROM image WHERE status = 'STORED'").await {
            break;
        }
        assert!(Instant::now() < deadline, "not every image stored 180 s after the restart");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM job").await.expect("count"), 72, "no job duplicated");
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM image WHERE status = 'FAILED'").await.expect("count"), 0);
    let health = client.get(format!("{base}/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), 200, "the API answers again");
    assert!(worker.stop() && api.stop(), "both exit cleanly after recovering");
    db.pool.close().await;
    test_db.drop().await;
}

/// `/readyz` of `base`: status and body.
async fn readyz(client: &reqwest::Client, base: &str) -> (u16, serde_json::Value) {
    let response = client.get(format!("{base}/readyz")).send().await.expect("readyz answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("readyz body"))
}

/// Asks `/readyz` until it answers `status`, for up to `limit`; its last body.
async fn readyz_until(client: &reqwest::Client, base: &str, status: u16, limit: Duration) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let (now, body) = readyz(client, base).await;
        if now == status {
            return body;
        }
        assert!(Instant::now() < deadline, "/readyz still {now} after {limit:?}, not {status}: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn readyz_answers_503_with_the_reason_while_postgres_is_stopped_and_200_once_it_is_back() {
    let Some((test_db, _cluster)) = postgres_to_stop("the /readyz PostgreSQL stop test").await else { return };
    let url = test_db.url.clone();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut api = processes::start(dir.path(), &url, &["serve", "--bind", "127.0.0.1:0"], &[]);
    let base = format!("http://{}", api.address());
    let client = reqwest::Client::new();
    let body = readyz_until(&client, &base, 200, Duration::from_secs(30)).await;
    assert_eq!(body["ready"], true, "{body}");

    let started_again = StartOnDrop;
    assert!(pg_ctlcluster("stop"), "pg_ctlcluster stop failed");
    let body = readyz_until(&client, &base, 503, Duration::from_secs(30)).await;
    assert_eq!(body["ready"], false, "{body}");
    let checks = body["checks"].as_array().expect("checks");
    let database = checks.iter().find(|c| c["name"] == "database").expect("a database check");
    assert_eq!(database["ok"], false, "{body}");
    assert!(database["detail"].as_str().is_some_and(|d| !d.is_empty()), "the reason is given: {body}");
    assert!(checks.iter().any(|c| c["name"] == "storage" && c["ok"] == true), "only the database is down: {body}");
    let health = client.get(format!("{base}/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), 200, "alive, only not ready");

    assert!(pg_ctlcluster("start"), "pg_ctlcluster start failed");
    std::mem::forget(started_again); // started already
    let body = readyz_until(&client, &base, 200, Duration::from_secs(60)).await;
    assert!(body["checks"].as_array().expect("checks").iter().all(|c| c["ok"] == true), "{body}");
    assert!(api.stop(), "exits cleanly after recovering");
    test_db.drop().await;
}
