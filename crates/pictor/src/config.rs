//! Configuration: every setting is a flag with an environment variable of
//! the same meaning, and defaults under which `pictor serve` just works.
//! Parsed once, validated, then resolved into runtime objects by `app`.

use std::path::PathBuf;

use clap::{Args, Parser};

/// Default database: a SQLite file beside the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite:pictor-data/pictor.db";
/// Default storage folder.
pub const DEFAULT_STORAGE_DIR: &str = "pictor-data/storage";
/// Default upload limit: 50 MiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 50 * 1024 * 1024;
/// Default pixel limit: 100 Mpx (the imaging crate's).
pub const DEFAULT_MAX_PIXELS: u64 = pictor_imaging::DEFAULT_MAX_PIXELS;
/// Default preview longest edge.
pub const DEFAULT_PREVIEW_MAX_EDGE: u32 = 2048;
/// Default JPEG quality (the imaging crate's).
pub const DEFAULT_JPEG_QUALITY: u8 = pictor_imaging::DEFAULT_JPEG_QUALITY;
/// Default AVIF preview quality, on libheif's scale (the imaging crate's).
pub const DEFAULT_AVIF_QUALITY: u8 = pictor_imaging::DEFAULT_AVIF_QUALITY;
/// Default thumbnail sizes, as their flag takes them.
pub const DEFAULT_THUMBNAIL_SIZES: &str = "64,128,256,512";

/// Default longest object-store request, seconds.
pub const DEFAULT_S3_TIMEOUT_SECS: u64 = 30;
/// Default retries of one object-store request.
pub const DEFAULT_S3_MAX_RETRIES: usize = 3;

/// Smallest runner poll interval, ms: below it the runner claims in a busy loop.
pub const MIN_POLL_INTERVAL_MS: u64 = 10;
/// Longest job lease, s (one day): a longer one would hide a dead worker's jobs.
pub const MAX_LOCK_TIMEOUT_SECS: u64 = 86_400;
/// Most attempts a job may be given.
pub const MAX_MAX_ATTEMPTS: u32 = 100;

