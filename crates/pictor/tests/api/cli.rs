//! The client subcommands of the `pictor` binary, run as processes against a
//! spawned server: exit codes, summaries, JSON output, readable errors.

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pictor::app::Overrides;
use pictor_client::models::{ImageList, ImageStatus, JobList, JobStatus};

use crate::helpers::{TestApp, spawn_app, spawn_app_with, testdata, with_breakable_thumbnails};

/// Runs `pictor ARGS...` in `dir` with no server settings from the
/// environment, off the async runtime so that the spawned server keeps serving.
async fn pictor(dir: &Path, args: &[&str]) -> Output {
    let dir = dir.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || crate::processes::command(&dir).args(args).output().expect("run pictor"))
        .await
        .expect("pictor process")
}

/// `pictor ARGS... --server BASE`.
async fn pictor_at(app: &TestApp, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--server", app.base.as_str()]);
    pictor(app.dir.path(), &all).await
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Stderr holds no panic and no Debug dump, only readable text.
fn assert_readable(text: &str) {
    for dump in ["panicked", "RUST_BACKTRACE", "Error {", "Os {", "kind:"] {
        assert!(!text.contains(dump), "unreadable error output: {text}");
    }
}

/// A folder of three small photos and a text file.
fn photo_folder(root: &Path) -> std::path::PathBuf {
    let folder = root.join("photos");
    std::fs::create_dir_all(&folder).expect("photo folder");
    for name in ["mpl-grace-hopper.jpg", "sklearn-china.jpg", "tiny-microaneurysms.png"] {
        std::fs::copy(testdata(name), folder.join(name)).expect("copy photo");
    }
    std::fs::write(folder.join("notes.txt"), "shot on a sunny day\n").expect("text file");
    folder
}

#[tokio::test]
async fn uploading_a_folder_with_wait_stores_every_photo_skips_the_text_file_and_exits_0() {
    let app = spawn_app().await;
    let folder = photo_folder(app.dir.path());

    let out = pictor_at(&app, &["upload", folder.to_str().expect("utf-8"), "--wait", "--collection", "trip"]).await;

    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("note: skipping") && stderr(&out).contains("notes.txt"), "{}", stderr(&out));
    let summary = stdout(&out);
    assert!(summary.contains("3 stored, 0 uploaded, 0 failed, 1 skipped"), "{summary}");
    for name in ["mpl-grace-hopper.jpg", "sklearn-china.jpg", "tiny-microaneurysms.png"] {
        let line = summary.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{name} in {summary}"));
        assert!(line.contains("stored"), "{line}");
    }
    let list: ImageList =
        app.client.get(app.url("/api/images?collection=trip")).send().await.expect("list").json().await.expect("json");
    assert_eq!(list.count, 3);
    assert!(list.data.iter().all(|i| i.status == ImageStatus::Stored), "{:?}", list.data);
    app.stop().await;
}

#[tokio::test]
async fn a_bad_file_gives_exit_1_naming_the_file_and_the_reason() {
    let app = spawn_app().await;
    let text = app.dir.path().join("holiday.jpg");
    std::fs::copy(testdata("bad-text-named.jpg"), &text).expect("copy");
    let truncated = app.dir.path().join("bridge.jpg");
    std::fs::copy(testdata("bad-truncated-bridge.jpg"), &truncated).expect("copy");
    let good = app.dir.path().join("grace.jpg");
    std::fs::copy(testdata("mpl-grace-hopper.jpg"), &good).expect("copy");

    let out = pictor_at(&app, &["upload", "holiday.jpg", "bridge.jpg", "grace.jpg", "--wait"]).await;

    assert_eq!(out.status.code(), Some(1), "{}\n{}", stdout(&out), stderr(&out));
    let summary = stdout(&out);
    let line = |name: &str| summary.lines().find(|l| l.contains(name)).unwrap_or_default().to_owned();
    assert!(line("holiday.jpg").contains("failed") && line("holiday.jpg").contains("not an image"), "{summary}");
    assert!(line("bridge.jpg").contains("failed") && line("bridge.jpg").contains("ends early"), "{summary}");
    assert!(line("grace.jpg").contains("stored"), "{summary}");
    assert!(summary.contains("1 stored, 0 uploaded, 2 failed, 0 skipped"), "{summary}");
    assert_readable(&stderr(&out));
    app.stop().await;
}

