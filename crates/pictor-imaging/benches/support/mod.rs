//! What the per-stage benchmarks share: the test images and the job sizes.

use std::path::PathBuf;

/// The preview's longest edge on the reference card.
pub const PREVIEW_EDGE: u32 = 2048;
/// The largest thumbnail's longest edge on the reference card.
#[allow(dead_code)]
pub const LARGEST_THUMBNAIL: u32 = 512;

/// The bytes of an image in `testdata/images` at the repository root.
pub fn read(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/images").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `name` decoded at the preview's scale, in stored orientation, with its profile.
#[allow(dead_code)]
pub fn decoded(name: &str) -> pictor_imaging::stage::Frame {
    pictor_imaging::stage::decode(&read(name), PREVIEW_EDGE).expect("a decodable test image")
}
