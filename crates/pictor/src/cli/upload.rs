//! `pictor upload PATH...`: walks folders (skipping non-images, recognised
//! by magic bytes), streams each file with a progress bar per file and one
//! overall, optionally waits for processing, then prints a summary table.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use futures_util::StreamExt;
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressStyle};
use pictor_client::models::{Image, ImageStatus};
use pictor_client::{Client, UploadOptions, is_settled, status_label};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::table::{Table, clip};
use super::{Outcome, ServerArgs, out, out_json};

/// Default uploads at once.
const DEFAULT_CONCURRENCY: u16 = 4;
/// Default longest wait for one image, seconds.
const DEFAULT_WAIT_TIMEOUT_SECS: u64 = 600;
/// Images followed at once while waiting; bounds the polling load on the server.
const WAIT_CONCURRENCY: usize = 16;

/// `pictor upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// Files and folders. Files are uploaded as given; in folders, files
    /// that are not images (by their first bytes) are skipped with a note.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Title of every uploaded image (default: each file's name).
    #[arg(long)]
    pub title: Option<String>,
    /// Collection to put every uploaded image in.
    #[arg(long)]
    pub collection: Option<String>,
    /// Walk sub-folders too (otherwise only a folder's own files).
    #[arg(long, short)]
    pub recursive: bool,
    /// Uploads at once (1–64).
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
    /// Wait until each image is STORED or FAILED; a FAILED one counts as failed.
    #[arg(long)]
    pub wait: bool,
    /// Longest wait for one image, seconds.
    #[arg(long, default_value_t = DEFAULT_WAIT_TIMEOUT_SECS)]
    pub wait_timeout: u64,
    /// Server, token, output.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// What happened to one file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct FileResult {
    /// The file as found.
    file: PathBuf,
    /// `stored`, `uploaded`, `failed` or `skipped`.
    result: &'static str,
    /// The image, once the server took the file.
    image_id: Option<String>,
    /// File size.
    size_bytes: u64,
    /// The image's last known state.
    status: Option<ImageStatus>,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl FileResult {
    fn new(file: &Path, size_bytes: u64) -> Self {
        Self { file: file.to_owned(), result: "failed", image_id: None, size_bytes, status: None, error: None }
    }

    fn failed(mut self, why: String) -> Self {
        self.result = "failed";
        self.error = Some(why);
        self
    }
}

/// A file to upload.
#[derive(Debug)]
struct Candidate {
    path: PathBuf,
    size: u64,
}

/// Uploads, waits if asked, prints the summary.
///
/// # Errors
/// The server could not be reached (checked before any upload).
pub async fn run(args: UploadArgs) -> anyhow::Result<Outcome> {
    let client = args.server.client()?;
    let (candidates, mut results) = collect(&args.paths, args.recursive);
    if !candidates.is_empty() {
        // One cheap request first, so that a wrong address is one clear
        // error (exit 2) rather than a table of identical failures.
        client.health().await?;
    }
    results.extend(upload_all(&client, &args, candidates).await);
    results.sort_by(|a, b| a.file.cmp(&b.file));

    let failed = results.iter().filter(|r| r.result == "failed").count();
    if args.server.json {
        out_json(&results)?;
    } else {
        out(&summary(&results))?;
    }
    Ok(if failed > 0 { Outcome::SomeFailed } else { Outcome::Done })
}

/// The files to upload, and the results of paths that cannot be (unreadable
/// paths fail; non-images inside folders are skipped with a note).
fn collect(paths: &[PathBuf], recursive: bool) -> (Vec<Candidate>, Vec<FileResult>) {
    let mut candidates = Vec::new();
    let mut results = Vec::new();
    for path in paths {
        match std::fs::metadata(path) {
            Err(e) => results.push(FileResult::new(path, 0).failed(format!("cannot read: {e}"))),
            Ok(meta) if meta.is_dir() => walk(path, recursive, &mut candidates, &mut results),
            Ok(meta) => candidates.push(Candidate { path: path.clone(), size: meta.len() }),
        }
    }
    (candidates, results)
}

