//! Decoding once, to the smallest buffer that still covers the largest
//! output: JPEG through libjpeg-turbo's DCT scaling, AVIF and HEIC through
//! libheif, everything else through the `image` crate, at full size.

pub(crate) mod heif;
pub(crate) mod jpeg;
pub(crate) mod other;
mod scans;

use std::borrow::Cow;

use crate::error::ImagingError;
use crate::probe::{ImageInfo, Limits};
use crate::sniff::Format;

/// How the bytes of a [`Raster`] are laid out: 8 bits per channel, no alpha
/// (alpha is flattened at decode time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PixelLayout {
    /// One channel.
    Gray,
    /// R, G, B.
    Rgb,
    /// R, G, B and a padding byte whose value means nothing: how
    /// libjpeg-turbo's SIMD colour conversion writes and reads four-byte
    /// pixels at no extra cost, and what fast_image_resize's four-byte
    /// horizontal pass (about half the cost of its three-byte one) takes.
    Rgbx,
    /// C, M, Y, K as stored in the JPEG.
    Cmyk {
        /// Adobe convention (APP14): 255 means no ink.
        inverted: bool,
    },
}

impl PixelLayout {
    /// Bytes per pixel.
    pub(crate) fn channels(self) -> usize {
        match self {
            PixelLayout::Gray => 1,
            PixelLayout::Rgb => 3,
            PixelLayout::Rgbx | PixelLayout::Cmyk { .. } => 4,
        }
    }
}

/// A tightly packed 8-bit image buffer.
#[derive(Debug, Clone)]
pub(crate) struct Raster {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) layout: PixelLayout,
    /// `width * height * layout.channels()` bytes, row after row.
    pub(crate) pixels: Vec<u8>,
}

impl Raster {
    /// Wraps a buffer, refusing one whose length does not match the size.
    pub(crate) fn new(width: u32, height: u32, layout: PixelLayout, pixels: Vec<u8>) -> Result<Raster, ImagingError> {
        let expected = width as usize * height as usize * layout.channels();
        if pixels.len() != expected {
            return Err(ImagingError::Internal(format!(
                "a {width}x{height} {layout:?} buffer holds {} bytes instead of {expected}",
                pixels.len()
            )));
        }
        Ok(Raster { width, height, layout, pixels })
    }

    /// The pixels as packed R, G, B for an encoder that takes only RGB
    /// (grey is expanded); CMYK, which must be converted first, is refused
    /// as a bug naming `encoder`.
    pub(crate) fn rgb_pixels(&self, encoder: &str) -> Result<Cow<'_, [u8]>, ImagingError> {
        match self.layout {
            PixelLayout::Rgb => Ok(Cow::Borrowed(&self.pixels)),
            PixelLayout::Rgbx => Ok(Cow::Owned(self.pixels.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect())),
            PixelLayout::Gray => Ok(Cow::Owned(self.pixels.iter().flat_map(|&v| [v, v, v]).collect())),
            PixelLayout::Cmyk { .. } => {
                Err(ImagingError::Internal(format!("CMYK reached the {encoder} encoder unconverted")))
            }
        }
    }
}

/// A decoded image in its stored orientation, with its colour profile.
#[derive(Debug)]
pub(crate) struct Decoded {
    pub(crate) raster: Raster,
    /// The embedded ICC profile, if any.
    pub(crate) icc: Option<Vec<u8>>,
}

/// Decodes `data` so that its longest edge is at least `target_edge` where
/// the format allows a reduced decode; alpha is flattened onto `background`.
pub(crate) fn decode(
    data: &[u8],
    info: &ImageInfo,
    target_edge: u32,
    background: [u8; 3],
    limits: &Limits,
) -> Result<Decoded, ImagingError> {
    match info.format {
        Format::Jpeg => jpeg::decode(data, target_edge, limits),
        Format::Avif | Format::Heic => heif::decode(data, info, background, limits),
        _ => other::decode(data, info, background, limits),
    }
}
