//! The typed HTTP client: one method per endpoint of the API, answers as the
//! [`models`](crate::models) types, failures as [`Error`].

use std::fmt;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, Url};
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::models::{Image, ImageList, ImageUpdate, JobDetail, JobList, ReprocessRequest, Reprocessed, Retried};
use crate::query::{ImageQuery, JobQuery};

/// The server a client talks to when none is given (`pictor serve`'s default bind).
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:3000";
/// How often a wait asks for an image's state while no event stream exists.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long connecting may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An async client of one Pictor server. Cheap to clone: clones share one
/// connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Base URL without a trailing slash, so that paths starting with `/` append.
    base: String,
    /// Sent as `Authorization: Bearer` on every request when set.
    token: Option<String>,
    pub(crate) poll_interval: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("poll_interval", &self.poll_interval)
            .finish()
    }
}

impl Client {
    /// A client of the server at `base` (for example `http://127.0.0.1:3000`,
    /// or a URL with a path prefix when Pictor sits behind a proxy).
    ///
    /// # Errors
    /// [`Error::InvalidServer`] when `base` is not an `http` URL (or `https`
    /// without this crate's `rustls` feature), or the HTTP stack cannot start.
    pub fn new(base: &str) -> Result<Self, Error> {
        let invalid = |why: &str| Error::InvalidServer { address: base.to_owned(), why: why.to_owned() };
        let url = Url::parse(base).map_err(|e| invalid(&e.to_string()))?;
        match url.scheme() {
            "http" => {}
            "https" if cfg!(feature = "rustls") => {}
            "https" => {
                return Err(invalid("https needs pictor-client's `rustls` feature (off in this build)"));
            }
            other => return Err(invalid(&format!("unsupported scheme {other:?}"))),
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("a server address has no query or fragment"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("pictor-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| invalid(&format!("cannot start the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: url.as_str().trim_end_matches('/').to_owned(),
            token: None,
            poll_interval: DEFAULT_POLL_INTERVAL,
        })
    }

    /// The same client sending `Authorization: Bearer TOKEN` (the server's
    /// `PICTOR_ADMIN_TOKEN`) with every request.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The same client polling at `interval` while it waits for an image.
    #[must_use]
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The server's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Absolute URL of a path the API hands out (`/assets/...`); an absolute
    /// URL is returned as it is.
    pub fn asset_url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            return path.to_owned();
        }
        if path.starts_with('/') { format!("{}{path}", self.base) } else { format!("{}/{path}", self.base) }
    }

    /// Absolute URL of the image's thumbnail whose longest edge is `size`
    /// px, once it exists (the server's sizes default to 64, 128, 256, 512).
    pub fn thumbnail_url(&self, image: &Image, size: u32) -> Option<String> {
        image.thumbnails.get(&size.to_string()).map(|path| self.asset_url(path))
    }

    /// Absolute URL of the image's web preview, once it exists.
    pub fn preview_url(&self, image: &Image) -> Option<String> {
        image.preview_path.as_deref().map(|p| self.asset_url(p))
    }

    /// `GET /readyz`: the server answers, its database and storage work and
    /// its schema is current (`/healthz`, liveness, checks none of them).
    ///
    /// # Errors
    /// [`Error::Connect`] when nothing answers; [`Error::Api`] (503) when the
    /// server is up but not ready.
    pub async fn health(&self) -> Result<(), Error> {
        self.send(self.request(Method::GET, "/readyz", &[])?).await.map(drop)
    }

    /// `GET /api/images`: a page of images, newest first, with every
    /// collection's count.
    ///
    /// # Errors
    /// The server refused the filters (`invalid_status`, `invalid_limit`) or
    /// could not be reached.
    pub async fn get_images(&self, query: &ImageQuery) -> Result<ImageList, Error> {
        self.json(self.request(Method::GET, "/api/images", &query.pairs())?).await
    }

    /// `GET /api/images/{id}`.
    ///
    /// # Errors
    /// `not_found` (404) for an unknown id, or a transport error.
    pub async fn get_image(&self, id: &str) -> Result<Image, Error> {
        self.json(self.request(Method::GET, &image_path(id), &[])?).await
    }

    /// `PATCH /api/images/{id}`: changes the title and/or collection.
    ///
    /// # Errors
    /// `not_found`, `invalid_title` or `nothing_to_update` (4xx), or a
    /// transport error.
    pub async fn update_image(&self, id: &str, update: &ImageUpdate) -> Result<Image, Error> {
        self.json(self.request(Method::PATCH, &image_path(id), &[])?.json(update)).await
    }

    /// `DELETE /api/images/{id}`: the image, its assets and its idle jobs.
    ///
    /// # Errors
    /// `not_found` (404) for an unknown id, or a transport error.
    pub async fn delete_image(&self, id: &str) -> Result<(), Error> {
        self.send(self.request(Method::DELETE, &image_path(id), &[])?).await.map(drop)
    }

    /// `GET /api/admin/jobs`: a page of jobs, newest first.
    ///
    /// # Errors
    /// The server refused the filters (`invalid_status`, `invalid_type`), the
    /// token, or could not be reached.
    pub async fn get_jobs(&self, query: &JobQuery) -> Result<JobList, Error> {
        self.json(self.request(Method::GET, "/api/admin/jobs", &query.pairs())?).await
    }

    /// `GET /api/admin/jobs/{id}`: the job with its payload, lease, retry
    /// state and image.
    ///
    /// # Errors
    /// `not_found` (404) for an unknown id, or a transport error.
    pub async fn get_job(&self, id: i64) -> Result<JobDetail, Error> {
        self.json(self.request(Method::GET, &format!("/api/admin/jobs/{id}"), &[])?).await
    }

    /// `POST /api/admin/jobs/{id}/retry`: a FAILED or CANCELLED job back to
    /// PENDING (and its image back to PROCESSING).
    ///
    /// # Errors
    /// `not_found` (404), `wrong_state` (409) for a job that is not FAILED or
    /// CANCELLED, or a transport error.
    pub async fn retry_job(&self, id: i64) -> Result<JobDetail, Error> {
        let path = format!("/api/admin/jobs/{id}/retry");
        self.json(self.request(Method::POST, &path, &[])?).await
    }

    /// `POST /api/admin/jobs/{id}/cancel`: a PENDING job to CANCELLED.
    ///
    /// # Errors
    /// `not_found` (404), `wrong_state` (409), or a transport error.
    pub async fn cancel_job(&self, id: i64) -> Result<JobDetail, Error> {
        let path = format!("/api/admin/jobs/{id}/cancel");
        self.json(self.request(Method::POST, &path, &[])?).await
    }

    /// `POST /api/admin/jobs/retry-failed`: every FAILED job back to PENDING;
    /// returns how many.
    ///
    /// # Errors
    /// The token was refused, or a transport error.
    pub async fn retry_all_failed(&self) -> Result<u64, Error> {
        let retried: Retried = self.json(self.request(Method::POST, "/api/admin/jobs/retry-failed", &[])?).await?;
        Ok(retried.retried)
    }

    /// `POST /api/admin/reprocess`: queues the regeneration of the selected
    /// images whose assets are outdated (or only counts them, `dryRun`).
    ///
    /// # Errors
    /// `invalid_status` (400) for a state that cannot be reprocessed, the
    /// token was refused, or a transport error.
    pub async fn reprocess(&self, request: &ReprocessRequest) -> Result<Reprocessed, Error> {
        self.json(self.request(Method::POST, "/api/admin/reprocess", &[])?.json(request)).await
    }

    /// A request to `path` with query `pairs` and the token.
    pub(crate) fn request(
        &self,
        method: Method,
        path: &str,
        pairs: &[(&str, String)],
    ) -> Result<RequestBuilder, Error> {
        let mut url = Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| Error::InvalidServer { address: self.base.clone(), why: e.to_string() })?;
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let request = self.http.request(method, url);
        Ok(match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        })
    }

    /// Sends a request; a 4xx/5xx answer becomes [`Error::Api`].
    pub(crate) async fn send(&self, request: RequestBuilder) -> Result<reqwest::Response, Error> {
        let response = request.send().await.map_err(|e| self.transport(e))?;
        if response.status().is_success() { Ok(response) } else { Err(Error::from_response(response).await) }
    }

    /// Sends a request and parses its JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, Error> {
        let response = request.send().await.map_err(|e| self.transport(e))?;
        self.parse(response).await
    }

    /// Parses a JSON answer; a 4xx/5xx answer becomes [`Error::Api`].
    pub(crate) async fn parse<T: DeserializeOwned>(&self, response: reqwest::Response) -> Result<T, Error> {
        if !response.status().is_success() {
            return Err(Error::from_response(response).await);
        }
        let url = response.url().to_string();
        response.json().await.map_err(|source| Error::Decode { url, source })
    }

    /// Classifies a failure of the HTTP stack.
    pub(crate) fn transport(&self, source: reqwest::Error) -> Error {
        if source.is_connect() || source.is_timeout() {
            Error::Connect { server: self.base.clone(), source }
        } else {
            Error::Request { url: source.url().map_or_else(|| self.base.clone(), ToString::to_string), source }
        }
    }
}

/// The path of an image; the id is percent-encoded as one path segment.
fn image_path(id: &str) -> String {
    let mut path = String::from("/api/images/");
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            path.push(char::from(byte));
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    path
}
