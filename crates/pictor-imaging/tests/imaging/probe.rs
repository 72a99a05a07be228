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

/// The small fixed budgets a probe keeps to, whatever the file: what it
/// reads (the 2 MiB budget, plus one buffered read past it) and the most
/// memory it holds at once.
const MOST_READ: u64 = (2 << 20) + 64 * 1024;
const MOST_HELD: usize = 1 << 20;

/// A reader that counts the bytes read through it (by `read` or through
/// `fill_buf`/`consume`), seeking freely.
struct CountingReader<'a> {
    inner: Cursor<&'a [u8]>,
    read: u64,
}

impl std::io::Read for CountingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl std::io::BufRead for CountingReader<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.read += amount as u64;
        self.inner.consume(amount);
    }
}

impl Seek for CountingReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(to)
    }
}

/// Probes `bytes` and returns the outcome, the bytes read, and the most
/// memory the probe held at once.
fn probe_counted(bytes: &[u8]) -> (Result<pictor_imaging::ImageInfo, ImagingError>, u64, usize) {
    let mut reader = CountingReader { inner: Cursor::new(bytes), read: 0 };
    let (info, _, peak) = crate::alloc::allocations(|| probe(&mut reader, &Limits::default()));
    (info, reader.read, peak)
}

/// A RIFF chunk: fourcc, little-endian length, body, padding to even.
fn riff_chunk(fourcc: &[u8; 4], declared: u32, body: &[u8]) -> Vec<u8> {
    let mut chunk = fourcc.to_vec();
    chunk.extend(declared.to_le_bytes());
    chunk.extend(body);
    if body.len() % 2 == 1 {
        chunk.push(0);
    }
    chunk
}

/// Hostile headers, one or more per format the probe reads, each stating
/// sizes or counts far beyond what it holds or far beyond a real header.
fn hostile_headers() -> Vec<(&'static str, Vec<u8>)> {
    let mut cases = Vec::new();

    // WebP (extended): an ICC profile chunk claiming 4 GB, then a frame.
    let mut vp8x = vec![0b0010_0000, 0, 0, 0]; // ICC flag
    vp8x.extend([0xFF, 0x0F, 0x00, 0xFF, 0x0F, 0x00]); // 4096x4096 canvas (minus one, 24-bit)
    let mut body = b"WEBP".to_vec();
    body.extend(riff_chunk(b"VP8X", 10, &vp8x));
    body.extend(riff_chunk(b"ICCP", 0xFFFF_FFF0, &[0u8; 64]));
    let mut webp = b"RIFF".to_vec();
    webp.extend(u32::try_from(body.len()).expect("len").to_le_bytes());
    webp.extend(body);
    cases.push(("webp-icc-claiming-4gb", webp));

    // WebP whose RIFF size and VP8L chunk claim 4 GB.
    let mut webp = b"RIFF".to_vec();
    webp.extend(0xFFFF_FFF0_u32.to_le_bytes());
    webp.extend(b"WEBP");
    webp.extend(riff_chunk(b"VP8L", 0xFFFF_FF00, &[0x2F, 0xFF, 0xFF, 0xFF, 0x0F]));
    cases.push(("webp-vp8l-claiming-4gb", webp));

    // GIF: 3 MiB of comment blocks before the first image.
    let mut gif = b"GIF89a".to_vec();
    gif.extend([16, 0, 16, 0, 0x80, 0, 0]); // 16x16, a 2-colour global table
    gif.extend([0, 0, 0, 255, 255, 255]);
    gif.extend([0x21, 0xFE]); // comment extension
    for _ in 0..(3 << 20) / 256 {
        gif.push(255);
        gif.extend([b'x'; 255]);
    }
    gif.push(0);
    gif.extend([0x2C, 0, 0, 0, 0, 16, 0, 16, 0, 0, 2, 2, 0x44, 0x01, 0, 0x3B]);
    cases.push(("gif-3mib-of-comments", gif));

    // BMP: 8-bit, claiming 2^32-1 palette colours and a 4 GB file.
    let mut bmp = b"BM".to_vec();
    bmp.extend(0xFFFF_FFF0_u32.to_le_bytes());
    bmp.extend([0; 4]);
    bmp.extend(54_u32.to_le_bytes());
    bmp.extend(40_u32.to_le_bytes()); // BITMAPINFOHEADER
    bmp.extend(64_i32.to_le_bytes());
    bmp.extend(64_i32.to_le_bytes());
    bmp.extend(1_u16.to_le_bytes());
    bmp.extend(8_u16.to_le_bytes());
    bmp.extend([0; 4]); // BI_RGB
    bmp.extend([0; 12]);
    bmp.extend(u32::MAX.to_le_bytes()); // colours used
    bmp.extend(u32::MAX.to_le_bytes()); // colours important
    bmp.extend([0; 1024]);
    cases.push(("bmp-claiming-4g-colours", bmp));

    // PNG: 3 MiB of ancillary chunks before IHDR's image data, and an
    // eXIf chunk claiming 2 GB.
    let mut png = read("tiny-microaneurysms.png")[..33].to_vec(); // signature + IHDR
    for _ in 0..(3 << 20) / 1024 {
        png.extend(1012_u32.to_be_bytes());
        png.extend(b"tEXt");
        png.extend([b'a'; 1012]);
        png.extend([0; 4]);
    }
    png.extend(0x7FFF_FFFF_u32.to_be_bytes());
    png.extend(b"eXIf");
    png.extend([0; 64]);
    cases.push(("png-3mib-of-text-and-a-2gb-exif", png));

    // JPEG: sixty 64 KiB APP1 segments (only the first is read).
    let jpeg = read("mpl-grace-hopper.jpg");
    let mut hostile = jpeg[..2].to_vec();
    for _ in 0..60 {
        hostile.extend([0xFF, 0xE1, 0xFF, 0xFF]);
        hostile.extend(b"Exif\0\0");
        hostile.extend(std::iter::repeat_n(0xAB, 0xFFFF - 2 - 6));
    }
    hostile.extend(&jpeg[2..]);
    cases.push(("jpeg-60-app1-segments", hostile));

    cases.push(("tiff-huge-strip-table", tiff_with_a_huge_strip_table()));

    // AVIF: a real file's `ftyp`, then a `meta` whose item properties hold
    // a 3 MiB ICC profile, which libheif would read whole.
    let avif = read("avif-coldripple.avif");
    let ftyp_len = u32::from_be_bytes(avif[..4].try_into().expect("4 bytes")) as usize;
    let iso_box = |kind: &[u8; 4], body: &[u8]| {
        let mut b = u32::try_from(8 + body.len()).expect("len").to_be_bytes().to_vec();
        b.extend(kind);
        b.extend(body);
        b
    };
    let mut colr = b"prof".to_vec();
    colr.extend(std::iter::repeat_n(0x5A, 3 << 20));
    let ipco = iso_box(b"ipco", &iso_box(b"colr", &colr));
    let mut meta = vec![0; 4]; // version and flags
    meta.extend(iso_box(b"hdlr", &[[0; 8].as_slice(), b"pict", &[0; 13]].concat()));
    meta.extend(iso_box(b"pitm", &[0, 0, 0, 0, 0, 1]));
    meta.extend(iso_box(b"iprp", &ipco));
    let mut hostile = avif[..ftyp_len].to_vec();
    hostile.extend(iso_box(b"meta", &meta));
    cases.push(("avif-3mib-icc-in-meta", hostile));
    cases
}

