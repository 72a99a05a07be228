//! Shared test helpers: where the test images are, what the manifest says
//! about them, and how to look inside the JPEGs the library produces.

use std::path::PathBuf;

use pictor_imaging::{Asset, RenderOptions, render_preview};

/// `testdata/images` at the repository root.
pub fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/images")
}

/// The bytes of a test image.
pub fn read(name: &str) -> Vec<u8> {
    let path = testdata().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// One row of `MANIFEST.md`.
#[derive(Debug, Clone)]
pub struct Entry {
    pub file: String,
    pub role: String,
    pub format: String,
    /// Stored width and height, when the manifest gives them.
    pub stored: Option<(u32, u32)>,
}

impl Entry {
    /// EXIF orientation as the manifest's format column states it ("orient 6").
    pub fn orientation(&self) -> u8 {
        self.format.split(", ").find_map(|part| part.strip_prefix("orient ")).and_then(|n| n.parse().ok()).unwrap_or(1)
    }

    /// Upright width and height.
    pub fn display(&self) -> (u32, u32) {
        let (w, h) = self.stored.expect("a valid image has a size in the manifest");
        if self.orientation() >= 5 { (h, w) } else { (w, h) }
    }
}

/// Every image row of `MANIFEST.md`.
pub fn manifest() -> Vec<Entry> {
    let text = std::fs::read_to_string(testdata().join("MANIFEST.md")).expect("MANIFEST.md");
    text.lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let stored = cells[4].split_once('x').and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
            Entry {
                file: cells[1].trim_matches('`').to_owned(),
                role: cells[2].to_owned(),
                format: cells[3].to_owned(),
                stored,
            }
        })
        .collect()
}

/// Marker codes of a JPEG up to its first scan (SOS included).
pub fn jpeg_markers(jpeg: &[u8]) -> Vec<u8> {
    assert!(jpeg.starts_with(&[0xFF, 0xD8]), "not a JPEG");
    let mut markers = vec![0xD8];
    let mut at = 2;
    while at + 4 <= jpeg.len() {
        assert_eq!(jpeg[at], 0xFF, "marker expected at {at}");
        let code = jpeg[at + 1];
        markers.push(code);
        if code == 0xDA {
            break;
        }
        let length = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        at += 2 + length;
    }
    markers
}

/// Asserts the asset is a JPEG of its stated size, with no metadata
/// segment other than JFIF (APP0), progressive or baseline as asked.
pub fn assert_clean_jpeg(asset: &Asset, progressive: bool, context: &str) {
    let markers = jpeg_markers(&asset.bytes);
    let forbidden: Vec<u8> = markers.iter().copied().filter(|&m| (0xE1..=0xEF).contains(&m) || m == 0xFE).collect();
    assert!(forbidden.is_empty(), "{context}: metadata markers {forbidden:02X?}");
    let sof = if progressive { 0xC2 } else { 0xC0 };
    assert!(markers.contains(&sof), "{context}: no SOF {sof:02X} in {markers:02X?}");
    let decoded = image::load_from_memory_with_format(&asset.bytes, image::ImageFormat::Jpeg)
        .unwrap_or_else(|e| panic!("{context}: output does not decode: {e}"));
    assert_eq!((decoded.width(), decoded.height()), (asset.width, asset.height), "{context}");
}

/// Decodes a JPEG asset to RGB8.
pub fn pixels(asset: &Asset) -> image::RgbImage {
    image::load_from_memory_with_format(&asset.bytes, image::ImageFormat::Jpeg).expect("the asset decodes").into_rgb8()
}

/// Renders a test image's preview with default options.
pub fn preview(name: &str, max_edge: u32) -> Asset {
    render_preview(&read(name), max_edge, &RenderOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Mean absolute difference per channel, 0..=255; the images must be the same size.
pub fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions(), "compared images differ in size");
    let total: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    total as f64 / a.as_raw().len() as f64
}

/// Mean channel value, 0..=255.
pub fn mean(image: &image::RgbImage) -> f64 {
    image.as_raw().iter().map(|&v| u64::from(v)).sum::<u64>() as f64 / image.as_raw().len() as f64
}

/// Mean of each of R, G and B, 0..=255.
pub fn channel_means(image: &image::RgbImage) -> [f64; 3] {
    let mut sums = [0u64; 3];
    for pixel in image.pixels() {
        for (sum, value) in sums.iter_mut().zip(pixel.0) {
            *sum += u64::from(value);
        }
    }
    sums.map(|sum| sum as f64 / f64::from(image.width() * image.height()))
}

/// Mean of (max channel − min channel) per pixel: a rough saturation.
pub fn mean_chroma(image: &image::RgbImage) -> f64 {
    let total: u64 =
        image.pixels().map(|p| u64::from(p.0.iter().max().unwrap_or(&0) - p.0.iter().min().unwrap_or(&0))).sum();
    total as f64 / (image.width() * image.height()) as f64
}

/// Removes every APP2 (ICC profile) segment from a JPEG.
pub fn strip_icc(jpeg: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    let mut at = 2;
    loop {
        let code = jpeg[at + 1];
        if code == 0xDA {
            out.extend_from_slice(&jpeg[at..]);
            return out;
        }
        let length = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        if code != 0xE2 {
            out.extend_from_slice(&jpeg[at..at + 2 + length]);
        }
        at += 2 + length;
    }
}
