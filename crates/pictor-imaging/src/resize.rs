//! Resampling with fast_image_resize (SIMD convolution: box pre-reduction,
//! then Lanczos3 or Catmull-Rom), whole or streamed strip by strip from a
//! decoder's rows, and the output-size rule: longest edge exact, aspect
//! kept, short edge rounded, at least 1 px.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::decode::{PixelLayout, Raster};
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
    let ratio = reduction((src.width, src.height), (width, height));
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

/// About how many bytes of source rows [`resize_streamed`] holds at once.
const STRIP_BYTES: usize = 2 << 20;
/// Largest filter support in source pixels at 1:1 (Lanczos3's), which sets
/// the rows each strip shares with the next.
const MAX_SUPPORT: f64 = 3.0;

/// Whether [`resize_streamed`] can make `dst` from `src`: fewer rows, no
/// more columns, and no box pre-reduction, i.e. by less than 4×, as every
/// DCT-scaled JPEG decode is (dct_scale leaves < 2×).
pub(crate) fn streamable(src: (u32, u32), dst: (u32, u32)) -> bool {
    let (width, height) = dst;
    if width == 0 || height == 0 || width > src.0 || height >= src.1 {
        return false;
    }
    reduction(src, dst) < 4.0
}

/// The smaller of the two reduction ratios, as [`resize`] measures it.
fn reduction(src: (u32, u32), dst: (u32, u32)) -> f64 {
    (f64::from(src.0) / f64::from(dst.0.max(1))).min(f64::from(src.1) / f64::from(dst.1.max(1)))
}

/// [`resize`] for a source that arrives row by row (a decoder's scanlines):
/// `read_rows` fills each slice it is given with the next whole rows, in
/// order. The vertical pass (which fast_image_resize runs first for 8-bit
/// pixels anyway) is made strip by strip from only the source rows its
/// filter reaches (a crop box, which places the filter exactly as over the
/// whole image), then the horizontal pass once: no full-size source buffer
/// is allocated (~2 MB instead of 16 MB for a 2560 × 1600 RGBX decode).
/// The result is that of [`resize`] within ±1 (the crop's offsets round
/// slightly differently). Only for sizes that [`streamable`] accepts.
pub(crate) fn resize_streamed(
    src: (u32, u32),
    layout: PixelLayout,
    dst: (u32, u32),
    resizer: &mut Resizer,
    read_rows: impl FnMut(&mut [u8]) -> Result<(), ImagingError>,
) -> Result<Raster, ImagingError> {
    resize_in_strips(src, layout, dst, STRIP_BYTES, resizer, read_rows)
}

/// [`resize_streamed`] holding about `strip_bytes` of source at a time.
fn resize_in_strips(
    src: (u32, u32),
    layout: PixelLayout,
    dst: (u32, u32),
    strip_bytes: usize,
    resizer: &mut Resizer,
    mut read_rows: impl FnMut(&mut [u8]) -> Result<(), ImagingError>,
) -> Result<Raster, ImagingError> {
    if !streamable(src, dst) {
        return Err(ImagingError::Internal(format!("{src:?} cannot be streamed to {dst:?}")));
    }
    let ((width, height), (out_width, out_height)) = (src, dst);
    let channels = layout.channels();
    let row_len = width as usize * channels;
    let filter = main_filter(reduction(src, dst));
    let scale = f64::from(height) / f64::from(out_height);
    // One row more than the filter reaches on each side, against rounding.
    let margin = (MAX_SUPPORT * scale.max(1.0)).ceil() + 1.0;
    let strip_rows = ((strip_bytes / row_len) as f64 / scale).floor().max(1.0) as usize;
    let internal = |e: &dyn std::fmt::Display| ImagingError::Internal(format!("resize failed: {e}"));
    let pixel_type = pixel_type(layout);

    // The vertical pass, strip by strip, at the source width.
    let mut vertical = vec![0u8; row_len * out_height as usize];
    // Source rows [first, end) are at the start of `held`, which is zeroed
    // once: rows are read into it, never appended (no zeroing per row).
    let mut held: Vec<u8> = Vec::new();
    let (mut first, mut end) = (0u32, 0u32);
    for (index, out_strip) in vertical.chunks_mut(row_len * strip_rows).enumerate() {
        let out_first = (index * strip_rows) as f64;
        let top = out_first * scale;
        let bottom = ((out_first + (out_strip.len() / row_len) as f64) * scale).min(f64::from(height));
        let need_first = (top - margin).floor().max(0.0) as u32;
        let need_end = ((bottom + margin).ceil() as u32).min(height);
        // Rows no longer reached go; rows below them move to the front.
        let kept_from = need_first.clamp(first, end);
        held.copy_within((kept_from - first) as usize * row_len..(end - first) as usize * row_len, 0);
        first = kept_from;
        let needed = (need_end - first.min(need_first)) as usize * row_len;
        if held.len() < needed {
            held.resize(needed, 0);
        }
        // Rows between what is held and what is needed are read and dropped.
        while end < need_first {
            let skipped = (need_first - end).min(need_end - need_first) as usize;
            read_rows(&mut held[..skipped * row_len])?;
            end += skipped as u32;
            first = end;
        }
        read_rows(&mut held[(end - first) as usize * row_len..(need_end - first) as usize * row_len])?;
        end = need_end;

        let source = ImageRef::new(width, end - first, &held[..(end - first) as usize * row_len], pixel_type)
            .map_err(|e| internal(&e))?;
        let rows = (out_strip.len() / row_len) as u32;
        let mut target = Image::from_slice_u8(width, rows, out_strip, pixel_type).map_err(|e| internal(&e))?;
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter)).use_alpha(false).crop(
            0.0,
            top - f64::from(first),
            f64::from(width),
            bottom - top,
        );
        resizer.resize(&source, &mut target, &options).map_err(|e| internal(&e))?;
    }
    // The horizontal pass once, for the whole image: fast_image_resize
    // would recompute its coefficients at every strip.
    let vertical = Raster::new(width, out_height, layout, vertical)?;
    if out_width == width {
        return Ok(vertical);
    }
    convolve(&vertical, out_width, out_height, filter, resizer)
}

