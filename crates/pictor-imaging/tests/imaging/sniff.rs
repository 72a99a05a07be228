//! Recognition by magic bytes.

use pictor_imaging::{Format, sniff};

use crate::helpers::{manifest, read};

#[test]
fn sniff_recognises_the_format_of_every_test_image() {
    let mut checked = 0;
    for entry in manifest() {
        let expected = match entry.format.split([',', ' ']).next().unwrap_or("") {
            "JPEG" => Format::Jpeg,
            "PNG" => Format::Png,
            "WebP" => Format::WebP,
            "GIF" => Format::Gif,
            "TIFF" => Format::Tiff,
            "AVIF" => Format::Avif,
            _ => continue,
        };
        let data = read(&entry.file);

        let found = sniff(&data[..data.len().min(32)]);

        assert_eq!(found, Some(expected), "{}", entry.file);
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} images checked");
}

#[test]
fn sniff_refuses_text_named_jpg_and_an_empty_file() {
    assert_eq!(sniff(&read("bad-text-named.jpg")), None);
    assert_eq!(sniff(&read("bad-zero-bytes.jpg")), None);
}

#[test]
fn format_names_and_media_types_are_lower_case_and_standard() {
    assert_eq!(Format::Jpeg.as_str(), "jpeg");
    assert_eq!(Format::Jpeg.mime(), "image/jpeg");
    assert_eq!(Format::WebP.as_str(), "webp");
    assert_eq!(Format::Heic.mime(), "image/heic");
}
