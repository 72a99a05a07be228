//! `POST /api/upload` from a file: the file is streamed (never read whole
//! into memory) through a wrapper that counts bytes for a progress callback.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream;
use reqwest::multipart::{Form, Part};
use reqwest::{Body, Method};
use tokio::io::AsyncReadExt;

use crate::client::Client;
use crate::error::Error;
use crate::models::UploadResponse;

/// Bytes read from the file per body chunk.
const CHUNK_BYTES: usize = 64 * 1024;
/// Times an upload turned away as `too_busy` (503) is sent again.
pub const BUSY_RETRIES: u32 = 6;
/// Longest wait between those tries, whatever `Retry-After` asks.
const MAX_BUSY_WAIT: Duration = Duration::from_secs(30);

/// Optional fields of an upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadOptions {
    /// Title (the server defaults it to the file name without extension).
    pub title: Option<String>,
    /// Collection (none by default).
    pub collection: Option<String>,
}

/// How far an upload is, as reported to the progress callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the file handed to the connection so far.
    pub sent: u64,
    /// Size of the file.
    pub total: u64,
}

impl Client {
    /// `POST /api/upload`: streams the file at `path` as multipart `file`
    /// (named by its file name) with `options`, calling `progress` after each
    /// chunk. The image is INGESTED when this returns; see
    /// [`Client::wait_until_stored`].
    ///
    /// A server with too many uploads in flight answers 503 `too_busy` with
    /// `Retry-After`: the upload is sent again after that wait, up to
    /// [`BUSY_RETRIES`] times.
    ///
    /// # Errors
    /// [`Error::File`] when the file cannot be opened; [`Error::Api`] when the
    /// server refuses it (`unsupported_format`, `file_too_large`,
    /// `too_many_pixels`, ... and `too_busy` once the retries are spent); a
    /// transport error.
    pub async fn upload_image(
        &self,
        path: &Path,
        options: &UploadOptions,
        progress: impl Fn(Progress) + Send + Sync + 'static,
    ) -> Result<UploadResponse, Error> {
        let progress: Arc<dyn Fn(Progress) + Send + Sync> = Arc::new(progress);
        let mut tries = 0;
        loop {
            let request = self.upload_request(path, options, progress.clone()).await?;
            let response = request.send().await.map_err(|e| self.transport(e))?;
            if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE && tries < BUSY_RETRIES {
                let wait = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                if let Some(wait) = wait {
                    tries += 1;
                    tokio::time::sleep(wait.min(MAX_BUSY_WAIT)).await;
                    continue;
                }
            }
            return self.parse(response).await;
        }
    }

    /// The multipart request of one try, streaming the file from its start.
    async fn upload_request(
        &self,
        path: &Path,
        options: &UploadOptions,
        progress: Arc<dyn Fn(Progress) + Send + Sync>,
    ) -> Result<reqwest::RequestBuilder, Error> {
        let file_error = |source| Error::File { path: path.to_owned(), source };
        let file = tokio::fs::File::open(path).await.map_err(file_error)?;
        let total = file.metadata().await.map_err(file_error)?.len();
        let name = path.file_name().map_or_else(|| "upload".to_owned(), |n| n.to_string_lossy().into_owned());
        let body = Body::wrap_stream(counting_stream(file, total, progress));
        let part = Part::stream_with_length(body, total).file_name(name);
        let mut form = Form::new().part("file", part);
        if let Some(title) = &options.title {
            form = form.text("title", title.clone());
        }
        if let Some(collection) = &options.collection {
            form = form.text("collection", collection.clone());
        }
        Ok(self.request(Method::POST, "/api/upload", &[])?.multipart(form))
    }
}

/// The file as a stream of chunks, reporting `sent: 0` at once and the
/// running count after each chunk.
fn counting_stream(
    file: tokio::fs::File,
    total: u64,
    progress: Arc<dyn Fn(Progress) + Send + Sync>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    progress(Progress { sent: 0, total });
    stream::try_unfold((file, 0u64), move |(mut file, sent)| {
        let progress = Arc::clone(&progress);
        async move {
            let mut chunk = vec![0; CHUNK_BYTES];
            let n = file.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            chunk.truncate(n);
            let sent = sent + n as u64;
            progress(Progress { sent, total });
            Ok(Some((chunk, (file, sent))))
        }
    })
}