#[test]
fn probing_any_test_image_holds_less_than_the_alloc_budget() {
    for entry in manifest() {
        let bytes = read(&entry.file);
        let (_, read, peak) = probe_counted(&bytes);
        assert!(peak <= MOST_HELD, "{}: held {peak} bytes", entry.file);
        assert!(read <= MOST_READ, "{}: read {read} bytes", entry.file);
    }
}

#[test]
fn a_hostile_header_of_any_format_is_probed_within_the_read_and_alloc_budgets_and_refused_as_damage() {
    let heif = pictor_imaging::avif_decoding_available().is_ok();
    if !heif {
        crate::skip::skip(
            "probe::hostile headers (the AVIF case)",
            "libheif is not installed (apt-get install libheif1)",
        );
    }
    for (name, bytes) in hostile_headers() {
        if name.starts_with("avif") && !heif {
            continue;
        }
        let (outcome, read, peak) = probe_counted(&bytes);

        assert!(read <= MOST_READ, "{name}: read {read} bytes");
        assert!(peak <= MOST_HELD, "{name}: held {peak} bytes");
        if name.starts_with("avif") {
            // Refused from the box sizes alone, before libheif parses (and
            // allocates for) the 3 MiB box, which no counter here would see.
            assert!(
                matches!(&outcome, Err(ImagingError::Corrupt(why)) if why.contains("'meta' box is")),
                "{name}: {outcome:?}"
            );
        }
        match outcome {
            Ok(info) => assert!(info.width > 0 && info.height > 0, "{name}: {info:?}"),
            Err(ImagingError::Corrupt(_) | ImagingError::Unsupported(_) | ImagingError::TooLarge { .. }) => {}
            Err(other) => panic!("{name}: a hostile header is the file's fault, not {other:?}"),
        }
    }
}
