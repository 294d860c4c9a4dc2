//! Firmware files, content-addressed: a file is stored once under its SHA-256 and read back by
//! block ([`BlobReader::read_at`], a positioned read), so serving a block never copies the file.
//!
//! # Integrity: wrong bytes are never served
//!
//! A file on disk can change behind the server's back (a flipped bit, a truncation, an
//! operator's mistaken copy, a deletion). Devices would then fail late and obscurely (a
//! signature error after the whole download, or a stall), and the operator would never learn
//! why. So [`DirBlobStore::open`] reads the whole file once and checks it against its name
//! (its SHA-256), keeping a SHA-256 of every [`CHUNK`]-byte chunk; every
//! [`BlobReader::read_at`] then reads the chunks that hold the requested range and checks
//! each against its recorded hash *after* reading it, so a change between the open and a read
//! — even one that keeps the file's size and time stamps — is caught before a byte leaves.
//! A short read (a truncated file) is caught the same way. A file deleted or replaced on disk
//! (another inode under the name) is seen at the next `open` (one `stat` per request) and
//! re-checked, or reported missing. Every such failure is [`StoreError::Damaged`] or
//! [`StoreError::NotFound`]; the stream service turns it into a rejection the device acts on
//! and a mark on the OTA update (see `crate::streams`).
//!
//! Cost: hashing every served byte once more (SHA-256 runs at ~1.7 GB/s here, `ferrota bench
//! verify`; a 100 Mbit/s link carries 12 MB/s) and 32 bytes of hash per 4 KiB of an open file
//! (128 KiB for a 16 MiB file). Chunks of 4 KiB: the smallest block size a device asks for in
//! practice, so a block costs at most one extra chunk of reading at each end.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::{StoreError, StoreResult};

/// Read access to one stored file. Async: a store may read over the network
/// ([`super::S3BlobStore`]); the directory store reads the local file in place (a positioned
/// read of a few KiB, as before the trait was async).
#[async_trait::async_trait]
pub trait BlobReader: Send + Sync {
    /// Size in bytes.
    fn len(&self) -> u64;
    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads exactly `buf.len()` bytes at `offset`. An error of kind `InvalidData` means the
    /// bytes on disk are not the ones stored (see the module docs): nothing was returned.
    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

/// Granularity of the per-chunk hashes kept for an open file (see the module docs).
pub const CHUNK: usize = 4096;

/// Content-addressed file storage: files in a directory ([`DirBlobStore`]), in an
/// S3-compatible bucket ([`super::S3BlobStore`]) or in memory ([`MemoryBlobs`]).
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `data`, returning its SHA-256 hex (idempotent).
    async fn put(&self, data: &[u8]) -> StoreResult<String>;
    /// Opens a stored file, checked against its hash: [`StoreError::Damaged`] when its content
    /// is not what was stored, [`StoreError::NotFound`] when it is gone.
    async fn open(&self, hash: &str) -> StoreResult<Arc<dyn BlobReader>>;
    /// Forgets what an earlier [`BlobStore::open`] checked, so the next one checks the file
    /// again (after a read found it damaged).
    fn forget(&self, hash: &str);
    /// Deletes a stored file (a missing one is not an error). The caller checks that no OTA
    /// update's stream refers to it: the store is content-addressed, so one file can serve
    /// several updates.
    async fn remove(&self, hash: &str) -> StoreResult<()>;
}

/// Files in `<dir>/<sha256>`; written to a temporary name, synced, then renamed.
pub struct DirBlobStore {
    dir: PathBuf,
    open: Mutex<HashMap<String, Arc<FileBlob>>>,
}

struct FileBlob {
    file: std::fs::File,
    len: u64,
    /// Device and inode of the file checked: another file under the name is re-checked.
    id: (u64, u64),
    /// SHA-256 of each [`CHUNK`] of the content, as checked against the name at open.
    chunks: Vec<[u8; 32]>,
}