#[tokio::test]
async fn images_json_parses_and_image_shows_one_with_its_asset_urls() {
    let app = spawn_app().await;
    let id = app.upload_ok("mpl-grace-hopper.jpg").await;
    app.wait_terminal(&id, Duration::from_secs(60)).await;

    let out = pictor_at(&app, &["images", "--json", "--status", "stored"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let list: ImageList = serde_json::from_slice(&out.stdout).expect("images --json is the image list");
    assert_eq!(list.data.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), [id.as_str()]);

    let table = pictor_at(&app, &["images"]).await;
    assert!(stdout(&table).contains(&id) && stdout(&table).contains("images 1–1 of 1"), "{}", stdout(&table));
    let one = pictor_at(&app, &["image", &id]).await;
    assert_eq!(one.status.code(), Some(0), "{}", stderr(&one));
    assert!(stdout(&one).contains(&format!("{}/assets/", app.base)), "{}", stdout(&one));
    assert!(stdout(&one).contains("STORED (Ready)"), "{}", stdout(&one));
    app.stop().await;
}

#[tokio::test]
async fn jobs_status_failed_lists_the_failed_job_and_retry_requeues_it() {
    let broken = Arc::new(AtomicBool::new(true));
    let app = spawn_app_with(|_| {}, with_breakable_thumbnails(&broken), true).await;
    let id = app.upload_ok("mpl-grace-hopper.jpg").await;
    assert_eq!(app.wait_terminal(&id, Duration::from_secs(60)).await.status, ImageStatus::Failed);

    let listed = pictor_at(&app, &["jobs", "--status", "FAILED"]).await;
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let failed = app.jobs("status=FAILED").await;
    let job_id = failed.jobs[0].id;
    let row = stdout(&listed).lines().find(|l| l.starts_with(&format!("{job_id} "))).unwrap_or_default().to_owned();
    assert!(row.contains("THUMBNAIL_GENERATION") && row.contains("injected fault"), "{}", stdout(&listed));
    let as_json = pictor_at(&app, &["jobs", "--status", "failed", "--json"]).await;
    let parsed: JobList = serde_json::from_slice(&as_json.stdout).expect("jobs --json is the job list");
    assert_eq!(parsed.jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [job_id]);

    broken.store(false, Ordering::SeqCst);
    let retried = pictor_at(&app, &["retry", &job_id.to_string()]).await;

    assert_eq!(retried.status.code(), Some(0), "{}", stderr(&retried));
    assert!(
        stdout(&retried).contains(&format!("job {job_id} (THUMBNAIL_GENERATION) re-queued")),
        "{}",
        stdout(&retried)
    );
    assert_eq!(app.wait_terminal(&id, Duration::from_secs(60)).await.status, ImageStatus::Stored);
    assert_eq!(app.job(job_id).await.status, JobStatus::Completed);
    let again = pictor_at(&app, &["retry", &job_id.to_string()]).await;
    assert_eq!(again.status.code(), Some(1), "a completed job cannot be retried");
    assert!(stderr(&again).contains("wrong_state"), "{}", stderr(&again));
    let all = pictor_at(&app, &["retry", "--all-failed", "--json"]).await;
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&all.stdout).expect("json")["retried"], 0);
    app.stop().await;
}

