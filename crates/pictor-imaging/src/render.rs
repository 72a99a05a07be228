//! The jobs' entry points: one decode, then thumbnails (baseline, each from
//! the previous bigger one), a progressive preview (and its WebP or AVIF
//! siblings), or both at once.

use std::cmp::Reverse;
use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use fast_image_resize::Resizer;

use crate::avif::encode_avif;
use crate::colour::to_srgb;
use crate::decode::{Raster, decode};
use crate::encode::{Scans, encode};
use crate::error::ImagingError;
use crate::orient::orient;
use crate::probe::{ImageInfo, Limits, probe};
use crate::resize::{fit_longest_edge, resize};
use crate::webp::encode_webp;

/// Default [`RenderOptions::jpeg_quality`].
pub const DEFAULT_JPEG_QUALITY: u8 = 80;
/// Default [`RenderOptions::avif_quality`]: on the benchmark photos at
/// 2048 px, libheif's 60 is as close to the source as WebP at 80 (mean
/// absolute difference 2.27 vs 2.29; JPEG 80: 1.92) in 44% of the JPEG's
/// bytes and 70% of the WebP's (BENCHMARKS.md, 2026-11-30).
pub const DEFAULT_AVIF_QUALITY: u8 = 60;
/// Default [`RenderOptions::background`]: white.
pub const DEFAULT_BACKGROUND: [u8; 3] = [255, 255, 255];

/// How assets are rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// libjpeg quality, 1..=100; WebP previews use it too (libwebp's scale is close).
    pub jpeg_quality: u8,
    /// AVIF preview quality on libheif's 1..=100 scale, which runs lower
    /// than libjpeg's for a like look.
    pub avif_quality: u8,
    /// Colour that transparent pixels are flattened onto (JPEG has no alpha).
    pub background: [u8; 3],
    /// Size limits, checked from the header before decoding.
    pub limits: Limits,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            jpeg_quality: DEFAULT_JPEG_QUALITY,
            avif_quality: DEFAULT_AVIF_QUALITY,
            background: DEFAULT_BACKGROUND,
            limits: Limits::default(),
        }
    }
}

/// How an asset is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AssetFormat {
    /// JPEG with a JFIF header: every thumbnail and the main preview.
    Jpeg,
    /// Lossy WebP: an optional second preview.
    Webp,
    /// Lossy AVIF (AV1 through libheif, needed at run time): an optional preview.
    Avif,
}

impl AssetFormat {
    /// File extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            AssetFormat::Jpeg => "jpg",
            AssetFormat::Webp => "webp",
            AssetFormat::Avif => "avif",
        }
    }

    /// The IANA media type, e.g. "image/jpeg".
    pub fn mime(self) -> &'static str {
        match self {
            AssetFormat::Jpeg => "image/jpeg",
            AssetFormat::Webp => "image/webp",
            AssetFormat::Avif => "image/avif",
        }
    }

    /// Lowercase name, as `PICTOR_PREVIEW_FORMATS` and the API spell it.
    pub fn name(self) -> &'static str {
        match self {
            AssetFormat::Jpeg => "jpeg",
            AssetFormat::Webp => "webp",
            AssetFormat::Avif => "avif",
        }
    }
}

impl std::str::FromStr for AssetFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "jpeg" | "jpg" => Ok(AssetFormat::Jpeg),
            "webp" => Ok(AssetFormat::Webp),
            "avif" => Ok(AssetFormat::Avif),
            other => Err(format!("unknown preview format {other:?} (expected jpeg, webp or avif)")),
        }
    }
}

/// A ThumbHash, or why it could not be made (a nicety beside the thumbnails).
pub type ThumbhashResult = Result<Vec<u8>, ImagingError>;

/// One rendered asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// Width in pixels, upright (EXIF orientation applied).
    pub width: u32,
    /// Height in pixels, upright.
    pub height: u32,
    /// How `bytes` are encoded.
    pub format: AssetFormat,
    /// The encoded image, with no metadata (a JPEG keeps its JFIF header).
    pub bytes: Vec<u8>,
}

/// One decode, then JPEG thumbnails whose longest edge is
/// min(size, longest display edge) for each size (never upscaled; aspect
/// kept, short edge rounded, at least 1 px). Returned in the order of
/// `sizes`. Baseline JPEGs with optimised Huffman tables.
///
/// # Errors
///
/// `Unsupported` for data that is not a decodable image, `Corrupt` for
/// damaged or truncated data, `TooLarge` when the header is over
/// `options.limits` (nothing is decoded then), `Internal` for a failure of
/// the library itself.
pub fn render_thumbnails(data: &[u8], sizes: &[u32], options: &RenderOptions) -> Result<Vec<Asset>, ImagingError> {
    let Some(&largest) = sizes.iter().max() else {
        return Ok(Vec::new());
    };
    prepare(data, largest, options)?.thumbnails(sizes, options)
}

