//! Runs one claimed job: its handler in a task of its own (so that a panic
//! becomes a permanent error, not a lost job), then hands the result to the
//! completer, which writes the ending. A hard stop at shutdown abandons the
//! handler; the runner then releases the job.

use std::sync::Arc;

use tokio::sync::mpsc;

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
}

impl<E: Send + 'static> Executor<E> {
    /// Runs `job` and hands its result over.
    pub async fn execute(self, job: Job) {
        let Self { handler, completer, in_flight, hard_stop } = self;
        let started = std::time::Instant::now();
        let run = async {
            match &handler {
                Some(handler) => {
                    let (handler, job) = (handler.clone(), job.clone());
                    match tokio::spawn(async move { handler.handle(&job).await }).await {
                        Ok(result) => result,
                        Err(e) if e.is_panic() => Err(HandlerError::permanent(format!(
                            "the handler crashed: {}",
                            pictor_imaging::panic_message(e.into_panic().as_ref())
                        ))),
                        Err(e) => Err(HandlerError::retryable("the handler was cancelled").caused_by(e)),
                    }
                }
                None => Err(HandlerError::permanent(format!("no handler is registered for {}", job.kind))),
            }
        };
        let result = tokio::select! {
            result = run => result,
            () = hard_stop.wait() => return,
        };
        in_flight.finished(job.id);
        // The completer outlives every execution (each holds a sender), so
        // this fails only if it crashed: the job is then released at shutdown.
        let _ = completer.send(Finished { job, result, elapsed: started.elapsed() }).await;
    }
}
