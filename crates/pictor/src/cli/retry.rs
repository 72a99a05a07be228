//! `pictor retry ID` / `pictor retry --all-failed`: put jobs back in the queue.

use clap::Args;
use serde_json::json;

use super::{Outcome, ServerArgs, out, out_json};

/// `pictor retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The FAILED or CANCELLED job to re-queue.
    #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
    pub id: Option<i64>,
    /// Re-queue every FAILED job instead.
    #[arg(long)]
    pub all_failed: bool,
    /// Server, token, output.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Re-queues one job or all failed ones.
///
/// # Errors
/// Unknown id, a job that is neither FAILED nor CANCELLED, refused token, or
/// the server could not be reached.
pub async fn run(args: RetryArgs) -> anyhow::Result<Outcome> {
    let client = args.server.client()?;
    match args.id {
        Some(id) => {
            let job = client.retry_job(id).await?;
            if args.server.json {
                out_json(&job)?;
            } else {
                out(&format!(
                    "job {} ({}) re-queued: {}, {} of {} attempts used\n",
                    job.id, job.kind, job.status, job.attempts, job.max_attempts
                ))?;
            }
        }
        None => {
            let retried = client.retry_all_failed().await?;
            if args.server.json {
                out_json(&json!({ "retried": retried }))?;
            } else {
                out(&format!("re-queued {retried} failed jobs\n"))?;
            }
        }
    }
    Ok(Outcome::Done)
}