fn damaged(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

impl FileBlob {
    /// Opens `path` and checks its whole content against `hash`, recording the chunk hashes.
    fn check(path: &Path, hash: &str) -> StoreResult<FileBlob> {
        let file = std::fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound(format!("file {hash}")),
            _ => StoreError::Io(e),
        })?;
        let meta = file.metadata()?;
        let mut whole = Sha256::new();
        let mut chunks = Vec::with_capacity((meta.len() as usize).div_ceil(CHUNK));
        let mut buf = vec![0u8; CHUNK];
        let mut len = 0u64;
        let mut r = &file;
        loop {
            // Fill a whole chunk (read may return less), so chunk boundaries are fixed.
            let mut got = 0;
            while got < CHUNK {
                match r.read(&mut buf[got..])? {
                    0 => break,
                    n => got += n,
                }
            }
            if got == 0 {
                break;
            }
            whole.update(&buf[..got]);
            chunks.push(Sha256::digest(&buf[..got]).into());
            len += got as u64;
            if got < CHUNK {
                break;
            }
        }
        let actual = hex::encode(whole.finalize());
        if actual != hash {
            return Err(StoreError::Damaged(format!(
                "{}: {len} bytes whose SHA-256 is {actual}, not the {hash} it was stored with",
                path.display()
            )));
        }
        Ok(FileBlob {
            file,
            len,
            id: (meta.dev(), meta.ino()),
            chunks,
        })
    }
}

#[async_trait::async_trait]
impl BlobReader for FileBlob {
    fn len(&self) -> u64 {
        self.len
    }
    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|e| *e <= self.len)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("read past the end of a {}-byte file", self.len),
                )
            })?;
        if buf.is_empty() {
            return Ok(());
        }
        let (first, last) = (offset / CHUNK as u64, (end - 1) / CHUNK as u64);
        let start = first * CHUNK as u64;
        let stop = ((last + 1) * CHUNK as u64).min(self.len);
        let mut chunk = vec![0u8; (stop - start) as usize];
        self.file.read_exact_at(&mut chunk, start).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                damaged(format!(
                    "shorter than the {} bytes it was stored with (truncated)",
                    self.len
                ))
            } else {
                e
            }
        })?;
        for (k, c) in chunk.chunks(CHUNK).enumerate() {
            let i = first as usize + k;
            let want = self
                .chunks
                .get(i)
                .ok_or_else(|| damaged("no chunk hash".into()))?;
            if Sha256::digest(c).as_slice() != want {
                return Err(damaged(format!(
                    "bytes {}..{} changed since the file was stored",
                    i * CHUNK,
                    i * CHUNK + c.len()
                )));
            }
        }
        let skip = (offset - start) as usize;
        buf.copy_from_slice(&chunk[skip..skip + buf.len()]);
        Ok(())
    }
}

impl DirBlobStore {
    /// Uses (and creates) `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> StoreResult<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(DirBlobStore {
            dir,
            open: Mutex::new(HashMap::new()),
        })
    }
}

