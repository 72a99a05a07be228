//! `pictor cancel ID`: take a pending job out of the queue.

use clap::Args;

use super::{Outcome, ServerArgs, out, out_json};

/// `pictor cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The PENDING job to cancel.
    pub id: i64,
    /// Server, token, output.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Cancels a job.
///
/// # Errors
/// Unknown id, a job that is not PENDING, refused token, or the server could
/// not be reached.
pub async fn run(args: CancelArgs) -> anyhow::Result<Outcome> {
    let client = args.server.client()?;
    let job = client.cancel_job(args.id).await?;
    if args.server.json {
        out_json(&job)?;
    } else {
        out(&format!("job {} ({}) {}\n", job.id, job.kind, job.status))?;
    }
    Ok(Outcome::Done)
}
