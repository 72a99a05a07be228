//! JPEG encoding through libjpeg (mozjpeg's fastest profile, i.e. plain
//! libjpeg-turbo) with optimised Huffman tables; progressive for previews only,
//! spectral selection without refinement scans, Huffman-coded by `huffman.rs`.
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
use crate::huffman::ProgressiveCoder;

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

/// Which entropy coder writes a progressive JPEG's scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coder {
    /// [`ProgressiveCoder`]: each scan's symbols made once, for libjpeg's
    /// bytes (BENCHMARKS.md, 2026-12-08).
    Own,
    /// libjpeg's jcphuff, which walks every scan's blocks twice; kept to
    /// check the other against.
    #[cfg_attr(not(test), allow(dead_code))]
    Libjpeg,
}

/// Encodes an sRGB grey, RGB or RGBX raster.
pub(crate) fn encode(raster: &Raster, quality: u8, scans: Scans) -> Result<Vec<u8>, ImagingError> {
    encode_with(raster, quality, scans, Coder::Own)
}

fn encode_with(raster: &Raster, quality: u8, scans: Scans, coder: Coder) -> Result<Vec<u8>, ImagingError> {
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
    catch_unwind(AssertUnwindSafe(|| encode_unguarded(raster, color_space, quality, &script, coder))).unwrap_or_else(
        |payload| Err(ImagingError::Internal(format!("JPEG encoder failed: {}", panic_message(&*payload)))),
    )
}

/// libjpeg's compressor, destroyed on drop (also when unwinding). Boxed
/// because libjpeg keeps pointers to the error and destination managers
/// and the entropy coder (dropped after the compressor: fields drop after
/// `drop`).
struct Compressor {
    cinfo: Box<jpeg_compress_struct>,
    _error: Box<jpeg_error_mgr>,
    destination: Box<VecDestination>,
    coder: Option<Box<ProgressiveCoder>>,
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
    coder: Coder,
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
    let mut compressor = Compressor { cinfo, _error: error, destination: VecDestination::new(capacity), coder: None };
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
        if !script.is_empty() && coder == Coder::Own {
            // Progressive mode forces optimize_coding (jcmaster.c); the coder
            // lives in `compressor` until the compressor is destroyed.
            compressor.coder = ProgressiveCoder::install(cinfo, script);
            // The scripts here always suit it: anything else is a libjpeg
            // whose layout changed (tests compare its bytes with libjpeg's).
            debug_assert!(compressor.coder.is_some(), "the progressive coder was not installed");
        }
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

    /// A full-size photo from testdata, decoded to `layout`.
    fn photo(name: &str, layout: PixelLayout) -> Raster {
        let path = format!("{}/../../testdata/images/{name}", env!("CARGO_MANIFEST_DIR"));
        let data = std::fs::read(path).expect("a test photo");
        let info = crate::probe::probe(std::io::Cursor::new(&data), &crate::probe::Limits::default()).expect("probed");
        let decoded =
            crate::decode::decode(&data, &info, u32::MAX, [255; 3], &crate::probe::Limits::default()).expect("decoded");
        let raster = decoded.raster;
        match layout {
            PixelLayout::Gray => {
                let pixels = raster.pixels.chunks_exact(raster.layout.channels()).map(|p| p[p.len() / 2]).collect();
                Raster::new(raster.width, raster.height, layout, pixels).expect("grey")
            }
            PixelLayout::Rgb => {
                let pixels = raster.rgb_pixels("test").expect("RGB").into_owned();
                Raster::new(raster.width, raster.height, layout, pixels).expect("RGB")
            }
            _ => raster,
        }
    }

    fn both_coders(raster: &Raster) -> (Vec<u8>, Vec<u8>) {
        let own = encode_with(raster, 80, Scans::Progressive, Coder::Own).expect("own coder");
        let libjpeg = encode_with(raster, 80, Scans::Progressive, Coder::Libjpeg).expect("libjpeg's coder");
        (own, libjpeg)
    }

    #[test]
    fn the_own_progressive_coder_writes_libjpegs_very_bytes_for_photos() {
        for (name, layout) in [
            ("mate-ladybird.jpg", PixelLayout::Rgbx),
            ("bridge-klootwijk.jpg", PixelLayout::Rgb),
            ("mpl-grace-hopper.jpg", PixelLayout::Gray),
        ] {
            let raster = photo(name, layout);

            let (own, libjpeg) = both_coders(&raster);

            assert!(own == libjpeg, "{name} {layout:?}: {} vs {} bytes", own.len(), libjpeg.len());
        }
    }

    #[test]
    fn the_own_progressive_coder_matches_libjpeg_on_odd_sizes_noise_and_long_zero_runs() {
        // Noise gives runs over 15 zeros and every magnitude; the flat image's
        // 1456 × 1456 luma blocks (33,124) overflow one end-of-band run
        // (at most 32,767); 1 × 1 and 17 × 9 have partial MCUs.
        let noise = |width: u32, height: u32, layout: PixelLayout| {
            let mut state = 0x2545_F491_u32;
            let len = (width * height) as usize * layout.channels();
            let pixels = (0..len)
                .map(|i| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    // Sparse spikes on a gradient: long zero runs between big values.
                    if state.is_multiple_of(97) { (state >> 24) as u8 } else { (i / 64 % 200) as u8 }
                })
                .collect();
            Raster::new(width, height, layout, pixels).expect("a raster")
        };
        let flat = Raster::new(1456, 1456, PixelLayout::Gray, vec![128; 1456 * 1456]).expect("flat");
        for raster in [
            noise(1, 1, PixelLayout::Rgb),
            noise(17, 9, PixelLayout::Rgbx),
            noise(333, 121, PixelLayout::Rgb),
            noise(250, 97, PixelLayout::Gray),
            flat,
        ] {
            let (own, libjpeg) = both_coders(&raster);

            assert!(own == libjpeg, "{}x{} {:?}", raster.width, raster.height, raster.layout);
        }
    }

    #[test]
    fn a_preview_from_the_own_coder_decodes_independently_to_libjpegs_pixels() {
        let raster = photo("mate-ladybird.jpg", PixelLayout::Rgbx);
        let (own, _) = both_coders(&raster);
        let reference = encode_with(&raster, 80, Scans::Baseline, Coder::Libjpeg).expect("baseline");

        // The `image` crate's decoder (zune-jpeg), not libjpeg.
        let decoded = image::load_from_memory(&own).expect("decodes").to_rgb8();
        let baseline = image::load_from_memory(&reference).expect("decodes").to_rgb8();

        assert_eq!(decoded.dimensions(), (raster.width, raster.height));
        let total: u64 = decoded.as_raw().iter().zip(baseline.as_raw()).map(|(&a, &b)| u64::from(a.abs_diff(b))).sum();
        let mean = total as f64 / decoded.as_raw().len() as f64;
        assert!(mean < 0.5, "mean difference {mean} from the same pixels coded baseline");
    }

    #[test]
    fn cmyk_is_refused_rather_than_encoded() {
        let result = encode(&gradient(PixelLayout::Cmyk { inverted: false }), 80, Scans::Baseline);

        assert!(matches!(result, Err(ImagingError::Internal(_))));
    }
}
