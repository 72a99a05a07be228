//! Header-only inspection: dimensions and EXIF orientation, checked against
//! the pixel limits before anything is decoded (DESIGN invariant 7).
//!
//! A probe runs on every upload, before anything else has vetted the file,
//! so its cost is bounded whatever the file says: it reads at most
//! [`PROBE_READ_BUDGET`] bytes (seeking over the rest), and nothing it
//! allocates is sized by a count the file states beyond that (the JPEG,
//! PNG and TIFF walks are by hand for that reason; the `image` decoders
//! run under an allocation limit; libheif sees only the bytes the budget
//! lets through). `tests/imaging/probe.rs` checks both bounds on hostile
//! headers of every format.

use std::io::{BufRead, ErrorKind, Read, Seek, SeekFrom};

use crate::decode::heif;
use crate::decode::other::{image_error, image_format};
use crate::error::ImagingError;
use crate::sniff::{Format, SNIFF_LEN, is_decodable, sniff};

/// Default for [`Limits::max_pixels`]: 100 Mpx (a 300 MB RGB buffer).
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;
/// Default for [`Limits::max_dimension`]: 65,000 px, under JPEG's own 65,535 edge.
pub const DEFAULT_MAX_DIMENSION: u32 = 65_000;

/// Most bytes a probe reads from a file: far more than any real header
/// (a photo's EXIF, ICC profile and XMP before its frame header are a few
/// hundred KB at most), far less than a hostile one may claim.
pub const PROBE_READ_BUDGET: u64 = 2 << 20;
/// Most memory the `image` crate's header readers (WebP, GIF, BMP) may
/// allocate while a probe runs.
pub const PROBE_ALLOC_BUDGET: u64 = 1 << 20;

/// Size limits applied from the header, before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest stored width × height accepted.
    pub max_pixels: u64,
    /// Longest edge accepted, in either direction.
    pub max_dimension: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_pixels: DEFAULT_MAX_PIXELS, max_dimension: DEFAULT_MAX_DIMENSION }
    }
}

impl Limits {
    /// Refuses a width × height over either limit.
    pub(crate) fn check(&self, width: u32, height: u32) -> Result<(), ImagingError> {
        let pixels = u64::from(width) * u64::from(height);
        if pixels > self.max_pixels || width > self.max_dimension || height > self.max_dimension {
            return Err(ImagingError::TooLarge { width, height, max_pixels: self.max_pixels });
        }
        Ok(())
    }
}

/// What the header says about an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// The format recognised by magic bytes.
    pub format: Format,
    /// Width as stored, before EXIF orientation (AVIF/HEIC: as displayed,
    /// since libheif applies their rotation and mirroring boxes).
    pub width: u32,
    /// Height as stored, before EXIF orientation (AVIF/HEIC: as displayed).
    pub height: u32,
    /// EXIF orientation 1..=8; 1 when absent or invalid, and always 1 for
    /// AVIF/HEIC.
    pub orientation: u8,
}

impl ImageInfo {
    /// Width and height as displayed, i.e. swapped for orientations 5..=8.
    pub fn display_size(&self) -> (u32, u32) {
        if (5..=8).contains(&self.orientation) { (self.height, self.width) } else { (self.width, self.height) }
    }
}

/// Read only the header (dimensions, EXIF orientation) from a reader; never
/// decodes pixels. The reader is read from its current position.
///
/// # Errors
///
/// `Unsupported` for unknown magic bytes or a format this build cannot decode
/// (AVIF or HEIC without libheif: the message says what to install),
/// `Corrupt` for a damaged or truncated header, `TooLarge` when the declared
/// size is over `limits` (before any allocation proportional to the pixel
/// count), `Io` when reading fails.
pub fn probe<R: BufRead + Seek>(reader: R, limits: &Limits) -> Result<ImageInfo, ImagingError> {
    let mut reader = Budgeted::new(reader, PROBE_READ_BUDGET);
    let start = reader.stream_position()?;
    let mut prefix = [0u8; SNIFF_LEN];
    let prefix_len = read_up_to(&mut reader, &mut prefix)?;
    reader.seek(SeekFrom::Start(start))?;
    let format = recognise(&prefix[..prefix_len])?;
    let (width, height, orientation) = match format {
        Format::Jpeg => jpeg_header(&mut reader).map_err(|e| truncated(e, "JPEG header"))?,
        Format::Png => png_header(&mut reader).map_err(|e| truncated(e, "PNG header"))?,
        Format::Avif | Format::Heic => heif::header(&mut reader, format, limits)?,
        Format::Tiff => tiff_header(&mut reader).map_err(|e| truncated(e, "TIFF header"))?,
        _ => generic_header(reader, format)?,
    };
    if width == 0 || height == 0 {
        return Err(ImagingError::Corrupt(format!(
            "the {} header gives a size of {width}x{height}",
            format.as_str().to_uppercase()
        )));
    }
    limits.check(width, height)?;
    Ok(ImageInfo { format, width, height, orientation })
}

