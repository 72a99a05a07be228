//! Damaged and hostile files give the right error variant, never a panic
//! and never a half-grey image.

use pictor_imaging::{ImagingError, RenderOptions, render_preview, render_thumbnails};

use crate::helpers::read;

fn both(name: &str) -> [Result<(), ImagingError>; 2] {
    let data = read(name);
    let options = RenderOptions::default();
    [
        render_thumbnails(&data, &[512, 256, 128, 64], &options).map(drop),
        render_preview(&data, 2048, &options).map(drop),
    ]
}

#[test]
fn a_truncated_progressive_jpeg_is_corrupt_not_half_grey() {
    for result in both("bad-truncated-bridge.jpg") {
        match result {
            Err(ImagingError::Corrupt(message)) => {
                assert_eq!(message, "the JPEG data ends early (truncated file?)")
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn a_baseline_jpeg_cut_before_its_end_marker_is_corrupt() {
    let data = read("mate-ladybird.jpg");
    let cut = &data[..data.len() - 2];

    let result = render_preview(cut, 2048, &RenderOptions::default());

    assert!(matches!(result, Err(ImagingError::Corrupt(_))), "{result:?}");
}

#[test]
fn a_zero_byte_file_is_unsupported() {
    for result in both("bad-zero-bytes.jpg") {
        assert!(matches!(result, Err(ImagingError::Unsupported(_))), "{result:?}");
    }
}

#[test]
fn text_named_jpg_is_unsupported() {
    for result in both("bad-text-named.jpg") {
        assert!(matches!(result, Err(ImagingError::Unsupported(_))), "{result:?}");
    }
}

#[test]
fn the_png_bomb_is_too_large_before_decoding() {
    for result in both("bad-png-bomb-30000x30000.png") {
        assert!(matches!(result, Err(ImagingError::TooLarge { width: 30000, height: 30000, .. })), "{result:?}");
    }
}

#[test]
fn the_jpeg_claiming_65500x65500_is_too_large_before_decoding() {
    for result in both("bad-jpeg-dims-65500x65500-ladybird.jpg") {
        assert!(matches!(result, Err(ImagingError::TooLarge { .. })), "{result:?}");
    }
}

#[test]
fn every_prefix_of_a_small_png_and_jpeg_fails_cleanly() {
    let options = RenderOptions::default();
    for name in ["tiny-microaneurysms.png", "mpl-grace-hopper.jpg"] {
        let data = read(name);
        for len in (0..data.len() - 1).step_by(data.len() / 23 + 1) {
            let result = render_preview(&data[..len], 256, &options);

            assert!(
                matches!(result, Err(ImagingError::Corrupt(_) | ImagingError::Unsupported(_))),
                "{name} cut at {len}: {result:?}"
            );
        }
    }
}

#[test]
fn flipped_bytes_in_jpeg_data_never_panic() {
    let options = RenderOptions::default();
    let original = read("mpl-grace-hopper.jpg");
    for seed in 0..24usize {
        let mut data = original.clone();
        for k in 0..8 {
            let at = 600 + (seed * 7919 + k * 104_729) % (data.len() - 600);
            data[at] ^= 0x5A;
        }

        // Either outcome is fine; reaching here without a panic is the test.
        let result = render_preview(&data, 256, &options);

        assert!(!matches!(result, Err(ImagingError::Internal(_))), "seed {seed}: {result:?}");
    }
}
