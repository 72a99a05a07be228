//! How libheif reads a file through a Rust reader (`heif_reader`, for
//! header-only probing of a file on disk) and hands an encoded file back
//! (`heif_writer`). The callbacks never unwind into C.

use std::ffi::{c_int, c_void};
use std::io::{Read, Seek, SeekFrom};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use super::context::Context;
use super::{ERROR_OK, Error, Failure, GROW_BEYOND_EOF, GROW_SIZE_REACHED, RawContext, RawError, RawReader};

/// Parses a file's boxes from a reader (from its current position to its
/// end; libheif seeks over the coded data) and returns the displayed width
/// and height of its primary image ([`Handle::size`]), without decoding.
///
/// # Errors
///
/// libheif is unavailable or refuses the data, or the reader fails.
pub(crate) fn stream_primary_size(reader: &mut dyn ReadSeek, max_edge: u32) -> Result<(i64, i64), Error> {
    let start = reader.stream_position().map_err(Error::Io)?;
    let end = reader.seek(SeekFrom::End(0)).map_err(Error::Io)?;
    reader.seek(SeekFrom::Start(start)).map_err(Error::Io)?;
    // Declared before the context so that they outlive it: libheif keeps
    // pointers to both for the context's whole life.
    let mut source = StreamSource { reader, start, len: end.saturating_sub(start), error: None };
    let callbacks = RawReader {
        reader_api_version: 1,
        get_position: stream_position,
        read: stream_read,
        seek: stream_seek,
        wait_for_file_size: stream_wait_for_size,
    };
    let source_ptr: *mut StreamSource<'_> = &raw mut source;
    let context = Context::new(max_edge)?;
    // SAFETY: `callbacks` and `source` outlive the context (declared
    // earlier), and `source` is used only through `source_ptr` until the
    // context is dropped.
    let read = Failure::check(unsafe {
        (context.api.heif_context_read_from_reader)(context.raw.as_ptr(), &callbacks, source_ptr.cast(), ptr::null())
    });
    let size = read.and_then(|()| context.primary_image()).map(|handle| handle.size());
    drop(context);
    match (size, source.error.take()) {
        (Ok(size), _) => Ok(size),
        (Err(_), Some(io)) => Err(Error::Io(io)),
        (Err(failure), None) => Err(Error::Heif(failure)),
    }
}

/// A reader libheif can pull a file from.
pub(crate) trait ReadSeek: Read + Seek {}

impl<T: Read + Seek> ReadSeek for T {}

/// The state behind a `heif_reader`: positions are relative to `start`.
struct StreamSource<'a> {
    reader: &'a mut dyn ReadSeek,
    start: u64,
    len: u64,
    /// The first I/O error, reported instead of libheif's generic one.
    error: Option<std::io::Error>,
}

/// Runs a reader callback on its state, turning a panic into `failed`
/// (unwinding into C is undefined).
///
/// # Safety
///
/// `userdata` is the `StreamSource` passed by `stream_primary_size`.
unsafe fn with_source<T>(userdata: *mut c_void, failed: T, work: impl FnOnce(&mut StreamSource<'_>) -> T) -> T {
    // SAFETY: per the contract, a live, exclusively used StreamSource.
    let source = unsafe { &mut *userdata.cast::<StreamSource<'_>>() };
    catch_unwind(AssertUnwindSafe(|| work(source))).unwrap_or(failed)
}

unsafe extern "C" fn stream_position(userdata: *mut c_void) -> i64 {
    // SAFETY: libheif passes back the userdata given in stream_primary_size.
    unsafe {
        with_source(userdata, -1, |s| match s.reader.stream_position() {
            Ok(at) => i64::try_from(at.saturating_sub(s.start)).unwrap_or(-1),
            Err(e) => {
                s.error.get_or_insert(e);
                -1
            }
        })
    }
}

unsafe extern "C" fn stream_read(data: *mut c_void, size: usize, userdata: *mut c_void) -> c_int {
    // SAFETY: libheif passes back the userdata given in stream_primary_size, and a
    // buffer of `size` writable bytes.
    unsafe {
        with_source(userdata, 1, |s| {
            if size == 0 {
                return 0;
            }
            if data.is_null() {
                return 1;
            }
            let buffer = std::slice::from_raw_parts_mut(data.cast::<u8>(), size);
            match s.reader.read_exact(buffer) {
                Ok(()) => 0,
                Err(e) => {
                    s.error.get_or_insert(e);
                    1
                }
            }
        })
    }
}

unsafe extern "C" fn stream_seek(position: i64, userdata: *mut c_void) -> c_int {
    // SAFETY: libheif passes back the userdata given in stream_primary_size.
    unsafe {
        with_source(userdata, 1, |s| {
            let Ok(offset) = u64::try_from(position) else { return 1 };
            match s.reader.seek(SeekFrom::Start(s.start.saturating_add(offset))) {
                Ok(_) => 0,
                Err(e) => {
                    s.error.get_or_insert(e);
                    1
                }
            }
        })
    }
}

unsafe extern "C" fn stream_wait_for_size(target: i64, userdata: *mut c_void) -> c_int {
    // SAFETY: libheif passes back the userdata given in stream_primary_size.
    unsafe {
        with_source(userdata, GROW_BEYOND_EOF, |s| {
            if u64::try_from(target).is_ok_and(|t| t <= s.len) { GROW_SIZE_REACHED } else { GROW_BEYOND_EOF }
        })
    }
}

/// Where `heif_context_write` puts the file.
pub(super) struct WriteSink {
    pub(super) bytes: Vec<u8>,
    pub(super) failed: bool,
}

pub(super) unsafe extern "C" fn write_to_sink(
    _context: *mut RawContext,
    data: *const c_void,
    size: usize,
    userdata: *mut c_void,
) -> RawError {
    let ok = RawError { code: ERROR_OK, subcode: 0, message: c"Success".as_ptr() };
    // SAFETY: libheif passes back the WriteSink given in encode_rgb, and
    // `size` readable bytes at `data`.
    unsafe {
        let sink = &mut *userdata.cast::<WriteSink>();
        let copied = catch_unwind(AssertUnwindSafe(|| {
            if size > 0 {
                sink.bytes.extend_from_slice(std::slice::from_raw_parts(data.cast::<u8>(), size));
            }
        }));
        if copied.is_err() {
            sink.failed = true;
            // heif_error_Encoding_error / heif_suberror_Cannot_write_output_data.
            return RawError { code: 9, subcode: 5000, message: c"cannot collect the output".as_ptr() };
        }
    }
    ok
}
