//! `pictor jobs`: a page of the queue, newest first, with filters.

use clap::Args;
use pictor_client::JobQuery;
use pictor_client::models::{JobKind, JobStatus};

use super::table::{Table, clip};
use super::{Outcome, ServerArgs, or_dash, out, out_json, page_footer, short_time};

/// `pictor jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only jobs in this state (PENDING, RUNNING, COMPLETED, FAILED, CANCELLED).
    #[arg(long)]
    pub status: Option<JobStatus>,
    /// Only jobs of this type (OFFLOAD_ORIGINAL, THUMBNAIL_GENERATION, PREVIEW_GENERATION).
    #[arg(long = "type")]
    pub kind: Option<JobKind>,
    /// Only the jobs of this image.
    #[arg(long)]
    pub image: Option<String>,
    /// Page size (1–1000).
    #[arg(long, default_value_t = 50)]
    pub limit: u64,
    /// Jobs to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Server, token, output.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Lists jobs.
///
/// # Errors
/// The server refused the filters or the token, or could not be reached.
pub async fn run(args: JobsArgs) -> anyhow::Result<Outcome> {
    let client = args.server.client()?;
    let list = client
        .get_jobs(&JobQuery {
            status: args.status,
            kind: args.kind,
            image_id: args.image,
            limit: Some(args.limit),
            offset: Some(args.offset),
            cursor: None,
        })
        .await?;
    if args.server.json {
        out_json(&list)?;
        return Ok(Outcome::Done);
    }
    let mut table = Table::new(&["ID", "TYPE", "STATUS", "ATTEMPTS", "IMAGE", "RUN AT", "LAST ERROR"]);
    for job in &list.jobs {
        table.row(vec![
            job.id.to_string(),
            job.kind.to_string(),
            job.status.to_string(),
            format!("{}/{}", job.attempts, job.max_attempts),
            or_dash(job.image_id.as_deref()).to_owned(),
            short_time(&job.run_at),
            clip(or_dash(job.last_error.as_deref()), 60),
        ]);
    }
    let mut text = if table.is_empty() { String::new() } else { table.render() };
    text.push_str(&page_footer("jobs", list.jobs.len(), &list.pagination));
    out(&text)?;
    Ok(Outcome::Done)
}
