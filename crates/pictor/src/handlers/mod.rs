//! Job handlers, registered by job type (the card's `registerJobHandler`).
//! A handler does the work (files, pixels) and returns an [`Outcome`]: the
//! database changes to make, which the queue commits together with the job's
//! completion. Handlers hold no SQL and no transaction.

pub mod cpu_pool;
mod offload_original;
mod preview;
pub mod shared_decode;
mod thumbnails;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use pictor_client::models::JobKind;
use pictor_imaging::{AssetFormat, ImagingError, Prepared, RenderOptions};

pub use cpu_pool::{CpuPool, CpuPoolError};
pub use offload_original::OffloadOriginal;
pub use preview::PreviewGeneration;
pub use shared_decode::{SharedDecodes, Taker};
pub use thumbnails::ThumbnailGeneration;

use crate::queue::job::{Job, NewJob};
use crate::storage::{Storage, StorageError};

/// Why a handler did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Might work later (I/O, a full disk, a database hiccup): retried with backoff.
    #[error("{0}")]
    Retryable(String),
    /// Will never work (corrupt or unsupported input): fails at once.
    #[error("{0}")]
    Permanent(String),
}

impl From<StorageError> for HandlerError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound(_) | StorageError::InvalidKey(_) => Self::Permanent(e.to_string()),
            StorageError::Io { ref source, .. } => Self::Retryable(format!("{e}: {source}")),
        }
    }
}

impl From<ImagingError> for HandlerError {
    fn from(e: ImagingError) -> Self {
        match e {
            ImagingError::Io(_) => Self::Retryable(e.to_string()),
            _ => Self::Permanent(e.to_string()),
        }
    }
}

/// A change to an image that a job's completion commits.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageEffect {
    /// The original is stored under `original_path`; the image is PROCESSING.
    Original {
        /// The image.
        image_id: String,
        /// Storage key.
        original_path: String,
    },
    /// The thumbnails exist, by longest edge.
    Thumbnails {
        /// The image.
        image_id: String,
        /// Storage key per size.
        keys: BTreeMap<u32, String>,
        /// ThumbHash of the image, base64 (absent if it could not be made).
        thumbhash: Option<String>,
    },
    /// The preview exists.
    Preview {
        /// The image.
        image_id: String,
        /// Storage key of the JPEG.
        preview_path: String,
        /// Storage key of each encoding (the JPEG's too), by format name.
        previews: BTreeMap<String, String>,
    },
}

/// What a finished handler asks the queue to commit with its completion.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Image changes.
    pub effects: Vec<ImageEffect>,
    /// Jobs to enqueue in the same transaction.
    pub children: Vec<NewJob>,
}

/// What assets look like, resolved once from the configuration.
#[derive(Debug, Clone)]
pub struct AssetSettings {
    /// Thumbnail sizes (longest edge, px).
    pub thumbnail_sizes: Vec<u32>,
    /// Longest edge of the preview, px.
    pub preview_max_edge: u32,
    /// Encodings of the preview: JPEG first, then any others configured.
    pub preview_formats: Vec<AssetFormat>,
    /// Encoder options and decode limits.
    pub render: RenderOptions,
}

impl AssetSettings {
    /// The edge one decode must cover to serve the preview and every
    /// thumbnail (what the two asset jobs share).
    pub fn shared_edge(&self) -> u32 {
        self.thumbnail_sizes.iter().copied().fold(self.preview_max_edge, u32::max)
    }
}

/// What every handler may use.
#[derive(Debug, Clone)]
pub struct HandlerContext {
    /// Where originals and assets live.
    pub storage: Arc<dyn Storage>,
    /// The local folder uploads stream to.
    pub tmp_dir: PathBuf,
    /// Runs decoding and encoding, one thread per CPU (DESIGN invariant 6).
    pub cpu: Arc<CpuPool>,
    /// Asset sizes and quality.
    pub assets: Arc<AssetSettings>,
    /// Decodes shared by the thumbnail and preview jobs of one image.
    pub decodes: Arc<SharedDecodes>,
}

impl HandlerContext {
    /// Runs CPU-heavy work on the CPU pool, so the async runtime never
    /// blocks and memory stays bounded.
    ///
    /// # Errors
    /// The work's own error, a permanent error if it panicked, or a
    /// retryable one if the pool has stopped (the worker is shutting down).
    pub async fn run_cpu<T, F>(&self, work: F) -> Result<T, HandlerError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, HandlerError> + Send + 'static,
    {
        match self.cpu.run(work).await {
            Ok(result) => result,
            Err(e @ CpuPoolError::Panicked(_)) => Err(HandlerError::Permanent(e.to_string())),
            Err(e @ CpuPoolError::Stopped) => Err(HandlerError::Retryable(e.to_string())),
        }
    }
}

impl HandlerContext {
    /// The original's pixels prepared for both asset jobs: read and decoded
    /// once per process when the thumbnail and preview jobs of an image run
    /// side by side (see [`shared_decode`]).
    ///
    /// # Errors
    /// Reading the original, or decoding it.
    pub async fn shared_prepared(&self, original_path: &str, taker: Taker) -> Result<Arc<Prepared>, HandlerError> {
        self.decodes
            .get_or_decode(original_path, taker, || self.prepare_original(original_path, self.assets.shared_edge()))
            .await
    }

    /// Reads an original and decodes it once for outputs up to `edge`.
    ///
    /// # Errors
    /// Reading the original, or decoding it.
    pub async fn prepare_original(&self, original_path: &str, edge: u32) -> Result<Arc<Prepared>, HandlerError> {
        let data = self.storage.get(original_path).await?;
        let options = self.assets.render.clone();
        self.run_cpu(move || Ok(Arc::new(pictor_imaging::prepare(&data, edge, &options)?))).await
    }
}

/// Does one kind of job.
#[async_trait::async_trait]
pub trait JobHandler: Send + Sync {
    /// Runs the job. Must be idempotent: a re-run after a crash gives the
    /// same files and outcome (DESIGN invariant 2).
    async fn handle(&self, job: &Job, ctx: &HandlerContext) -> Result<Outcome, HandlerError>;
}

/// The handlers by job type.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<JobKind, Arc<dyn JobHandler>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.handlers.keys()).finish()
    }
}

impl Registry {
    /// The three handlers of the card.
    pub fn standard() -> Self {
        let mut registry = Self::default();
        registry.register(JobKind::OffloadOriginal, OffloadOriginal);
        registry.register(JobKind::ThumbnailGeneration, ThumbnailGeneration);
        registry.register(JobKind::PreviewGeneration, PreviewGeneration);
        registry
    }

    /// Registers (or replaces) the handler of a job type.
    pub fn register(&mut self, kind: JobKind, handler: impl JobHandler + 'static) {
        self.handlers.insert(kind, Arc::new(handler));
    }

    /// The handler of a job type.
    pub fn get(&self, kind: JobKind) -> Option<Arc<dyn JobHandler>> {
        self.handlers.get(&kind).cloned()
    }
}

/// Parses a job's payload, or fails it for good: a bad payload never heals.
fn payload<T: for<'de> serde::Deserialize<'de>>(job: &Job) -> Result<T, HandlerError> {
    job.payload_as().map_err(|e| HandlerError::Permanent(format!("invalid {} payload: {e}", job.kind)))
}
