//! WEBHOOK_DELIVERY: POSTs an event's JSON body (`{event, image,
//! timestamp}`, the job's payload, written when the event happened) to
//! `PICTOR_WEBHOOK_URL`. With a secret, the body's HMAC-SHA256 goes in
//! `X-Pictor-Signature: sha256=<hex>`. A refused connection, a timeout, a
//! 408, 429 or 5xx is retried with the queue's backoff; another 4xx fails
//! the delivery for good. Image work never waits for it: deliveries run at
//! a lower priority than image jobs, and each has a short deadline.

use std::time::Duration;

use hmac::{KeyInit as _, Mac as _};
use reqwest::StatusCode;

use super::Outcome;
use crate::queue::Job;
use crate::queue::handler::{HandlerError, JobHandler};

/// The signature header: `sha256=` and the lowercase hex HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "x-pictor-signature";
/// The event name header (`image.stored`, `image.failed`, `image.deleted`).
pub const EVENT_HEADER: &str = "x-pictor-event";
/// The delivery's id (the job's), the same on every attempt: receivers may use it to drop repeats.
pub const DELIVERY_HEADER: &str = "x-pictor-delivery";
/// How long one attempt may take, connection included.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries' priority: below every job of a new upload (0 and 1), so they never hold up its
/// processing, and above regeneration (`payload::REGENERATION_PRIORITY`, -2).
pub const DELIVERY_PRIORITY: i64 = -1;

/// Where events go.
#[derive(Clone)]
pub struct WebhookTarget {
    /// `PICTOR_WEBHOOK_URL`.
    pub url: String,
    /// `PICTOR_WEBHOOK_SECRET`, the HMAC key.
    pub secret: Option<String>,
}

impl std::fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "…"))
            .finish()
    }
}

/// `sha256=<hex>` of the body's HMAC-SHA256 under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length: new_from_slice cannot fail for it.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The WEBHOOK_DELIVERY handler; with no target (the URL was unset after
/// events were queued) its deliveries fail at once, saying so.
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    target: Option<WebhookTarget>,
    client: reqwest::Client,
}

impl WebhookDelivery {
    /// Deliveries to `target`.
    pub fn new(target: Option<WebhookTarget>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .connect_timeout(DELIVERY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self { target, client }
    }
}

/// The event name inside a payload, for the header.
fn event_name(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("event").and_then(|e| e.as_str().map(str::to_owned)))
        .unwrap_or_default()
}

#[async_trait::async_trait]
impl JobHandler<super::ImageEffect> for WebhookDelivery {
    async fn handle(&self, job: &Job) -> Result<Outcome, HandlerError> {
        let Some(target) = &self.target else {
            return Err(HandlerError::permanent("PICTOR_WEBHOOK_URL is not set: nowhere to deliver"));
        };
        let mut request = self
            .client
            .post(&target.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, event_name(&job.payload))
            .header(DELIVERY_HEADER, job.id.get().to_string());
        if let Some(secret) = &target.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, job.payload.as_bytes()));
        }
        let response = request.body(job.payload.clone()).send().await.map_err(|e| {
            HandlerError::retryable(format!("cannot deliver the webhook to {}", target.url)).caused_by(e)
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(Outcome::default());
        }
        let message = format!("the webhook receiver {} answered {status}", target.url);
        let retry =
            status.is_server_error() || matches!(status, StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS);
        Err(if retry { HandlerError::retryable(message) } else { HandlerError::permanent(message) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231s_hmac_sha256() {
        // RFC 4231, test case 2.
        let mac = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(mac, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn the_event_name_comes_from_the_body() {
        assert_eq!(event_name(r#"{"event":"image.stored","image":{}}"#), "image.stored");
        assert_eq!(event_name("not json"), "");
    }
}
