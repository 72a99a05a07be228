//! A libheif context: one file read from memory (then its primary image),
//! or one image encoded and written out, with the encoder and the options
//! that takes.

use std::ffi::{CStr, c_int};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use super::image::{Handle, Image};
use super::io::{WriteSink, write_to_sink};
use super::{
    Api, ERROR_MEMORY_ALLOCATION, EncodingOptions, Error, Failure, RawContext, RawEncoder, RawNclx, RawWriter, api,
};

/// A `heif_context`: one file being read or written. `'data` is the
/// borrowed file it reads without copying.
pub(crate) struct Context<'data> {
    pub(super) api: &'static Api,
    pub(super) raw: NonNull<RawContext>,
    _data: PhantomData<&'data [u8]>,
}

impl Drop for Context<'_> {
    fn drop(&mut self) {
        // SAFETY: allocated by heif_context_alloc and freed only here.
        unsafe { (self.api.heif_context_free)(self.raw.as_ptr()) }
    }
}

impl<'data> Context<'data> {
    /// An empty context whose reads refuse images with an edge over
    /// `max_edge` (libheif's own check, before it allocates pixels).
    ///
    /// # Errors
    ///
    /// libheif is unavailable (the reason), or out of memory.
    pub(crate) fn new(max_edge: u32) -> Result<Context<'data>, Error> {
        let api = api().map_err(Error::Unavailable)?;
        // SAFETY: no arguments; a null return means out of memory.
        let raw = NonNull::new(unsafe { (api.heif_context_alloc)() }).ok_or_else(|| {
            Error::Heif(Failure {
                code: ERROR_MEMORY_ALLOCATION,
                subcode: 0,
                message: "no memory for a context".into(),
            })
        })?;
        let context = Context { api, raw, _data: PhantomData };
        let limit = c_int::try_from(max_edge).unwrap_or(c_int::MAX);
        // SAFETY: a live context; the limit is a plain number.
        unsafe { (api.heif_context_set_maximum_image_size_limit)(context.raw.as_ptr(), limit) };
        Ok(context)
    }

    /// Parses a whole file held in memory, which the context then borrows.
    ///
    /// # Errors
    ///
    /// libheif's error for data it cannot parse.
    pub(crate) fn read_memory(&mut self, data: &'data [u8]) -> Result<(), Failure> {
        // SAFETY: `data` outlives the context and every handle from it
        // (both carry `'data`); a null options pointer is documented.
        Failure::check(unsafe {
            (self.api.heif_context_read_from_memory_without_copy)(
                self.raw.as_ptr(),
                data.as_ptr().cast(),
                data.len(),
                ptr::null(),
            )
        })
    }

    /// The primary image of the file read.
    ///
    /// # Errors
    ///
    /// libheif's error when the file has none.
    pub(crate) fn primary_image(&self) -> Result<Handle<'data>, Failure> {
        let mut raw = ptr::null_mut();
        // SAFETY: a live context and a valid out-pointer.
        Failure::check(unsafe { (self.api.heif_context_get_primary_image_handle)(self.raw.as_ptr(), &mut raw) })?;
        let raw = NonNull::new(raw).ok_or_else(|| Failure::usage("libheif returned no primary image"))?;
        Ok(Handle { api: self.api, raw, _data: PhantomData })
    }

    /// Encodes an 8-bit interleaved RGB image (`rgb`, rows of `width * 3`
    /// bytes) as the primary image of this context, as `settings` say, then
    /// returns the whole file. Nothing but the image and its colour
    /// description is written: no Exif, no XMP.
    ///
    /// # Errors
    ///
    /// libheif's error: no encoder for the format, an orientation this
    /// libheif cannot write, or a failure of the codec.
    pub(crate) fn encode_rgb(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        settings: &EncodeSettings<'_>,
    ) -> Result<Vec<u8>, Failure> {
        let too_big = || Failure::usage("the image is too large for libheif");
        let (w, h) = (c_int::try_from(width).map_err(|_| too_big())?, c_int::try_from(height).map_err(|_| too_big())?);
        let row = width as usize * 3;
        if rgb.len() != row * height as usize {
            return Err(Failure::usage("the RGB buffer does not match the image size"));
        }
        let EncodeSettings { compression, quality, parameters, orientation } = *settings;
        let encoder = self.encoder(compression)?;
        // SAFETY: a live encoder; the quality is a plain number.
        Failure::check(unsafe {
            (self.api.heif_encoder_set_lossy_quality)(encoder.raw.as_ptr(), c_int::from(quality))
        })?;
        for (name, value) in parameters {
            // SAFETY: a live encoder and two NUL-terminated strings, copied by libheif.
            let set =
                unsafe { (self.api.heif_encoder_set_parameter)(encoder.raw.as_ptr(), name.as_ptr(), value.as_ptr()) };
            // Parameters are tuning hints: an encoder plugin without one
            // (another AV1 encoder than libaom) keeps its default.
            let _ = Failure::check(set);
        }
        let mut image = Image::create_rgb(self.api, w, h)?;
        let (plane, stride) = image.plane_mut()?;
        for (y, source) in rgb.chunks_exact(row).enumerate() {
            // SAFETY: the plane has `height` rows of `stride >= row` bytes
            // (checked by plane_mut), and `y < height`.
            unsafe { ptr::copy_nonoverlapping(source.as_ptr(), plane.add(y * stride), row) };
        }
        let options = EncodingOptionsBox::new(self.api, orientation)?;
        if !options.nclx.is_null() {
            // libheif 1.15 writes the image's nclx (later ones the options').
            // SAFETY: a live image and a live profile, which libheif copies.
            Failure::check(unsafe { (self.api.heif_image_set_nclx_color_profile)(image.raw.as_ptr(), options.nclx) })?;
        }
        // SAFETY: a live context, image and encoder; live options; a null
        // out-handle is documented.
        Failure::check(unsafe {
            (self.api.heif_context_encode_image)(
                self.raw.as_ptr(),
                image.raw.as_ptr(),
                encoder.raw.as_ptr(),
                options.raw,
                ptr::null_mut(),
            )
        })?;
        drop(options);
        drop(image);
        drop(encoder);
        let mut sink = WriteSink { bytes: Vec::new(), failed: false };
        let mut writer = RawWriter { writer_api_version: 1, write: write_to_sink };
        // SAFETY: `writer` and `sink` outlive the call, which is the only
        // one that uses them.
        Failure::check(unsafe {
            (self.api.heif_context_write)(self.raw.as_ptr(), &mut writer, (&raw mut sink).cast())
        })?;
        if sink.failed {
            return Err(Failure::usage("the encoded file could not be collected"));
        }
        Ok(sink.bytes)
    }

    /// The highest-priority encoder for a compression format.
    fn encoder(&self, compression: c_int) -> Result<Encoder, Failure> {
        let mut raw = ptr::null_mut();
        // SAFETY: a live context and a valid out-pointer.
        Failure::check(unsafe {
            (self.api.heif_context_get_encoder_for_format)(self.raw.as_ptr(), compression, &mut raw)
        })?;
        let raw = NonNull::new(raw).ok_or_else(|| Failure::usage("libheif returned no encoder"))?;
        Ok(Encoder { api: self.api, raw })
    }
}

