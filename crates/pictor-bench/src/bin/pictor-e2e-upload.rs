//! `pictor-e2e-upload`: the load generator of `bench/e2e.py --uploader rust`.
//! Uploads each file `COPIES` times through `pictor_client` (streamed, as the
//! CLI does), `CONCURRENCY` in flight, so the uploader takes less of the
//! cores it shares with the service than the Python one.
//!
//! Exit codes: 0 all uploaded; 1 an upload failed; 2 usage.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pictor_client::{Client, UploadOptions};

const USAGE: &str = "usage: pictor-e2e-upload BASE_URL CONCURRENCY COPIES FILE [FILE...]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(base), Some(Ok(concurrency)), Some(Ok(copies)), files) = (
        args.first(),
        args.get(1).map(|s| s.parse::<usize>()),
        args.get(2).map(|s| s.parse::<usize>()),
        args.get(3..).unwrap_or_default(),
    ) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if files.is_empty() || concurrency == 0 {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let uploads: Arc<Vec<PathBuf>> =
        Arc::new((0..files.len() * copies).map(|i| PathBuf::from(&files[i % files.len()])).collect());
    // Two threads are plenty for I/O-bound uploads and keep the cores for the service.
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pictor-e2e-upload: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(upload_all(base, concurrency, uploads)) {
        Ok(count) => {
            println!("{count}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pictor-e2e-upload: {e}");
            ExitCode::from(1)
        }
    }
}

/// Uploads every path, `concurrency` at a time; the number uploaded.
async fn upload_all(base: &str, concurrency: usize, uploads: Arc<Vec<PathBuf>>) -> Result<usize, String> {
    let client = Client::new(base).map_err(|e| e.to_string())?;
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, next, uploads) = (client.clone(), next.clone(), uploads.clone());
        tasks.spawn(async move {
            let mut done = 0;
            while let Some(path) = uploads.get(next.fetch_add(1, Ordering::Relaxed)) {
                client
                    .upload_image(path, &UploadOptions::default(), |_| {})
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                done += 1;
            }
            Ok::<usize, String>(done)
        });
    }
    let mut total = 0;
    while let Some(joined) = tasks.join_next().await {
        total += joined.map_err(|e| e.to_string())??;
    }
    Ok(total)
}
