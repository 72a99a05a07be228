//! Job handlers, one per job kind: bytes in, effects out. A handler does
//! the work (files, pixels) and returns an [`Outcome`] of [`ImageEffect`]s
//! and child jobs, which the queue commits with the job's completion and
//! the images layer writes. Handlers hold no SQL and no transaction.

pub mod cpu_pool;
mod offload_original;
pub mod payload;
mod preview;
pub mod shared_decode;
mod thumbnails;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;

use pictor_client::models::JobKind;
use pictor_imaging::{AssetFormat, ImagingError, Prepared, RenderOptions};

pub use cpu_pool::{CpuPool, CpuPoolError};
pub use offload_original::OffloadOriginal;
pub use preview::PreviewGeneration;
pub use shared_decode::{SharedDecodes, Taker};
pub use thumbnails::ThumbnailGeneration;
pub use webhook::{WebhookDelivery, WebhookTarget};

use crate::db::ImageId;
use crate::queue::Job;
use crate::queue::handler::{HandlerError, Registry};
use crate::sandbox::{ProcessPool, Rendered, Request, SandboxError, Work};
use crate::storage::{OriginalKey, OriginalLocks, Storage, StorageError};

/// A handler's result: image effects and child jobs.
pub type Outcome = crate::queue::handler::Outcome<ImageEffect>;

impl From<StorageError> for HandlerError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound(_) | StorageError::InvalidKey(_) | StorageError::ChecksumMismatch { .. } => {
                Self::permanent(e.to_string())
            }
            StorageError::Io { .. } | StorageError::Lock { .. } | StorageError::Unavailable { .. } => {
                Self::retryable(e.to_string()).caused_by(e)
            }
            // Waiting for space is not the job's fault: it spends no attempt.
            StorageError::Full { .. } => Self::unavailable(e.to_string()).caused_by(e),
        }
    }
}

impl From<ImagingError> for HandlerError {
    fn from(e: ImagingError) -> Self {
        match e {
            ImagingError::Io(_) => Self::retryable(e.to_string()).caused_by(e),
            _ => Self::permanent(e.to_string()),
        }
    }
}
impl From<SandboxError> for HandlerError {
    fn from(e: SandboxError) -> Self {
        match e {
            SandboxError::Imaging(e) => e.into(),
            // The same bytes crash the same decoder again, and exhaust the
            // same memory limit: no attempt mends them (an operator who
            // raises the limit retries the job by hand).
            SandboxError::Panicked(_) | SandboxError::Crashed { .. } | SandboxError::OutOfMemory { .. } => {
                Self::permanent(e.to_string())
            }
            // Time depends on the machine's load, as for the job's own
            // deadline; a kill from outside and a broken child are not the file's fault.
            SandboxError::Deadline { .. } | SandboxError::Killed | SandboxError::Broken(_) => {
                Self::retryable(e.to_string())
            }
        }
    }
}

