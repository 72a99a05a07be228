//! `pictor doctor`: checks the local configuration (settings, database
//! reachable and migrated, storage writable, free disk, limits, the image
//! formats libheif adds, and whether a server answers) and says how to fix
//! what is wrong.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use indicatif::HumanBytes;
use serde::Serialize;
use sqlx::migrate::Migrate;

use super::table::Table;
use super::{Outcome, ServerArgs, out, out_json};
use crate::config::Config;
use crate::db::{Db, SchemaStatus};
use crate::images::error_chain;

/// Below this much free space the disk check warns.
const LOW_DISK_BYTES: u64 = 1024 * 1024 * 1024;
/// How long the database and the server get to answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// `pictor doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The settings `pictor serve` would use.
    #[command(flatten)]
    pub config: Config,
    /// Server to look for, token, output.
    #[command(flatten)]
    pub server: ServerArgs,
}

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Ok,
    Warn,
    Fail,
}

/// One check's result.
#[derive(Debug, Serialize)]
struct Check {
    check: &'static str,
    result: Level,
    detail: String,
    /// What to do about a warning or failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

impl Check {
    fn ok(check: &'static str, detail: impl Into<String>) -> Self {
        Self { check, result: Level::Ok, detail: detail.into(), fix: None }
    }

    fn warn(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { result: Level::Warn, fix: Some(fix.into()), ..Self::ok(check, detail) }
    }

    fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { result: Level::Fail, ..Self::warn(check, detail, fix) }
    }
}

/// Runs every check; [`Outcome::SomeFailed`] when one failed.
///
/// # Errors
/// Stdout failed; checks themselves report problems, they do not error.
pub async fn run(args: DoctorArgs) -> anyhow::Result<Outcome> {
    let config = &args.config;
    // Under STORAGE_URL the bucket holds the data and the local disk only
    // each process's scratch downloads, so that is the folder measured.
    let local_dir = match &config.storage_url {
        Some(_) => config.scratch_dir.clone().unwrap_or_else(std::env::temp_dir),
        None => config.storage_dir.clone(),
    };
    let free = free_space(&local_dir);
    let checks = vec![
        settings(config),
        database(&config.database_url).await,
        match &config.storage_url {
            Some(url) => bucket(config, url).await,
            None => storage(&config.storage_dir).await,
        },
        disk(&local_dir, free.as_ref(), config.max_upload_bytes),
        limits(config, free.as_ref().ok().map(|(_, bytes)| *bytes)),
        heif_formats(),
        server(&args.server).await,
    ];
    let failed = checks.iter().any(|c| c.result == Level::Fail);
    if args.server.json {
        out_json(&checks)?;
    } else {
        out(&report(&checks))?;
    }
    Ok(if failed { Outcome::SomeFailed } else { Outcome::Done })
}

fn report(checks: &[Check]) -> String {
    let mut table = Table::new(&["CHECK", "RESULT", "DETAIL"]);
    for c in checks {
        let result = match c.result {
            Level::Ok => "ok",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        table.row(vec![c.check.to_owned(), result.to_owned(), c.detail.clone()]);
    }
    let mut text = table.render();
    let fixes: Vec<&Check> = checks.iter().filter(|c| c.fix.is_some()).collect();
    if !fixes.is_empty() {
        text.push_str("\nto fix:\n");
        for c in fixes {
            text.push_str(&format!("  {}: {}\n", c.check, c.fix.as_deref().unwrap_or("")));
        }
    }
    text
}

fn settings(config: &Config) -> Check {
    match config.validate() {
        Ok(()) => Check::ok("settings", "every setting is in range"),
        Err(e) => Check::fail("settings", e.to_string(), format!("change {} (flag or environment variable)", e.name)),
    }
}

/// AVIF (and HEIC in builds with the `heic` feature) need libheif at run
/// time: without it those uploads are refused, which is a warning, not a
/// failure (a configured AVIF preview fails `settings` instead).
fn heif_formats() -> Check {
    const NAME: &str = "avif/heic";
    let heic = if cfg!(feature = "heic") { "AVIF and HEIC" } else { "AVIF (HEIC: not in this build)" };
    match pictor_imaging::avif_decoding_available().and_then(|()| pictor_imaging::avif_encoding_available()) {
        Ok(()) => Check::ok(NAME, format!("{heic} read through libheif; AVIF previews available")),
        Err(e) => Check::warn(NAME, format!("AVIF and HEIC uploads will be refused: {e}"), "install libheif1"),
    }
}

/// The SQLite file a URL names, if it names one.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    Some(PathBuf::from(path))
}

