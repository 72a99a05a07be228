//! `pictor job ID`: one job with its payload, lease and retry state.

use clap::Args;
use pictor_client::models::JobDetail;

use super::table::key_values;
use super::{Outcome, ServerArgs, or_dash, out, out_json, short_time};

/// `pictor job`.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// Job id.
    pub id: i64,
    /// Server, token, output.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Shows one job.
///
/// # Errors
/// Unknown id, refused token, or the server could not be reached.
pub async fn run(args: JobArgs) -> anyhow::Result<Outcome> {
    let client = args.server.client()?;
    let job = client.get_job(args.id).await?;
    if args.server.json {
        out_json(&job)?;
    } else {
        out(&describe(&job))?;
    }
    Ok(Outcome::Done)
}

/// A job as key/value lines.
pub fn describe(job: &JobDetail) -> String {
    let time = |t: Option<&str>| t.map_or_else(|| "-".to_owned(), short_time);
    let mut pairs = vec![
        ("id", job.id.to_string()),
        ("type", job.kind.to_string()),
        ("status", job.status.to_string()),
        ("attempts", format!("{} of {}", job.attempts, job.max_attempts)),
        (
            "image",
            job.image.as_ref().map_or_else(
                || or_dash(job.payload["imageId"].as_str()).to_owned(),
                |i| format!("{} ({}, {})", i.id, i.title, i.status),
            ),
        ),
        ("payload", job.payload.to_string()),
        (
            "locked",
            match (&job.locked_by, job.locked) {
                (Some(by), true) => format!("by {by} until {}", time(job.locked_until.as_deref())),
                _ => "no".to_owned(),
            },
        ),
        ("next run", time(job.retry_info.next_run_at.as_deref())),
        ("created", short_time(&job.created_at)),
        ("updated", short_time(&job.updated_at)),
        ("finished", time(job.finished_at.as_deref())),
    ];
    if let Some(error) = &job.retry_info.last_error {
        pairs.push(("last error", error.clone()));
    }
    key_values(&pairs)
}
