//! Ends an attempt: commits a handler's outcome with the job's completion
//! (children included, in the same transaction), or records its error and
//! schedules a retry or the final failure. Successful attempts go to the
//! [`BatchCompleter`], which commits whatever finished meanwhile in one
//! transaction (group commit): effect-free jobs in one statement, the others
//! each with their effects and children. Every write checks the lease.

use std::sync::Arc;
use std::time::Duration;

use pictor_client::models::{JobKind, JobStatus};
use sqlx::pool::PoolConnection;
use sqlx::{Any, Executor};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::job::Job;
use super::retry::RetryPolicy;
use super::{Queue, QueueError};
use crate::db::{self, Durability, Tx};
use crate::handlers::{HandlerError, ImageEffect, Outcome};

/// Attempts at writing a job's result before leaving it to the rescuer.
pub const COMPLETION_TRIES: u32 = 4;
/// Default most jobs the batch completer completes per statement.
pub const DEFAULT_COMPLETION_BATCH: usize = 500;

/// How an attempt ended, as committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// COMPLETED; `children` jobs were enqueued.
    Completed {
        /// Children actually inserted (deduplicated ones excluded).
        children: usize,
    },
    /// Back to PENDING, due again at `run_at`.
    Retrying {
        /// When (ms).
        run_at: i64,
    },
    /// FAILED for good; its image too.
    Failed,
    /// Another runner owns the job now: nothing was written.
    LeaseLost,
}

/// Commits a successful attempt.
///
/// # Errors
/// The database failed (the job stays RUNNING until its lease expires and is
/// rescued).
pub async fn complete(queue: &Queue, job: &Job, runner: &str, outcome: &Outcome) -> Result<Ending, QueueError> {
    let now = queue.clock.now_ms();
    let mut tx = queue.db.begin_write(Durability::Bookkeeping).await?;
    let ending = complete_in(&mut tx, queue, job.id, runner, outcome, now).await?;
    if ending == Ending::LeaseLost {
        return Ok(ending);
    }
    tx.commit().await?;
    if matches!(ending, Ending::Completed { children } if children > 0) {
        queue.wake();
    }
    Ok(ending)
}

/// Writes job `id`'s completion, its effects and its children in `tx`,
/// which the caller commits; nothing when the lease is lost.
async fn complete_in(
    tx: &mut Tx,
    queue: &Queue,
    id: i64,
    runner: &str,
    outcome: &Outcome,
    now: i64,
) -> Result<Ending, QueueError> {
    if !db::jobs::complete(&mut **tx, id, runner, now).await? {
        return Ok(Ending::LeaseLost);
    }
    // Images that have their original and every asset now.
    let mut complete = Vec::new();
    for effect in &outcome.effects {
        if let Some(image_id) = apply(tx, effect, now).await? {
            complete.push(image_id);
        }
    }
    let mut children = 0;
    for child in &outcome.children {
        if queue.enqueue_in(tx, child).await?.is_some() {
            children += 1;
        }
    }
    for image_id in complete {
        db::images::mark_stored_if_complete(&mut **tx, image_id, now).await?;
    }
    Ok(Ending::Completed { children })
}

/// Writes an effect; returns its image when that now has its original and
/// every asset.
async fn apply<'e>(tx: &mut Tx, effect: &'e ImageEffect, now: i64) -> Result<Option<&'e str>, sqlx::Error> {
    let (image_id, complete) = match effect {
        ImageEffect::Original { image_id, original_path } => {
            (image_id, db::images::set_original(&mut **tx, image_id, original_path, now).await?)
        }
        ImageEffect::Thumbnails { image_id, keys, thumbhash } => {
            (image_id, db::images::set_thumbnails(&mut **tx, image_id, keys, thumbhash.as_deref(), now).await?)
        }
        ImageEffect::Preview { image_id, preview_path, previews } => {
            (image_id, db::images::set_preview(&mut **tx, image_id, preview_path, previews, now).await?)
        }
    };
    Ok(complete.then_some(image_id.as_str()))
}

/// Records a failed attempt: a retry with backoff while attempts remain and
/// the error is retryable, else FAILED for the job and its image.
///
/// # Errors
/// The database failed.
pub async fn fail(
    queue: &Queue,
    policy: &RetryPolicy,
    job: &Job,
    runner: &str,
    error: &HandlerError,
) -> Result<Ending, QueueError> {
    let now = queue.clock.now_ms();
    let message = error.to_string();
    let mut tx = queue.db.begin_write(Durability::Bookkeeping).await?;
    let final_failure = matches!(error, HandlerError::Permanent(_)) || job.attempts >= job.max_attempts;
    if final_failure {
        if !db::jobs::fail(&mut *tx, job.id, runner, &message, now).await? {
            return Ok(Ending::LeaseLost);
        }
        if let Some(image_id) = &job.image_id {
            let for_person = format!("{} failed: {message}", job.kind);
            db::images::mark_failed(&mut *tx, image_id, &for_person, now).await?;
        }
        tx.commit().await?;
        return Ok(Ending::Failed);
    }
    let run_at = now + policy.next_delay_ms(job.attempts);
    if !db::jobs::retry_later(&mut *tx, job.id, runner, &message, run_at, now).await? {
        return Ok(Ending::LeaseLost);
    }
    tx.commit().await?;
    Ok(Ending::Retrying { run_at })
}