pub(super) fn valid_hash(h: &str) -> bool {
    h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[async_trait::async_trait]
impl BlobStore for DirBlobStore {
    async fn put(&self, data: &[u8]) -> StoreResult<String> {
        let hash = hex::encode(Sha256::digest(data));
        let path = self.dir.join(&hash);
        // Already stored and whole: nothing to write. Stored but damaged (see the module
        // docs): the upload restores it.
        if path.exists() && FileBlob::check(&path, &hash).is_ok() {
            return Ok(hash);
        }
        self.forget(&hash);
        let tmp = self.dir.join(format!(".{hash}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(hash)
    }

    async fn open(&self, hash: &str) -> StoreResult<Arc<dyn BlobReader>> {
        if !valid_hash(hash) {
            return Err(StoreError::NotFound(format!("file {hash}")));
        }
        let path = self.dir.join(hash);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = open.get(hash) {
            // The same file still under its name: its chunks were checked. Deleted or replaced
            // (another inode): forget it and check what is there now.
            match std::fs::metadata(&path) {
                Ok(m) if (m.dev(), m.ino()) == b.id => return Ok(b.clone()),
                _ => {
                    open.remove(hash);
                }
            }
        }
        let b = Arc::new(FileBlob::check(&path, hash)?);
        open.insert(hash.to_string(), b.clone());
        Ok(b)
    }

    fn forget(&self, hash: &str) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(hash);
    }

    async fn remove(&self, hash: &str) -> StoreResult<()> {
        if !valid_hash(hash) {
            return Ok(());
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(hash);
        match std::fs::remove_file(self.dir.join(hash)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// Content-addressed files in memory: the [`BlobStore`] contract without a directory, for
/// tests and the simulation harness (`ferrota_lab::sim_service`) beside
/// [`super::MemoryStore`]: no temporary directory and no fsync per file, which hundreds of
/// power-cut runs would pay. Nothing is ever damaged here, so [`BlobStore::forget`] has
/// nothing to forget.
#[derive(Default)]
pub struct MemoryBlobs(Mutex<HashMap<String, Arc<Vec<u8>>>>);

struct MemoryBlob(Arc<Vec<u8>>);

#[async_trait::async_trait]
impl BlobReader for MemoryBlob {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    async fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let a = usize::try_from(offset).map_err(std::io::Error::other)?;
        let src = a
            .checked_add(buf.len())
            .and_then(|b| self.0.get(a..b))
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl MemoryBlobs {
    fn files(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Vec<u8>>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl BlobStore for MemoryBlobs {
    async fn put(&self, data: &[u8]) -> StoreResult<String> {
        let sha = hex::encode(Sha256::digest(data));
        self.files()
            .entry(sha.clone())
            .or_insert_with(|| Arc::new(data.to_vec()));
        Ok(sha)
    }
    async fn open(&self, hash: &str) -> StoreResult<Arc<dyn BlobReader>> {
        match self.files().get(hash) {
            Some(d) => Ok(Arc::new(MemoryBlob(d.clone()))),
            None => Err(StoreError::NotFound(format!("file {hash}"))),
        }
    }
    fn forget(&self, _hash: &str) {}
    async fn remove(&self, hash: &str) -> StoreResult<()> {
        self.files().remove(hash);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, DirBlobStore) {
        let d = tempfile::tempdir().expect("tempdir");
        let s = DirBlobStore::new(d.path().join("files")).expect("store");
        (d, s)
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 253) as u8).collect()
    }

    async fn read_all(b: &dyn BlobReader) -> std::io::Result<Vec<u8>> {
        let mut out = vec![0u8; b.len() as usize];
        b.read_at(0, &mut out).await?;
        Ok(out)
    }

    #[tokio::test]
    async fn reads_any_range_across_chunks() {
        let (_d, s) = store();
        let d = data(3 * CHUNK + 100);
        let h = s.put(&d).await.expect("put");
        let b = s.open(&h).await.expect("open");
        assert_eq!(b.len(), d.len() as u64);
        for (off, len) in [
            (0, 1),
            (0, CHUNK),
            (CHUNK - 1, 2),
            (5, 2 * CHUNK + 90),
            (3 * CHUNK, 100),
        ] {
            let mut buf = vec![0u8; len];
            b.read_at(off as u64, &mut buf).await.expect("read");
            assert_eq!(buf, d[off..off + len], "{off}+{len}");
        }
        let mut past = [0u8; 2];
        assert!(b.read_at(d.len() as u64 - 1, &mut past).await.is_err());
    }

    #[tokio::test]
    async fn a_file_changed_after_open_is_not_served() {
        let (_d, s) = store();
        let d = data(2 * CHUNK + 10);
        let h = s.put(&d).await.expect("put");
        let b = s.open(&h).await.expect("open");
        // Flip one byte in place (same size, same inode).
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(s.dir.join(&h))
            .expect("open for write");
        f.write_all_at(&[d[CHUNK + 5] ^ 1], (CHUNK + 5) as u64)
            .expect("flip");
        let mut first = vec![0u8; CHUNK];
        b.read_at(0, &mut first)
            .await
            .expect("an untouched chunk is still served");
        assert_eq!(first, d[..CHUNK]);
        let mut buf = vec![0u8; 16];
        let e = b
            .read_at(CHUNK as u64, &mut buf)
            .await
            .expect_err("damaged");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(buf, [0u8; 16], "nothing of the damaged chunk is returned");
        // A new open checks the whole file again.
        s.forget(&h);
        assert!(matches!(s.open(&h).await, Err(StoreError::Damaged(_))));
        // Uploading the same content again repairs it.
        assert_eq!(s.put(&d).await.expect("put"), h);
        assert_eq!(
            read_all(&*s.open(&h).await.expect("open"))
                .await
                .expect("read"),
            d
        );
    }

    #[tokio::test]
    async fn a_truncated_file_is_not_served() {
        let (_d, s) = store();
        let d = data(2 * CHUNK);
        let h = s.put(&d).await.expect("put");
        let b = s.open(&h).await.expect("open");
        std::fs::OpenOptions::new()
            .write(true)
            .open(s.dir.join(&h))
            .expect("open")
            .set_len(CHUNK as u64 + 1)
            .expect("truncate");
        let e = read_all(&*b).await.expect_err("truncated");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        s.forget(&h);
        assert!(matches!(s.open(&h).await, Err(StoreError::Damaged(_))));
    }

    #[tokio::test]
    async fn a_file_damaged_before_open_is_refused_at_open() {
        let (_d, s) = store();
        let d = data(CHUNK + 1);
        let h = s.put(&d).await.expect("put");
        let mut bad = d.clone();
        bad[0] ^= 0x80;
        std::fs::write(s.dir.join(&h), &bad).expect("overwrite");
        let e = s.open(&h).await.err().expect("damaged");
        assert!(e.to_string().contains(&h), "{e}");
        assert!(matches!(e, StoreError::Damaged(_)), "{e}");
    }

    #[tokio::test]
    async fn a_deleted_or_replaced_file_is_seen_at_the_next_open() {
        let (_d, s) = store();
        let d = data(CHUNK);
        let h = s.put(&d).await.expect("put");
        let b = s.open(&h).await.expect("open");
        // Replaced by another file under the same name (a new inode): checked again, refused.
        let tmp = s.dir.join("other");
        std::fs::write(&tmp, data(CHUNK + 3)).expect("write");
        std::fs::rename(&tmp, s.dir.join(&h)).expect("rename");
        assert!(matches!(s.open(&h).await, Err(StoreError::Damaged(_))));
        // The reader opened before still serves the bytes it checked (the old inode).
        assert_eq!(read_all(&*b).await.expect("old inode"), d);
        std::fs::remove_file(s.dir.join(&h)).expect("delete");
        assert!(matches!(s.open(&h).await, Err(StoreError::NotFound(_))));
        // Restored by an upload of the same content: served again.
        assert_eq!(s.put(&d).await.expect("put"), h);
        assert_eq!(
            read_all(&*s.open(&h).await.expect("open"))
                .await
                .expect("read"),
            d
        );
    }

    /// The in-memory file store keeps the `BlobStore` contract the streams rely on: the name
    /// is the SHA-256, a read past the end is an error (never short data), a removed file is
    /// `NotFound`.
    #[tokio::test]
    async fn memory_blobs_are_content_addressed_and_bounded() {
        let b = MemoryBlobs::default();
        let sha = b.put(b"abc").await.unwrap();
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(b.put(b"abc").await.unwrap(), sha);
        let r = b.open(&sha).await.unwrap();
        let mut buf = [0u8; 2];
        r.read_at(1, &mut buf).await.unwrap();
        assert_eq!(&buf, b"bc");
        assert!(r.read_at(2, &mut buf).await.is_err());
        assert!(r.read_at(u64::MAX, &mut buf).await.is_err());
        b.remove(&sha).await.unwrap();
        assert!(matches!(b.open(&sha).await, Err(StoreError::NotFound(_))));
    }
}
