//! Firmware files in an S3-compatible bucket ([`S3BlobStore`]), beside the directory store:
//! uploaded once under `firmware/<sha256>`, read by range, never served unless checked.
//!
//! # Integrity: the same contract as [`super::DirBlobStore`]
//!
//! An object can be overwritten or damaged behind the server's back (another writer under the
//! same key, a bucket restored from an old backup, a proxy that mangles bytes). So the first
//! [`BlobStore::open`] of a file streams the whole object once and checks it against its name
//! (its SHA-256), keeping a SHA-256 of every [`S3_CHUNK`]-byte chunk in memory (32 bytes per
//! 64 KiB: 8 KiB for a 16 MiB file). Every later read fetches the chunks it needs with ranged
//! GETs and checks each against that table *before* a byte of it is returned or cached, so an
//! object swapped after the open is caught at the first chunk fetched from it:
//! [`std::io::ErrorKind::InvalidData`], which the stream service turns into a rejection and a
//! mark on the OTA update (`crate::streams`), then [`BlobStore::forget`] makes the next open
//! check the object again. The table is kept per hash, so later opens cost no request at all:
//! a per-open HEAD would cost one request per device request, and would prove nothing the
//! per-chunk check does not. The first open after an upload also reads the object back (the
//! table is not taken from the uploaded bytes): it proves the bucket holds what was sent.
//!
//! # Cost: one GET per chunk, whatever the number of devices
//!
//! Verified chunks are kept in one bounded in-memory cache shared by every file (least
//! recently used out first; [`S3Options::cache_bytes`], 64 MiB by default), so a thousand
//! devices reading the same firmware cost one ranged GET per chunk, not a thousand. Concurrent
//! misses on the same chunk (or the same first open) are coalesced: one request, the others
//! wait for it. A cached chunk is correct forever (the name is the content's hash), so it is
//! served even when the bucket is unreachable; a chunk not cached then fails with an error
//! that names the bucket, the object and the bytes, and nothing of it is returned. Chunks of
//! 64 KiB: one request costs a round trip (milliseconds), so a chunk holds many blocks (AWS
//! OTA blocks are 256 B to 128 KiB; Ferrota's devices ask for 1-4 KiB).
//!
//! Requests are bounded: each by [`S3Options::timeout`], with a few retries (backoff) within
//! that time, so an unreachable server fails a read in seconds; the device asks again, and
//! once the server is back the same reader serves again.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use sha2::{Digest, Sha256};

use super::blobs::{BlobReader, BlobStore, valid_hash};
use super::{StoreError, StoreResult};

/// Granularity of the ranged reads, of the cache and of the per-chunk hashes (see the module
/// docs).
pub const S3_CHUNK: u64 = 64 * 1024;

/// Default size of the chunk cache: 64 MiB, four 16 MiB firmware files.
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Where the bucket is and how to reach it. Credentials not given here come from the usual
/// AWS environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT`), read by `object_store`.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// Bucket name.
    pub bucket: String,
    /// Endpoint URL of an S3-compatible server (`http://127.0.0.1:8333`); `None`: AWS S3 of
    /// the region. Plain `http://` is allowed only when given here explicitly.
    pub endpoint: Option<String>,
    /// Region to sign for (`us-east-1` when neither this nor `AWS_REGION` says).
    pub region: Option<String>,
    /// Access key id (else `AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// Secret access key (else `AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: Option<String>,
    /// Bytes of verified chunks kept in memory.
    pub cache_bytes: u64,
    /// Limit for one request, retries included.
    pub timeout: Duration,
}