async fn database(url: &str) -> Check {
    const NAME: &str = "database";
    if let Some(path) = sqlite_path(url).filter(|p| !p.exists()) {
        // Connecting would create the file; the doctor only looks.
        return Check::warn(
            NAME,
            format!("no SQLite database at {} yet", path.display()),
            "run `pictor migrate` (or `pictor serve`, which migrates at start)",
        );
    }
    let looked = tokio::time::timeout(CHECK_TIMEOUT, async {
        let db = Db::connect(url).await?;
        let mut conn = db.pool.acquire().await.map_err(crate::db::DbError::Connect)?;
        // The table `db` migrates with: sqlx's default.
        let table = &sqlx::migrate::Migrator::DEFAULT.table_name;
        let dirty = conn.dirty_version(table).await;
        let applied = conn.list_applied_migrations(table).await;
        Ok::<_, crate::db::DbError>((dirty, applied.map(|applied| (applied, db.latest_version()))))
    })
    .await;
    match looked {
        Err(_) => Check::fail(
            NAME,
            format!("no answer within {CHECK_TIMEOUT:?}"),
            "check DATABASE_URL and that the database server is up",
        ),
        Ok(Err(e)) => Check::fail(
            NAME,
            format!("{:#}", anyhow::Error::from(e)),
            "check DATABASE_URL, the database's credentials and that it is up",
        ),
        Ok(Ok((Ok(Some(version)), _))) => Check::fail(
            NAME,
            format!("migration {version} failed part-way"),
            "restore a backup or repair the schema by hand, then run `pictor migrate`",
        ),
        Ok(Ok((_, Ok((applied, latest))))) if !applied.is_empty() => {
            let version = applied.iter().map(|m| m.version).max().unwrap_or(0);
            match SchemaStatus::of(version, latest) {
                SchemaStatus::Current(_) => Check::ok(NAME, format!("reachable, schema version {version} (current)")),
                SchemaStatus::Behind { applied, latest } => Check::warn(
                    NAME,
                    format!("reachable, schema version {applied}, older than this binary's {latest}"),
                    "run `pictor migrate` (or `pictor serve`, which migrates at start)",
                ),
                SchemaStatus::Ahead { applied, latest } => Check::fail(
                    NAME,
                    format!("reachable, schema version {applied}, newer than this binary's {latest}"),
                    "run the newer Pictor that migrated it, or restore a backup from before that upgrade",
                ),
            }
        }
        Ok(Ok(_)) => Check::fail(
            NAME,
            "reachable but not migrated",
            "run `pictor migrate` (or `pictor serve`, which migrates at start)",
        ),
    }
}

async fn storage(dir: &Path) -> Check {
    const NAME: &str = "storage";
    if !dir.exists() {
        return Check::warn(
            NAME,
            format!("{} does not exist yet", dir.display()),
            "`pictor serve` creates it; or set STORAGE_DIR to an existing folder",
        );
    }
    let probe = dir.join(format!(".pictor-doctor-{}", std::process::id()));
    let written = async {
        tokio::fs::write(&probe, b"pictor doctor").await?;
        tokio::fs::File::open(&probe).await?.sync_all().await?;
        tokio::fs::remove_file(&probe).await
    }
    .await;
    match written {
        Ok(()) => Check::ok(NAME, format!("{} is writable", dir.display())),
        Err(e) => {
            let _ = tokio::fs::remove_file(&probe).await;
            Check::fail(
                NAME,
                format!("cannot write in {}: {e}", dir.display()),
                "give the user running Pictor write access, or set STORAGE_DIR",
            )
        }
    }
}

/// The bucket of `STORAGE_URL`: opened with the same settings as `serve`,
/// then written, read and removed once (the readiness probe's check).
async fn bucket(config: &Config, url: &str) -> Check {
    const NAME: &str = "storage";
    let fix = "check STORAGE_URL, AWS_ENDPOINT_URL, AWS_REGION and the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)";
    let storage = match crate::app::open_storage(config) {
        Ok(storage) => storage,
        Err(e) => return Check::fail(NAME, format!("cannot open {url}: {e}"), fix),
    };
    // The store's own timeout and retries apply inside; this bounds the whole.
    let budget = CHECK_TIMEOUT.max(Duration::from_secs(config.s3_timeout_secs.saturating_mul(3)));
    match tokio::time::timeout(budget, storage.check_writable()).await {
        Ok(Ok(())) => Check::ok(NAME, format!("{url} is writable")),
        Ok(Err(e)) => Check::fail(NAME, format!("cannot write in {url}: {}", error_chain(&e)), fix),
        Err(_) => Check::fail(NAME, format!("{url} did not answer within {} s", budget.as_secs()), fix),
    }
}

