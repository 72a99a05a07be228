//! Colour: alpha flattened onto the background, embedded ICC profiles
//! converted to sRGB with moxcms (skipped when already sRGB), CMYK to RGB,
//! and HEIF `nclx` code points turned into a profile for the same path.
//! Outputs carry no profile, so they must be sRGB to look right.

use moxcms::{
    CicpColorPrimaries, CicpProfile, ColorProfile, DataColorSpace, Layout, MatrixCoefficients, ToneReprCurve,
    TransferCharacteristics, TransformOptions, Xyzd,
};

use crate::decode::{PixelLayout, Raster};
use crate::error::ImagingError;

/// Composites RGBA pixels onto an opaque background colour; returns RGB.
pub(crate) fn flatten(rgba: &[u8], background: [u8; 3]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(rgba.len() / 4 * 3);
    for pixel in rgba.chunks_exact(4) {
        let alpha = u32::from(pixel[3]);
        if alpha == 255 {
            rgb.extend_from_slice(&pixel[..3]);
            continue;
        }
        for (channel, back) in pixel[..3].iter().zip(background) {
            let mixed = u32::from(*channel) * alpha + u32::from(back) * (255 - alpha);
            rgb.push(((mixed + 127) / 255) as u8);
        }
    }
    rgb
}

/// Converts a raster to sRGB (grey, RGB or RGBX) using its embedded profile. A
/// profile that cannot be parsed or applied is ignored (the pixels are then
/// taken as sRGB), since an odd profile should not cost the user the image.
pub(crate) fn to_srgb(raster: Raster, icc: Option<&[u8]>) -> Result<Raster, ImagingError> {
    let profile = icc.and_then(|bytes| ColorProfile::new_from_slice(bytes).ok());
    match raster.layout {
        PixelLayout::Rgb => match profile {
            Some(p) if p.color_space == DataColorSpace::Rgb && !is_srgb(&p) => {
                Ok(transform(&raster, &p, Layout::Rgb).unwrap_or(raster))
            }
            _ => Ok(raster),
        },
        PixelLayout::Rgbx => match profile {
            // moxcms takes the padding byte as alpha and drops it: RGB out.
            Some(p) if p.color_space == DataColorSpace::Rgb && !is_srgb(&p) => {
                Ok(transform(&raster, &p, Layout::Rgba).unwrap_or(raster))
            }
            _ => Ok(raster),
        },
        PixelLayout::Gray => match profile {
            Some(p) if p.color_space == DataColorSpace::Gray && !gray_is_srgb(&p) => {
                Ok(transform(&raster, &p, Layout::Gray).unwrap_or(raster))
            }
            _ => Ok(raster),
        },
        PixelLayout::Cmyk { inverted } => {
            let cmyk_profile = profile.filter(|p| p.color_space == DataColorSpace::Cmyk);
            if let Some(p) = cmyk_profile {
                // ICC CMYK is 0 = no ink; Adobe JPEGs store 255 = no ink.
                let mut plain = raster.clone();
                if inverted {
                    plain.pixels.iter_mut().for_each(|v| *v = 255 - *v);
                }
                if let Some(rgb) = transform(&plain, &p, Layout::Rgba) {
                    return Ok(rgb);
                }
            }
            naive_cmyk_to_rgb(&raster, inverted)
        }
    }
}

/// An ICC profile for RGB pixels described by ITU-T H.273 code points (a
/// HEIF `nclx` box), or `None` when they are sRGB already or cannot be
/// expressed: BT.709 or unspecified primaries with the sRGB, BT.709/601 or
/// unspecified transfer are taken as sRGB, as browsers show them.
pub(crate) fn icc_from_cicp(primaries: u8, transfer: u8) -> Option<Vec<u8>> {
    // H.273: primaries 1 = BT.709, 2 = unspecified; transfer 1 = BT.709,
    // 2 = unspecified, 6 = BT.601, 13 = sRGB, 14/15 = BT.2020 10/12-bit.
    if matches!(primaries, 1 | 2) && matches!(transfer, 1 | 2 | 6 | 13 | 14 | 15) {
        return None;
    }
    let cicp = CicpProfile {
        color_primaries: CicpColorPrimaries::try_from(primaries).ok()?,
        transfer_characteristics: TransferCharacteristics::try_from(transfer).ok()?,
        // The pixels are RGB by now: the matrix was libheif's to apply.
        matrix_coefficients: MatrixCoefficients::Identity,
        full_range: true,
    };
    let mut profile = ColorProfile::new_srgb();
    profile.update_rgb_colorimetry_from_cicp(cicp);
    // moxcms records the code points only once it has applied them.
    profile.cicp?;
    profile.encode().ok()
}

/// Applies `profile` → sRGB; `None` when moxcms cannot build or run it.
fn transform(raster: &Raster, profile: &ColorProfile, src_layout: Layout) -> Option<Raster> {
    let srgb = ColorProfile::new_srgb();
    let executor = profile.create_transform_8bit(src_layout, &srgb, Layout::Rgb, TransformOptions::default()).ok()?;
    let pixel_count = raster.width as usize * raster.height as usize;
    let mut rgb = vec![0u8; pixel_count * 3];
    executor.transform(&raster.pixels, &mut rgb).ok()?;
    Raster::new(raster.width, raster.height, PixelLayout::Rgb, rgb).ok()
}

