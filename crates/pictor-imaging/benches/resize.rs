//! Resize stage: fast_image_resize Lanczos3 from the decoded buffer to the
//! preview, and the thumbnail cascade steps from the preview.
//! Run with `cargo bench -p pictor-imaging --bench resize`.

// Tests and benchmarks may unwrap: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use divan::{Bencher, black_box};

mod support;

fn main() {
    divan::main();
}

#[divan::bench(args = ["mate-ladybird.jpg", "bridge-klootwijk.jpg"])]
fn decoded_to_preview(bencher: Bencher, name: &str) {
    let frame = support::decoded(name);
    bencher.bench(|| pictor_imaging::stage::resize(black_box(&frame), support::PREVIEW_EDGE));
}

#[divan::bench(args = [512, 256, 128, 64])]
fn preview_to_thumbnail(bencher: Bencher, edge: u32) {
    let preview = pictor_imaging::stage::resize(&support::decoded("mate-ladybird.jpg"), support::PREVIEW_EDGE)
        .expect("a preview-size frame");
    bencher.bench(|| pictor_imaging::stage::resize(black_box(&preview), edge));
}
