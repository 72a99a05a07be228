//! `POST /api/upload` from a file: the file is streamed (never read whole
//! into memory) through a wrapper that counts bytes for a progress callback.

use std::path::Path;
use std::sync::Arc;

use futures_util::stream;
use reqwest::multipart::{Form, Part};
use reqwest::{Body, Method};
use tokio::io::AsyncReadExt;

use crate::client::Client;
use crate::error::Error;
use crate::models::UploadResponse;

/// Bytes read from the file per body chunk.
const CHUNK_BYTES: usize = 64 * 1024;

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
    /// # Errors
    /// [`Error::File`] when the file cannot be opened; [`Error::Api`] when the
    /// server refuses it (`unsupported_format`, `file_too_large`,
    /// `too_many_pixels`, ...); a transport error.
    pub async fn upload_image(
        &self,
        path: &Path,
        options: &UploadOptions,
        progress: impl Fn(Progress) + Send + Sync + 'static,
    ) -> Result<UploadResponse, Error> {
        let file_error = |source| Error::File { path: path.to_owned(), source };
        let file = tokio::fs::File::open(path).await.map_err(file_error)?;
        let total = file.metadata().await.map_err(file_error)?.len();
        let name = path.file_name().map_or_else(|| "upload".to_owned(), |n| n.to_string_lossy().into_owned());
        let body = Body::wrap_stream(counting_stream(file, total, Arc::new(progress)));
        let part = Part::stream_with_length(body, total).file_name(name);
        let mut form = Form::new().part("file", part);
        if let Some(title) = &options.title {
            form = form.text("title", title.clone());
        }
        if let Some(collection) = &options.collection {
            form = form.text("collection", collection.clone());
        }
        self.json(self.request(Method::POST, "/api/upload", &[])?.multipart(form)).await
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