#[tokio::test]
async fn cancel_edit_watch_and_delete_steer_an_image_from_the_terminal() {
    let app = spawn_app_with(|_| {}, Overrides::default(), false).await;
    let id = app.upload_ok("mpl-grace-hopper.jpg").await;
    let job_id = app.jobs("status=PENDING").await.jobs[0].id;

    let cancelled = pictor_at(&app, &["cancel", &job_id.to_string()]).await;
    assert_eq!(cancelled.status.code(), Some(0), "{}", stderr(&cancelled));
    assert_eq!(app.job(job_id).await.status, JobStatus::Cancelled);
    let shown = pictor_at(&app, &["job", &job_id.to_string()]).await;
    assert!(stdout(&shown).contains("CANCELLED"), "{}", stdout(&shown));

    let edited = pictor_at(&app, &["edit", &id, "--title", "Grace Hopper", "--collection", "navy"]).await;
    assert_eq!(edited.status.code(), Some(0), "{}", stderr(&edited));
    let image = app.image(&id).await;
    assert_eq!((image.title.as_str(), image.collection.as_deref()), ("Grace Hopper", Some("navy")));
    let nothing = pictor_at(&app, &["edit", &id]).await;
    assert_eq!(nothing.status.code(), Some(2), "edit needs --title or --collection");

    let deleted = pictor_at(&app, &["delete", &id]).await;
    assert_eq!(deleted.status.code(), Some(0), "{}", stderr(&deleted));
    let gone = pictor_at(&app, &["image", &id]).await;
    assert_eq!(gone.status.code(), Some(1));
    assert!(stderr(&gone).contains("not found"), "{}", stderr(&gone));
    app.stop().await;
}

#[tokio::test]
async fn watch_follows_an_image_until_it_is_stored() {
    let app = spawn_app().await;
    let id = app.upload_ok("sklearn-china.jpg").await;

    let out = pictor_at(&app, &["watch", &id]).await;

    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let last = stdout(&out).lines().last().unwrap_or_default().to_owned();
    assert!(last.contains("STORED") && last.contains("Ready"), "{}", stdout(&out));
    app.stop().await;
}

