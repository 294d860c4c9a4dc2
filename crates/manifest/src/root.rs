//! Root documents (design §3.3, D-6): the keys, their roles and the root threshold, and the
//! walk from the trusted root to a newer one (TUF spec §5.3.4).

use p256::ecdsa::VerifyingKey;

use crate::cbor::{R, Reader};
use crate::cose::{self, TAG_SIGN};
use crate::error::{Doc, TrustError};
use crate::{Kid, MAX_ROOT_KEYS, MAX_SIGNATURES, kid_of};

/// Document type of a root document (payload key 0).
pub(crate) const TYPE_ROOT: u64 = 1;

/// A key role: a bit of a root document's roles field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// Signs root documents (offline keys, threshold).
    Root = 1,
    /// Signs manifests (online at release time, threshold 1).
    Release = 2,
    /// Signs timestamps (online on the server, threshold 1).
    Timestamp = 4,
}

/// All role bits.
pub const ROLE_MASK: u8 = 0b111;

/// One key of a root: its key id, roles and public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootKey {
    /// `SHA-256(SEC1 uncompressed)[0..8]`, recomputed from the key when parsed.
    pub kid: Kid,
    /// Role bits ([`Role`]).
    pub roles: u8,
    /// The P-256 public key.
    pub key: VerifyingKey,
}

impl RootKey {
    /// Whether this key holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles & role as u8 != 0
    }
}

/// A root document whose signatures have been checked: the keys the device trusts now.
///
/// Made only by [`TrustedRoot::from_anchor`] (the firmware's self-signed anchor) and
/// [`walk_roots`] (each step signed by the old and the new root threshold), or read back from the
/// trust store, which only ever holds one of those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedRoot {
    pub(crate) version: u32,
    pub(crate) issued: u64,
    pub(crate) threshold: u8,
    pub(crate) revoked: u8,
    pub(crate) keys: [Option<RootKey>; MAX_ROOT_KEYS],
}

impl TrustedRoot {
    /// Trusts a root document as the anchor (the firmware's root v1): its own root threshold
    /// must have signed it (a typo'd or truncated anchor is refused at start-up, not at the first
    /// rotation).
    pub fn from_anchor(doc: &[u8]) -> Result<TrustedRoot, TrustError> {
        let parsed = parse(doc)?;
        let (_, have) = count(None, &parsed.root, &parsed);
        if have < parsed.root.threshold {
            return Err(TrustError::NewThreshold {
                have,
                need: parsed.root.threshold,
            });
        }
        Ok(parsed.root)
    }

    /// The root version (1, 2, …).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The issue time (Unix seconds; informational).
    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// How many distinct root keys must sign the next root.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// The boot-key slots this root revokes (bit n = slot n; cumulative over versions).
    pub fn revoked_boot_keys(&self) -> u8 {
        self.revoked
    }

    /// The keys of this root, in document order.
    pub fn keys(&self) -> impl Iterator<Item = &RootKey> {
        self.keys.iter().flatten()
    }

    /// The key with id `kid` if it holds `role`.
    pub fn key(&self, kid: &Kid, role: Role) -> Option<VerifyingKey> {
        self.keys()
            .find(|k| &k.kid == kid && k.has(role))
            .map(|k| k.key)
    }

    /// Whether `kid` is a release key of this root (design §3.3 fast-forward recovery: a
    /// sequence floor set by a key that left the root is reset).
    pub fn has_release_kid(&self, kid: &Kid) -> bool {
        self.key(kid, Role::Release).is_some()
    }

    /// Checks that `kid` holds `role` here and returns its key; the error names why not.
    pub(crate) fn signer(&self, kid: &Kid, role: Role, doc: Doc) -> R<VerifyingKey> {
        match self.keys().find(|k| &k.kid == kid) {
            None => Err(TrustError::UnknownSigner(doc)),
            Some(k) if !k.has(role) => Err(TrustError::WrongRole(doc)),
            Some(k) => Ok(k.key),
        }
    }