/// The service's settings.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Database: `sqlite:REL/PATH`, `sqlite://ABS/PATH` or `postgres://...`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Folder for uploads in flight, originals and assets.
    #[arg(long, env = "STORAGE_DIR", default_value = DEFAULT_STORAGE_DIR)]
    pub storage_dir: PathBuf,
    /// Object storage instead of `STORAGE_DIR`: `s3://bucket/prefix`
    /// (endpoint, region and credentials from the `AWS_*` variables).
    #[arg(long, env = "STORAGE_URL")]
    pub storage_url: Option<String>,
    /// Endpoint of an S3-compatible service (default: AWS for the region).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub s3_endpoint: Option<String>,
    /// Region of the bucket.
    #[arg(long, env = "AWS_REGION")]
    pub s3_region: Option<String>,
    /// Access key of the bucket (else the usual AWS credential sources).
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// Secret key of the bucket.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// Allows a plain-http endpoint (a local S3 server).
    #[arg(long, env = "AWS_ALLOW_HTTP", default_value_t = false, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub s3_allow_http: bool,
    /// Answer asset requests with a redirect to the bucket instead of
    /// streaming them: `presigned` (a signed URL valid one hour) or `public`
    /// (the object's plain URL). Needs STORAGE_URL.
    #[arg(long, env = "PICTOR_ASSET_REDIRECT", value_enum)]
    pub asset_redirect: Option<crate::storage::AssetRedirect>,
    /// Folder where each process makes its own scratch folder for the
    /// originals it downloads from object storage (default: the system's
    /// temp folder).
    #[arg(long, env = "PICTOR_SCRATCH_DIR")]
    pub scratch_dir: Option<PathBuf>,
    /// Longest one object-store request may take, seconds.
    #[arg(long, env = "PICTOR_S3_TIMEOUT_SECS", default_value_t = DEFAULT_S3_TIMEOUT_SECS)]
    pub s3_timeout_secs: u64,
    /// Retries of a failed object-store request (with backoff, within
    /// PICTOR_S3_TIMEOUT_SECS × 2 in all) before the job or upload fails
    /// retryably.
    #[arg(long, env = "PICTOR_S3_MAX_RETRIES", default_value_t = DEFAULT_S3_MAX_RETRIES)]
    pub s3_max_retries: usize,
    /// Public base URL, used in absolute links (default: the bind address).
    #[arg(long, env = "API_BASE")]
    pub api_base: Option<String>,
    /// Jobs claimed per statement.
    #[arg(long, env = "PICTOR_RUNNER_BATCH_SIZE", default_value_t = crate::queue::DEFAULT_BATCH_SIZE,
          value_parser = clap::value_parser!(usize))]
    pub runner_batch_size: usize,
    /// Fallback poll interval of the runner, ms (an enqueue wakes it at once).
    #[arg(long, env = "PICTOR_RUNNER_POLL_INTERVAL_MS", default_value_t = crate::queue::DEFAULT_POLL_INTERVAL_MS)]
    pub runner_poll_interval_ms: u64,
    /// Most jobs one runner works on at once (default: four times the CPUs).
    #[arg(long, env = "PICTOR_RUNNER_CONCURRENCY")]
    pub runner_concurrency: Option<usize>,
    /// Job lease, seconds; renewed while the job runs.
    #[arg(long, env = "PICTOR_LOCK_TIMEOUT_SECS", default_value_t = crate::queue::DEFAULT_LOCK_TIMEOUT_SECS)]
    pub lock_timeout_secs: u64,
    /// Longest one attempt of a job may run, seconds: past it the attempt
    /// fails ("timed out after N s") and is retried, or the job ends FAILED
    /// when out of attempts.
    #[arg(long, env = "PICTOR_JOB_TIMEOUT_SECS", default_value_t = crate::queue::DEFAULT_JOB_TIMEOUT_SECS)]
    pub job_timeout_secs: u64,
    /// Attempts before a job ends FAILED.
    #[arg(long, env = "PICTOR_MAX_ATTEMPTS", default_value_t = crate::queue::DEFAULT_MAX_ATTEMPTS)]
    pub max_attempts: u32,
    /// Largest accepted upload, bytes.
    #[arg(long, env = "PICTOR_MAX_UPLOAD_BYTES", default_value_t = DEFAULT_MAX_UPLOAD_BYTES)]
    pub max_upload_bytes: u64,
    /// Most uploads received at once; more get 503 with Retry-After.
    #[arg(long, env = "PICTOR_MAX_CONCURRENT_UPLOADS", default_value_t = crate::images::DEFAULT_MAX_CONCURRENT_UPLOADS)]
    pub max_concurrent_uploads: usize,
    /// Most bytes of uploads being received at once (each counts its declared
    /// length); past it, 503 with Retry-After.
    #[arg(long, env = "PICTOR_MAX_TEMP_BYTES", default_value_t = crate::images::DEFAULT_MAX_TEMP_BYTES)]
    pub max_temp_bytes: u64,
    /// Largest accepted image, pixels (refused from the header, before decoding).
    #[arg(long, env = "PICTOR_MAX_PIXELS", default_value_t = DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    /// Longest edge of the web preview, px.
    #[arg(long, env = "PICTOR_PREVIEW_MAX_EDGE", default_value_t = DEFAULT_PREVIEW_MAX_EDGE)]
    pub preview_max_edge: u32,
    /// JPEG quality of thumbnails and previews, 1–100.
    #[arg(long, env = "PICTOR_JPEG_QUALITY", default_value_t = DEFAULT_JPEG_QUALITY)]
    pub jpeg_quality: u8,
    /// Encodings of the preview, comma-separated: `jpeg` (always: the
    /// card's `previewPath`) and optionally `webp` and `avif` beside it
    /// (`avif` needs libheif at run time, checked at start-up).
    #[arg(long, env = "PICTOR_PREVIEW_FORMATS", value_delimiter = ',', default_value = "jpeg")]
    pub preview_formats: Vec<pictor_imaging::AssetFormat>,
    /// AVIF preview quality, 1–100 on libheif's scale (60: about as faithful as the WebP at 80).
    #[arg(long, env = "PICTOR_AVIF_QUALITY", default_value_t = DEFAULT_AVIF_QUALITY)]
    pub avif_quality: u8,
    /// Thumbnail sizes (longest edge, px), comma-separated.
    #[arg(long, env = "PICTOR_THUMBNAIL_SIZES", value_delimiter = ',', default_value = DEFAULT_THUMBNAIL_SIZES)]
    pub thumbnail_sizes: Vec<u32>,
    /// Where decoding and encoding run: `process` (child processes with a
    /// memory limit, a deadline, no network and a system-call filter: a
    /// decoder's crash fails its job only) or `off` (threads of this process).
    #[arg(long, env = "PICTOR_IMAGE_SANDBOX", value_enum, default_value = "process")]
    pub image_sandbox: crate::sandbox::ImageSandbox,
    /// Address-space limit of each image sandbox child, MB; a file needing
    /// more fails its job.
    #[arg(long, env = "PICTOR_SANDBOX_MEMORY_MB", default_value_t = crate::sandbox::DEFAULT_MEMORY_MB)]
    pub sandbox_memory_mb: u64,
    /// Longest one image may take in a sandbox child, seconds; past it the
    /// child is killed and the attempt fails (and is retried).
    #[arg(long, env = "PICTOR_SANDBOX_TIMEOUT_SECS", default_value_t = crate::sandbox::DEFAULT_TIMEOUT_SECS)]
    pub sandbox_timeout_secs: u64,
    /// Seconds in-flight jobs get to finish at shutdown.
    #[arg(long, env = "PICTOR_SHUTDOWN_TIMEOUT_SECS", default_value_t = crate::queue::DEFAULT_SHUTDOWN_TIMEOUT_SECS)]
    pub shutdown_timeout_secs: u64,
    /// Seconds after which a temporary file that no image needs (an upload
    /// or a part file a crash left behind) is swept; long enough for any
    /// upload to finish.
    #[arg(long, env = "PICTOR_TEMP_GRACE_SECS", default_value_t = crate::images::DEFAULT_TEMP_GRACE_SECS)]
    pub temp_grace_secs: u64,
    /// Seconds between storage garbage collections in `serve` (unreferenced
    /// originals and assets, old temp objects; see `pictor gc`); unset, none.
    #[arg(long, env = "PICTOR_GC_INTERVAL")]
    pub gc_interval: Option<u64>,
    /// Seconds a COMPLETED or CANCELLED job is kept before it is pruned.
    #[arg(long, env = "PICTOR_COMPLETED_RETENTION_SECS", default_value_t = crate::queue::pruner::DEFAULT_COMPLETED_RETENTION_SECS)]
    pub completed_retention_secs: u64,
    /// Seconds a FAILED job is kept before it is pruned.
    #[arg(long, env = "PICTOR_FAILED_RETENTION_SECS", default_value_t = crate::queue::pruner::DEFAULT_FAILED_RETENTION_SECS)]
    pub failed_retention_secs: u64,
    /// SQLite commit durability: `full` (every acknowledged upload survives
    /// power loss) or `normal` (faster; survives a crash of Pictor only).
    #[arg(long, env = "PICTOR_SQLITE_SYNCHRONOUS", default_value = "full")]
    pub sqlite_synchronous: crate::db::SqliteSynchronous,
    /// Token that admin endpoints and every mutation require, once set
    /// (`Authorization: Bearer TOKEN`).
    #[arg(long, env = "PICTOR_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// Whether images, pages and assets can be read without the admin token
    /// (`false` needs `PICTOR_ADMIN_TOKEN`: API clients send it, browsers
    /// log in).
    #[arg(long, env = "PICTOR_PUBLIC_READ", default_value_t = true, action = clap::ArgAction::Set)]
    pub public_read: bool,
    /// Seconds a client has to send a request's headers (slow clients are cut off).
    #[arg(long, env = "PICTOR_HEADER_TIMEOUT_SECS", default_value_t = crate::server::DEFAULT_HEADER_TIMEOUT_SECS)]
    pub header_timeout_secs: u64,
    /// Seconds a request body may send nothing before it is cut off.
    #[arg(long, env = "PICTOR_BODY_IDLE_TIMEOUT_SECS", default_value_t = crate::server::DEFAULT_BODY_IDLE_TIMEOUT_SECS)]
    pub body_idle_timeout_secs: u64,
    /// Seconds a request other than an upload may take (then 408).
    #[arg(long, env = "PICTOR_REQUEST_TIMEOUT_SECS", default_value_t = crate::server::DEFAULT_REQUEST_TIMEOUT_SECS)]
    pub request_timeout_secs: u64,
    /// Host names Pictor answers besides IP addresses, `localhost` and the
    /// host of API_BASE, comma-separated; other `Host` headers get 421 (the
    /// defence against DNS rebinding). `*` answers any host: only behind a
    /// proxy that checks the host itself.
    #[arg(long, env = "PICTOR_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://host[:port]`, comma-separated) whose pages may use
    /// the API and `/static/pictor-client.js` (CORS); none by default.
    #[arg(long, env = "PICTOR_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// URL that gets a POST when an image becomes STORED or FAILED or is
    /// deleted (`https://` needs a build with the `rustls` feature).
    #[arg(long, env = "PICTOR_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    /// Key of the webhook body's HMAC-SHA256 signature (`X-Pictor-Signature`).
    #[arg(long, env = "PICTOR_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<Secret>,
}

