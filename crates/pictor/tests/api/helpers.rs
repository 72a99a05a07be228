//! Test support: a Pictor started through `app::build_with` + `app::serve`
//! on a random port, with typed request helpers, plus test data and JPEG
//! inspection.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pictor::app::{self, App, Overrides};
use pictor::clock::{ManualClock, Millis};
use pictor::config::Config;
use pictor::handlers::ImageEffect;
use pictor::queue::handler::{HandlerError, JobHandler};
use pictor::shutdown::{self, ShutdownTrigger};
use pictor_client::models::{Image, ImageStatus, JobDetail, JobList};
use reqwest::multipart::{Form, Part};
use tempfile::TempDir;

/// The test images, in the repository (`testdata/images`).
pub fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/images")
}

/// One shared test image.
pub fn testdata(name: &str) -> PathBuf {
    testdata_dir().join(name)
}

/// A row of MANIFEST.md.
#[derive(Debug, Clone)]
pub struct ManifestEntry {
    /// File name.
    pub file: String,
    /// `photo`, `special` or `bad`.
    pub role: String,
}

/// The rows of the test images' MANIFEST.md.
pub fn manifest() -> Vec<ManifestEntry> {
    let text = std::fs::read_to_string(testdata_dir().join("MANIFEST.md")).expect("testdata/images/MANIFEST.md");
    text.lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            ManifestEntry { file: cells[0].trim_matches('`').to_owned(), role: cells[1].to_owned() }
        })
        .collect()
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file in the test's temp folder.
    Sqlite,
    /// A fresh database on the PostgreSQL server of `PICTOR_TEST_POSTGRES_URL`
    /// (default `postgres://postgres@127.0.0.1:5432/postgres`).
    Postgres,
}

/// The PostgreSQL server tests create their databases on.
fn postgres_admin_url() -> String {
    std::env::var("PICTOR_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database URL for a test, or `None` when PostgreSQL is not
/// reachable on a machine that is not CI (the test is then skipped, saying
/// so). On CI an unreachable PostgreSQL fails the test.
pub async fn fresh_database(backend: Backend, dir: &Path) -> Option<String> {
    match backend {
        Backend::Sqlite => Some(format!("sqlite://{}", dir.join("pictor.db").display())),
        Backend::Postgres => {
            let admin_url = postgres_admin_url();
            let admin = match pictor::db::Db::connect(&admin_url).await {
                Ok(db) => db,
                Err(e) => {
                    crate::skip::skip(
                        "the PostgreSQL half of the both_backends! tests",
                        &format!("PostgreSQL not reachable at {admin_url}: {e}"),
                    );
                    return None;
                }
            };
            let name = format!("pictor_test_{}", uuid::Uuid::now_v7().simple());
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin.pool)
                .await
                .expect("create the test database");
            admin.pool.close().await;
            let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(b, _)| b);
            Some(format!("{base}/{name}"))
        }
    }
}

/// Drops a test's PostgreSQL database (SQLite files go with the temp folder).
pub async fn drop_database(url: &str) {
    let Some((_, name)) = url.rsplit_once('/') else {
        return;
    };
    if !url.starts_with("postgres") || !name.starts_with("pictor_test_") {
        return;
    }
    if let Ok(admin) = pictor::db::Db::connect(&postgres_admin_url()).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
            .execute(&admin.pool)
            .await;
        admin.pool.close().await;
    }
}

/// A running Pictor and what it needs.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The built application (database, queue, runner).
    pub app: App,
    /// Temp folder holding the database and storage.
    pub dir: TempDir,
    /// The database it runs on.
    pub database_url: String,
    trigger: ShutdownTrigger,
    server: tokio::task::JoinHandle<Result<(), app::RunError>>,
}

/// A config on a fresh SQLite file and storage folder under `dir`.
pub fn test_config(dir: &Path) -> Config {
    Config {
        database_url: format!("sqlite://{}", dir.join("pictor.db").display()),
        storage_dir: dir.join("storage"),
        api_base: None,
        runner_poll_interval_ms: 200,
        ..Config::defaults().expect("default settings")
    }
}

