//! PostgreSQL restarted under a running cluster: the API and the worker
//! recover by themselves and every image ends STORED. A test binary of its
//! own, because cargo runs test binaries one after another, so the restart
//! cannot disturb the database tests of the `api` binary.

// Tests and benchmarks may unwrap: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "api/processes.rs"]
mod processes;
#[path = "support/skip.rs"]
mod skip;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::Row;

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Restarts the local PostgreSQL cluster; false when this machine cannot.
fn restart_postgres() -> bool {
    let Some(version) = std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
    else {
        return false;
    };
    Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", "restart"])
        .status()
        .is_ok_and(|s| s.success())
}

async fn count(db: &pictor::db::Db, sql: &'static str) -> Result<i64, sqlx::Error> {
    sqlx::query(sql).fetch_one(&db.pool).await?.try_get("n")
}

#[tokio::test]
async fn workers_recover_from_a_postgres_restart_and_every_image_is_stored() {
    let admin = match pictor::db::Db::connect(ADMIN_URL).await {
        Ok(db) => db,
        Err(e) => {
            skip::skip("the PostgreSQL restart test", &format!("PostgreSQL not reachable: {e}"));
            return;
        }
    };
    if !Path::new("/etc/postgresql").is_dir() || Command::new("pg_ctlcluster").arg("--help").output().is_err() {
        skip::skip("the PostgreSQL restart test", "no pg_ctlcluster here to restart PostgreSQL with");
        return;
    }
    let name = format!("pictor_test_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin.pool).await.expect("create");
    admin.pool.close().await;
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
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
        let part = reqwest::multipart::Part::bytes(photo.clone()).file_name(format!("p{i}.jpg"));
        let response = client
            .post(format!("{base}/api/upload"))
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .expect("upload");
        assert_eq!(response.status(), 201);
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
    if let Ok(admin) = pictor::db::Db::connect(ADMIN_URL).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
            .execute(&admin.pool)
            .await;
    }
}
