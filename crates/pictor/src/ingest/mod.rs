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
use std::io::Write as _;

/// Bytes of an upload gathered before each write to the temp file.
const WRITE_BUFFER_BYTES: usize = 1 << 20;
/// Bytes of an upload's start that recognise its format.
const SNIFF_BYTES: usize = 64;

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
pub async fn ingest<S>(tmp_dir: &Path, body: S, max_bytes: u64, limits: Limits) -> Result<Ingested, IngestError>
where
    S: Stream<Item = Result<Bytes, IngestError>> + Unpin,
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

async fn write_and_probe<S>(
    path: &Path,
    mut body: S,
    max_bytes: u64,
    limits: Limits,
) -> Result<(String, u64, ImageInfo), IngestError>
where
    S: Stream<Item = Result<Bytes, IngestError>> + Unpin,
{
    // The body is gathered in memory up to WRITE_BUFFER_BYTES and written
    // in large blocks, the file created at the first block; an upload that
    // fits (most photos) costs one trip to the blocking pool in all:
    // create, write, fsync and read its header.
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut prefix = Vec::with_capacity(SNIFF_BYTES);
    let mut pending: Vec<u8> = Vec::new();
    let mut file: Option<std::fs::File> = None;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        if size > max_bytes {
            return Err(IngestError::TooLarge { limit: max_bytes });
        }
        hasher.update(&chunk);
        if prefix.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - prefix.len()).min(chunk.len());
            prefix.extend_from_slice(&chunk[..take]);
        }
        pending.extend_from_slice(&chunk);
        if pending.len() >= WRITE_BUFFER_BYTES {
            let (path, mut block, open) = (path.to_owned(), std::mem::take(&mut pending), file.take());
            let (written, emptied) = blocking(move || {
                let mut file = opened_or_created(open, &path)?;
                file.write_all(&block)?;
                block.clear();
                Ok((file, block))
            })
            .await?;
            file = Some(written);
            // The block's allocation is reused for the next one.
            pending = emptied;
        }
    }
    if size == 0 {
        return Err(IngestError::Empty);
    }
    // Checked once the whole body is read, so that the client gets the
    // answer rather than a connection closed under its upload.
    sniff_decodable(&prefix)?;
    let path = path.to_owned();
    let info = blocking(move || {
        let spilled = file.is_some();
        let mut file = opened_or_created(file, &path)?;
        file.write_all(&pending)?;
        // DESIGN invariant 1: durable before it is acknowledged.
        file.sync_all()?;
        drop(file);
        let probed = if spilled {
            pictor_imaging::probe(std::io::BufReader::new(std::fs::File::open(&path)?), &limits)
        } else {
            pictor_imaging::probe(std::io::Cursor::new(&pending), &limits)
        };
        probed.map_err(probe_error)
    })
    .await?;
    Ok((hex::encode(hasher.finalize()), size, info))
}

/// Refuses a start of file that is no image Pictor can decode.
fn sniff_decodable(prefix: &[u8]) -> Result<(), IngestError> {
    let format = pictor_imaging::sniff(prefix).ok_or(IngestError::NotAnImage)?;
    if !pictor_imaging::is_decodable(format) {
        return Err(IngestError::UnsupportedFormat(format!(
            "{} images are not supported by this build",
            format.as_str().to_ascii_uppercase()
        )));
    }
    Ok(())
}

/// The temp file if it was created already, else a new one at `path`.
fn opened_or_created(file: Option<std::fs::File>, path: &Path) -> Result<std::fs::File, IngestError> {
    match file {
        Some(file) => Ok(file),
        None => Ok(std::fs::OpenOptions::new().write(true).create_new(true).open(path)?),
    }
}

/// Runs file work on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, IngestError> + Send + 'static,
) -> Result<T, IngestError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| IngestError::Io(std::io::Error::other(e)))?
}