/// A change to an image that a job's completion commits.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageEffect {
    /// The original is stored under `original_path`; the image is PROCESSING.
    Original {
        /// The image.
        image_id: ImageId,
        /// Storage key.
        original_path: String,
    },
    /// The thumbnails exist, by longest edge.
    Thumbnails {
        /// The image.
        image_id: ImageId,
        /// Storage key per size.
        keys: BTreeMap<u32, String>,
        /// ThumbHash of the image, base64 (absent if it could not be made).
        thumbhash: Option<String>,
        /// What made them ([`AssetSettings::thumbnail_settings`]).
        settings: String,
    },
    /// The preview exists.
    Preview {
        /// The image.
        image_id: ImageId,
        /// Storage key of the JPEG.
        preview_path: String,
        /// Storage key of each encoding (the JPEG's too), by format name.
        previews: BTreeMap<String, String>,
        /// What made it ([`AssetSettings::preview_settings`]).
        settings: String,
    },
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

    /// What makes thumbnails of `sizes` under these settings, as an image
    /// records it beside them: every input of their bytes but the original
    /// (sizes, JPEG quality, background, imaging engine version). Short and
    /// readable, so that an operator sees why an image is outdated.
    pub fn thumbnail_settings(&self, sizes: &[u32]) -> String {
        let mut sizes = sizes.to_vec();
        sizes.sort_unstable();
        sizes.dedup();
        let sizes = sizes.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        format!(
            "engine {}; sizes {sizes}; jpeg {}; background {}",
            pictor_imaging::ENGINE_VERSION,
            self.render.jpeg_quality,
            hex_colour(self.render.background)
        )
    }

    /// What makes the preview under these settings, as an image records it
    /// beside it: edge, each format with its quality, background, imaging
    /// engine version.
    pub fn preview_settings(&self) -> String {
        let formats = self
            .preview_formats
            .iter()
            .map(|format| {
                let quality = match format {
                    // WebP previews use the JPEG quality (`RenderOptions`).
                    AssetFormat::Jpeg | AssetFormat::Webp => self.render.jpeg_quality,
                    AssetFormat::Avif => self.render.avif_quality,
                };
                format!("{} {quality}", format.name())
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "engine {}; edge {}; {formats}; background {}",
            pictor_imaging::ENGINE_VERSION,
            self.preview_max_edge,
            hex_colour(self.render.background)
        )
    }
}

/// `rrggbb`.
fn hex_colour([r, g, b]: [u8; 3]) -> String {
    format!("{r:02x}{g:02x}{b:02x}")
}

/// What every handler may use.
#[derive(Debug, Clone)]
pub struct HandlerContext {
    /// Where originals and assets live.
    pub storage: Arc<dyn Storage>,
    /// The originals' locks, taken by an offload's promotion.
    pub originals: Arc<dyn OriginalLocks>,
    /// Runs decoding and encoding, one thread per CPU (DESIGN invariant 6),
    /// when the sandbox is off.
    pub cpu: Arc<CpuPool>,
    /// Asset sizes and quality.
    pub assets: Arc<AssetSettings>,
    /// Decodes shared by the thumbnail and preview jobs of one image (in process).
    pub decodes: Arc<SharedDecodes>,
    /// The sandbox's children, one per CPU, where image work runs; `None`
    /// runs it on `cpu` (`PICTOR_IMAGE_SANDBOX=off`).
    pub sandbox: Option<Arc<ProcessPool>>,
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
            Err(e @ CpuPoolError::Panicked(_)) => Err(HandlerError::permanent(e.to_string())),
            Err(e @ CpuPoolError::Stopped) => Err(HandlerError::retryable(e.to_string())),
        }
    }
}

impl HandlerContext {
    /// Makes `work`'s assets from the original at `original_path`, decoded
    /// once for outputs up to `edge`, in a sandbox child or on the CPU pool.
    /// `share` names the asking job when the decode is shared with its
    /// sibling (then `edge` is [`AssetSettings::shared_edge`]).
    ///
    /// # Errors
    /// Reading the original; decoding or encoding it; the child crashed,
    /// ran out of memory or time.
    pub async fn render(
        &self,
        original_path: &str,
        share: Option<Taker>,
        edge: u32,
        work: Work,
    ) -> Result<Rendered, HandlerError> {
        let Some(sandbox) = &self.sandbox else {
            let prepared = match share {
                Some(taker) => self.shared_prepared(original_path, taker).await?,
                None => self.prepare_original(original_path, edge).await?,
            };
            let options = self.assets.render.clone();
            return self.run_cpu(move || Ok(work.render(&prepared, &options)?)).await;
        };
        // A local file the child reads itself: the original, or a download
        // into this process's scratch folder, kept until the child is done.
        let copy = self.storage.local_copy(&*OriginalKey::parse(original_path)?).await?;
        let path = std::path::absolute(copy.path()).map_err(|e| {
            HandlerError::retryable(format!("cannot resolve {}: {e}", copy.path().display())).caused_by(e)
        })?;
        let request =
            Request { key: original_path.to_owned(), path, edge, share, work, options: (&self.assets.render).into() };
        Ok(sandbox.render(&request).await?)
    }