/// A folder's image files, sorted; hidden entries are left out.
fn walk(dir: &Path, recursive: bool, found: &mut Vec<Candidate>, results: &mut Vec<FileResult>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            results.push(FileResult::new(dir, 0).failed(format!("cannot list the folder: {e}")));
            return;
        }
    };
    let mut paths: Vec<PathBuf> =
        entries.flatten().filter(|e| !e.file_name().to_string_lossy().starts_with('.')).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        // `metadata` follows symlinks to files; symlinked folders are not
        // descended (no loops).
        let is_link_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_symlink()) && path.is_dir();
        match std::fs::metadata(&path) {
            Err(e) => results.push(FileResult::new(&path, 0).failed(format!("cannot read: {e}"))),
            Ok(meta) if meta.is_dir() => {
                if recursive && !is_link_dir {
                    walk(&path, recursive, found, results);
                }
            }
            Ok(meta) => match sniff(&path) {
                Ok(Some(_)) => found.push(Candidate { path, size: meta.len() }),
                Ok(None) => {
                    let why = "not an image (its first bytes match no known format)";
                    eprintln!("note: skipping {}: {why}", path.display());
                    let mut skipped = FileResult::new(&path, meta.len());
                    skipped.result = "skipped";
                    skipped.error = Some(why.to_owned());
                    results.push(skipped);
                }
                Err(e) => results.push(FileResult::new(&path, meta.len()).failed(format!("cannot read: {e}"))),
            },
        }
    }
}

/// The image format of a file by its magic bytes.
fn sniff(path: &Path) -> std::io::Result<Option<pictor_imaging::Format>> {
    let mut prefix = Vec::with_capacity(pictor_imaging::SNIFF_LEN);
    std::fs::File::open(path)?.take(pictor_imaging::SNIFF_LEN as u64).read_to_end(&mut prefix)?;
    Ok(pictor_imaging::sniff(&prefix))
}

/// Uploads every candidate, `concurrency` at a time, each followed to the
/// end of its processing when `--wait` is given.
async fn upload_all(client: &Client, args: &UploadArgs, candidates: Vec<Candidate>) -> Vec<FileResult> {
    let bars = MultiProgress::new();
    let total_bytes = candidates.iter().map(|c| c.size).sum();
    let overall = bars.add(ProgressBar::new(total_bytes));
    overall.set_style(style("{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}"));
    overall.set_prefix("all files");
    let count = candidates.len();
    overall.set_message(format!("0/{count} uploaded"));
    let processing = args.wait.then(|| {
        let bar = bars.add(ProgressBar::new(count as u64));
        bar.set_style(style("{prefix:>10} [{bar:30}] {pos}/{len} settled {msg}"));
        bar.set_prefix("processing");
        bar
    });

    let uploads = Arc::new(Semaphore::new(usize::from(args.concurrency)));
    let waits = Arc::new(Semaphore::new(WAIT_CONCURRENCY));
    let options = UploadOptions { title: args.title.clone(), collection: args.collection.clone() };
    let shared = Arc::new(Shared {
        client: client.clone(),
        options,
        bars,
        overall,
        processing,
        uploads,
        waits,
        wait: args.wait.then(|| Duration::from_secs(args.wait_timeout)),
        uploaded: std::sync::atomic::AtomicUsize::new(0),
        count,
    });
    let mut tasks = JoinSet::new();
    for candidate in candidates {
        tasks.spawn(one_file(Arc::clone(&shared), candidate));
    }
    let mut results = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(result) => results.push(result),
            Err(e) => results.push(FileResult::new(Path::new("?"), 0).failed(format!("upload task ended: {e}"))),
        }
    }
    shared.overall.finish_and_clear();
    if let Some(bar) = &shared.processing {
        bar.finish_and_clear();
    }
    results
}

/// What the upload tasks share.
struct Shared {
    client: Client,
    options: UploadOptions,
    bars: MultiProgress,
    overall: ProgressBar,
    /// Settled images of all uploaded, with `--wait`.
    processing: Option<ProgressBar>,
    /// One permit per upload in flight (`--concurrency`).
    uploads: Arc<Semaphore>,
    /// One permit per image being followed.
    waits: Arc<Semaphore>,
    /// How long to wait for each image, with `--wait`.
    wait: Option<Duration>,
    uploaded: std::sync::atomic::AtomicUsize,
    count: usize,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
}

