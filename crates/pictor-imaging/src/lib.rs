//! Pictor's image pipeline: a synchronous library, bytes in, JPEG assets out
//! (and WebP or AVIF previews when asked).
//! It is its own crate for a narrow interface, heavy dependencies and
//! benchmarks of its own (no async, no database).
//!
//! ```text
//! bytes ─ sniff (magic bytes) ─ probe (header: size, EXIF orientation; limits)
//!       ─ decode once at reduced scale (JPEG: DCT n/8 ≥ largest output;
//!         AVIF/HEIC through libheif, loaded at run time)
//!       ─ resize to the largest output ─ orient ─ colour (ICC/CMYK → sRGB;
//!         alpha flattened at decode) ─ resize cascade 512→256→128→64
//!       ─ encode (mozjpeg: baseline thumbnails, progressive preview, no metadata;
//!         libwebp and libheif's AV1 encoder for the optional previews)
//!       ─ placeholder (ThumbHash of a small thumbnail)
//! ```
//!
//! The recipe and its measurements are in `shared/notes/crate-evaluation.md`
//! (E4). Memory stays bounded: [`probe`] refuses over-limit images before any
//! pixel is allocated, and only a reduced buffer is ever rotated.

mod allocator;
mod avif;
mod colour;
mod decode;
mod encode;
mod error;
mod huffman;
mod libheif;
mod orient;
mod placeholder;
mod probe;
mod render;
mod resize;
mod sniff;
#[doc(hidden)]
pub mod stage;
mod webp;

pub use allocator::keep_image_buffers_allocated;
pub use avif::{avif_decoding_available, avif_encoding_available};
pub use error::{ImagingError, panic_message};
pub use placeholder::{THUMBHASH_MAX_EDGE, thumbhash_from_asset, thumbhash_to_png};
pub use probe::{
    DEFAULT_MAX_DIMENSION, DEFAULT_MAX_PIXELS, ImageInfo, Limits, PROBE_ALLOC_BUDGET, PROBE_READ_BUDGET, probe,
};
pub use render::{
    Asset, AssetFormat, DEFAULT_AVIF_QUALITY, DEFAULT_BACKGROUND, DEFAULT_JPEG_QUALITY, Prepared, RenderOptions,
    ThumbhashResult, prepare, render_all, render_preview, render_thumbnails,
};
pub use resize::fit_longest_edge;
pub use sniff::{Format, SNIFF_LEN, is_decodable, sniff};

/// Version of what this crate outputs: bumped whenever the same input and
/// options give different asset bytes (a new resampler, encoder settings,
/// colour handling). Pictor records it with every image's assets, so that
/// `pictor reprocess` finds the images made by an older engine.
pub const ENGINE_VERSION: u32 = 1;
