//! The jobs' entry points: one decode, then thumbnails (baseline, each from
//! the previous bigger one), a progressive preview, or both at once.

use std::cmp::Reverse;
use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use fast_image_resize::Resizer;

use crate::colour::to_srgb;
use crate::decode::{Raster, decode};
use crate::encode::{Scans, encode};
use crate::error::ImagingError;
use crate::orient::orient;
use crate::probe::{ImageInfo, Limits, probe};
use crate::resize::{fit_longest_edge, resize};

/// Default [`RenderOptions::jpeg_quality`].
pub const DEFAULT_JPEG_QUALITY: u8 = 80;
/// Default [`RenderOptions::background`]: white.
pub const DEFAULT_BACKGROUND: [u8; 3] = [255, 255, 255];

/// How assets are rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// libjpeg quality, 1..=100.
    pub jpeg_quality: u8,
    /// Colour that transparent pixels are flattened onto (JPEG has no alpha).
    pub background: [u8; 3],
    /// Size limits, checked from the header before decoding.
    pub limits: Limits,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions { jpeg_quality: DEFAULT_JPEG_QUALITY, background: DEFAULT_BACKGROUND, limits: Limits::default() }
    }
}

/// One rendered JPEG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// Width in pixels, upright (EXIF orientation applied).
    pub width: u32,
    /// Height in pixels, upright.
    pub height: u32,
    /// The encoded JPEG, with no metadata but a JFIF header.
    pub jpeg: Vec<u8>,
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
    if sizes.is_empty() {
        return Ok(Vec::new());
    }
    let outputs: Vec<Output> = sizes.iter().map(|&edge| Output::thumbnail(edge)).collect();
    render(data, &outputs, options)
}

/// One decode, then a progressive JPEG whose longest edge is
/// min(max_edge, longest display edge).
///
/// # Errors
///
/// As [`render_thumbnails`].
pub fn render_preview(data: &[u8], max_edge: u32, options: &RenderOptions) -> Result<Asset, ImagingError> {
    let mut assets = render(data, &[Output::preview(max_edge)], options)?;
    assets.pop().ok_or_else(|| ImagingError::Internal("the preview was skipped".into()))
}

/// [`render_thumbnails`] and [`render_preview`] from a single decode: the
/// thumbnails are derived from the preview-size buffer, which saves the
/// thumbnail job's decode (the costliest stage for progressive JPEGs).
/// Returns the thumbnails in the order of `sizes`, then the preview.
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
    let outputs: Vec<Output> =
        sizes.iter().map(|&edge| Output::thumbnail(edge)).chain(std::iter::once(Output::preview(max_edge))).collect();
    let mut assets = render(data, &outputs, options)?;
    let preview = assets.pop().ok_or_else(|| ImagingError::Internal("the preview was skipped".into()))?;
    Ok((assets, preview))
}

/// One asset to produce: its longest edge and scan structure.
#[derive(Debug, Clone, Copy)]
struct Output {
    edge: u32,
    scans: Scans,
}

impl Output {
    fn thumbnail(edge: u32) -> Output {
        Output { edge, scans: Scans::Baseline }
    }

    fn preview(edge: u32) -> Output {
        Output { edge, scans: Scans::Progressive }
    }
}

/// One decode sized for the largest output, then every output in
/// decreasing size, each resized from the previous, bigger buffer (E4),
/// which keeps the Lanczos kernel small. Returned in the order of `outputs`.
fn render(data: &[u8], outputs: &[Output], options: &RenderOptions) -> Result<Vec<Asset>, ImagingError> {
    guarded(|| {
        let info = inspect(data, &options.limits)?;
        let (display_w, display_h) = info.display_size();
        let mut order: Vec<usize> = (0..outputs.len()).collect();
        order.sort_by_key(|&i| Reverse(outputs[i].edge));
        let Some(&largest) = order.first() else {
            return Ok(Vec::new());
        };
        let mut resizer = Resizer::new();
        let mut current = prepare(data, &info, outputs[largest].edge, options, &mut resizer)?;
        let mut assets: Vec<Option<Asset>> = vec![None; outputs.len()];
        for i in order {
            let (width, height) = fit_longest_edge(display_w, display_h, outputs[i].edge);
            if (current.width, current.height) != (width, height) {
                current = resize(&current, width, height, &mut resizer)?;
            }
            let jpeg = encode(&current, options.jpeg_quality, outputs[i].scans)?;
            assets[i] = Some(Asset { width, height, jpeg });
        }
        assets
            .into_iter()
            .collect::<Option<Vec<Asset>>>()
            .ok_or_else(|| ImagingError::Internal("an output was skipped".into()))
    })
}

/// Sniffs and probes in-memory data.
fn inspect(data: &[u8], limits: &Limits) -> Result<ImageInfo, ImagingError> {
    probe(Cursor::new(data), limits)
}

/// Decodes once at reduced scale, resizes to the largest output (in stored
/// orientation, so that orientation and colour work on the small buffer),
/// orients, converts to sRGB. Returns an upright sRGB grey or RGB raster
/// whose longest edge is min(edge, longest display edge).
fn prepare(
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
    let resized = resize(&decoded.raster, stored_w, stored_h, resizer)?;
    drop(decoded.raster);
    let upright = orient(resized, info.orientation);
    to_srgb(upright, decoded.icc.as_deref())
}

/// Last line of defence for DESIGN invariant 5: a panic anywhere in the
/// pipeline becomes an error instead of taking the worker down.
fn guarded<T>(work: impl FnOnce() -> Result<T, ImagingError>) -> Result<T, ImagingError> {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        Err(ImagingError::Internal(format!("imaging panicked: {message}")))
    })
}
