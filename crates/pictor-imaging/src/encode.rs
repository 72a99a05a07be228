//! JPEG encoding with mozjpeg's fastest profile plus optimised Huffman
//! tables (crate-evaluation E4); progressive for previews only. The output
//! carries a JFIF header and nothing else: no EXIF, XMP, ICC, IPTC or COM.

use std::panic::{AssertUnwindSafe, catch_unwind};

use mozjpeg::{ColorSpace, Compress};

use crate::decode::{PixelLayout, Raster};
use crate::error::ImagingError;

/// Scan structure of an encoded JPEG.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scans {
    /// One sequential scan: cheapest, for thumbnails.
    Baseline,
    /// Coarse-to-fine scans, for the web preview.
    Progressive,
}

/// Encodes an sRGB grey or RGB raster.
pub(crate) fn encode(raster: &Raster, quality: u8, scans: Scans) -> Result<Vec<u8>, ImagingError> {
    let color_space = match raster.layout {
        PixelLayout::Gray => ColorSpace::JCS_GRAYSCALE,
        PixelLayout::Rgb => ColorSpace::JCS_RGB,
        PixelLayout::Cmyk { .. } => {
            return Err(ImagingError::Internal(
                "CMYK reached the encoder unconverted".into(),
            ));
        }
    };
    // mozjpeg reports errors by unwinding (crate-evaluation, pitfall 1).
    catch_unwind(AssertUnwindSafe(|| {
        encode_unguarded(raster, color_space, quality, scans)
    }))
    .unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        Err(ImagingError::Internal(format!(
            "JPEG encoder failed: {message}"
        )))
    })
}

fn encode_unguarded(
    raster: &Raster,
    color_space: ColorSpace,
    quality: u8,
    scans: Scans,
) -> Result<Vec<u8>, ImagingError> {
    let internal = |e: std::io::Error| ImagingError::Internal(format!("JPEG encoder failed: {e}"));
    let mut compress = Compress::new(color_space);
    // Resets every parameter, so it comes first.
    compress.set_fastest_defaults();
    compress.set_size(raster.width as usize, raster.height as usize);
    compress.set_quality(f32::from(quality.clamp(1, 100)));
    compress.set_optimize_coding(true);
    if scans == Scans::Progressive {
        compress.set_progressive_mode();
    }
    // Roughly 1 bit per pixel at q80, which avoids most regrowth.
    let capacity = raster.width as usize * raster.height as usize / 8 + 1024;
    let mut started = compress
        .start_compress(Vec::with_capacity(capacity))
        .map_err(internal)?;
    started.write_scanlines(&raster.pixels).map_err(internal)?;
    started.finish().map_err(internal)
}
