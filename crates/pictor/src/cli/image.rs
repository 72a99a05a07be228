//! `pictor image ID`: one image with its asset URLs and jobs.

use clap::Args;
use indicatif::HumanBytes;
use pictor_client::models::Image;
use pictor_client::{Client, status_label};

use super::table::{Table, key_values};
use super::{Outcome, ServerArgs, or_dash, out, out_json, short_time};

/// `pictor image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Image id.
    pub id: String,
    /// Server, token, output.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Shows one image.
///
/// # Errors
/// Unknown id, or the server could not be reached.
pub async fn run(args: ImageArgs) -> anyhow::Result<Outcome> {
    let client = args.server.client()?;
    let image = client.get_image(&args.id).await?;
    if args.server.json {
        out_json(&image)?;
    } else {
        out(&describe(&client, &image))?;
    }
    Ok(Outcome::Done)
}

/// An image as key/value lines and a table of its jobs.
pub fn describe(client: &Client, image: &Image) -> String {
    let mut sizes: Vec<u32> = image.thumbnails.keys().filter_map(|s| s.parse().ok()).collect();
    sizes.sort_unstable();
    let thumbnails = sizes.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
    let mut pairs = vec![
        ("id", image.id.clone()),
        ("title", image.title.clone()),
        ("collection", or_dash(image.collection.as_deref()).to_owned()),
        ("status", format!("{} ({})", image.status, status_label(image.status))),
        ("format", format!("{} {}x{}", image.format, image.width, image.height)),
        ("size", HumanBytes(image.size_bytes).to_string()),
        ("checksum", image.checksum.clone()),
        ("uploaded", short_time(&image.uploaded_at)),
        ("updated", short_time(&image.updated_at)),
        ("thumbnails", or_dash(Some(&thumbnails)).to_owned()),
        ("thumbnail", or_dash(client.thumbnail_url(image, 256).as_deref()).to_owned()),
        ("preview", or_dash(client.preview_url(image).as_deref()).to_owned()),
    ];
    if let Some(error) = &image.error {
        pairs.push(("error", error.clone()));
    }
    let mut text = key_values(&pairs);
    if !image.processing_jobs.is_empty() {
        let mut jobs = Table::new(&["JOB", "TYPE", "STATUS", "ATTEMPTS"]);
        for job in &image.processing_jobs {
            jobs.row(vec![job.id.to_string(), job.kind.to_string(), job.status.to_string(), job.attempts.to_string()]);
        }
        text.push('\n');
        text.push_str(&jobs.render());
    }
    text
}
