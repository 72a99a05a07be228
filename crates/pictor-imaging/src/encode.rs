//! JPEG encoding through libjpeg (mozjpeg's fastest profile, i.e. plain
//! libjpeg-turbo) with optimised Huffman tables; progressive for previews only,
//! with a spectral-selection script that skips the costly refinement scans.
//! The output carries a JFIF header and nothing else: no EXIF, XMP, ICC, IPTC.

use std::os::raw::c_int;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mozjpeg_sys::{
    J_COLOR_SPACE, JINT_COMPRESS_PROFILE, JINT_COMPRESS_PROFILE_VALUE, JSAMPROW, boolean, jpeg_compress_struct,
    jpeg_destination_mgr, jpeg_error_mgr, jpeg_scan_info,
};

use crate::decode::jpeg::{error_manager, panic_message};
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

/// Rows handed to libjpeg per call.
const ROWS_PER_CALL: usize = 16;
/// Size of the chunks the destination manager fills before appending.
const CHUNK: usize = 64 * 1024;

/// Progressive script for Y, Cb, Cr: DC first, then each component's AC
/// band whole. Spectral selection only: libjpeg's `jpeg_simple_progression`
/// adds successive-approximation refinement scans, which cost 8% of the
/// whole photo set's CPU time for 1.5% fewer output bytes, and splitting the
/// luma band in two (1–5, 6–63) another 1–2% (BENCHMARKS.md, 2026-11-29).
const COLOUR_SCRIPT: [Scan; 4] = [Scan::dc(&[0, 1, 2]), Scan::ac(0, 1, 63), Scan::ac(1, 1, 63), Scan::ac(2, 1, 63)];
/// The same for greyscale.
const GREY_SCRIPT: [Scan; 2] = [Scan::dc(&[0]), Scan::ac(0, 1, 63)];

/// One scan of a progressive script.
#[derive(Clone, Copy)]
struct Scan {
    components: &'static [c_int],
    start: c_int,
    end: c_int,
}

impl Scan {
    const fn dc(components: &'static [c_int]) -> Scan {
        Scan { components, start: 0, end: 0 }
    }

    const fn ac(component: usize, start: c_int, end: c_int) -> Scan {
        const ONE: [[c_int; 1]; 3] = [[0], [1], [2]];
        Scan { components: &ONE[component], start, end }
    }

    fn to_libjpeg(self) -> jpeg_scan_info {
        let mut component_index = [0; 4];
        component_index[..self.components.len()].copy_from_slice(self.components);
        jpeg_scan_info {
            comps_in_scan: self.components.len() as c_int,
            component_index,
            Ss: self.start,
            Se: self.end,
            Ah: 0,
            Al: 0,
        }
    }
}

/// Encodes an sRGB grey, RGB or RGBX raster.
pub(crate) fn encode(raster: &Raster, quality: u8, scans: Scans) -> Result<Vec<u8>, ImagingError> {
    let (color_space, script): (J_COLOR_SPACE, &[Scan]) = match raster.layout {
        PixelLayout::Gray => (J_COLOR_SPACE::JCS_GRAYSCALE, &GREY_SCRIPT),
        PixelLayout::Rgb => (J_COLOR_SPACE::JCS_RGB, &COLOUR_SCRIPT),
        PixelLayout::Rgbx => (J_COLOR_SPACE::JCS_EXT_RGBX, &COLOUR_SCRIPT),
        PixelLayout::Cmyk { .. } => {
            return Err(ImagingError::Internal("CMYK reached the encoder unconverted".into()));
        }
    };
    let script: Vec<jpeg_scan_info> = match scans {
        Scans::Baseline => Vec::new(),
        Scans::Progressive => script.iter().map(|s| s.to_libjpeg()).collect(),
    };
    // libjpeg reports errors by unwinding (crate-evaluation, pitfall 1).
    catch_unwind(AssertUnwindSafe(|| encode_unguarded(raster, color_space, quality, &script))).unwrap_or_else(
        |payload| Err(ImagingError::Internal(format!("JPEG encoder failed: {}", panic_message(&*payload)))),
    )
}

/// libjpeg's compressor, destroyed on drop (also when unwinding). Boxed
/// because libjpeg keeps pointers to the error and destination managers.
struct Compressor {
    cinfo: Box<jpeg_compress_struct>,
    _error: Box<jpeg_error_mgr>,
    destination: Box<VecDestination>,
}

impl Drop for Compressor {
    fn drop(&mut self) {
        // SAFETY: `cinfo` was initialised by jpeg_CreateCompress; destroying
        // releases libjpeg's pools and is valid in any state.
        unsafe { mozjpeg_sys::jpeg_destroy_compress(&mut self.cinfo) };
    }
}

