//! AVIF (and, with the `heic` feature, HEIC) through libheif: probe sizes,
//! renders, AVIF previews, orientation boxes and damaged files. Each test
//! needs libheif at run time: CI installs it and fails without it; elsewhere
//! a test without it is skipped, saying so.

use std::io::Cursor;

use pictor_imaging::{AssetFormat, Format, ImagingError, Limits, RenderOptions, prepare, probe, render_preview, stage};

use crate::helpers::{assert_clean_jpeg, mean_abs_diff, pixels, read};

const AVIF: &str = "avif-coldripple.avif";
/// The JPEG the AVIF was made from (MANIFEST: sharp/libaom).
const AVIF_SOURCE: &str = "plasma-coldripple.jpg";
const THUMBNAIL_SIZES: [u32; 4] = [64, 128, 256, 512];

/// Whether libheif (decoder and AV1 encoder) is usable here. On CI its
/// absence fails the test; elsewhere the test is skipped with a notice.
fn libheif(test: &str) -> bool {
    let available = pictor_imaging::avif_decoding_available().and_then(|()| pictor_imaging::avif_encoding_available());
    match available {
        Ok(()) => true,
        Err(e) => {
            crate::skip::skip(test, &format!("{e} (apt-get install libheif1)"));
            false
        }
    }
}

/// Decodes an AVIF (or any image) back to RGB through Pictor itself, at
/// full size: a JPEG preview of it no smaller than the original.
fn decode_back(data: &[u8], edge: u32) -> image::RgbImage {
    let options = RenderOptions { jpeg_quality: 100, ..RenderOptions::default() };
    pixels(&render_preview(data, edge, &options).expect("decodes back"))
}

#[test]
fn avif_probes_to_its_stored_size_with_no_orientation() {
    if !libheif("avif_probes_to_its_stored_size_with_no_orientation") {
        return;
    }

    let info = probe(Cursor::new(read(AVIF)), &Limits::default()).expect("probe");

    assert_eq!((info.format, info.width, info.height, info.orientation), (Format::Avif, 2560, 1600, 1));
}

#[test]
fn an_avif_is_probed_when_libheif_is_installed_and_otherwise_refused_saying_what_to_install() {
    let installed = pictor_imaging::avif_decoding_available().is_ok();

    let result = probe(Cursor::new(read(AVIF)), &Limits::default());

    match result {
        Ok(info) => assert!(installed, "probed without libheif: {info:?}"),
        Err(ImagingError::Unsupported(message)) => {
            assert!(!installed, "refused with libheif installed: {message}");
            assert!(message.starts_with("AVIF decoding needs libheif"), "{message}");
            assert!(message.contains("Debian package libheif1"), "{message}");
        }
        Err(other) => panic!("expected the AVIF probed or Unsupported, got {other:?}"),
    }
}

#[test]
fn avif_renders_thumbnails_and_a_preview_of_exact_longest_edges() {
    if !libheif("avif_renders_thumbnails_and_a_preview_of_exact_longest_edges") {
        return;
    }
    let options = RenderOptions::default();

    let (thumbnails, preview) =
        pictor_imaging::render_all(&read(AVIF), &THUMBNAIL_SIZES, 2048, &options).expect("AVIF");

    for (asset, size) in thumbnails.iter().zip(THUMBNAIL_SIZES) {
        assert_eq!((asset.width, asset.height), (size, size * 5 / 8), "thumbnail {size}");
        assert_clean_jpeg(asset, false, &format!("{AVIF} @{size}"));
    }
    assert_eq!((preview.width, preview.height), (2048, 1280));
    assert_clean_jpeg(&preview, true, &format!("{AVIF} preview"));
}

#[test]
fn the_avif_preview_shows_the_same_picture_as_the_jpeg_it_was_made_from() {
    if !libheif("the_avif_preview_shows_the_same_picture_as_the_jpeg_it_was_made_from") {
        return;
    }
    let options = RenderOptions::default();

    let from_avif = render_preview(&read(AVIF), 2048, &options).expect("AVIF");
    let from_jpeg = render_preview(&read(AVIF_SOURCE), 2048, &options).expect("JPEG");

    let diff = mean_abs_diff(&pixels(&from_avif), &pixels(&from_jpeg));
    assert!(diff < 2.0, "mean absolute difference {diff:.2}");
}