/// fast_image_resize's name for a layout. The 4th channel is CMYK's K or
/// RGBX's padding, never alpha: alpha is flattened at decode.
fn pixel_type(layout: PixelLayout) -> PixelType {
    match layout.channels() {
        1 => PixelType::U8,
        3 => PixelType::U8x3,
        _ => PixelType::U8x4,
    }
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
    let pixel_type = pixel_type(src.layout);
    let internal = |e: &dyn std::fmt::Display| ImagingError::Internal(format!("resize failed: {e}"));
    let from = ImageRef::new(src.width, src.height, &src.pixels, pixel_type).map_err(|e| internal(&e))?;
    let mut to = Image::new(width, height, pixel_type);
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

    /// A raster whose bytes vary in both directions, with edges in it.
    fn pattern(width: u32, height: u32, layout: PixelLayout) -> Raster {
        let channels = layout.channels();
        let pixels = (0..width as usize * height as usize * channels)
            .map(|i| {
                let (pixel, channel) = (i / channels, i % channels);
                let (x, y) = (pixel % width as usize, pixel / width as usize);
                (((x * 3 + y * 5 + channel * 40) % 256) ^ if (x / 7 + y / 5) % 2 == 0 { 0 } else { 0x80 }) as u8
            })
            .collect();
        Raster::new(width, height, layout, pixels).expect("a raster")
    }

    /// Streams `src` in reads of `rows_per_read` rows through strips of
    /// about `strip_bytes`.
    fn streamed(src: &Raster, dst: (u32, u32), strip_bytes: usize, rows_per_read: usize) -> Raster {
        let row_len = src.width as usize * src.layout.channels();
        let mut next = 0;
        resize_in_strips((src.width, src.height), src.layout, dst, strip_bytes, &mut Resizer::new(), |rows| {
            assert_eq!(rows.len() % row_len, 0, "whole rows are asked for");
            for chunk in rows.chunks_mut(row_len * rows_per_read) {
                chunk.copy_from_slice(&src.pixels[next..next + chunk.len()]);
                next += chunk.len();
            }
            Ok(())
        })
        .expect("streamed")
    }

    #[test]
    fn a_streamed_resize_gives_the_whole_buffer_resize_within_one_level() {
        let layouts = [PixelLayout::Gray, PixelLayout::Rgb, PixelLayout::Rgbx, PixelLayout::Cmyk { inverted: true }];
        // Odd sizes, Catmull-Rom (< 2x) and Lanczos3 (2x-4x), the width
        // unchanged, portrait and landscape, strips of one row to many.
        let cases = [
            ((101, 67), (80, 53), 1),
            ((67, 101), (53, 80), 300),
            ((160, 100), (128, 80), 4096),
            ((97, 131), (31, 42), 700),
            ((120, 90), (120, 61), 50),
            ((64, 200), (37, 150), 1000),
            ((64, 200), (64, 150), 1000),
            ((33, 7), (32, 5), 10),
        ];
        for layout in layouts {
            for ((width, height), dst, strip_bytes) in cases {
                let src = pattern(width, height, layout);
                let whole = resize(&src, dst.0, dst.1, &mut Resizer::new()).expect("whole");

                let streamed = streamed(&src, dst, strip_bytes, 3);

                assert_eq!((streamed.width, streamed.height), dst);
                let worst = whole.pixels.iter().zip(&streamed.pixels).map(|(&a, &b)| a.abs_diff(b)).max();
                assert!(worst <= Some(1), "{layout:?} {width}x{height} -> {dst:?} by {strip_bytes}: {worst:?}");
            }
        }
    }

    #[test]
    fn only_reductions_by_less_than_four_are_streamed() {
        assert!(streamable((2560, 1600), (2048, 1280)));
        assert!(streamable((100, 100), (26, 26)));
        assert!(!streamable((100, 100), (25, 25)), "a box pre-reduction comes first");
        assert!(!streamable((100, 100), (100, 100)));
        assert!(!streamable((100, 100), (50, 100)), "no vertical pass to stream");
        assert!(!streamable((100, 100), (101, 50)));
        let error = streamed_error((100, 100), (20, 20));
        assert!(matches!(error, Err(ImagingError::Internal(_))), "{error:?}");
    }

    fn streamed_error(src: (u32, u32), dst: (u32, u32)) -> Result<Raster, ImagingError> {
        resize_streamed(src, PixelLayout::Gray, dst, &mut Resizer::new(), |_| Ok(()))
    }

    #[test]
    fn a_failing_read_stops_the_streamed_resize() {
        let result = resize_streamed((100, 100), PixelLayout::Rgbx, (80, 80), &mut Resizer::new(), |_| {
            Err(ImagingError::Corrupt("cut short".into()))
        });

        assert!(matches!(result, Err(ImagingError::Corrupt(_))), "{result:?}");
    }

    #[test]
    fn small_images_are_never_upscaled() {
        assert_eq!(fit_longest_edge(102, 102, 512), (102, 102));
        assert_eq!(fit_longest_edge(1000, 872, 2048), (1000, 872));
    }
}