/// Marks the images of jobs the rescuer failed (out of attempts) FAILED.
///
/// # Errors
/// The database failed.
pub(crate) async fn fail_images_of(
    tx: &mut Tx,
    rescued: &[db::jobs::Rescued],
    message: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    for job in rescued.iter().filter(|j| j.status == JobStatus::Failed) {
        if let Some(image_id) = &job.image_id {
            db::images::mark_failed(&mut **tx, image_id, message, now).await?;
        }
    }
    Ok(())
}

/// Whether an outcome asks for nothing but the job's completion, so that the
/// [`BatchCompleter`] completes it in one statement with other such jobs.
pub fn is_batchable(outcome: &Outcome) -> bool {
    outcome.effects.is_empty() && outcome.children.is_empty()
}

/// Completes the listed jobs `runner` holds in one lease-checked statement
/// and says how each ended: [`Ending::Completed`], or [`Ending::LeaseLost`]
/// (nothing written for it) when another runner owns it now. Only for jobs
/// whose outcome [`is_batchable`]: a job with effects or children needs them
/// written in its completion's transaction ([`complete`]).
///
/// # Errors
/// The database failed: nothing was written, and the jobs stay RUNNING until
/// written again or rescued.
pub async fn complete_batch<'c, E: Executor<'c, Database = Any>>(
    queue: &Queue,
    exec: E,
    runner: &str,
    ids: &[i64],
) -> Result<Vec<(i64, Ending)>, QueueError> {
    let done = db::jobs::complete_many(exec, queue.db.backend, ids, runner, queue.clock.now_ms()).await?;
    Ok(ids
        .iter()
        .map(|id| {
            let ending = if done.contains(id) { Ending::Completed { children: 0 } } else { Ending::LeaseLost };
            (*id, ending)
        })
        .collect())
}

/// A finished job waiting in the batch completer's backlog.
#[derive(Debug)]
struct Finished {
    id: i64,
    kind: JobKind,
    outcome: Outcome,
}

/// Commits successful attempts in groups: whatever finished while the
/// previous commit ran (up to a maximum) goes into the next one, so one
/// commit (one fsync) serves many jobs without delaying any. Effect-free
/// jobs are completed by one statement; a job with effects or children has
/// its completion, effects and children written in the group's transaction
/// (DESIGN invariant 2 holds: they commit together or not at all). When a
/// group cannot be written, each of its jobs is written alone, so one bad
/// result cannot hold back the others.
#[derive(Debug, Clone)]
pub struct BatchCompleter {
    /// The backlog; bounded, so finished handlers wait when it is full.
    tx: mpsc::Sender<Finished>,
}

impl BatchCompleter {
    /// Starts the completer of `runner`: each group is at most `max_batch`
    /// jobs, the backlog at most two groups. `ended` gets the ids of each
    /// group once their endings are written, or once writing them failed
    /// [`COMPLETION_TRIES`] times (they are then left to the rescuer). The
    /// task ends when every clone of the returned completer is dropped and
    /// the backlog is written.
    pub fn start(
        queue: Queue,
        runner: Arc<str>,
        max_batch: usize,
        ended: impl Fn(&[i64]) + Send + 'static,
    ) -> (Self, JoinHandle<()>) {
        let max_batch = max_batch.max(1);
        let (tx, rx) = mpsc::channel(max_batch.saturating_mul(2));
        let task = tokio::spawn(run_batches(rx, queue, runner, max_batch, ended));
        (Self { tx }, task)
    }

    /// Hands over a successful attempt of a job `runner` holds; waits only
    /// while the backlog is full.
    ///
    /// # Errors
    /// The completer has stopped (its runner is shutting down); the error
    /// gives the outcome back, for the caller to complete the job itself.
    pub async fn submit(&self, job: &Job, outcome: Outcome) -> Result<(), CompleterStopped> {
        self.tx
            .send(Finished { id: job.id, kind: job.kind, outcome })
            .await
            .map_err(|refused| CompleterStopped(refused.0.outcome))
    }
}

/// The batch completer has stopped (its runner is shutting down); holds the
/// outcome it was not given.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the batch completer has stopped")]
pub struct CompleterStopped(pub Outcome);

