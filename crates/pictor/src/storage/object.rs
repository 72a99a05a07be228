//! Storage in an S3-compatible bucket (`STORAGE_URL=s3://bucket/prefix`),
//! through `object_store`. Keys keep the local layout's names under the
//! prefix (`tmp/`, `originals/`, `assets/<id>/`), so the bucket reads like
//! the folder. An upload streams into a multipart upload of `tmp/…` (parts
//! of a few MiB, never the whole file in memory); its promotion is a
//! server-side copy to `originals/<xx>/<sha256>` under the original's lock,
//! then the upload is deleted. An object appears whole or not at all (S3
//! writes are atomic), and is durable once the store acknowledges it.
//! Decoding reads a download in this process's own scratch folder.
//! Timeouts and retries are `object_store`'s, configured from the settings.

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::signer::{Method, Signer as _};
use object_store::{
    Attribute, Attributes, ClientConfigKey, GetOptions, GetRange, ObjectStore, ObjectStoreExt as _, PutOptions,
    PutPayload, RetryConfig, WriteMultipart,
};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt as _;

use super::{
    AssetKey, ByteStream, Key, Listed, LocalCopy, ObjectInfo, ObjectRead, OriginalKey, OriginalLocks, Promoted,
    Storage, StorageError, TempKey, UploadWriter,
};

/// Parts of one multipart upload sent at once.
const PARTS_IN_FLIGHT: usize = 2;
/// Bytes fetched per request by a blocking reader (the header probe).
const READ_AHEAD_BYTES: u64 = 256 * 1024;

/// How to reach the bucket. Endpoint, region and credentials come from the
/// usual `AWS_*` variables, read by `object_store`.
#[derive(Debug, Clone)]
pub struct ObjectSettings {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub url: String,
    /// The service's endpoint (`AWS_ENDPOINT_URL`); AWS when unset.
    pub endpoint: Option<String>,
    /// The bucket's region (`AWS_REGION`).
    pub region: Option<String>,
    /// Access key id and secret (else the usual AWS credential sources).
    pub credentials: Option<(String, String)>,
    /// Whether a plain-http endpoint is allowed (`AWS_ALLOW_HTTP`).
    pub allow_http: bool,
    /// Longest one request may take (the crate's `ClientOptions` timeout).
    pub timeout: Duration,
    /// Longest a connection may take to open.
    pub connect_timeout: Duration,
    /// Retries of one failed request (the crate's `RetryConfig`).
    pub max_retries: usize,
    /// Longest all the retries of one request may take.
    pub retry_timeout: Duration,
    /// Folder under which this process makes its own scratch folder.
    pub scratch_dir: PathBuf,
}

/// A [`Storage`] in an S3-compatible bucket.
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    /// The same client, for presigned URLs.
    signer: Arc<AmazonS3>,
    /// `""` or `"prefix/"`.
    prefix: String,
    /// This process's own scratch folder.
    scratch: Arc<Scratch>,
}

/// A process's scratch folder, removed when the storage is dropped (a
/// killed process leaves an empty or nearly empty one behind).
#[derive(Debug)]
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The bucket and the prefix of an `s3://bucket/prefix` URL.
fn parse_url(url: &str) -> Result<(String, String), StorageError> {
    let invalid = || StorageError::InvalidKey(format!("{url} (expected s3://bucket or s3://bucket/prefix)"));
    let rest = url.strip_prefix("s3://").ok_or_else(invalid)?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = prefix.trim_matches('/');
    if bucket.is_empty() || (!prefix.is_empty() && Key::parse(prefix).is_err()) {
        return Err(invalid());
    }
    Ok((bucket.to_owned(), if prefix.is_empty() { String::new() } else { format!("{prefix}/") }))
}

/// An error of the store on `key`: absence is [`StorageError::NotFound`],
/// anything else (unreachable, slow, refused) [`StorageError::Unavailable`].
fn remote(key: &str, e: object_store::Error) -> StorageError {
    match e {
        object_store::Error::NotFound { .. } => StorageError::NotFound(key.to_owned()),
        other => StorageError::Unavailable { key: key.to_owned(), source: Box::new(other) },
    }
}

fn local_io(key: &str, source: std::io::Error) -> StorageError {
    StorageError::Io { key: key.to_owned(), source }
}

/// A strong entity tag, quoted, from the store's.
fn quoted(etag: Option<String>, size: u64) -> String {
    match etag {
        Some(tag) => format!("\"{}\"", tag.trim_start_matches("W/").trim_matches('"')),
        None => format!("\"{size:x}\""),
    }
}

