//! Signed update metadata on the server (issue #20, design §3.2 and §7 "Server details"): the
//! timestamp every Jobs answer to a device carries, and the check of a metadata file (the SUIT
//! envelope, `fileType 142`) when an OTA update is created.
//!
//! The server holds **one online key**, the timestamp key. It signs, per Jobs answer, "at
//! `now`, for thing `T`, the metadata file of this job document is `SHA-256 = X` (or none)",
//! valid for `lifetime`. That is what lets a device without a real-time clock notice a frozen
//! or replayed offer ([`ferrota_manifest::verify_timestamp`],
//! [`ferrota_manifest::Timestamp::check_fresh`]) and a metadata file swapped for another genuine
//! one ([`ferrota_manifest::Timestamp::check_names`]). It never holds a release or root key:
//! a compromised server can delay updates (withholding; residual risk, docs/SECURITY.md) but
//! cannot make a device install anything a release key did not sign.
//!
//! The trust directory is the one `ferrota key trust-init` writes: `root-1.cbor` (the devices'
//! anchor) .. `root-N.cbor` and the private keys `timestamp-K.pem` (and, offline ideally,
//! `root-K.pem` and `release-K.pem`, which the server never reads). [`TrustService::load`]
//! walks the roots exactly as a device does and takes the `timestamp-*.pem` whose key is a
//! timestamp key of the newest root, so after `ferrota key rotate --role timestamp` a restart
//! picks the new key up with nothing else to configure.
//!
//! Decisions (not in the design text):
//! - **Check of a bundle at create** ([`TrustService::check_bundle`]): the root documents the
//!   bundle integrates must walk from root 1 (a device fresh from the factory follows them)
//!   *and* from the server's newest root; the manifest must verify against both roots reached
//!   (so a device already on the newest root takes it too, and a bundle signed by a release key
//!   that left the root is refused here rather than at every device). Its image digest and
//!   size must be `files[0]`'s. The manifest's expiry is not checked here: it is the device's
//!   rule against its own clock estimate, and an operator may stage a release.
//! - **Timestamp root version**: the version of the newest root (the timestamp key is checked
//!   to be one of its timestamp keys at start).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use ferrota_manifest::p256::ecdsa::SigningKey;
use ferrota_manifest::{Kid, Role, TrustError, TrustedRoot};

/// The default lifetime of a timestamp (`[trust] timestamp_lifetime`, design §3.2): how long a
/// device may run on one answer before it counts as frozen.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Largest root document read from a trust directory (a root is under 1 KB).
const ROOT_FILE_MAX: u64 = 64 * 1024;

/// Why a [`TrustService`] could not be set up. Each message names the file or the rule.
#[derive(Debug, thiserror::Error)]
pub enum TrustSetupError {
    /// No root document was given (or `root-1.cbor` is missing from the directory).
    #[error(
        "no root documents: the trust directory needs root-1.cbor (`ferrota key trust-init --dir DIR` writes it)"
    )]
    NoRoots,
    /// A root document is refused: root 1 as an anchor, a later one by the walk from the one
    /// before it.
    #[error("root document {index} (root-{index}.cbor) is refused: {error}")]
    Root {
        /// 1-based position in the chain.
        index: usize,
        /// The rule it breaks.
        error: TrustError,
    },
    /// A root document claims another version than its position in the chain.
    #[error("root document {index} claims root version {claims}")]
    RootVersion {
        /// 1-based position.
        index: usize,
        /// The version it claims.
        claims: u32,
    },
    /// The signing key is not a timestamp key of the newest root.
    #[error(
        "the timestamp key {kid} is not a timestamp key of root {version} (rotated out, or another trust directory's key)"
    )]
    NotTimestampKey {
        /// The key's id, hex.
        kid: String,
        /// The newest root's version.
        version: u32,
    },
    /// No `timestamp-*.pem` in the directory holds a timestamp key of the newest root.
    #[error(
        "{0}: no timestamp-*.pem holds a timestamp key of root {1} (the server signs timestamps with it)"
    )]
    NoTimestampKey(PathBuf, u32),
    /// A lifetime of zero (every timestamp would be expired when signed) or above a year.
    #[error("timestamp lifetime {0} s: must be 1 s to 1 year")]
    Lifetime(u64),
    /// A file could not be read or is not what it should be.
    #[error("{0}: {1}")]
    File(PathBuf, String),
}