/// Uploads one file, then follows it while `--wait` holds.
async fn one_file(shared: Arc<Shared>, candidate: Candidate) -> FileResult {
    let result = FileResult::new(&candidate.path, candidate.size);
    let name = candidate
        .path
        .file_name()
        .map_or_else(|| candidate.path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let uploaded = {
        let Ok(_permit) = shared.uploads.acquire().await else {
            return result.failed("upload cancelled".into());
        };
        let bar = shared.bars.add(ProgressBar::new(candidate.size));
        bar.set_style(style("{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {msg}"));
        bar.set_prefix(clip(&name, 10));
        bar.set_message(name.clone());
        let overall = shared.overall.clone();
        let file_bar = bar.clone();
        let last = std::sync::atomic::AtomicU64::new(0);
        let answer = shared
            .client
            .upload_image(&candidate.path, &shared.options, move |p| {
                let before = last.swap(p.sent, std::sync::atomic::Ordering::Relaxed);
                file_bar.set_position(p.sent);
                overall.inc(p.sent.saturating_sub(before));
            })
            .await;
        bar.finish_and_clear();
        answer
    };
    let done = shared.uploaded.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    shared.overall.set_message(format!("{done}/{} uploaded", shared.count));
    let response = match uploaded {
        Ok(response) => response,
        Err(e) => {
            let _ = shared.bars.println(format!("failed    {name}: {e}"));
            return result.failed(format!("{:#}", anyhow::Error::from(e)));
        }
    };
    let mut result = FileResult {
        result: "uploaded",
        image_id: Some(response.image_id.clone()),
        status: Some(response.status),
        ..result
    };
    let Some(timeout) = shared.wait else {
        let _ = shared.bars.println(format!("uploaded  {name}"));
        return result;
    };
    let followed = follow(&shared, &name, &response.image_id, timeout).await;
    if let Some(bar) = &shared.processing {
        bar.inc(1);
    }
    match followed {
        Ok(image) if image.status == ImageStatus::Stored => {
            let _ = shared.bars.println(format!("stored    {name}"));
            result.result = "stored";
            result.status = Some(image.status);
            result
        }
        Ok(image) => {
            let why = image.error.unwrap_or_else(|| "processing failed".into());
            let _ = shared.bars.println(format!("failed    {name}: {why}"));
            result.status = Some(image.status);
            result.failed(why)
        }
        Err(e) => {
            let _ = shared.bars.println(format!("failed    {name}: {e}"));
            result.failed(format!("{:#}", anyhow::Error::from(e)))
        }
    }
}

/// Follows an image until it is STORED or FAILED, its bar showing the stage.
async fn follow(shared: &Shared, name: &str, id: &str, timeout: Duration) -> Result<Image, pictor_client::Error> {
    let Ok(_permit) = shared.waits.acquire().await else {
        return shared.client.get_image(id).await;
    };
    let bar = shared.bars.add(ProgressBar::new_spinner());
    bar.set_style(
        ProgressStyle::with_template("{prefix:>10} {spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(clip(name, 10));
    bar.enable_steady_tick(Duration::from_millis(120));
    let follow = async {
        let mut changes = std::pin::pin!(shared.client.status_changes(id));
        let mut last = None;
        while let Some(image) = changes.next().await {
            let image = image?;
            let done = image
                .processing_jobs
                .iter()
                .filter(|j| j.status == pictor_client::models::JobStatus::Completed)
                .count();
            bar.set_message(format!(
                "{name}: {} ({done}/{} jobs done)",
                status_label(image.status),
                image.processing_jobs.len()
            ));
            if is_settled(image.status) {
                return Ok(image);
            }
            last = Some(image);
        }
        // The stream ends only after a settled image or an error.
        match last {
            Some(image) => Ok(image),
            None => shared.client.get_image(id).await,
        }
    };
    let followed = tokio::time::timeout(timeout, follow).await;
    bar.finish_and_clear();
    match followed {
        Ok(result) => result,
        Err(_) => {
            let image = shared.client.get_image(id).await?;
            Err(pictor_client::Error::Timeout { id: id.to_owned(), status: image.status, waited: timeout })
        }
    }
}

/// The summary table and a line of counts.
fn summary(results: &[FileResult]) -> String {
    let mut table = Table::new(&["FILE", "RESULT", "IMAGE", "SIZE", "DETAIL"]);
    for r in results {
        table.row(vec![
            r.file.display().to_string(),
            r.result.to_owned(),
            r.image_id.clone().unwrap_or_else(|| "-".into()),
            HumanBytes(r.size_bytes).to_string(),
            clip(r.error.as_deref().unwrap_or(""), 120),
        ]);
    }
    let count = |what: &str| results.iter().filter(|r| r.result == what).count();
    let mut text = if table.is_empty() { "nothing to upload\n".to_owned() } else { table.render() };
    text.push_str(&format!(
        "{} stored, {} uploaded, {} failed, {} skipped\n",
        count("stored"),
        count("uploaded"),
        count("failed"),
        count("skipped")
    ));
    text
}