impl S3Options {
    /// Options for `bucket` with the defaults: AWS S3, credentials from the environment, a
    /// 64 MiB cache, 10 s per request.
    pub fn new(bucket: impl Into<String>) -> Self {
        S3Options {
            bucket: bucket.into(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            cache_bytes: DEFAULT_CACHE_BYTES,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Requests the store made to the bucket, for tests and metrics: a cache hit costs none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct S3Requests {
    /// GETs: whole-object reads (checks at open) and ranged chunk reads.
    pub gets: u64,
    /// PUTs (uploads).
    pub puts: u64,
}

/// The chunk table of a checked object: its size and the SHA-256 of each chunk.
struct Table {
    len: u64,
    chunks: Vec<[u8; 32]>,
}

/// Weighs a cached chunk by its size, so the cache is bounded in bytes.
#[derive(Clone)]
struct ChunkWeight;

impl quick_cache::Weighter<(String, u64), Bytes> for ChunkWeight {
    fn weight(&self, _key: &(String, u64), val: &Bytes) -> u64 {
        (val.len() as u64).max(1)
    }
}

struct Inner {
    s3: Arc<dyn ObjectStore>,
    /// `s3://bucket` (and the endpoint when not AWS), for error messages.
    label: String,
    /// Checked objects by hash (a few KiB each; at most [`TABLES`] of them).
    tables: quick_cache::sync::Cache<String, Arc<Table>>,
    /// Verified chunks by (hash, chunk index).
    chunks: quick_cache::sync::Cache<(String, u64), Bytes, ChunkWeight>,
    gets: AtomicU64,
    puts: AtomicU64,
}

/// Checked objects remembered: far more than the firmware files of live OTA updates.
const TABLES: usize = 4096;

/// Content-addressed files in an S3-compatible bucket (see the module docs).
pub struct S3BlobStore(Arc<Inner>);

fn key(hash: &str) -> Path {
    Path::from(format!("firmware/{hash}"))
}

/// An error and its causes, `a: b: c` (object_store's own message often ends at "HTTP error"
/// while the cause says "connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(c) = next {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        next = c.source();
    }
    out
}

fn damaged(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

impl S3BlobStore {
    /// Connects to the bucket and checks that it answers (a LIST of `firmware/`), so a wrong
    /// endpoint, bucket or credentials fail at start with a message that says which.
    pub async fn connect(opts: &S3Options) -> StoreResult<Self> {
        // object_store's HTTP client uses the process's rustls provider: Ferrota's (ring).
        crate::tls::install_crypto_provider();
        let retry = RetryConfig {
            max_retries: 3,
            retry_timeout: opts.timeout,
            ..RetryConfig::default()
        };
        // Client options first: `with_client_options` replaces `allow_http` too.
        let plain = opts
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&opts.bucket)
            .with_retry(retry)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(opts.timeout)
                    .with_connect_timeout(opts.timeout.min(Duration::from_secs(5)))
                    .with_allow_http(plain),
            );
        if let Some(e) = &opts.endpoint {
            b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
        }
        if let Some(r) = &opts.region {
            b = b.with_region(r);
        } else if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            b = b.with_region("us-east-1");
        }
        if let Some(k) = &opts.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(k) = &opts.secret_access_key {
            b = b.with_secret_access_key(k);
        }
        let label = match &opts.endpoint {
            Some(e) => format!("s3://{} at {e}", opts.bucket),
            None => format!("s3://{}", opts.bucket),
        };
        let s3 = b
            .build()
            .map_err(|e| StoreError::Io(std::io::Error::other(format!("{label}: {e}"))))?;
        let cache_bytes = opts.cache_bytes.max(S3_CHUNK);
        let store = S3BlobStore(Arc::new(Inner {
            s3: Arc::new(s3),
            tables: quick_cache::sync::Cache::new(TABLES),
            chunks: quick_cache::sync::Cache::with_weighter(
                (cache_bytes / S3_CHUNK) as usize,
                cache_bytes,
                ChunkWeight,
            ),
            label,
            gets: AtomicU64::new(0),
            puts: AtomicU64::new(0),
        }));
        store
            .0
            .s3
            .list_with_delimiter(Some(&Path::from("firmware")))
            .await
            .map_err(|e| {
                // Without keys, object_store asks the instance metadata service, whose
                // refusal says nothing about keys: say what is missing.
                let hint = if opts.access_key_id.is_none()
                    && std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
                {
                    " (no credentials given: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                     or run where instance credentials are available)"
                } else {
                    ""
                };
                StoreError::Io(std::io::Error::other(format!(
                    "{} is not reachable: {}{hint}",
                    store.0.label,
                    chain(&e)
                )))
            })?;
        Ok(store)
    }

    /// Bytes of chunks in the cache now (at most [`S3Options::cache_bytes`]).
    pub fn cached_bytes(&self) -> u64 {
        self.0.chunks.weight()
    }

    /// The requests made so far (a cache hit makes none).
    pub fn requests(&self) -> S3Requests {
        S3Requests {
            gets: self.0.gets.load(Ordering::Relaxed),
            puts: self.0.puts.load(Ordering::Relaxed),
        }
    }
}

impl Inner {
    fn failed(&self, what: &str, e: object_store::Error) -> std::io::Error {
        let kind = match e {
            object_store::Error::NotFound { .. } => std::io::ErrorKind::NotFound,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, format!("{}: {what}: {}", self.label, chain(&e)))
    }

