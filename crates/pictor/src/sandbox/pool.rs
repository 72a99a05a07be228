//! The parent's side: a pool of long-lived `pictor sandbox-child`
//! processes, each doing one request at a time, as many as the CPU pool
//! has threads (DESIGN invariant 6). A request waits for an idle child,
//! the sibling of an image's first asset job for that job's child (see
//! [`super::affinity`]). A child that crashes, overruns its deadline (then
//! it is killed) or is given up on mid-request is replaced by a new one at
//! the next request of its slot, so the pool never shrinks.

use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::affinity::Affinity;
use super::child::{SUBCOMMAND, TEST_HOOKS_ENV};
use super::protocol::{self, ProtocolError, Rendered, Reply, Request};
use super::{SandboxError, seconds};

/// Longest the sibling of an image's first asset job waits for that job's
/// child (busy with the first job, most often) before it decodes anew on
/// another.
pub const SIBLING_WAIT: Duration = Duration::from_secs(3);
/// Longest a new child may take to say it is ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Lines of a child's stderr kept to tell why it died.
const STDERR_TAIL_LINES: usize = 8;
/// What Rust's allocator prints before aborting when memory runs out.
const OUT_OF_MEMORY: &str = "memory allocation of";
/// The parent's environment variables a child gets; every other one (the
/// database URL, keys, tokens) stays out of its reach.
const KEPT_ENV: &[&str] =
    &["LD_LIBRARY_PATH", "MALLOC_ARENA_MAX", "GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"];

/// How the pool's children run.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// The `pictor` binary (this one in production).
    pub executable: PathBuf,
    /// How many children (the CPUs).
    pub children: usize,
    /// Each child's address-space limit, MB.
    pub memory_mb: u64,
    /// Longest one request may take before its child is killed.
    pub timeout: Duration,
    /// Arms the children's test hooks (tests only; no setting reaches it).
    pub test_hooks: bool,
}

/// The children and what waits for them.
pub struct ProcessPool {
    settings: PoolSettings,
    state: Mutex<State>,
    /// Told whenever a child becomes idle.
    released: Notify,
    /// Whether a child's hardening has been logged (once per process).
    logged: AtomicBool,
}

impl std::fmt::Debug for ProcessPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessPool").field("settings", &self.settings).finish_non_exhaustive()
    }
}

struct State {
    slots: Vec<Slot>,
    affinity: Affinity,
}

enum Slot {
    /// Free, with its process if one runs (else one starts at its next request).
    Idle(Option<Box<ChildProcess>>),
    /// Working on a request.
    Leased,
}

/// A running child and its pipes.
struct ChildProcess {
    process: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// Forwards its stderr to the log; returns the last lines at its end.
    stderr: JoinHandle<Vec<String>>,
}

impl ProcessPool {
    /// A pool of `settings.children` children (at least one), started at
    /// their first request.
    pub fn new(settings: PoolSettings) -> Self {
        let slots = (0..settings.children.max(1)).map(|_| Slot::Idle(None)).collect();
        Self {
            settings,
            state: Mutex::new(State { slots, affinity: Affinity::default() }),
            released: Notify::new(),
            logged: AtomicBool::new(false),
        }
    }

    /// The share of the children working now, 0 to 1.
    #[allow(clippy::cast_precision_loss)] // Child counts are far below 2^52.
    pub fn busy_share(&self) -> f64 {
        let state = self.lock();
        state.slots.iter().filter(|s| matches!(s, Slot::Leased)).count() as f64 / state.slots.len() as f64
    }

