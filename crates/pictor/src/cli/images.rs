//! `pictor images`: a page of images, newest first, with filters.

use clap::Args;
use indicatif::HumanBytes;
use pictor_client::ImageQuery;
use pictor_client::models::ImageStatus;

use super::table::{Table, clip};
use super::{Outcome, ServerArgs, or_dash, out, out_json, page_footer, short_time};

/// `pictor images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only images in this collection.
    #[arg(long)]
    pub collection: Option<String>,
    /// Only images in this state (UPLOADED, INGESTED, PROCESSING, STORED, FAILED).
    #[arg(long)]
    pub status: Option<ImageStatus>,
    /// Page size (1–1000).
    #[arg(long, default_value_t = 50)]
    pub limit: u64,
    /// Images to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Server, token, output.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Lists images.
///
/// # Errors
/// The server refused the filters or could not be reached.
pub async fn run(args: ImagesArgs) -> anyhow::Result<Outcome> {
    let client = args.server.client()?;
    let list = client
        .get_images(&ImageQuery {
            collection: args.collection,
            status: args.status,
            limit: Some(args.limit),
            offset: Some(args.offset),
            cursor: None,
        })
        .await?;
    if args.server.json {
        out_json(&list)?;
        return Ok(Outcome::Done);
    }
    let mut table = Table::new(&["ID", "TITLE", "COLLECTION", "STATUS", "FORMAT", "PIXELS", "SIZE", "UPLOADED"]);
    for image in &list.data {
        table.row(vec![
            image.id.clone(),
            clip(&image.title, 32),
            clip(or_dash(image.collection.as_deref()), 20),
            image.status.to_string(),
            image.format.clone(),
            format!("{}x{}", image.width, image.height),
            HumanBytes(image.size_bytes).to_string(),
            short_time(&image.uploaded_at),
        ]);
    }
    let mut text = if table.is_empty() { String::new() } else { table.render() };
    text.push_str(&page_footer("images", list.data.len(), &list.pagination));
    out(&text)?;
    Ok(Outcome::Done)
}
