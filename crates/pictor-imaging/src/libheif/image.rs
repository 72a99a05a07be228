//! A libheif image handle (sizes, alpha, colour description, decode) and
//! a libheif image (decoded pixels copied out, or pixels to encode).

use std::ffi::c_int;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use super::{
    Api, CHANNEL_INTERLEAVED, CHROMA_INTERLEAVED_RGB, CHROMA_INTERLEAVED_RGBA, COLORSPACE_RGB, Failure, RawHandle,
    RawImage,
};

/// A `heif_image_handle`: one image of a file, not yet decoded.
pub(crate) struct Handle<'data> {
    pub(super) api: &'static Api,
    pub(super) raw: NonNull<RawHandle>,
    /// The handle keeps the context (and so the borrowed file) alive.
    pub(super) _data: PhantomData<&'data [u8]>,
}

impl Drop for Handle<'_> {
    fn drop(&mut self) {
        // SAFETY: obtained from libheif and released only here.
        unsafe { (self.api.heif_image_handle_release)(self.raw.as_ptr()) }
    }
}

/// The colour description of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ColourProfile {
    /// An ICC profile (`rICC` or `prof`).
    Icc(Vec<u8>),
    /// Coding-independent code points (ITU-T H.273) of an `nclx` box.
    Nclx {
        /// `colour_primaries`.
        primaries: u8,
        /// `transfer_characteristics`.
        transfer: u8,
        /// `matrix_coefficients`.
        matrix: u8,
        /// Full range rather than video range.
        full_range: bool,
    },
}

impl Handle<'_> {
    /// Width and height as displayed: libheif applies the file's rotation,
    /// mirroring and crop (`irot`, `imir`, `clap`) to these and to the
    /// decoded pixels alike.
    pub(crate) fn size(&self) -> (i64, i64) {
        // SAFETY: a live handle.
        unsafe {
            (
                i64::from((self.api.heif_image_handle_get_width)(self.raw.as_ptr())),
                i64::from((self.api.heif_image_handle_get_height)(self.raw.as_ptr())),
            )
        }
    }

    /// Whether the image has an alpha plane.
    pub(crate) fn has_alpha(&self) -> bool {
        // SAFETY: a live handle.
        unsafe { (self.api.heif_image_handle_has_alpha_channel)(self.raw.as_ptr()) != 0 }
    }

    /// The embedded ICC profile if there is one, else the `nclx` code
    /// points if there are some. A profile that cannot be read is ignored.
    pub(crate) fn colour_profile(&self) -> Option<ColourProfile> {
        // SAFETY: a live handle.
        let icc_len = unsafe { (self.api.heif_image_handle_get_raw_color_profile_size)(self.raw.as_ptr()) };
        if icc_len > 0 {
            let mut icc = vec![0u8; icc_len];
            // SAFETY: the buffer holds the size libheif just gave.
            let read = unsafe {
                (self.api.heif_image_handle_get_raw_color_profile)(self.raw.as_ptr(), icc.as_mut_ptr().cast())
            };
            if Failure::check(read).is_ok() {
                return Some(ColourProfile::Icc(icc));
            }
        }
        let mut nclx = ptr::null_mut();
        // SAFETY: a live handle and a valid out-pointer; on success the
        // profile is libheif's allocation, freed below.
        let found = unsafe { (self.api.heif_image_handle_get_nclx_color_profile)(self.raw.as_ptr(), &mut nclx) };
        if Failure::check(found).is_err() || nclx.is_null() {
            return None;
        }
        // SAFETY: a non-null nclx profile of at least version 1 (the fields read).
        unsafe {
            let profile = &*nclx;
            let code = |v: c_int| u8::try_from(v).unwrap_or(2);
            let result = ColourProfile::Nclx {
                primaries: code(profile.color_primaries),
                transfer: code(profile.transfer_characteristics),
                matrix: code(profile.matrix_coefficients),
                full_range: profile.full_range_flag != 0,
            };
            (self.api.heif_nclx_color_profile_free)(nclx);
            Some(result)
        }
    }

    /// Decodes to 8-bit interleaved RGB, or RGBA when `alpha`, with rotation,
    /// mirroring and crop applied and deeper samples reduced to 8 bits.
    /// Returns the pixels, tightly packed, with their width and height.
    ///
    /// # Errors
    ///
    /// libheif's or the codec's error.
    pub(crate) fn decode(&self, alpha: bool) -> Result<(Vec<u8>, u32, u32), Failure> {
        let chroma = if alpha { CHROMA_INTERLEAVED_RGBA } else { CHROMA_INTERLEAVED_RGB };
        // SAFETY: returns a default-filled allocation (or null), freed below.
        let options = unsafe { (self.api.heif_decoding_options_alloc)() };
        if !options.is_null() {
            // SAFETY: a live options struct of at least the version read; the
            // field written exists from version 2 on.
            unsafe {
                if (*options).version >= 2 {
                    (*options).convert_hdr_to_8bit = 1;
                }
            }
        }
        let mut raw = ptr::null_mut();
        // SAFETY: a live handle, a valid out-pointer, options null or live.
        let decoded =
            unsafe { (self.api.heif_decode_image)(self.raw.as_ptr(), &mut raw, COLORSPACE_RGB, chroma, options) };
        if !options.is_null() {
            // SAFETY: allocated above, freed once.
            unsafe { (self.api.heif_decoding_options_free)(options) };
        }
        Failure::check(decoded)?;
        let raw = NonNull::new(raw).ok_or_else(|| Failure::usage("libheif returned no image"))?;
        let image = Image { api: self.api, raw };
        let channels = if alpha { 4 } else { 3 };
        image.packed_pixels(channels)
    }
}

