//! Logs: `PICTOR_LOG_FORMAT=json` from the real binary (every line JSON, the
//! request id on the upload's lines, the job span's fields on the job's),
//! `X-Request-Id` kept or replaced, and a bad format refused.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{spawn_app, testdata};

use crate::processes::command as pictor;

/// Sends every line of `stream` to `tx`, tagged with the stream's name.
fn forward(
    stream: impl Read + Send + 'static,
    name: &'static str,
    tx: std::sync::mpsc::Sender<(&'static str, String)>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send((name, line)).is_err() {
                break;
            }
        }
    });
}

/// Waits for a JSON line with a top-level `address` field.
fn wait_for_address(rx: &Receiver<(&'static str, String)>, seen: &mut Vec<(&'static str, String)>) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("pictor logs its address");
        seen.push(line.clone());
        if let Ok(json) = serde_json::from_str::<Value>(&line.1)
            && let Some(address) = json["address"].as_str()
        {
            return address.to_owned();
        }
    }
}

fn stop(child: &mut Child) {
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            return;
        }
        assert!(Instant::now() < deadline, "pictor did not stop within 30 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The spans of a JSON log line, outermost first.
fn spans(line: &Value) -> Vec<&Value> {
    line["spans"].as_array().map(|s| s.iter().collect()).unwrap_or_default()
}

/// An output line of the process, tagged with its stream's name.
type Line = (&'static str, String);

/// `pictor serve` with JSON logs and `env`, its output lines forwarded:
/// the process, the lines seen up to its address, the rest, and the address.
fn serve_with_json_logs(dir: &std::path::Path, env: &[(&str, &str)]) -> (Child, Vec<Line>, Receiver<Line>, String) {
    let mut child = pictor(dir)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("PICTOR_LOG_FORMAT", "json")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pictor serve");
    let (tx, rx) = channel();
    forward(child.stdout.take().expect("stdout"), "stdout", tx.clone());
    forward(child.stderr.take().expect("stderr"), "stderr", tx);
    let mut seen = Vec::new();
    let address = wait_for_address(&rx, &mut seen);
    (child, seen, rx, address)
}

#[tokio::test]
async fn json_logs_parse_line_by_line_and_carry_the_request_id_and_the_jobs_ids() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, mut seen, rx, address) = serve_with_json_logs(dir.path(), &[]);
    let base = format!("http://{address}");
    let client = reqwest::Client::new();

    let bytes = std::fs::read(testdata("mpl-grace-hopper.jpg")).expect("image");
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name("a.jpg"));
    let uploaded = client.post(format!("{base}/api/upload")).multipart(form).send().await.expect("upload");
    assert_eq!(uploaded.status(), 201);
    let request_id = uploaded.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    let body: Value = uploaded.json().await.expect("json");
    let image_id = body["imageId"].as_str().expect("imageId").to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let image: Value =
            client.get(format!("{base}/api/images/{image_id}")).send().await.expect("get").json().await.expect("json");
        if image["status"] == "STORED" {
            break;
        }
        assert!(Instant::now() < deadline, "image not stored: {image}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop(&mut child);
    seen.extend(rx.iter());

    let lines: Vec<Value> = seen
        .iter()
        .map(|(stream, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("a {stream} line is not JSON ({e}): {line:?}"))
        })
        .collect();
    let upload_lines: Vec<&Value> =
        lines.iter().filter(|l| spans(l).iter().any(|s| s["name"] == "request" && s["uri"] == "/api/upload")).collect();
    assert!(!upload_lines.is_empty(), "no line about the upload request: {seen:#?}");
    for line in &upload_lines {
        let request = spans(line).into_iter().find(|s| s["name"] == "request").expect("request span");
        assert_eq!(request["request_id"], request_id.as_str(), "{line}");
    }
    let about_the_image = lines.iter().filter(|l| {
        spans(l).iter().any(|s| {
            s["name"] == "job"
                && s["image_id"] == image_id.as_str()
                && s["job_id"].as_str().is_some_and(|id| !id.is_empty())
                && s["job_type"].as_str().is_some_and(|t| !t.is_empty())
        })
    });
    assert!(about_the_image.count() > 0, "no line with the job span of image {image_id}: {seen:#?}");
}

