//! `pictor-load-test`: hundreds of uploads of real photos at once against a
//! fresh `pictor serve`, on loopback. It checks what a flood must never do:
//! answer 5xx other than the deliberate 503 `too_busy`, lose an upload it
//! acknowledged (every 201 must end STORED), or let the server's peak RSS
//! pass a bound; and it prints the upload requests' rate and latency.
//!
//! Each upload is sent by its own task at the same moment; a 503 is counted
//! and sent again after its `Retry-After`, as `pictor-client` does.
//!
//! Exit codes: 0 every check held; 1 a check failed; 2 usage or start-up.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use pictor_client::models::ImageList;

/// Photos of `testdata/images/MANIFEST.md` (role `photo`) when no file is given.
const MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/images/MANIFEST.md");
/// Times one upload is sent again after a 503.
const MAX_BUSY_RETRIES: u32 = 40;

#[derive(Debug, Parser)]
#[command(about = "Concurrent uploads of real photos against a fresh pictor serve; checks no 5xx, nothing lost, RSS")]
struct Args {
    /// The `pictor` binary (default: beside this one, e.g. target/release/pictor).
    #[arg(long)]
    pictor: Option<PathBuf>,
    /// Uploads, all started at once.
    #[arg(long, default_value_t = 500)]
    uploads: usize,
    /// Database URL (default: a fresh SQLite file in a temp folder).
    #[arg(long)]
    database_url: Option<String>,
    /// Largest acceptable peak RSS of the server and its image sandbox
    /// children together (the sum of each one's peak), MiB (README: "Load").
    #[arg(long, default_value_t = 400)]
    max_rss_mib: u64,
    /// Longest wait for every acknowledged upload to be STORED, seconds.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Extra `pictor serve` settings as NAME=VALUE (e.g. PICTOR_MAX_CONCURRENT_UPLOADS=16).
    #[arg(long = "env", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// Photos to upload, cycled (default: the manifest's photos).
    files: Vec<PathBuf>,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    text.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| "expected NAME=VALUE".to_owned())
}

/// How one upload ended.
#[derive(Debug, Default)]
struct Outcome {
    /// The 201's request latency.
    accepted: Option<Duration>,
    /// 503s before it.
    busy: u32,
    /// Any other answer: status and body.
    refused: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("pictor-load-test: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("pictor-load-test: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A `pictor serve` in a temp folder, stopped when dropped.
struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(pictor: &Path, database_url: Option<&str>, env: &[(String, String)]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("a temp folder")?;
        let database = database_url
            .map_or_else(|| format!("sqlite://{}?mode=rwc", dir.path().join("pictor.db").display()), str::to_owned);
        let mut child = Command::new(pictor)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .env("DATABASE_URL", &database)
            .env("STORAGE_DIR", dir.path().join("storage"))
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", pictor.display()))?;
        let stderr = child.stderr.take().context("the server's stderr")?;
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        // Reads the log to its end, so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("address=").nth(1) {
                    let _ = address_tx.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
                }
                if line.contains("ERROR") {
                    eprintln!("server: {line}");
                }
            }
        });
        let address =
            address_rx.recv_timeout(Duration::from_secs(60)).context("the server never logged its address")?;
        Ok(Self { child, base: format!("http://{address}"), _dir: dir })
    }

    /// The server's peak resident set (VmHWM), and each of its live
    /// children's (the image sandbox's), MiB.
    fn peak_rss_mib(&self) -> anyhow::Result<(u64, Vec<u64>)> {
        let pid = self.child.id();
        let children: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/task"))?
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("children")).ok())
            .flat_map(|list| list.split_whitespace().filter_map(|p| p.parse::<u32>().ok()).collect::<Vec<_>>())
            .filter_map(|child| peak_rss_of(child).ok())
            .collect();
        Ok((peak_rss_of(pid)?, children))
    }
}