    fn root_index(&self, kid: &Kid) -> Option<usize> {
        self.keys
            .iter()
            .position(|k| matches!(k, Some(k) if &k.kid == kid && k.has(Role::Root)))
    }
}

/// One COSE_Sign signer: key id, protected header bytes, `r‖s`.
type Signer<'b> = (Kid, &'b [u8], &'b [u8]);

/// A parsed root document: the root it would install and its signatures, not yet counted.
pub(crate) struct ParsedRoot<'b> {
    pub(crate) root: TrustedRoot,
    payload: &'b [u8],
    sigs: [Option<Signer<'b>>; MAX_SIGNATURES],
}

/// Parses a root document strictly: `98([h'', {}, << Root >>, [+ [<<{1:-7, 4:kid}>>, {}, sig]]])`.
pub(crate) fn parse(doc: &[u8]) -> R<ParsedRoot<'_>> {
    let mut r = Reader::new(doc, Doc::Root);
    r.tag(TAG_SIGN)?;
    r.array_of(4)?;
    let at = r.at() as usize;
    if !r.bytes()?.is_empty() {
        return Err(r.unsupported(at));
    }
    cose::empty_map(&mut r)?;
    let payload = r.bytes()?;
    let at = r.at() as usize;
    let n = r.array()?;
    if n == 0 || n > MAX_SIGNATURES as u64 {
        return Err(r.unsupported(at));
    }
    let mut sigs = [None; MAX_SIGNATURES];
    for slot in sigs.iter_mut().take(n as usize) {
        r.array_of(3)?;
        let protected = r.bytes()?;
        cose::empty_map(&mut r)?;
        let sig = r.bytes()?;
        let kid = cose::protected_kid(protected, Doc::Root)?;
        *slot = Some((kid, protected, sig));
    }
    r.end()?;
    let root = parse_payload(payload)?;
    Ok(ParsedRoot {
        root,
        payload,
        sigs,
    })
}

fn parse_payload(payload: &[u8]) -> R<TrustedRoot> {
    let mut r = Reader::new(payload, Doc::Root);
    r.map_of(6)?;
    r.key_is(0)?;
    if r.uint()? != TYPE_ROOT {
        return Err(TrustError::WrongDocumentType(Doc::Root));
    }
    r.key_is(1)?;
    let at = r.at() as usize;
    let version = r.u32()?;
    if version == 0 {
        return Err(r.unsupported(at));
    }
    r.key_is(2)?;
    let issued = r.uint()?;
    r.key_is(3)?;
    let n = r.array()?;
    if n == 0 || n > MAX_ROOT_KEYS as u64 {
        return Err(TrustError::KeyList);
    }
    let mut keys: [Option<RootKey>; MAX_ROOT_KEYS] = [None; MAX_ROOT_KEYS];
    for i in 0..n as usize {
        r.array_of(3)?;
        let kid = r.bytes_n::<8>()?;
        let roles = r.uint()?;
        let sec1 = r.bytes_n::<65>()?;
        if roles == 0 || roles > ROLE_MASK as u64 {
            return Err(TrustError::Roles);
        }
        if sec1[0] != 0x04 {
            return Err(TrustError::BadKey);
        }
        let key = VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| TrustError::BadKey)?;
        if kid_of(&sec1) != kid {
            return Err(TrustError::KidMismatch);
        }
        if keys[..i].iter().flatten().any(|k| k.kid == kid) {
            return Err(TrustError::KeyList);
        }
        keys[i] = Some(RootKey {
            kid,
            roles: roles as u8,
            key,
        });
    }
    r.key_is(4)?;
    r.array_of(3)?;
    let (t_root, t_release, t_ts) = (r.uint()?, r.uint()?, r.uint()?);
    r.key_is(5)?;
    let revoked = r.uint()?;
    r.end()?;

    check_rules(&keys, [t_root, t_release, t_ts], revoked)?;
    Ok(TrustedRoot {
        version,
        issued,
        threshold: t_root as u8,
        revoked: revoked as u8,
        keys,
    })
}

