//! JPEG through mozjpeg (libjpeg-turbo): DCT-scaled decode to the smallest
//! n/8 covering the target, CMYK kept as CMYK, truncation treated as damage.
//! libjpeg reports errors by unwinding, so every call runs in `catch_unwind`.

use std::any::Any;
use std::os::raw::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use mozjpeg::{ColorSpace, Decompress, Marker};
use mozjpeg_sys::jpeg_common_struct;
use mozjpeg_sys::jpeg_error_mgr as ErrorMgr;

use super::{Decoded, PixelLayout, Raster, scans};
use crate::error::ImagingError;
use crate::probe::Limits;

/// APP2 holds ICC profile chunks, APP14 the Adobe colour-transform flag.
const SAVED_MARKERS: &[Marker] = &[Marker::APP(2), Marker::APP(14)];

/// Why libjpeg stopped, carried through the unwind as its payload.
struct JpegFailure {
    truncated: bool,
    message: String,
}

/// Decodes at the smallest DCT scale whose longest edge is >= `target_edge`.
pub(crate) fn decode(data: &[u8], target_edge: u32, limits: &Limits) -> Result<Decoded, ImagingError> {
    catch_unwind(AssertUnwindSafe(|| decode_unguarded(data, target_edge, limits)))
        .unwrap_or_else(|payload| Err(failure(payload)))
}

fn decode_unguarded(data: &[u8], target_edge: u32, limits: &Limits) -> Result<Decoded, ImagingError> {
    let decompress = open(data)?;
    let (width, height) = decompress.size();
    let (width, height) = (dimension(width)?, dimension(height)?);
    // The probe already checked the header; this guards against a second,
    // different frame header that libjpeg might have honoured instead.
    limits.check(width, height)?;
    let scale = dct_scale(width.max(height), target_edge);
    // Scans the scale cannot show need not be entropy-decoded (scans.rs).
    let trimmed = match scale {
        1 => scans::dc_only(data),
        2..=MAX_SCALE_WITHOUT_FINAL_REFINEMENTS => scans::without_final_refinements(data),
        _ => None,
    };
    match trimmed {
        Some(trimmed) => {
            drop(decompress);
            let mut decompress = open(&trimmed)?;
            // Smoothing would estimate the missing coefficients at a cost
            // the reduced IDCT does not repay.
            decompress.do_block_smoothing(false);
            read(decompress, scale)
        }
        None => read(decompress, scale),
    }
}

/// Largest DCT scale (n/8) at which the last bit of the coefficients is not
/// decoded (scans.rs). At full scale it would cost the preview 0.2–0.6 dB
/// for 7% of the photo set's CPU: not made silently (BENCHMARKS.md).
const MAX_SCALE_WITHOUT_FINAL_REFINEMENTS: u8 = 4;

fn open(data: &[u8]) -> Result<Decompress<&[u8]>, ImagingError> {
    Decompress::with_err(error_manager()).with_markers(SAVED_MARKERS).from_mem(data).map_err(damaged)
}

/// Decodes the whole image at `scale`/8 with its profile.
fn read<R: std::io::BufRead>(mut decompress: Decompress<R>, scale: u8) -> Result<Decoded, ImagingError> {
    decompress.scale(scale);
    let icc = icc_profile(&decompress);
    let adobe = decompress.markers().any(|m| m.marker == Marker::APP(14) && m.data.starts_with(b"Adobe"));

    // YCbCr comes out as RGBX through libjpeg-turbo's SIMD conversion:
    // keeping YCbCr to the encoder went through its plain-C copy loops both
    // ways and cost 3% more of the photo set's CPU (BENCHMARKS.md,
    // 2026-11-30); four bytes a pixel cost the conversion nothing and halve
    // the resizer's horizontal pass (BENCHMARKS.md, 2026-12-07).
    let (layout, out_color_space) = match decompress.color_space() {
        ColorSpace::JCS_GRAYSCALE => (PixelLayout::Gray, ColorSpace::JCS_GRAYSCALE),
        // libjpeg turns YCCK into CMYK; Adobe files store it inverted.
        ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK => (PixelLayout::Cmyk { inverted: adobe }, ColorSpace::JCS_CMYK),
        _ => (PixelLayout::Rgbx, ColorSpace::JCS_EXT_RGBX),
    };
    let mut started = decompress.to_colorspace(out_color_space).map_err(damaged)?;
    let (out_width, out_height) = (dimension(started.width())?, dimension(started.height())?);
    let pixels: Vec<u8> = started.read_scanlines().map_err(damaged)?;
    // Reads up to EOI, so that a file cut after its last scan is caught too.
    started.finish().map_err(damaged)?;
    let raster = Raster::new(out_width, out_height, layout, pixels)?;
    Ok(Decoded { raster, icc })
}

