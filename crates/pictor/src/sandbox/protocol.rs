//! What the parent and a sandbox child say to each other on the child's
//! stdin and stdout. A frame is a big-endian `u32` header length, a `u64`
//! body length, a JSON header, then the raw body: the encoded assets of a
//! reply (small), never pixels. The work itself ([`Work::render`]) is here
//! too, so that the child and the in-process engine run the same code.

use std::io::Read;
use std::path::PathBuf;

use pictor_imaging::{Asset, AssetFormat, ImagingError, Prepared, RenderOptions, ThumbhashResult};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt as _};

use super::SandboxError;

/// Bytes before a frame's header: its header's and its body's lengths.
pub const PREFIX_LEN: usize = 12;
/// Longest header accepted: requests and replies are a few hundred bytes.
pub const MAX_HEADER_BYTES: usize = 1 << 20;
/// Longest body accepted: a reply's encoded assets (a preview in three
/// formats and four thumbnails are a few megabytes at most).
pub const MAX_BODY_BYTES: usize = 256 << 20;

/// A frame that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The pipe failed or closed (the child most often died).
    #[error("the pipe to the sandbox child failed: {0}")]
    Io(#[from] std::io::Error),
    /// A header that is not the JSON expected.
    #[error("a malformed frame: {0}")]
    Json(#[from] serde_json::Error),
    /// A length over the limits: the other side is broken or hostile.
    #[error("a frame of {0} bytes, over the limit")]
    TooLong(u64),
}

/// Which of an image's two asset jobs asks: the decode is kept for the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Taker {
    /// `THUMBNAIL_GENERATION`.
    Thumbnails,
    /// `PREVIEW_GENERATION`.
    Preview,
}

/// What to make of the decoded original.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Work {
    /// JPEG thumbnails by longest edge, and the ThumbHash.
    Thumbnails {
        /// Longest edges, px.
        sizes: Vec<u32>,
    },
    /// The preview in each format.
    #[serde(rename_all = "camelCase")]
    Previews {
        /// Longest edge, px.
        max_edge: u32,
        /// Encodings, JPEG first.
        #[serde(with = "format_names")]
        formats: Vec<AssetFormat>,
    },
}

/// What a [`Work`] made.
#[derive(Debug)]
pub struct Rendered {
    /// The assets, in the order the work asked for them.
    pub assets: Vec<Asset>,
    /// The ThumbHash, for thumbnails only.
    pub thumbhash: Option<ThumbhashResult>,
}

impl Work {
    /// Makes the assets from pixels prepared for them (in the child, or in
    /// the process's own CPU pool when the sandbox is off).
    ///
    /// # Errors
    /// The resizer's or an encoder's.
    pub fn render(&self, prepared: &Prepared, options: &RenderOptions) -> Result<Rendered, ImagingError> {
        match self {
            Work::Thumbnails { sizes } => {
                let (assets, hash) = prepared.thumbnails_and_thumbhash(sizes, options)?;
                Ok(Rendered { assets, thumbhash: Some(hash) })
            }
            Work::Previews { max_edge, formats } => {
                Ok(Rendered { assets: prepared.previews(*max_edge, formats, options)?, thumbhash: None })
            }
        }
    }
}

/// The parent's request: one job's assets from the original at `path`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// Storage key of the original: what the child's kept decodes go by.
    pub key: String,
    /// A local file holding the original, which the child reads itself.
    pub path: PathBuf,
    /// Longest edge the decode must cover.
    pub edge: u32,
    /// Which sibling asks, when the decode is shared with the other; `None`
    /// for a decode of its own.
    pub share: Option<Taker>,
    /// What to make.
    pub work: Work,
    /// Encoder settings and decode limits.
    pub options: Options,
}

/// [`RenderOptions`] on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Options {
    /// See [`RenderOptions::jpeg_quality`].
    pub jpeg_quality: u8,
    /// See [`RenderOptions::avif_quality`].
    pub avif_quality: u8,
    /// See [`RenderOptions::background`].
    pub background: [u8; 3],
    /// See [`pictor_imaging::Limits::max_pixels`].
    pub max_pixels: u64,
    /// See [`pictor_imaging::Limits::max_dimension`].
    pub max_dimension: u32,
}

impl From<&RenderOptions> for Options {
    fn from(o: &RenderOptions) -> Self {
        Self {
            jpeg_quality: o.jpeg_quality,
            avif_quality: o.avif_quality,
            background: o.background,
            max_pixels: o.limits.max_pixels,
            max_dimension: o.limits.max_dimension,
        }
    }
}

