//! libheif (Debian package `libheif1`, 1.13 or newer) loaded at run time with
//! `libloading`, so that building needs no libheif headers and a machine
//! without it still does everything but AVIF and HEIC. Declares the few
//! functions and structs of `libheif/heif.h` (1.15) that Pictor uses, and
//! owns each libheif object in a wrapper that releases it on drop.

mod context;
mod image;
mod io;

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;

use libloading::Library;

use crate::error::ImagingError;

pub(crate) use context::{Context, EncodeSettings};
pub(crate) use image::ColourProfile;
pub(crate) use io::stream_primary_size;

/// The shared library, by soname (ABI 1 spans every 1.x release).
const SONAME: &str = "libheif.so.1";
/// The oldest libheif accepted: `heif_init`, called first, arrived in 1.13;
/// every other function used is older (Debian 12 ships 1.15).
const MIN_VERSION: (c_int, c_int) = (1, 13);
/// What to install, in words for an operator.
const INSTALL_HINT: &str = "libheif 1.13 or newer (Debian package libheif1)";

// Enum values of heif.h (1.15), passed as C `int`s.
/// `heif_compression_HEVC`: HEIC.
pub(crate) const COMPRESSION_HEVC: c_int = 1;
/// `heif_compression_AV1`: AVIF.
pub(crate) const COMPRESSION_AV1: c_int = 4;
/// `heif_colorspace_RGB`.
const COLORSPACE_RGB: c_int = 1;
/// `heif_chroma_interleaved_RGB`: 8 bits per channel.
const CHROMA_INTERLEAVED_RGB: c_int = 10;
/// `heif_chroma_interleaved_RGBA`: 8 bits per channel.
const CHROMA_INTERLEAVED_RGBA: c_int = 11;
/// `heif_channel_interleaved`.
const CHANNEL_INTERLEAVED: c_int = 10;
/// `heif_error_Ok`.
const ERROR_OK: c_int = 0;
/// `heif_error_Invalid_input`.
pub(crate) const ERROR_INVALID_INPUT: c_int = 2;
/// `heif_error_Unsupported_filetype`.
pub(crate) const ERROR_UNSUPPORTED_FILETYPE: c_int = 3;
/// `heif_error_Unsupported_feature`.
pub(crate) const ERROR_UNSUPPORTED_FEATURE: c_int = 4;
/// `heif_error_Memory_allocation_error`.
pub(crate) const ERROR_MEMORY_ALLOCATION: c_int = 6;
/// `heif_error_Decoder_plugin_error`: the codec refused the coded data.
pub(crate) const ERROR_DECODER_PLUGIN: c_int = 7;
/// `heif_suberror_End_of_data`.
pub(crate) const SUBERROR_END_OF_DATA: c_int = 100;
/// `heif_suberror_Security_limit_exceeded`.
pub(crate) const SUBERROR_SECURITY_LIMIT: c_int = 1000;
/// `heif_reader_grow_status_size_reached`.
const GROW_SIZE_REACHED: c_int = 0;
/// `heif_reader_grow_status_size_beyond_eof`.
const GROW_BEYOND_EOF: c_int = 2;

/// `struct heif_context`, opaque.
enum RawContext {}
/// `struct heif_image_handle`, opaque.
enum RawHandle {}
/// `struct heif_image`, opaque.
enum RawImage {}
/// `struct heif_encoder`, opaque.
enum RawEncoder {}

/// `struct heif_error`, returned by value.
#[repr(C)]
#[derive(Clone, Copy)]
struct RawError {
    code: c_int,
    subcode: c_int,
    /// Always a valid C string, owned by libheif or static.
    message: *const c_char,
}

/// `struct heif_decoding_options` up to its version 2 fields; libheif
/// allocates it (bigger in later versions), Pictor only writes a field the
/// allocated `version` has.
#[repr(C)]
struct DecodingOptions {
    version: u8,
    ignore_transformations: u8,
    start_progress: *const c_void,
    on_progress: *const c_void,
    end_progress: *const c_void,
    progress_user_data: *mut c_void,
    /// Version 2: HDR (10/12-bit) decodes to 8 bits per channel.
    convert_hdr_to_8bit: u8,
}