/// The DCT scale n (for n/8) to decode at: the smallest whose longest edge
/// (rounded up, as libjpeg does) still reaches `target_edge`, except that
/// 5/8..7/8 become 8/8, because libjpeg-turbo has SIMD IDCTs only for 1, 2,
/// 4 and 8, and its C 7x7 (14x14 for subsampled chroma) IDCT cost more than
/// a full decode plus the bigger resize (BENCHMARKS.md, 2026-11-29).
pub(crate) fn dct_scale(longest: u32, target_edge: u32) -> u8 {
    let smallest =
        (1..=8u8).find(|&n| (u64::from(longest) * u64::from(n)).div_ceil(8) >= u64::from(target_edge)).unwrap_or(8);
    if smallest >= 5 { 8 } else { smallest }
}

fn dimension(value: usize) -> Result<u32, ImagingError> {
    u32::try_from(value).map_err(|_| ImagingError::Corrupt(format!("the JPEG declares an edge of {value} px")))
}

/// Joins the `ICC_PROFILE` APP2 chunks in sequence order; `None` when absent
/// or inconsistent (the image is then treated as sRGB).
fn icc_profile<R>(decompress: &Decompress<R>) -> Option<Vec<u8>> {
    const TAG: &[u8] = b"ICC_PROFILE\0";
    let mut chunks: Vec<(u8, u8, &[u8])> = decompress
        .markers()
        .filter(|m| m.marker == Marker::APP(2))
        .filter_map(|m| {
            let rest = m.data.strip_prefix(TAG)?;
            let (&sequence, rest) = rest.split_first()?;
            let (&count, body) = rest.split_first()?;
            Some((sequence, count, body))
        })
        .collect();
    if chunks.is_empty() {
        return None;
    }
    chunks.sort_by_key(|&(sequence, _, _)| sequence);
    let count = chunks[0].1;
    let complete = usize::from(count) == chunks.len()
        && chunks.iter().enumerate().all(|(i, &(seq, c, _))| usize::from(seq) == i + 1 && c == count);
    complete.then(|| chunks.iter().flat_map(|&(_, _, body)| body.iter().copied()).collect())
}

/// libjpeg's error manager with two changes: fatal errors unwind with a
/// [`JpegFailure`], and the premature-end warning is fatal too, because
/// libjpeg would otherwise pad a truncated file with grey.
pub(crate) fn error_manager() -> ErrorMgr {
    // SAFETY: jpeg_error_mgr is a C struct of integers and nullable function
    // pointers, for which all-zero is valid; jpeg_std_error then fills it.
    let mut manager: ErrorMgr = unsafe { std::mem::zeroed() };
    // SAFETY: `manager` is a valid, exclusively borrowed jpeg_error_mgr.
    unsafe { mozjpeg_sys::jpeg_std_error(&mut manager) };
    manager.error_exit = Some(error_exit);
    manager.emit_message = Some(emit_message);
    manager
}

extern "C-unwind" fn error_exit(cinfo: &mut jpeg_common_struct) {
    let message = libjpeg_message(cinfo);
    resume_unwind(Box::new(JpegFailure { truncated: false, message }));
}

extern "C-unwind" fn emit_message(cinfo: &mut jpeg_common_struct, level: c_int) {
    // SAFETY: libjpeg calls this with `err` pointing at our live manager.
    let code = unsafe { cinfo.err.as_ref() }.map_or(0, |err| err.msg_code);
    // Level -1 is a warning; trace levels (>= 0) are ignored.
    if level < 0 && code == mozjpeg_sys::JWRN_JPEG_EOF {
        let message = libjpeg_message(cinfo);
        resume_unwind(Box::new(JpegFailure { truncated: true, message }));
    }
}

/// libjpeg's own text for the current message code.
fn libjpeg_message(cinfo: &mut jpeg_common_struct) -> String {
    // SAFETY: libjpeg calls the error manager with `err` pointing at it.
    let Some(format_message) = (unsafe { cinfo.err.as_ref() }).and_then(|err| err.format_message) else {
        return String::from("unknown libjpeg error");
    };
    let mut buffer = [0u8; 80];
    // SAFETY: format_message writes at most JMSG_LENGTH_MAX (80) bytes into
    // its buffer; the binding declares it `&[u8; 80]` though C writes to it,
    // so it is called through a pointer type that says so.
    unsafe {
        let writer: unsafe extern "C-unwind" fn(&mut jpeg_common_struct, &mut [u8; 80]) =
            std::mem::transmute(format_message);
        writer(cinfo, &mut buffer);
    }
    let text = buffer.split(|&byte| byte == 0).next().unwrap_or_default();
    String::from_utf8_lossy(text).into_owned()
}