/// One decode, then a progressive JPEG whose longest edge is
/// min(max_edge, longest display edge).
///
/// # Errors
///
/// As [`render_thumbnails`].
pub fn render_preview(data: &[u8], max_edge: u32, options: &RenderOptions) -> Result<Asset, ImagingError> {
    prepare(data, max_edge, options)?.preview(max_edge, options)
}

/// [`render_thumbnails`] and [`render_preview`] from a single decode
/// ([`prepare`] once, then [`Prepared::thumbnails`] and
/// [`Prepared::preview`]). Returns the thumbnails in the order of `sizes`,
/// then the preview.
///
/// # Errors
///
/// As [`render_thumbnails`].
pub fn render_all(
    data: &[u8],
    sizes: &[u32],
    max_edge: u32,
    options: &RenderOptions,
) -> Result<(Vec<Asset>, Asset), ImagingError> {
    let edge = sizes.iter().copied().fold(max_edge, u32::max);
    let prepared = prepare(data, edge, options)?;
    Ok((prepared.thumbnails(sizes, options)?, prepared.preview(max_edge, options)?))
}

/// An original decoded once: upright sRGB pixels whose longest edge is
/// min(edge, longest display edge) for the `edge` it was prepared for. Any
/// number of assets up to that edge are rendered from it without decoding
/// again, which is how the thumbnail and preview jobs of one image share a
/// decode (the costliest stage for progressive JPEGs).
#[derive(Debug)]
pub struct Prepared {
    raster: Raster,
    /// Size of the whole image, upright.
    display: (u32, u32),
}

/// Probes `data` (refusing it over `options.limits` before any pixel is
/// allocated), decodes it once at the smallest scale that still covers a
/// longest edge of `edge`, orients it and converts it to sRGB.
///
/// # Errors
///
/// As [`render_thumbnails`].
pub fn prepare(data: &[u8], edge: u32, options: &RenderOptions) -> Result<Prepared, ImagingError> {
    guarded(|| {
        let info = inspect(data, &options.limits)?;
        let raster = prepare_raster(data, &info, edge, options, &mut Resizer::new())?;
        Ok(Prepared { raster, display: info.display_size() })
    })
}

impl Prepared {
    /// Width of the prepared pixels.
    pub fn width(&self) -> u32 {
        self.raster.width
    }

    /// Height of the prepared pixels.
    pub fn height(&self) -> u32 {
        self.raster.height
    }

    /// Baseline JPEG thumbnails, as [`render_thumbnails`] makes them, in the
    /// order of `sizes`.
    ///
    /// # Errors
    ///
    /// `Internal` when a size needs more pixels than were prepared, or the
    /// resizer or encoder fails.
    pub fn thumbnails(&self, sizes: &[u32], options: &RenderOptions) -> Result<Vec<Asset>, ImagingError> {
        Ok(self.render_thumbnails(sizes, options, false)?.0)
    }

    /// [`Prepared::thumbnails`], and the image's ThumbHash made from the
    /// pixels of the smallest thumbnail (fitted into 100 px if bigger), with
    /// no decode of an encoded thumbnail. ThumbHash keeps only the lowest
    /// frequencies, which 64 px hold as well as 100 px, at less than half the
    /// cost. The hash is a nicety: its own failure is returned beside the
    /// thumbnails.
    ///
    /// # Errors
    ///
    /// As [`Prepared::thumbnails`].
    pub fn thumbnails_and_thumbhash(
        &self,
        sizes: &[u32],
        options: &RenderOptions,
    ) -> Result<(Vec<Asset>, ThumbhashResult), ImagingError> {
        let (assets, hash_source) = self.render_thumbnails(sizes, options, true)?;
        let hash = hash_source
            .ok_or_else(|| ImagingError::Internal("no thumbnail to hash".into()))
            .and_then(|raster| guarded(|| crate::placeholder::thumbhash_of(&raster)));
        Ok((assets, hash))
    }

    /// The progressive JPEG preview, as [`render_preview`] makes it.
    ///
    /// # Errors
    ///
    /// As [`Prepared::thumbnails`].
    pub fn preview(&self, max_edge: u32, options: &RenderOptions) -> Result<Asset, ImagingError> {
        let mut assets = self.previews(max_edge, &[AssetFormat::Jpeg], options)?;
        assets.pop().ok_or_else(|| ImagingError::Internal("the preview was skipped".into()))
    }

