//! The one error type of the imaging layer: what went wrong with an image, in
//! words a person can act on, plus the variants a caller must tell apart
//! (refuse the upload, fail the job for good, or retry).

/// Everything that can go wrong between bytes in and assets out.
#[derive(thiserror::Error, Debug)]
pub enum ImagingError {
    /// Not an image this build can read: unknown magic bytes, or a format
    /// recognised but not decodable here (HEIC without the `heic` feature,
    /// AVIF or HEIC without libheif installed: the message says what to
    /// install). Permanent.
    #[error("{0}")]
    Unsupported(String),
    /// The header or the compressed data is damaged or truncated. Permanent.
    #[error("{0}")]
    Corrupt(String),
    /// The header declares more pixels (or a longer edge) than the limits
    /// allow; refused before any allocation proportional to the pixel count.
    #[error("{}", too_large_message(*width, *height, *max_pixels))]
    TooLarge {
        /// Stored width declared by the header.
        width: u32,
        /// Stored height declared by the header.
        height: u32,
        /// The pixel limit in force.
        max_pixels: u64,
    },
    /// Reading the input failed (only from `probe`, which takes a reader).
    #[error("could not read the image: {0}")]
    Io(#[from] std::io::Error),
    /// A failure of this library or of an encoder, not of the input; worth a
    /// retry and a bug report.
    #[error("internal imaging error: {0}")]
    Internal(String),
}

/// Formats a pixel count in megapixels: one decimal below 10, whole above.
fn megapixels(pixels: u64) -> String {
    let mpx = pixels as f64 / 1_000_000.0;
    if mpx < 10.0 { format!("{mpx:.1}") } else { format!("{mpx:.0}") }
}

/// The `TooLarge` message, e.g. "image is 30000x30000 (900 Mpx), over the limit of 100 Mpx".
fn too_large_message(width: u32, height: u32, max_pixels: u64) -> String {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        format!(
            "image is {width}x{height} ({} Mpx), over the limit of {} Mpx",
            megapixels(pixels),
            megapixels(max_pixels)
        )
    } else {
        format!("image is {width}x{height}, an edge longer than the limit allows")
    }
}

/// The text of a panic's payload (a `&str` or a `String`, as `panic!`
/// makes them), or `"unknown panic"`: the one reader of panic payloads
/// for this crate and the service's job runner.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_message_gives_both_sizes_in_megapixels() {
        let error = ImagingError::TooLarge { width: 30000, height: 30000, max_pixels: 100_000_000 };

        assert_eq!(error.to_string(), "image is 30000x30000 (900 Mpx), over the limit of 100 Mpx");
    }

    #[test]
    fn too_large_message_names_the_edge_when_only_an_edge_is_over() {
        let error = ImagingError::TooLarge { width: 70000, height: 10, max_pixels: 100_000_000 };

        assert!(error.to_string().contains("edge"), "{error}");
    }
}
