//! AVIF (always) and HEIC (cargo feature `heic`) through libheif, loaded at
//! run time: header sizes for probe, then a full-size 8-bit RGB decode with
//! libheif applying the file's rotation, mirroring and crop. Alpha is
//! flattened here; the ICC profile, or an `nclx` description turned into
//! one, goes to the colour stage like any other format's.

use std::io::{BufRead, ErrorKind, Read, Seek, SeekFrom};

use super::{Decoded, PixelLayout, Raster};
use crate::colour::{flatten, icc_from_cicp};
use crate::error::ImagingError;
use crate::libheif::{self, ColourProfile, Context, Failure};
use crate::probe::{ImageInfo, Limits};
use crate::sniff::Format;

/// Display name of a format this module reads, for messages.
fn name(format: Format) -> &'static str {
    if format == Format::Heic { "HEIC" } else { "AVIF" }
}

/// Refuses a format this build or this machine cannot decode, saying what
/// is missing: the `heic` feature, libheif itself, or its codec.
pub(crate) fn ensure_decodable(format: Format) -> Result<(), ImagingError> {
    let name = name(format);
    if format == Format::Heic && !cfg!(feature = "heic") {
        return Err(ImagingError::Unsupported(
            "HEIC images are not supported by this build (it was built without the `heic` feature)".into(),
        ));
    }
    let (compression, codec) = match format {
        Format::Heic => (libheif::COMPRESSION_HEVC, "an HEVC decoder (libde265)"),
        _ => (libheif::COMPRESSION_AV1, "an AV1 decoder (dav1d or libaom)"),
    };
    libheif::require_codec(compression, true, &format!("{name} decoding"), codec)
}

/// Width, height and orientation from the file's boxes, without decoding.
/// The size is as displayed (libheif applies `irot`, `imir` and `clap` to
/// it and to the pixels alike), so the orientation is always 1; an Exif
/// Orientation in a HEIF file only repeats `irot`/`imir` and is ignored.
pub(crate) fn header<R: BufRead + Seek>(
    reader: &mut R,
    format: Format,
    limits: &Limits,
) -> Result<(u32, u32, u8), ImagingError> {
    ensure_decodable(format)?;
    check_box_sizes(reader, format)?;
    let size = libheif::stream_primary_size(reader, limits.max_dimension).map_err(|e| error(e, format, limits))?;
    let (width, height) = dimensions(size, format)?;
    Ok((width, height, 1))
}

/// Largest `meta` box (or other top-level box but the image data) the probe
/// hands to libheif. libheif parses such boxes whole and sizes some of its
/// buffers by what they declare (an ICC profile in `colr`, item tables), so
/// this bounds what a hostile header makes it allocate. Real ones are a
/// few KB: an iPhone's 48-tile HEIC has a 5 KB `meta`.
pub(crate) const MAX_HEADER_BOX: u64 = 256 * 1024;
/// Most top-level boxes walked; real files have three to five.
const MAX_TOP_LEVEL_BOXES: usize = 64;