/// `struct heif_color_profile_nclx` up to its version 1 enum fields (the
/// chromaticities that follow are not read).
#[repr(C)]
struct RawNclx {
    version: u8,
    color_primaries: c_int,
    transfer_characteristics: c_int,
    matrix_coefficients: c_int,
    full_range_flag: u8,
}

/// `struct heif_encoding_options` up to its version 5 fields; allocated by
/// libheif, written only where the allocated `version` has the field.
#[repr(C)]
struct EncodingOptions {
    version: u8,
    save_alpha_channel: u8,
    macos_compatibility_workaround: u8,
    save_two_colr_boxes_when_icc_and_nclx_available: u8,
    output_nclx_profile: *mut RawNclx,
    macos_compatibility_workaround_no_nclx_profile: u8,
    /// Version 5: EXIF-style orientation that libheif writes as `irot`/`imir`.
    image_orientation: c_int,
}

/// `struct heif_reader`, version 1.
#[repr(C)]
struct RawReader {
    reader_api_version: c_int,
    get_position: unsafe extern "C" fn(*mut c_void) -> i64,
    read: unsafe extern "C" fn(*mut c_void, usize, *mut c_void) -> c_int,
    seek: unsafe extern "C" fn(i64, *mut c_void) -> c_int,
    wait_for_file_size: unsafe extern "C" fn(i64, *mut c_void) -> c_int,
}

/// `struct heif_writer`, version 1.
#[repr(C)]
struct RawWriter {
    writer_api_version: c_int,
    write: unsafe extern "C" fn(*mut RawContext, *const c_void, usize, *mut c_void) -> RawError,
}

/// Declares the function table: one field per C function, named as in heif.h.
macro_rules! functions {
    ($($name:ident: fn($($arg:ty),*) $(-> $ret:ty)?;)*) => {
        /// The libheif functions Pictor calls, resolved once.
        struct Api {
            $($name: unsafe extern "C" fn($($arg),*) $(-> $ret)?,)*
            /// Keeps the library mapped for as long as the pointers above live.
            _library: Library,
        }

        impl Api {
            /// Resolves every function of the table in `library`.
            ///
            /// # Safety
            ///
            /// `library` must be libheif 1.13 or newer, whose functions have
            /// the signatures declared here (heif.h, stable across 1.x).
            unsafe fn resolve(library: Library) -> Result<Api, libloading::Error> {
                // SAFETY: the caller vouches for the signatures; the copied
                // function pointers stay valid while `_library` is kept.
                unsafe {
                    $(let $name = *library.get::<unsafe extern "C" fn($($arg),*) $(-> $ret)?>(
                        concat!(stringify!($name), "\0").as_bytes())?;)*
                    Ok(Api { $($name,)* _library: library })
                }
            }
        }
    };
}