/// Whether `text` is an origin as a browser sends it: `http(s)://host[:port]`
/// with no path (a trailing `/` aside), user or wildcard.
fn is_origin(text: &str) -> bool {
    let text = text.trim().trim_end_matches('/');
    let host = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://"));
    host.is_some_and(|h| {
        !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    })
}

/// A value kept out of logs and `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for comparing with what a client sent.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// A setting out of range.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {name}: {why}")]
pub struct ConfigError {
    /// The setting (its environment variable).
    pub name: &'static str,
    /// What is wrong.
    pub why: String,
}

impl Config {
    /// The settings of `pictor serve` without flags (environment variables apply).
    ///
    /// # Errors
    /// An environment variable holds a value its setting cannot take.
    pub fn defaults() -> Result<Self, clap::Error> {
        /// An empty command line with only the settings.
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            config: Config,
        }
        Only::try_parse_from(["pictor"]).map(|o| o.config)
    }

    /// Checks ranges that clap's types do not.
    ///
    /// # Errors
    /// The first setting out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |name, why: &str| Err(ConfigError { name, why: why.to_owned() });
        if self.asset_redirect.is_some() && self.storage_url.is_none() {
            return bad("PICTOR_ASSET_REDIRECT", "needs STORAGE_URL (a local folder's assets are served by Pictor)");
        }
        if self.runner_batch_size == 0 {
            return bad("PICTOR_RUNNER_BATCH_SIZE", "must be at least 1");
        }
        if self.runner_concurrency == Some(0) {
            return bad("PICTOR_RUNNER_CONCURRENCY", "must be at least 1");
        }
        if self.runner_poll_interval_ms < MIN_POLL_INTERVAL_MS {
            return bad(
                "PICTOR_RUNNER_POLL_INTERVAL_MS",
                "must be at least 10 (less makes the runner claim in a busy loop)",
            );
        }
        if !(1..=MAX_LOCK_TIMEOUT_SECS).contains(&self.lock_timeout_secs) {
            return bad("PICTOR_LOCK_TIMEOUT_SECS", "must be between 1 and 86400");
        }
        if self.max_attempts > MAX_MAX_ATTEMPTS {
            return bad("PICTOR_MAX_ATTEMPTS", "must be at most 100");
        }
        if self.job_timeout_secs == 0 {
            return bad("PICTOR_JOB_TIMEOUT_SECS", "must be at least 1");
        }
        if self.max_attempts == 0 {
            return bad("PICTOR_MAX_ATTEMPTS", "must be at least 1");
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return bad("PICTOR_JPEG_QUALITY", "must be between 1 and 100");
        }
        if self.preview_max_edge < 16 {
            return bad("PICTOR_PREVIEW_MAX_EDGE", "must be at least 16");
        }
        if !self.preview_formats.contains(&pictor_imaging::AssetFormat::Jpeg) {
            return bad("PICTOR_PREVIEW_FORMATS", "must include jpeg (previewPath is the JPEG)");
        }
        if !(1..=100).contains(&self.avif_quality) {
            return bad("PICTOR_AVIF_QUALITY", "must be between 1 and 100");
        }
        // Fail at start-up, not at every image's preview job.
        if self.preview_formats.contains(&pictor_imaging::AssetFormat::Avif)
            && let Err(e) = pictor_imaging::avif_encoding_available()
        {
            return bad("PICTOR_PREVIEW_FORMATS", &format!("avif cannot be made here: {e}"));
        }
        if self.thumbnail_sizes.is_empty() || self.thumbnail_sizes.iter().any(|s| *s == 0 || *s > 4096) {
            return bad("PICTOR_THUMBNAIL_SIZES", "must be sizes between 1 and 4096");
        }
        if self.admin_token.as_ref().is_some_and(|t| t.expose().len() < 8) {
            return bad("PICTOR_ADMIN_TOKEN", "must be at least 8 characters");
        }
        if !self.public_read && self.admin_token.is_none() {
            return bad("PICTOR_PUBLIC_READ", "false needs PICTOR_ADMIN_TOKEN, or nobody could read anything");
        }
        for (name, secs) in [
            ("PICTOR_HEADER_TIMEOUT_SECS", self.header_timeout_secs),
            ("PICTOR_BODY_IDLE_TIMEOUT_SECS", self.body_idle_timeout_secs),
            ("PICTOR_REQUEST_TIMEOUT_SECS", self.request_timeout_secs),
        ] {
            if secs == 0 {
                return bad(name, "must be at least 1");
            }
        }
        if self.allowed_hosts.iter().any(|h| h.trim().is_empty() || h.contains(['/', ' ', '@'])) {
            return bad("PICTOR_ALLOWED_HOSTS", "must be host names (or *), comma-separated");
        }
        if self.cors_origins.iter().any(|o| !is_origin(o)) {
            return bad("PICTOR_CORS_ORIGINS", "must be origins such as https://app.example:8443, comma-separated");
        }
        if let Some(url) = &self.webhook_url {
            let https = url.starts_with("https://");
            if !(https || url.starts_with("http://")) || url.len() <= "https://".len() {
                return bad("PICTOR_WEBHOOK_URL", "must be an http:// or https:// URL");
            }
            if https && !cfg!(feature = "rustls") {
                return bad("PICTOR_WEBHOOK_URL", "https:// needs Pictor built with `--features rustls`");
            }
        }
        if self.webhook_secret.is_some() && self.webhook_url.is_none() {
            return bad("PICTOR_WEBHOOK_SECRET", "is set but PICTOR_WEBHOOK_URL is not");
        }
        if self.max_concurrent_uploads == 0 {
            return bad("PICTOR_MAX_CONCURRENT_UPLOADS", "must be at least 1");
        }
        if self.max_temp_bytes < self.max_upload_bytes {
            return bad(
                "PICTOR_MAX_TEMP_BYTES",
                "must be at least PICTOR_MAX_UPLOAD_BYTES, or no upload of the largest size could start",
            );
        }
        if self.sandbox_memory_mb < crate::sandbox::MIN_MEMORY_MB {
            return bad("PICTOR_SANDBOX_MEMORY_MB", "must be at least 256 (the binary alone takes some 100 MB)");
        }
        if self.sandbox_timeout_secs == 0 {
            return bad("PICTOR_SANDBOX_TIMEOUT_SECS", "must be at least 1");
        }
        if self.max_upload_bytes == 0 || self.max_pixels == 0 {
            return bad("PICTOR_MAX_UPLOAD_BYTES/PICTOR_MAX_PIXELS", "must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones_and_valid() {
        let c = Config::defaults().expect("defaults parse");
        assert_eq!(c.runner_batch_size, 5);
        assert_eq!(c.runner_poll_interval_ms, 5_000);
        assert_eq!(c.lock_timeout_secs, 30);
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.job_timeout_secs, 300);
        assert_eq!(c.max_upload_bytes, 50 * 1024 * 1024);
        assert_eq!(c.thumbnail_sizes, vec![64, 128, 256, 512]);
        assert_eq!(c.preview_formats, vec![pictor_imaging::AssetFormat::Jpeg]);
        assert_eq!(c.temp_grace_secs, crate::images::DEFAULT_TEMP_GRACE_SECS);
        assert_eq!(c.image_sandbox, crate::sandbox::ImageSandbox::Process);
        assert_eq!((c.sandbox_memory_mb, c.sandbox_timeout_secs), (2048, 60));
        c.validate().expect("defaults are valid");
    }

    #[test]
    fn the_readme_states_the_temp_grace_default_of_the_code() {
        let readme = include_str!("../../../README.md");
        let row = format!("| `PICTOR_TEMP_GRACE_SECS` | `{}` |", crate::images::DEFAULT_TEMP_GRACE_SECS);
        assert!(readme.contains(&row), "README.md lacks {row}");
    }

    #[test]
    fn preview_formats_parse_and_must_keep_the_jpeg() {
        use pictor_imaging::AssetFormat::{Jpeg, Webp};
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            config: Config,
        }
        let parse = |formats: &str| Flags::try_parse_from(["pictor", "--preview-formats", formats]).map(|f| f.config);
        assert_eq!(parse("jpeg,webp").expect("parses").preview_formats, vec![Jpeg, Webp]);
        let without_jpeg = Config { preview_formats: vec![Webp], ..Config::defaults().expect("defaults parse") };
        assert!(without_jpeg.validate().expect_err("refused").to_string().contains("PICTOR_PREVIEW_FORMATS"));
        let unknown = parse("jpeg,heic").expect_err("not a preview format");
        assert!(unknown.to_string().contains("heic"), "{unknown}");
    }

    #[test]
    fn avif_previews_parse_and_are_valid_exactly_where_libheif_can_encode_them() {
        use pictor_imaging::AssetFormat::{Avif, Jpeg, Webp};
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            config: Config,
        }
        let config = Flags::try_parse_from(["pictor", "--preview-formats", "jpeg,webp,avif"]).expect("parses").config;
        assert_eq!(config.preview_formats, vec![Jpeg, Webp, Avif]);

        let validated = config.validate();

        match pictor_imaging::avif_encoding_available() {
            Ok(()) => validated.expect("valid where libheif has an AV1 encoder"),
            Err(_) => {
                let error = validated.expect_err("refused at start-up without libheif").to_string();
                assert!(error.contains("PICTOR_PREVIEW_FORMATS") && error.contains("libheif1"), "{error}");
            }
        }
    }

    #[test]
    fn queue_settings_out_of_range_are_refused_with_the_variable_name() {
        let defaults = || Config::defaults().expect("defaults parse");
        for (config, name) in [
            (Config { runner_poll_interval_ms: 0, ..defaults() }, "PICTOR_RUNNER_POLL_INTERVAL_MS"),
            (Config { runner_poll_interval_ms: 9, ..defaults() }, "PICTOR_RUNNER_POLL_INTERVAL_MS"),
            (Config { lock_timeout_secs: 0, ..defaults() }, "PICTOR_LOCK_TIMEOUT_SECS"),
            (Config { lock_timeout_secs: 86_401, ..defaults() }, "PICTOR_LOCK_TIMEOUT_SECS"),
            (Config { max_attempts: 101, ..defaults() }, "PICTOR_MAX_ATTEMPTS"),
            (Config { allowed_hosts: vec!["http://x".into()], ..defaults() }, "PICTOR_ALLOWED_HOSTS"),
            (Config { cors_origins: vec!["*".into()], ..defaults() }, "PICTOR_CORS_ORIGINS"),
            (Config { webhook_url: Some("receiver.example/hook".into()), ..defaults() }, "PICTOR_WEBHOOK_URL"),
            (Config { webhook_secret: Some(Secret::new("s")), ..defaults() }, "PICTOR_WEBHOOK_SECRET"),
            (Config { cors_origins: vec!["app.example".into()], ..defaults() }, "PICTOR_CORS_ORIGINS"),
            (Config { cors_origins: vec!["https://app.example/x".into()], ..defaults() }, "PICTOR_CORS_ORIGINS"),
            (Config { sandbox_memory_mb: 100, ..defaults() }, "PICTOR_SANDBOX_MEMORY_MB"),
            (Config { sandbox_timeout_secs: 0, ..defaults() }, "PICTOR_SANDBOX_TIMEOUT_SECS"),
        ] {
            let error = config.validate().expect_err(name).to_string();
            assert!(error.contains(name), "{error}");
        }
        Config { runner_poll_interval_ms: 10, lock_timeout_secs: 1, max_attempts: 100, ..defaults() }
            .validate()
            .expect("the bounds themselves are valid");
    }

    #[test]
    fn out_of_range_quality_is_refused_with_the_variable_name() {
        let c = Config { jpeg_quality: 0, ..Config::defaults().expect("defaults parse") };
        assert!(c.validate().expect_err("refused").to_string().contains("PICTOR_JPEG_QUALITY"));
        let c = Config { avif_quality: 101, ..Config::defaults().expect("defaults parse") };
        assert!(c.validate().expect_err("refused").to_string().contains("PICTOR_AVIF_QUALITY"));
    }
}
