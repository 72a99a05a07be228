//! `pictor` processes for multi-process tests: started with a shared
//! database and storage folder, their logs collected, killed on drop.
//! Self-contained so that other test binaries can include it by path.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// A running `pictor` process.
pub struct PictorProcess {
    child: Child,
    logs: Receiver<String>,
    /// Lines read so far.
    pub seen: Vec<String>,
}

/// The `pictor` binary in `dir`, with none of the settings a test must give
/// itself taken from the environment, logging at info.
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pictor"));
    cmd.current_dir(dir).env("RUST_LOG", "info,sqlx=warn");
    for name in ["DATABASE_URL", "STORAGE_DIR", "API_BASE", "PICTOR_BIND", "PICTOR_ADMIN_TOKEN", "PICTOR_LOG_FORMAT"] {
        cmd.env_remove(name);
    }
    cmd
}

/// Starts `pictor ARGS` in `dir` on `database_url`, with storage in `dir/storage`
/// and extra environment variables.
pub fn start(dir: &Path, database_url: &str, args: &[&str], env: &[(&str, &str)]) -> PictorProcess {
    let mut cmd = command(dir);
    cmd.args(args)
        .env("DATABASE_URL", database_url)
        .env("STORAGE_DIR", dir.join("storage"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start pictor");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, logs) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    PictorProcess { child, logs, seen: Vec::new() }
}

impl PictorProcess {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a log line containing `needle` and returns it.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.logs.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no log line with {needle:?} within {timeout:?}; saw: {:#?}", self.seen),
            }
        }
    }

    /// The address `pictor serve` logged.
    pub fn address(&mut self) -> String {
        let line = self.wait_for_log("address=", Duration::from_secs(60));
        line.split("address=").nth(1).and_then(|s| s.split_whitespace().next()).expect("address").to_owned()
    }

    /// Sends a signal (`TERM`, `KILL`).
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill").args([&format!("-{name}"), &self.pid().to_string()]).status().expect("kill");
        assert!(ok.success(), "kill -{name} {}", self.pid());
    }

    /// Stops it with SIGTERM and waits; true when it exited successfully.
    pub fn stop(mut self) -> bool {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Uploads `bytes` as `name` to the server at `base`; its image id (the
/// upload must be answered 201).
pub async fn upload(client: reqwest::Client, base: String, name: String, bytes: Vec<u8>) -> String {
    let part = reqwest::multipart::Part::bytes(bytes).file_name(name);
    let response = client
        .post(format!("{base}/api/upload"))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.expect("json");
    body["imageId"].as_str().expect("id").to_owned()
}

/// Kills `worker` with SIGKILL while it holds a job in `pool`'s queue. It is
/// frozen first (SIGSTOP) and the job looked up again, so that it cannot
/// finish the job between the look-up and the kill (a completion already
/// sent lands meanwhile); panics if it never holds one within two minutes.
pub async fn kill_while_it_holds_a_job(worker: PictorProcess, pool: &sqlx::AnyPool) {
    use sqlx::Row as _;
    let holding =
        format!("SELECT COUNT(*) AS n FROM job WHERE status = 'RUNNING' AND locked_by LIKE '%:{}:%'", worker.pid());
    let held = || async {
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(holding.clone()))
            .fetch_one(pool)
            .await
            .expect("query")
            .try_get("n")
            .expect("n");
        n > 0
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if held().await {
            worker.signal("STOP");
            tokio::time::sleep(Duration::from_millis(300)).await;
            if held().await {
                break;
            }
            worker.signal("CONT");
        }
        assert!(Instant::now() < deadline, "the worker never held a job");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.signal("KILL");
}

impl Drop for PictorProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