functions! {
    heif_init: fn(*mut c_void) -> RawError;
    heif_context_alloc: fn() -> *mut RawContext;
    heif_context_free: fn(*mut RawContext);
    heif_context_set_maximum_image_size_limit: fn(*mut RawContext, c_int);
    heif_context_read_from_memory_without_copy: fn(*mut RawContext, *const c_void, usize, *const c_void) -> RawError;
    heif_context_read_from_reader: fn(*mut RawContext, *const RawReader, *mut c_void, *const c_void) -> RawError;
    heif_context_get_primary_image_handle: fn(*mut RawContext, *mut *mut RawHandle) -> RawError;
    heif_image_handle_release: fn(*const RawHandle);
    heif_image_handle_get_width: fn(*const RawHandle) -> c_int;
    heif_image_handle_get_height: fn(*const RawHandle) -> c_int;
    heif_image_handle_has_alpha_channel: fn(*const RawHandle) -> c_int;
    heif_image_handle_get_raw_color_profile_size: fn(*const RawHandle) -> usize;
    heif_image_handle_get_raw_color_profile: fn(*const RawHandle, *mut c_void) -> RawError;
    heif_image_handle_get_nclx_color_profile: fn(*const RawHandle, *mut *mut RawNclx) -> RawError;
    heif_nclx_color_profile_alloc: fn() -> *mut RawNclx;
    heif_nclx_color_profile_free: fn(*mut RawNclx);
    heif_decoding_options_alloc: fn() -> *mut DecodingOptions;
    heif_decoding_options_free: fn(*mut DecodingOptions);
    heif_decode_image: fn(*const RawHandle, *mut *mut RawImage, c_int, c_int, *const DecodingOptions) -> RawError;
    heif_image_get_width: fn(*const RawImage, c_int) -> c_int;
    heif_image_get_height: fn(*const RawImage, c_int) -> c_int;
    heif_image_get_bits_per_pixel: fn(*const RawImage, c_int) -> c_int;
    heif_image_get_plane_readonly: fn(*const RawImage, c_int, *mut c_int) -> *const u8;
    heif_image_get_plane: fn(*mut RawImage, c_int, *mut c_int) -> *mut u8;
    heif_image_create: fn(c_int, c_int, c_int, c_int, *mut *mut RawImage) -> RawError;
    heif_image_add_plane: fn(*mut RawImage, c_int, c_int, c_int, c_int) -> RawError;
    heif_image_set_nclx_color_profile: fn(*mut RawImage, *const RawNclx) -> RawError;
    heif_image_release: fn(*const RawImage);
    heif_have_decoder_for_format: fn(c_int) -> c_int;
    heif_have_encoder_for_format: fn(c_int) -> c_int;
    heif_context_get_encoder_for_format: fn(*mut RawContext, c_int, *mut *mut RawEncoder) -> RawError;
    heif_encoder_release: fn(*mut RawEncoder);
    heif_encoder_set_lossy_quality: fn(*mut RawEncoder, c_int) -> RawError;
    heif_encoder_set_parameter: fn(*mut RawEncoder, *const c_char, *const c_char) -> RawError;
    heif_encoding_options_alloc: fn() -> *mut EncodingOptions;
    heif_encoding_options_free: fn(*mut EncodingOptions);
    heif_context_encode_image: fn(*mut RawContext, *const RawImage, *mut RawEncoder, *const EncodingOptions, *mut *mut RawHandle) -> RawError;
    heif_context_write: fn(*mut RawContext, *mut RawWriter, *mut c_void) -> RawError;
}

/// The process-wide libheif, loaded and initialised on first use; why not
/// (the loader's words, e.g. "libheif.so.1: cannot open shared object
/// file") when it cannot be.
static API: OnceLock<Result<Api, String>> = OnceLock::new();

/// libheif, loaded once.
///
/// # Errors
///
/// Why libheif cannot be used: not installed, too old, or failing to start.
fn api() -> Result<&'static Api, &'static str> {
    API.get_or_init(|| load(SONAME)).as_ref().map_err(String::as_str)
}

/// Opens `soname`, checks its version and initialises it.
fn load(soname: &str) -> Result<Api, String> {
    let missing = |detail: &dyn std::fmt::Display| detail.to_string();
    // SAFETY: loading libheif runs only its ELF constructors (codec
    // registration), which have no preconditions.
    let library = unsafe { Library::new(soname) }.map_err(|e| missing(&e))?;
    // SAFETY: these two functions have taken no argument and returned an int
    // since libheif 1.0; the symbols are not used past this block.
    let version = unsafe {
        let major = library
            .get::<unsafe extern "C" fn() -> c_int>(b"heif_get_version_number_major\0")
            .map_err(|e| missing(&e))?;
        let minor = library
            .get::<unsafe extern "C" fn() -> c_int>(b"heif_get_version_number_minor\0")
            .map_err(|e| missing(&e))?;
        (major(), minor())
    };
    if version < MIN_VERSION {
        return Err(missing(&format!("{soname} is version {}.{}", version.0, version.1)));
    }
    // SAFETY: the version is at least 1.13, whose heif.h declares every
    // function of the table with the signature given there.
    let api = unsafe { Api::resolve(library) }.map_err(|e| missing(&e))?;
    // SAFETY: a null init-params pointer asks for the defaults. heif_init is
    // reference-counted and never undone: libheif stays up for the process.
    Failure::check(unsafe { (api.heif_init)(ptr::null_mut()) }).map_err(|e| missing(&e.message))?;
    Ok(api)
}