/// Maps an unwind out of libjpeg or mozjpeg to an error.
pub(crate) fn failure(payload: Box<dyn Any + Send>) -> ImagingError {
    if let Some(failure) = payload.downcast_ref::<JpegFailure>() {
        if failure.truncated {
            return ImagingError::Corrupt("the JPEG data ends early (truncated file?)".into());
        }
        return ImagingError::Corrupt(format!("the JPEG data is damaged: {}", failure.message));
    }
    ImagingError::Internal(format!("JPEG decoder failed: {}", crate::panic_message(payload.as_ref())))
}

/// The text of a panic payload from libjpeg or Rust code.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(failure) = payload.downcast_ref::<JpegFailure>() {
        return failure.message.clone();
    }
    crate::panic_message(payload).to_owned()
}

/// An `io::Error` from mozjpeg while decoding means the data did not hold up.
fn damaged(error: std::io::Error) -> ImagingError {
    if error.kind() == std::io::ErrorKind::UnexpectedEof {
        ImagingError::Corrupt("the JPEG data ends early (truncated file?)".into())
    } else {
        ImagingError::Corrupt(format!("the JPEG data is damaged: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dct_scale_picks_the_smallest_eighth_that_covers_the_target() {
        // 4352 px: 1/8 = 544 covers 512; 2048 needs 4/8 (2176).
        assert_eq!(dct_scale(4352, 512), 1);
        assert_eq!(dct_scale(4352, 2048), 4);
        // 6000 px: 2048 needs 3/8 (2250).
        assert_eq!(dct_scale(6000, 2048), 3);
        // 2560 px: 512 needs 2/8 (640).
        assert_eq!(dct_scale(2560, 512), 2);
        // Small images are decoded at full size.
        assert_eq!(dct_scale(102, 512), 8);
    }

    #[test]
    fn dct_scale_decodes_at_full_size_rather_than_five_to_seven_eighths() {
        // 2560 px to 2048 would be 7/8; 600 px to 512 would be 7/8 as well.
        assert_eq!(dct_scale(2560, 2048), 8);
        assert_eq!(dct_scale(600, 512), 8);
    }

    #[test]
    fn a_progressive_file_decoded_from_its_dc_scans_alone_is_pixel_identical_at_one_eighth() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/images/bridge-klootwijk.jpg");
        let data = std::fs::read(path).expect("the progressive test photo");
        let dc_scans = scans::dc_only(&data).expect("bridge-klootwijk.jpg is progressive");

        let full = read(open(&data).expect("header"), 1).expect("full decode");
        let mut dc_only = open(&dc_scans).expect("header");
        dc_only.do_block_smoothing(false);
        let reduced = read(dc_only, 1).expect("DC-only decode");

        assert!(dc_scans.len() < data.len() / 3, "{} of {} bytes kept", dc_scans.len(), data.len());
        assert_eq!((reduced.raster.width, reduced.raster.height), (full.raster.width, full.raster.height));
        assert!(reduced.raster.pixels == full.raster.pixels, "the pixels differ");
    }

    #[test]
    fn colour_jpegs_come_out_as_rgbx_holding_libjpegs_rgb_values() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/images/mate-ladybird.jpg");
        let data = std::fs::read(path).expect("a baseline colour photo");
        let mut rgb = open(&data).expect("header");
        rgb.scale(2);
        let mut started = rgb.rgb().expect("an RGB decode");
        let expected: Vec<u8> = started.read_scanlines().expect("RGB rows");
        started.finish().expect("finished");

        let rgbx = read(open(&data).expect("header"), 2).expect("an RGBX decode").raster;

        assert_eq!(rgbx.layout, PixelLayout::Rgbx);
        let without_padding = rgbx.rgb_pixels("test").expect("RGB bytes");
        assert!(without_padding.as_ref() == expected.as_slice(), "the RGBX pixels differ from the RGB ones");
    }

    #[test]
    fn random_bytes_after_a_jpeg_magic_are_an_error_not_a_panic() {
        let mut data = vec![0xFF, 0xD8, 0xFF, 0xDB, 0x00, 0x43];
        data.extend((0..200u32).map(|i| (i * 37 % 251) as u8));

        let result = decode(&data, 512, &Limits::default());

        assert!(matches!(result, Err(ImagingError::Corrupt(_))), "{result:?}");
    }
}
