//! `pictor reprocess (--all | --collection C | --status S) [--dry-run]`:
//! queues the regeneration of the images whose assets were made under other
//! settings than this configuration's. A service command like `gc`: it reads
//! the database of its configuration directly, so run it with the settings
//! the workers run with (the same `.env` or environment).

use std::io::Write as _;

use anyhow::Context as _;
use clap::Args;
use pictor_client::models::ImageStatus;

use crate::command::LogArgs;
use crate::config::Config;
use crate::images::{ReprocessProgress, ReprocessSelection};

/// `pictor reprocess`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("selector").required(true).multiple(true).args(["all", "collection", "status"])))]
pub struct ReprocessArgs {
    /// Every outdated STORED image.
    #[arg(long, conflicts_with_all = ["collection", "status"])]
    pub all: bool,
    /// Only the outdated images of this collection.
    #[arg(long)]
    pub collection: Option<String>,
    /// Only the outdated images in this state: STORED, or FAILED (those whose
    /// original was stored go back to PROCESSING with their new jobs).
    #[arg(long)]
    pub status: Option<ImageStatus>,
    /// List what would be regenerated and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How log lines are written.
    #[command(flatten)]
    pub log: LogArgs,
    /// The database, and the asset settings images are compared with.
    #[command(flatten)]
    pub config: Config,
}

/// Lists the outdated images and, unless `--dry-run`, queues their
/// regeneration, with a progress line per batch on stderr.
///
/// # Errors
/// Bad settings, the database cannot be reached, or queuing failed (what
/// was queued stays queued; running it again queues the rest).
pub async fn run(args: ReprocessArgs) -> anyhow::Result<()> {
    let app = crate::app::build(&args.config, "").await?;
    let assets = &app.handlers.assets;
    println!("thumbnails now: {}", assets.thumbnail_settings(&assets.thumbnail_sizes));
    println!("preview now: {}", assets.preview_settings());
    let selection = ReprocessSelection { collection: args.collection.clone(), status: args.status };
    let verb = if args.dry_run { "would regenerate" } else { "regenerating" };
    let done = app
        .images
        .reprocess(&selection, args.dry_run, |progress: &ReprocessProgress<'_>| {
            let mut stdout = std::io::stdout().lock();
            for image in progress.batch {
                // A closed pipe (`| head`) must not stop the queuing.
                let _ = writeln!(stdout, "{verb} {} ({})", image.id, image.status);
            }
            eprintln!(
                "reprocess: {} outdated image(s) so far, {} queued",
                progress.so_far.matched, progress.so_far.enqueued
            );
        })
        .await
        .context("reprocessing stopped; run it again to queue the rest")?;
    if args.dry_run {
        println!("{} outdated image(s) would be regenerated; nothing changed (dry run)", done.matched);
    } else {
        println!(
            "{} outdated image(s); regeneration queued for {} (the others' is queued or running already)",
            done.matched, done.enqueued
        );
    }
    Ok(())
}
