//! Colour stage: ICC → sRGB with moxcms on preview-size buffers (Adobe RGB,
//! Display P3, CMYK with a profile), and the sRGB fast path.
//! Run with `cargo bench -p pictor-imaging --bench colour`.

// Tests and benchmarks may unwrap: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use divan::{Bencher, black_box};

mod support;

fn main() {
    divan::main();
}

#[divan::bench(args = ["adobergb-coffee.jpg", "p3-twowings.jpg", "cmyk-icc-chelsea.jpg", "mate-ladybird.jpg"])]
fn to_srgb(bencher: Bencher, name: &str) {
    bencher
        .with_inputs(|| support::decoded(name))
        .bench_values(|frame| pictor_imaging::stage::to_srgb(black_box(frame)));
}