    /// The share of image-work slots busy now (sandbox children or CPU threads), 0 to 1.
    pub fn busy_share(&self) -> f64 {
        self.sandbox.as_ref().map_or_else(|| self.cpu.busy_share(), |pool| pool.busy_share())
    }

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
        // A local file: the original itself, or a download into this
        // process's scratch folder (removed once decoded).
        let copy = self.storage.local_copy(&*OriginalKey::parse(original_path)?).await?;
        let options = self.assets.render.clone();
        self.run_cpu(move || {
            let data = std::fs::read(copy.path()).map_err(|e| {
                HandlerError::retryable(format!("cannot read {}: {e}", copy.path().display())).caused_by(e)
            })?;
            drop(copy);
            Ok(Arc::new(pictor_imaging::prepare(&data, edge, &options)?))
        })
        .await
    }
}

/// The three handlers of the card, sharing `ctx`.
pub fn registry(ctx: &Arc<HandlerContext>) -> Registry<ImageEffect> {
    let mut registry = Registry::default();
    registry.register(JobKind::OffloadOriginal, OffloadOriginal::new(ctx.clone()));
    registry.register(JobKind::ThumbnailGeneration, ThumbnailGeneration::new(ctx.clone()));
    registry.register(JobKind::PreviewGeneration, PreviewGeneration::new(ctx.clone()));
    registry
}

/// Parses a job's payload, or fails it for good: a bad payload never heals.
fn payload<T: for<'de> serde::Deserialize<'de>>(job: &Job) -> Result<T, HandlerError> {
    job.payload_as().map_err(|e| HandlerError::permanent(format!("invalid {} payload: {e}", job.kind)).caused_by(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::handler::ErrorKind;

    fn settings(sizes: Vec<u32>) -> AssetSettings {
        AssetSettings {
            thumbnail_sizes: sizes,
            preview_max_edge: 2048,
            preview_formats: vec![AssetFormat::Jpeg, AssetFormat::Avif],
            render: RenderOptions::default(),
        }
    }

    #[test]
    fn recorded_settings_name_every_input_of_the_assets_and_change_with_each() {
        let base = settings(vec![64, 128, 256, 512]);
        let engine = pictor_imaging::ENGINE_VERSION;

        assert_eq!(
            base.thumbnail_settings(&[512, 64, 256, 128]),
            format!("engine {engine}; sizes 64,128,256,512; jpeg 80; background ffffff")
        );
        assert_eq!(base.preview_settings(), format!("engine {engine}; edge 2048; jpeg 80, avif 60; background ffffff"));
        let other_quality =
            AssetSettings { render: RenderOptions { jpeg_quality: 70, ..RenderOptions::default() }, ..base.clone() };
        assert_ne!(other_quality.thumbnail_settings(&[64]), base.thumbnail_settings(&[64]));
        assert_ne!(other_quality.preview_settings(), base.preview_settings());
        let other_edge = AssetSettings { preview_max_edge: 1024, ..base.clone() };
        assert_ne!(other_edge.preview_settings(), base.preview_settings());
        assert_ne!(base.thumbnail_settings(&[64, 300]), base.thumbnail_settings(&[64, 128]));
    }

    #[test]
    fn a_full_storage_makes_a_job_wait_without_spending_an_attempt_and_other_io_retry() {
        let full = StorageError::Full { key: "assets/x".into(), source: std::io::ErrorKind::StorageFull.into() };
        let io = StorageError::Io { key: "assets/x".into(), source: std::io::Error::other("bad sector") };

        assert_eq!(HandlerError::from(full).kind(), ErrorKind::Unavailable);
        assert_eq!(HandlerError::from(io).kind(), ErrorKind::Retryable);
        assert_eq!(HandlerError::from(StorageError::NotFound("x".into())).kind(), ErrorKind::Permanent);
    }
}
