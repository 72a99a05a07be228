//! The gallery, upload and image pages.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pictor_client::models::{Image, ImageStatus};
use serde::Deserialize;

use super::{Choice, GALLERY_PAGE_SIZE, PageState, Pager, numbered_page, page_number};
use crate::api_error::ApiResult;
use crate::images::{ImageFilter, ImagesError, parse_name};

/// Thumbnail edge the gallery's `src` uses (the `srcset` offers every size).
const GALLERY_THUMB_EDGE: u32 = 256;

/// A person-readable image status.
pub fn status_label(status: ImageStatus) -> &'static str {
    match status {
        ImageStatus::Uploaded => "Uploaded",
        ImageStatus::Ingested => "Ingested",
        ImageStatus::Processing => "Processing",
        ImageStatus::Stored => "Stored",
        ImageStatus::Failed => "Failed",
    }
}

/// A size in bytes, as a person reads it.
fn human_size(bytes: u64) -> String {
    match bytes {
        0..1_024 => format!("{bytes} B"),
        1_024..1_048_576 => format!("{:.0} KB", bytes as f64 / 1_024.0),
        _ => format!("{:.1} MB", bytes as f64 / 1_048_576.0),
    }
}

/// `(width, height)` scaled so the longest edge is `edge` (never up).
fn fit(width: u32, height: u32, edge: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= edge || longest == 0 {
        return (width, height);
    }
    let scale = f64::from(edge) / f64::from(longest);
    ((f64::from(width) * scale).round().max(1.0) as u32, (f64::from(height) * scale).round().max(1.0) as u32)
}

/// One image in the grid.
#[derive(Debug)]
struct Card {
    id: String,
    href: String,
    title: String,
    sub: String,
    status: &'static str,
    status_class: String,
    label: &'static str,
    show_badge: bool,
    has_thumb: bool,
    /// The ThumbHash painted as a PNG data URL, shown from the moment the
    /// thumbnails exist (before STORED, while the preview is made) until the
    /// thumbnail covers it.
    backdrop: Option<String>,
    src: String,
    srcset: String,
    width: u32,
    height: u32,
    placeholder: String,
}

impl Card {
    fn new(image: &Image) -> Self {
        let src = image.thumbnails.get(&GALLERY_THUMB_EDGE.to_string()).or(image.thumbnail_path.as_ref());
        let mut sizes: Vec<(u32, &String)> =
            image.thumbnails.iter().filter_map(|(s, url)| s.parse::<u32>().ok().map(|s| (s, url))).collect();
        sizes.sort_unstable();
        let srcset = sizes
            .iter()
            .map(|(size, url)| {
                let (w, _) = fit(image.width, image.height, *size);
                format!("{url} {w}w")
            })
            .collect::<Vec<_>>()
            .join(", ");
        let (width, height) = fit(image.width, image.height, GALLERY_THUMB_EDGE);
        let stored = image.status == ImageStatus::Stored;
        Self {
            id: image.id.clone(),
            href: format!("/images/{}", image.id),
            title: image.title.clone(),
            sub: match &image.collection {
                Some(c) => format!("{c} · {} × {}", image.width, image.height),
                None => format!("{} × {}", image.width, image.height),
            },
            status: image.status.as_str(),
            status_class: image.status.as_str().to_ascii_lowercase(),
            label: status_label(image.status),
            show_badge: !stored,
            has_thumb: stored && src.is_some(),
            backdrop: image.thumbhash.as_deref().and_then(backdrop),
            src: src.cloned().unwrap_or_default(),
            srcset,
            width,
            height,
            placeholder: match image.status {
                ImageStatus::Failed => "Processing failed".to_owned(),
                _ => format!("{}…", status_label(image.status)),
            },
        }
    }
}

/// A ThumbHash (base64) as a PNG data URL; `None` for a hash that does not
/// decode (the card then shows its plain background).
fn backdrop(thumbhash: &str) -> Option<String> {
    use base64::Engine;

    let engine = base64::engine::general_purpose::STANDARD;
    let png = pictor_imaging::thumbhash_to_png(&engine.decode(thumbhash).ok()?).ok()?;
    Some(format!("data:image/png;base64,{}", engine.encode(png)))
}

/// What `gallery.js` needs to add new arrivals live: only the first page
/// takes them (deeper pages stay as they were read), and only those that
/// match its filters and are newer than its newest card.
#[derive(Debug)]
struct LiveGallery {
    first_page: bool,
    collection: String,
    status: &'static str,
    /// `uploadedAt` of the newest card shown (empty when there is none):
    /// an event for an older image the page does not show is not an arrival.
    newest: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "gallery.html", config = "src/web/askama.toml")]
struct GalleryPage {
    active: &'static str,
    cards: Vec<Card>,
    live: LiveGallery,
    collections: Vec<Choice>,
    statuses: Vec<Choice>,
    total: i64,
    filtered: bool,
    pager: Pager,
}

/// Query of the gallery.
#[derive(Debug, Deserialize)]
pub struct GalleryQuery {
    collection: Option<String>,
    status: Option<String>,
    page: Option<String>,
    /// The last image of the page before (its next link's cursor).
    after: Option<String>,
}

