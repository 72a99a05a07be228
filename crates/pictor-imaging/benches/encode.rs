//! Encode stage: the progressive preview and each baseline thumbnail size,
//! q80 with optimised Huffman tables; the optional WebP preview.
//! Run with `cargo bench -p pictor-imaging --bench encode`.

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

/// A real photo at `edge` px, sRGB.
fn frame(edge: u32) -> pictor_imaging::stage::Frame {
    pictor_imaging::stage::resize(&support::decoded("mate-ladybird.jpg"), edge).expect("a resized frame")
}
