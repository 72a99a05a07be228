//! Storage keys, typed by area: [`TempKey`] (an upload in flight, `tmp/`),
//! [`OriginalKey`] (an original, content-addressed under `originals/`) and
//! [`AssetKey`] (a thumbnail or preview under `assets/<image>/`). Each is
//! built by Pictor or parsed and checked, never glued from strings: no key
//! escapes the storage root (DESIGN "Security": no path from client input).

use std::fmt;

use super::StorageError;

/// A checked key: relative, `/`-separated segments of `[A-Za-z0-9._-]`,
/// none of them empty, `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    /// Checks that `key` is one Pictor could have made.
    ///
    /// # Errors
    /// [`StorageError::InvalidKey`] otherwise.
    pub fn parse(key: impl Into<String>) -> Result<Self, StorageError> {
        let key = key.into();
        let ok = !key.is_empty()
            && key.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            });
        if ok { Ok(Self(key)) } else { Err(StorageError::InvalidKey(key)) }
    }

    /// The key's text, as the database stores it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key of one area: parsed only when it lies in that area.
macro_rules! area_key {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(Key);

        impl $name {
            /// Checks a key of this area (as stored in a row or a payload).
            ///
            /// # Errors
            /// [`StorageError::InvalidKey`] for a bad key or one of another area.
            pub fn parse(key: impl Into<String>) -> Result<Self, StorageError> {
                let key = Key::parse(key)?;
                if key.as_str().starts_with($prefix) { Ok(Self(key)) } else { Err(StorageError::InvalidKey(key.0)) }
            }

            /// The key's text, as the database stores it.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl std::ops::Deref for $name {
            type Target = Key;

            fn deref(&self) -> &Key {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

area_key!(
    /// An upload in flight, in the temp area: `tmp/<uuid>.upload`.
    TempKey,
    "tmp/"
);
area_key!(
    /// An original, by its checksum: `originals/<first two hex digits>/<sha256>`,
    /// so the same bytes are stored once.
    OriginalKey,
    "originals/"
);
area_key!(
    /// A thumbnail or preview of one image: `assets/<image id>/<name>`.
    AssetKey,
    "assets/"
);

impl TempKey {
    /// A fresh, unique key for a new upload.
    pub fn new_upload() -> Self {
        Self(Key(format!("tmp/{}.upload", uuid::Uuid::now_v7())))
    }
}

impl OriginalKey {
    /// The key of the original with this SHA-256 (lowercase hex).
    ///
    /// # Errors
    /// The checksum is not 64 hex digits.
    pub fn for_checksum(sha256: &str) -> Result<Self, StorageError> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StorageError::InvalidKey(format!("originals/{sha256}")));
        }
        Self::parse(format!("originals/{}/{sha256}", &sha256[..2]))
    }

    /// The checksum the original is stored by: the key's last segment.
    pub fn checksum(&self) -> &str {
        self.as_str().rsplit('/').next().unwrap_or_default()
    }
}

impl AssetKey {
    /// An image's thumbnail of the given longest edge.
    ///
    /// # Errors
    /// The image id would not make a valid key.
    pub fn thumbnail(image_id: &str, size: u32) -> Result<Self, StorageError> {
        Self::parse(format!("{}/thumb-{size}.jpg", assets_prefix(image_id)?))
    }

    /// An image's preview in one encoding (`preview.jpg`, `.webp`, `.avif`).
    ///
    /// # Errors
    /// The image id would not make a valid key.
    pub fn preview(image_id: &str, format: pictor_imaging::AssetFormat) -> Result<Self, StorageError> {
        Self::parse(format!("{}/preview.{}", assets_prefix(image_id)?, format.extension()))
    }
}

impl AssetKey {
    /// The media type of the asset, from the extension Pictor gave its key.
    pub fn content_type(&self) -> &'static str {
        let extension = self.as_str().rsplit_once('.').map_or("", |(_, extension)| extension);
        [pictor_imaging::AssetFormat::Webp, pictor_imaging::AssetFormat::Avif]
            .into_iter()
            .find(|format| format.extension() == extension)
            .unwrap_or(pictor_imaging::AssetFormat::Jpeg)
            .mime()
    }
}

/// The prefix of all of an image's assets (`assets/<image id>`).
///
/// # Errors
/// The image id would not make a valid key.
pub fn assets_prefix(image_id: &str) -> Result<Key, StorageError> {
    let key = Key::parse(format!("assets/{image_id}"))?;
    if key.as_str().matches('/').count() == 1 { Ok(key) } else { Err(StorageError::InvalidKey(key.0)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_escape_the_root_are_refused() {
        for bad in ["", "/etc/passwd", "assets/../x", "assets//x", "a/./b", "assets/x y.jpg", "a\\b"] {
            assert!(Key::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn each_area_takes_only_its_own_keys() {
        assert!(AssetKey::parse("assets/x/thumb-64.jpg").is_ok());
        assert!(AssetKey::parse("originals/ab/abc").is_err());
        assert!(TempKey::parse("tmp/a.upload").is_ok());
        assert!(TempKey::parse("assets/a").is_err());
        assert!(TempKey::parse(TempKey::new_upload().as_str()).is_ok());
    }

    #[test]
    fn own_keys_are_built_valid_and_bad_parts_are_refused() {
        let sum = "ab".repeat(32);
        assert_eq!(OriginalKey::for_checksum(&sum).expect("valid").as_str(), format!("originals/ab/{sum}"));
        assert_eq!(OriginalKey::for_checksum(&sum).expect("valid").checksum(), sum);
        assert!(OriginalKey::for_checksum("../x").is_err());
        assert_eq!(AssetKey::thumbnail("0190-ab", 64).expect("valid").as_str(), "assets/0190-ab/thumb-64.jpg");
        assert!(AssetKey::thumbnail("../x", 64).is_err());
        assert!(assets_prefix("a/b").is_err());
    }

    #[test]
    fn each_asset_extension_has_its_media_type() {
        let media = |key: &str| AssetKey::parse(key).expect("asset").content_type();
        assert_eq!(media("assets/x/thumb-64.jpg"), "image/jpeg");
        assert_eq!(media("assets/x/preview.webp"), "image/webp");
        assert_eq!(media("assets/x/preview.avif"), "image/avif");
    }
}