    /// The preview in each of `formats` (a JPEG as [`Prepared::preview`],
    /// a lossy WebP at the same size and quality, a lossy AVIF at
    /// [`RenderOptions::avif_quality`]), resized once.
    ///
    /// # Errors
    ///
    /// As [`Prepared::thumbnails`]; `Unsupported` for an AVIF when libheif
    /// or its AV1 encoder is missing.
    pub fn previews(
        &self,
        max_edge: u32,
        formats: &[AssetFormat],
        options: &RenderOptions,
    ) -> Result<Vec<Asset>, ImagingError> {
        guarded(|| {
            let (width, height) = fit_longest_edge(self.display.0, self.display.1, max_edge);
            let resized;
            let pixels = if (width, height) == (self.raster.width, self.raster.height) {
                &self.raster
            } else {
                self.check_covers(width, height)?;
                resized = resize(&self.raster, width, height, &mut Resizer::new())?;
                &resized
            };
            formats
                .iter()
                .map(|&format| {
                    let bytes = match format {
                        AssetFormat::Jpeg => encode(pixels, options.jpeg_quality, Scans::Progressive)?,
                        AssetFormat::Webp => encode_webp(pixels, options.jpeg_quality)?,
                        AssetFormat::Avif => encode_avif(pixels, options.avif_quality)?,
                    };
                    Ok(Asset { width, height, format, bytes })
                })
                .collect()
        })
    }

    fn check_covers(&self, width: u32, height: u32) -> Result<(), ImagingError> {
        if width > self.raster.width || height > self.raster.height {
            return Err(ImagingError::Internal(format!(
                "a {width}x{height} output was asked of pixels prepared at {}x{}",
                self.raster.width, self.raster.height
            )));
        }
        Ok(())
    }

    /// Baseline thumbnails in decreasing size, each resized from the previous,
    /// bigger buffer (E4), which keeps the Lanczos kernel small. Returned in
    /// the order of `sizes`, with (if `hash_source`) the pixels of the
    /// smallest thumbnail.
    fn render_thumbnails(
        &self,
        sizes: &[u32],
        options: &RenderOptions,
        hash_source: bool,
    ) -> Result<(Vec<Asset>, Option<Raster>), ImagingError> {
        guarded(|| {
            let (display_w, display_h) = self.display;
            let mut order: Vec<usize> = (0..sizes.len()).collect();
            order.sort_by_key(|&i| Reverse(sizes[i]));
            let mut resizer = Resizer::new();
            let mut current: Option<Raster> = None;
            let mut assets: Vec<Option<Asset>> = vec![None; sizes.len()];
            for i in order {
                let (width, height) = fit_longest_edge(display_w, display_h, sizes[i]);
                self.check_covers(width, height)?;
                let source = current.as_ref().unwrap_or(&self.raster);
                if (source.width, source.height) != (width, height) {
                    current = Some(resize(source, width, height, &mut resizer)?);
                }
                let pixels = current.as_ref().unwrap_or(&self.raster);
                let bytes = encode(pixels, options.jpeg_quality, Scans::Baseline)?;
                assets[i] = Some(Asset { width, height, format: AssetFormat::Jpeg, bytes });
            }
            let assets = assets
                .into_iter()
                .collect::<Option<Vec<Asset>>>()
                .ok_or_else(|| ImagingError::Internal("a thumbnail was skipped".into()))?;
            // The last one made is the smallest.
            let hash_pixels = hash_source.then(|| current.unwrap_or_else(|| self.raster.clone()));
            Ok((assets, hash_pixels))
        })
    }
}

/// Sniffs and probes in-memory data.
fn inspect(data: &[u8], limits: &Limits) -> Result<ImageInfo, ImagingError> {
    probe(Cursor::new(data), limits)
}

/// Decodes once at reduced scale, resizes to the largest output (in stored
/// orientation, so that orientation and colour work on the small buffer),
/// orients, converts to sRGB. Returns an upright sRGB grey or RGB raster
/// whose longest edge is min(edge, longest display edge).
fn prepare_raster(
    data: &[u8],
    info: &ImageInfo,
    edge: u32,
    options: &RenderOptions,
    resizer: &mut Resizer,
) -> Result<Raster, ImagingError> {
    let (display_w, display_h) = info.display_size();
    let (width, height) = fit_longest_edge(display_w, display_h, edge);
    let decoded = decode(data, info, width.max(height), options.background, &options.limits)?;
    let transposed = info.orientation >= 5;
    let (stored_w, stored_h) = if transposed { (height, width) } else { (width, height) };
    let resized = if (decoded.raster.width, decoded.raster.height) == (stored_w, stored_h) {
        decoded.raster
    } else {
        resize(&decoded.raster, stored_w, stored_h, resizer)?
    };
    let upright = orient(resized, info.orientation);
    to_srgb(upright, decoded.icc.as_deref())
}

/// Last line of defence for DESIGN invariant 5: a panic anywhere in the
/// pipeline becomes an error instead of taking the worker down.
fn guarded<T>(work: impl FnOnce() -> Result<T, ImagingError>) -> Result<T, ImagingError> {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|payload| {
        Err(ImagingError::Internal(format!("imaging panicked: {}", crate::panic_message(payload.as_ref()))))
    })
}