/// The rules of a root beyond its encoding, shared with the trust store's decoder: every role
/// has a key, the root threshold is reachable, the online thresholds are 1, and revocations
/// name only the 4 boot-key slots.
pub(crate) fn check_rules(
    keys: &[Option<RootKey>; MAX_ROOT_KEYS],
    [t_root, t_release, t_ts]: [u64; 3],
    revoked: u64,
) -> R<()> {
    let with = |role: Role| keys.iter().flatten().filter(|k| k.has(role)).count() as u64;
    if with(Role::Root) == 0 || with(Role::Release) == 0 || with(Role::Timestamp) == 0 {
        return Err(TrustError::Roles);
    }
    if t_root == 0 || t_root > with(Role::Root) || t_release != 1 || t_ts != 1 {
        return Err(TrustError::Threshold);
    }
    if revoked > 0b1111 {
        return Err(TrustError::Revocation);
    }
    Ok(())
}

/// Counts the distinct valid signatures on `doc` by root keys of `old` (if any) and of the
/// document's own root `new`. A key id counts once however often it signs; signatures by
/// unknown key ids, and invalid ones, count for nothing (TUF §5.3.4).
fn count(old: Option<&TrustedRoot>, new: &TrustedRoot, doc: &ParsedRoot<'_>) -> (u8, u8) {
    let (mut old_mask, mut new_mask) = (0u8, 0u8);
    for (kid, protected, sig) in doc.sigs.iter().flatten() {
        let old_i = old.and_then(|o| o.root_index(kid));
        let new_i = new.root_index(kid);
        let key = match (old_i, new_i) {
            (Some(i), _) => old.and_then(|o| o.keys[i]).map(|k| k.key),
            (None, Some(i)) => new.keys[i].map(|k| k.key),
            (None, None) => None,
        };
        let Some(key) = key else { continue };
        let counted_old = old_i.is_none_or(|i| old_mask & (1 << i) != 0);
        let counted_new = new_i.is_none_or(|i| new_mask & (1 << i) != 0);
        if counted_old && counted_new {
            continue;
        }
        // The same kid is the same key in both roots (kid = hash of the key).
        if !cose::verify(&key, &cose::sign_digest(protected, doc.payload), sig) {
            continue;
        }
        if let Some(i) = old_i {
            old_mask |= 1 << i;
        }
        if let Some(i) = new_i {
            new_mask |= 1 << i;
        }
    }
    (old_mask.count_ones() as u8, new_mask.count_ones() as u8)
}

/// Walks from the trusted root `cur` through the root documents `docs` (ascending versions, as
/// an envelope carries them) and returns the newest root reached.
///
/// Documents at or below the current version are skipped (after a strict parse). Each newer
/// one must be exactly one version above the root before it, be signed by a threshold of
/// distinct root keys of that root **and** a threshold of its own root keys, and keep every
/// boot-key revocation of the root before it. The first failure ends the walk with its error
/// and nothing is trusted from it: the caller keeps `cur`.
pub fn walk_roots<'b>(
    cur: &TrustedRoot,
    docs: impl Iterator<Item = &'b [u8]>,
) -> Result<TrustedRoot, TrustError> {
    let mut root = cur.clone();
    for doc in docs {
        let parsed = parse(doc)?;
        let new = &parsed.root;
        if new.version <= root.version {
            continue;
        }
        if root.version.checked_add(1) != Some(new.version) {
            return Err(TrustError::VersionSkip {
                current: root.version,
                found: new.version,
            });
        }
        let (have_old, have_new) = count(Some(&root), new, &parsed);
        if have_old < root.threshold {
            return Err(TrustError::OldThreshold {
                have: have_old,
                need: root.threshold,
            });
        }
        if have_new < new.threshold {
            return Err(TrustError::NewThreshold {
                have: have_new,
                need: new.threshold,
            });
        }
        if new.revoked & root.revoked != root.revoked {
            return Err(TrustError::Revocation);
        }
        root = parsed.root;
    }
    Ok(root)
}
