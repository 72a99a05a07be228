//! Webhook events: when an image becomes STORED or FAILED, or is deleted,
//! and `PICTOR_WEBHOOK_URL` is set, a WEBHOOK_DELIVERY job is queued in the
//! very transaction of that change, so an event is sent exactly when its
//! change commits. Its payload is the body to send, `{event, image,
//! timestamp}`, the image as the card showed it at that moment, its
//! `processingJobs` included (for a deletion, those still running). The
//! handler (`handlers::webhook`) delivers it with the queue's retries; the
//! job has no image, so its failure never marks one.

use pictor_client::models::{Image, JobKind};
use serde::Serialize;

use super::view;
use crate::clock::Millis;
use crate::db::images::ImageRecord;
use crate::db::jobs::NewJob;
use crate::db::{self, Backend, DbResult, Tx};
use crate::handlers::webhook::DELIVERY_PRIORITY;

/// What happened to the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The original and every asset exist.
    Stored,
    /// Processing failed for good (`image.error` says why).
    Failed,
    /// The image was deleted.
    Deleted,
}

impl Event {
    /// The name in the body and the `X-Pictor-Event` header.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stored => "image.stored",
            Self::Failed => "image.failed",
            Self::Deleted => "image.deleted",
        }
    }
}

/// The body of a delivery.
#[derive(Debug, Serialize)]
struct Body<'a> {
    event: &'static str,
    image: &'a Image,
    timestamp: String,
}

/// Whether events are queued, and with how many attempts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Webhooks {
    /// Attempts of a delivery; `None` when no webhook is configured.
    attempts: Option<i64>,
}

impl Webhooks {
    /// Events queued with `attempts` attempts each when `enabled`.
    pub fn new(enabled: bool, attempts: i64) -> Self {
        Self { attempts: enabled.then_some(attempts) }
    }

    /// Queues `event` about `record` in `tx` (nothing when webhooks are off).
    ///
    /// # Errors
    /// The database failed.
    pub async fn queue(
        &self,
        tx: &mut Tx<'_>,
        backend: Backend,
        event: Event,
        record: &ImageRecord,
        now: Millis,
    ) -> DbResult<()> {
        let Some(attempts) = self.attempts else { return Ok(()) };
        let jobs = db::jobs::for_images(&mut **tx, &[&record.id]).await?;
        let image = view::image(record, &jobs.iter().collect::<Vec<_>>());
        let body = Body { event: event.name(), image: &image, timestamp: view::rfc3339(now) };
        let payload = serde_json::to_string(&body).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let job = NewJob {
            kind: JobKind::WebhookDelivery,
            payload,
            image_id: None,
            priority: DELIVERY_PRIORITY,
            dedupe_key: None,
        };
        db::jobs::insert(&mut **tx, backend, &job, attempts, now).await?;
        Ok(())
    }

    /// Queues `event` about image `id` as it is in `tx` now.
    ///
    /// # Errors
    /// The database failed.
    pub async fn queue_for(
        &self,
        tx: &mut Tx<'_>,
        backend: Backend,
        event: Event,
        id: &db::ImageId,
        now: Millis,
    ) -> DbResult<()> {
        if self.attempts.is_none() {
            return Ok(());
        }
        match db::images::get(&mut **tx, id).await? {
            Some(record) => self.queue(tx, backend, event, &record, now).await,
            None => Ok(()),
        }
    }

    /// Whether events are queued.
    pub fn enabled(&self) -> bool {
        self.attempts.is_some()
    }
}