fn probe_error(e: ImagingError) -> IngestError {
    match e {
        ImagingError::TooLarge { width, height, max_pixels } => {
            IngestError::TooManyPixels { width: width.into(), height: height.into(), max_pixels }
        }
        ImagingError::Unsupported(what) => IngestError::UnsupportedFormat(what),
        ImagingError::Io(io) => IngestError::Io(io),
        other => IngestError::Corrupt(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/images").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    /// `bytes` as a body stream cut into chunks of the given sizes (the last
    /// size repeats).
    fn body(bytes: &[u8], sizes: &[usize]) -> impl Stream<Item = Result<Bytes, IngestError>> + Unpin {
        let mut chunks = Vec::new();
        let (mut at, mut i) = (0, 0);
        while at < bytes.len() {
            let size = sizes[i.min(sizes.len() - 1)];
            let end = (at + size).min(bytes.len());
            chunks.push(Ok(Bytes::copy_from_slice(&bytes[at..end])));
            (at, i) = (end, i + 1);
        }
        futures_util::stream::iter(chunks)
    }

    fn files_in(dir: &Path) -> usize {
        std::fs::read_dir(dir).expect("read_dir").count()
    }

    #[tokio::test]
    async fn an_upload_larger_than_the_write_buffer_is_stored_whole_from_chunks_of_any_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let png = testdata("png16-bridge.png");
        assert!(png.len() > 2 * WRITE_BUFFER_BYTES - 100_000, "the file spans more than one block");
        for sizes in [&[1, 3, 60, 65_536][..], &[WRITE_BUFFER_BYTES + 1][..], &[700_000][..]] {
            let got = ingest(dir.path(), body(&png, sizes), 10 << 20, Limits::default()).await.expect("ingested");
            assert_eq!(std::fs::read(&got.temp_file).expect("temp file"), png, "chunks {sizes:?}");
            assert_eq!(got.checksum, hex::encode(Sha256::digest(&png)));
            assert_eq!(got.size_bytes, png.len() as u64);
            assert_eq!(got.info.format.as_str(), "png");
            got.discard().await;
        }
        assert_eq!(files_in(dir.path()), 0);
    }

    #[tokio::test]
    async fn a_small_upload_is_probed_from_memory_and_synced_to_its_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jpeg = testdata("mpl-grace-hopper.jpg");
        let got = ingest(dir.path(), body(&jpeg, &[10, 4096]), 10 << 20, Limits::default()).await.expect("ingested");
        assert_eq!(std::fs::read(&got.temp_file).expect("temp file"), jpeg);
        assert_eq!(got.info.format.as_str(), "jpeg");
        assert!(got.temp_key.starts_with("tmp/") && got.temp_key.ends_with(".upload"));
    }

    #[tokio::test]
    async fn refused_uploads_leave_no_file_behind_even_after_a_block_was_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let not_an_image = vec![b'x'; 3 * WRITE_BUFFER_BYTES / 2];
        let err = ingest(dir.path(), body(&not_an_image, &[65_536]), 10 << 20, Limits::default()).await;
        assert!(matches!(err, Err(IngestError::NotAnImage)), "{err:?}");

        let png = testdata("png16-bridge.png");
        let err = ingest(dir.path(), body(&png, &[65_536]), (png.len() - 1) as u64, Limits::default()).await;
        assert!(matches!(err, Err(IngestError::TooLarge { .. })), "{err:?}");

        let tiny = Limits { max_pixels: 100, ..Limits::default() };
        let err = ingest(dir.path(), body(&png, &[65_536]), 10 << 20, tiny).await;
        assert!(matches!(err, Err(IngestError::TooManyPixels { .. })), "{err:?}");

        let err = ingest(dir.path(), body(&[], &[1]), 10 << 20, Limits::default()).await;
        assert!(matches!(err, Err(IngestError::Empty)), "{err:?}");
        assert_eq!(files_in(dir.path()), 0, "nothing left in the temp folder");
    }
}