impl From<&Options> for RenderOptions {
    fn from(o: &Options) -> Self {
        RenderOptions {
            jpeg_quality: o.jpeg_quality,
            avif_quality: o.avif_quality,
            background: o.background,
            limits: pictor_imaging::Limits { max_pixels: o.max_pixels, max_dimension: o.max_dimension },
        }
    }
}

/// The child's side of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "camelCase")]
pub enum Reply {
    /// Sent once at start-up: the child speaks this protocol, under these limits.
    Ready {
        /// What the child applied to itself (a limit, a filter), or failed to.
        applied: Vec<String>,
    },
    /// The assets are in the body, one after another, then the ThumbHash.
    Rendered {
        /// Each asset's description and length.
        assets: Vec<AssetHead>,
        /// The ThumbHash's length or error (thumbnails only).
        thumbhash: Option<HashHead>,
    },
    /// The work failed (a corrupt file, an encoder error, a panic).
    Failed {
        /// Why.
        error: WireError,
    },
}

/// One asset of a [`Reply::Rendered`] (its bytes are in the body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetHead {
    /// Encoding.
    #[serde(with = "format_name")]
    pub format: AssetFormat,
    /// Width, px.
    pub width: u32,
    /// Height, px.
    pub height: u32,
    /// Bytes in the body.
    pub len: usize,
}

/// The ThumbHash of a [`Reply::Rendered`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "camelCase")]
pub enum HashHead {
    /// Its bytes follow the assets in the body.
    Made {
        /// Bytes in the body.
        len: usize,
    },
    /// It could not be made (a nicety: the thumbnails are still good).
    Failed {
        /// Why.
        error: WireError,
    },
}

/// An [`ImagingError`] (or a panic) on the wire, its kind kept so that the
/// parent decides retryable or permanent as it would in process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum WireError {
    /// [`ImagingError::Unsupported`].
    Unsupported {
        /// The error's text.
        message: String,
    },
    /// [`ImagingError::Corrupt`].
    Corrupt {
        /// The error's text.
        message: String,
    },
    /// [`ImagingError::TooLarge`].
    #[serde(rename_all = "camelCase")]
    TooLarge {
        /// Stored width.
        width: u32,
        /// Stored height.
        height: u32,
        /// The limit in force.
        max_pixels: u64,
    },
    /// [`ImagingError::Io`] (reading the original).
    Io {
        /// The I/O error's text.
        message: String,
    },
    /// [`ImagingError::Internal`].
    Internal {
        /// The error's text.
        message: String,
    },
    /// The work panicked.
    Panicked {
        /// The panic's text.
        message: String,
    },
}

impl From<&ImagingError> for WireError {
    fn from(e: &ImagingError) -> Self {
        match e {
            ImagingError::Unsupported(m) => Self::Unsupported { message: m.clone() },
            ImagingError::Corrupt(m) => Self::Corrupt { message: m.clone() },
            ImagingError::TooLarge { width, height, max_pixels } => {
                Self::TooLarge { width: *width, height: *height, max_pixels: *max_pixels }
            }
            ImagingError::Io(io) => Self::Io { message: io.to_string() },
            ImagingError::Internal(m) => Self::Internal { message: m.clone() },
        }
    }
}

impl WireError {
    /// The error as the parent's layer has it.
    pub fn into_error(self) -> SandboxError {
        match self {
            Self::Panicked { message } => SandboxError::Panicked(message),
            other => SandboxError::Imaging(other.into_imaging()),
        }
    }

    /// The imaging error (a panic becomes an internal error).
    pub fn into_imaging(self) -> ImagingError {
        match self {
            Self::Unsupported { message } => ImagingError::Unsupported(message),
            Self::Corrupt { message } => ImagingError::Corrupt(message),
            Self::TooLarge { width, height, max_pixels } => ImagingError::TooLarge { width, height, max_pixels },
            Self::Io { message } => ImagingError::Io(std::io::Error::other(message)),
            Self::Internal { message } | Self::Panicked { message } => ImagingError::Internal(message),
        }
    }
}

/// The reply to a finished [`Work`] and its body.
pub fn rendered_reply(rendered: Rendered) -> (Reply, Vec<u8>) {
    let mut body = Vec::with_capacity(rendered.assets.iter().map(|a| a.bytes.len()).sum());
    let mut assets = Vec::with_capacity(rendered.assets.len());
    for asset in rendered.assets {
        body.extend_from_slice(&asset.bytes);
        assets.push(AssetHead {
            format: asset.format,
            width: asset.width,
            height: asset.height,
            len: asset.bytes.len(),
        });
    }
    let thumbhash = rendered.thumbhash.map(|hash| match hash {
        Ok(bytes) => {
            body.extend_from_slice(&bytes);
            HashHead::Made { len: bytes.len() }
        }
        Err(e) => HashHead::Failed { error: WireError::from(&e) },
    });
    (Reply::Rendered { assets, thumbhash }, body)
}

