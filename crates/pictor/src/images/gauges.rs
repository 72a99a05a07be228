//! What `/metrics` reads from the database at scrape time: jobs by type
//! and status, images by status, and the wait of the oldest due job. Three
//! small grouped queries, so a scrape stays cheap.

use std::time::Duration;

use pictor_client::models::{ImageStatus, JobKind, JobStatus};

use super::{Images, ImagesResult};
use crate::db;

/// Counts at one moment, every known label present (zero when none), so
/// that a gauge falls back to zero rather than keep a stale value.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauges {
    /// `(type, status, count)` for every job kind and status.
    pub jobs: Vec<(&'static str, &'static str, i64)>,
    /// `(status, count)` for every image status.
    pub images: Vec<(&'static str, i64)>,
    /// How long the oldest due PENDING job has waited (zero when none).
    pub oldest_pending_wait: Duration,
}

impl Images {
    /// The scrape-time counts.
    ///
    /// # Errors
    /// The database failed.
    pub async fn gauges(&self) -> ImagesResult<Gauges> {
        let counted = db::jobs::counts_by_status_and_type(&self.db.pool).await?;
        let jobs = JobKind::ALL
            .iter()
            .flat_map(|k| JobStatus::ALL.iter().map(move |s| (k.as_str(), s.as_str())))
            .map(|(k, s)| {
                let n = counted.iter().filter(|(cs, ck, _)| cs == s && ck == k).map(|(_, _, n)| *n).sum();
                (k, s, n)
            })
            .collect();
        let counted = db::images::counts_by_status(&self.db.pool).await?;
        let images = ImageStatus::ALL
            .iter()
            .map(|s| (s.as_str(), counted.iter().filter(|(cs, _)| cs == s.as_str()).map(|(_, n)| *n).sum()))
            .collect();
        let now = self.now();
        let oldest = db::jobs::oldest_due_pending(&self.db.pool, now).await?;
        let waited = oldest.map_or(0, |at| now.get().saturating_sub(at.get()));
        Ok(Gauges { jobs, images, oldest_pending_wait: Duration::from_millis(u64::try_from(waited).unwrap_or(0)) })
    }

    /// The process's metrics recorder (the queue's).
    pub fn telemetry(&self) -> &crate::telemetry::Telemetry {
        &self.queue.telemetry
    }
}