/// `pictor watch` without an id prints the jobs per state as they change,
/// one JSON line each, until it is stopped.
#[tokio::test]
async fn watch_without_an_id_follows_the_queue_until_stopped() {
    let app = spawn_app().await;
    let mut child = crate::processes::command(app.dir.path())
        .args(["watch", "--json", "--interval-ms", "100", "--server", app.base.as_str()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("pictor watch");
    let stdout = child.stdout.take().expect("stdout");
    // Read on a thread of its own: the server runs on this test's runtime.
    let (lines, mut received) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut next = async |what: &str| {
        tokio::time::timeout(Duration::from_secs(60), received.recv())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no line from pictor watch ({what})"))
    };
    let completed = |line: &str| -> u64 {
        let value: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        value["jobs"]["COMPLETED"].as_u64().unwrap_or_else(|| panic!("no COMPLETED count: {line}"))
    };

    let first = next("the empty queue").await;
    assert_eq!(completed(&first), 0, "{first}");
    let id = app.upload_ok("sklearn-china.jpg").await;
    assert_eq!(app.wait_terminal(&id, Duration::from_secs(60)).await.status, ImageStatus::Stored);
    // The image's three jobs done: a line says so (lines come only on changes).
    let mut line = next("a change").await;
    while completed(&line) < 3 {
        line = next("the jobs completing").await;
    }
    assert_eq!(completed(&line), 3, "{line}");
    assert!(child.try_wait().expect("status").is_none(), "watch keeps following the queue");
    child.kill().expect("stop watch");
    let _ = child.wait();
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_server_address_gives_exit_2_with_a_readable_message() {
    let dir = tempfile::tempdir().expect("temp dir");

    let unreachable = pictor(dir.path(), &["images", "--server", "http://127.0.0.1:1"]).await;
    let invalid = pictor(dir.path(), &["jobs", "--server", "not a url"]).await;
    let upload = pictor(dir.path(), &["upload", "--server", "http://127.0.0.1:1", "x.jpg"]).await;

    assert_eq!(unreachable.status.code(), Some(2));
    assert!(stderr(&unreachable).starts_with("pictor: cannot reach the Pictor server at http://127.0.0.1:1"));
    assert!(stderr(&unreachable).contains("Connection refused"), "{}", stderr(&unreachable));
    assert_readable(&stderr(&unreachable));
    assert_eq!(invalid.status.code(), Some(2));
    assert!(stderr(&invalid).contains("invalid server address"), "{}", stderr(&invalid));
    assert_eq!(upload.status.code(), Some(1), "a missing file is an item that failed: {}", stdout(&upload));
    assert!(stdout(&upload).contains("x.jpg") && stdout(&upload).contains("cannot read"), "{}", stdout(&upload));
}

#[tokio::test]
async fn usage_errors_and_a_refused_token_exit_2() {
    let app = spawn_app_with(
        |c| c.admin_token = Some("s3cret-admin-token".parse().expect("token")),
        Overrides::default(),
        false,
    )
    .await;

    let no_id = pictor_at(&app, &["retry"]).await;
    let both = pictor_at(&app, &["retry", "1", "--all-failed"]).await;
    let bad_status = pictor_at(&app, &["jobs", "--status", "DONE"]).await;
    let no_token = pictor_at(&app, &["jobs"]).await;
    let with_token = pictor_at(&app, &["jobs", "--token", "s3cret-admin-token"]).await;

    assert_eq!(no_id.status.code(), Some(2));
    assert_eq!(both.status.code(), Some(2));
    assert_eq!(bad_status.status.code(), Some(2));
    assert!(stderr(&bad_status).contains("PENDING"), "the accepted values are listed: {}", stderr(&bad_status));
    assert_eq!(no_token.status.code(), Some(2));
    assert!(stderr(&no_token).contains("admin token"), "{}", stderr(&no_token));
    assert_eq!(with_token.status.code(), Some(0), "{}", stderr(&with_token));
    app.stop().await;
}

#[tokio::test]
async fn doctor_passes_on_a_working_setup_and_fails_on_unwritable_storage_or_a_newer_schema() {
    let app = spawn_app().await;
    let db = app.database_url.clone();
    let storage = app.dir.path().join("storage");

    let ok = pictor_at(
        &app,
        &["doctor", "--json", "--database-url", &db, "--storage-dir", storage.to_str().expect("utf-8")],
    )
    .await;

    assert_eq!(ok.status.code(), Some(0), "{}\n{}", stdout(&ok), stderr(&ok));
    let checks: Vec<serde_json::Value> = serde_json::from_slice(&ok.stdout).expect("doctor --json");
    let names: Vec<&str> = checks.iter().filter_map(|c| c["check"].as_str()).collect();
    assert_eq!(names, ["settings", "database", "storage", "free disk", "limits", "avif/heic", "server"]);
    assert!(checks.iter().all(|c| c["result"] != "fail"), "{checks:?}");
    assert!(checks[1]["detail"].as_str().is_some_and(|d| d.contains("schema version")), "{checks:?}");

    let a_file = app.dir.path().join("not-a-folder");
    std::fs::write(&a_file, "x").expect("file");
    let bad =
        pictor_at(&app, &["doctor", "--database-url", &db, "--storage-dir", a_file.to_str().expect("utf-8")]).await;
    assert_eq!(bad.status.code(), Some(1), "{}", stdout(&bad));
    let report = stdout(&bad);
    assert!(report.lines().any(|l| l.starts_with("storage") && l.contains("FAIL")), "{report}");
    assert!(report.contains("to fix:") && report.contains("STORAGE_DIR"), "{report}");

    // A database migrated by a newer Pictor than this one.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         SELECT 9999, 'from the future', success, checksum, execution_time FROM _sqlx_migrations WHERE version = 1",
    )
    .execute(&app.app.db.pool)
    .await
    .expect("a future migration");
    let ahead = pictor_at(
        &app,
        &["doctor", "--json", "--database-url", &db, "--storage-dir", storage.to_str().expect("utf-8")],
    )
    .await;
    assert_eq!(ahead.status.code(), Some(1), "{}", stdout(&ahead));
    let checks: Vec<serde_json::Value> = serde_json::from_slice(&ahead.stdout).expect("doctor --json");
    assert_eq!(checks[1]["result"], "fail", "{checks:?}");
    assert!(checks[1]["detail"].as_str().is_some_and(|d| d.contains("9999") && d.contains("newer")), "{checks:?}");
    app.stop().await;
}
