//! Firmware files, content-addressed: a file is stored once under its SHA-256 and read back by
//! block ([`BlobReader::read_at`], a positioned read), so serving a block never copies the file.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::{StoreError, StoreResult};

/// Read access to one stored file.
pub trait BlobReader: Send + Sync {
    /// Size in bytes.
    fn len(&self) -> u64;
    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

/// Content-addressed file storage.
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `data`, returning its SHA-256 hex (idempotent).
    fn put(&self, data: &[u8]) -> StoreResult<String>;
    /// Opens a stored file.
    fn open(&self, hash: &str) -> StoreResult<Arc<dyn BlobReader>>;
    /// Deletes a stored file (a missing one is not an error). The caller checks that no OTA
    /// update's stream refers to it: the store is content-addressed, so one file can serve
    /// several updates.
    fn remove(&self, hash: &str) -> StoreResult<()>;
}

/// Files in `<dir>/<sha256>`; written to a temporary name, synced, then renamed.
pub struct DirBlobStore {
    dir: PathBuf,
    open: Mutex<HashMap<String, Arc<FileBlob>>>,
}

struct FileBlob {
    file: std::fs::File,
    len: u64,
}

impl BlobReader for FileBlob {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.file.read_exact_at(buf, offset)
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

fn valid_hash(h: &str) -> bool {
    h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl BlobStore for DirBlobStore {
    fn put(&self, data: &[u8]) -> StoreResult<String> {
        let hash = hex::encode(Sha256::digest(data));
        let path = self.dir.join(&hash);
        if path.exists() {
            return Ok(hash);
        }
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

    fn open(&self, hash: &str) -> StoreResult<Arc<dyn BlobReader>> {
        if !valid_hash(hash) {
            return Err(StoreError::NotFound(format!("file {hash}")));
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = open.get(hash) {
            return Ok(b.clone());
        }
        let file = std::fs::File::open(self.dir.join(hash))
            .map_err(|_| StoreError::NotFound(format!("file {hash}")))?;
        let len = file.metadata()?.len();
        let b = Arc::new(FileBlob { file, len });
        open.insert(hash.to_string(), b.clone());
        Ok(b)
    }

    fn remove(&self, hash: &str) -> StoreResult<()> {
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