#[test]
fn an_avif_preview_is_an_avif_without_exif_that_decodes_back_to_the_same_picture() {
    if !libheif("an_avif_preview_is_an_avif_without_exif_that_decodes_back_to_the_same_picture") {
        return;
    }
    let options = RenderOptions::default();
    // A photo with Exif, a grey JPEG, a PNG with alpha; 2048 and an odd size.
    for (name, edge) in
        [("metadata-gps-yellowflower.jpg", 2048), ("grey-grace-hopper.jpg", 301), ("png-rgba-mpl-logo2.png", 333)]
    {
        let prepared = prepare(&read(name), edge, &options).expect(name);

        let previews = prepared.previews(edge, &[AssetFormat::Jpeg, AssetFormat::Avif], &options).expect(name);

        let (jpeg, avif) = (&previews[0], &previews[1]);
        assert_eq!(avif.format, AssetFormat::Avif);
        assert_eq!((avif.width, avif.height), (jpeg.width, jpeg.height), "{name}");
        assert_eq!(&avif.bytes[4..12], b"ftypavif", "{name}: an AVIF file type box");
        // colr: nclx, BT.709 primaries, sRGB transfer, BT.601 matrix, full range.
        let srgb = b"colrnclx\x00\x01\x00\x0d\x00\x06\x80";
        let at = avif.bytes.windows(4).position(|w| w == b"colr").unwrap_or(0);
        assert!(
            avif.bytes.windows(srgb.len()).any(|w| w == srgb),
            "{name}: no sRGB nclx colour box: {:02x?}",
            &avif.bytes[at..at + 16]
        );
        for item in [&b"Exif"[..], b"mime", b"application/rdf+xml"] {
            let found = avif.bytes.windows(item.len()).any(|w| w == item);
            assert!(!found, "{name}: metadata {:?} in the AVIF", String::from_utf8_lossy(item));
        }
        let info = probe(Cursor::new(&avif.bytes), &Limits::default()).expect("the AVIF probes");
        assert_eq!((info.width, info.height), (avif.width, avif.height), "{name}");
        let back = decode_back(&avif.bytes, edge);
        assert_eq!(back.dimensions(), (avif.width, avif.height), "{name}");
        let diff = mean_abs_diff(&back, &pixels(jpeg));
        assert!(diff < 4.0, "{name}: the AVIF and JPEG previews differ by {diff:.2} on average");
        assert!(
            avif.bytes.len() < jpeg.bytes.len(),
            "{name}: AVIF {} B, JPEG {} B",
            avif.bytes.len(),
            jpeg.bytes.len()
        );
    }
}

