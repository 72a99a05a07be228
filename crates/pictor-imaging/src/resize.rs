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
        let boxed = if k == 2 && src.width.is_multiple_of(2) && src.height.is_multiple_of(2) {
            halve(src)?
        } else {
            convolve(src, reduced.0, reduced.1, FilterType::Box, resizer)?
        };
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

/// Halves an even-sized raster by averaging 2×2 pixels, with the very
/// result of fast_image_resize's Box filter at exactly 2× (its vertical
/// pass, then its horizontal one, each rounding half up): pixel-identical,
/// in 40% of its instructions, because each pass is a plain byte average
/// that the compiler vectorises (BENCHMARKS.md, 2026-11-30, session 5).
fn halve(src: &Raster) -> Result<Raster, ImagingError> {
    let (width, height) = (src.width / 2, src.height / 2);
    let pixels = match src.layout.channels() {
        1 => halve_rows::<1>(&src.pixels, src.width as usize, height as usize),
        3 => halve_rows::<3>(&src.pixels, src.width as usize, height as usize),
        _ => halve_rows::<4>(&src.pixels, src.width as usize, height as usize),
    };
    Raster::new(width, height, src.layout, pixels)
}

/// [`halve`] for `C` bytes per pixel (a constant, so that each output pixel
/// is a fixed-size copy); `width` is the source's, even.
fn halve_rows<const C: usize>(src: &[u8], width: usize, out_height: usize) -> Vec<u8> {
    let row_len = width * C;
    let out_len = width / 2 * C;
    let average = |a: u8, b: u8| ((u16::from(a) + u16::from(b) + 1) >> 1) as u8;
    let mut pixels = vec![0u8; out_len * out_height];
    // One row pair averaged, then that row averaged with itself shifted by a
    // pixel: every other pixel of the latter is an output pixel.
    let mut vertical = vec![0u8; row_len];
    let mut horizontal = vec![0u8; row_len.saturating_sub(C)];
    for (out, pair) in pixels.chunks_exact_mut(out_len.max(1)).zip(src.chunks_exact(2 * row_len.max(1))) {
        let (top, bottom) = pair.split_at(row_len);
        for ((v, &a), &b) in vertical.iter_mut().zip(top).zip(bottom) {
            *v = average(a, b);
        }
        for ((h, &a), &b) in horizontal.iter_mut().zip(&vertical).zip(&vertical[C..]) {
            *h = average(a, b);
        }
        let (out, _) = out.as_chunks_mut::<C>();
        for (pixel, averaged) in out.iter_mut().zip(horizontal.chunks(2 * C)) {
            pixel.copy_from_slice(&averaged[..C]);
        }
    }
    pixels
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
    // The 4th channel is CMYK's K or RGBX's padding, never alpha: alpha is
    // flattened at decode.
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter)).use_alpha(false);
    resizer.resize(&from, &mut to, &options).map_err(|e| internal(&e))?;
    Raster::new(width, height, src.layout, to.into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::PixelLayout;

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
    fn halving_gives_the_pixels_of_the_box_filter_at_two_to_one() {
        for (layout, width, height) in [
            (PixelLayout::Rgb, 64, 38),
            (PixelLayout::Rgbx, 64, 38),
            (PixelLayout::Gray, 30, 2),
            (PixelLayout::Rgb, 2, 2),
        ] {
            let len = width as usize * height as usize * layout.channels();
            let pixels = (0..len).map(|i| (i * 7919 % 253) as u8).collect();
            let src = Raster::new(width, height, layout, pixels).expect("a raster");

            let halved = halve(&src).expect("halved");
            let boxed = convolve(&src, width / 2, height / 2, FilterType::Box, &mut Resizer::new()).expect("boxed");

            assert_eq!((halved.width, halved.height), (width / 2, height / 2));
            assert!(halved.pixels == boxed.pixels, "{layout:?} {width}x{height}");
        }
    }

    #[test]
    fn small_images_are_never_upscaled() {
        assert_eq!(fit_longest_edge(102, 102, 512), (102, 102));
        assert_eq!(fit_longest_edge(1000, 872, 2048), (1000, 872));
    }
}