/// How [`Context::encode_rgb`] encodes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncodeSettings<'a> {
    /// `COMPRESSION_AV1` or `COMPRESSION_HEVC`.
    pub(crate) compression: c_int,
    /// Lossy quality, 0..=100 on libheif's scale.
    pub(crate) quality: u8,
    /// Encoder-specific parameters (name, value), applied where the encoder has them.
    pub(crate) parameters: &'a [(&'a CStr, &'a CStr)],
    /// EXIF-style orientation to display the pixels under (1: as they are),
    /// written as `irot`/`imir` boxes.
    pub(crate) orientation: u8,
}

/// H.273 code points of sRGB as an `nclx` box states them: BT.709
/// primaries, the sRGB transfer, the JFIF (BT.601) matrix, full range.
/// libheif's own default leaves primaries and transfer "unspecified".
const SRGB_NCLX: (c_int, c_int, c_int) = (1, 13, 6);

/// Encoding options: the output's colour description (sRGB, also set on
/// the image) and, when asked for, an orientation, with the `nclx` profile
/// they point to.
struct EncodingOptionsBox {
    api: &'static Api,
    raw: *mut EncodingOptions,
    nclx: *mut RawNclx,
}

impl EncodingOptionsBox {
    fn new(api: &'static Api, orientation: u8) -> Result<EncodingOptionsBox, Failure> {
        if !(1..=8).contains(&orientation) {
            return Err(Failure::usage("an orientation is 1 to 8"));
        }
        // SAFETY: both return default-filled allocations (or null), freed on drop.
        let options = unsafe {
            EncodingOptionsBox {
                api,
                raw: (api.heif_encoding_options_alloc)(),
                nclx: (api.heif_nclx_color_profile_alloc)(),
            }
        };
        // SAFETY: each pointer is null or a live allocation of at least the
        // version it states; a field is written only where that version has it.
        unsafe {
            let Some(o) = options.raw.as_mut() else {
                return Err(Failure::usage("libheif could not allocate encoding options"));
            };
            if let Some(nclx) = options.nclx.as_mut().filter(|_| o.version >= 4) {
                (nclx.color_primaries, nclx.transfer_characteristics, nclx.matrix_coefficients) = SRGB_NCLX;
                nclx.full_range_flag = 1;
                o.output_nclx_profile = options.nclx;
                // On by default: it drops the nclx box for old Apple decoders,
                // which then guess the colours (here from the AV1 stream's
                // "unspecified" primaries and transfer).
                o.macos_compatibility_workaround_no_nclx_profile = 0;
            }
            if orientation != 1 {
                if o.version < 5 {
                    return Err(Failure::usage("this libheif cannot write an orientation (needs 1.14)"));
                }
                o.image_orientation = c_int::from(orientation);
            }
        }
        Ok(options)
    }
}

impl Drop for EncodingOptionsBox {
    fn drop(&mut self) {
        // SAFETY: allocated by libheif in `new`, freed only here; the options
        // only point to the nclx profile, they do not own it.
        unsafe {
            if !self.raw.is_null() {
                (self.api.heif_encoding_options_free)(self.raw);
            }
            if !self.nclx.is_null() {
                (self.api.heif_nclx_color_profile_free)(self.nclx);
            }
        }
    }
}

/// A `heif_encoder`.
struct Encoder {
    api: &'static Api,
    raw: NonNull<RawEncoder>,
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: obtained from libheif and released only here.
        unsafe { (self.api.heif_encoder_release)(self.raw.as_ptr()) }
    }
}
