//! `pictor edit ID`: change an image's title or collection.

use clap::Args;
use pictor_client::models::ImageUpdate;

use super::{Outcome, ServerArgs, image, out, out_json};

/// `pictor edit`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("change").required(true).multiple(true).args(["title", "collection"]))]
pub struct EditArgs {
    /// Image id.
    pub id: String,
    /// New title.
    #[arg(long)]
    pub title: Option<String>,
    /// New collection; `--collection ""` takes the image out of its collection.
    #[arg(long)]
    pub collection: Option<String>,
    /// Server, token, output.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Changes an image.
///
/// # Errors
/// Unknown id, an empty title, refused token, or the server could not be
/// reached.
pub async fn run(args: EditArgs) -> anyhow::Result<Outcome> {
    let client = args.server.client()?;
    let update = ImageUpdate {
        title: args.title,
        collection: args.collection.map(|c| Some(c).filter(|c| !c.trim().is_empty())),
    };
    let updated = client.update_image(&args.id, &update).await?;
    if args.server.json {
        out_json(&updated)?;
    } else {
        out(&image::describe(&client, &updated))?;
    }
    Ok(Outcome::Done)
}