impl ObjectStorage {
    /// Connects to the bucket of `settings.url` (no request is made yet)
    /// and creates this process's scratch folder.
    ///
    /// # Errors
    /// A bad URL or client setting, or the scratch folder cannot be made.
    pub fn open(settings: &ObjectSettings) -> Result<Self, StorageError> {
        let (bucket, prefix) = parse_url(&settings.url)?;
        let retry = RetryConfig {
            max_retries: settings.max_retries,
            retry_timeout: settings.retry_timeout,
            ..RetryConfig::default()
        };
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket).with_allow_http(settings.allow_http);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &settings.region {
            builder = builder.with_region(region);
        }
        if let Some((id, secret)) = &settings.credentials {
            builder = builder.with_access_key_id(id).with_secret_access_key(secret);
        }
        let store = builder
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                format!("{}ms", settings.timeout.as_millis()),
            )
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                format!("{}ms", settings.connect_timeout.as_millis()),
            )
            .with_retry(retry)
            .build()
            .map_err(|e| remote(&settings.url, e))?;
        let scratch = settings.scratch_dir.join(format!("pictor-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&scratch).map_err(|e| local_io("scratch", e))?;
        let signer = Arc::new(store);
        Ok(Self { store: signer.clone(), signer, prefix, scratch: Arc::new(Scratch(scratch)) })
    }

    /// This process's scratch folder.
    pub fn scratch(&self) -> &std::path::Path {
        &self.scratch.0
    }

    fn path(&self, key: &Key) -> Path {
        Path::from(format!("{}{key}", self.prefix))
    }

    /// SHA-256 of an object, streamed.
    async fn sha256_of(&self, key: &Key) -> Result<String, StorageError> {
        let got = self.store.get(&self.path(key)).await.map_err(|e| remote(key.as_str(), e))?;
        let mut stream = got.into_stream();
        let mut hasher = Sha256::new();
        while let Some(chunk) = stream.next().await {
            hasher.update(chunk.map_err(|e| remote(key.as_str(), e))?);
        }
        Ok(hex::encode(hasher.finalize()))
    }

    /// Under the original's lock: drops the upload if the original exists,
    /// else copies it there.
    async fn place(&self, upload: &TempKey, original: &OriginalKey) -> Result<Promoted, StorageError> {
        match self.store.head(&self.path(original)).await {
            Ok(_) => {
                self.delete(upload).await?;
                Ok(Promoted::AlreadyStored)
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.store
                    .copy(&self.path(upload), &self.path(original))
                    .await
                    .map_err(|e| remote(upload.as_str(), e))?;
                Ok(Promoted::Moved)
            }
            Err(e) => Err(remote(original.as_str(), e)),
        }
    }
}

/// An upload streaming into a multipart upload, started at its first block
/// (an upload that fits one block is a single PUT).
struct ObjectUpload {
    key: TempKey,
    path: Path,
    store: Arc<dyn ObjectStore>,
    multipart: Option<WriteMultipart>,
}

#[async_trait::async_trait]
impl UploadWriter for ObjectUpload {
    fn key(&self) -> &TempKey {
        &self.key
    }

    async fn write(&mut self, mut block: Vec<u8>) -> Result<Vec<u8>, StorageError> {
        let multipart = match self.multipart.as_mut() {
            Some(multipart) => multipart,
            None => {
                let upload = self.store.put_multipart(&self.path).await.map_err(|e| remote(self.key.as_str(), e))?;
                self.multipart.insert(WriteMultipart::new(upload))
            }
        };
        multipart.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(|e| remote(self.key.as_str(), e))?;
        multipart.write(&block);
        block.clear();
        Ok(block)
    }

    async fn finish(self: Box<Self>, last: Vec<u8>) -> Result<TempKey, StorageError> {
        let this = *self;
        let written = match this.multipart {
            None => this.store.put(&this.path, PutPayload::from(last)).await.map(drop),
            Some(mut multipart) => {
                multipart.write(&last);
                // A failed finish aborts the multipart upload itself.
                multipart.finish().await.map(drop)
            }
        };
        written.map_err(|e| remote(this.key.as_str(), e))?;
        Ok(this.key)
    }

    async fn abort(self: Box<Self>) {
        if let Some(multipart) = self.multipart
            && let Err(e) = multipart.abort().await
        {
            tracing::warn!(key = %self.key, error = %e, "aborting a multipart upload failed; the bucket's lifecycle rule or gc removes it");
        }
    }
}

/// A blocking reader of an object, by ranges (for the header probe on a
/// blocking thread).
struct RangeReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    key: String,
    runtime: tokio::runtime::Handle,
    size: Option<u64>,
    pos: u64,
    buffer: Bytes,
    buffer_start: u64,
}

