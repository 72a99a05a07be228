//! Runs one claimed job: its handler in a task of its own (so that a panic
//! becomes a permanent error, not a lost job) until the job's deadline, then
//! hands the result to the completer, which writes the ending. A handler
//! still running at the deadline is dropped and its attempt fails
//! retryably: its slot is free again. A hard stop at shutdown abandons the
//! handler; the runner then releases the job.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use super::Job;
use super::completer::Finished;
use super::handler::{HandlerError, JobHandler};
use super::in_flight::InFlight;
use crate::shutdown::Shutdown;

/// What an execution needs besides its job.
pub(super) struct Executor<E> {
    /// The handler of the job's kind, if one is registered.
    pub handler: Option<Arc<dyn JobHandler<E>>>,
    /// Where results go.
    pub completer: mpsc::Sender<Finished<E>>,
    /// The runner's record of held jobs.
    pub in_flight: Arc<InFlight>,
    /// Fires when in-flight jobs are out of time at shutdown.
    pub hard_stop: Shutdown,
    /// Longest the handler may run.
    pub timeout: Duration,
}

impl<E: Send + 'static> Executor<E> {
    /// Runs `job` and hands its result over.
    pub async fn execute(self, job: Job) {
        let Self { handler, completer, in_flight, hard_stop, timeout } = self;
        let started = std::time::Instant::now();
        let run = async {
            match &handler {
                Some(handler) => {
                    let (handler, job) = (handler.clone(), job.clone());
                    // Dropped at the deadline or a hard stop, the task is
                    // aborted: its futures are dropped, and work on the CPU
                    // pool is given up on (the pool replaces its thread).
                    // The handler's task is a new task: it enters the job's span itself.
                    let mut task =
                        AbortOnDrop(tokio::spawn(async move { handler.handle(&job).await }.in_current_span()));
                    match tokio::time::timeout(timeout, &mut task.0).await {
                        Ok(Ok(result)) => result,
                        Ok(Err(e)) if e.is_panic() => Err(HandlerError::permanent(format!(
                            "the handler crashed: {}",
                            pictor_imaging::panic_message(e.into_panic().as_ref())
                        ))),
                        Ok(Err(e)) => Err(HandlerError::retryable("the handler was cancelled").caused_by(e)),
                        Err(_) => Err(HandlerError::retryable(timed_out(timeout))),
                    }
                }
                None => Err(HandlerError::permanent(format!("no handler is registered for {}", job.kind))),
            }
        };
        let result = tokio::select! {
            result = run => result,
            () = hard_stop.wait() => return,
        };
        in_flight.finished(job.lease());
        // The completer outlives every execution (each holds a sender), so
        // this fails only if it crashed: the job is then released at shutdown.
        let _ = completer.send(Finished { job, result, elapsed: started.elapsed() }).await;
    }
}

/// The span of everything logged about `job`: its execution (the runner
/// instruments the executor's future with it) and its ending (the completer).
pub(super) fn span(job: &Job) -> tracing::Span {
    tracing::info_span!(
        "job",
        job_id = %job.id,
        job_type = %job.kind,
        image_id = job.image_id.as_ref().map(tracing::field::display)
    )
}

/// The error of an attempt that ran out of time, as `last_error` keeps it.
pub fn timed_out(after: Duration) -> String {
    if after.subsec_millis() == 0 {
        format!("timed out after {} s", after.as_secs())
    } else {
        format!("timed out after {} ms", after.as_millis())
    }
}

/// Aborts a task when dropped.
pub(super) struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_reads_in_whole_seconds_where_it_can() {
        assert_eq!(timed_out(Duration::from_secs(300)), "timed out after 300 s");
        assert_eq!(timed_out(Duration::from_millis(1_500)), "timed out after 1500 ms");
    }
}