/// Free bytes for unprivileged users on the file system holding `dir` (or
/// its nearest existing parent), with the folder measured.
fn free_space(dir: &Path) -> Result<(PathBuf, u64), String> {
    let absolute = std::path::absolute(dir).map_err(|e| e.to_string())?;
    let existing = absolute
        .ancestors()
        .find(|p| p.exists())
        .ok_or_else(|| format!("no existing folder above {}", dir.display()))?;
    let stat = rustix::fs::statvfs(existing).map_err(|e| e.to_string())?;
    Ok((existing.to_owned(), stat.f_bavail.saturating_mul(stat.f_frsize)))
}

fn disk(dir: &Path, free: Result<&(PathBuf, u64), &String>, max_upload: u64) -> Check {
    const NAME: &str = "free disk";
    match free {
        Err(e) => {
            Check::warn(NAME, format!("cannot measure free space for {}: {e}", dir.display()), "check STORAGE_DIR")
        }
        Ok((measured, bytes)) => {
            let detail = format!("{} free at {}", HumanBytes(*bytes), measured.display());
            if *bytes < max_upload.saturating_mul(2) {
                Check::fail(NAME, detail, "free space or move STORAGE_DIR to a larger disk")
            } else if *bytes < LOW_DISK_BYTES {
                Check::warn(NAME, detail, "free space or move STORAGE_DIR to a larger disk")
            } else {
                Check::ok(NAME, detail)
            }
        }
    }
}

fn limits(config: &Config, free: Option<u64>) -> Check {
    const NAME: &str = "limits";
    let sizes: Vec<String> = config.thumbnail_sizes.iter().map(u32::to_string).collect();
    let detail = format!(
        "uploads up to {}, images up to {:.0} Mpx, thumbnails {} px, preview {} px at quality {}",
        HumanBytes(config.max_upload_bytes),
        config.max_pixels as f64 / 1e6,
        sizes.join("/"),
        config.preview_max_edge,
        config.jpeg_quality
    );
    // A non-JPEG image at the pixel limit decodes to 4 bytes a pixel at full size.
    let decode_bytes = config.max_pixels.saturating_mul(4);
    match (available_memory(), free) {
        (Some(memory), _) if decode_bytes > memory => Check::warn(
            NAME,
            format!(
                "{detail}; one decode at the pixel limit needs {} but {} of memory is available",
                HumanBytes(decode_bytes),
                HumanBytes(memory)
            ),
            "lower PICTOR_MAX_PIXELS",
        ),
        (_, Some(free)) if config.max_upload_bytes > free => Check::warn(
            NAME,
            format!("{detail}; one upload could fill the disk"),
            "lower PICTOR_MAX_UPLOAD_BYTES or free space",
        ),
        _ => Check::ok(NAME, detail),
    }
}

/// `MemAvailable` of `/proc/meminfo`, where there is one.
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

async fn server(args: &ServerArgs) -> Check {
    const NAME: &str = "server";
    let client = match args.client() {
        Ok(client) => client,
        Err(e) => return Check::fail(NAME, e.to_string(), "fix --server / API_BASE"),
    };
    match tokio::time::timeout(CHECK_TIMEOUT, client.health()).await {
        Ok(Ok(())) => Check::ok(NAME, format!("answering at {}", client.base_url())),
        Ok(Err(e)) if e.is_connect() => Check::warn(
            NAME,
            format!("nothing answers at {}", client.base_url()),
            "start one with `pictor serve`, or point --server / API_BASE at it",
        ),
        Ok(Err(e)) => {
            Check::fail(NAME, format!("{} answers but is unhealthy: {e}", client.base_url()), "read the server's log")
        }
        Err(_) => Check::warn(
            NAME,
            format!("no answer from {} within {CHECK_TIMEOUT:?}", client.base_url()),
            "check --server / API_BASE",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file_and_postgres_urls_none() {
        assert_eq!(sqlite_path("sqlite:pictor-data/pictor.db"), Some(PathBuf::from("pictor-data/pictor.db")));
        assert_eq!(sqlite_path("sqlite:///tmp/p.db?mode=rwc"), Some(PathBuf::from("/tmp/p.db")));
        assert_eq!(sqlite_path("postgres://u@h/db"), None);
    }

    #[test]
    fn free_space_is_measured_at_the_nearest_existing_folder() {
        let dir = tempfile::tempdir().expect("temp dir");

        let (measured, bytes) = free_space(&dir.path().join("not/yet/there")).expect("measured");

        assert_eq!(measured, dir.path());
        assert!(bytes > 0);
    }
}
