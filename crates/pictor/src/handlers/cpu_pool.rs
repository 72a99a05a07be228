//! The CPU pool: one thread per CPU, each taking the next piece of image
//! work from a shared queue the moment it finishes the last (DESIGN
//! invariant 6: decoding and encoding are bounded by the CPUs, and the async
//! runtime never blocks on them). It runs image work when the sandbox is
//! off (`PICTOR_IMAGE_SANDBOX=off`); by default the work goes to as many
//! sandbox children instead ([`crate::sandbox`]), where a crash or a hang
//! kills one child rather than this process or one of these threads.
//!
//! It replaced a semaphore in front of tokio's blocking pool, where each
//! piece first waited for a blocking thread to be woken, and a freed slot
//! for the next task's wake-up: about 0.3 ms per piece with the slot held
//! and no pixel touched, 2.7 % of the slots' time in `bench/e2e.py`. Here a
//! busy thread never waits, and the caller is woken once, with the result.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use tokio::sync::oneshot;

/// A piece of work, with what sends its result back. It returns false when
/// its caller gave up on it while it ran: its thread was replaced then, and
/// leaves.
type Task = Box<dyn FnOnce() -> bool + Send>;

/// What the pool does once more threads are stuck than it has threads:
/// given the count (the service exits, for its supervisor to restart it).
pub type OnWedged = Box<dyn Fn(usize) + Send + Sync>;

/// Where a piece of work is. Its caller and its thread move it on with
/// compare-and-swap, so exactly one of them decides what an abandoned
/// piece costs.
const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;
/// Given up on before a thread took it: it never runs.
const ABANDONED: u8 = 3;
/// Given up on while it ran: its thread was replaced.
const ABANDONED_RUNNING: u8 = 4;

/// Why the pool gave no result.
#[derive(Debug, thiserror::Error)]
pub enum CpuPoolError {
    /// The work panicked (a bug, or a library crashing on hostile input).
    #[error("image processing crashed: {0}")]
    Panicked(String),
    /// The pool's threads are gone.
    #[error("the CPU pool has stopped")]
    Stopped,
}

/// Threads that run CPU-bound work in the order it was queued. They stop
/// when the pool is dropped.
///
/// Work cannot be cancelled once it runs. When its caller gives up on it
/// (the job's deadline passed and the job's task was dropped), a new thread
/// takes the place of the one still running it, so that a decode that never
/// returns does not shrink the pool for ever; the old thread leaves if it
/// ever returns. More stuck threads than the pool has threads means image
/// work hangs everywhere: the pool then calls its [`OnWedged`].
pub struct CpuPool {
    queue: flume::Sender<Task>,
    shared: Arc<Shared>,
}

/// What the threads and the callers share.
struct Shared {
    tasks: flume::Receiver<Task>,
    /// Threads started so far, for their names.
    started: AtomicUsize,
    /// Threads given up on that still run their work.
    stuck: AtomicUsize,
    /// Threads running a piece of work now (for the busy-share metric).
    busy: AtomicUsize,
    /// Most stuck threads tolerated: the pool's size.
    max_stuck: usize,
    on_wedged: OnWedged,
}

impl std::fmt::Debug for CpuPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpuPool")
            .field("threads", &self.shared.max_stuck)
            .field("stuck", &self.shared.stuck())
            .finish_non_exhaustive()
    }
}