async fn run_batches(
    mut rx: mpsc::Receiver<Finished>,
    queue: Queue,
    runner: Arc<str>,
    max_batch: usize,
    ended: impl Fn(&[i64]),
) {
    let mut batch = Vec::with_capacity(max_batch);
    // The effect-free completions' own connection, as the runner's claims
    // have theirs.
    let mut conn: Option<PoolConnection<Any>> = None;
    while rx.recv_many(&mut batch, max_batch).await > 0 {
        let endings = write_batch(&queue, &mut conn, &runner, &batch).await;
        for (finished, ending) in batch.iter().zip(&endings) {
            match ending {
                Some(Ending::LeaseLost) => tracing::warn!(target: "job_runner", job = finished.id,
                    kind = %finished.kind, "lease lost to another runner; result dropped"),
                Some(Ending::Completed { children }) => tracing::info!(target: "job_runner", job = finished.id,
                    kind = %finished.kind, children, "job completed"),
                Some(_) | None => {}
            }
        }
        ended(&batch.iter().map(|f| f.id).collect::<Vec<_>>());
        batch.clear();
    }
}

/// Each job's ending, `None` where it could not be written.
async fn write_batch(
    queue: &Queue,
    conn: &mut Option<PoolConnection<Any>>,
    runner: &str,
    batch: &[Finished],
) -> Vec<Option<Ending>> {
    let with_effects = batch.iter().any(|f| !is_batchable(&f.outcome));
    if with_effects && batch.len() > 1 {
        match write_group(queue, conn, runner, batch).await {
            Ok(endings) => return endings.into_iter().map(Some).collect(),
            Err(e) => {
                tracing::warn!(target: "job_runner", jobs = batch.len(), error = %e,
                    "cannot record the jobs' results together; recording each alone");
                let mut endings = Vec::with_capacity(batch.len());
                for finished in batch {
                    let alone = write_with_retries(queue, conn, runner, std::slice::from_ref(finished)).await;
                    endings.push(alone.and_then(|mut one| one.pop()));
                }
                return endings;
            }
        }
    }
    match write_with_retries(queue, conn, runner, batch).await {
        Some(endings) => endings.into_iter().map(Some).collect(),
        None => vec![None; batch.len()],
    }
}

/// [`write_group`], retried with backoff up to [`COMPLETION_TRIES`] times.
async fn write_with_retries(
    queue: &Queue,
    conn: &mut Option<PoolConnection<Any>>,
    runner: &str,
    batch: &[Finished],
) -> Option<Vec<Ending>> {
    let mut delay = Duration::from_millis(500);
    for attempt in 1..=COMPLETION_TRIES {
        match write_group(queue, conn, runner, batch).await {
            Ok(endings) => return Some(endings),
            Err(e) if attempt < COMPLETION_TRIES => {
                tracing::warn!(target: "job_runner", jobs = batch.len(), error = %e,
                    "cannot record the jobs' results; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => tracing::error!(target: "job_runner", jobs = batch.len(), error = %e,
                "cannot record the jobs' results; leaving them to the rescuer"),
        }
    }
    None
}

/// Writes a group's endings in one commit: effect-free jobs by one statement
/// (on the completer's own connection when that is all there is), the others
/// each with their effects and children, all in one transaction.
async fn write_group(
    queue: &Queue,
    conn: &mut Option<PoolConnection<Any>>,
    runner: &str,
    batch: &[Finished],
) -> Result<Vec<Ending>, QueueError> {
    let plain: Vec<i64> = batch.iter().filter(|f| is_batchable(&f.outcome)).map(|f| f.id).collect();
    if plain.len() == batch.len() {
        let written = if queue.db.may_hold_writer() {
            match conn {
                Some(held) => complete_batch(queue, &mut **held, runner, &plain).await,
                None => match queue.db.write_connection(Durability::Bookkeeping).await {
                    Ok(held) => complete_batch(queue, &mut **conn.insert(held), runner, &plain).await,
                    Err(e) => Err(e.into()),
                },
            }
        } else {
            match queue.db.write_connection(Durability::Bookkeeping).await {
                Ok(mut writer) => complete_batch(queue, &mut *writer, runner, &plain).await,
                Err(e) => Err(e.into()),
            }
        };
        if written.is_err() {
            *conn = None;
        }
        return Ok(written?.into_iter().map(|(_, ending)| ending).collect());
    }
    let now = queue.clock.now_ms();
    let mut tx = queue.db.begin_write(Durability::Bookkeeping).await?;
    let plain_endings =
        if plain.is_empty() { Vec::new() } else { complete_batch(queue, &mut *tx, runner, &plain).await? };
    // In the order of `plain`, which is the batch's order.
    let mut plain_endings = plain_endings.into_iter().map(|(_, ending)| ending);
    let mut endings = Vec::with_capacity(batch.len());
    let mut children_inserted = false;
    for finished in batch {
        let ending = if is_batchable(&finished.outcome) {
            plain_endings.next().unwrap_or(Ending::LeaseLost)
        } else {
            complete_in(&mut tx, queue, finished.id, runner, &finished.outcome, now).await?
        };
        children_inserted |= matches!(ending, Ending::Completed { children } if children > 0);
        endings.push(ending);
    }
    tx.commit().await?;
    if children_inserted {
        queue.wake();
    }
    Ok(endings)
}