    /// Runs `request` on a child and returns what it made. Dropping the
    /// future before the answer kills the child working on it.
    ///
    /// # Errors
    /// The image's own error, as the child reported it; the child crashed,
    /// ran out of memory, or overran its deadline; or it could not be started.
    pub async fn render(self: &Arc<Self>, request: &Request) -> Result<Rendered, SandboxError> {
        let frame = protocol::encode(request, &[]).map_err(|e| SandboxError::Broken(e.to_string()))?;
        let mut lease = self.acquire(&request.key, request.share.is_some()).await;
        match lease.exchange(&frame).await? {
            (Reply::Rendered { assets, thumbhash }, body) => protocol::into_rendered(assets, thumbhash, &body)
                .map_err(|e| SandboxError::Broken(format!("the sandbox child's reply is malformed: {e}"))),
            (Reply::Failed { error }, _) => Err(error.into_error()),
            (Reply::Ready { .. }, _) => Err(SandboxError::Broken("the sandbox child answered out of turn".into())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle child: for a shared decode, the one its sibling remembered
    /// (waited for up to [`SIBLING_WAIT`]); else the idle one fewest
    /// siblings are expected on.
    async fn acquire(self: &Arc<Self>, key: &str, shared: bool) -> Lease {
        let asked = tokio::time::Instant::now();
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let waiting_for_sibling = {
                let mut state = self.lock();
                let state = &mut *state;
                let mut sibling = if shared { state.affinity.child_for(key) } else { None };
                if let Some(index) = sibling
                    && !matches!(state.slots[index], Slot::Idle(_))
                    && asked.elapsed() >= SIBLING_WAIT
                {
                    state.affinity.forget(key); // waited long enough: decode anew elsewhere
                    sibling = None;
                }
                let chosen = match sibling {
                    Some(index) if matches!(state.slots[index], Slot::Idle(_)) => {
                        state.affinity.forget(key); // the sibling has come
                        Some(index)
                    }
                    Some(_) => None,
                    None => {
                        let idle = (0..state.slots.len()).filter(|&i| matches!(state.slots[i], Slot::Idle(_)));
                        let index = idle.min_by_key(|&i| state.affinity.expected_on(i));
                        if let Some(index) = index
                            && shared
                        {
                            state.affinity.remember(key, index);
                        }
                        index
                    }
                };
                if let Some(index) = chosen {
                    let child = match std::mem::replace(&mut state.slots[index], Slot::Leased) {
                        Slot::Idle(child) => child,
                        Slot::Leased => None,
                    };
                    return Lease { pool: self.clone(), index, child };
                }
                sibling.is_some()
            };
            if waiting_for_sibling {
                let _ = tokio::time::timeout_at(asked + SIBLING_WAIT, released).await;
            } else {
                released.await;
            }
        }
    }

    /// Starts a child and waits for it to say it is ready.
    async fn start(&self, index: usize) -> Result<ChildProcess, SandboxError> {
        let settings = &self.settings;
        let mut command = tokio::process::Command::new(&settings.executable);
        command
            .arg(SUBCOMMAND)
            .arg("--memory-mb")
            .arg(settings.memory_mb.to_string())
            .env_clear()
            .envs(KEPT_ENV.iter().filter_map(|name| std::env::var_os(name).map(|value| (name, value))))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if settings.test_hooks {
            command.env(TEST_HOOKS_ENV, "1");
        }
        let cannot = |why: String| {
            SandboxError::Broken(format!("cannot start a sandbox child ({}): {why}", settings.executable.display()))
        };
        let mut process = command.spawn().map_err(|e| cannot(e.to_string()))?;
        let pid = process.id().unwrap_or_default();
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (process.stdin.take(), process.stdout.take(), process.stderr.take())
        else {
            return Err(cannot("its pipes are missing".into()));
        };
        let stderr = tokio::spawn(forward_stderr(stderr, index, pid));
        let mut child = ChildProcess { process, stdin, stdout: BufReader::new(stdout), stderr };
        let ready = tokio::time::timeout(START_TIMEOUT, protocol::read_frame_async::<Reply>(&mut child.stdout)).await;
        let applied = match ready {
            Ok(Ok((Reply::Ready { applied }, _))) => applied,
            Ok(Ok((other, _))) => return Err(cannot(format!("it said {other:?} instead of being ready"))),
            Ok(Err(e)) => return Err(died(child, &e, settings).await),
            Err(_) => return Err(cannot(format!("not ready after {}", seconds(START_TIMEOUT)))),
        };
        if !self.logged.swap(true, Ordering::Relaxed) {
            let applied_all = !applied.iter().any(|line| line.starts_with(super::harden::NOT_APPLIED));
            if applied_all {
                tracing::debug!(target: "sandbox", child = pid, applied = applied.join("; "), "image sandbox child started");
            } else {
                tracing::warn!(target: "sandbox", child = pid, applied = applied.join("; "),
                    "image sandbox child started without some of its limits");
            }
        } else {
            tracing::trace!(target: "sandbox", child = pid, "image sandbox child started");
        }
        Ok(child)
    }
}

/// A child taken for one request. Dropped, it gives the child back; a
/// request dropped before its reply drops (and so kills) its child, whose
/// state is unknown, and the slot starts a new one at its next request.
struct Lease {
    pool: Arc<ProcessPool>,
    index: usize,
    /// The child, while it is between requests.
    child: Option<Box<ChildProcess>>,
}

impl Lease {
    /// Sends a request frame and reads the reply, within the deadline.
    async fn exchange(&mut self, frame: &[u8]) -> Result<(Reply, Vec<u8>), SandboxError> {
        let settings = &self.pool.settings;
        let mut child = match self.child.take() {
            Some(child) => child,
            None => Box::new(self.pool.start(self.index).await?),
        };
        let talk = async {
            child.stdin.write_all(frame).await?;
            child.stdin.flush().await?;
            protocol::read_frame_async::<Reply>(&mut child.stdout).await
        };
        let outcome = tokio::time::timeout(settings.timeout, talk).await;
        match outcome {
            Ok(Ok(reply)) => {
                self.child = Some(child);
                Ok(reply)
            }
            Ok(Err(e)) => Err(died(*child, &e, settings).await),
            Err(_) => {
                let _ = child.process.start_kill();
                let _ = child.process.wait().await;
                Err(SandboxError::Deadline { after: settings.timeout })
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let child = self.child.take();
        let mut state = self.pool.lock();
        if child.is_none() {
            // Its kept decodes went with it. (A child dropped here is killed: kill_on_drop.)
            state.affinity.forget_child(self.index);
        }
        state.slots[self.index] = Slot::Idle(child);
        drop(state);
        self.pool.released.notify_waiters();
    }
}

/// Why a child's pipe broke: it died (how, from its exit status and its
/// last words), or it sent a malformed frame (then it is killed).
async fn died(mut child: ChildProcess, error: &ProtocolError, settings: &PoolSettings) -> SandboxError {
    if !matches!(error, ProtocolError::Io(_)) {
        let _ = child.process.start_kill();
    }
    let status = match tokio::time::timeout(Duration::from_secs(5), child.process.wait()).await {
        Ok(Ok(status)) => Some(status),
        _ => {
            let _ = child.process.start_kill();
            child.process.wait().await.ok()
        }
    };
    // Its stderr ends with it: the tail holds its last words.
    let tail = tokio::time::timeout(Duration::from_secs(1), child.stderr).await.ok().and_then(Result::ok);
    match error {
        ProtocolError::Io(_) => classify(status, &tail.unwrap_or_default(), settings.memory_mb),
        other => SandboxError::Broken(format!("the sandbox child broke the protocol: {other}")),
    }
}

/// The error of a child that died with `status`, its stderr ending in `tail`.
fn classify(status: Option<ExitStatus>, tail: &[String], memory_mb: u64) -> SandboxError {
    let said = tail.join(" / ");
    match status.and_then(|s| s.signal()) {
        Some(libc::SIGABRT) if said.contains(OUT_OF_MEMORY) => SandboxError::OutOfMemory { limit_mb: memory_mb },
        Some(libc::SIGKILL) => SandboxError::Killed,
        Some(signal) => SandboxError::Crashed { signal: signal_name(signal) },
        None => SandboxError::Broken(match status.and_then(|s| s.code()) {
            Some(code) if said.is_empty() => format!("the sandbox child exited with status {code}"),
            Some(code) => format!("the sandbox child exited with status {code}: {said}"),
            None => "the sandbox child vanished".to_owned(),
        }),
    }
}

fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGABRT => "SIGABRT",
        libc::SIGSYS => "SIGSYS",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGKILL => "SIGKILL",
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
}

/// Logs a child's stderr line by line (a library's warning, a panic's
/// message, the allocator's last words) and returns its last lines.
async fn forward_stderr(stderr: tokio::process::ChildStderr, index: usize, pid: u32) -> Vec<String> {
    let mut lines = BufReader::new(stderr).lines();
    let mut tail = std::collections::VecDeque::with_capacity(STDERR_TAIL_LINES);
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::warn!(target: "sandbox", slot = index, child = pid, "{line}");
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    tail.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signalled(signal: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(signal))
    }

    #[test]
    fn a_death_is_told_apart_by_its_signal_and_last_words() {
        let oom = vec!["memory allocation of 16777216 bytes failed".to_owned()];

        assert!(matches!(classify(signalled(libc::SIGABRT), &oom, 512), SandboxError::OutOfMemory { limit_mb: 512 }));
        let crashed = classify(signalled(libc::SIGSEGV), &[], 512);
        assert_eq!(crashed.to_string(), "the image decoder crashed on this file (killed by SIGSEGV)");
        assert!(matches!(classify(signalled(libc::SIGABRT), &[], 512), SandboxError::Crashed { .. }));
        assert!(matches!(classify(signalled(libc::SIGKILL), &[], 512), SandboxError::Killed));
        let exited = classify(Some(ExitStatus::from_raw(1 << 8)), &["bad frame".to_owned()], 512);
        assert!(exited.to_string().contains("status 1: bad frame"), "{exited}");
    }
}