impl CpuPool {
    /// Starts `threads` threads (at least one); `on_wedged` is called
    /// whenever more threads than that are stuck at once.
    ///
    /// # Errors
    /// A thread could not be started.
    pub fn new(threads: usize, on_wedged: impl Fn(usize) + Send + Sync + 'static) -> std::io::Result<Self> {
        let (queue, tasks) = flume::unbounded::<Task>();
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            tasks,
            started: AtomicUsize::new(0),
            stuck: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            max_stuck: threads,
            on_wedged: Box::new(on_wedged),
        });
        for _ in 0..threads {
            shared.start_thread()?;
        }
        Ok(Self { queue, shared })
    }

    /// The share of the pool's threads running work now, 0 to 1 (a stuck
    /// thread counts until it returns, beside the one that replaced it).
    #[allow(clippy::cast_precision_loss)] // Thread counts are far below 2^52.
    pub fn busy_share(&self) -> f64 {
        (self.shared.busy.load(Ordering::Relaxed) as f64 / self.shared.max_stuck as f64).min(1.0)
    }

    /// Threads given up on that still run their work.
    pub fn stuck(&self) -> usize {
        self.shared.stuck()
    }

    /// Runs `work` on the pool once a thread is free and returns its result.
    /// Dropping the future before the result arrives gives the work up: if
    /// no thread took it yet it never runs, else a new thread replaces the
    /// one running it.
    ///
    /// # Errors
    /// The work panicked, or the pool has stopped.
    pub async fn run<T, F>(&self, work: F) -> Result<T, CpuPoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (result, receive) = oneshot::channel();
        let state = Arc::new(AtomicU8::new(QUEUED));
        let task_state = state.clone();
        // Lines logged by the work carry the caller's span (a job's id, type and image id).
        let span = tracing::Span::current();
        let task: Task = Box::new(move || {
            let _entered = span.enter();
            if task_state.compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_err() {
                return true; // given up on while queued
            }
            let outcome = catch_unwind(AssertUnwindSafe(work));
            // Done before the result is sent: a caller holding the result never replaces this thread.
            let kept = task_state.compare_exchange(RUNNING, DONE, Ordering::AcqRel, Ordering::Acquire).is_ok();
            // The caller may have gone: then nobody wants the result.
            let _ = result.send(outcome);
            kept
        });
        let waiting = Waiting { state, shared: self.shared.clone() };
        self.queue.send(task).map_err(|_| CpuPoolError::Stopped)?;
        let received = receive.await;
        drop(waiting);
        match received {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panic)) => Err(CpuPoolError::Panicked(panic_message(panic.as_ref()))),
            Err(_) => Err(CpuPoolError::Stopped),
        }
    }
}

impl Shared {
    fn stuck(&self) -> usize {
        self.stuck.load(Ordering::Acquire)
    }

    /// Starts one more thread taking work from the queue.
    fn start_thread(self: &Arc<Self>) -> std::io::Result<()> {
        let n = self.started.fetch_add(1, Ordering::Relaxed);
        let shared = self.clone();
        std::thread::Builder::new().name(format!("pictor-cpu-{n}")).spawn(move || {
            // Ends when every sender is gone (the pool was dropped), or once
            // this thread was replaced while it ran a piece of work.
            while let Ok(task) = shared.tasks.recv() {
                shared.busy.fetch_add(1, Ordering::Relaxed);
                // Tasks catch their own panics, so the count always comes back down.
                let kept = task();
                shared.busy.fetch_sub(1, Ordering::Relaxed);
                if !kept {
                    let stuck = shared.stuck.fetch_sub(1, Ordering::AcqRel) - 1;
                    tracing::info!(target: "job_runner", stuck, "work given up on has returned; its CPU thread ends");
                    return;
                }
            }
        })?;
        Ok(())
    }

    /// A thread runs work its caller gave up on, counted already among the
    /// `stuck`: another takes its place.
    fn replace_stuck(self: &Arc<Self>, stuck: usize) {
        tracing::warn!(target: "job_runner", stuck, "image work outlived its job; a new CPU thread takes its place");
        if let Err(e) = self.start_thread() {
            tracing::error!(target: "job_runner", error = %e, "cannot start a CPU thread to replace a stuck one");
        }
        if stuck > self.max_stuck {
            (self.on_wedged)(stuck);
        }
    }
}

