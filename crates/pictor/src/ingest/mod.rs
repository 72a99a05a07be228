//! Ingest: streams an upload into the storage's temp area, hashing
//! (SHA-256) and counting as the bytes arrive, enforces the size limit,
//! recognises the format by its magic bytes and reads the header
//! (dimensions, orientation), refusing images over the pixel limit before
//! anything is decoded. A refused upload leaves nothing behind.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use pictor_imaging::{ImageInfo, ImagingError, Limits};
use sha2::{Digest, Sha256};

use crate::storage::{Storage, StorageError, TempKey, UploadWriter};

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
    /// Storage failed while the upload was written or read back.
    #[error("could not store the upload")]
    Storage(#[from] StorageError),
    /// Reading the header failed for a reason other than the file.
    #[error("could not read the upload's header")]
    Io(#[from] std::io::Error),
}

/// An upload that is durable in the temp area and whose header was read.
#[derive(Debug, Clone)]
pub struct Ingested {
    /// Where the upload is stored.
    pub temp_key: TempKey,
    /// SHA-256, lowercase hex.
    pub checksum: String,
    /// Bytes.
    pub size_bytes: u64,
    /// Format, dimensions and orientation.
    pub info: ImageInfo,
}

/// Streams `body` into a new upload in `storage` and probes it.
///
/// # Errors
/// A refusal ([`IngestError`]); nothing is left in storage.
pub async fn ingest<S>(
    storage: &dyn Storage,
    mut body: S,
    max_bytes: u64,
    limits: Limits,
) -> Result<Ingested, IngestError>
where
    S: Stream<Item = Result<Bytes, IngestError>> + Unpin,
{
    // The body is gathered in memory up to WRITE_BUFFER_BYTES and written
    // in large blocks, the upload begun at the first block. An upload that
    // fits (most photos) is probed from memory before anything is written,
    // then written and synced in one call.
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut prefix = Vec::with_capacity(SNIFF_BYTES);
    let mut pending: Vec<u8> = Vec::new();
    let mut writer: Option<Box<dyn UploadWriter>> = None;
    let read = async {
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
                let open = match writer.as_mut() {
                    Some(open) => open,
                    None => writer.insert(storage.begin_upload().await?),
                };
                // The block's allocation is reused for the next one.
                pending = open.write(std::mem::take(&mut pending)).await?;
            }
        }
        if size == 0 {
            return Err(IngestError::Empty);
        }
        // Checked once the whole body is read, so that the client gets the
        // answer rather than a connection closed under its upload.
        sniff_decodable(&prefix)
    };
    if let Err(e) = read.await {
        if let Some(writer) = writer {
            writer.abort().await;
        }
        return Err(e);
    }
    let checksum = hex::encode(hasher.finalize());
    let (temp_key, info) = match writer {
        None => {
            let (info, pending) = blocking(move || {
                let info = pictor_imaging::probe(std::io::Cursor::new(&pending), &limits).map_err(probe_error);
                Ok((info, pending))
            })
            .await?;
            let info = info?;
            (storage.begin_upload().await?.finish(pending).await?, info)
        }
        Some(writer) => {
            let key = writer.finish(pending).await?;
            let probed = probe_stored(storage, &key, limits).await;
            match probed {
                Ok(info) => (key, info),
                Err(e) => {
                    let _ = storage.abort(&key).await;
                    return Err(e);
                }
            }
        }
    };
    Ok(Ingested { temp_key, checksum, size_bytes: size, info })
}

/// Reads the header of an upload too large to keep in memory, from storage.
async fn probe_stored(storage: &dyn Storage, key: &TempKey, limits: Limits) -> Result<ImageInfo, IngestError> {
    let reader = storage.open_blocking(key)?;
    blocking(move || pictor_imaging::probe(std::io::BufReader::new(reader), &limits).map_err(probe_error)).await
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

/// Runs header work on the blocking pool.
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
    use std::path::Path;

    use super::*;
    use crate::storage::LocalStorage;

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
        std::fs::read_dir(dir.join("tmp")).expect("read_dir").count()
    }

    fn storage(dir: &Path) -> LocalStorage {
        LocalStorage::open(dir).expect("storage")
    }

    #[tokio::test]
    async fn an_upload_larger_than_the_write_buffer_is_stored_whole_from_chunks_of_any_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let png = testdata("png16-bridge.png");
        assert!(png.len() > 2 * WRITE_BUFFER_BYTES - 100_000, "the file spans more than one block");
        for sizes in [&[1, 3, 60, 65_536][..], &[WRITE_BUFFER_BYTES + 1][..], &[700_000][..]] {
            let store = storage(dir.path());
            let got = ingest(&store, body(&png, sizes), 10 << 20, Limits::default()).await.expect("ingested");
            assert_eq!(store.get(&got.temp_key).await.expect("temp file"), png, "chunks {sizes:?}");
            assert_eq!(got.checksum, hex::encode(Sha256::digest(&png)));
            assert_eq!(got.size_bytes, png.len() as u64);
            assert_eq!(got.info.format.as_str(), "png");
            store.abort(&got.temp_key).await.expect("abort");
        }
        assert_eq!(files_in(dir.path()), 0);
    }

    #[tokio::test]
    async fn a_small_upload_is_probed_from_memory_and_synced_to_its_temp_object() {
        let dir = tempfile::tempdir().expect("tempdir");
        let jpeg = testdata("mpl-grace-hopper.jpg");
        let store = storage(dir.path());
        let got = ingest(&store, body(&jpeg, &[10, 4096]), 10 << 20, Limits::default()).await.expect("ingested");
        assert_eq!(store.get(&got.temp_key).await.expect("temp file"), jpeg);
        assert_eq!(got.info.format.as_str(), "jpeg");
        assert!(got.temp_key.as_str().starts_with("tmp/") && got.temp_key.as_str().ends_with(".upload"));
    }

    #[tokio::test]
    async fn refused_uploads_leave_no_file_behind_even_after_a_block_was_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = storage(dir.path());
        let not_an_image = vec![b'x'; 3 * WRITE_BUFFER_BYTES / 2];
        let err = ingest(&store, body(&not_an_image, &[65_536]), 10 << 20, Limits::default()).await;
        assert!(matches!(err, Err(IngestError::NotAnImage)), "{err:?}");

        let png = testdata("png16-bridge.png");
        let err = ingest(&store, body(&png, &[65_536]), (png.len() - 1) as u64, Limits::default()).await;
        assert!(matches!(err, Err(IngestError::TooLarge { .. })), "{err:?}");

        let tiny = Limits { max_pixels: 100, ..Limits::default() };
        let err = ingest(&store, body(&png, &[65_536]), 10 << 20, tiny).await;
        assert!(matches!(err, Err(IngestError::TooManyPixels { .. })), "{err:?}");

        let err = ingest(&store, body(&[], &[1]), 10 << 20, Limits::default()).await;
        assert!(matches!(err, Err(IngestError::Empty)), "{err:?}");
        assert_eq!(files_in(dir.path()), 0, "nothing left in the temp folder");
    }
}
