//! `pictor delete ID`: remove an image, its assets and its idle jobs.

use clap::Args;
use serde_json::json;

use super::{Outcome, ServerArgs, out, out_json};

/// `pictor delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Image id.
    pub id: String,
    /// Server, token, output.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Deletes an image.
///
/// # Errors
/// Unknown id, refused token, or the server could not be reached.
pub async fn run(args: DeleteArgs) -> anyhow::Result<Outcome> {
    let client = args.server.client()?;
    client.delete_image(&args.id).await?;
    if args.server.json {
        out_json(&json!({ "deleted": args.id }))?;
    } else {
        out(&format!("image {} deleted\n", args.id))?;
    }
    Ok(Outcome::Done)
}
