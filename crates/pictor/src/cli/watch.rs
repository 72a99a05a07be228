//! `pictor watch [ID]`: an image's changes until it is stored or failed, or
//! without an ID a live summary of the queue (a line whenever it changes)
//! until Ctrl-C.

use std::time::Duration;

use clap::Args;
use futures_util::StreamExt;
use pictor_client::models::{ImageStatus, JobStatus};
use pictor_client::{Client, JobQuery, status_label};
use serde_json::json;

use super::{Outcome, ServerArgs, out};

/// Default time between two looks at the queue.
const DEFAULT_QUEUE_INTERVAL_MS: u64 = 1_000;

/// `pictor watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Image to follow; without it, the queue is summarised.
    pub id: Option<String>,
    /// Milliseconds between two looks at the queue.
    #[arg(long, default_value_t = DEFAULT_QUEUE_INTERVAL_MS)]
    pub interval_ms: u64,
    /// Server, token, output (`--json`: one JSON object per line).
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Follows an image or the queue.
///
/// # Errors
/// Unknown id, refused token, or the server could not be reached.
pub async fn run(args: WatchArgs) -> anyhow::Result<Outcome> {
    let client = args.server.client()?;
    match &args.id {
        Some(id) => follow_image(&client, id, args.server.json).await,
        None => {
            let interval = Duration::from_millis(args.interval_ms.max(100));
            tokio::select! {
                result = follow_queue(&client, interval, args.server.json) => result,
                _ = tokio::signal::ctrl_c() => Ok(Outcome::Done),
            }
        }
    }
}

/// One line per change of the image; [`Outcome::SomeFailed`] when it ends FAILED.
async fn follow_image(client: &Client, id: &str, json: bool) -> anyhow::Result<Outcome> {
    let mut changes = std::pin::pin!(client.status_changes(id));
    let mut last = None;
    while let Some(image) = changes.next().await {
        let image = image?;
        if json {
            out(&format!("{}\n", serde_json::to_string(&image)?))?;
        } else {
            let done = image.processing_jobs.iter().filter(|j| j.status == JobStatus::Completed).count();
            let mut line = format!(
                "{}  {:<10}  {}  ({done}/{} jobs done)",
                clock(),
                image.status.as_str(),
                status_label(image.status),
                image.processing_jobs.len()
            );
            if let Some(error) = &image.error {
                line.push_str(&format!(": {error}"));
            }
            line.push('\n');
            out(&line)?;
        }
        last = Some(image.status);
    }
    Ok(match last {
        Some(ImageStatus::Failed) => Outcome::SomeFailed,
        _ => Outcome::Done,
    })
}

/// A line with the jobs per state whenever the counts change; runs until
/// stopped.
async fn follow_queue(client: &Client, interval: Duration, json: bool) -> anyhow::Result<Outcome> {
    let mut last: Option<Vec<u64>> = None;
    loop {
        let mut counts = Vec::with_capacity(JobStatus::ALL.len());
        for status in JobStatus::ALL {
            let page =
                client.get_jobs(&JobQuery { status: Some(*status), limit: Some(1), ..JobQuery::default() }).await?;
            counts.push(page.pagination.total);
        }
        if last.as_ref() != Some(&counts) {
            if json {
                let by_status: serde_json::Map<String, serde_json::Value> =
                    JobStatus::ALL.iter().zip(&counts).map(|(s, n)| (s.as_str().to_owned(), json!(n))).collect();
                let line = json!({ "time": clock(), "jobs": by_status });
                out(&format!("{line}\n"))?;
            } else {
                let parts: Vec<String> = JobStatus::ALL
                    .iter()
                    .zip(&counts)
                    .map(|(s, n)| format!("{n} {}", s.as_str().to_lowercase()))
                    .collect();
                out(&format!("{}  jobs: {}\n", clock(), parts.join(", ")))?;
            }
            last = Some(counts);
        }
        tokio::time::sleep(interval).await;
    }
}

/// The time of day, UTC, as `HH:MM:SSZ`.
fn clock() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:02}:{:02}:{:02}Z", now.hour(), now.minute(), now.second())
}