/// The server's timestamp signer and metadata checker (see the module docs).
pub struct TrustService {
    key: SigningKey,
    kid: Kid,
    lifetime: Duration,
    roots: Vec<Vec<u8>>,
    anchor: TrustedRoot,
    root: TrustedRoot,
    check_bundles: bool,
}

impl std::fmt::Debug for TrustService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("TrustService")
            .field("kid", &hex::encode(self.kid))
            .field("root_version", &self.root.version())
            .field("lifetime", &self.lifetime)
            .field("check_bundles", &self.check_bundles)
            .finish()
    }
}

/// Walks `roots` (v1..vN): root 1 as the anchor, each later one from the one before.
fn walk_chain(roots: &[Vec<u8>]) -> Result<(TrustedRoot, TrustedRoot), TrustSetupError> {
    let first = roots.first().ok_or(TrustSetupError::NoRoots)?;
    let anchor = TrustedRoot::from_anchor(first)
        .map_err(|error| TrustSetupError::Root { index: 1, error })?;
    if anchor.version() != 1 {
        return Err(TrustSetupError::RootVersion {
            index: 1,
            claims: anchor.version(),
        });
    }
    let mut root = anchor.clone();
    for (i, doc) in roots.iter().enumerate().skip(1) {
        let index = i + 1;
        root = ferrota_manifest::walk_roots(&root, std::iter::once(doc.as_slice()))
            .map_err(|error| TrustSetupError::Root { index, error })?;
        if root.version() as usize != index {
            return Err(TrustSetupError::RootVersion {
                index,
                claims: root.version(),
            });
        }
    }
    Ok((anchor, root))
}

fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, TrustSetupError> {
    let bad = |e: String| TrustSetupError::File(path.to_path_buf(), e);
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if meta.len() > max {
        return Err(bad(format!("{} bytes; at most {max}", meta.len())));
    }
    std::fs::read(path).map_err(|e| bad(e.to_string()))
}

impl TrustService {
    /// A service signing with `key`, for the root chain `roots` (root documents v1..vN as CBOR
    /// bytes, in order). Root 1 must carry its own threshold of signatures, each later one
    /// must walk from the one before (as a device walks them), and `key` must be a
    /// timestamp-role key of the newest root. `check_bundles` turns on the check of
    /// fileType-142 files at OTA create ([`TrustService::check_bundle`]).
    pub fn new(
        key: SigningKey,
        roots: Vec<Vec<u8>>,
        lifetime: Duration,
        check_bundles: bool,
    ) -> Result<TrustService, TrustSetupError> {
        let secs = lifetime.as_secs();
        if secs == 0 || secs > 366 * 24 * 3600 {
            return Err(TrustSetupError::Lifetime(secs));
        }
        let (anchor, root) = walk_chain(&roots)?;
        let kid = ferrota_manifest::build::kid(&key);
        if root.key(&kid, Role::Timestamp).is_none() {
            return Err(TrustSetupError::NotTimestampKey {
                kid: hex::encode(kid),
                version: root.version(),
            });
        }
        Ok(TrustService {
            key,
            kid,
            lifetime,
            roots,
            anchor,
            root,
            check_bundles,
        })
    }

