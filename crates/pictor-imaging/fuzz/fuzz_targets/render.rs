//! Fuzzes the decode entry point the jobs call: any bytes through sniff,
//! probe, decode, orient, colour, resize and encode must give assets or an
//! error, never a panic, an abort or an allocation over the limits. AVIF
//! inputs reach libheif (uninstrumented C) when libheif1 is installed.
//! `cargo +nightly fuzz run render -- -max_total_time=60` from crates/pictor-imaging.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pictor_imaging::{Limits, RenderOptions, render_all};

/// Small limits keep each input fast and inside libFuzzer's memory budget;
/// the limit checks themselves are part of what is fuzzed.
const LIMITS: Limits = Limits { max_pixels: 4_000_000, max_dimension: 8_000 };

fuzz_target!(|data: &[u8]| {
    let options = RenderOptions { limits: LIMITS, ..RenderOptions::default() };
    if let Ok((thumbnails, _preview)) = render_all(data, &[128, 64], 256, &options) {
        if let Some(smallest) = thumbnails.last() {
            let _ = pictor_imaging::thumbhash_from_asset(smallest);
        }
    }
});
