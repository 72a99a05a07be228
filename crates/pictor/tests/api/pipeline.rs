//! Upload → queue → offload → thumbnails + preview → STORED, on the shared
//! test images, with every asset checked from its bytes.

use std::time::Duration;

use pictor::app::Overrides;
use pictor_client::models::{ImageStatus, UploadResponse};
use sha2::{Digest, Sha256};

use crate::helpers::{count_files, decode_rgb, jpeg_info, manifest, mean_abs_diff, spawn_app, spawn_app_on, testdata};

const SIZES: [u32; 4] = [64, 128, 256, 512];
const PREVIEW_EDGE: u32 = 2048;
/// Whether a file may be refused or fail cleanly instead of being stored:
/// the 64-bit float TIFF, and the AVIF where libheif is missing (never on CI,
/// which installs it).
fn may_refuse(file: &str) -> bool {
    file == "tiff-multipage-rgb.tif" || (file.ends_with(".avif") && !libheif_here_or_on_ci(&format!("storing {file}")))
}

/// Whether libheif can decode and encode AVIF here. On CI its absence fails
/// the test; elsewhere the AVIF part of a test is skipped with a notice.
fn libheif_here_or_on_ci(what: &str) -> bool {
    let available = pictor_imaging::avif_decoding_available().and_then(|()| pictor_imaging::avif_encoding_available());
    match available {
        Ok(()) => true,
        Err(e) => {
            crate::skip::skip(what, &format!("{e} (apt-get install libheif1)"));
            false
        }
    }
}

/// Display size from the manifest: stored WxH, swapped for orientations 5–8.
fn display_size(file: &str) -> (u32, u32) {
    let text = std::fs::read_to_string(crate::helpers::testdata_dir().join("MANIFEST.md")).expect("manifest");
    let line = text.lines().find(|l| l.starts_with(&format!("| `{file}`"))).expect("listed");
    let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
    let (w, h) = cells[3].split_once('x').expect("WxH");
    let (w, h): (u32, u32) = (w.parse().expect("w"), h.parse().expect("h"));
    let rotated = ["orient 5", "orient 6", "orient 7", "orient 8"].iter().any(|o| cells[2].contains(o));
    if rotated { (h, w) } else { (w, h) }
}

fn expected_edges(longest_edge: u32, (w, h): (u32, u32)) -> (u32, u32) {
    let long = w.max(h);
    let target = longest_edge.min(long);
    let short = ((f64::from(w.min(h)) * f64::from(target) / f64::from(long)).round() as u32).max(1);
    if w >= h { (target, short) } else { (short, target) }
}

fn assert_size_within_one(file: &str, what: &str, got: (u32, u32), want: (u32, u32)) {
    let long_ok = got.0.max(got.1) == want.0.max(want.1);
    let short_ok = got.0.abs_diff(want.0) <= 1 && got.1.abs_diff(want.1) <= 1;
    assert!(long_ok && short_ok, "{file} {what}: {}x{}, want {}x{}", got.0, got.1, want.0, want.1);
}