/// Walks the file's top-level boxes by their headers alone (seeking over
/// their bodies, allocating nothing) and refuses one other than the image
/// data (`mdat`) or padding (`free`, `skip`) that is larger than
/// [`MAX_HEADER_BOX`], before libheif reads any of them. The reader is
/// left where it was.
fn check_box_sizes<R: Read + Seek>(reader: &mut R, format: Format) -> Result<(), ImagingError> {
    let start = reader.stream_position()?;
    let end = reader.seek(SeekFrom::End(0))?;
    let mut at = start;
    let damaged = |why: String| ImagingError::Corrupt(format!("the {} header is damaged: {why}", name(format)));
    for _ in 0..MAX_TOP_LEVEL_BOXES {
        if at >= end {
            break;
        }
        reader.seek(SeekFrom::Start(at))?;
        let mut head = [0u8; 16];
        match reader.read_exact(&mut head[..8]) {
            Ok(()) => {}
            // Fewer than 8 bytes left: libheif says what is wrong with that.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let kind = [head[4], head[5], head[6], head[7]];
        let size = match u32::from_be_bytes([head[0], head[1], head[2], head[3]]) {
            0 => end - at,
            1 => {
                reader.read_exact(&mut head[8..])?;
                u64::from_be_bytes([head[8], head[9], head[10], head[11], head[12], head[13], head[14], head[15]])
            }
            size => u64::from(size),
        };
        if size < 8 {
            return Err(damaged(format!("a box states a size of {size} bytes")));
        }
        if !matches!(&kind, b"mdat" | b"free" | b"skip") && size > MAX_HEADER_BOX {
            return Err(damaged(format!(
                "its '{}' box is {size} bytes; a header box over {} KiB is not read",
                String::from_utf8_lossy(&kind),
                MAX_HEADER_BOX / 1024
            )));
        }
        at = at.saturating_add(size);
    }
    reader.seek(SeekFrom::Start(start))?;
    Ok(())
}

/// Decodes the primary image at full size, upright, alpha flattened onto
/// `background`; refuses it over `limits` before any pixel is decoded.
pub(crate) fn decode(
    data: &[u8],
    info: &ImageInfo,
    background: [u8; 3],
    limits: &Limits,
) -> Result<Decoded, ImagingError> {
    let format = info.format;
    ensure_decodable(format)?;
    let failed = |e: libheif::Error| error(e, format, limits);
    let mut context = Context::new(limits.max_dimension).map_err(failed)?;
    context.read_memory(data).map_err(|e| failed(e.into()))?;
    let image = context.primary_image().map_err(|e| failed(e.into()))?;
    let (width, height) = dimensions(image.size(), format)?;
    limits.check(width, height)?;
    let alpha = image.has_alpha();
    let icc = match image.colour_profile() {
        Some(ColourProfile::Icc(icc)) => Some(icc),
        Some(ColourProfile::Nclx { primaries, transfer, .. }) => icc_from_cicp(primaries, transfer),
        None => None,
    };
    let (pixels, decoded_w, decoded_h) = image.decode(alpha).map_err(|e| failed(e.into()))?;
    // The header's size (`ispe`) is what probe and the limits saw: coded
    // data of another size is damage, not a picture to stretch.
    if (decoded_w, decoded_h) != (width, height) {
        return Err(ImagingError::Corrupt(format!(
            "the {} header says {width}x{height} but its image data is {decoded_w}x{decoded_h}",
            name(format)
        )));
    }
    let pixels = if alpha { flatten(&pixels, background) } else { pixels };
    let raster = Raster::new(width, height, PixelLayout::Rgb, pixels)?;
    Ok(Decoded { raster, icc })
}

/// The handle's size as `u32`s, refusing an empty or negative one.
fn dimensions((width, height): (i64, i64), format: Format) -> Result<(u32, u32), ImagingError> {
    match (u32::try_from(width), u32::try_from(height)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(ImagingError::Corrupt(format!("the {} header gives a size of {width}x{height}", name(format)))),
    }
}

/// Maps a libheif error to the variant a caller must act on.
fn error(error: libheif::Error, format: Format, limits: &Limits) -> ImagingError {
    let name = name(format);
    let failure = match error {
        libheif::Error::Unavailable(reason) => return libheif::unavailable(&format!("{name} decoding"), reason),
        libheif::Error::Io(io) if crate::probe::is_over_budget(&io) => {
            return ImagingError::Corrupt(format!("the {name} header is damaged: {io}"));
        }
        libheif::Error::Io(io) => return ImagingError::Io(io),
        libheif::Error::Heif(failure) => failure,
    };
    let Failure { code, subcode, message } = &failure;
    match (*code, *subcode) {
        (_, libheif::SUBERROR_SECURITY_LIMIT) => too_large(message, limits).unwrap_or_else(|| {
            ImagingError::Unsupported(format!("the {name} is over libheif's safety limits: {message}"))
        }),
        (_, libheif::SUBERROR_END_OF_DATA) => {
            ImagingError::Corrupt(format!("the {name} data ends early (truncated file?)"))
        }
        (libheif::ERROR_INVALID_INPUT | libheif::ERROR_DECODER_PLUGIN, _) => {
            ImagingError::Corrupt(format!("the {name} data is damaged: {message}"))
        }
        (libheif::ERROR_UNSUPPORTED_FILETYPE | libheif::ERROR_UNSUPPORTED_FEATURE, _) => {
            ImagingError::Unsupported(format!("this kind of {name} is not supported: {message}"))
        }
        (libheif::ERROR_MEMORY_ALLOCATION, _) => {
            ImagingError::Unsupported(format!("the {name} needs more memory than allowed: {message}"))
        }
        _ => ImagingError::Internal(format!("libheif failed on the {name}: {failure}")),
    }
}

/// `TooLarge` with the size libheif names in its security-limit message
/// ("... image size 70000x10 exceeds ..."), when it names one.
fn too_large(message: &str, limits: &Limits) -> Option<ImagingError> {
    message.split(|c: char| !c.is_ascii_alphanumeric()).find_map(|word| {
        let (w, h) = word.split_once('x')?;
        let (width, height) = (w.parse().ok()?, h.parse().ok()?);
        Some(ImagingError::TooLarge { width, height, max_pixels: limits.max_pixels })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_security_limit_message_with_a_size_becomes_too_large() {
        let message = "Security limit exceeded: Image size 70000x10 exceeds the maximum image size 65000x65000";

        let error = too_large(message, &Limits::default());

        assert!(matches!(error, Some(ImagingError::TooLarge { width: 70000, height: 10, .. })), "{error:?}");
    }

    #[test]
    fn heic_without_the_feature_is_refused_with_the_reason() {
        let result = ensure_decodable(Format::Heic);

        if cfg!(feature = "heic") {
            assert!(!matches!(&result, Err(ImagingError::Unsupported(m)) if m.contains("feature")), "{result:?}");
        } else {
            assert!(matches!(&result, Err(ImagingError::Unsupported(m)) if m.contains("`heic` feature")), "{result:?}");
        }
    }
}