/// A reader that fails with [`OverBudget`] once more than its budget of
/// bytes has been read through it; seeking is free, so a header walk can
/// skip what it does not need.
struct Budgeted<R> {
    inner: R,
    left: u64,
}

/// The error a [`Budgeted`] reader gives past its budget.
#[derive(Debug, thiserror::Error)]
#[error("the header is larger than the {} KiB a probe reads", PROBE_READ_BUDGET / 1024)]
pub(crate) struct OverBudget;

impl<R> Budgeted<R> {
    fn new(inner: R, budget: u64) -> Self {
        Self { inner, left: budget }
    }

    fn over() -> std::io::Error {
        std::io::Error::new(ErrorKind::InvalidData, OverBudget)
    }
}

impl<R: Read> Read for Budgeted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 && !buf.is_empty() {
            return Err(Self::over());
        }
        let allowed = usize::try_from(self.left).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(&mut buf[..allowed])?;
        self.left -= n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Budgeted<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.left == 0 {
            return Err(Self::over());
        }
        let left = usize::try_from(self.left).unwrap_or(usize::MAX);
        let buf = self.inner.fill_buf()?;
        Ok(&buf[..buf.len().min(left)])
    }

    fn consume(&mut self, amount: usize) {
        self.left = self.left.saturating_sub(amount as u64);
        self.inner.consume(amount);
    }
}

impl<R: Seek> Seek for Budgeted<R> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(to)
    }

    fn stream_position(&mut self) -> std::io::Result<u64> {
        self.inner.stream_position()
    }

    fn seek_relative(&mut self, offset: i64) -> std::io::Result<()> {
        self.inner.seek_relative(offset)
    }
}

/// Whether an I/O error is a [`Budgeted`] reader's refusal.
pub(crate) fn is_over_budget(error: &std::io::Error) -> bool {
    error.get_ref().is_some_and(|inner| inner.is::<OverBudget>())
}

/// Sniffs and refuses what this build cannot decode, with a message for a person.
pub(crate) fn recognise(prefix: &[u8]) -> Result<Format, ImagingError> {
    if prefix.is_empty() {
        return Err(ImagingError::Unsupported("the file is empty".into()));
    }
    let format = sniff(prefix).ok_or_else(|| {
        ImagingError::Unsupported("not an image in a supported format (JPEG, PNG, WebP, GIF, TIFF, BMP or AVIF)".into())
    })?;
    if !is_decodable(format) {
        // Only HEIC without the `heic` feature: the message says so.
        heif::ensure_decodable(format)?;
    }
    Ok(format)
}

/// Fills `buf` as far as the reader allows; returns the count read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// An early end of a header is damage, not an I/O failure.
fn truncated(error: std::io::Error, what: &str) -> ImagingError {
    if error.kind() == ErrorKind::UnexpectedEof {
        ImagingError::Corrupt(format!("the {what} ends early (truncated file?)"))
    } else if error.kind() == ErrorKind::InvalidData {
        ImagingError::Corrupt(format!("the {what} is damaged: {error}"))
    } else {
        ImagingError::Io(error)
    }
}

fn corrupt(message: &str) -> std::io::Error {
    std::io::Error::new(ErrorKind::InvalidData, message.to_owned())
}

fn read_u8(reader: &mut impl Read) -> std::io::Result<u8> {
    let mut byte = [0u8; 1];
    reader.read_exact(&mut byte)?;
    Ok(byte[0])
}

fn read_be_u16(reader: &mut impl Read) -> std::io::Result<u16> {
    let mut bytes = [0u8; 2];
    reader.read_exact(&mut bytes)?;
    Ok(u16::from_be_bytes(bytes))
}

fn read_be_u32(reader: &mut impl Read) -> std::io::Result<u32> {
    let mut bytes = [0u8; 4];
    reader.read_exact(&mut bytes)?;
    Ok(u32::from_be_bytes(bytes))
}