/// `GET /`: the gallery.
///
/// # Errors
/// An unknown status (400) or a database failure.
pub async fn gallery(State(state): State<PageState>, Query(q): Query<GalleryQuery>) -> ApiResult<Response> {
    let collection = q.collection.unwrap_or_default().trim().to_owned();
    let status = parse_name::<ImageStatus>(q.status, "invalid_status")?;
    let page = page_number(q.page.as_deref());
    let first_page = page == 1 && q.after.as_deref().is_none_or(str::is_empty);
    let filter = ImageFilter { collection: (!collection.is_empty()).then(|| collection.clone()), status };
    let (images, total, next) =
        state.images.list_cards(&filter, numbered_page(page, GALLERY_PAGE_SIZE, q.after)).await?;
    let cards = images.iter().map(Card::new).collect();
    // Newest first: the first card is the newest.
    let newest = images.first().map(|i| i.uploaded_at.clone()).unwrap_or_default();
    let mut collections = vec![Choice::new("", "All collections", &collection)];
    for (name, count) in state.images.collections().await? {
        let label = format!("{name} ({count})");
        collections.push(Choice::new(name, label, &collection));
    }
    let status_text = status.map(ImageStatus::as_str).unwrap_or("");
    let mut statuses = vec![Choice::new("", "Any status", status_text)];
    statuses.extend(ImageStatus::ALL.iter().map(|s| Choice::new(s.as_str(), status_label(*s), status_text)));
    let pairs = [("collection", collection.clone()), ("status", status_text.to_owned())];
    let live = LiveGallery { first_page, collection: collection.clone(), status: status_text, newest };
    let page = GalleryPage {
        active: "gallery",
        cards,
        live,
        collections,
        statuses,
        total,
        filtered: filter.collection.is_some() || status.is_some(),
        pager: Pager::new("/", &pairs, page, GALLERY_PAGE_SIZE, total, next),
    };
    Ok(page.into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "upload.html", config = "src/web/askama.toml")]
struct UploadPage {
    active: &'static str,
    max_upload: String,
    collections: Vec<String>,
}

/// `GET /upload`: the upload form.
///
/// # Errors
/// A database failure (reading the collections).
pub async fn upload(State(state): State<PageState>) -> ApiResult<Response> {
    let collections = state.images.collections().await?.into_iter().map(|(name, _)| name).collect();
    let max_upload = human_size(state.images.limits().max_upload_bytes);
    let page = UploadPage { active: "upload", max_upload, collections };
    Ok(page.into_response())
}

/// One of an image's jobs.
#[derive(Debug)]
struct JobRow {
    id: i64,
    kind: &'static str,
    status: &'static str,
    status_class: String,
    attempts: i64,
}

#[derive(Template, WebTemplate)]
#[template(path = "image.html", config = "src/web/askama.toml")]
struct ImagePage {
    active: &'static str,
    image: Image,
    status_label: &'static str,
    status_class: String,
    collection: String,
    collection_value: String,
    size: String,
    preview_width: u32,
    preview_height: u32,
    jobs: Vec<JobRow>,
}

#[derive(Template, WebTemplate)]
#[template(path = "notice.html", config = "src/web/askama.toml")]
struct NoticePage {
    active: &'static str,
    heading: &'static str,
    text: String,
}

/// A page that only says something, with its status.
pub fn notice(status: StatusCode, heading: &'static str, text: String) -> Response {
    (status, NoticePage { active: "", heading, text }).into_response()
}

/// A 404 page for `what`.
pub fn not_found(what: String) -> Response {
    notice(StatusCode::NOT_FOUND, "Not found", format!("{what} does not exist (any more)."))
}

/// `GET /images/{id}`: preview, details, jobs, edit and delete.
///
/// # Errors
/// A database failure (an unknown image gets a 404 page).
pub async fn image(State(state): State<PageState>, Path(id): Path<String>) -> ApiResult<Response> {
    let image = match state.images.find(&id).await {
        Ok(image) => image,
        Err(ImagesError::NotFound(_)) => return Ok(not_found(format!("Image {id}"))),
        Err(e) => return Err(e.into()),
    };
    let edge = preview_edge(&image);
    let (preview_width, preview_height) = fit(image.width, image.height, edge);
    let jobs = image
        .processing_jobs
        .iter()
        .map(|j| JobRow {
            id: j.id,
            kind: j.kind.as_str(),
            status: j.status.as_str(),
            status_class: j.status.as_str().to_ascii_lowercase(),
            attempts: j.attempts,
        })
        .collect();
    let page = ImagePage {
        active: "gallery",
        status_label: status_label(image.status),
        status_class: image.status.as_str().to_ascii_lowercase(),
        collection: image.collection.clone().unwrap_or_else(|| "none".to_owned()),
        collection_value: image.collection.clone().unwrap_or_default(),
        size: human_size(image.size_bytes),
        preview_width,
        preview_height,
        jobs,
        image,
    };
    Ok(page.into_response())
}

/// The preview's longest edge as the page lays it out (the image itself is
/// at most `PICTOR_PREVIEW_MAX_EDGE`; this only sets the aspect ratio).
fn preview_edge(image: &Image) -> u32 {
    image.width.max(image.height).min(2_048)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_bytes_kilobytes_or_megabytes() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(2_048), "2 KB");
        assert_eq!(human_size(52_428_800), "50.0 MB");
    }

    #[test]
    fn fitting_keeps_the_aspect_ratio_and_never_enlarges() {
        assert_eq!(fit(4000, 3000, 256), (256, 192));
        assert_eq!(fit(3000, 4000, 256), (192, 256));
        assert_eq!(fit(100, 50, 256), (100, 50));
    }
}