    /// Streams the whole object and checks it against `hash`, recording the chunk hashes.
    async fn check(&self, hash: &str) -> StoreResult<Table> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        let path = key(hash);
        let res = self.s3.get(&path).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound(format!("file {hash}")),
            e => StoreError::Io(self.failed(&format!("reading {path}"), e)),
        })?;
        let mut stream = res.into_stream();
        let mut whole = Sha256::new();
        let mut chunk = Sha256::new();
        let mut in_chunk = 0u64;
        let mut chunks = Vec::new();
        let mut len = 0u64;
        while let Some(part) = stream.next().await {
            let part =
                part.map_err(|e| StoreError::Io(self.failed(&format!("reading {path}"), e)))?;
            whole.update(&part);
            len += part.len() as u64;
            let mut rest = &part[..];
            while !rest.is_empty() {
                let take = rest.len().min((S3_CHUNK - in_chunk) as usize);
                chunk.update(&rest[..take]);
                in_chunk += take as u64;
                rest = &rest[take..];
                if in_chunk == S3_CHUNK {
                    chunks.push(std::mem::take(&mut chunk).finalize().into());
                    in_chunk = 0;
                }
            }
        }
        if in_chunk > 0 {
            chunks.push(chunk.finalize().into());
        }
        let actual = hex::encode(whole.finalize());
        if actual != hash {
            return Err(StoreError::Damaged(format!(
                "{} {path}: {len} bytes whose SHA-256 is {actual}, not the {hash} it was stored \
                 with",
                self.label
            )));
        }
        Ok(Table { len, chunks })
    }

    /// Chunk `i` of object `hash`, from the cache or one ranged GET checked against `table`.
    async fn chunk(&self, hash: &str, table: &Table, i: u64) -> std::io::Result<Bytes> {
        let k = (hash.to_string(), i);
        self.chunks
            .get_or_insert_async(&k, async {
                let want = table
                    .chunks
                    .get(i as usize)
                    .ok_or_else(|| damaged("no chunk hash".into()))?;
                let range: Range<u64> = i * S3_CHUNK..((i + 1) * S3_CHUNK).min(table.len);
                let path = key(hash);
                self.gets.fetch_add(1, Ordering::Relaxed);
                let got = self
                    .s3
                    .get_range(&path, range.clone())
                    .await
                    .map_err(|e| self.failed(&format!("reading {path} bytes {range:?}"), e))?;
                if got.len() as u64 != range.end - range.start
                    || Sha256::digest(&got).as_slice() != want
                {
                    return Err(damaged(format!(
                        "{} {path}: bytes {}..{} changed since the object was checked",
                        self.label, range.start, range.end
                    )));
                }
                Ok(got)
            })
            .await
    }
}

/// An open object: its checked table and the shared client and cache.
struct S3Blob {
    inner: Arc<Inner>,
    hash: String,
    table: Arc<Table>,
}

#[async_trait::async_trait]
impl BlobReader for S3Blob {
    fn len(&self) -> u64 {
        self.table.len
    }

    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let len = self.table.len;
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|e| *e <= len)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("read past the end of a {len}-byte file"),
                )
            })?;
        if buf.is_empty() {
            return Ok(());
        }
        // Every chunk is fetched and checked before a byte is copied: on error, nothing.
        let (first, last) = (offset / S3_CHUNK, (end - 1) / S3_CHUNK);
        let mut got = Vec::with_capacity((last - first + 1) as usize);
        for i in first..=last {
            got.push(self.inner.chunk(&self.hash, &self.table, i).await?);
        }
        let mut at = 0usize;
        for (k, c) in got.iter().enumerate() {
            let start = (first + k as u64) * S3_CHUNK;
            let from = offset.max(start) - start;
            let to = end.min(start + c.len() as u64) - start;
            let n = (to - from) as usize;
            buf[at..at + n].copy_from_slice(&c[from as usize..to as usize]);
            at += n;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl BlobStore for S3BlobStore {
    async fn put(&self, data: &[u8]) -> StoreResult<String> {
        let hash = hex::encode(Sha256::digest(data));
        // Already stored and whole: nothing to upload. Absent or damaged: the upload
        // (re)writes it. Unreachable: an error, not a blind upload.
        match self.0.check(&hash).await {
            Ok(t) => {
                self.0.tables.insert(hash.clone(), Arc::new(t));
                return Ok(hash);
            }
            Err(StoreError::NotFound(_) | StoreError::Damaged(_)) => {}
            Err(e) => return Err(e),
        }
        self.0.tables.remove(&hash);
        self.0.puts.fetch_add(1, Ordering::Relaxed);
        let path = key(&hash);
        self.0
            .s3
            .put(&path, PutPayload::from(Bytes::copy_from_slice(data)))
            .await
            .map_err(|e| StoreError::Io(self.0.failed(&format!("uploading {path}"), e)))?;
        Ok(hash)
    }

    async fn open(&self, hash: &str) -> StoreResult<Arc<dyn BlobReader>> {
        if !valid_hash(hash) {
            return Err(StoreError::NotFound(format!("file {hash}")));
        }
        let table = self
            .0
            .tables
            .get_or_insert_async(hash, async { self.0.check(hash).await.map(Arc::new) })
            .await?;
        Ok(Arc::new(S3Blob {
            inner: self.0.clone(),
            hash: hash.to_string(),
            table,
        }))
    }

    fn forget(&self, hash: &str) {
        self.0.tables.remove(hash);
    }

    async fn remove(&self, hash: &str) -> StoreResult<()> {
        if !valid_hash(hash) {
            return Ok(());
        }
        self.0.tables.remove(hash);
        let path = key(hash);
        match self.0.s3.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::Io(
                self.0.failed(&format!("deleting {path}"), e),
            )),
        }
    }
}
