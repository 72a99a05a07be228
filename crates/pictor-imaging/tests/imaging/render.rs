//! Every valid test image renders to thumbnails and a preview of exact
//! sizes, with the right scan type and no metadata.

use pictor_imaging::{AssetFormat, ImagingError, RenderOptions, render_all, render_preview, render_thumbnails};

use crate::helpers::{Entry, assert_clean_jpeg, manifest, mean_abs_diff, pixels, read};

const THUMBNAIL_SIZES: [u32; 4] = [64, 128, 256, 512];
const PREVIEW_EDGE: u32 = 2048;

/// Expected (width, height) for a longest edge of `n`, with the short edge
/// checked to ±1 px by the caller.
fn expected(display: (u32, u32), n: u32) -> (u32, f64) {
    let (w, h) = display;
    let longest = w.max(h);
    let edge = n.min(longest);
    let short = f64::from(w.min(h)) * f64::from(edge) / f64::from(longest);
    (edge, short)
}

fn check_size(entry: &Entry, n: u32, width: u32, height: u32) -> Result<(), String> {
    let display = entry.display();
    let (edge, short) = expected(display, n);
    let (long_got, short_got) = if display.0 >= display.1 { (width, height) } else { (height, width) };
    if long_got != edge || (f64::from(short_got) - short).abs() > 1.0 || short_got < 1 {
        return Err(format!(
            "{} @{n}: got {width}x{height}, display {display:?} wants edge {edge}, short {short:.1}",
            entry.file
        ));
    }
    Ok(())
}

/// AVIF needs libheif at run time and has its own tests (heif.rs).
fn renderable(entry: &Entry) -> bool {
    entry.role != "bad" && !entry.format.starts_with("AVIF") && entry.file != "tiff-multipage-rgb.tif"
}

