//! The admin pages: job counts, the per-minute chart, the filtered job table
//! with Retry and Cancel, and one job's detail.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use pictor_client::models::{JobDetail, JobKind, JobStatus};
use serde::Deserialize;

use super::pages::not_found;
use super::{Choice, JOBS_PAGE_SIZE, PageState, Pager, chart, numbered_page, page_number, query};
use crate::api_error::ApiResult;
use crate::images::{ImagesError, JobFilter, parse_name};
use crate::queue::JobId;

/// One row of the counts table: a job type and its count per status.
#[derive(Debug)]
struct CountRow {
    kind: &'static str,
    cells: Vec<(i64, String)>,
    total: i64,
}

/// One job in the table.
#[derive(Debug)]
struct JobRow {
    id: i64,
    kind: &'static str,
    status: &'static str,
    status_class: String,
    image_id: String,
    attempts: String,
    last_error: String,
    updated_at: String,
    can_retry: bool,
    can_cancel: bool,
}

/// The states a job can be retried from.
const RETRYABLE: [JobStatus; 2] = [JobStatus::Failed, JobStatus::Cancelled];
/// The states a job can be cancelled from.
const CANCELLABLE: [JobStatus; 2] = [JobStatus::Pending, JobStatus::Failed];

fn can_retry(status: JobStatus) -> bool {
    RETRYABLE.contains(&status)
}

fn can_cancel(status: JobStatus) -> bool {
    CANCELLABLE.contains(&status)
}

/// When each button shows, as its `data-shown-when` (space-separated
/// states), so that `admin.js` shows and hides the buttons as the job moves
/// by these rules rather than a copy of them.
#[derive(Debug)]
struct ButtonRules {
    retry: String,
    cancel: String,
}

impl ButtonRules {
    fn new() -> Self {
        let names = |states: &[JobStatus]| states.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ");
        Self { retry: names(&RETRYABLE), cancel: names(&CANCELLABLE) }
    }
}

/// The first line of an error, cut to a table cell's length.
fn short(text: &str) -> String {
    const MAX_CHARS: usize = 90;
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > MAX_CHARS {
        format!("{}…", line.chars().take(MAX_CHARS).collect::<String>())
    } else {
        line.to_owned()
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "jobs.html", config = "src/web/askama.toml")]
struct JobsPage {
    active: &'static str,
    /// A token is set: offer to end the browser session.
    logout: bool,
    statuses_head: Vec<&'static str>,
    counts: Vec<CountRow>,
    status_totals: Vec<i64>,
    all_total: i64,
    failed_total: i64,
    chart: String,
    statuses: Vec<Choice>,
    kinds: Vec<Choice>,
    jobs: Vec<JobRow>,
    buttons: ButtonRules,
    total: i64,
    pager: Pager,
}

/// Query of the jobs page.
#[derive(Debug, Deserialize)]
pub struct JobsQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    page: Option<String>,
    /// The last job of the page before (its next link's cursor).
    after: Option<String>,
}

