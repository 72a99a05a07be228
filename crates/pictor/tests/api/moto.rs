//! A real S3-API server for the tests: moto's `moto_server` (PyPI
//! `moto[server]`, installed in a venv by `.ci/run`), one per test on a
//! free loopback port, with a fresh bucket; killed on drop. Found through
//! `PICTOR_TEST_MOTO` (the path of `moto_server`), else on `PATH`; missing,
//! the test prints `SKIPPED` (and fails on CI).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use pictor::config::Config;

/// The bucket every test server starts with.
pub const BUCKET: &str = "pictor-test";
/// The prefix Pictor's keys are kept under in the tests.
pub const PREFIX: &str = "site";

/// A running moto server.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

/// The `moto_server` program, if installed.
fn program() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PICTOR_TEST_MOTO") {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join("moto_server")).find(|p| p.is_file())
}

impl Moto {
    /// Starts a server with an empty bucket [`BUCKET`]; `None` (and a
    /// visible skip) when moto is not installed here.
    pub async fn start(test: &str) -> Option<Self> {
        let Some(program) = program() else {
            crate::skip::skip(test, "moto_server not found (pip install 'moto[server]'; .ci/run does)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Self { child, endpoint: format!("http://127.0.0.1:{port}") };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = client.put(format!("{}/{BUCKET}", moto.endpoint)).send().await {
                assert!(response.status().is_success(), "creating the bucket: {}", response.status());
                return Some(moto);
            }
            assert!(Instant::now() < deadline, "moto_server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The environment that points a `pictor` process at the bucket.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("STORAGE_URL", format!("s3://{BUCKET}/{PREFIX}")),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ]
    }

    /// Points an in-process config at the bucket.
    pub fn configure(&self, config: &mut Config) {
        config.storage_url = Some(format!("s3://{BUCKET}/{PREFIX}"));
        config.s3_endpoint = Some(self.endpoint.clone());
        config.s3_allow_http = true;
        config.s3_region = Some("us-east-1".into());
        config.s3_access_key_id = Some("test".into());
        config.s3_secret_access_key = Some("test".into());
    }

    /// A client of the bucket of its own (not Pictor's storage layer).
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        let store = AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .expect("client");
        Arc::new(store)
    }

    /// Every key in the bucket under [`PREFIX`], without it, sorted.
    pub async fn keys(&self) -> Vec<String> {
        let prefix = object_store::path::Path::from(PREFIX);
        let metas: Vec<_> = self.store().list(Some(&prefix)).try_collect().await.expect("list the bucket");
        let mut keys: Vec<String> = metas
            .into_iter()
            .map(|m| m.location.as_ref().strip_prefix(&format!("{PREFIX}/")).expect("under the prefix").to_owned())
            .collect();
        keys.sort();
        keys
    }

    /// Makes the bucket's objects readable by anyone (a bucket policy), as
    /// `PICTOR_ASSET_REDIRECT=public` needs.
    pub async fn allow_public_reads(&self) {
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                "Resource": format!("arn:aws:s3:::{BUCKET}/*"),
            }],
        });
        let response = reqwest::Client::new()
            .put(format!("{}/{BUCKET}?policy", self.endpoint))
            .body(policy.to_string())
            .send()
            .await
            .expect("put the bucket policy");
        assert!(response.status().is_success(), "bucket policy: {}", response.status());
    }

    /// Freezes the server (SIGSTOP): connections hang, as to a bucket that
    /// stopped answering.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Lets a frozen server go on.
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