both_backends! {
    async fn every_shared_photo_and_special_image_is_stored_with_five_assets_of_the_right_size(backend) {
        let Some(app) = spawn_app_on(backend, |_| {}, Overrides::default(), true).await else { return };
        let files: Vec<String> = manifest()
            .into_iter()
            .filter(|e| e.role == "photo" || e.role == "special")
            .map(|e| e.file)
            .collect();
        assert!(files.len() >= 30, "the manifest lists the shared images");

        let mut uploaded = Vec::new();
        for file in &files {
            let response = app.upload_file(file).await;
            if response.status() == 201 {
                let body: UploadResponse = response.json().await.expect("upload json");
                uploaded.push((file.clone(), body.image_id));
            } else {
                assert!(
                    may_refuse(file),
                    "{file} refused with {}",
                    response.status()
                );
                let body: serde_json::Value = response.json().await.expect("error json");
                assert!(body["error"]["code"].is_string(), "{file}: {body}");
            }
        }

        for (file, id) in &uploaded {
            let image = app.wait_terminal(id, Duration::from_secs(180)).await;
            if may_refuse(file) && image.status == ImageStatus::Failed {
                assert!(
                    image.error.as_deref().is_some_and(|e| !e.is_empty()),
                    "{file} failed without a message"
                );
                continue;
            }
            assert_eq!(
                image.status,
                ImageStatus::Stored,
                "{file}: {:?}",
                image.error
            );
            assert!(image.is_stored && !image.is_processing);
        let hash = image.thumbhash.as_deref().unwrap_or_else(|| panic!("{file}: no thumbhash"));
        let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, hash).expect("base64 thumbhash");
        assert!(bytes.len() >= 5, "{file}: a thumbhash has a header and colours, got {} bytes", bytes.len());
            let display = display_size(file);
            assert_eq!(
                (image.width, image.height),
                display,
                "{file}: display size in the JSON"
            );
            assert_eq!(
                image.thumbnail_path.as_ref(),
                image.thumbnails.get("256"),
                "{file}: thumbnailPath is the 256 px one"
            );

            for size in SIZES {
                let path = image
                    .thumbnails
                    .get(&size.to_string())
                    .unwrap_or_else(|| panic!("{file}: no {size} thumbnail"));
                let info = jpeg_info(&app.bytes(path).await);
                assert_size_within_one(
                    file,
                    &format!("thumbnail {size}"),
                    (info.width, info.height),
                    expected_edges(size, display),
                );
                assert!(
                    info.metadata.is_empty(),
                    "{file} thumbnail {size} carries {:?}",
                    info.metadata
                );
            }
            let preview = app
                .bytes(image.preview_path.as_deref().expect("previewPath"))
                .await;
            let info = jpeg_info(&preview);
            assert_size_within_one(
                file,
                "preview",
                (info.width, info.height),
                expected_edges(PREVIEW_EDGE, display),
            );
            assert!(info.progressive, "{file}: the preview is progressive");
            assert!(
                info.metadata.is_empty(),
                "{file} preview carries {:?}",
                info.metadata
            );
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn every_orientation_of_the_garden_looks_like_the_upright_original() {
    let app = spawn_app().await;
    let mut previews = Vec::new();
    for n in 1..=8 {
        let id = app.upload_ok(&format!("orient{n}-garden.jpg")).await;
        previews.push(id);
    }
    let mut decoded = Vec::new();
    for id in &previews {
        let image = app.wait_terminal(id, Duration::from_secs(120)).await;
        assert_eq!(image.status, ImageStatus::Stored, "{:?}", image.error);
        assert_eq!((image.width, image.height), (2560, 1600), "upright size");
        decoded.push(decode_rgb(&app.bytes(image.preview_path.as_deref().expect("preview")).await));
    }
    for (n, preview) in decoded.iter().enumerate().skip(1) {
        let diff = mean_abs_diff(&decoded[0], preview);
        assert!(diff < 4.0, "orient{} differs from orient1 by {diff:.2} per channel", n + 1);
    }
    // A wrongly oriented image differs far more: the check can fail.
    let flipped = image::imageops::flip_horizontal(&decoded[0]);
    assert!(mean_abs_diff(&decoded[0], &flipped) > 10.0);
    app.stop().await;
}

#[tokio::test]
async fn outputs_carry_no_gps_exif_xmp_iptc_or_icc_even_when_the_original_does() {
    let app = spawn_app().await;
    let original = std::fs::read(testdata("metadata-gps-yellowflower.jpg")).expect("test image");
    assert!(!jpeg_info(&original).metadata.is_empty(), "the original does carry metadata");
    let id = app.upload_ok("metadata-gps-yellowflower.jpg").await;
    let image = app.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(image.status, ImageStatus::Stored);
    let mut paths: Vec<&String> = image.thumbnails.values().collect();
    paths.extend(image.preview_path.as_ref());
    for path in paths {
        let bytes = app.bytes(path).await;
        assert!(jpeg_info(&bytes).metadata.is_empty(), "{path} carries metadata");
        for needle in [&b"Exif"[..], b"GPS", b"http://ns.adobe.com/xap", b"Photoshop 3.0", b"ICC_PROFILE"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{path} contains {:?}",
                String::from_utf8_lossy(needle)
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn upload_answers_201_with_the_sha256_size_and_ingested_state() {
    let app = spawn_app().await;
    let bytes = std::fs::read(testdata("mpl-grace-hopper.jpg")).expect("test image");
    let response = app.upload_bytes("grace.jpg", bytes.clone(), Some("Grace"), Some("people")).await;
    assert_eq!(response.status(), 201);
    assert!(response.headers().get("location").is_some(), "Location header");
    let body: UploadResponse = response.json().await.expect("json");
    assert_eq!(body.checksum, hex::encode(Sha256::digest(&bytes)));
    assert_eq!(body.size_bytes, bytes.len() as u64);
    assert_eq!(body.status, ImageStatus::Ingested);
    assert!(body.uploaded_at.ends_with('Z'), "RFC 3339 UTC: {}", body.uploaded_at);
    let image = app.image(&body.image_id).await;
    assert_eq!(image.title, "Grace");
    assert_eq!(image.collection.as_deref(), Some("people"));
    assert_eq!(image.format, "jpeg");
    app.stop().await;
}

both_backends! {
    async fn the_same_bytes_uploaded_twice_are_stored_once_and_both_images_complete(backend) {
        let Some(app) = spawn_app_on(backend, |_| {}, Overrides::default(), true).await else { return };
        let first = app.upload_ok("sklearn-china.jpg").await;
        let second = app.upload_ok("sklearn-china.jpg").await;
        for id in [&first, &second] {
            assert_eq!(
                app.wait_terminal(id, Duration::from_secs(60)).await.status,
                ImageStatus::Stored
            );
        }
        let originals = app.dir.path().join("storage/originals");
        let count = count_files(&originals);
        assert_eq!(count, 1, "one original for two uploads of the same bytes");
        assert_eq!(
            count_files(&app.dir.path().join("storage/tmp")),
            0,
            "nothing left in tmp/"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn with_webp_configured_the_preview_also_comes_as_a_webp_of_the_same_picture() {
    use pictor_imaging::AssetFormat::{Jpeg, Webp};
    let app =
        crate::helpers::spawn_app_with(|c| c.preview_formats = vec![Jpeg, Webp], Overrides::default(), true).await;
    let id = app.upload_ok("mate-ladybird.jpg").await;

    let image = app.wait_terminal(&id, Duration::from_secs(60)).await;

    assert_eq!(image.status, ImageStatus::Stored, "{:?}", image.error);
    assert_eq!(image.previews.get("jpeg"), image.preview_path.as_ref(), "previewPath is the JPEG");
    let webp_url = image.previews.get("webp").expect("a WebP preview");
    let response = app.client.get(app.url(webp_url)).send().await.expect("get");
    assert_eq!(response.headers()["content-type"], "image/webp");
    let webp = response.bytes().await.expect("body");
    assert!(webp.starts_with(b"RIFF") && &webp[8..12] == b"WEBP", "a WebP file");
    assert!(!webp.windows(4).any(|w| w == b"EXIF" || w == b"XMP " || w == b"ICCP"), "no metadata chunks");
    let webp = image::load_from_memory_with_format(&webp, image::ImageFormat::WebP).expect("decodable").to_rgb8();
    let jpeg = decode_rgb(&app.bytes(image.preview_path.as_deref().expect("preview")).await);
    assert_eq!(webp.dimensions(), jpeg.dimensions());
    let diff = mean_abs_diff(&webp, &jpeg);
    assert!(diff < 4.0, "the WebP shows the same picture as the JPEG: mean difference {diff:.2}");
    app.stop().await;
}

#[tokio::test]
async fn with_avif_configured_an_avif_upload_gets_an_avif_preview_of_the_same_picture() {
    if !libheif_here_or_on_ci("with_avif_configured_an_avif_upload_gets_an_avif_preview_of_the_same_picture") {
        return;
    }
    use pictor_imaging::AssetFormat::{Avif, Jpeg, Webp};
    let formats = vec![Jpeg, Webp, Avif];
    let app = crate::helpers::spawn_app_with(|c| c.preview_formats = formats, Overrides::default(), true).await;
    let id = app.upload_ok("avif-coldripple.avif").await;

    let image = app.wait_terminal(&id, Duration::from_secs(60)).await;

    assert_eq!(image.status, ImageStatus::Stored, "{:?}", image.error);
    assert_eq!((image.format.as_str(), image.width, image.height), ("avif", 2560, 1600));
    assert_eq!(image.previews.keys().collect::<Vec<_>>(), vec!["avif", "jpeg", "webp"]);
    let response = app.client.get(app.url(&image.previews["avif"])).send().await.expect("get");
    assert_eq!(response.headers()["content-type"], "image/avif");
    let avif = response.bytes().await.expect("body");
    assert_eq!(&avif[4..12], b"ftypavif", "an AVIF file");
    assert!(!avif.windows(4).any(|w| w == b"Exif"), "no Exif item");
    // Decoded back through Pictor's own AVIF decoder, as a q100 JPEG.
    let options = pictor_imaging::RenderOptions { jpeg_quality: 100, ..Default::default() };
    let back = pictor_imaging::render_preview(&avif, 2048, &options).expect("the AVIF preview decodes");
    let back = decode_rgb(&back.bytes);
    let jpeg = decode_rgb(&app.bytes(image.preview_path.as_deref().expect("preview")).await);
    assert_eq!(back.dimensions(), (2048, 1280));
    assert_eq!(back.dimensions(), jpeg.dimensions());
    let diff = mean_abs_diff(&back, &jpeg);
    assert!(diff < 3.0, "the AVIF shows the same picture as the JPEG: mean difference {diff:.2}");
    app.stop().await;
}

#[tokio::test]
async fn by_default_only_the_jpeg_preview_is_made() {
    let app = spawn_app().await;
    let id = app.upload_ok("sklearn-china.jpg").await;
    let image = app.wait_terminal(&id, Duration::from_secs(60)).await;
    assert_eq!(image.previews.keys().collect::<Vec<_>>(), vec!["jpeg"]);
    let assets = app.dir.path().join("storage/assets").join(&id);
    assert!(!assets.join("preview.webp").exists(), "no WebP unless configured");
    app.stop().await;
}