/// `GET /admin/jobs`: counts, chart, the filtered table.
///
/// # Errors
/// An unknown status or type (400), or a database failure.
pub async fn jobs(State(state): State<PageState>, Query(q): Query<JobsQuery>) -> ApiResult<Response> {
    let status = parse_name::<JobStatus>(q.status, "invalid_status")?;
    let kind = parse_name::<JobKind>(q.kind, "invalid_type")?;
    let page = page_number(q.page.as_deref());

    let counted = state.images.job_counts().await?;
    let count = |s: JobStatus, k: JobKind| {
        counted.iter().filter(|(cs, ck, _)| cs == s.as_str() && ck == k.as_str()).map(|(_, _, n)| *n).sum::<i64>()
    };
    let counts = JobKind::ALL
        .iter()
        .map(|k| {
            let cells: Vec<(i64, String)> = JobStatus::ALL
                .iter()
                .map(|s| {
                    (
                        count(*s, *k),
                        format!("/admin/jobs{}", query(&[("status", s.to_string()), ("type", k.to_string())])),
                    )
                })
                .collect();
            CountRow { kind: k.as_str(), total: cells.iter().map(|(n, _)| n).sum(), cells }
        })
        .collect();
    let status_totals: Vec<i64> =
        JobStatus::ALL.iter().map(|s| JobKind::ALL.iter().map(|k| count(*s, *k)).sum()).collect();
    let failed_total = JobKind::ALL.iter().map(|k| count(JobStatus::Failed, *k)).sum();
    let (completed, failed) = chart::per_minute(&state.images).await?;

    let filter = JobFilter { status, kind, image_id: None };
    let listed = state.images.jobs(&filter, numbered_page(page, JOBS_PAGE_SIZE, q.after)).await?;
    let total = i64::try_from(listed.pagination.total).unwrap_or(i64::MAX);
    let jobs = listed
        .jobs
        .iter()
        .map(|j| JobRow {
            id: j.id,
            kind: j.kind.as_str(),
            status: j.status.as_str(),
            status_class: j.status.as_str().to_ascii_lowercase(),
            image_id: j.image_id.clone().unwrap_or_default(),
            attempts: format!("{} of {}", j.attempts, j.max_attempts),
            last_error: j.last_error.as_deref().map(short).unwrap_or_default(),
            updated_at: j.updated_at.replace('T', " ").chars().take(19).collect(),
            can_retry: can_retry(j.status),
            can_cancel: can_cancel(j.status),
        })
        .collect();
    let status_text = status.map(JobStatus::as_str).unwrap_or("");
    let kind_text = kind.map(JobKind::as_str).unwrap_or("");
    let mut statuses = vec![Choice::new("", "Any status", status_text)];
    statuses.extend(JobStatus::ALL.iter().map(|s| Choice::new(s.as_str(), s.as_str(), status_text)));
    let mut kinds = vec![Choice::new("", "Any type", kind_text)];
    kinds.extend(JobKind::ALL.iter().map(|k| Choice::new(k.as_str(), k.as_str(), kind_text)));
    let pairs = [("status", status_text.to_owned()), ("type", kind_text.to_owned())];
    let page = JobsPage {
        logout: state.sessions.is_some(),
        active: "jobs",
        statuses_head: JobStatus::ALL.iter().map(|s| s.as_str()).collect(),
        counts,
        all_total: status_totals.iter().sum(),
        status_totals,
        failed_total,
        chart: chart::svg(&completed, &failed),
        statuses,
        kinds,
        jobs,
        buttons: ButtonRules::new(),
        total,
        pager: Pager::new("/admin/jobs", &pairs, page, JOBS_PAGE_SIZE, total, listed.pagination.next_cursor.clone()),
    };
    Ok(page.into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "job.html", config = "src/web/askama.toml")]
struct JobPage {
    active: &'static str,
    /// A token is set: offer to end the browser session.
    logout: bool,
    job: JobDetail,
    status_class: String,
    payload: String,
    can_retry: bool,
    can_cancel: bool,
    buttons: ButtonRules,
}

/// `GET /admin/jobs/{id}`: payload, retry state, error, Retry and Cancel.
///
/// # Errors
/// A database failure (an unknown job gets a 404 page).
pub async fn job(State(state): State<PageState>, Path(id): Path<String>) -> ApiResult<Response> {
    let Ok(number) = id.parse::<i64>() else {
        return Ok(not_found(format!("Job {id}")));
    };
    let detail = match state.images.job(JobId(number)).await {
        Ok(detail) => detail,
        Err(ImagesError::NotFound(_)) => return Ok(not_found(format!("Job {id}"))),
        Err(e) => return Err(e.into()),
    };
    let payload = serde_json::to_string_pretty(&detail.payload).unwrap_or_else(|_| detail.payload.to_string());
    let page = JobPage {
        logout: state.sessions.is_some(),
        active: "jobs",
        status_class: detail.status.as_str().to_ascii_lowercase(),
        can_retry: can_retry(detail.status),
        can_cancel: can_cancel(detail.status),
        buttons: ButtonRules::new(),
        payload,
        job: detail,
    };
    Ok(page.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buttons_carry_the_states_they_show_in() {
        let rules = ButtonRules::new();
        assert_eq!((rules.retry.as_str(), rules.cancel.as_str()), ("FAILED CANCELLED", "PENDING FAILED"));
        assert!(can_retry(JobStatus::Cancelled) && !can_retry(JobStatus::Pending));
        assert!(can_cancel(JobStatus::Pending) && !can_cancel(JobStatus::Completed));
    }

    #[test]
    fn errors_are_cut_to_their_first_line_in_the_table() {
        assert_eq!(short("first\nsecond"), "first");
        assert_eq!(short(&"x".repeat(100)).chars().count(), 91);
    }
}
