//! Integration tests of pictor-imaging on the shared test images
//! (`testdata/images` at the repository root).
//!
//! | module | covers |
//! |---|---|
//! | `helpers` | test-image paths, the manifest, JPEG marker parsing, pixel comparison |
//! | `sniff` | recognition by magic bytes |
//! | `probe` | header sizes, orientation, limits |
//! | `render` | sizes, scans and metadata of every valid image's assets |
//! | `orient` | the eight EXIF orientations look alike once rendered |
//! | `colour` | ICC, CMYK, 16-bit and alpha handling |
//! | `heif` | AVIF (and HEIC) through libheif: probe, render, AVIF previews, damage |
//! | `alloc` | the largest allocation a piece of work asks for (a counting allocator) |
//! | `bad` | damaged and hostile files give the right error, never a panic |

// Tests and benchmarks may unwrap: a failed expectation is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alloc;
mod bad;
mod colour;
mod heif;
mod helpers;
mod orient;
mod probe;
mod render;
mod skip;
mod sniff;