/// The assets of a [`Reply::Rendered`], cut from its body.
///
/// # Errors
/// The lengths do not add up to the body's.
pub fn into_rendered(
    assets: Vec<AssetHead>,
    thumbhash: Option<HashHead>,
    body: &[u8],
) -> Result<Rendered, ProtocolError> {
    let mut rest = body;
    let mut take = |len: usize| -> Result<Vec<u8>, ProtocolError> {
        if len > rest.len() {
            return Err(ProtocolError::TooLong(len as u64));
        }
        let (bytes, after) = rest.split_at(len);
        rest = after;
        Ok(bytes.to_vec())
    };
    let mut out = Vec::with_capacity(assets.len());
    for head in assets {
        out.push(Asset { width: head.width, height: head.height, format: head.format, bytes: take(head.len)? });
    }
    let thumbhash = match thumbhash {
        Some(HashHead::Made { len }) => Some(Ok(take(len)?)),
        Some(HashHead::Failed { error }) => Some(Err(error.into_imaging())),
        None => None,
    };
    if !rest.is_empty() {
        return Err(ProtocolError::TooLong(body.len() as u64));
    }
    Ok(Rendered { assets: out, thumbhash })
}

/// A frame of `header` and `body`.
///
/// # Errors
/// The header cannot be serialised.
pub fn encode(header: &impl Serialize, body: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let json = serde_json::to_vec(header)?;
    if json.len() > MAX_HEADER_BYTES || body.len() > MAX_BODY_BYTES {
        return Err(ProtocolError::TooLong((json.len() + body.len()) as u64));
    }
    let mut frame = Vec::with_capacity(PREFIX_LEN + json.len() + body.len());
    // Within the limits above, so within u32.
    frame.extend_from_slice(&u32::try_from(json.len()).map_err(|_| ProtocolError::TooLong(0))?.to_be_bytes());
    frame.extend_from_slice(&(body.len() as u64).to_be_bytes());
    frame.extend_from_slice(&json);
    frame.extend_from_slice(body);
    Ok(frame)
}

/// The header's and body's lengths in a frame's prefix, within the limits.
fn lengths(prefix: &[u8; PREFIX_LEN]) -> Result<(usize, usize), ProtocolError> {
    let (header, body) = prefix.split_at(4);
    let header = u32::from_be_bytes(header.try_into().map_err(|_| ProtocolError::TooLong(0))?);
    let body = u64::from_be_bytes(body.try_into().map_err(|_| ProtocolError::TooLong(0))?);
    let header = usize::try_from(header).ok().filter(|&n| n <= MAX_HEADER_BYTES);
    let body_len = usize::try_from(body).ok().filter(|&n| n <= MAX_BODY_BYTES);
    match (header, body_len) {
        (Some(h), Some(b)) => Ok((h, b)),
        _ => Err(ProtocolError::TooLong(body)),
    }
}

