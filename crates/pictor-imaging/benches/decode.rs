//! Decode stage: libjpeg-turbo at the DCT scale each job needs (baseline and
//! progressive, preview and thumbnail targets), and a PNG through `image`.
//! Run with `cargo bench -p pictor-imaging --bench decode`.

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
