//! Ingest: streams an upload to `STORAGE_DIR/tmp/`, hashing (SHA-256) and
//! counting as the bytes arrive, enforces the size limit, recognises the
//! format by its magic bytes and reads the header (dimensions, orientation),
//! refusing images over the pixel limit before anything is decoded. A refused
//! upload leaves nothing behind.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use pictor_imaging::{ImageInfo, ImagingError, Limits};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Bytes of an upload gathered before each write to the temp file.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The upload is over the size limit.
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The file is empty.
    #[error("the file is empty")]
    Empty,
    /// The content is not an image format Pictor knows.
    #[error("the file is not an image Pictor can read (JPEG, PNG, WebP, GIF, TIFF, BMP or AVIF)")]
    NotAnImage,
    /// A known format this build or machine cannot decode: why, and what
    /// would fix it (e.g. "AVIF decoding needs libheif ...").
    #[error("{0}")]
    UnsupportedFormat(String),
    /// The header is damaged.
    #[error("the image is damaged: {0}")]
    Corrupt(String),
    /// Too many pixels.
    #[error("the image is {width}x{height} ({} Mpx), over the limit of {} Mpx", width * height / 1_000_000, max_pixels / 1_000_000)]
    TooManyPixels {
        /// Width.
        width: u64,
        /// Height.
        height: u64,
        /// The limit.
        max_pixels: u64,
    },
    /// The client's stream broke off or was malformed.
    #[error("the upload could not be read: {0}")]
    Stream(String),
    /// The disk failed.
    #[error("could not write the upload")]
    Io(#[from] std::io::Error),
}

/// An upload that is durable in `tmp/` and whose header was read.
#[derive(Debug, Clone)]
pub struct Ingested {
    /// Storage key of the temp file (`tmp/<name>`).
    pub temp_key: String,
    /// The temp file.
    pub temp_file: PathBuf,
    /// SHA-256, lowercase hex.
    pub checksum: String,
    /// Bytes.
    pub size_bytes: u64,
    /// Format, dimensions and orientation.
    pub info: ImageInfo,
}

impl Ingested {
    /// Removes the temp file (after a refusal further on).
    pub async fn discard(&self) {
        let _ = tokio::fs::remove_file(&self.temp_file).await;
    }
}

/// Streams `body` to a new file in `tmp_dir` and probes it.
///
/// # Errors
/// A refusal ([`IngestError`]); the temp file is removed before returning.
pub async fn ingest<S, E>(tmp_dir: &Path, body: S, max_bytes: u64, limits: Limits) -> Result<Ingested, IngestError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: IntoIngestError,
{
    let name = format!("{}.upload", uuid::Uuid::now_v7());
    let temp_file = tmp_dir.join(&name);
    let result = write_and_probe(&temp_file, body, max_bytes, limits).await;
    match result {
        Ok((checksum, size_bytes, info)) => {
            Ok(Ingested { temp_key: format!("tmp/{name}"), temp_file, checksum, size_bytes, info })
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&temp_file).await;
            Err(e)
        }
    }
}

/// Maps a body stream's error to a refusal.
pub trait IntoIngestError {
    /// The refusal.
    fn into_ingest_error(self, limit: u64) -> IngestError;
}

impl IntoIngestError for axum::extract::multipart::MultipartError {
    fn into_ingest_error(self, limit: u64) -> IngestError {
        if self.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            IngestError::TooLarge { limit }
        } else {
            IngestError::Stream(self.body_text())
        }
    }
}

impl IntoIngestError for std::io::Error {
    fn into_ingest_error(self, _limit: u64) -> IngestError {
        IngestError::Stream(self.to_string())
    }
}

async fn write_and_probe<S, E>(
    path: &Path,
    mut body: S,
    max_bytes: u64,
    limits: Limits,
) -> Result<(String, u64, ImageInfo), IngestError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: IntoIngestError,
{
    let file = tokio::fs::OpenOptions::new().write(true).create_new(true).open(path).await?;
    // Each write of a tokio file is a trip to the blocking pool: gather the
    // body's small chunks into few large writes.
    let mut file = tokio::io::BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut prefix = Vec::with_capacity(64);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| e.into_ingest_error(max_bytes))?;
        size += chunk.len() as u64;
        if size > max_bytes {
            return Err(IngestError::TooLarge { limit: max_bytes });
        }
        if prefix.len() < 64 {
            let take = (64 - prefix.len()).min(chunk.len());
            prefix.extend_from_slice(&chunk[..take]);
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await?;
    }
    if size == 0 {
        return Err(IngestError::Empty);
    }
    file.flush().await?;
    let file = file.into_inner();
    // DESIGN invariant 1: durable before it is acknowledged.
    file.sync_all().await?;
    drop(file);

    let format = pictor_imaging::sniff(&prefix).ok_or(IngestError::NotAnImage)?;
    if !pictor_imaging::is_decodable(format) {
        return Err(IngestError::UnsupportedFormat(format!(
            "{} images are not supported by this build",
            format.as_str().to_ascii_uppercase()
        )));
    }
    let probe_path = path.to_owned();
    let info = tokio::task::spawn_blocking(move || -> Result<ImageInfo, ImagingError> {
        let reader = std::io::BufReader::new(std::fs::File::open(probe_path)?);
        pictor_imaging::probe(reader, &limits)
    })
    .await
    .map_err(|e| IngestError::Corrupt(format!("header could not be read: {e}")))?
    .map_err(|e| match e {
        ImagingError::TooLarge { width, height, max_pixels } => {
            IngestError::TooManyPixels { width: width.into(), height: height.into(), max_pixels }
        }
        ImagingError::Unsupported(what) => IngestError::UnsupportedFormat(what),
        ImagingError::Io(io) => IngestError::Io(io),
        other => IngestError::Corrupt(other.to_string()),
    })?;
    Ok((hex::encode(hasher.finalize()), size, info))
}
