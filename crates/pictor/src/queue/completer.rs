//! Ends an attempt: commits a handler's outcome with the job's completion
//! (children included, in the same transaction), or records its error and
//! schedules a retry or the final failure. Every write checks the lease.

use pictor_client::models::JobStatus;

use super::job::Job;
use super::retry::RetryPolicy;
use super::{Queue, QueueError};
use crate::db::{self, Tx};
use crate::handlers::{HandlerError, ImageEffect, Outcome};

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
    let mut tx = queue.db.begin_write().await?;
    if !db::jobs::complete(&mut *tx, job.id, runner, now).await? {
        return Ok(Ending::LeaseLost);
    }
    let mut touched = Vec::new();
    for effect in &outcome.effects {
        touched.push(apply(&mut tx, effect, now).await?);
    }
    let mut children = 0;
    for child in &outcome.children {
        if queue.enqueue_in(&mut tx, child).await?.is_some() {
            children += 1;
        }
    }
    for image_id in &touched {
        db::images::mark_stored_if_complete(&mut *tx, image_id, now).await?;
    }
    tx.commit().await?;
    if children > 0 {
        queue.wake();
    }
    Ok(Ending::Completed { children })
}

async fn apply(tx: &mut Tx, effect: &ImageEffect, now: i64) -> Result<String, sqlx::Error> {
    match effect {
        ImageEffect::Original { image_id, original_path } => {
            db::images::set_original(&mut **tx, image_id, original_path, now).await?;
            Ok(image_id.clone())
        }
        ImageEffect::Thumbnails { image_id, keys } => {
            db::images::set_thumbnails(&mut **tx, image_id, keys, now).await?;
            Ok(image_id.clone())
        }
        ImageEffect::Preview { image_id, preview_path } => {
            db::images::set_preview(&mut **tx, image_id, preview_path, now).await?;
            Ok(image_id.clone())
        }
    }
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
    let mut tx = queue.db.begin_write().await?;
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