/// A caller waiting for its work; dropped before the result came, it gives
/// the work up (see [`CpuPool::run`]).
struct Waiting {
    state: Arc<AtomicU8>,
    shared: Arc<Shared>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let (state, stuck) = (&self.state, &self.shared.stuck);
        let swap = |from, to| state.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire);
        let mut current = QUEUED;
        loop {
            match current {
                QUEUED => match swap(QUEUED, ABANDONED) {
                    Ok(_) => return,
                    Err(actual) => current = actual,
                },
                RUNNING => {
                    // Counted before the swap: the thread uncounts itself as soon as it sees the swap.
                    let now_stuck = stuck.fetch_add(1, Ordering::AcqRel) + 1;
                    match swap(RUNNING, ABANDONED_RUNNING) {
                        Ok(_) => return self.shared.replace_stuck(now_stuck),
                        Err(actual) => {
                            stuck.fetch_sub(1, Ordering::AcqRel);
                            current = actual;
                        }
                    }
                }
                _ => return, // done: nothing to give up
            }
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn work_runs_on_at_most_as_many_threads_as_asked_and_every_result_comes_back() {
        let pool = Arc::new(CpuPool::new(2, |_| {}).expect("pool"));
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut calls = Vec::new();
        for i in 0..12_u64 {
            let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
            calls.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                    (i * i, std::thread::current().name().map(str::to_owned))
                })
                .await
            }));
        }
        for (i, call) in calls.into_iter().enumerate() {
            let (square, thread) = call.await.expect("task").expect("result");
            assert_eq!(square, (i * i) as u64);
            assert!(thread.is_some_and(|name| name.starts_with("pictor-cpu-")));
        }
        assert_eq!(most.load(Ordering::SeqCst), 2, "two at a time, never more");
    }

    #[tokio::test]
    async fn a_panic_is_an_error_and_the_pool_keeps_working() {
        let pool = CpuPool::new(1, |_| {}).expect("pool");
        let crashed = pool.run(|| -> u32 { panic!("decoder exploded") }).await;
        assert!(matches!(&crashed, Err(CpuPoolError::Panicked(m)) if m == "decoder exploded"), "{crashed:?}");
        assert_eq!(pool.run(|| 7).await.expect("still running"), 7);
    }

    /// Work that blocks its thread until the returned sender is used (or dropped).
    fn blocking() -> (std::sync::mpsc::Sender<()>, impl FnOnce() + Send + 'static) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        (release, move || {
            let _ = wait.recv();
        })
    }

    #[tokio::test]
    async fn a_thread_stuck_in_work_given_up_on_is_replaced_and_leaves_once_it_returns() {
        let pool = CpuPool::new(1, |_| {}).expect("pool");
        let (release, work) = blocking();
        let given_up = tokio::time::timeout(Duration::from_millis(50), pool.run(work)).await;
        assert!(given_up.is_err(), "the work blocks");
        assert_eq!(pool.stuck(), 1);

        let next = tokio::time::timeout(Duration::from_secs(10), pool.run(|| 7)).await;

        assert_eq!(next.expect("a new thread took the stuck one's place").expect("result"), 7);
        release.send(()).expect("the stuck work still waits");
        for _ in 0..1_000 {
            if pool.stuck() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(pool.stuck(), 0, "the returned thread is no longer counted");
        assert_eq!(pool.run(|| 8).await.expect("the pool still works"), 8);
    }

    #[tokio::test]
    async fn more_stuck_threads_than_the_pool_has_is_reported_as_wedged() {
        let wedged = Arc::new(AtomicUsize::new(0));
        let seen = wedged.clone();
        let pool = CpuPool::new(1, move |stuck| seen.store(stuck, Ordering::SeqCst)).expect("pool");
        let mut releases = Vec::new();
        for expected_stuck in 1..=2 {
            let (release, work) = blocking();
            releases.push(release);
            assert!(tokio::time::timeout(Duration::from_millis(50), pool.run(work)).await.is_err());
            assert_eq!(pool.stuck(), expected_stuck);
        }
        assert_eq!(wedged.load(Ordering::SeqCst), 2, "two stuck threads in a pool of one");
    }

    #[tokio::test]
    async fn work_given_up_on_before_a_thread_took_it_never_runs() {
        let pool = Arc::new(CpuPool::new(1, |_| {}).expect("pool"));
        let (release, work) = blocking();
        let busy = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(work).await }
        });
        tokio::task::yield_now().await; // the blocking work is queued first
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = ran.clone();
        let queued =
            tokio::time::timeout(Duration::from_millis(50), pool.run(move || counter.fetch_add(1, Ordering::SeqCst)));
        assert!(queued.await.is_err(), "queued behind the blocking work, then given up on");

        release.send(()).expect("release");
        busy.await.expect("task").expect("the blocking work ends");
        let after = tokio::time::timeout(Duration::from_secs(10), pool.run(|| 1)).await;
        assert_eq!(after.expect("the pool still has its thread").expect("result"), 1);

        assert_eq!(ran.load(Ordering::SeqCst), 0, "given up on before it started: never run");
        assert_eq!(pool.stuck(), 0, "no thread was replaced");
    }
}
