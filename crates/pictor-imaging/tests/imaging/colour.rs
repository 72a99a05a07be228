//! Colour handling: ICC profiles to sRGB, CMYK (with and without profile),
//! 16-bit PNG, greyscale and alpha.

use pictor_imaging::{RenderOptions, render_preview};

use crate::helpers::{channel_means, mean, mean_abs_diff, mean_chroma, pixels, preview, read, strip_icc};

#[test]
fn adobe_rgb_coffee_renders_close_to_the_srgb_original() {
    let original = pixels(&preview("skimage-coffee.png", 600));
    let with_profile = read("adobergb-coffee.jpg");

    let converted = pixels(&render_preview(&with_profile, 600, &RenderOptions::default()).expect("converted"));
    let ignored = pixels(&render_preview(&strip_icc(&with_profile), 600, &RenderOptions::default()).expect("stripped"));

    // Mean abs diff includes both files' JPEG noise; the channel means and
    // the saturation show the colours themselves.
    let converted_diff = mean_abs_diff(&original, &converted);
    let ignored_diff = mean_abs_diff(&original, &ignored);
    assert!(converted_diff < 6.0, "converted differs by {converted_diff:.2}");
    assert!(
        converted_diff * 1.5 < ignored_diff,
        "the profile made little difference: {converted_diff:.2} vs {ignored_diff:.2} unconverted"
    );
    let (want, got) = (channel_means(&original), channel_means(&converted));
    for channel in 0..3 {
        assert!((want[channel] - got[channel]).abs() < 1.5, "channel means {want:?} vs {got:?}");
    }
    assert!((mean_chroma(&original) - mean_chroma(&converted)).abs() < 2.0);
    assert!(mean_chroma(&original) - mean_chroma(&ignored) > 10.0);
}

#[test]
fn display_p3_is_converted_to_more_saturated_srgb() {
    let with_profile = read("p3-twowings.jpg");

    let converted = pixels(&render_preview(&with_profile, 512, &RenderOptions::default()).expect("converted"));
    let ignored = pixels(&render_preview(&strip_icc(&with_profile), 512, &RenderOptions::default()).expect("stripped"));

    // P3 values read as sRGB look washed out; converting restores chroma.
    let (converted_chroma, ignored_chroma) = (mean_chroma(&converted), mean_chroma(&ignored));
    assert!(
        converted_chroma > ignored_chroma + 1.0,
        "chroma {converted_chroma:.2} converted vs {ignored_chroma:.2} unconverted"
    );
    assert!(mean_abs_diff(&converted, &ignored) > 1.0);
}

#[test]
fn cmyk_chelsea_with_a_profile_renders_close_to_the_rgb_original() {
    let original = pixels(&preview("skimage-chelsea.png", 451));

    let cmyk = pixels(&preview("cmyk-icc-chelsea.jpg", 451));

    let difference = mean_abs_diff(&original, &cmyk);
    assert!(difference < 12.0, "mean abs diff {difference:.2}");
}

#[test]
fn cmyk_flower_without_a_profile_is_not_inverted() {
    let original = pixels(&preview("tiff-lzw-flower.tif", 640));

    let cmyk = pixels(&preview("cmyk-noicc-flower.jpg", 640));

    let difference = mean_abs_diff(&original, &cmyk);
    assert!(difference < 20.0, "mean abs diff {difference:.2} (inverted is ~100)");
    assert!((mean(&original) - mean(&cmyk)).abs() < 15.0);
}

#[test]
fn sixteen_bit_bridge_png_renders_like_the_jpeg_bridge() {
    let from_jpeg = pixels(&preview("bridge-klootwijk.jpg", 800));

    let from_png16 = pixels(&preview("png16-bridge.png", 800));

    let difference = mean_abs_diff(&from_jpeg, &from_png16);
    assert!(difference < 6.0, "mean abs diff {difference:.2}");
}

#[test]
fn transparent_pixels_of_the_rgba_logo_become_the_background() {
    let data = read("png-rgba-mpl-logo2.png");
    let source = image::load_from_memory(&data).expect("logo decodes").into_rgba8();
    let black = RenderOptions { background: [0, 0, 0], ..RenderOptions::default() };

    let on_white = pixels(&render_preview(&data, 2048, &RenderOptions::default()).expect("white"));
    let on_black = pixels(&render_preview(&data, 2048, &black).expect("black"));

    let transparent: Vec<(u32, u32)> =
        source.enumerate_pixels().filter(|(_, _, p)| p.0[3] == 0).map(|(x, y, _)| (x, y)).collect();
    assert!(transparent.len() > 1000, "the logo should have transparent pixels");
    let average = |img: &image::RgbImage| {
        transparent.iter().map(|&(x, y)| f64::from(img.get_pixel(x, y).0[1])).sum::<f64>() / transparent.len() as f64
    };
    assert!(average(&on_white) > 245.0, "on white: {:.1}", average(&on_white));
    assert!(average(&on_black) < 10.0, "on black: {:.1}", average(&on_black));
}

#[test]
fn greyscale_jpeg_renders_like_the_colour_photo_in_brightness() {
    let colour = pixels(&preview("mpl-grace-hopper.jpg", 600));

    let grey = pixels(&preview("grey-grace-hopper.jpg", 600));

    assert!((mean(&colour) - mean(&grey)).abs() < 10.0);
    assert!(mean_chroma(&grey) < 1.0, "a grey source gives grey output");
}
