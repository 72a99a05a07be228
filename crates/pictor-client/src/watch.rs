//! Following an image until it settles: a stream of its changes, and waits
//! built on it. The changes come from a [`StatusSource`]: polling today; a
//! server-sent `/api/events` source slots in beside it without changing callers.

use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt, stream};

use crate::client::Client;
use crate::error::Error;
use crate::models::{Image, ImageStatus, JobStatus};
use crate::status::is_settled;

/// Where an image's changes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusSource {
    /// `GET /api/images/{id}` every `interval` (the server has no event stream yet).
    Polling {
        /// Time between two requests.
        interval: Duration,
    },
}

/// What counts as a change: the image's state or any of its jobs' states.
fn fingerprint(image: &Image) -> (ImageStatus, Vec<(i64, JobStatus)>) {
    let jobs = image.processing_jobs.iter().map(|j| (j.id, j.status)).collect();
    (image.status, jobs)
}

impl Client {
    /// The source this client follows images with.
    pub fn status_source(&self) -> StatusSource {
        StatusSource::Polling { interval: self.poll_interval }
    }

    /// The image now, then again each time its state or one of its jobs'
    /// states changes; the stream ends after STORED or FAILED, or after the
    /// first error.
    pub fn status_changes(&self, id: &str) -> impl Stream<Item = Result<Image, Error>> + Send + 'static {
        match self.status_source() {
            StatusSource::Polling { interval } => self.poll_changes(id.to_owned(), interval),
        }
    }

    fn poll_changes(
        &self,
        id: String,
        interval: Duration,
    ) -> impl Stream<Item = Result<Image, Error>> + Send + 'static {
        struct State {
            client: Client,
            id: String,
            last: Option<(ImageStatus, Vec<(i64, JobStatus)>)>,
            done: bool,
        }
        let start = State { client: self.clone(), id, last: None, done: false };
        stream::unfold(start, move |mut state| async move {
            if state.done {
                return None;
            }
            loop {
                if state.last.is_some() {
                    tokio::time::sleep(interval).await;
                }
                match state.client.get_image(&state.id).await {
                    Err(e) => {
                        state.done = true;
                        return Some((Err(e), state));
                    }
                    Ok(image) => {
                        let now = fingerprint(&image);
                        if state.last.as_ref() == Some(&now) {
                            continue;
                        }
                        state.done = is_settled(image.status);
                        state.last = Some(now);
                        return Some((Ok(image), state));
                    }
                }
            }
        })
    }

    /// Waits until the image is STORED or FAILED and returns it either way.
    ///
    /// # Errors
    /// [`Error::Timeout`] when it is neither after `timeout`; a request error.
    pub async fn wait_until_settled(&self, id: &str, timeout: Duration) -> Result<Image, Error> {
        let started = Instant::now();
        let mut last = None;
        let follow = async {
            let mut changes = std::pin::pin!(self.status_changes(id));
            while let Some(image) = changes.next().await {
                let image = image?;
                if is_settled(image.status) {
                    return Ok(image);
                }
                last = Some(image.status);
            }
            // The stream only ends after a settled image or an error.
            Err(Error::Timeout {
                id: id.to_owned(),
                status: last.unwrap_or(ImageStatus::Uploaded),
                waited: started.elapsed(),
            })
        };
        match tokio::time::timeout(timeout, follow).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                id: id.to_owned(),
                status: last.unwrap_or(ImageStatus::Uploaded),
                waited: started.elapsed(),
            }),
        }
    }

    /// Waits until the image is STORED and returns it.
    ///
    /// # Errors
    /// [`Error::ImageFailed`] with the image's error when it ends FAILED;
    /// [`Error::Timeout`] when it is not STORED after `timeout`; a request error.
    pub async fn wait_until_stored(&self, id: &str, timeout: Duration) -> Result<Image, Error> {
        let image = self.wait_until_settled(id, timeout).await?;
        if image.status == ImageStatus::Failed {
            return Err(Error::ImageFailed {
                id: image.id,
                message: image.error.unwrap_or_else(|| "no error was recorded".to_owned()),
            });
        }
        Ok(image)
    }
}
