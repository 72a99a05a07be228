//! Any bytes through `sniff` and the header `probe`: never a panic, and a
//! probe that succeeds gives a size within the limits.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use pictor_imaging::{Limits, probe, sniff};

fuzz_target!(|data: &[u8]| {
    let _ = sniff(data);
    let limits = Limits { max_pixels: 50_000_000, max_dimension: 20_000 };
    if let Ok(info) = probe(Cursor::new(data), &limits) {
        assert!(info.width > 0 && info.height > 0);
        assert!(u64::from(info.width) * u64::from(info.height) <= limits.max_pixels);
    }
});