/// A `heif_image`: decoded pixels, or pixels to encode.
pub(super) struct Image {
    pub(super) api: &'static Api,
    pub(super) raw: NonNull<RawImage>,
}

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: obtained from libheif and released only here.
        unsafe { (self.api.heif_image_release)(self.raw.as_ptr()) }
    }
}

impl Image {
    /// An empty 8-bit interleaved RGB image with its plane allocated.
    pub(super) fn create_rgb(api: &'static Api, width: c_int, height: c_int) -> Result<Image, Failure> {
        let mut raw = ptr::null_mut();
        // SAFETY: plain arguments and a valid out-pointer.
        Failure::check(unsafe {
            (api.heif_image_create)(width, height, COLORSPACE_RGB, CHROMA_INTERLEAVED_RGB, &mut raw)
        })?;
        let raw = NonNull::new(raw).ok_or_else(|| Failure::usage("libheif returned no image"))?;
        let image = Image { api, raw };
        // SAFETY: a live image; 8 bits per channel.
        Failure::check(unsafe {
            (api.heif_image_add_plane)(image.raw.as_ptr(), CHANNEL_INTERLEAVED, width, height, 8)
        })?;
        Ok(image)
    }

    /// Width and height of the interleaved plane, checked positive.
    fn plane_size(&self) -> Result<(usize, usize), Failure> {
        // SAFETY: a live image; -1 for a missing channel.
        let (width, height) = unsafe {
            (
                (self.api.heif_image_get_width)(self.raw.as_ptr(), CHANNEL_INTERLEAVED),
                (self.api.heif_image_get_height)(self.raw.as_ptr(), CHANNEL_INTERLEAVED),
            )
        };
        match (usize::try_from(width), usize::try_from(height)) {
            (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
            _ => Err(Failure::usage("the image has no interleaved plane")),
        }
    }

    /// The writable interleaved RGB plane and its stride, checked to hold
    /// the image's rows.
    pub(super) fn plane_mut(&mut self) -> Result<(*mut u8, usize), Failure> {
        let (width, _) = self.plane_size()?;
        let mut stride: c_int = 0;
        // SAFETY: a live image and a valid out-pointer.
        let plane = unsafe { (self.api.heif_image_get_plane)(self.raw.as_ptr(), CHANNEL_INTERLEAVED, &mut stride) };
        match usize::try_from(stride) {
            Ok(stride) if !plane.is_null() && stride >= width * 3 => Ok((plane, stride)),
            _ => Err(Failure::usage("libheif gave an unusable image plane")),
        }
    }

    /// Copies the interleaved 8-bit plane out, without row padding.
    fn packed_pixels(&self, channels: usize) -> Result<(Vec<u8>, u32, u32), Failure> {
        let (width, height) = self.plane_size()?;
        // SAFETY: a live image.
        let bits = unsafe { (self.api.heif_image_get_bits_per_pixel)(self.raw.as_ptr(), CHANNEL_INTERLEAVED) };
        if usize::try_from(bits).ok() != Some(channels * 8) {
            return Err(Failure::usage(&format!("libheif decoded {bits} bits per pixel, not {}", channels * 8)));
        }
        let mut stride: c_int = 0;
        // SAFETY: a live image and a valid out-pointer.
        let plane =
            unsafe { (self.api.heif_image_get_plane_readonly)(self.raw.as_ptr(), CHANNEL_INTERLEAVED, &mut stride) };
        let row = width * channels;
        let stride = match usize::try_from(stride) {
            Ok(stride) if !plane.is_null() && stride >= row => stride,
            _ => return Err(Failure::usage("libheif gave an unusable image plane")),
        };
        let mut pixels = Vec::with_capacity(row * height);
        for y in 0..height {
            // SAFETY: the plane has `height` rows of `stride >= row` bytes,
            // alive as long as the image.
            pixels.extend_from_slice(unsafe { std::slice::from_raw_parts(plane.add(y * stride), row) });
        }
        let size = |v: usize| u32::try_from(v).map_err(|_| Failure::usage("the image is too large"));
        Ok((pixels, size(width)?, size(height)?))
    }
}