impl RangeReader {
    fn size(&mut self) -> std::io::Result<u64> {
        if let Some(size) = self.size {
            return Ok(size);
        }
        let meta = self.runtime.block_on(self.store.head(&self.path)).map_err(std::io::Error::other)?;
        self.size = Some(meta.size);
        Ok(meta.size)
    }
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let buffered = self.buffer_start..self.buffer_start + self.buffer.len() as u64;
        if !buffered.contains(&self.pos) {
            let size = self.size()?;
            if self.pos >= size {
                return Ok(0);
            }
            let range = self.pos..size.min(self.pos + READ_AHEAD_BYTES);
            let fetched = self.runtime.block_on(self.store.get_range(&self.path, range));
            self.buffer = fetched.map_err(|e| std::io::Error::other(format!("{}: {e}", self.key)))?;
            self.buffer_start = self.pos;
        }
        let from = usize::try_from(self.pos - self.buffer_start).map_err(std::io::Error::other)?;
        let n = buf.len().min(self.buffer.len() - from);
        buf[..n].copy_from_slice(&self.buffer[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for RangeReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
            SeekFrom::End(delta) => self.size()?.checked_add_signed(delta),
        };
        self.pos = target.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before 0"))?;
        Ok(self.pos)
    }
}

#[async_trait::async_trait]
impl Storage for ObjectStorage {
    async fn begin_upload(&self) -> Result<Box<dyn UploadWriter>, StorageError> {
        let key = TempKey::new_upload();
        Ok(Box::new(ObjectUpload { path: self.path(&key), key, store: self.store.clone(), multipart: None }))
    }

    async fn promote(
        &self,
        upload: &TempKey,
        original: &OriginalKey,
        sha256: &str,
        locks: &dyn OriginalLocks,
    ) -> Result<Promoted, StorageError> {
        let actual = self.sha256_of(upload).await?;
        if actual != sha256 {
            return Err(StorageError::ChecksumMismatch {
                key: upload.to_string(),
                actual,
                expected: sha256.to_owned(),
            });
        }
        let lock = locks.lock(original).await?;
        let placed = self.place(upload, original).await;
        lock.release().await;
        let placed = placed?;
        if placed == Promoted::Moved {
            // The original is in place: the upload is no longer needed
            // (left behind by a failure here, the temp sweeper removes it).
            self.delete(upload).await?;
        }
        Ok(placed)
    }

    async fn abort(&self, upload: &TempKey) -> Result<(), StorageError> {
        self.delete(upload).await
    }

