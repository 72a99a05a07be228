//! Adapter for the imaging anchors benchmark (`shared/bench/imaging`):
//! `pictor-imaging-bench OUTDIR INPUT...` writes, per input, the four
//! thumbnails and the preview that the THUMBNAIL and PREVIEW jobs produce,
//! through the same library calls, one thread, one process for all inputs.
//! With `--one-decode` first, it calls `render_all` instead (one decode for
//! both jobs), to measure what merging the jobs would buy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use pictor_imaging::{RenderOptions, render_all, render_preview, render_thumbnails};

/// The job sizes of the reference card.
const THUMBNAIL_SIZES: [u32; 4] = [512, 256, 128, 64];
/// The preview size of the reference card.
const PREVIEW_EDGE: u32 = 2048;
/// The flag that selects `render_all`.
const ONE_DECODE_FLAG: &str = "--one-decode";

fn main() -> ExitCode {
    let mut args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let one_decode = args.first().is_some_and(|first| first.as_os_str() == ONE_DECODE_FLAG);
    if one_decode {
        args.remove(0);
    }
    let Some((out_dir, inputs)) = args.split_first().filter(|(_, inputs)| !inputs.is_empty()) else {
        eprintln!("usage: pictor-imaging-bench [{ONE_DECODE_FLAG}] OUTDIR INPUT [INPUT...]");
        return ExitCode::from(2);
    };
    let mut failed = false;
    for input in inputs {
        match render_one(out_dir, input, one_decode) {
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
fn render_one(out_dir: &Path, input: &Path, one_decode: bool) -> Result<f64, String> {
    let data = std::fs::read(input).map_err(|e| format!("cannot read: {e}"))?;
    let stem = input.file_stem().ok_or("the input has no file name")?;
    let dir = out_dir.join(stem);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let options = RenderOptions::default();

    let started = Instant::now();
    let (thumbnails, preview) = if one_decode {
        render_all(&data, &THUMBNAIL_SIZES, PREVIEW_EDGE, &options).map_err(|e| e.to_string())?
    } else {
        // The PREVIEW and THUMBNAIL_GENERATION jobs, as the handlers call them.
        let preview = render_preview(&data, PREVIEW_EDGE, &options).map_err(|e| e.to_string())?;
        let thumbnails = render_thumbnails(&data, &THUMBNAIL_SIZES, &options).map_err(|e| e.to_string())?;
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
        std::fs::write(&path, &asset.jpeg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(millis)
}
