//! The eight EXIF orientations of one photo look alike once rendered.

use crate::helpers::{mean_abs_diff, pixels, preview};

/// Lossless jpegtran variants differ only by rounding after resampling.
const SAME_PICTURE: f64 = 2.0;

#[test]
fn orientations_2_to_8_render_like_orientation_1() {
    let reference = pixels(&preview("orient1-garden.jpg", 2048));
    assert_eq!(reference.dimensions(), (2048, 1280));
    for orientation in 2..=8 {
        let name = format!("orient{orientation}-garden.jpg");

        let rendered = pixels(&preview(&name, 2048));

        let difference = mean_abs_diff(&reference, &rendered);
        assert!(difference < SAME_PICTURE, "{name}: mean abs diff {difference:.2}");
    }
}

#[test]
fn orientation_thumbnails_also_render_like_orientation_1() {
    let options = pictor_imaging::RenderOptions::default();
    let render = |name: &str| {
        pictor_imaging::render_thumbnails(&crate::helpers::read(name), &[256], &options).expect(name).remove(0)
    };
    let reference = pixels(&render("orient1-garden.jpg"));
    for orientation in [3, 6, 8] {
        let name = format!("orient{orientation}-garden.jpg");

        let difference = mean_abs_diff(&reference, &pixels(&render(&name)));

        assert!(difference < SAME_PICTURE, "{name}: mean abs diff {difference:.2}");
    }
}

#[test]
fn an_unrotated_render_would_be_told_apart() {
    // Guards the tolerance above: orientation 3 (180°) of the same photo,
    // compared with orientation 1 upside down, must differ clearly.
    let upright = pixels(&preview("orient1-garden.jpg", 512));
    let flipped = image::imageops::rotate180(&upright);

    let difference = mean_abs_diff(&upright, &flipped);

    assert!(difference > 4.0 * SAME_PICTURE, "rotation changes only {difference:.2}");
}