    fn open_blocking(&self, key: &Key) -> Result<Box<dyn ObjectRead>, StorageError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|e| local_io(key.as_str(), std::io::Error::other(e)))?;
        Ok(Box::new(RangeReader {
            store: self.store.clone(),
            path: self.path(key),
            key: key.to_string(),
            runtime,
            size: None,
            pos: 0,
            buffer: Bytes::new(),
            buffer_start: 0,
        }))
    }

    /// Each asset is one PUT with its content type and `Cache-Control`,
    /// all sent at once.
    async fn put_assets(&self, assets: Vec<(AssetKey, Vec<u8>)>) -> Result<(), StorageError> {
        let puts = assets.into_iter().map(|(key, bytes)| async move {
            let mut attributes = Attributes::new();
            attributes.insert(Attribute::ContentType, key.content_type().into());
            attributes.insert(Attribute::CacheControl, super::ASSET_CACHE_CONTROL.into());
            let options = PutOptions { attributes, ..PutOptions::default() };
            self.store
                .put_opts(&self.path(&key), PutPayload::from(bytes), options)
                .await
                .map(drop)
                .map_err(|e| remote(key.as_str(), e))
        });
        futures_util::future::try_join_all(puts).await.map(drop)
    }

    async fn put(&self, key: &Key, bytes: Vec<u8>) -> Result<(), StorageError> {
        let mut options = PutOptions::default();
        if let Ok(asset) = AssetKey::parse(key.as_str()) {
            options.attributes.insert(Attribute::ContentType, asset.content_type().into());
            options.attributes.insert(Attribute::CacheControl, super::ASSET_CACHE_CONTROL.into());
        }
        let put = self.store.put_opts(&self.path(key), PutPayload::from(bytes), options).await;
        put.map(drop).map_err(|e| remote(key.as_str(), e))
    }

    async fn get(&self, key: &Key) -> Result<Vec<u8>, StorageError> {
        let got = self.store.get(&self.path(key)).await.map_err(|e| remote(key.as_str(), e))?;
        Ok(got.bytes().await.map_err(|e| remote(key.as_str(), e))?.to_vec())
    }

    async fn stat(&self, key: &Key) -> Result<ObjectInfo, StorageError> {
        let meta = self.store.head(&self.path(key)).await.map_err(|e| remote(key.as_str(), e))?;
        Ok(ObjectInfo { size: meta.size, etag: quoted(meta.e_tag, meta.size) })
    }

    async fn read_range(&self, key: &Key, range: Range<u64>) -> Result<ByteStream, StorageError> {
        let name = key.to_string();
        if range.is_empty() {
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let options = GetOptions { range: Some(GetRange::Bounded(range)), ..GetOptions::default() };
        let got = self.store.get_opts(&self.path(key), options).await.map_err(|e| remote(&name, e))?;
        Ok(Box::pin(got.into_stream().map_err(move |e| remote(&name, e))))
    }

    async fn local_copy(&self, key: &Key) -> Result<LocalCopy, StorageError> {
        let got = self.store.get(&self.path(key)).await.map_err(|e| remote(key.as_str(), e))?;
        let copy = LocalCopy {
            path: self.scratch.0.join(format!("{}.download", uuid::Uuid::now_v7().simple())),
            scratch: true,
        };
        let mut file = tokio::fs::File::create(copy.path()).await.map_err(|e| local_io(key.as_str(), e))?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| remote(key.as_str(), e))?;
            file.write_all(&chunk).await.map_err(|e| local_io(key.as_str(), e))?;
        }
        file.flush().await.map_err(|e| local_io(key.as_str(), e))?;
        Ok(copy)
    }

    async fn list(&self, area: &str) -> Result<Vec<Listed>, StorageError> {
        let prefix = Path::from(format!("{}{area}", self.prefix));
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await.map_err(|e| remote(area, e))?;
        Ok(metas
            .into_iter()
            .filter_map(|meta| {
                let name = meta.location.as_ref().strip_prefix(self.prefix.as_str())?;
                Some(Listed { key: Key::parse(name).ok()?, modified: SystemTime::from(meta.last_modified) })
            })
            .collect())
    }

    /// A presigned GET URL; the public URL is the same without its
    /// signature (whatever the endpoint's addressing style).
    async fn direct_url(&self, key: &Key, how: super::AssetRedirect) -> Result<Option<String>, StorageError> {
        let expires = Duration::from_secs(super::PRESIGNED_URL_SECS);
        let signed = self.signer.signed_url(Method::GET, &self.path(key), expires).await;
        let mut url = signed.map_err(|e| remote(key.as_str(), e))?;
        if how == super::AssetRedirect::Public {
            url.set_query(None);
        }
        Ok(Some(url.to_string()))
    }

    async fn exists(&self, key: &Key) -> Result<bool, StorageError> {
        match self.store.head(&self.path(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(remote(key.as_str(), e)),
        }
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(remote(key.as_str(), e)),
        }
    }

    async fn delete_assets(&self, image_id: &str) -> Result<(), StorageError> {
        let prefix = super::assets_prefix(image_id)?;
        for listed in self.list(prefix.as_str()).await? {
            // `assets/<id>` also prefixes `assets/<id>x/…`: only this folder.
            if listed.key.as_str().starts_with(&format!("{prefix}/")) {
                self.delete(&listed.key).await?;
            }
        }
        Ok(())
    }

    /// Everything in `tmp/` last written before `before` (an object store
    /// has no part files beside objects).
    async fn temp_files_before(&self, before: SystemTime, _beside_objects: bool) -> Result<Vec<Key>, StorageError> {
        Ok(self.list("tmp").await?.into_iter().filter(|l| l.modified < before).map(|l| l.key).collect())
    }

    async fn check_writable(&self) -> Result<(), StorageError> {
        let key = TempKey::new_upload();
        self.store.put(&self.path(&key), PutPayload::from_static(b"ok")).await.map_err(|e| remote(key.as_str(), e))?;
        self.delete(&key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_and_an_optional_prefix() {
        assert_eq!(parse_url("s3://b").expect("bucket"), ("b".to_owned(), String::new()));
        assert_eq!(parse_url("s3://b/p/q/").expect("prefix"), ("b".to_owned(), "p/q/".to_owned()));
        for bad in ["b", "s3://", "s3:///p", "s3://b/../x", "file:///x"] {
            assert!(parse_url(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn entity_tags_are_quoted_once() {
        assert_eq!(quoted(Some("\"abc\"".into()), 3), "\"abc\"");
        assert_eq!(quoted(Some("abc".into()), 3), "\"abc\"");
        assert_eq!(quoted(None, 255), "\"ff\"");
    }
}
