//! PNG, WebP, GIF (first frame), TIFF (first page) and BMP through the `image`
//! crate, with its allocation limits on; 16-bit samples become 8-bit and
//! alpha is flattened onto the background here.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::{DynamicImage, ImageDecoder, ImageError};

use super::{Decoded, PixelLayout, Raster};
use crate::colour::flatten;
use crate::error::ImagingError;
use crate::probe::{ImageInfo, Limits};
use crate::sniff::Format;

/// Bytes per pixel the `image` decoders may need at most (16-bit RGBA), for
/// their allocation limit.
const MAX_BYTES_PER_PIXEL: u64 = 8;

/// The `image` crate's name for a format this module decodes.
pub(crate) fn image_format(format: Format) -> Option<image::ImageFormat> {
    match format {
        Format::Png => Some(image::ImageFormat::Png),
        Format::WebP => Some(image::ImageFormat::WebP),
        Format::Gif => Some(image::ImageFormat::Gif),
        Format::Tiff => Some(image::ImageFormat::Tiff),
        Format::Bmp => Some(image::ImageFormat::Bmp),
        Format::Jpeg | Format::Avif | Format::Heic => None,
    }
}

/// Maps an `image` error to the variant a caller must act on.
pub(crate) fn image_error(error: ImageError, format: Format) -> ImagingError {
    let name = format.as_str().to_uppercase();
    match error {
        ImageError::Decoding(e) => ImagingError::Corrupt(format!("the {name} data is damaged: {e}")),
        ImageError::Unsupported(e) => ImagingError::Unsupported(format!("this kind of {name} is not supported: {e}")),
        ImageError::Limits(e) => ImagingError::Unsupported(format!("the {name} needs more memory than allowed: {e}")),
        ImageError::Parameter(e) => ImagingError::Corrupt(format!("the {name} data is damaged: {e}")),
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            ImagingError::Corrupt(format!("the {name} data ends early (truncated file?)"))
        }
        ImageError::IoError(e) => ImagingError::Corrupt(format!("the {name} data is damaged: {e}")),
        ImageError::Encoding(e) => ImagingError::Internal(e.to_string()),
    }
}

/// Decodes the whole image (first frame or page) at full size.
pub(crate) fn decode(
    data: &[u8],
    info: &ImageInfo,
    background: [u8; 3],
    limits: &Limits,
) -> Result<Decoded, ImagingError> {
    catch_unwind(AssertUnwindSafe(|| decode_unguarded(data, info, background, limits)))
        .unwrap_or_else(|_| Err(ImagingError::Internal(format!("the {} decoder panicked", info.format))))
}

fn decode_unguarded(
    data: &[u8],
    info: &ImageInfo,
    background: [u8; 3],
    limits: &Limits,
) -> Result<Decoded, ImagingError> {
    let format = info.format;
    let image_format = image_format(format)
        .ok_or_else(|| ImagingError::Unsupported(format!("{format} images are not supported yet")))?;
    let too_large = || ImagingError::TooLarge { width: info.width, height: info.height, max_pixels: limits.max_pixels };
    let mut reader = image::ImageReader::with_format(Cursor::new(data), image_format);
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_dimension);
    image_limits.max_image_height = Some(limits.max_dimension);
    image_limits.max_alloc = Some(limits.max_pixels.saturating_mul(MAX_BYTES_PER_PIXEL));
    reader.limits(image_limits);
    let mut decoder = reader.into_decoder().map_err(|e| match e {
        ImageError::Limits(_) => too_large(),
        e => image_error(e, format),
    })?;
    let (width, height) = decoder.dimensions();
    limits.check(width, height)?;
    // A broken profile is ignored rather than failing the image.
    let icc = decoder.icc_profile().ok().flatten();
    let image = DynamicImage::from_decoder(decoder).map_err(|e| match e {
        ImageError::Limits(_) => too_large(),
        e => image_error(e, format),
    })?;
    let raster = to_raster(image, background)?;
    Ok(Decoded { raster, icc })
}

/// 8-bit grey or RGB, alpha flattened onto `background`.
fn to_raster(image: DynamicImage, background: [u8; 3]) -> Result<Raster, ImagingError> {
    let (width, height) = (image.width(), image.height());
    match image {
        DynamicImage::ImageLuma8(buffer) => Raster::new(width, height, PixelLayout::Gray, buffer.into_raw()),
        DynamicImage::ImageLuma16(_) => Raster::new(width, height, PixelLayout::Gray, image.into_luma8().into_raw()),
        image if image.color().has_alpha() => {
            let rgba = image.into_rgba8().into_raw();
            Raster::new(width, height, PixelLayout::Rgb, flatten(&rgba, background))
        }
        image => Raster::new(width, height, PixelLayout::Rgb, image.into_rgb8().into_raw()),
    }
}