#[test]
fn every_photo_and_special_image_renders_thumbnails_and_preview_of_exact_size() {
    let options = RenderOptions::default();
    let mut problems = Vec::new();
    let entries: Vec<Entry> = manifest().into_iter().filter(renderable).collect();
    assert!(entries.len() >= 35, "only {} renderable images", entries.len());
    for entry in &entries {
        let data = read(&entry.file);

        let thumbnails = render_thumbnails(&data, &THUMBNAIL_SIZES, &options);
        let preview = render_preview(&data, PREVIEW_EDGE, &options);

        match thumbnails {
            Ok(assets) => {
                assert_eq!(assets.len(), THUMBNAIL_SIZES.len());
                for (asset, n) in assets.iter().zip(THUMBNAIL_SIZES) {
                    problems.extend(check_size(entry, n, asset.width, asset.height).err());
                    assert_clean_jpeg(asset, false, &format!("{} @{n}", entry.file));
                }
            }
            Err(e) => problems.push(format!("{}: thumbnails failed: {e}", entry.file)),
        }
        match preview {
            Ok(asset) => {
                problems.extend(check_size(entry, PREVIEW_EDGE, asset.width, asset.height).err());
                assert_clean_jpeg(&asset, true, &format!("{} preview", entry.file));
            }
            Err(e) => problems.push(format!("{}: preview failed: {e}", entry.file)),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn thumbnails_come_back_in_the_order_of_the_sizes_asked() {
    let sizes = [128, 512, 64, 256, 128];

    let assets =
        render_thumbnails(&read("mate-ladybird.jpg"), &sizes, &RenderOptions::default()).expect("ladybird renders");

    let widths: Vec<u32> = assets.iter().map(|a| a.width).collect();
    assert_eq!(widths, vec![128, 512, 64, 256, 128]);
}

#[test]
fn the_272_to_1_strip_gives_a_64x1_thumbnail() {
    let assets =
        render_thumbnails(&read("strip-4352x16-bridge.jpg"), &[64], &RenderOptions::default()).expect("strip renders");

    assert_eq!((assets[0].width, assets[0].height), (64, 1));
}

#[test]
fn orientation_6_gives_a_landscape_2048x1280_preview() {
    let asset = render_preview(&read("orient6-garden.jpg"), 2048, &RenderOptions::default()).expect("orient6 renders");

    assert_eq!((asset.width, asset.height), (2048, 1280));
}

#[test]
fn a_small_image_is_never_upscaled() {
    let data = read("tiny-microaneurysms.png");

    let preview = render_preview(&data, 2048, &RenderOptions::default()).expect("preview");
    let thumbnails = render_thumbnails(&data, &[512, 64], &RenderOptions::default()).expect("thumbs");

    assert_eq!((preview.width, preview.height), (102, 102));
    assert_eq!((thumbnails[0].width, thumbnails[1].width), (102, 64));
}

#[test]
fn metadata_of_the_gps_tagged_photo_does_not_reach_the_outputs() {
    let data = read("metadata-gps-yellowflower.jpg");
    let options = RenderOptions::default();

    let preview = render_preview(&data, 2048, &options).expect("preview");
    let thumbnails = render_thumbnails(&data, &THUMBNAIL_SIZES, &options).expect("thumbnails");

    assert_clean_jpeg(&preview, true, "preview");
    for asset in &thumbnails {
        assert_clean_jpeg(asset, false, "thumbnail");
        assert!(!asset.bytes.windows(4).any(|w| w == b"Exif"), "Exif text in a thumbnail");
    }
}

#[test]
fn the_multipage_float_tiff_renders_or_is_refused_cleanly() {
    let result = render_preview(&read("tiff-multipage-rgb.tif"), 2048, &RenderOptions::default());

    match result {
        Ok(asset) => assert_eq!((asset.width, asset.height), (10, 10)),
        Err(ImagingError::Unsupported(_) | ImagingError::Corrupt(_)) => {}
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn an_empty_size_list_renders_nothing() {
    let assets =
        render_thumbnails(&read("mate-ladybird.jpg"), &[], &RenderOptions::default()).expect("no sizes is fine");

    assert!(assets.is_empty());
}

#[test]
fn render_all_gives_the_same_sizes_and_scans_as_the_two_jobs_and_nearly_the_same_pixels() {
    let options = RenderOptions::default();
    for name in ["bridge-klootwijk.jpg", "orient6-garden.jpg", "p3-twowings.jpg", "png-rgba-mpl-logo2.png"] {
        let data = read(name);

        let (thumbnails, preview) = render_all(&data, &THUMBNAIL_SIZES, PREVIEW_EDGE, &options).expect(name);
        let separate_thumbnails = render_thumbnails(&data, &THUMBNAIL_SIZES, &options).expect(name);
        let separate_preview = render_preview(&data, PREVIEW_EDGE, &options).expect(name);

        assert_eq!((preview.width, preview.height), (separate_preview.width, separate_preview.height), "{name}");
        assert_clean_jpeg(&preview, true, name);
        for (one, other) in thumbnails.iter().zip(&separate_thumbnails) {
            assert_eq!((one.width, one.height), (other.width, other.height), "{name}");
            assert_clean_jpeg(one, false, name);
            let difference = mean_abs_diff(&pixels(one), &pixels(other));
            assert!(difference < 4.0, "{name} @{}: mean abs diff {difference:.2}", one.width.max(one.height));
        }
    }
}

#[test]
fn previews_in_jpeg_and_webp_share_one_size_and_show_the_same_picture() {
    let options = RenderOptions::default();
    for name in ["mate-ladybird.jpg", "grey-grace-hopper.jpg", "orient6-garden.jpg"] {
        let prepared = pictor_imaging::prepare(&read(name), PREVIEW_EDGE, &options).expect(name);

        let previews = prepared
            .previews(PREVIEW_EDGE, &[AssetFormat::Jpeg, AssetFormat::Webp], &options)
            .unwrap_or_else(|e| panic!("{name}: {e}"));

        let [jpeg, webp] = previews.as_slice() else { panic!("{name}: two previews expected") };
        assert_eq!((jpeg.format, webp.format), (AssetFormat::Jpeg, AssetFormat::Webp));
        assert_eq!((jpeg.width, jpeg.height), (webp.width, webp.height), "{name}");
        assert_clean_jpeg(jpeg, true, name);
        assert!(webp.bytes.starts_with(b"RIFF") && &webp.bytes[8..12] == b"WEBP", "{name}: a WebP");
        let decoded = image::load_from_memory_with_format(&webp.bytes, image::ImageFormat::WebP)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .to_rgb8();
        assert_eq!(decoded.dimensions(), (webp.width, webp.height), "{name}");
        let difference = mean_abs_diff(&pixels(jpeg), &decoded);
        assert!(difference < 4.0, "{name}: WebP vs JPEG mean abs diff {difference:.2}");
    }
}

#[test]
fn a_prepared_image_refuses_outputs_larger_than_it_was_prepared_for() {
    let options = RenderOptions::default();
    let prepared = pictor_imaging::prepare(&read("bridge-klootwijk.jpg"), 512, &options).expect("prepared");
    assert_eq!(prepared.width().max(prepared.height()), 512);

    let bigger = prepared.preview(PREVIEW_EDGE, &options).expect_err("would upscale");

    assert!(matches!(bigger, ImagingError::Internal(ref m) if m.contains("prepared at")), "{bigger}");
    assert!(prepared.thumbnails(&[256, 64], &options).is_ok(), "smaller outputs are fine");
}

#[test]
fn a_tiled_jpeg_compressed_tiff_renders_the_same_picture_as_its_source_jpeg() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiff-tiled-jpeg-china.tif");
    let tiff = std::fs::read(&path).expect("the fixture");
    let options = RenderOptions::default();

    let from_tiff = render_preview(&tiff, 256, &options).expect("a tiled JPEG TIFF decodes");
    let from_jpeg = render_preview(&read("sklearn-china.jpg"), 256, &options).expect("the source");

    assert_eq!((from_tiff.width, from_tiff.height), (256, 171));
    assert_clean_jpeg(&from_tiff, true, "tiled TIFF");
    let difference = mean_abs_diff(&pixels(&from_tiff), &pixels(&from_jpeg));
    assert!(difference < 6.0, "tiled TIFF vs its source: mean abs diff {difference:.2}");
}

#[test]
fn the_thumbhash_from_the_thumbnail_pixels_matches_the_one_from_the_encoded_thumbnail() {
    let options = RenderOptions::default();
    for name in ["mate-ladybird.jpg", "orient6-garden.jpg", "grey-grace-hopper.jpg"] {
        let prepared = pictor_imaging::prepare(&read(name), PREVIEW_EDGE, &options).expect(name);

        let (thumbnails, hash) = prepared.thumbnails_and_thumbhash(&THUMBNAIL_SIZES, &options).expect(name);

        let hash = hash.unwrap_or_else(|e| panic!("{name}: {e}"));
        let from_128 = pictor_imaging::thumbhash_from_asset(&thumbnails[1]).expect("from the 128 px JPEG");
        let average = |h: &[u8]| thumbhash::thumb_hash_to_average_rgba(h).expect("a valid hash");
        let (a, b) = (average(&hash), average(&from_128));
        let gap = (a.0 - b.0).abs().max((a.1 - b.1).abs()).max((a.2 - b.2).abs());
        assert!(gap < 0.02, "{name}: average colour {a:?} vs {b:?}");
        let ratio = |h: &[u8]| thumbhash::thumb_hash_to_approximate_aspect_ratio(h).expect("a valid hash");
        assert!((ratio(&hash) - ratio(&from_128)).abs() < 0.05, "{name}: same aspect");
    }
}

/// The web UI decodes ThumbHashes in JavaScript (`static/thumbhash.js` in
/// the pictor crate); its node test compares that decoder with this
/// library's, through `testdata/thumbhash/mpl-grace-hopper.json`: the hash
/// this library makes for the photo and the pixels the `thumbhash` crate
/// decodes from it. This test fails when the file no longer says so;
/// `PICTOR_WRITE_THUMBHASH_FIXTURE=1` rewrites it.
#[test]
fn the_thumbhash_fixture_for_the_javascript_decoder_is_what_this_library_makes() {
    let options = RenderOptions::default();
    let prepared = pictor_imaging::prepare(&read("mpl-grace-hopper.jpg"), PREVIEW_EDGE, &options).expect("prepared");
    let (_, hash) = prepared.thumbnails_and_thumbhash(&THUMBNAIL_SIZES, &options).expect("rendered");
    let hash = hash.expect("a ThumbHash");
    let (width, height, rgba) = thumbhash::thumb_hash_to_rgba(&hash).expect("decodes");
    let (r, g, b, a) = thumbhash::thumb_hash_to_average_rgba(&hash).expect("an average");
    let list = |bytes: &[u8]| bytes.iter().map(u8::to_string).collect::<Vec<_>>().join(",");
    let expected = format!(
        "{{\n  \"source\": \"testdata/images/mpl-grace-hopper.jpg\",\n  \
         \"madeBy\": \"pictor-imaging (prepare, thumbnails_and_thumbhash) and the thumbhash crate's decoder\",\n  \
         \"hash\": [{}],\n  \"width\": {width},\n  \"height\": {height},\n  \
         \"average\": [{r:.4}, {g:.4}, {b:.4}, {a:.4}],\n  \"rgba\": [{}]\n}}\n",
        list(&hash),
        list(&rgba),
    );
    let path = crate::helpers::testdata().join("../thumbhash/mpl-grace-hopper.json");
    if std::env::var_os("PICTOR_WRITE_THUMBHASH_FIXTURE").is_some() {
        std::fs::write(&path, &expected).expect("write the fixture");
    }
    let found = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        found == expected,
        "{} is not what this library makes; rewrite it with \
         PICTOR_WRITE_THUMBHASH_FIXTURE=1 cargo test -p pictor-imaging --test imaging thumbhash_fixture",
        path.display()
    );
}
