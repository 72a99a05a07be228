//! The CPU pool: one thread per CPU, each taking the next piece of image
//! work from a shared queue the moment it finishes the last (DESIGN
//! invariant 6: decoding and encoding are bounded by the CPUs, and the async
//! runtime never blocks on them).
//!
//! It replaced a semaphore in front of tokio's blocking pool, where each
//! piece first waited for a blocking thread to be woken, and a freed slot
//! for the next task's wake-up: about 0.3 ms per piece with the slot held
//! and no pixel touched, 2.7 % of the slots' time in `bench/e2e.py`. Here a
//! busy thread never waits, and the caller is woken once, with the result.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::oneshot;

/// A piece of work, with what sends its result back.
type Task = Box<dyn FnOnce() + Send>;

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
#[derive(Debug)]
pub struct CpuPool {
    queue: flume::Sender<Task>,
    /// Threads running a task now (for the busy-share metric).
    busy: Arc<AtomicUsize>,
    threads: usize,
}

impl CpuPool {
    /// Starts `threads` threads (at least one).
    ///
    /// # Errors
    /// A thread could not be started.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let (queue, tasks) = flume::unbounded::<Task>();
        let threads = threads.max(1);
        let busy = Arc::new(AtomicUsize::new(0));
        for i in 0..threads {
            let (tasks, busy) = (tasks.clone(), busy.clone());
            std::thread::Builder::new().name(format!("pictor-cpu-{i}")).spawn(move || {
                // Ends when every sender is gone (the pool was dropped).
                while let Ok(task) = tasks.recv() {
                    busy.fetch_add(1, Ordering::Relaxed);
                    // Tasks catch their own panics, so the count always comes back down.
                    task();
                    busy.fetch_sub(1, Ordering::Relaxed);
                }
            })?;
        }
        Ok(Self { queue, busy, threads })
    }

    /// The share of the pool's threads running work now, 0 to 1.
    #[allow(clippy::cast_precision_loss)] // Thread counts are far below 2^52.
    pub fn busy_share(&self) -> f64 {
        self.busy.load(Ordering::Relaxed) as f64 / self.threads as f64
    }

    /// Runs `work` on the pool once a thread is free and returns its result.
    /// Dropping the future does not stop work that has started.
    ///
    /// # Errors
    /// The work panicked, or the pool has stopped.
    pub async fn run<T, F>(&self, work: F) -> Result<T, CpuPoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (result, receive) = oneshot::channel();
        let task: Task = Box::new(move || {
            // The caller may have gone: then nobody wants the result.
            let _ = result.send(catch_unwind(AssertUnwindSafe(work)));
        });
        self.queue.send(task).map_err(|_| CpuPoolError::Stopped)?;
        match receive.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panic)) => Err(CpuPoolError::Panicked(panic_message(panic.as_ref()))),
            Err(_) => Err(CpuPoolError::Stopped),
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
        let pool = Arc::new(CpuPool::new(2).expect("pool"));
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
        let pool = CpuPool::new(1).expect("pool");
        let crashed = pool.run(|| -> u32 { panic!("decoder exploded") }).await;
        assert!(matches!(&crashed, Err(CpuPoolError::Panicked(m)) if m == "decoder exploded"), "{crashed:?}");
        assert_eq!(pool.run(|| 7).await.expect("still running"), 7);
    }
}
