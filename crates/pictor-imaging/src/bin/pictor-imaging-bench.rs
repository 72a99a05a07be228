//! Adapter for the imaging anchors benchmark (`shared/bench/imaging`):
//! `pictor-imaging-bench OUTDIR INPUT...` writes, per input, the four
//! thumbnails and the preview that the THUMBNAIL and PREVIEW jobs produce,
//! through the same library calls, one thread, one process for all inputs.
//!
//! By default it takes the path the two jobs take when they run in one
//! runner (the usual case): one `prepare`, shared, then `Prepared::preview`
//! and `Prepared::thumbnails_and_thumbhash` (the ThumbHash is made, not
//! written). With `--two-decodes` first, each job decodes on its own
//! (`render_preview`; `prepare` at 512 px and the thumbnails), as when the
//! two jobs of an image land on different workers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use pictor_imaging::{RenderOptions, prepare, render_preview};

/// The job sizes of the reference card.
const THUMBNAIL_SIZES: [u32; 4] = [512, 256, 128, 64];
/// The preview size of the reference card.
const PREVIEW_EDGE: u32 = 2048;
/// The flag that makes each job decode on its own.
const TWO_DECODES_FLAG: &str = "--two-decodes";

fn main() -> ExitCode {
    // As the service does at start-up: the same allocator settings.
    pictor_imaging::keep_image_buffers_allocated();
    let mut args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let two_decodes = args.first().is_some_and(|first| first.as_os_str() == TWO_DECODES_FLAG);
    if two_decodes {
        args.remove(0);
    }
    let Some((out_dir, inputs)) = args.split_first().filter(|(_, inputs)| !inputs.is_empty()) else {
        eprintln!("usage: pictor-imaging-bench [{TWO_DECODES_FLAG}] OUTDIR INPUT [INPUT...]");
        return ExitCode::from(2);
    };
    let mut failed = false;
    for input in inputs {
        match render_one(out_dir, input, two_decodes) {
            // stdout is ignored by the harness: per-input wall time for people.
            Ok(millis) => println!("{}\t{millis:.1} ms", input.display()),
            Err(message) => {
                eprintln!("{}: {message}", input.display());
                failed = true;
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Renders one input into OUTDIR/<stem>/; returns the render time in ms
/// (file reading and writing excluded).
fn render_one(out_dir: &Path, input: &Path, two_decodes: bool) -> Result<f64, String> {
    let data = std::fs::read(input).map_err(|e| format!("cannot read: {e}"))?;
    let stem = input.file_stem().ok_or("the input has no file name")?;
    let dir = out_dir.join(stem);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let options = RenderOptions::default();

    let started = Instant::now();
    let (thumbnails, preview) = if two_decodes {
        let preview = render_preview(&data, PREVIEW_EDGE, &options).map_err(|e| e.to_string())?;
        let largest = THUMBNAIL_SIZES.iter().copied().max().unwrap_or(PREVIEW_EDGE);
        let (thumbnails, _thumbhash) = prepare(&data, largest, &options)
            .and_then(|prepared| prepared.thumbnails_and_thumbhash(&THUMBNAIL_SIZES, &options))
            .map_err(|e| e.to_string())?;
        (thumbnails, preview)
    } else {
        // As the handlers' shared decode calls it (handlers/shared_decode.rs).
        let shared_edge = THUMBNAIL_SIZES.iter().copied().fold(PREVIEW_EDGE, u32::max);
        let prepared = prepare(&data, shared_edge, &options).map_err(|e| e.to_string())?;
        let preview = prepared.preview(PREVIEW_EDGE, &options).map_err(|e| e.to_string())?;
        // The thumbnail job makes the ThumbHash too; it is not an output here.
        let (thumbnails, _thumbhash) =
            prepared.thumbnails_and_thumbhash(&THUMBNAIL_SIZES, &options).map_err(|e| e.to_string())?;
        (thumbnails, preview)
    };
    let millis = started.elapsed().as_secs_f64() * 1000.0;

    let named = thumbnails
        .iter()
        .zip(THUMBNAIL_SIZES)
        // The harness tells outputs apart by longest edge; when the image is
        // at most 512 px, the preview and the 512 thumbnail share one, and
        // the file listed last wins: "preview" sorts after the digits.
        .map(|(asset, size)| (format!("{size}.jpg"), asset))
        .chain(std::iter::once(("preview.jpg".to_owned(), &preview)));
    for (name, asset) in named {
        let path = dir.join(name);
        std::fs::write(&path, &asset.bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(millis)
}