/// Reads one frame; `None` when the stream ends before it (the parent
/// closed the pipe: the child's cue to leave).
///
/// # Errors
/// The stream fails or ends inside a frame, or the frame is malformed.
pub fn read_frame<H: DeserializeOwned>(input: &mut impl Read) -> Result<Option<(H, Vec<u8>)>, ProtocolError> {
    let mut prefix = [0_u8; PREFIX_LEN];
    let mut filled = 0;
    while filled < PREFIX_LEN {
        match input.read(&mut prefix[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (header_len, body_len) = lengths(&prefix)?;
    let mut header = vec![0; header_len];
    input.read_exact(&mut header)?;
    let mut body = vec![0; body_len];
    input.read_exact(&mut body)?;
    Ok(Some((serde_json::from_slice(&header)?, body)))
}

/// Reads one frame from an async stream (the parent's side).
///
/// # Errors
/// The stream fails or ends (the child died), or the frame is malformed.
pub async fn read_frame_async<H: DeserializeOwned>(
    input: &mut (impl AsyncRead + Unpin),
) -> Result<(H, Vec<u8>), ProtocolError> {
    let mut prefix = [0_u8; PREFIX_LEN];
    input.read_exact(&mut prefix).await?;
    let (header_len, body_len) = lengths(&prefix)?;
    let mut header = vec![0; header_len];
    input.read_exact(&mut header).await?;
    let mut body = vec![0; body_len];
    input.read_exact(&mut body).await?;
    Ok((serde_json::from_slice(&header)?, body))
}

/// An [`AssetFormat`] as its name (`jpeg`, `webp`, `avif`).
mod format_name {
    use pictor_imaging::AssetFormat;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(format: &AssetFormat, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(format.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<AssetFormat, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A list of [`AssetFormat`]s as their names.
mod format_names {
    use pictor_imaging::AssetFormat;
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(formats: &[AssetFormat], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(formats.iter().map(|f| f.name()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<AssetFormat>, D::Error> {
        Vec::<String>::deserialize(d)?.iter().map(|name| name.parse().map_err(serde::de::Error::custom)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            key: "originals/ab/abcdef".into(),
            path: "/data/storage/originals/ab/abcdef".into(),
            edge: 2048,
            share: Some(Taker::Preview),
            work: Work::Previews { max_edge: 2048, formats: vec![AssetFormat::Jpeg, AssetFormat::Webp] },
            options: Options::from(&RenderOptions::default()),
        }
    }

    #[test]
    fn a_request_comes_out_of_a_frame_as_it_went_in() {
        let frame = encode(&request(), &[]).expect("encodes");

        let (decoded, body): (Request, Vec<u8>) = read_frame(&mut frame.as_slice()).expect("reads").expect("one frame");

        assert_eq!(decoded, request());
        assert!(body.is_empty());
        assert!(read_frame::<Request>(&mut &[][..]).expect("a clean end").is_none(), "no frame at all: the end");
    }

    #[tokio::test]
    async fn rendered_assets_and_their_thumbhash_cross_in_the_body_in_order() {
        let asset = |format, bytes: &[u8]| Asset { width: 4, height: 3, format, bytes: bytes.to_vec() };
        let rendered = Rendered {
            assets: vec![asset(AssetFormat::Jpeg, b"jpeg bytes"), asset(AssetFormat::Webp, b"webp")],
            thumbhash: Some(Ok(b"hash".to_vec())),
        };
        let (reply, body) = rendered_reply(rendered);
        let frame = encode(&reply, &body).expect("encodes");

        let (reply, body): (Reply, Vec<u8>) = read_frame_async(&mut frame.as_slice()).await.expect("reads");

        let Reply::Rendered { assets, thumbhash } = reply else { panic!("{reply:?}") };
        let back = into_rendered(assets, thumbhash, &body).expect("lengths add up");
        assert_eq!(back.assets[0].bytes, b"jpeg bytes");
        assert_eq!((back.assets[1].format, back.assets[1].bytes.as_slice()), (AssetFormat::Webp, &b"webp"[..]));
        assert_eq!(back.thumbhash.expect("thumbnails carry a hash").expect("made"), b"hash");
    }

    #[test]
    fn lengths_that_do_not_add_up_or_exceed_the_limits_are_refused() {
        let head = AssetHead { format: AssetFormat::Jpeg, width: 1, height: 1, len: 10 };
        assert!(into_rendered(vec![head.clone()], None, b"short").is_err(), "the body is shorter than announced");
        assert!(into_rendered(vec![head], None, b"0123456789extra").is_err(), "bytes left over");

        let mut huge = Vec::from(u32::MAX.to_be_bytes());
        huge.extend_from_slice(&0_u64.to_be_bytes());
        let refused = read_frame::<Reply>(&mut huge.as_slice());
        assert!(matches!(refused, Err(ProtocolError::TooLong(_))), "{refused:?}");
        let truncated = &encode(&request(), &[]).expect("encodes")[..20];
        assert!(matches!(read_frame::<Request>(&mut &truncated[..]), Err(ProtocolError::Io(_))));
    }

    #[test]
    fn imaging_errors_keep_their_kind_across_the_pipe() {
        let too_large = ImagingError::TooLarge { width: 30000, height: 30000, max_pixels: 100_000_000 };
        for error in [
            ImagingError::Corrupt("bad Huffman table".into()),
            ImagingError::Unsupported("no libheif".into()),
            too_large,
            ImagingError::Io(std::io::Error::other("cannot read /x")),
        ] {
            let wire: WireError =
                serde_json::from_str(&serde_json::to_string(&WireError::from(&error)).expect("json")).expect("parses");

            let back = wire.into_imaging();

            assert_eq!(std::mem::discriminant(&back), std::mem::discriminant(&error));
            assert_eq!(back.to_string(), error.to_string());
        }
        let panicked = WireError::Panicked { message: "index out of bounds".into() }.into_error();
        assert!(matches!(panicked, SandboxError::Panicked(m) if m == "index out of bounds"));
    }
}
