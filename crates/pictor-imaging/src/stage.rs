//! The pipeline's stages one at a time, for the per-stage benchmarks in
//! `benches/`. Hidden from the docs and not a stable API: the handlers use
//! the `render_*` functions, which chain these stages.

use std::io::Cursor;

use fast_image_resize::Resizer;

use crate::decode::{Decoded, Raster};
use crate::encode::Scans;
use crate::error::ImagingError;
use crate::probe::Limits;
use crate::resize::fit_longest_edge;

/// An image between two stages: pixels in stored orientation, plus the
/// embedded ICC profile that the colour stage applies.
#[derive(Debug)]
pub struct Frame {
    raster: Raster,
    icc: Option<Vec<u8>>,
}

impl Frame {
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.raster.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.raster.height
    }
}

/// Probes and decodes `data` at the reduced scale that still covers a
/// longest edge of `target_edge` (JPEG), or at full size (other formats).
///
/// # Errors
///
/// As [`crate::render_thumbnails`].
pub fn decode(data: &[u8], target_edge: u32) -> Result<Frame, ImagingError> {
    let limits = Limits::default();
    let info = crate::probe::probe(Cursor::new(data), &limits)?;
    let Decoded { raster, icc } =
        crate::decode::decode(data, &info, target_edge, crate::render::DEFAULT_BACKGROUND, &limits)?;
    Ok(Frame { raster, icc })
}

/// Lanczos3 resize (fast_image_resize) to a longest edge of `edge`.
///
/// # Errors
///
/// `Internal` when the resizer refuses the buffers.
pub fn resize(frame: &Frame, edge: u32) -> Result<Frame, ImagingError> {
    let (width, height) = fit_longest_edge(frame.raster.width, frame.raster.height, edge);
    let raster = crate::resize::resize(&frame.raster, width, height, &mut Resizer::new())?;
    Ok(Frame { raster, icc: frame.icc.clone() })
}

/// Converts to sRGB with the frame's profile (a no-op without one, or when
/// it is sRGB already).
///
/// # Errors
///
/// `Internal` when the converted buffer is inconsistent.
pub fn to_srgb(frame: Frame) -> Result<Frame, ImagingError> {
    let raster = crate::colour::to_srgb(frame.raster, frame.icc.as_deref())?;
    Ok(Frame { raster, icc: None })
}

/// Encodes an sRGB frame as JPEG, progressive or baseline.
///
/// # Errors
///
/// `Internal` when the frame is still CMYK or libjpeg fails.
pub fn encode(frame: &Frame, quality: u8, progressive: bool) -> Result<Vec<u8>, ImagingError> {
    let scans = if progressive { Scans::Progressive } else { Scans::Baseline };
    crate::encode::encode(&frame.raster, quality, scans)
}

/// Encodes an sRGB frame as lossy WebP.
///
/// # Errors
///
/// `Internal` when the frame is still CMYK or libwebp fails.
pub fn encode_webp(frame: &Frame, quality: u8) -> Result<Vec<u8>, ImagingError> {
    crate::webp::encode_webp(&frame.raster, quality)
}

/// Encodes an sRGB frame as lossy AVIF through libheif.
///
/// # Errors
///
/// `Unsupported` without libheif or its AV1 encoder; `Internal` when the
/// frame is still CMYK or the encoder fails.
pub fn encode_avif(frame: &Frame, quality: u8) -> Result<Vec<u8>, ImagingError> {
    crate::avif::encode_avif(&frame.raster, quality)
}

/// Encodes an sRGB frame as AVIF, or HEIC when `heic`, that displays under
/// EXIF-style `orientation` (libheif writes `irot`/`imir`): inputs for the
/// HEIF decoder's tests.
///
/// # Errors
///
/// `Unsupported` without libheif; `Internal` when the encoder fails.
pub fn encode_heif(frame: &Frame, heic: bool, quality: u8, orientation: u8) -> Result<Vec<u8>, ImagingError> {
    let raster = &frame.raster;
    let rgb = raster.rgb_pixels("HEIF")?;
    let compression = if heic { crate::libheif::COMPRESSION_HEVC } else { crate::libheif::COMPRESSION_AV1 };
    crate::avif::encode_heif(&rgb, raster.width, raster.height, compression, quality, orientation)
}