    /// Reads a trust directory as `ferrota key trust-init` writes it: `root-1.cbor`,
    /// `root-2.cbor`, … (up to the first missing number) and the `timestamp-*.pem` (PKCS#8
    /// PEM) whose key is a timestamp key of the newest root. Other keys in the directory
    /// (root, release) are never read.
    pub fn load(
        dir: &Path,
        lifetime: Duration,
        check_bundles: bool,
    ) -> Result<TrustService, TrustSetupError> {
        if !dir.is_dir() {
            return Err(TrustSetupError::File(
                dir.to_path_buf(),
                "no such trust directory (`ferrota key trust-init --dir DIR` makes one)".into(),
            ));
        }
        let mut roots = Vec::new();
        for n in 1.. {
            let p = dir.join(format!("root-{n}.cbor"));
            if !p.exists() {
                break;
            }
            roots.push(read_limited(&p, ROOT_FILE_MAX)?);
        }
        let (_, root) = walk_chain(&roots)?;
        let entries = std::fs::read_dir(dir)
            .map_err(|e| TrustSetupError::File(dir.to_path_buf(), e.to_string()))?;
        let mut names: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("timestamp-") && n.ends_with(".pem"))
            })
            .collect();
        names.sort();
        for p in names {
            let key = ferrota_keys::load_ota_signing_key(&p)
                .map_err(|e| TrustSetupError::File(p.clone(), e.to_string()))?;
            let kid = ferrota_manifest::build::kid(&key);
            if root.key(&kid, Role::Timestamp).is_some() {
                return TrustService::new(key, roots, lifetime, check_bundles);
            }
        }
        Err(TrustSetupError::NoTimestampKey(
            dir.to_path_buf(),
            root.version(),
        ))
    }

    /// The version of the newest root (the one timestamps name).
    pub fn root_version(&self) -> u32 {
        self.root.version()
    }

    /// The newest root, as a device that walked every root document holds it.
    pub fn root(&self) -> &TrustedRoot {
        &self.root
    }

    /// The root documents v1..vN this service was set up with.
    pub fn roots(&self) -> &[Vec<u8>] {
        &self.roots
    }

    /// How long a timestamp is valid.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Whether OTA create checks fileType-142 files ([`TrustService::check_bundle`]).
    pub fn check_bundles(&self) -> bool {
        self.check_bundles
    }

    /// The timestamp of one Jobs answer to `thing` at `now_unix` (the services' clock),
    /// naming `metadata`, the SHA-256 of the job document's fileType-142 file (or none): the
    /// COSE_Sign1 of design §3.2, as base64url without padding, the value of the reply's
    /// top-level `ferrotaTimestamp` key.
    pub fn timestamp(&self, thing: &str, now_unix: u64, metadata: Option<[u8; 32]>) -> String {
        let expires = now_unix.saturating_add(self.lifetime.as_secs());
        let bytes = ferrota_manifest::build::timestamp(
            thing,
            now_unix,
            expires,
            metadata,
            self.root.version(),
            &self.key,
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Checks a metadata file (fileType 142) offered with an image of SHA-256 `image_sha256`
    /// and `image_len` bytes (`files[0]`) as a device will check it: the envelope parses (the
    /// strict subset), its root documents walk from root 1 and from the newest root, the
    /// manifest is signed by a release key of the roots reached, and it names exactly this
    /// image. The error says which rule failed, in the device's words, with the FAILED
    /// reason sub-code a device would report.
    pub fn check_bundle(
        &self,
        bundle: &[u8],
        image_sha256: &[u8; 32],
        image_len: u64,
    ) -> Result<(), String> {
        let refused = |what: &str, e: TrustError| {
            format!(
                "{what}: {e} (devices would fail the job with 0x000000e3: {:#010x})",
                e.sub()
            )
        };
        let b = ferrota_manifest::parse_bundle(bundle)
            .map_err(|e| refused("not a Ferrota metadata file (SUIT envelope)", e))?;
        let fresh = ferrota_manifest::walk_roots(&self.anchor, b.roots())
            .map_err(|e| refused("its root documents do not walk from root 1", e))?;
        let current = ferrota_manifest::walk_roots(&self.root, b.roots()).map_err(|e| {
            refused(
                &format!(
                    "its root documents do not walk from this server's root {}",
                    self.root.version()
                ),
                e,
            )
        })?;
        let m = ferrota_manifest::verify_envelope(&b, &current).map_err(|e| {
            refused(
                &format!(
                    "the manifest is not signed by a release key of root {}",
                    current.version()
                ),
                e,
            )
        })?;
        ferrota_manifest::verify_envelope(&b, &fresh).map_err(|e| {
            refused(
                &format!(
                    "the manifest is not signed by a release key of root {} (what a device \
                     still on root 1 reaches with the roots it carries)",
                    fresh.version()
                ),
                e,
            )
        })?;
        if u64::from(m.image_size()) != image_len {
            return Err(format!(
                "the manifest signs an image of {} bytes; files[0] is {image_len} bytes \
                 (devices would fail the job with 0x000000e3: 0x0000000a)",
                m.image_size()
            ));
        }
        if m.image_digest() != image_sha256 {
            return Err(format!(
                "the manifest signs image SHA-256 {}; files[0] is {} (a manifest of another \
                 release; devices would fail the job with 0x000000e3: 0x0000000a)",
                hex::encode(m.image_digest()),
                hex::encode(image_sha256)
            ));
        }
        Ok(())
    }
}
