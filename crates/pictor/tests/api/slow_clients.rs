//! Slow and stalled clients: a connection that trickles its headers, an
//! upload whose body stops, and a graceful shutdown with such clients still
//! connected all end within their deadlines.

use std::time::{Duration, Instant};

use pictor::app::Overrides;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, count_files, spawn_app_with};

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://")).await.expect("connect")
}

/// Reads until the server closes the connection or `limit` passes; the
/// bytes read, or `None` when the connection was still open at the limit.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buffer = [0_u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => bytes.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off_at_the_header_deadline() {
    let app = spawn_app_with(|c| c.header_timeout_secs = 2, Overrides::default(), false).await;
    let mut stream = connect(&app).await;
    let started = Instant::now();

    // One header byte a second: the connection never completes a request.
    let trickle = async {
        for byte in b"GET /api/images HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaa" {
            if stream.write_all(&[*byte]).await.is_err() {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        started.elapsed()
    };
    let cut_after = tokio::time::timeout(Duration::from_secs(20), trickle).await.expect("the trickle ran on");

    assert!(cut_after < Duration::from_secs(10), "the server let headers trickle for {cut_after:?}");
    app.stop().await;
}

#[tokio::test]
async fn an_upload_whose_body_stalls_is_ended_and_leaves_no_file() {
    let app = spawn_app_with(|c| c.body_idle_timeout_secs = 2, Overrides::default(), false).await;
    let mut stream = connect(&app).await;
    let head = "POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                Content-Type: multipart/form-data; boundary=XYZ\r\nContent-Length: 1000000\r\n\r\n\
                --XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("send the start");
    stream.write_all(&[0xFF, 0xD8, 0xFF, 0xE0]).await.expect("send some bytes");

    // Then nothing more.
    let answer = read_until_closed(&mut stream, Duration::from_secs(15)).await;

    let answer = answer.expect("the stalled upload was still open after 15 s");
    assert!(answer.starts_with("HTTP/1.1 4"), "a client error for the stalled body: {answer:?}");
    assert_eq!(count_files(&app.dir.path().join("storage")), 0, "nothing kept of the stalled upload");
    app.stop().await;
}

#[tokio::test]
async fn a_graceful_shutdown_ends_at_its_deadline_with_a_slow_upload_still_open() {
    let app = spawn_app_with(
        |c| {
            c.shutdown_timeout_secs = 2;
            c.body_idle_timeout_secs = 60;
        },
        Overrides::default(),
        true,
    )
    .await;
    let mut stream = connect(&app).await;
    let head = "POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                Content-Type: multipart/form-data; boundary=XYZ\r\nContent-Length: 1000000\r\n\r\n\
                --XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("send the start");
    let photo = std::fs::read(crate::helpers::testdata("mpl-grace-hopper.jpg")).expect("photo");
    let trickle = tokio::spawn(async move {
        // A real photo, a byte a second: far slower than it needs, never idle.
        for byte in photo {
            if stream.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });

    let started = Instant::now();
    let ended = app.stop_within(Duration::from_secs(15)).await;

    assert!(ended, "the server still waited for the slow upload 15 s after the shutdown began");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    trickle.abort();
}

/// Starts an upload declaring `length` bytes and sends only its start.
async fn stalled_upload(app: &TestApp, length: u64) -> TcpStream {
    let mut stream = connect(app).await;
    let head = format!(
        "POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: multipart/form-data; boundary=XYZ\r\nContent-Length: {length}\r\n\r\n\
         --XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("send the start");
    stream.write_all(&[0xFF, 0xD8, 0xFF]).await.expect("send some bytes");
    stream
}

/// Uploads a photo and asserts a 503 `too_busy` asking to retry later.
async fn assert_turned_away(app: &TestApp, why: &str) {
    let response = app.upload_file("mpl-grace-hopper.jpg").await;
    assert_eq!(response.status(), 503, "{why}");
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"), "{why}");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "too_busy", "{why}: {body}");
}

/// Waits until an upload is admitted again (the stalled one's connection
/// was closed and its handler ended).
async fn assert_admitted_again(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = app.upload_file("mpl-grace-hopper.jpg").await;
        if response.status() == 201 {
            return;
        }
        assert_eq!(response.status(), 503);
        assert!(Instant::now() < deadline, "uploads still refused 10 s after the stalled one was dropped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn past_the_concurrent_upload_cap_uploads_get_503_with_retry_after_until_a_slot_frees() {
    let app = spawn_app_with(|c| c.max_concurrent_uploads = 1, Overrides::default(), false).await;
    let stalled = stalled_upload(&app, 500_000).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert_turned_away(&app, "the one slot is taken").await;

    drop(stalled);
    assert_admitted_again(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn past_the_bytes_in_flight_cap_uploads_get_503_until_the_bytes_are_given_back() {
    let mib = 1024 * 1024;
    let app =
        spawn_app_with(|c| (c.max_upload_bytes, c.max_temp_bytes) = (mib, mib), Overrides::default(), false).await;
    let stalled = stalled_upload(&app, 1_000_000).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert_turned_away(&app, "1 MB of the 1 MiB is held").await;

    drop(stalled);
    assert_admitted_again(&app).await;
    app.stop().await;
}

/// Sends a whole multipart upload of `body_bytes` bytes before reading
/// anything, as simple clients do, then reads the answer: the write must go
/// through and the answer must arrive, even when the server refuses the
/// upload without reading its body.
async fn upload_all_then_read(app: &TestApp, body_bytes: usize) -> String {
    let mut stream = connect(app).await;
    let start = "--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n";
    let end = "\r\n--XYZ--\r\n";
    let length = start.len() + body_bytes + end.len();
    let head = format!(
        "POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Type: multipart/form-data; boundary=XYZ\r\nContent-Length: {length}\r\n\r\n{start}"
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
    request.resize(request.len() + body_bytes - 4, b'x');
    request.extend_from_slice(end.as_bytes());
    stream.write_all(&request).await.expect("the whole request is taken, refused or not");
    read_until_closed(&mut stream, Duration::from_secs(15)).await.expect("the connection closes after the answer")
}

#[tokio::test]
async fn a_client_that_sends_its_whole_upload_before_reading_gets_the_busy_answer() {
    let app = spawn_app_with(|c| c.max_concurrent_uploads = 1, Overrides::default(), false).await;
    let stalled = crate::helpers::hold_an_upload_slot(app.base.trim_start_matches("http://")).await;

    // 8 MiB: far more than the socket buffers hold, so without a lingering
    // close the server's close resets the connection under the client.
    let answer = upload_all_then_read(&app, 8 << 20).await;

    assert!(answer.starts_with("HTTP/1.1 503"), "{:?}", &answer[..answer.len().min(200)]);
    assert!(answer.contains("too_busy"), "{answer:?}");
    drop(stalled);
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_sends_a_too_large_upload_before_reading_gets_the_413() {
    let app = spawn_app_with(|c| c.max_upload_bytes = 1 << 20, Overrides::default(), false).await;

    let answer = upload_all_then_read(&app, 8 << 20).await;

    assert!(answer.starts_with("HTTP/1.1 413"), "{:?}", &answer[..answer.len().min(200)]);
    assert!(answer.contains("file_too_large"), "{answer:?}");
    assert_eq!(count_files(&app.dir.path().join("storage")), 0, "nothing kept of the refused upload");
    app.stop().await;
}