#[test]
fn an_avif_with_alpha_is_flattened_onto_the_background_like_the_png_it_was_made_from() {
    if !libheif("an_avif_with_alpha_is_flattened_onto_the_background_like_the_png_it_was_made_from") {
        return;
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/avif-alpha-mpl-logo2.avif");
    let avif = std::fs::read(path).expect("the AVIF fixture");
    let png = read("png-rgba-mpl-logo2.png");
    // On white and on black: ignoring alpha would match at most one of them.
    for background in [[255, 255, 255], [0, 0, 0]] {
        let options = RenderOptions { background, ..RenderOptions::default() };

        let from_avif = render_preview(&avif, 2048, &options).expect("AVIF");
        let from_png = render_preview(&png, 2048, &options).expect("PNG");

        let diff = mean_abs_diff(&pixels(&from_avif), &pixels(&from_png));
        assert!(diff < 3.0, "on {background:?}: mean difference {diff:.2}");
    }
}

#[test]
fn an_avif_with_a_rotation_box_probes_and_renders_upright() {
    if !libheif("an_avif_with_a_rotation_box_probes_and_renders_upright") {
        return;
    }
    // The orientation-6 garden, stored sideways (200x320), encoded with an
    // `irot` box that turns it upright (320x200), as its EXIF tag does.
    let sideways =
        stage::resize(&stage::decode(&read("orient6-garden.jpg"), 320).expect("decode"), 320).expect("resize");
    assert_eq!((sideways.width(), sideways.height()), (200, 320));
    let avif = stage::encode_heif(&sideways, false, 90, 6).expect("an oriented AVIF");

    let info = probe(Cursor::new(&avif), &Limits::default()).expect("probe");
    let upright = decode_back(&avif, 320);

    assert_eq!((info.width, info.height, info.orientation), (320, 200, 1));
    let reference = decode_back(&read("orient1-garden.jpg"), 320);
    let diff = mean_abs_diff(&upright, &reference);
    assert!(diff < 3.0, "the AVIF renders upright like orient1-garden: mean difference {diff:.2}");
}

#[test]
fn a_truncated_avif_is_corrupt_and_never_a_panic() {
    if !libheif("a_truncated_avif_is_corrupt_and_never_a_panic") {
        return;
    }
    let data = read(AVIF);
    // Inside the boxes, just after them, in the middle of the coded data, one byte short.
    for cut in [40, 300, data.len() / 2, data.len() - 1] {
        let truncated = &data[..cut];

        let probed = probe(Cursor::new(truncated), &Limits::default());
        let rendered = render_preview(truncated, 2048, &RenderOptions::default());

        for result in [probed.map(drop), rendered.map(drop)] {
            assert!(matches!(&result, Err(ImagingError::Corrupt(_))), "cut at {cut}: {result:?}");
        }
    }
}

#[test]
fn an_avif_whose_header_claims_70000_px_is_too_large_before_decoding() {
    if !libheif("an_avif_whose_header_claims_70000_px_is_too_large_before_decoding") {
        return;
    }
    let mut data = read(AVIF);
    let ispe = data.windows(4).position(|w| w == b"ispe").expect("an ispe box");
    // ispe: type, version and flags, then width and height (u32 big-endian).
    data[ispe + 8..ispe + 12].copy_from_slice(&70_000u32.to_be_bytes());

    let probed = probe(Cursor::new(&data), &Limits::default());
    let rendered = render_preview(&data, 2048, &RenderOptions::default());

    for result in [probed.map(drop), rendered.map(drop)] {
        assert!(matches!(result, Err(ImagingError::TooLarge { width: 70_000, height: 1600, .. })), "{result:?}");
    }
}

#[test]
fn an_avif_whose_header_size_disagrees_with_its_image_data_is_corrupt() {
    if !libheif("an_avif_whose_header_size_disagrees_with_its_image_data_is_corrupt") {
        return;
    }
    let mut data = read(AVIF);
    let ispe = data.windows(4).position(|w| w == b"ispe").expect("an ispe box");
    data[ispe + 8..ispe + 12].copy_from_slice(&3000u32.to_be_bytes());

    let info = probe(Cursor::new(&data), &Limits::default()).expect("the header alone looks fine");
    let rendered = render_preview(&data, 2048, &RenderOptions::default());

    assert_eq!((info.width, info.height), (3000, 1600));
    assert!(matches!(&rendered, Err(ImagingError::Corrupt(m)) if m.contains("2560x1600")), "{rendered:?}");
}

#[test]
fn an_avif_over_the_pixel_limit_is_too_large_before_decoding() {
    if !libheif("an_avif_over_the_pixel_limit_is_too_large_before_decoding") {
        return;
    }
    let options =
        RenderOptions { limits: Limits { max_pixels: 4_000_000, ..Limits::default() }, ..RenderOptions::default() };

    let probed = probe(Cursor::new(read(AVIF)), &options.limits);
    let rendered = render_preview(&read(AVIF), 2048, &options);

    for result in [probed.map(drop), rendered.map(drop)] {
        assert!(matches!(result, Err(ImagingError::TooLarge { width: 2560, height: 1600, .. })), "{result:?}");
    }
}

#[cfg(feature = "heic")]
#[test]
fn a_heic_renders_like_the_jpeg_it_was_made_from() {
    if !libheif("a_heic_renders_like_the_jpeg_it_was_made_from") {
        return;
    }
    let source =
        stage::to_srgb(stage::resize(&stage::decode(&read(AVIF_SOURCE), 640).expect("decode"), 640).expect("resize"))
            .expect("sRGB");
    let heic = stage::encode_heif(&source, true, 90, 1).expect("libheif encodes HEIC (x265)");
    assert_eq!(pictor_imaging::sniff(&heic), Some(Format::Heic));

    let info = probe(Cursor::new(&heic), &Limits::default()).expect("probe");
    let rendered = decode_back(&heic, 640);

    assert_eq!((info.format, info.width, info.height), (Format::Heic, 640, 400));
    let diff = mean_abs_diff(&rendered, &decode_back(&read(AVIF_SOURCE), 640));
    assert!(diff < 1.0, "mean difference {diff:.2}");
}

#[cfg(not(feature = "heic"))]
#[test]
fn without_the_heic_feature_a_heic_is_refused_naming_the_feature() {
    let mut ftyp = 24u32.to_be_bytes().to_vec();
    ftyp.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");

    let result = probe(Cursor::new(ftyp), &Limits::default());

    assert!(matches!(&result, Err(ImagingError::Unsupported(m)) if m.contains("`heic` feature")), "{result:?}");
}