/// CMYK without a profile: the textbook R = (1 - C)(1 - K) per channel.
fn naive_cmyk_to_rgb(raster: &Raster, inverted: bool) -> Result<Raster, ImagingError> {
    let mut rgb = Vec::with_capacity(raster.pixels.len() / 4 * 3);
    for pixel in raster.pixels.chunks_exact(4) {
        // "Remaining light" per ink, 255 = no ink.
        let light = |v: u8| u32::from(if inverted { v } else { 255 - v });
        let k = light(pixel[3]);
        for &ink in &pixel[..3] {
            rgb.push(((light(ink) * k + 127) / 255) as u8);
        }
    }
    Raster::new(raster.width, raster.height, PixelLayout::Rgb, rgb)
}

/// An RGB matrix/TRC profile with sRGB's colorants and tone curves.
fn is_srgb(profile: &ColorProfile) -> bool {
    let srgb = ColorProfile::new_srgb();
    let colorants = [
        (profile.red_colorant, srgb.red_colorant),
        (profile.green_colorant, srgb.green_colorant),
        (profile.blue_colorant, srgb.blue_colorant),
    ];
    colorants.iter().all(|(a, b)| close(*a, *b))
        && [&profile.red_trc, &profile.green_trc, &profile.blue_trc]
            .iter()
            .all(|trc| trc.as_ref().is_some_and(trc_is_srgb))
}

/// A grey profile whose tone curve is sRGB's.
fn gray_is_srgb(profile: &ColorProfile) -> bool {
    profile.gray_trc.as_ref().is_some_and(trc_is_srgb)
}

fn close(a: Xyzd, b: Xyzd) -> bool {
    // ICC stores colorants as s15Fixed16 and profiles round differently.
    const TOLERANCE: f64 = 0.003;
    (a.x - b.x).abs() < TOLERANCE && (a.y - b.y).abs() < TOLERANCE && (a.z - b.z).abs() < TOLERANCE
}

/// Compares a tone curve with the sRGB EOTF at a few points.
fn trc_is_srgb(curve: &ToneReprCurve) -> bool {
    const SAMPLES: [f64; 6] = [0.05, 0.2, 0.4, 0.6, 0.8, 1.0];
    SAMPLES.iter().all(|&x| {
        let srgb = if x <= 0.04045 { x / 12.92 } else { ((x + 0.055) / 1.055).powf(2.4) };
        trc_value(curve, x).is_some_and(|y| (y - srgb).abs() < 0.005)
    })
}

/// Evaluates an ICC `curv` or `para` curve at `x` in 0..=1.
fn trc_value(curve: &ToneReprCurve, x: f64) -> Option<f64> {
    match curve {
        ToneReprCurve::Lut(table) => match table.len() {
            0 => Some(x),
            // A single entry is a gamma in u8Fixed8.
            1 => Some(x.powf(f64::from(table[0]) / 256.0)),
            len => {
                let position = x * (len - 1) as f64;
                let index = (position.floor() as usize).min(len - 2);
                let fraction = position - index as f64;
                let (a, b) = (f64::from(table[index]), f64::from(table[index + 1]));
                Some((a + (b - a) * fraction) / 65535.0)
            }
        },
        ToneReprCurve::Parametric(p) => {
            let p: Vec<f64> = p.iter().map(|&v| f64::from(v)).collect();
            let power = |a: f64, b: f64| (a * x + b).max(0.0).powf(p[0]);
            match p.len() {
                1 => Some(x.powf(p[0])),
                3 => Some(if x >= -p[2] / p[1] { power(p[1], p[2]) } else { 0.0 }),
                4 => Some(if x >= -p[2] / p[1] { power(p[1], p[2]) + p[3] } else { p[3] }),
                5 => Some(if x >= p[4] { power(p[1], p[2]) } else { p[3] * x }),
                7 => Some(if x >= p[4] { power(p[1], p[2]) + p[5] } else { p[3] * x + p[6] }),
                _ => None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_turns_transparent_pixels_into_the_background() {
        let rgba = [10, 20, 30, 0, 10, 20, 30, 255, 0, 0, 0, 128];

        let rgb = flatten(&rgba, [255, 255, 255]);

        assert_eq!(rgb, vec![255, 255, 255, 10, 20, 30, 127, 127, 127]);
    }

    #[test]
    fn moxcms_srgb_profile_is_recognised_as_srgb() {
        assert!(is_srgb(&ColorProfile::new_srgb()));
    }

    #[test]
    fn display_p3_is_not_srgb() {
        assert!(!is_srgb(&ColorProfile::new_display_p3()));
    }

    #[test]
    fn srgb_and_bt709_code_points_need_no_profile() {
        assert_eq!(icc_from_cicp(1, 13), None);
        assert_eq!(icc_from_cicp(2, 2), None);
        assert_eq!(icc_from_cicp(1, 1), None);
    }

    #[test]
    fn display_p3_code_points_make_a_profile_that_maps_p3_red_to_a_deeper_srgb_red() {
        let icc = icc_from_cicp(12, 13).expect("a Display P3 profile");
        let pinkish = Raster::new(1, 1, PixelLayout::Rgb, vec![200, 100, 100]).expect("1x1");

        let srgb = to_srgb(pinkish, Some(&icc)).expect("converted");

        // P3 (200, 100, 100) is about sRGB (215, 93, 97): more saturated.
        let [r, g, b] = [srgb.pixels[0], srgb.pixels[1], srgb.pixels[2]];
        assert!(r >= 208 && g <= 96 && b <= 100, "{:?}", srgb.pixels);
    }

    #[test]
    fn adobe_inverted_cmyk_without_profile_keeps_white_white_and_black_black() {
        let raster =
            Raster::new(2, 1, PixelLayout::Cmyk { inverted: true }, vec![255, 255, 255, 255, 255, 255, 255, 0])
                .expect("a 2x1 CMYK raster");

        let rgb = to_srgb(raster, None).expect("converted");

        assert_eq!(rgb.pixels, vec![255, 255, 255, 0, 0, 0]);
    }
}
