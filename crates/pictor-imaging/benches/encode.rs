//! Encode stage: the progressive preview and each baseline thumbnail size,
//! q80 with optimised Huffman tables; the optional WebP and AVIF previews
//! (AVIF needs libheif at run time).
//! Run with `cargo bench -p pictor-imaging --bench encode`.

// Tests and benchmarks may unwrap: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use divan::{Bencher, black_box};

mod support;

fn main() {
    divan::main();
}

#[divan::bench(args = [2048, 512, 256, 128, 64])]
fn progressive(bencher: Bencher, edge: u32) {
    let frame = frame(edge);
    bencher.bench(|| pictor_imaging::stage::encode(black_box(&frame), 80, true));
}

#[divan::bench(args = [2048, 512, 256, 128, 64])]
fn baseline(bencher: Bencher, edge: u32) {
    let frame = frame(edge);
    bencher.bench(|| pictor_imaging::stage::encode(black_box(&frame), 80, false));
}

#[divan::bench(args = [2048, 512])]
fn webp(bencher: Bencher, edge: u32) {
    let frame = frame(edge);
    bencher.bench(|| pictor_imaging::stage::encode_webp(black_box(&frame), 80));
}

#[divan::bench(args = [2048, 512])]
fn avif(bencher: Bencher, edge: u32) {
    let frame = frame(edge);
    let quality = pictor_imaging::DEFAULT_AVIF_QUALITY;
    bencher.bench(|| pictor_imaging::stage::encode_avif(black_box(&frame), quality));
}

/// A real photo at `edge` px, sRGB.
fn frame(edge: u32) -> pictor_imaging::stage::Frame {
    pictor_imaging::stage::resize(&support::decoded("mate-ladybird.jpg"), edge).expect("a resized frame")
}