/// A process's peak resident set (VmHWM), MiB.
fn peak_rss_of(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .context("no VmHWM in /proc/PID/status")?;
    Ok(kib / 1024)
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let pictor = match args.pictor {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("pictor"),
    };
    let files = if args.files.is_empty() { manifest_photos()? } else { args.files };
    let photos: Vec<(String, Arc<Vec<u8>>)> = files
        .iter()
        .map(|f| {
            let name = f.file_name().map_or_else(|| "photo".to_owned(), |n| n.to_string_lossy().into_owned());
            std::fs::read(f).map(|bytes| (name, Arc::new(bytes))).with_context(|| f.display().to_string())
        })
        .collect::<anyhow::Result<_>>()?;
    if photos.is_empty() || args.uploads == 0 {
        bail!("nothing to upload");
    }
    let server = Server::start(&pictor, args.database_url.as_deref(), &args.env)?;
    println!("pictor-load-test: {} uploads of {} photos at once → {}", args.uploads, photos.len(), server.base);

    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.uploads {
        let (name, bytes) = photos[i % photos.len()].clone();
        let (http, url) = (http.clone(), format!("{}/api/upload", server.base));
        tasks.spawn(async move { upload(&http, &url, &name, &bytes).await });
    }
    let mut outcomes = Vec::with_capacity(args.uploads);
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined?);
    }
    let upload_wall = started.elapsed();

    let mut latencies: Vec<Duration> = outcomes.iter().filter_map(|o| o.accepted).collect();
    latencies.sort();
    let acknowledged = latencies.len() as u64;
    let busy: u32 = outcomes.iter().map(|o| o.busy).sum();
    let refused: Vec<&String> = outcomes.iter().filter_map(|o| o.refused.as_ref()).collect();
    let (stored, failed) = wait_until_processed(&http, &server.base, acknowledged, args.timeout_secs).await?;
    let all_wall = started.elapsed();
    let (server_rss, children_rss) = server.peak_rss_mib()?;
    let peak_rss = server_rss + children_rss.iter().sum::<u64>();

    let percentile = |p: f64| {
        let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let rate = acknowledged as f64 / upload_wall.as_secs_f64();
    println!(
        "uploads acknowledged: {acknowledged} of {} in {:.1} s ({rate:.1} requests/s)",
        args.uploads,
        upload_wall.as_secs_f64()
    );
    println!("upload request latency: p50 {:.0} ms, p99 {:.0} ms", percentile(0.5), percentile(0.99));
    println!("503 too_busy answers (sent again after Retry-After): {busy}");
    println!("STORED: {stored}, FAILED: {failed}, all processed after {:.1} s", all_wall.as_secs_f64());
    println!(
        "peak RSS: {peak_rss} MiB (bound {} MiB): server {server_rss} MiB, sandbox children {children_rss:?} MiB",
        args.max_rss_mib
    );

    let mut ok = true;
    for refusal in refused.iter().take(5) {
        eprintln!("FAIL: an upload was answered {refusal}");
    }
    if !refused.is_empty() {
        eprintln!("FAIL: {} uploads got an answer other than 201 or 503", refused.len());
        ok = false;
    }
    if stored != acknowledged || failed != 0 {
        eprintln!("FAIL: {acknowledged} uploads acknowledged, {stored} STORED, {failed} FAILED");
        ok = false;
    }
    if peak_rss > args.max_rss_mib {
        eprintln!("FAIL: peak RSS {peak_rss} MiB over the bound of {} MiB", args.max_rss_mib);
        ok = false;
    }
    let summary = serde_json::json!({
        "uploads": args.uploads, "acknowledged": acknowledged, "busy_503": busy, "refused": refused.len(),
        "stored": stored, "failed": failed, "upload_seconds": upload_wall.as_secs_f64(),
        "requests_per_second": rate, "p50_ms": percentile(0.5), "p99_ms": percentile(0.99),
        "processed_seconds": all_wall.as_secs_f64(), "peak_rss_mib": peak_rss,
        "server_peak_rss_mib": server_rss, "children_peak_rss_mib": children_rss, "ok": ok,
    });
    println!("{summary}");
    Ok(ok)
}

/// Sends one upload until it is accepted or refused for good.
async fn upload(http: &reqwest::Client, url: &str, name: &str, bytes: &Arc<Vec<u8>>) -> Outcome {
    let mut outcome = Outcome::default();
    loop {
        let part = reqwest::multipart::Part::bytes(bytes.as_ref().clone()).file_name(name.to_owned());
        let form = reqwest::multipart::Form::new().part("file", part);
        let sent = Instant::now();
        let answer = match http.post(url).multipart(form).send().await {
            Ok(answer) => answer,
            Err(e) => {
                outcome.refused = Some(format!("no answer: {e}"));
                return outcome;
            }
        };
        let status = answer.status();
        if status == reqwest::StatusCode::CREATED {
            outcome.accepted = Some(sent.elapsed());
            return outcome;
        }
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE && outcome.busy < MAX_BUSY_RETRIES {
            outcome.busy += 1;
            let wait = answer
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        let body = answer.text().await.unwrap_or_default();
        outcome.refused = Some(format!("{status}: {body}"));
        return outcome;
    }
}

/// Waits until `expected` images are STORED, or one FAILED, or the timeout;
/// returns the STORED and FAILED counts then.
async fn wait_until_processed(
    http: &reqwest::Client,
    base: &str,
    expected: u64,
    timeout_secs: u64,
) -> anyhow::Result<(u64, u64)> {
    let count = |status: &'static str| {
        let url = format!("{base}/api/images?status={status}&limit=1");
        async move { anyhow::Ok(http.get(url).send().await?.error_for_status()?.json::<ImageList>().await?.count) }
    };
    let deadline = Instant::now() + Duration::from_secs(timeout_secs);
    loop {
        let (stored, failed) = (count("STORED").await?, count("FAILED").await?);
        if stored + failed >= expected || Instant::now() > deadline {
            return Ok((stored, failed));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The manifest's photos (role `photo`).
fn manifest_photos() -> anyhow::Result<Vec<PathBuf>> {
    let manifest = std::fs::read_to_string(MANIFEST).with_context(|| MANIFEST.to_owned())?;
    let folder = Path::new(MANIFEST).parent().context("the manifest's folder")?;
    Ok(manifest
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (cells.get(2) == Some(&"photo")).then(|| folder.join(cells[1].trim_matches('`')))
        })
        .collect())
}
