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

/// A 10000x10000 grey TIFF (100 Mpx, within the default pixel limit)
/// whose strip offsets claim 4 million entries stored past the end of the
/// file: a decoder that sizes its arrays by the stated count asks for
/// about 100 MB before reading one.
fn tiff_with_a_huge_strip_table() -> Vec<u8> {
    let entries: [(u16, u16, u32, u32); 10] = [
        (256, 4, 1, 10_000),         // ImageWidth
        (257, 4, 1, 10_000),         // ImageLength
        (258, 3, 1, 8),              // BitsPerSample
        (259, 3, 1, 1),              // Compression: none
        (262, 3, 1, 1),              // Photometric: BlackIsZero
        (273, 4, 4_000_000, 0x1000), // StripOffsets: 4M LONGs at 4096
        (274, 3, 1, 6),              // Orientation: 6
        (277, 3, 1, 1),              // SamplesPerPixel
        (278, 3, 1, 16),             // RowsPerStrip
        (279, 4, 1, 256),            // StripByteCounts
    ];
    let mut tiff = b"II*\0".to_vec();
    tiff.extend(8_u32.to_le_bytes());
    tiff.extend(u16::try_from(entries.len()).expect("entries").to_le_bytes());
    for (tag, kind, count, value) in entries {
        tiff.extend(tag.to_le_bytes());
        tiff.extend(kind.to_le_bytes());
        tiff.extend(count.to_le_bytes());
        tiff.extend(value.to_le_bytes());
    }
    tiff.extend(0_u32.to_le_bytes());
    tiff.resize(200, 0);
    tiff.extend([128_u8; 256]);
    tiff
}

#[test]
fn a_hostile_tiff_tag_count_cannot_make_the_probe_allocate_much() {
    let tiff = tiff_with_a_huge_strip_table();

    let (info, largest) = crate::alloc::largest_allocation(|| probe(Cursor::new(&tiff), &Limits::default()));

    assert!(largest <= 2 * 1024 * 1024, "the probe asked for {largest} bytes at once");
    let info = info.expect("the header itself is fine");
    assert_eq!((info.width, info.height, info.orientation), (10_000, 10_000, 6));
}