/// `overrides` with the image sandbox's children started from the `pictor`
/// binary cargo built beside this test (unless a test chose another): the
/// tests run image work in child processes, as `serve` does by default.
pub fn with_sandbox_binary(mut overrides: Overrides) -> Overrides {
    overrides.sandbox_executable.get_or_insert_with(|| PathBuf::from(env!("CARGO_BIN_EXE_pictor")));
    overrides
}

/// Pictor with the runner, on defaults, on SQLite.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}, Overrides::default(), true).await
}

/// Pictor with changed settings, test replacements, and with or without
/// its runner, on SQLite.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Config), overrides: Overrides, with_runner: bool) -> TestApp {
    spawn_app_on(Backend::Sqlite, configure, overrides, with_runner).await.expect("SQLite is always there")
}

/// Pictor on a fresh database of `backend`; `None` when that backend is not
/// available here (see [`fresh_database`]).
pub async fn spawn_app_on(
    backend: Backend,
    configure: impl FnOnce(&mut Config),
    overrides: Overrides,
    with_runner: bool,
) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = fresh_database(backend, dir.path()).await?;
    let mut config = Config { database_url: database_url.clone(), ..test_config(dir.path()) };
    configure(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = app::build_with(&config, &base, with_sandbox_binary(overrides)).await.expect("pictor builds");
    let (trigger, shutdown) = shutdown::channel();
    let server = tokio::spawn(app::serve(listener, app.clone(), with_runner, shutdown));
    Some(TestApp { base, client: reqwest::Client::new(), app, dir, database_url, trigger, server })
}

impl TestApp {
    /// Stops the server and runner and waits for them.
    pub async fn stop(self) {
        self.stop_within(Duration::from_secs(30)).await;
    }

    /// Stops it; true when the server and runner ended within `limit`.
    pub async fn stop_within(self, limit: Duration) -> bool {
        self.trigger.trigger();
        let ended = tokio::time::timeout(limit, self.server).await.is_ok();
        self.app.db.pool.close().await;
        drop_database(&self.database_url).await;
        ended
    }

    /// Stops this server and runner and starts another on the same database
    /// and storage with changed settings (an operator's restart after
    /// editing the configuration), with or without its runner.
    pub async fn restart_with(self, configure: impl FnOnce(&mut Config), with_runner: bool) -> TestApp {
        self.trigger.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(30), self.server).await;
        self.app.db.pool.close().await;
        let mut config = Config { database_url: self.database_url.clone(), ..test_config(self.dir.path()) };
        configure(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let app = app::build_with(&config, &base, with_sandbox_binary(Overrides::default()))
            .await
            .expect("pictor builds again");
        let (trigger, shutdown) = shutdown::channel();
        let server = tokio::spawn(app::serve(listener, app.clone(), with_runner, shutdown));
        TestApp { base, client: self.client, app, dir: self.dir, database_url: self.database_url, trigger, server }
    }

