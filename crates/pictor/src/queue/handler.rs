//! The queue's contract with the work it runs. A [`JobHandler`] per job
//! kind turns a claimed job into an [`Outcome`]: the effects to write and
//! the jobs to enqueue, which the completer commits with the job's
//! completion. What an effect means is the [`Effects`] of the domain the
//! queue serves; the queue only carries it.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::Arc;

use pictor_client::models::JobKind;

use super::{Job, NewJob};
use crate::clock::Millis;
use crate::db::{DbResult, ImageId, Tx};

/// Whether a failed attempt may succeed later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Might work later (I/O, a full disk, a database hiccup): retried with backoff.
    Retryable,
    /// Will never work (corrupt or unsupported input): fails at once.
    Permanent,
    /// Something the job needs is exhausted for now (a full disk): retried
    /// with a capped backoff without spending an attempt, so that waiting
    /// for space never fails a job.
    Unavailable,
}

/// Why a handler did not finish: a message for a person, its kind, and the
/// cause it came from. The job's `last_error` is the whole chain
/// ([`HandlerError::chain`]).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl HandlerError {
    /// A failure worth another attempt.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Retryable, message: message.into(), source: None }
    }

    /// A failure of the surroundings, not of the job (a full disk): the
    /// attempt is given back and the job waits until the resource returns.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Unavailable, message: message.into(), source: None }
    }

    /// A failure no attempt will mend.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Permanent, message: message.into(), source: None }
    }

    /// The same error, caused by `source`.
    #[must_use]
    pub fn caused_by(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Retryable, permanent or unavailable.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message and every cause after it, `": "`-separated (what
    /// `last_error` keeps), each cause once even when a message repeats it.
    pub fn chain(&self) -> String {
        let mut text = self.message.clone();
        let mut cause = self.source.as_deref().map(|e| e as &(dyn StdError + 'static));
        while let Some(error) = cause {
            let part = error.to_string();
            if !text.ends_with(&part) {
                text.push_str(": ");
                text.push_str(&part);
            }
            cause = error.source();
        }
        text
    }
}

/// What a finished handler asks the queue to commit with its completion.
#[derive(Debug)]
pub struct Outcome<E> {
    /// Changes to the domain, written by its [`Effects`].
    pub effects: Vec<E>,
    /// Jobs to enqueue in the same transaction.
    pub children: Vec<NewJob>,
}

impl<E> Default for Outcome<E> {
    fn default() -> Self {
        Self { effects: Vec::new(), children: Vec::new() }
    }
}

impl<E> Outcome<E> {
    /// Whether the outcome asks for nothing but the job's completion (such
    /// jobs complete many to a statement).
    pub fn is_bare(&self) -> bool {
        self.effects.is_empty() && self.children.is_empty()
    }
}

/// Does one kind of job.
#[async_trait::async_trait]
pub trait JobHandler<E>: Send + Sync {
    /// Runs the job. Must be idempotent: a re-run after a crash gives the
    /// same files and outcome (DESIGN invariant 2).
    async fn handle(&self, job: &Job) -> Result<Outcome<E>, HandlerError>;
}

/// The handlers by job kind (the card's `registerJobHandler`).
pub struct Registry<E> {
    handlers: HashMap<JobKind, Arc<dyn JobHandler<E>>>,
}

impl<E> Default for Registry<E> {
    fn default() -> Self {
        Self { handlers: HashMap::new() }
    }
}

impl<E> Clone for Registry<E> {
    fn clone(&self) -> Self {
        Self { handlers: self.handlers.clone() }
    }
}

impl<E> std::fmt::Debug for Registry<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.handlers.keys()).finish()
    }
}

impl<E> Registry<E> {
    /// Registers (or replaces) the handler of a job kind.
    pub fn register(&mut self, kind: JobKind, handler: impl JobHandler<E> + 'static) {
        self.handlers.insert(kind, Arc::new(handler));
    }

    /// The handler of a job kind.
    pub fn get(&self, kind: JobKind) -> Option<Arc<dyn JobHandler<E>>> {
        self.handlers.get(&kind).cloned()
    }
}

/// A job that ended FAILED for good, as [`Effects::failed`] hears of it.
#[derive(Debug, Clone, Copy)]
pub struct FailedJob<'a> {
    /// What it did.
    pub kind: JobKind,
    /// The image it worked on, if any.
    pub image_id: Option<&'a ImageId>,
    /// Its last error.
    pub error: &'a str,
}

/// What writing a success's effects found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The effects are written: the job's children are enqueued.
    Written,
    /// What the effects change no longer exists (an image deleted while its
    /// job ran): nothing was written, the job's children are not enqueued,
    /// and the effects have removed what the job left behind.
    SubjectGone,
}

/// What the queue's endings mean to the domain it serves, written in the
/// transaction of the ending itself (DESIGN invariant 2: a job's
/// completion, effects and children commit together or not at all).
#[async_trait::async_trait]
pub trait Effects: Send + Sync + 'static {
    /// What a handler's success changes.
    type Effect: Send + Sync + std::fmt::Debug + 'static;

    /// Writes the effects of one successful job, or finds their subject gone.
    async fn apply(&self, tx: &mut Tx<'_>, effects: &[Self::Effect], now: Millis) -> DbResult<Applied>;

    /// Records that a job ended FAILED for good: its handler gave up, or it
    /// ran out of attempts.
    async fn failed(&self, tx: &mut Tx<'_>, job: FailedJob<'_>, now: Millis) -> DbResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_keeps_every_cause_once() {
        let io = std::io::Error::other("disk full");
        let error = HandlerError::retryable("cannot write the thumbnails").caused_by(io);
        assert_eq!(error.chain(), "cannot write the thumbnails: disk full");
        assert_eq!(error.kind(), ErrorKind::Retryable);
        let repeated = HandlerError::permanent("bad: disk full").caused_by(std::io::Error::other("disk full"));
        assert_eq!(repeated.chain(), "bad: disk full");
    }
}