/// Walks the JPEG markers up to the frame header (SOFn), reading the EXIF
/// APP1 segment on the way. Returns (width, height, orientation).
fn jpeg_header<R: BufRead + Seek>(reader: &mut R) -> std::io::Result<(u32, u32, u8)> {
    let mut soi = [0u8; 2];
    reader.read_exact(&mut soi)?;
    let mut orientation = None;
    loop {
        if read_u8(reader)? != 0xFF {
            return Err(corrupt("no marker where one was expected"));
        }
        let mut code = read_u8(reader)?;
        while code == 0xFF {
            code = read_u8(reader)?;
        }
        match code {
            // Stand-alone markers carry no length.
            0x01 | 0xD0..=0xD8 => continue,
            0xD9 => return Err(corrupt("the image ends before its frame header")),
            0xDA => return Err(corrupt("image data starts before the frame header")),
            // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
            0xC0..=0xCF if !matches!(code, 0xC4 | 0xC8 | 0xCC) => {
                let _length = read_be_u16(reader)?;
                let _precision = read_u8(reader)?;
                let height = read_be_u16(reader)?;
                let width = read_be_u16(reader)?;
                return Ok((u32::from(width), u32::from(height), orientation.unwrap_or(1)));
            }
            _ => {
                let length = read_be_u16(reader)?;
                if length < 2 {
                    return Err(corrupt("a segment has an impossible length"));
                }
                let body_len = usize::from(length - 2);
                if code == 0xE1 && orientation.is_none() {
                    let mut body = vec![0u8; body_len];
                    reader.read_exact(&mut body)?;
                    if let Some(tiff) = body.strip_prefix(b"Exif\0\0") {
                        orientation = Some(exif_orientation(tiff));
                    }
                } else {
                    reader.seek_relative(body_len as i64)?;
                }
            }
        }
    }
}

/// Reads IHDR, then the chunks before the first IDAT for an `eXIf` chunk.
/// Returns (width, height, orientation).
fn png_header<R: BufRead + Seek>(reader: &mut R) -> std::io::Result<(u32, u32, u8)> {
    reader.seek_relative(8)?;
    let ihdr_len = read_be_u32(reader)?;
    let mut kind = [0u8; 4];
    reader.read_exact(&mut kind)?;
    if &kind != b"IHDR" || ihdr_len != 13 {
        return Err(corrupt("the first chunk is not a valid IHDR"));
    }
    let width = read_be_u32(reader)?;
    let height = read_be_u32(reader)?;
    // Bit depth, colour type, compression, filter, interlace, then the CRC.
    reader.seek_relative(5 + 4)?;
    let mut orientation = 1;
    loop {
        let length = read_be_u32(reader)?;
        reader.read_exact(&mut kind)?;
        match &kind {
            b"IDAT" | b"IEND" => break,
            // Bounded: an eXIf chunk larger than a JPEG APP1 is not real EXIF.
            b"eXIf" if length <= 65_535 => {
                let mut body = vec![0u8; length as usize];
                reader.read_exact(&mut body)?;
                let tiff = body.strip_prefix(b"Exif\0\0").unwrap_or(&body);
                orientation = exif_orientation(tiff);
                break;
            }
            _ => reader.seek_relative(i64::from(length) + 4)?,
        }
    }
    Ok((width, height, orientation))
}

/// Most directory entries the TIFF probe reads before giving up: real files
/// have a few dozen.
const MAX_TIFF_ENTRIES: u64 = 4096;

