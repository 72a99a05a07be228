//! Decode stage: libjpeg-turbo at the DCT scale each job needs (baseline and
//! progressive, preview and thumbnail targets), a PNG through `image`, and
//! an AVIF through libheif (needed at run time) beside the JPEG it was made from.
//! Run with `cargo bench -p pictor-imaging --bench decode`.

// Tests and benchmarks may unwrap: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use divan::{Bencher, black_box};

mod support;

fn main() {
    divan::main();
}

/// Baseline 2560 px, progressive 4352 px, progressive 2560 px 4:4:4, PNG.
const FILES: [&str; 4] = ["mate-ladybird.jpg", "bridge-klootwijk.jpg", "plasma-summer1am.jpg", "skimage-coffee.png"];

#[divan::bench(args = FILES)]
fn to_preview_scale(bencher: Bencher, name: &str) {
    let data = support::read(name);
    bencher.bench(|| pictor_imaging::stage::decode(black_box(&data), support::PREVIEW_EDGE));
}

#[divan::bench(args = FILES)]
fn to_thumbnail_scale(bencher: Bencher, name: &str) {
    let data = support::read(name);
    bencher.bench(|| pictor_imaging::stage::decode(black_box(&data), support::LARGEST_THUMBNAIL));
}

/// An AVIF (always decoded whole) and the JPEG it was made from, same 2560 px picture.
#[divan::bench(args = ["avif-coldripple.avif", "plasma-coldripple.jpg"])]
fn avif_and_its_jpeg(bencher: Bencher, name: &str) {
    let data = support::read(name);
    bencher.bench(|| pictor_imaging::stage::decode(black_box(&data), support::PREVIEW_EDGE));
}
