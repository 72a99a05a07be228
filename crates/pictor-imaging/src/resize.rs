//! Resampling with fast_image_resize (SIMD convolution: box pre-reduction,
//! then Lanczos3 or Catmull-Rom), and the output-size rule: longest edge
//! exact, aspect kept, short edge rounded, at least 1 px.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::decode::Raster;
use crate::error::ImagingError;

/// Size whose longest edge is `edge` (clamped to 1..=the longest edge of
/// `width` × `height`, so never an upscale), aspect kept, short edge rounded
/// to the nearest pixel and at least 1.
pub fn fit_longest_edge(width: u32, height: u32, edge: u32) -> (u32, u32) {
    let longest = width.max(height).max(1);
    let shortest = width.min(height);
    let edge = edge.clamp(1, longest);
    let short = (u64::from(shortest) * u64::from(edge) * 2 + u64::from(longest)) / (2 * u64::from(longest));
    let short = (short as u32).max(1);
    if width >= height { (edge, short) } else { (short, edge) }
}

/// Resamples `src` to exactly `width` × `height` (a copy when equal). As
/// Pillow does with its `reducing_gap`, a shrink of 4× or more first
/// averages boxes of k×k pixels (k an integer leaving at least 2× to go),
/// which costs a fraction of the Lanczos3 pass it shortens.
pub(crate) fn resize(src: &Raster, width: u32, height: u32, resizer: &mut Resizer) -> Result<Raster, ImagingError> {
    if (src.width, src.height) == (width, height) {
        return Ok(src.clone());
    }
    let ratio = (f64::from(src.width) / f64::from(width.max(1))).min(f64::from(src.height) / f64::from(height.max(1)));
    let k = (ratio / 2.0).floor() as u32;
    if k >= 2 {
        let reduced = (src.width.div_ceil(k), src.height.div_ceil(k));
        let boxed = convolve(src, reduced.0, reduced.1, FilterType::Box, resizer)?;
        return convolve(&boxed, width, height, main_filter(ratio / f64::from(k)), resizer);
    }
    convolve(src, width, height, main_filter(ratio), resizer)
}

/// Lanczos3 for real reductions; Catmull-Rom (Pillow's bicubic) below 2×,
/// e.g. 2560 → 2048 px, where it looks the same at 5 taps instead of 8 and
/// saved 3–4% of the photo set's CPU (BENCHMARKS.md, 2026-11-29).
fn main_filter(ratio: f64) -> FilterType {
    if ratio < 2.0 { FilterType::CatmullRom } else { FilterType::Lanczos3 }
}

fn convolve(
    src: &Raster,
    width: u32,
    height: u32,
    filter: FilterType,
    resizer: &mut Resizer,
) -> Result<Raster, ImagingError> {
    let pixel_type = match src.layout.channels() {
        1 => PixelType::U8,
        3 => PixelType::U8x3,
        _ => PixelType::U8x4,
    };
    let internal = |e: &dyn std::fmt::Display| ImagingError::Internal(format!("resize failed: {e}"));
    let from = ImageRef::new(src.width, src.height, &src.pixels, pixel_type).map_err(|e| internal(&e))?;
    let mut to = Image::new(width, height, pixel_type);
    // The 4th channel is CMYK's K, never alpha: alpha is flattened at decode.
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter)).use_alpha(false);
    resizer.resize(&from, &mut to, &options).map_err(|e| internal(&e))?;
    Raster::new(width, height, src.layout, to.into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_edge_is_exact_and_the_short_edge_rounded() {
        assert_eq!(fit_longest_edge(2560, 1600, 2048), (2048, 1280));
        assert_eq!(fit_longest_edge(1600, 2560, 2048), (1280, 2048));
        assert_eq!(fit_longest_edge(451, 300, 64), (64, 43));
    }

    #[test]
    fn a_thin_strip_keeps_at_least_one_pixel() {
        assert_eq!(fit_longest_edge(4352, 16, 64), (64, 1));
    }

    #[test]
    fn small_images_are_never_upscaled() {
        assert_eq!(fit_longest_edge(102, 102, 512), (102, 102));
        assert_eq!(fit_longest_edge(1000, 872, 2048), (1000, 872));
    }
}
