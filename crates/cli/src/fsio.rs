//! File reading with context, and atomic writing: a temporary file in the target's directory,
//! synced, then renamed over the target, so a crash never leaves half a file and an error leaves
//! an existing file untouched.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// Reads a whole file; the error names it.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))
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