/// A libheif error: its category, detail code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// `heif_error_code`.
    pub(crate) code: c_int,
    /// `heif_suberror_code`.
    pub(crate) subcode: c_int,
    /// libheif's own words.
    pub(crate) message: String,
}

impl Failure {
    /// `Ok` for `heif_error_Ok`, else the error with its message copied.
    fn check(error: RawError) -> Result<(), Failure> {
        if error.code == ERROR_OK {
            return Ok(());
        }
        let message = if error.message.is_null() {
            String::new()
        } else {
            // SAFETY: libheif's messages are NUL-terminated strings that
            // live at least until the next call on the same object.
            unsafe { CStr::from_ptr(error.message) }.to_string_lossy().into_owned()
        };
        Err(Failure { code: error.code, subcode: error.subcode, message })
    }

    /// An error of Pictor's own making, in the same shape.
    fn usage(message: &str) -> Failure {
        Failure { code: -1, subcode: 0, message: message.to_owned() }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (libheif error {}.{})", self.message, self.code, self.subcode)
    }
}

/// `Ok` when libheif loads and can decode (`decode`) or encode images of a
/// compression format (`COMPRESSION_*`); else `Unsupported`, saying that
/// `action` ("AVIF decoding") needs libheif, or its `codec` ("an AV1 decoder
/// (dav1d or libaom)").
pub(crate) fn require_codec(compression: c_int, decode: bool, action: &str, codec: &str) -> Result<(), ImagingError> {
    let api = api().map_err(|reason| unavailable(action, reason))?;
    // SAFETY: both take an enum value and only look up registered plugins.
    let found = unsafe {
        if decode {
            (api.heif_have_decoder_for_format)(compression)
        } else {
            (api.heif_have_encoder_for_format)(compression)
        }
    };
    if found == 0 {
        return Err(ImagingError::Unsupported(format!(
            "{action} needs {INSTALL_HINT} with {codec}, and the installed one has none"
        )));
    }
    Ok(())
}

/// `Unsupported`: `action` needs libheif, which cannot be used (`reason`).
pub(crate) fn unavailable(action: &str, reason: &str) -> ImagingError {
    ImagingError::Unsupported(format!("{action} needs {INSTALL_HINT}: {reason}"))
}

/// Why libheif could not do what was asked.
#[derive(Debug)]
pub(crate) enum Error {
    /// libheif cannot be loaded: the reason, a sentence.
    Unavailable(&'static str),
    /// libheif refused the data or failed.
    Heif(Failure),
    /// The reader failed.
    Io(std::io::Error),
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Error {
        Error::Heif(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_an_error_naming_it_not_a_panic() {
        let error = load("libheif-not-installed.so.1").err().expect("no such library");

        assert!(error.contains("libheif-not-installed.so.1"), "{error}");
    }

    #[test]
    fn the_installed_libheif_loads_when_it_is_there() {
        // CI installs libheif1, so there it must load; elsewhere it may be absent.
        match api() {
            Ok(_) => {}
            Err(reason) if std::env::var_os("CI").is_none() => eprintln!("libheif not loaded here: {reason}"),
            Err(reason) => panic!("CI must have libheif1: {reason}"),
        }
    }
}
