//! Decoding once, to the smallest buffer that still covers the largest
//! output: JPEG through libjpeg-turbo's DCT scaling, AVIF and HEIC through
//! libheif, everything else through the `image` crate, at full size.

pub(crate) mod heif;
pub(crate) mod jpeg;
pub(crate) mod other;
mod scans;

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
    /// JFIF Y, Cb, Cr, as a JPEG without a colour profile stores it: kept
    /// from decoder to encoder, which skips two colour conversions (resizing
    /// and rotating are the same in either space, up to rounding).
    YCbCr,
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
            PixelLayout::Rgb | PixelLayout::YCbCr => 3,
            PixelLayout::Cmyk { .. } => 4,
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
}

impl Raster {
    /// The same pixels as R, G, B when they are Y, Cb, Cr (JFIF, full
    /// range); anything else unchanged.
    pub(crate) fn into_rgb(self) -> Raster {
        if self.layout != PixelLayout::YCbCr {
            return self;
        }
        let clamp = |v: i32| ((v + (1 << 15)) >> 16).clamp(0, 255) as u8;
        let mut pixels = self.pixels;
        for p in pixels.chunks_exact_mut(3) {
            let y = i32::from(p[0]) << 16;
            let (cb, cr) = (i32::from(p[1]) - 128, i32::from(p[2]) - 128);
            // 1.402, 0.344136, 0.714136, 1.772 in 16.16 fixed point.
            p[0] = clamp(y + 91_881 * cr);
            p[1] = clamp(y - 22_554 * cb - 46_802 * cr);
            p[2] = clamp(y + 116_130 * cb);
        }
        Raster { width: self.width, height: self.height, layout: PixelLayout::Rgb, pixels }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ycbcr_converts_to_the_jfif_rgb_values() {
        // Grey, then JFIF's red, green and blue.
        let ycbcr = vec![128, 128, 128, 76, 85, 255, 150, 44, 21, 29, 255, 107];
        let raster = Raster::new(4, 1, PixelLayout::YCbCr, ycbcr).expect("4x1");

        let rgb = raster.into_rgb();

        assert_eq!(rgb.layout, PixelLayout::Rgb);
        let expected = [[128, 128, 128], [255, 0, 0], [0, 255, 0], [0, 0, 255]];
        for (got, want) in rgb.pixels.chunks_exact(3).zip(expected) {
            assert!(got.iter().zip(want).all(|(g, w)| g.abs_diff(w) <= 2), "{got:?} vs {want:?}");
        }
    }
}
