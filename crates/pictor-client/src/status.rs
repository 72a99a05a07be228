//! What an image's state means to a person: labels and readiness.

use crate::models::{Image, ImageStatus};

/// Human text for an image state, as a UI or the CLI shows it.
pub fn status_label(status: ImageStatus) -> &'static str {
    match status {
        ImageStatus::Uploaded => "Uploading",
        ImageStatus::Ingested => "Queued for processing",
        ImageStatus::Processing => "Making thumbnails and preview",
        ImageStatus::Stored => "Ready",
        ImageStatus::Failed => "Failed",
    }
}

/// True once the original and every asset exist, so that its thumbnail and
/// preview URLs can be shown.
pub fn is_image_ready(image: &Image) -> bool {
    image.status == ImageStatus::Stored
}

/// True once the image will not change by itself any more (STORED or FAILED).
pub fn is_settled(status: ImageStatus) -> bool {
    matches!(status, ImageStatus::Stored | ImageStatus::Failed)
}
