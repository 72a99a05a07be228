//! Format recognition by magic bytes, never by name or client-sent type
//! (DESIGN, Security), and what this build can decode.

/// The image formats Pictor recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// JPEG (JFIF/Exif), baseline or progressive.
    Jpeg,
    /// PNG, any bit depth.
    Png,
    /// WebP, lossy or lossless.
    WebP,
    /// GIF; only the first frame is rendered.
    Gif,
    /// TIFF; only the first page is rendered.
    Tiff,
    /// AVIF, decoded through libheif when it is installed.
    Avif,
    /// HEIC/HEIF, decoded through libheif in builds with the `heic` feature.
    Heic,
    /// Windows bitmap.
    Bmp,
}

impl Format {
    /// Lower-case short name: "jpeg", "png", "webp", "gif", "tiff", "avif", "heic", "bmp".
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::WebP => "webp",
            Format::Gif => "gif",
            Format::Tiff => "tiff",
            Format::Avif => "avif",
            Format::Heic => "heic",
            Format::Bmp => "bmp",
        }
    }

    /// The IANA media type, e.g. "image/jpeg".
    pub fn mime(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::WebP => "image/webp",
            Format::Gif => "image/gif",
            Format::Tiff => "image/tiff",
            Format::Avif => "image/avif",
            Format::Heic => "image/heic",
            Format::Bmp => "image/bmp",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bytes of the file start that [`sniff`] wants when the file has them.
pub const SNIFF_LEN: usize = 32;

/// Recognise a format by magic bytes (never by name). `prefix` is the first
/// bytes of the file (at least [`SNIFF_LEN`] when the file has that many).
pub fn sniff(prefix: &[u8]) -> Option<Format> {
    if prefix.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(Format::Jpeg);
    }
    if prefix.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(Format::Png);
    }
    if prefix.starts_with(b"GIF87a") || prefix.starts_with(b"GIF89a") {
        return Some(Format::Gif);
    }
    if prefix.len() >= 12 && prefix.starts_with(b"RIFF") && &prefix[8..12] == b"WEBP" {
        return Some(Format::WebP);
    }
    // Classic TIFF (42) and BigTIFF (43), both byte orders.
    if [b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"].iter().any(|magic| prefix.starts_with(*magic)) {
        return Some(Format::Tiff);
    }
    if prefix.len() >= 12 && &prefix[4..8] == b"ftyp" {
        return sniff_ftyp(prefix);
    }
    if is_bmp(prefix) {
        return Some(Format::Bmp);
    }
    None
}

/// Whether this build can decode the format: all but HEIC, which needs the
/// `heic` feature. AVIF and HEIC also need libheif at run time, which
/// [`crate::probe`] checks (refusing them with what to install).
pub fn is_decodable(format: Format) -> bool {
    format != Format::Heic || cfg!(feature = "heic")
}

/// Reads the brands of an ISO-BMFF `ftyp` box: AVIF wins over HEIF when both
/// are listed, since the image item is then AV1.
fn sniff_ftyp(prefix: &[u8]) -> Option<Format> {
    let box_len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    let end = box_len.clamp(12, prefix.len());
    // Major brand at 8..12, minor version at 12..16, compatible brands after.
    let brands = std::iter::once(&prefix[8..12]).chain(prefix.get(16..end).unwrap_or(&[]).chunks_exact(4));
    let mut heif = false;
    for brand in brands {
        match brand {
            b"avif" | b"avis" => return Some(Format::Avif),
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1" => heif = true,
            _ => {}
        }
    }
    heif.then_some(Format::Heic)
}

/// "BM" alone is too weak (text can start with it): also require a known
/// DIB header size at offset 14.
fn is_bmp(prefix: &[u8]) -> bool {
    if !prefix.starts_with(b"BM") || prefix.len() < 18 {
        return false;
    }
    let dib = u32::from_le_bytes([prefix[14], prefix[15], prefix[16], prefix[17]]);
    matches!(dib, 12 | 40 | 52 | 56 | 64 | 108 | 124)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_magic_alone_is_enough() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Format::Jpeg));
    }

    #[test]
    fn an_avif_brand_among_heif_brands_is_avif() {
        let mut ftyp = Vec::new();
        ftyp.extend_from_slice(&28u32.to_be_bytes());
        ftyp.extend_from_slice(b"ftypmif1\0\0\0\0mif1avifmiaf");

        assert_eq!(sniff(&ftyp), Some(Format::Avif));
    }

    #[test]
    fn a_heic_ftyp_is_heic() {
        let mut ftyp = Vec::new();
        ftyp.extend_from_slice(&24u32.to_be_bytes());
        ftyp.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");

        assert_eq!(sniff(&ftyp), Some(Format::Heic));
    }

    #[test]
    fn text_starting_with_bm_is_not_a_bitmap() {
        assert_eq!(sniff(b"BMW owners club meeting notes"), None);
    }

    #[test]
    fn empty_and_short_prefixes_are_unknown() {
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(&[0xFF, 0xD8]), None);
    }

    #[test]
    fn only_heic_may_be_not_decodable_and_only_without_the_feature() {
        assert!(is_decodable(Format::Jpeg));
        assert!(is_decodable(Format::Bmp));
        assert!(is_decodable(Format::Avif));
        assert_eq!(is_decodable(Format::Heic), cfg!(feature = "heic"));
    }
}
