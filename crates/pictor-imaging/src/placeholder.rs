//! Placeholders: a ThumbHash (about 25 bytes) computed from a thumbnail's
//! pixels (or a rendered thumbnail), already upright and sRGB, so a UI can
//! paint the image's colours and shape before the image itself arrives.

use std::panic::{AssertUnwindSafe, catch_unwind};

use fast_image_resize::Resizer;

use crate::decode::{PixelLayout, Raster, jpeg};
use crate::error::ImagingError;
use crate::probe::Limits;
use crate::render::Asset;
use crate::resize::{fit_longest_edge, resize};

/// ThumbHash encodes at most 100 × 100 px; more costs time and adds nothing.
pub const THUMBHASH_MAX_EDGE: u32 = 100;

/// The ThumbHash of a rendered asset (best from the 64 or 128 px
/// thumbnail: a bigger one only costs a bigger decode). The JPEG is
/// decoded at a reduced scale and resized to fit 100 × 100 px.
///
/// # Errors
///
/// `Corrupt` when `asset.bytes` is not a decodable JPEG, `TooLarge` when it
/// is over the default limits, `Internal` for a failure of the library.
pub fn thumbhash_from_asset(asset: &Asset) -> Result<Vec<u8>, ImagingError> {
    let decoded = jpeg::decode(&asset.bytes, THUMBHASH_MAX_EDGE, &Limits::default())?;
    thumbhash_of(&decoded.raster)
}

/// The ThumbHash of upright sRGB pixels, resized to fit 100 × 100 px first
/// (best from a small thumbnail's pixels: a bigger raster costs a bigger resize).
pub(crate) fn thumbhash_of(raster: &Raster) -> Result<Vec<u8>, ImagingError> {
    let (width, height) = fit_longest_edge(raster.width, raster.height, THUMBHASH_MAX_EDGE);
    let small = resize(raster, width, height, &mut Resizer::new())?;
    let rgba: Vec<u8> = match small.layout {
        PixelLayout::Rgb => small.pixels.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect(),
        // The padding byte is not alpha, whatever the resizer left in it.
        PixelLayout::Rgbx => small.pixels.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2], 255]).collect(),
        PixelLayout::Gray => small.pixels.iter().flat_map(|&v| [v, v, v, 255]).collect(),
        PixelLayout::Cmyk { .. } => {
            return Err(ImagingError::Unsupported("CMYK pixels have no sRGB placeholder".into()));
        }
    };
    // The crate asserts its size preconditions, which hold here; a panic
    // would still be a bug of this library, not of the input.
    catch_unwind(AssertUnwindSafe(|| thumbhash::rgba_to_thumb_hash(small.width as usize, small.height as usize, &rgba)))
        .map_err(|_| ImagingError::Internal("thumbhash failed".into()))
}

/// A ThumbHash painted as a small PNG (at most 32 px on its longest edge),
/// for a page to show at once while the thumbnail loads.
///
/// # Errors
///
/// `Corrupt` when `hash` is not a ThumbHash, `Internal` when the PNG
/// encoder fails.
pub fn thumbhash_to_png(hash: &[u8]) -> Result<Vec<u8>, ImagingError> {
    use image::ImageEncoder;

    let (width, height, rgba) = catch_unwind(|| thumbhash::thumb_hash_to_rgba(hash))
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| ImagingError::Corrupt("not a ThumbHash".into()))?;
    let edge = |v: usize| u32::try_from(v).map_err(|_| ImagingError::Corrupt("a ThumbHash of impossible size".into()));
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&rgba, edge(width)?, edge(height)?, image::ExtendedColorType::Rgba8)
        .map_err(|e| ImagingError::Internal(format!("cannot encode the placeholder: {e}")))?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{Scans, encode};

    fn asset(width: u32, height: u32, colour: [u8; 3]) -> Asset {
        let pixels = colour.iter().copied().cycle().take((width * height * 3) as usize).collect();
        let raster = Raster::new(width, height, PixelLayout::Rgb, pixels).expect("raster");
        let jpeg = encode(&raster, 90, Scans::Baseline).expect("encoded");
        Asset { width, height, format: crate::AssetFormat::Jpeg, bytes: jpeg }
    }

    #[test]
    fn the_thumbhash_of_a_red_thumbnail_averages_to_red_and_keeps_the_aspect_ratio() {
        let hash = thumbhash_from_asset(&asset(128, 64, [220, 20, 30])).expect("hashed");

        let (r, g, b, a) = thumbhash::thumb_hash_to_average_rgba(&hash).expect("a valid hash");
        let ratio = thumbhash::thumb_hash_to_approximate_aspect_ratio(&hash).expect("a valid hash");
        assert!(r > 0.75 && g < 0.2 && b < 0.2 && a > 0.99, "{r} {g} {b} {a}");
        assert!((ratio - 2.0).abs() < 0.3, "{ratio}");
    }

    #[test]
    fn a_thumbnail_bigger_than_100_px_is_reduced_first() {
        let hash = thumbhash_from_asset(&asset(512, 300, [10, 200, 10])).expect("hashed");

        assert!(hash.len() < 40, "{} bytes", hash.len());
    }

    #[test]
    fn a_thumbhash_paints_as_a_small_png_of_its_colour_and_shape() {
        let hash = thumbhash_from_asset(&asset(128, 64, [220, 20, 30])).expect("hashed");

        let png = thumbhash_to_png(&hash).expect("painted");

        let painted = image::load_from_memory(&png).expect("a PNG").into_rgba8();
        assert!(painted.width() <= 32 && painted.width() > painted.height(), "{:?}", painted.dimensions());
        let centre = painted.get_pixel(painted.width() / 2, painted.height() / 2);
        assert!(centre[0] > 150 && centre[1] < 80 && centre[2] < 80, "{centre:?}");
    }

    #[test]
    fn bytes_that_are_not_a_thumbhash_are_corrupt() {
        assert!(matches!(thumbhash_to_png(&[1]), Err(ImagingError::Corrupt(_))));
    }

    #[test]
    fn bytes_that_are_not_a_jpeg_are_corrupt() {
        let broken = Asset {
            width: 1,
            height: 1,
            format: crate::AssetFormat::Jpeg,
            bytes: vec![0xFF, 0xD8, 0xFF, 0xFF, 1, 2, 3],
        };

        assert!(matches!(thumbhash_from_asset(&broken), Err(ImagingError::Corrupt(_))));
    }
}
