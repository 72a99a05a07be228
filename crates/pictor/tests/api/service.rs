//! The `pictor` binary as a process (migrate, serve, graceful stop) and the
//! admin token.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pictor::app::Overrides;
use pictor::config::Secret;

use crate::helpers::{spawn_app_with, testdata};

use crate::processes::command as pictor;

#[test]
fn migrate_creates_the_default_database_and_reports_the_schema_version_twice() {
    let dir = tempfile::tempdir().expect("temp dir");
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let latest = std::fs::read_dir(migrations).expect("migrations").count();
    for _ in 0..2 {
        let out = pictor(dir.path()).arg("migrate").output().expect("run pictor migrate");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(&format!("schema version {latest}")), "{stdout}");
    }
    assert!(dir.path().join("pictor-data/pictor.db").is_file(), "the default SQLite file");
}

#[test]
fn a_bad_setting_exits_2_with_the_variable_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = pictor(dir.path()).args(["worker", "--jpeg-quality", "0"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PICTOR_JPEG_QUALITY"));
    let closed = pictor(dir.path()).args(["worker"]).env("PICTOR_PUBLIC_READ", "false").output().expect("run");
    assert_eq!(closed.status.code(), Some(2), "closed reads without a token would shut everyone out");
    assert!(String::from_utf8_lossy(&closed.stderr).contains("PICTOR_PUBLIC_READ"));
}

#[tokio::test]
async fn serve_on_the_defaults_answers_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = pictor(dir.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pictor serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let address = loop {
        let line =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("pictor logs its address");
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().expect("address").to_owned();
        }
    };
    let health = reqwest::get(format!("http://{address}/healthz")).await.expect("healthz");
    assert_eq!(health.status(), 200);

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "pictor did not stop within 30 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    let logs: Vec<String> = rx.try_iter().collect();
    assert!(logs.iter().any(|l| l.contains("job runner stopped")), "the runner released its jobs: {logs:?}");
}

#[tokio::test]
async fn with_an_admin_token_mutations_and_admin_reads_need_it_and_public_reads_do_not() {
    let token = "s3cret-token";
    let app = spawn_app_with(|c| c.admin_token = Some(Secret::new(token)), Overrides::default(), false).await;
    let bytes = std::fs::read(testdata("mpl-grace-hopper.jpg")).expect("image");
    let refused = app.upload_bytes("a.jpg", bytes, None, None).await;
    assert_eq!(refused.status(), 401);
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unauthorized");

    let accepted = app.upload_file_with_token("mpl-grace-hopper.jpg", token).await;
    assert_eq!(accepted.status(), 201);

    assert_eq!(app.client.get(app.url("/api/images")).send().await.expect("list").status(), 200);
    assert_eq!(app.client.get(app.url("/api/admin/jobs")).send().await.expect("jobs").status(), 401);
    let wrong = app.client.get(app.url("/api/admin/jobs")).bearer_auth("wrong-token").send().await.expect("jobs");
    assert_eq!(wrong.status(), 401);
    assert_eq!(app.client.get(app.url("/api/admin/jobs")).bearer_auth(token).send().await.expect("jobs").status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn sqlite_commits_are_fully_synced_by_default_and_normal_when_configured() {
    use sqlx::Row;
    for (setting, pragma) in [(None, 2_i64), (Some(pictor::db::SqliteSynchronous::Normal), 1)] {
        let app = spawn_app_with(
            |c| {
                if let Some(s) = setting {
                    c.sqlite_synchronous = s;
                }
            },
            Overrides::default(),
            false,
        )
        .await;
        let row = sqlx::query("PRAGMA synchronous").fetch_one(&app.app.db.pool).await.expect("pragma");
        assert_eq!(row.try_get::<i64, _>(0).expect("value"), pragma, "{setting:?}");
        app.stop().await;
    }
}

/// The DNS-rebinding scenario: a page on another name that resolves to
/// Pictor's address sends the same-origin headers of its own name. Its
/// `Host` gives it away, and nothing it asks is answered.
#[tokio::test]
async fn a_request_for_an_unknown_host_is_refused_with_421_and_changes_nothing() {
    let app = spawn_app_with(|c| c.allowed_hosts = vec!["photos.example".into()], Overrides::default(), false).await;
    let id = app.upload_ok("mpl-grace-hopper.jpg").await;
    let port = app.base.rsplit(':').next().expect("port").to_owned();
    let as_host = |method: reqwest::Method, path: &str, host: &str| {
        let origin = format!("http://{host}");
        app.client
            .request(method, app.url(path))
            .header("host", host)
            .header("origin", origin)
            .header("sec-fetch-site", "same-origin")
    };
    let evil = format!("evil.example:{port}");

    let deleted = as_host(reqwest::Method::DELETE, &format!("/api/images/{id}"), &evil).send().await.expect("delete");
    let listed = as_host(reqwest::Method::GET, "/api/images", &evil).send().await.expect("list");
    let page = as_host(reqwest::Method::GET, "/", &evil).send().await.expect("page");

    assert_eq!(deleted.status(), 421);
    let body: serde_json::Value = deleted.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unknown_host", "{body}");
    assert_eq!((listed.status().as_u16(), page.status().as_u16()), (421, 421));
    let still_there = app.client.get(app.url(&format!("/api/images/{id}"))).send().await.expect("get");
    assert_eq!(still_there.status(), 200, "the refused delete changed nothing");
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}"), "photos.example".to_owned()] {
        let answered = as_host(reqwest::Method::GET, "/api/images", &host).send().await.expect("list");
        assert_eq!(answered.status(), 200, "{host}");
    }
    app.stop().await;
}

#[tokio::test]
async fn with_allowed_hosts_star_any_host_is_answered() {
    let app = spawn_app_with(|c| c.allowed_hosts = vec!["*".into()], Overrides::default(), false).await;

    let answered =
        app.client.get(app.url("/api/images")).header("host", "anything.example").send().await.expect("list");

    assert_eq!(answered.status(), 200);
    app.stop().await;
}