fn encode_unguarded(
    raster: &Raster,
    color_space: J_COLOR_SPACE,
    quality: u8,
    script: &[jpeg_scan_info],
) -> Result<Vec<u8>, ImagingError> {
    let channels = raster.layout.channels();
    let row_len = raster.width as usize * channels;
    // Roughly 1 bit per pixel at q80, which avoids most regrowth.
    let capacity = raster.width as usize * raster.height as usize / 8 + 1024;
    let mut error = Box::new(error_manager());
    // SAFETY: an all-zero jpeg_compress_struct is what jpeg_CreateCompress
    // expects to initialise (it is plain integers and nullable pointers).
    let mut cinfo: Box<jpeg_compress_struct> = Box::new(unsafe { std::mem::zeroed() });
    cinfo.common.err = &mut *error;
    // SAFETY: `cinfo` is zeroed with a live error manager, as libjpeg requires.
    unsafe {
        mozjpeg_sys::jpeg_CreateCompress(
            &mut *cinfo,
            mozjpeg_sys::JPEG_LIB_VERSION,
            std::mem::size_of::<jpeg_compress_struct>(),
        );
    }
    let mut compressor = Compressor { cinfo, _error: error, destination: VecDestination::new(capacity) };
    let cinfo = &mut *compressor.cinfo;
    cinfo.dest = &mut compressor.destination.manager;
    cinfo.image_width = raster.width;
    cinfo.image_height = raster.height;
    cinfo.input_components = channels as c_int;
    cinfo.in_color_space = color_space;
    // SAFETY: `cinfo` is a created compressor in its start state; the scan
    // script outlives jpeg_finish_compress, the last call that reads it.
    unsafe {
        // The profile must be chosen before jpeg_set_defaults, which applies it.
        mozjpeg_sys::jpeg_c_set_int_param(
            cinfo,
            JINT_COMPRESS_PROFILE,
            JINT_COMPRESS_PROFILE_VALUE::JCP_FASTEST as c_int,
        );
        mozjpeg_sys::jpeg_set_defaults(cinfo);
        mozjpeg_sys::jpeg_set_quality(cinfo, c_int::from(quality.clamp(1, 100)), 0);
        cinfo.optimize_coding = 1;
        if !script.is_empty() {
            cinfo.scan_info = script.as_ptr();
            cinfo.num_scans = script.len() as c_int;
        }
        mozjpeg_sys::jpeg_start_compress(cinfo, 1);
        for rows in raster.pixels.chunks(row_len * ROWS_PER_CALL) {
            let pointers: Vec<JSAMPROW> = rows.chunks_exact(row_len).map(<[u8]>::as_ptr).collect();
            let count = pointers.len() as u32;
            let written = mozjpeg_sys::jpeg_write_scanlines(cinfo, pointers.as_ptr(), count);
            if written != count {
                return Err(ImagingError::Internal("libjpeg accepted fewer rows than given".into()));
            }
        }
        mozjpeg_sys::jpeg_finish_compress(cinfo);
    }
    Ok(std::mem::take(&mut compressor.destination.output))
}

/// A libjpeg destination manager appending to a `Vec` in fixed chunks.
#[repr(C)]
struct VecDestination {
    /// First field, so that libjpeg's `cinfo.dest` points at the whole struct.
    manager: jpeg_destination_mgr,
    chunk: Box<[u8]>,
    output: Vec<u8>,
}

impl VecDestination {
    fn new(capacity: usize) -> Box<VecDestination> {
        Box::new(VecDestination {
            manager: jpeg_destination_mgr {
                next_output_byte: std::ptr::null_mut(),
                free_in_buffer: 0,
                init_destination: Some(init_destination),
                empty_output_buffer: Some(empty_output_buffer),
                term_destination: Some(term_destination),
            },
            chunk: vec![0; CHUNK].into_boxed_slice(),
            output: Vec::with_capacity(capacity),
        })
    }

    /// The destination behind `cinfo.dest`.
    ///
    /// # Safety
    ///
    /// `cinfo.dest` must point at the `manager` of a live `VecDestination`.
    unsafe fn of(cinfo: &mut jpeg_compress_struct) -> &mut VecDestination {
        // SAFETY: guaranteed by the caller; `manager` is the first field of a
        // #[repr(C)] struct.
        unsafe { &mut *cinfo.dest.cast::<VecDestination>() }
    }

    fn reset(&mut self) {
        self.manager.next_output_byte = self.chunk.as_mut_ptr();
        self.manager.free_in_buffer = self.chunk.len();
    }
}

extern "C-unwind" fn init_destination(cinfo: &mut jpeg_compress_struct) {
    // SAFETY: only installed by `encode_unguarded`, which sets `cinfo.dest`.
    unsafe { VecDestination::of(cinfo) }.reset();
}

extern "C-unwind" fn empty_output_buffer(cinfo: &mut jpeg_compress_struct) -> boolean {
    // SAFETY: as in `init_destination`.
    let destination = unsafe { VecDestination::of(cinfo) };
    // libjpeg calls this only when the whole chunk is full.
    destination.output.extend_from_slice(&destination.chunk);
    destination.reset();
    1
}

extern "C-unwind" fn term_destination(cinfo: &mut jpeg_compress_struct) {
    // SAFETY: as in `init_destination`.
    let destination = unsafe { VecDestination::of(cinfo) };
    let used = destination.chunk.len() - destination.manager.free_in_buffer;
    destination.output.extend_from_slice(&destination.chunk[..used]);
    destination.reset();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(layout: PixelLayout) -> Raster {
        let (width, height) = (37u32, 21u32);
        let pixels = (0..width * height * layout.channels() as u32).map(|i| (i % 251) as u8).collect();
        Raster::new(width, height, layout, pixels).expect("a gradient raster")
    }

    #[test]
    fn a_baseline_encode_is_a_jpeg_with_a_sequential_frame() {
        let jpeg = encode(&gradient(PixelLayout::Rgb), 80, Scans::Baseline).expect("encoded");

        assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]));
        assert!(jpeg.windows(2).any(|w| w == [0xFF, 0xC0]));
    }

    #[test]
    fn a_progressive_encode_has_a_progressive_frame_in_colour_and_grey() {
        for layout in [PixelLayout::Rgb, PixelLayout::Rgbx, PixelLayout::Gray] {
            let jpeg = encode(&gradient(layout), 80, Scans::Progressive).expect("encoded");

            assert!(jpeg.windows(2).any(|w| w == [0xFF, 0xC2]), "{layout:?}");
        }
    }

    #[test]
    fn cmyk_is_refused_rather_than_encoded() {
        let result = encode(&gradient(PixelLayout::Cmyk { inverted: false }), 80, Scans::Baseline);

        assert!(matches!(result, Err(ImagingError::Internal(_))));
    }
}