#[tokio::test]
async fn an_unsafe_incoming_request_id_is_replaced_and_a_safe_one_is_echoed() {
    let app = spawn_app().await;
    let get = |id: Option<&str>| {
        let mut request = app.client.get(app.url("/healthz"));
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };
    let echoed = |r: &reqwest::Response| r.headers()["x-request-id"].to_str().expect("ascii").to_owned();

    let safe = get(Some("client-id_1.2")).await.expect("get");
    let long = "a".repeat(200);
    let too_long = get(Some(&long)).await.expect("get");
    let spaced = get(Some("a b")).await.expect("get");
    let quoted = get(Some("a\"}{\"level\":\"ERROR")).await.expect("get");
    let none = get(None).await.expect("get");

    assert_eq!(echoed(&safe), "client-id_1.2");
    for replaced in [&too_long, &spaced, &quoted, &none] {
        let id = echoed(replaced);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "a fresh UUID, not {id:?}");
    }
    assert_ne!(echoed(&too_long), echoed(&spaced), "each request its own id");
    app.stop().await;
}

#[test]
fn a_bad_log_format_exits_2_naming_the_variable() {
    let dir = tempfile::tempdir().expect("temp dir");
    // `migrate` shares the log settings of `serve` and `worker` and ends on its own if they are wrongly accepted.
    for (env, args) in [(Some("xml"), vec!["migrate"]), (None, vec!["migrate", "--log-format", "yaml"])] {
        let mut cmd = pictor(dir.path());
        cmd.args(&args);
        if let Some(value) = env {
            cmd.env("PICTOR_LOG_FORMAT", value);
        }
        let out = cmd.output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("PICTOR_LOG_FORMAT"), "{args:?}: {stderr}");
    }
}

#[test]
fn in_json_a_start_up_error_is_a_json_line_too() {
    let dir = tempfile::tempdir().expect("temp dir");

    let out = pictor(dir.path())
        .args(["worker", "--jpeg-quality", "0"])
        .env("PICTOR_LOG_FORMAT", "json")
        .output()
        .expect("run");

    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last: Value = serde_json::from_str(stderr.lines().last().expect("a line")).expect("JSON");
    assert_eq!(last["level"], "ERROR");
    assert!(last["error"].as_str().expect("error").contains("PICTOR_JPEG_QUALITY"), "{last}");
}

/// An upload turned away under load (503 `too_busy`) is an expected answer:
/// its response line is INFO, and no ERROR line buries real failures.
#[tokio::test]
async fn a_deliberate_503_is_logged_without_an_error_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, mut seen, rx, address) =
        serve_with_json_logs(dir.path(), &[("PICTOR_MAX_CONCURRENT_UPLOADS", "1")]);
    let stalled = crate::helpers::hold_an_upload_slot(&address).await;

    let bytes = std::fs::read(testdata("mpl-grace-hopper.jpg")).expect("image");
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name("a.jpg"));
    let busy = reqwest::Client::new().post(format!("http://{address}/api/upload")).multipart(form).send().await;
    assert_eq!(busy.expect("answered").status(), 503);
    drop(stalled);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop(&mut child);
    seen.extend(rx.try_iter());

    let lines: Vec<Value> = seen.iter().filter_map(|(_, l)| serde_json::from_str(l).ok()).collect();
    let answered_503 = lines.iter().any(|l| l["level"] == "INFO" && l["status"].as_u64() == Some(503));
    assert!(answered_503, "the 503's response line: {seen:?}");
    let errors: Vec<&Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert!(errors.is_empty(), "no ERROR line for a deliberate 503: {errors:?}");
}
