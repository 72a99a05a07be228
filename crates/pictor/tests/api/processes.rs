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

impl Drop for PictorProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
