//! Any bytes through the decode/render entry point the jobs use
//! (`render_all`: sniff, probe, decode, orient, colour, resize, encode, with
//! thumbnails and preview from one decode), then the thumbhash. Small pixel
//! limits keep each input fast and inside libFuzzer's memory budget; the
//! limit checks are part of what is fuzzed. Damaged input must end in a
//! clean error; an `Internal` error (a panic caught inside, or an encoder
//! failing on pixels the decoder gave) is a bug. AVIF inputs reach libheif
//! (uninstrumented C) when libheif1 is installed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pictor_imaging::{ImagingError, Limits, RenderOptions, render_all};

const LIMITS: Limits = Limits { max_pixels: 4_000_000, max_dimension: 8_000 };

fuzz_target!(|data: &[u8]| {
    let options = RenderOptions { limits: LIMITS, ..RenderOptions::default() };
    match render_all(data, &[128, 64], 256, &options) {
        Ok((thumbnails, preview)) => {
            assert_eq!(thumbnails.len(), 2);
            assert!(!preview.bytes.is_empty());
            let _ = pictor_imaging::thumbhash_from_asset(&thumbnails[1]);
        }
        Err(ImagingError::Internal(message)) => panic!("internal imaging error: {message}"),
        Err(_) => {}
    }
});