    /// Absolute URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Uploads bytes as `file`, with optional title and collection.
    pub async fn upload_bytes(
        &self,
        name: &str,
        bytes: Vec<u8>,
        title: Option<&str>,
        collection: Option<&str>,
    ) -> reqwest::Response {
        let mut form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()));
        if let Some(t) = title {
            form = form.text("title", t.to_owned());
        }
        if let Some(c) = collection {
            form = form.text("collection", c.to_owned());
        }
        self.client.post(self.url("/api/upload")).multipart(form).send().await.expect("upload request")
    }

    /// Uploads a shared test image with `Authorization: Bearer token`.
    pub async fn upload_file_with_token(&self, name: &str, token: &str) -> reqwest::Response {
        let bytes = std::fs::read(testdata(name)).expect("test image");
        let form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_owned()));
        self.client.post(self.url("/api/upload")).bearer_auth(token).multipart(form).send().await.expect("upload")
    }

    /// Uploads a shared test image.
    pub async fn upload_file(&self, name: &str) -> reqwest::Response {
        let bytes = std::fs::read(testdata(name)).expect("test image");
        self.upload_bytes(name, bytes, None, None).await
    }

    /// Uploads and returns the new image id, asserting 201.
    pub async fn upload_ok(&self, name: &str) -> String {
        let response = self.upload_file(name).await;
        let status = response.status();
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(status, 201, "{name}: {body}");
        body["imageId"].as_str().expect("imageId").to_owned()
    }

    /// `GET /api/images/:id`.
    pub async fn image(&self, id: &str) -> Image {
        let response = self.client.get(self.url(&format!("/api/images/{id}"))).send().await.expect("get image");
        assert_eq!(response.status(), 200);
        response.json().await.expect("image json")
    }

    /// `GET /api/admin/jobs?...`.
    pub async fn jobs(&self, query: &str) -> JobList {
        let response = self.client.get(self.url(&format!("/api/admin/jobs?{query}"))).send().await.expect("jobs");
        assert_eq!(response.status(), 200);
        response.json().await.expect("jobs json")
    }

    /// `GET /api/admin/jobs/:id`.
    pub async fn job(&self, id: i64) -> JobDetail {
        let response = self.client.get(self.url(&format!("/api/admin/jobs/{id}"))).send().await.expect("job");
        assert_eq!(response.status(), 200);
        response.json().await.expect("job json")
    }

    /// Waits until the image is STORED or FAILED.
    pub async fn wait_terminal(&self, id: &str, timeout: Duration) -> Image {
        let deadline = Instant::now() + timeout;
        loop {
            let image = self.image(id).await;
            if matches!(image.status, ImageStatus::Stored | ImageStatus::Failed) {
                return image;
            }
            assert!(Instant::now() < deadline, "image {id} still {:?} after {timeout:?}: {image:?}", image.status);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET` a path's bytes, asserting 200.
    pub async fn bytes(&self, path: &str) -> Vec<u8> {
        let response = self.client.get(self.url(path)).send().await.expect("get");
        assert_eq!(response.status(), 200, "GET {path}");
        response.bytes().await.expect("body").to_vec()
    }
}

/// What a JPEG's markers say.
#[derive(Debug, Default)]
pub struct JpegInfo {
    /// Width from the SOF.
    pub width: u32,
    /// Height from the SOF.
    pub height: u32,
    /// SOF2 (progressive).
    pub progressive: bool,
    /// APPn/COM segments other than JFIF (APP0), by marker and first bytes.
    pub metadata: Vec<String>,
}

/// Reads a JPEG's marker segments up to the first scan.
pub fn jpeg_info(data: &[u8]) -> JpegInfo {
    assert_eq!(&data[..2], &[0xFF, 0xD8], "not a JPEG");
    let mut info = JpegInfo::default();
    let mut i = 2;
    while i + 4 <= data.len() {
        assert_eq!(data[i], 0xFF, "marker expected at {i}");
        let marker = data[i + 1];
        let len = usize::from(u16::from_be_bytes([data[i + 2], data[i + 3]]));
        let body = &data[i + 4..i + 2 + len];
        match marker {
            0xC0..=0xC2 => {
                info.height = u32::from(u16::from_be_bytes([body[1], body[2]]));
                info.width = u32::from(u16::from_be_bytes([body[3], body[4]]));
                info.progressive = marker == 0xC2;
            }
            0xE1..=0xEF | 0xFE => {
                let head = String::from_utf8_lossy(&body[..body.len().min(12)]).into_owned();
                info.metadata.push(format!("{marker:#04x} {head}"));
            }
            0xDA => break,
            _ => {}
        }
        i += 2 + len;
    }
    info
}

/// Decodes a JPEG to RGB8.
pub fn decode_rgb(data: &[u8]) -> image::RgbImage {
    image::load_from_memory_with_format(data, image::ImageFormat::Jpeg).expect("decodable JPEG").to_rgb8()
}

/// Mean absolute difference per channel of two same-sized images, 0–255.
pub fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions(), "sizes differ");
    let sum: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    sum as f64 / a.as_raw().len() as f64
}

/// `jpeg` with a comment segment (COM) right after its start marker: other
/// bytes, the same picture.
pub fn with_jpeg_comment(jpeg: &[u8], comment: &str) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "a JPEG");
    let length = u16::try_from(comment.len() + 2).expect("a short comment");
    let mut out = Vec::with_capacity(jpeg.len() + comment.len() + 4);
    out.extend_from_slice(&jpeg[..2]);
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(comment.as_bytes());
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Files under a folder, recursively (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { out.extend(files_under(&path)) } else { out.push(path) }
    }
    out
}

/// How many files are under a folder, recursively (0 when it does not exist).
pub fn count_files(dir: &Path) -> usize {
    files_under(dir).len()
}

/// Where a [`ClockedApp`]'s clock starts.
pub const CLOCK_START: Millis = Millis(1_800_000_000_000);

/// Pictor built (not served, no runner started) on a fresh database with a
/// hand-turned clock, for queue tests. Drops its PostgreSQL database with it.
pub struct ClockedApp {
    /// The application.
    pub app: App,
    /// The clock its queue reads; starts at [`CLOCK_START`].
    pub clock: ManualClock,
    database_url: String,
    _dir: TempDir,
}

/// A [`ClockedApp`] with changed settings; `None` when `backend` is not
/// available here (see [`fresh_database`]).
pub async fn clocked_app(backend: Backend, configure: impl FnOnce(&mut Config)) -> Option<ClockedApp> {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = fresh_database(backend, dir.path()).await?;
    let mut config = Config { database_url: database_url.clone(), ..test_config(dir.path()) };
    configure(&mut config);
    let clock = ManualClock::new(CLOCK_START);
    let overrides = Overrides { clock: Some(std::sync::Arc::new(clock.clone())), ..Default::default() };
    let app = app::build_with(&config, "http://test", with_sandbox_binary(overrides)).await.expect("build");
    Some(ClockedApp { app, clock, database_url, _dir: dir })
}

/// Starts an upload to `address` (`host:port`) that sends its headers and
/// the start of its file part, then nothing: it holds one upload slot until
/// the stream is dropped. Returns once the server has had 500 ms to admit it.
pub async fn hold_an_upload_slot(address: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt as _;

    let mut stalled = tokio::net::TcpStream::connect(address).await.expect("connect");
    let head = "POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                Content-Type: multipart/form-data; boundary=XYZ\r\nContent-Length: 100000\r\n\r\n\
                --XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n";
    stalled.write_all(head.as_bytes()).await.expect("take an upload slot");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stalled
}

impl ClockedApp {
    /// Records an INGESTED image row `id` (1x1 JPEG, bytes in `tmp/ID.upload`)
    /// at the clock's time, for queue tests that need a job's image.
    pub async fn insert_image(&self, id: &str) -> pictor::db::images::NewImage {
        let image = pictor::db::images::NewImage {
            id: pictor::db::ImageId::from(id),
            title: id.to_owned(),
            collection: None,
            checksum: "00".repeat(32),
            size_bytes: 1,
            format: "jpeg".into(),
            width: 1,
            height: 1,
            orientation: 1,
            temp_path: format!("tmp/{id}.upload"),
        };
        pictor::db::images::insert_ingested(&self.app.db.pool, &image, pictor::clock::Clock::now(&self.clock))
            .await
            .expect("insert image");
        image
    }
}

impl Drop for ClockedApp {
    fn drop(&mut self) {
        // The test's runtime is shutting down: drop the PostgreSQL database
        // from a runtime of its own.
        let url = self.database_url.clone();
        if url.starts_with("postgres") {
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    rt.block_on(drop_database(&url));
                }
            })
            .join();
        }
    }
}

/// Thumbnails that fail for good while `broken` is set: a fault injected
/// for retry tests.
pub struct BreakableThumbnails {
    /// While true, every attempt fails permanently.
    pub broken: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The real handler, used while not broken.
    pub real: pictor::handlers::ThumbnailGeneration,
}

/// The standard handlers with thumbnails that fail for good while `broken`
/// is set.
pub fn with_breakable_thumbnails(broken: &std::sync::Arc<std::sync::atomic::AtomicBool>) -> Overrides {
    let broken = broken.clone();
    let make: pictor::app::RegistryFactory = Box::new(move |ctx| {
        let mut registry = pictor::handlers::registry(ctx);
        let real = pictor::handlers::ThumbnailGeneration::new(ctx.clone());
        registry.register(pictor_client::models::JobKind::ThumbnailGeneration, BreakableThumbnails { broken, real });
        registry
    });
    Overrides { registry: Some(make), ..Default::default() }
}

#[async_trait::async_trait]
impl JobHandler<ImageEffect> for BreakableThumbnails {
    async fn handle(&self, job: &pictor::queue::Job) -> Result<pictor::handlers::Outcome, HandlerError> {
        if self.broken.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(HandlerError::permanent("injected fault: thumbnailer out of order"));
        }
        self.real.handle(job).await
    }
}