/// Walks the first directory (IFD0) of a TIFF or BigTIFF for its width,
/// height and orientation, entry by entry, allocating nothing: the tiff
/// crate's decoder reads whole tag arrays (strip offsets and the like) when
/// it is built, sized by counts the file states, so a hostile count could
/// make it allocate hundreds of MB before a single pixel. Returns (width,
/// height, orientation).
fn tiff_header<R: Read + Seek>(reader: &mut R) -> std::io::Result<(u32, u32, u8)> {
    let start = reader.stream_position()?;
    let mut order = [0u8; 2];
    reader.read_exact(&mut order)?;
    let little = match &order {
        b"II" => true,
        b"MM" => false,
        _ => return Err(corrupt("no byte order mark")),
    };
    let read = |reader: &mut R, len: usize| -> std::io::Result<u64> {
        let mut bytes = [0u8; 8];
        reader.read_exact(&mut bytes[..len])?;
        let mut value = 0u64;
        for i in 0..len {
            let byte = u64::from(if little { bytes[len - 1 - i] } else { bytes[i] });
            value = (value << 8) | byte;
        }
        Ok(value)
    };
    // Classic TIFF: 2-byte counts, 4-byte offsets, 12-byte entries; BigTIFF: 8, 8, 20.
    let (count_len, offset_len) = match read(reader, 2)? {
        42 => (2, 4),
        43 if read(reader, 2)? == 8 && read(reader, 2)? == 0 => (8, 8),
        _ => return Err(corrupt("not a TIFF version this reads")),
    };
    let first_ifd = read(reader, offset_len)?;
    reader.seek(SeekFrom::Start(start.checked_add(first_ifd).ok_or_else(|| corrupt("bad IFD offset"))?))?;
    let entries = read(reader, count_len)?;
    if entries > MAX_TIFF_ENTRIES {
        return Err(corrupt("the first directory claims too many entries"));
    }
    let (mut width, mut height, mut orientation) = (None, None, 1);
    for _ in 0..entries {
        let tag = read(reader, 2)?;
        let kind = read(reader, 2)?;
        let count = read(reader, offset_len)?;
        // A SHORT (3) or LONG (4) single value sits in the entry itself,
        // left-justified; any other shape is not one these tags take.
        let value = match (kind, count) {
            (3, 1) => {
                let value = read(reader, 2)?;
                read(reader, offset_len - 2)?;
                Some(value)
            }
            (4, 1) => {
                let value = read(reader, 4)?;
                read(reader, offset_len - 4)?;
                Some(value)
            }
            _ => {
                read(reader, offset_len)?;
                None
            }
        };
        let as_u32 = |v: Option<u64>| v.and_then(|v| u32::try_from(v).ok());
        match tag {
            256 => width = as_u32(value),
            257 => height = as_u32(value),
            274 => orientation = value.and_then(|v| u8::try_from(v).ok()).filter(|v| (1..=8).contains(v)).unwrap_or(1),
            _ => {}
        }
    }
    match (width, height) {
        (Some(width), Some(height)) => Ok((width, height, orientation)),
        _ => Err(corrupt("the first directory has no single width and height")),
    }
}

/// Dimensions and orientation through the `image` crate's decoders, which
/// read only their headers when constructed.
fn generic_header<R: BufRead + Seek>(reader: R, format: Format) -> Result<(u32, u32, u8), ImagingError> {
    use image::ImageDecoder;

    let Some(image_format) = image_format(format) else {
        return Err(ImagingError::Unsupported(format!("{format} images are not supported yet")));
    };
    let mut image_reader = image::ImageReader::with_format(reader, image_format);
    // The pixel limits are applied by `Limits::check` on the dimensions just
    // read; what the header readers may allocate is bounded here.
    let mut header_limits = image::Limits::no_limits();
    header_limits.max_alloc = Some(PROBE_ALLOC_BUDGET);
    image_reader.limits(header_limits);
    let mut decoder = image_reader.into_decoder().map_err(|e| image_error(e, format))?;
    let (width, height) = decoder.dimensions();
    let orientation = decoder.orientation().map(|o| o.to_exif()).unwrap_or(1);
    Ok((width, height, orientation))
}

/// EXIF Orientation from a TIFF-structured EXIF block; 1 when absent or invalid.
pub(crate) fn exif_orientation(tiff: &[u8]) -> u8 {
    let Ok(exif) = exif::Reader::new().read_raw(tiff.to_vec()) else {
        return 1;
    };
    exif.get_field(exif::Tag::Orientation, exif::In::PRIMARY)
        .and_then(|field| field.value.get_uint(0))
        .and_then(|value| u8::try_from(value).ok())
        .filter(|value| (1..=8).contains(value))
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn display_size_swaps_only_for_orientations_five_to_eight() {
        let mut info = ImageInfo { format: Format::Jpeg, width: 30, height: 20, orientation: 1 };
        for orientation in 1..=8u8 {
            info.orientation = orientation;
            let expected = if orientation >= 5 { (20, 30) } else { (30, 20) };
            assert_eq!(info.display_size(), expected, "orientation {orientation}");
        }
    }

    #[test]
    fn a_jpeg_cut_inside_its_header_is_corrupt() {
        let bytes = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F'];

        let result = probe(Cursor::new(&bytes[..]), &Limits::default());

        assert!(matches!(result, Err(ImagingError::Corrupt(_))), "{result:?}");
    }

    #[test]
    fn limits_refuse_an_edge_over_max_dimension() {
        let limits = Limits { max_pixels: u64::MAX, max_dimension: 1000 };

        assert!(matches!(limits.check(1001, 1), Err(ImagingError::TooLarge { .. })));
        assert!(limits.check(1000, 1000).is_ok());
    }
}
