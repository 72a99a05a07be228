//! Any bytes as the multipart body of `POST /api/upload`, through Pictor's
//! own router (host check, admission, multipart parsing, text-field limits,
//! ingest to storage, header probe, the image row) on a SQLite database in a
//! temp folder. Every answer must be a deliberate one: never a 5xx other than
//! 503 (busy) or 507 (full), and an accepted image can be deleted again.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;

struct Target {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp folder");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let config = pictor::config::Config {
            database_url: format!("sqlite://{}?mode=rwc", dir.path().join("pictor.db").display()),
            storage_dir: dir.path().join("storage"),
            sqlite_synchronous: pictor::db::SqliteSynchronous::Normal,
            max_upload_bytes: 1 << 20,
            ..pictor::config::Config::defaults().expect("defaults")
        };
        let app = runtime.block_on(pictor::app::build(&config, "http://127.0.0.1")).expect("pictor builds");
        Target { router: app.router(), runtime, _dir: dir }
    })
}

fn request(method: &str, path: &str, body: Body) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_TYPE, "multipart/form-data; boundary=XYZ")
        .body(body)
        .expect("request")
}

fuzz_target!(|data: &[u8]| {
    let target = target();
    target.runtime.block_on(async {
        let answer = target.router.clone().oneshot(request("POST", "/api/upload", Body::from(data.to_vec()))).await;
        let answer = answer.expect("the router is infallible");
        let status = answer.status();
        let body = axum::body::to_bytes(answer.into_body(), 1 << 20).await.expect("the answer's body");
        let deliberate = [StatusCode::SERVICE_UNAVAILABLE, StatusCode::INSUFFICIENT_STORAGE];
        assert!(
            !status.is_server_error() || deliberate.contains(&status),
            "{status}: {}",
            String::from_utf8_lossy(&body)
        );
        if status == StatusCode::CREATED {
            let text = String::from_utf8_lossy(&body);
            let id = text.split("\"imageId\":\"").nth(1).and_then(|rest| rest.split('"').next()).expect("an imageId");
            let deleted = target.router.clone().oneshot(request("DELETE", &format!("/api/images/{id}"), Body::empty()));
            assert_eq!(deleted.await.expect("infallible").status(), StatusCode::NO_CONTENT);
        }
    });
});
