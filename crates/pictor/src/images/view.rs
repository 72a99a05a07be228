//! Images and jobs as the API, the pages and the event stream show them:
//! database records turned into the wire shapes of `pictor_client::models`
//! (URLs, RFC 3339 times, derived flags).

use std::collections::BTreeMap;

use pictor_client::models::{Image, ImageStatus, JobDetail, JobSummary, Pagination, ProcessingJob, RetryInfo};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::clock::Millis;
use crate::db::images::ImageRecord;
use crate::queue::Job;

/// RFC 3339 of a time.
pub fn rfc3339(at: Millis) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.get()) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// The URL path of a storage key.
pub fn asset_url(key: &str) -> String {
    format!("/{key}")
}

/// An image with its jobs.
pub fn image(record: &ImageRecord, jobs: &[&Job]) -> Image {
    let thumbnails: BTreeMap<String, String> =
        record.thumbnails.iter().map(|(size, key)| (size.to_string(), asset_url(key))).collect();
    Image {
        id: record.id.to_string(),
        title: record.title.clone(),
        collection: record.collection.clone(),
        status: record.status,
        checksum: record.checksum.clone(),
        size_bytes: u64::try_from(record.size_bytes).unwrap_or(0),
        format: record.format.clone(),
        width: u32::try_from(record.width).unwrap_or(0),
        height: u32::try_from(record.height).unwrap_or(0),
        thumbnail_path: record.thumbnail_path.as_deref().map(asset_url),
        thumbnails,
        thumbhash: record.thumbhash.clone(),
        preview_path: record.preview_path.as_deref().map(asset_url),
        previews: record.previews.iter().map(|(format, key)| (format.clone(), asset_url(key))).collect(),
        processing_jobs: jobs
            .iter()
            .map(|j| ProcessingJob { id: j.id.get(), kind: j.kind, status: j.status, attempts: j.attempts })
            .collect(),
        is_processing: !matches!(record.status, ImageStatus::Stored | ImageStatus::Failed),
        is_stored: record.status == ImageStatus::Stored,
        error: record.last_error.clone(),
        uploaded_at: rfc3339(record.created_at),
        updated_at: rfc3339(record.updated_at),
    }
}

/// A job as the admin list shows it.
pub fn job_summary(job: &Job) -> JobSummary {
    JobSummary {
        id: job.id.get(),
        kind: job.kind,
        status: job.status,
        image_id: job.image_id.as_ref().map(ToString::to_string),
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        last_error: job.last_error.clone(),
        run_at: rfc3339(job.run_at),
        created_at: rfc3339(job.created_at),
        updated_at: rfc3339(job.updated_at),
        finished_at: job.finished_at.map(rfc3339),
    }
}

/// A job with its retry state and image.
pub fn job_detail(job: &Job, image: Option<Image>, now: Millis) -> JobDetail {
    let payload = serde_json::from_str(&job.payload).unwrap_or(serde_json::Value::String(job.payload.clone()));
    let locked = job.status == pictor_client::models::JobStatus::Running && job.locked_until.is_some_and(|t| t > now);
    JobDetail {
        id: job.id.get(),
        kind: job.kind,
        status: job.status,
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        payload,
        locked,
        locked_by: job.locked_by.clone(),
        locked_until: job.locked_until.map(rfc3339),
        retry_info: RetryInfo {
            attempt: job.attempts,
            max_attempts: job.max_attempts,
            next_run_at: (job.status == pictor_client::models::JobStatus::Pending).then(|| rfc3339(job.run_at)),
            last_error: job.last_error.clone(),
        },
        image,
        created_at: rfc3339(job.created_at),
        updated_at: rfc3339(job.updated_at),
        finished_at: job.finished_at.map(rfc3339),
    }
}

/// Paging figures of a page read at `offset`: `next_cursor` when more follow.
pub fn pagination(total: i64, limit: i64, offset: i64, has_more: bool, next_cursor: Option<String>) -> Pagination {
    let (total, limit, offset) = (total.max(0) as u64, limit.max(0) as u64, offset.max(0) as u64);
    Pagination { total, limit, offset, has_more, next_cursor: next_cursor.filter(|_| has_more) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_utc_with_milliseconds() {
        assert_eq!(rfc3339(Millis(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(Millis(1_700_000_000_123)), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn the_next_cursor_is_given_only_when_items_follow_the_page() {
        let more = pagination(10, 2, 0, true, Some("7".into()));
        assert_eq!((more.has_more, more.next_cursor.as_deref()), (true, Some("7")));
        let last = pagination(10, 5, 5, false, Some("7".into()));
        assert_eq!((last.has_more, last.next_cursor), (false, None));
    }
}
