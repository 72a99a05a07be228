//! Header-only probing: stored sizes, orientation and limits.

use std::io::{Cursor, Seek, SeekFrom};

use pictor_imaging::{ImagingError, Limits, probe};

use crate::helpers::{manifest, read};

#[test]
fn probe_gives_the_stored_size_and_orientation_of_each_orient_file() {
    for orientation in 1..=8u8 {
        let name = format!("orient{orientation}-garden.jpg");

        let info = probe(Cursor::new(read(&name)), &Limits::default()).expect(&name);

        let stored = if orientation >= 5 { (1600, 2560) } else { (2560, 1600) };
        assert_eq!((info.width, info.height), stored, "{name}");
        assert_eq!(info.orientation, orientation, "{name}");
        assert_eq!(info.display_size(), (2560, 1600), "{name}");
    }
}

#[test]
fn probe_gives_the_manifest_size_of_every_decodable_image() {
    // The 64-bit float TIFF may be refused (MANIFEST: "decode or reject cleanly");
    // AVIF needs libheif at run time and has its own tests (heif.rs).
    let decodable = |e: &crate::helpers::Entry| {
        e.role != "bad" && !e.format.starts_with("AVIF") && e.file != "tiff-multipage-rgb.tif"
    };
    for entry in manifest().into_iter().filter(decodable) {
        let info =
            probe(Cursor::new(read(&entry.file)), &Limits::default()).unwrap_or_else(|e| panic!("{}: {e}", entry.file));

        assert_eq!(Some((info.width, info.height)), entry.stored, "{}", entry.file);
        assert_eq!(info.orientation, entry.orientation(), "{}", entry.file);
    }
}

#[test]
fn probe_refuses_the_png_bomb_as_too_large() {
    let result = probe(Cursor::new(read("bad-png-bomb-30000x30000.png")), &Limits::default());

    match result {
        Err(error @ ImagingError::TooLarge { width: 30000, height: 30000, .. }) => {
            assert_eq!(error.to_string(), "image is 30000x30000 (900 Mpx), over the limit of 100 Mpx")
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn probe_refuses_the_jpeg_claiming_65500x65500_as_too_large() {
    let result = probe(Cursor::new(read("bad-jpeg-dims-65500x65500-ladybird.jpg")), &Limits::default());

    assert!(matches!(result, Err(ImagingError::TooLarge { width: 65500, height: 65500, .. })), "{result:?}");
}

#[test]
fn probe_applies_a_configured_pixel_limit() {
    let limits = Limits { max_pixels: 1_000_000, ..Limits::default() };

    let result = probe(Cursor::new(read("mate-ladybird.jpg")), &limits);

    assert!(matches!(result, Err(ImagingError::TooLarge { max_pixels: 1_000_000, .. })), "{result:?}");
}

#[test]
fn probe_reads_from_the_current_position_of_a_file() {
    // A container whose image starts after other bytes: the probe must read
    // from where the reader stands, for the magic bytes and the header alike.
    let junk = b"not an image, just bytes in front of one ".repeat(3);
    let files = [
        ("png16-bridge.png", (800, 450)),
        ("mpl-grace-hopper.jpg", (512, 600)),
        ("webp-lossy-ladybird.webp", (2560, 1600)),
        ("gif-animated-skimage.gif", (240, 160)),
    ];
    for (name, size) in files {
        let mut bytes = junk.clone();
        bytes.extend(read(name));
        let mut reader = Cursor::new(bytes);
        reader.seek(SeekFrom::Start(junk.len() as u64)).expect("seek");

        let info = probe(&mut reader, &Limits::default()).expect(name);

        assert_eq!((info.width, info.height), size, "{name}");
        assert!(reader.stream_position().expect("position") >= junk.len() as u64, "{name}: read before its start");
    }
}
