//! File reading with context, and atomic writing: a temporary file in the target's directory,
//! synced, then renamed over the target, so a crash never leaves half a file and an error leaves
//! an existing file untouched.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Largest bank image: one T2G code-flash bank (`image show`, `image verify`, `t2g program`).
pub const BANK_LIMIT: u64 = ferrota_image::layout::BANK_SIZE as u64;

/// Largest file sent by OTA (`image sign-ota`, `ota create`): what the server stores.
pub const OTA_LIMIT: u64 = ferrota_server::admin::OTA_FILE_MAX;

/// Largest build input (ELF or Intel HEX for `image pack`, `image from-merged-hex`). A bank's
/// worth of code as HEX text is ~12 MB; an ELF also holds symbols and debug information, so
/// the bound is generous: it is there so that `/dev/zero` or a wrong path ends in an error,
/// not in gigabytes of memory.
pub const BUILD_LIMIT: u64 = 256 * 1024 * 1024;

/// Largest signature file (base64 or DER of an ECDSA signature is under 200 bytes).
pub const SIGNATURE_LIMIT: u64 = 64 * 1024;

/// Reads a whole file of at most `limit` bytes; the error names it. Reads at most `limit + 1`
/// bytes (`Read::take`), so a device (`/dev/zero`) or a huge sparse file costs no more.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let f =
        std::fs::File::open(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut bytes = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    if bytes.len() as u64 > limit {
        // A regular file says how large it is; a device (`/dev/zero`) does not.
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => bail!(
                "{}: file is {} bytes, larger than {limit} bytes (the most accepted)",
                path.display(),
                m.len()
            ),
            _ => bail!("{}: larger than {limit} bytes", path.display()),
        }
    }
    Ok(bytes)
}

/// Who may read an output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Owner only (0600): private keys.
    Secret,
    /// Everyone may read (0644).
    Public,
}

/// Writes `bytes` to `path` atomically. Without `overwrite`, an existing file is an error.
pub fn write_atomic(path: &Path, bytes: &[u8], access: Access, overwrite: bool) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if path.is_dir() {
        bail!("{}: is a directory", path.display());
    }
    if !overwrite && path.exists() {
        bail!(
            "{}: already exists (use --force to replace it)",
            path.display()
        );
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".ferrota-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| {
            format!(
                "{}: cannot create a temporary file in {}",
                path.display(),
                dir.display()
            )
        })?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("{}: cannot write", path.display()))?;
    #[cfg(unix)]
    if access == Access::Public {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("{}: cannot set permissions", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = access;
    if overwrite {
        tmp.persist(path)
            .map_err(|e| e.error)
            .with_context(|| format!("{}: cannot write", path.display()))?;
    } else {
        match tmp.persist_noclobber(path) {
            Ok(_) => {}
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!(
                    "{}: already exists (use --force to replace it)",
                    path.display()
                )
            }
            Err(e) => {
                return Err(e.error).with_context(|| format!("{}: cannot write", path.display()));
            }
        }
    }
    // Make the rename durable too; failing to sync a directory is not worth failing the command.
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
