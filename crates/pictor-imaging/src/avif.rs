//! Lossy AVIF encoding of previews (`PICTOR_PREVIEW_FORMATS`) through
//! libheif's AV1 encoder (libaom in Debian's libheif1), loaded at run time:
//! 8-bit 4:2:0, sRGB described by the file's colour box, no Exif or XMP.

use std::ffi::CStr;

use crate::decode::Raster;
use crate::error::ImagingError;
use crate::libheif::{self, Context, EncodeSettings};

/// libaom's effort through libheif's `speed`, 0 (slowest) to 9; libheif's
/// default is 6. On the 12 photos of the imaging benchmark at 2048 px and
/// quality 60 (BENCHMARKS.md, 2026-11-30), 9 is by far the fastest: 401 ms
/// in all (WebP method 2: 398 ms) for 714 KB, where 8 takes 1.0 s for
/// 732 KB and 6 takes 4.2 s for 673 KB.
const AOM_SPEED: &CStr = c"9";
/// Encoder threads: one, since the runner already works on as many jobs as
/// there are CPUs and libaom's threads would only compete with them.
const AOM_THREADS: &CStr = c"1";

/// Checks that this machine can decode AVIF: libheif loads and has an AV1
/// decoder.
///
/// # Errors
///
/// `Unsupported`, saying what to install.
pub fn avif_decoding_available() -> Result<(), ImagingError> {
    crate::decode::heif::ensure_decodable(crate::sniff::Format::Avif)
}

/// Checks that this machine can encode AVIF: libheif loads and has an AV1
/// encoder.
///
/// # Errors
///
/// `Unsupported`, saying what to install.
pub fn avif_encoding_available() -> Result<(), ImagingError> {
    libheif::require_codec(libheif::COMPRESSION_AV1, false, "AVIF encoding", "an AV1 encoder (libaom)")
}

/// Encodes an sRGB grey or RGB raster as a lossy AVIF at `quality`
/// (libheif's 1..=100 scale, which runs lower than libjpeg's: 60 there is
/// about as faithful as WebP at 80).
///
/// # Errors
///
/// `Unsupported` when libheif or its AV1 encoder is missing, `Internal` when
/// the raster is still CMYK or the encoder fails.
pub(crate) fn encode_avif(raster: &Raster, quality: u8) -> Result<Vec<u8>, ImagingError> {
    avif_encoding_available()?;
    let rgb = raster.rgb_pixels("AVIF")?;
    encode_heif(&rgb, raster.width, raster.height, libheif::COMPRESSION_AV1, quality, 1)
}

/// Encodes tightly packed RGB as AVIF (`COMPRESSION_AV1`) or HEIC
/// (`COMPRESSION_HEVC`) that displays under EXIF-style `orientation`.
pub(crate) fn encode_heif(
    rgb: &[u8],
    width: u32,
    height: u32,
    compression: std::ffi::c_int,
    quality: u8,
    orientation: u8,
) -> Result<Vec<u8>, ImagingError> {
    let name = if compression == libheif::COMPRESSION_HEVC { "HEIC" } else { "AVIF" };
    let failed = |e: libheif::Error| match e {
        libheif::Error::Unavailable(reason) => libheif::unavailable(&format!("{name} encoding"), reason),
        libheif::Error::Heif(failure) => ImagingError::Internal(format!("{name} encoding failed: {failure}")),
        libheif::Error::Io(io) => ImagingError::Io(io),
    };
    let mut context = Context::new(width.max(height)).map_err(failed)?;
    let parameters: &[(&CStr, &CStr)] = if compression == libheif::COMPRESSION_AV1 {
        &[(c"speed", AOM_SPEED), (c"threads", AOM_THREADS), (c"chroma", c"420")]
    } else {
        &[]
    };
    let settings = EncodeSettings { compression, quality, parameters, orientation };
    context.encode_rgb(rgb, width, height, &settings).map_err(|e| failed(e.into()))
}
