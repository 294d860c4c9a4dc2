//! The SUIT envelope (design §3.1, D-2): the fileType-142 metadata file, its authentication
//! wrapper (SUIT_Digest + COSE_Sign1 ES256 by a release key) and the manifest inside it.

use ferrota_image::FirmwareVersion;
use p256::ecdsa::VerifyingKey;
use sha2::{Digest, Sha256};

use crate::cbor::{Key, R, Reader};
use crate::cose::{self, TAG_SIGN1};
use crate::error::{Doc, TrustError};
use crate::root::Role;
use crate::{Kid, MAX_BUNDLE_ROOTS, TrustedRoot, vendor_id};

/// SUIT_Envelope tag.
pub(crate) const TAG_ENVELOPE: u64 = 107;
/// SUIT_Digest algorithm SHA-256 (COSE -16).
pub(crate) const SHA256: i64 = -16;
/// The text key prefix of an integrated root document.
pub const ROOT_KEY_PREFIX: &str = "#ferrota-root-";
/// The one component: `["FRTA", h'00']` (the bank image).
pub(crate) const COMPONENT: [&[u8]; 2] = [b"FRTA", &[0]];
/// SUIT report policy of every condition: report and fail on failure (15).
pub(crate) const POLICY: u64 = 15;

/// SUIT command and parameter numbers (draft-ietf-suit-manifest-34).
pub(crate) mod suit {
    pub const COND_VENDOR: u64 = 1;
    pub const COND_CLASS: u64 = 2;
    pub const COND_IMAGE_MATCH: u64 = 3;
    pub const COND_DEVICE: u64 = 24;
    pub const DIR_OVERRIDE: u64 = 20;
    pub const P_VENDOR: i64 = 1;
    pub const P_CLASS: i64 = 2;
    pub const P_DIGEST: i64 = 3;
    pub const P_SIZE: i64 = 14;
    pub const P_DEVICE: i64 = 24;
    pub const P_VERSION: i64 = -257;
    pub const P_COUNTER: i64 = -258;
    pub const P_EXPIRES: i64 = -259;
    pub const P_REGIONS: i64 = -260;
}

/// A metadata file whose envelope parsed: its pieces, not yet verified.
#[derive(Debug, Clone, Copy)]
pub struct Bundle<'b> {
    file_digest: [u8; 32],
    digest: [u8; 32],
    digest_bytes: &'b [u8],
    protected: &'b [u8],
    kid: Kid,
    sig: &'b [u8],
    manifest: &'b [u8],
    roots: [&'b [u8]; MAX_BUNDLE_ROOTS],
    n_roots: usize,
}

impl<'b> Bundle<'b> {
    /// SHA-256 of the whole file: what a timestamp names and the server's blob name.
    pub fn file_digest(&self) -> [u8; 32] {
        self.file_digest
    }

    /// The integrated root documents, in envelope (ascending version) order, unverified: give
    /// them to [`crate::walk_roots`].
    pub fn roots(&self) -> impl Iterator<Item = &'b [u8]> + '_ {
        self.roots[..self.n_roots].iter().copied()
    }

    /// The key id that claims to have signed the manifest.
    pub fn signer(&self) -> Kid {
        self.kid
    }
}

/// Parses a metadata file's envelope strictly: the tag, keys 2 (authentication wrapper) and 3
/// (manifest), and at most [`MAX_BUNDLE_ROOTS`] integrated root documents named
/// `"#ferrota-root-<version>"`, where the name's version must be the one the document claims
/// (a root document that does not parse is refused here with its root error, sub 5). The
/// manifest itself is parsed only after its digest and signature verify ([`verify_envelope`]).
pub fn parse_bundle(file: &[u8]) -> Result<Bundle<'_>, TrustError> {
    let mut r = Reader::new(file, Doc::Manifest);
    r.tag(TAG_ENVELOPE)?;
    let at = r.at() as usize;
    let n = r.map()?;
    if n < 2 {
        return Err(r.malformed(at));
    }
    if n - 2 > MAX_BUNDLE_ROOTS as u64 {
        return Err(TrustError::TooManyRoots);
    }
    r.key_is(2)?;
    let auth = r.bytes()?;
    r.key_is(3)?;
    let manifest = r.bytes()?;
    let mut roots: [&[u8]; MAX_BUNDLE_ROOTS] = [&[]; MAX_BUNDLE_ROOTS];
    for slot in roots.iter_mut().take((n - 2) as usize) {
        let at = r.at() as usize;
        let version = match r.key()? {
            Key::Text(name) => root_name_version(name).ok_or(r.unsupported(at))?,
            _ => return Err(r.unsupported(at)),
        };
        let doc = r.bytes()?;
        // The name is not signed: it must be the version the document itself claims, so one
        // envelope has one encoding (the claim is checked by the walk's signatures).
        if crate::root::parse(doc)?.root.version != version {
            return Err(r.unsupported(at));
        }
        *slot = doc;
    }
    r.end()?;

    // suit-authentication-wrapper: [ bstr SUIT_Digest, bstr COSE_Sign1 ] (one signature).
    let mut a = Reader::new(auth, Doc::Manifest);
    a.array_of(2)?;
    let digest_bytes = a.bytes()?;
    let sign1 = a.bytes()?;
    a.end()?;
    let digest = suit_digest(digest_bytes)?;

    let mut s = Reader::new(sign1, Doc::Manifest);
    s.tag(TAG_SIGN1)?;
    s.array_of(4)?;
    let protected = s.bytes()?;
    cose::empty_map(&mut s)?;
    let at = s.at() as usize;
    if !s.is_null()? {
        return Err(s.unsupported(at)); // the payload is detached: the SUIT_Digest
    }
    s.null()?;
    let sig = s.bytes()?;
    s.end()?;
    let kid = cose::protected_kid(protected, Doc::Manifest)?;

    Ok(Bundle {
        file_digest: Sha256::digest(file).into(),
        digest,
        digest_bytes,
        protected,
        kid,
        sig,
        manifest,
        roots,
        n_roots: (n - 2) as usize,
    })
}

/// The version in a root document's key name: `"#ferrota-root-"` and a decimal `u32` without
/// leading zeros.
fn root_name_version(name: &str) -> Option<u32> {
    let v = name.strip_prefix(ROOT_KEY_PREFIX)?;
    if v.is_empty() || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// Reads a SUIT_Digest `[-16, h'<32>']`.
fn suit_digest(bytes: &[u8]) -> R<[u8; 32]> {
    let mut d = Reader::new(bytes, Doc::Manifest);
    d.array_of(2)?;
    if d.int()? != SHA256 {
        return Err(TrustError::Algorithm(Doc::Manifest));
    }
    let v = d.bytes_n::<32>()?;
    d.end()?;
    Ok(v)
}

/// A manifest whose digest and release-key signature verified against the trusted root.
///
/// Not `Clone` and made only by [`verify_envelope`]: holding one is the proof that these facts
/// were signed by a release key of the root it was checked against.
#[derive(Debug, PartialEq, Eq)]
pub struct VerifiedManifest {
    pub(crate) sequence: u32,
    pub(crate) image_size: u32,
    pub(crate) image_digest: [u8; 32],
    pub(crate) version: FirmwareVersion,
    pub(crate) security_counter: u32,
    pub(crate) expires: u64,
    pub(crate) class_id: [u8; 16],
    pub(crate) device_id: Option<[u8; 16]>,
    pub(crate) region_digests: [[u8; 32]; 3],
    pub(crate) signer: Kid,
    pub(crate) release_key: VerifyingKey,
    pub(crate) file_digest: [u8; 32],
}

impl VerifiedManifest {
    /// manifest-sequence-number: strictly increasing per release (replay).
    pub fn sequence(&self) -> u32 {
        self.sequence
    }
    /// Size of the bank image as streamed (`files[0]` filesize): endless data.
    pub fn image_size(&self) -> u32 {
        self.image_size
    }
    /// SHA-256 of the bank image as streamed.
    pub fn image_digest(&self) -> &[u8; 32] {
        &self.image_digest
    }
    /// Firmware version of the image (`major<<24 | minor<<16 | build`).
    pub fn version(&self) -> FirmwareVersion {
        self.version
    }
    /// Security counter of the image's version record.
    pub fn security_counter(&self) -> u32 {
        self.security_counter
    }
    /// Expiry, Unix seconds; 0 = none.
    pub fn expires(&self) -> u64 {
        self.expires
    }
    /// SUIT class id ([`crate::class_id`] of the hardware id).
    pub fn class_id(&self) -> &[u8; 16] {
        &self.class_id
    }
    /// SUIT device id ([`crate::device_id`] of one thing) for a per-thing manifest.
    pub fn device_id(&self) -> Option<&[u8; 16]> {
        self.device_id.as_ref()
    }
    /// SHA-256 of the signed bytes of the CM0+, CM7_0 and CM7_1 regions.
    pub fn region_digests(&self) -> &[[u8; 32]; 3] {
        &self.region_digests
    }
    /// Key id of the release key that signed it.
    pub fn signer(&self) -> Kid {
        self.signer
    }
    /// The release key that signed it (the agent checks the file signature with it).
    pub fn release_key(&self) -> &VerifyingKey {
        &self.release_key
    }
    /// SHA-256 of the whole metadata file.
    pub fn file_digest(&self) -> &[u8; 32] {
        &self.file_digest
    }

    /// Refuses an expired manifest ([`TrustError::ManifestExpired`]): `expires` is 0 (none) or
    /// above the device's estimate of now.
    pub fn check_expiry(&self, now_estimate: u64) -> Result<(), TrustError> {
        if self.expires == 0 || self.expires > now_estimate {
            Ok(())
        } else {
            Err(TrustError::ManifestExpired)
        }
    }
}

/// Verifies a parsed envelope against the trusted root (after [`crate::walk_roots`] over its
/// roots), in SUIT §8.3's order: the manifest bytes against the SUIT_Digest first, then the
/// signature over the digest by a release key of `root`, and only then the manifest's contents.
pub fn verify_envelope(b: &Bundle<'_>, root: &TrustedRoot) -> Result<VerifiedManifest, TrustError> {
    let computed: [u8; 32] = Sha256::digest(b.manifest).into();
    if computed != b.digest {
        return Err(TrustError::DigestMismatch);
    }
    let key = root.signer(&b.kid, Role::Release, Doc::Manifest)?;
    if !cose::verify(
        &key,
        &cose::sign1_digest(b.protected, b.digest_bytes),
        b.sig,
    ) {
        return Err(TrustError::BadSignature(Doc::Manifest));
    }
    let f = parse_manifest(b.manifest)?;
    Ok(VerifiedManifest {
        sequence: f.sequence,
        image_size: f.image_size,
        image_digest: f.image_digest,
        version: FirmwareVersion(f.version),
        security_counter: f.security_counter,
        expires: f.expires,
        class_id: f.class_id,
        device_id: f.device_id,
        region_digests: f.region_digests,
        signer: b.kid,
        release_key: key,
        file_digest: b.file_digest,
    })
}

struct Facts {
    sequence: u32,
    image_size: u32,
    image_digest: [u8; 32],
    version: u32,
    security_counter: u32,
    expires: u64,
    class_id: [u8; 16],
    device_id: Option<[u8; 16]>,
    region_digests: [[u8; 32]; 3],
}

fn expect_uint(r: &mut Reader<'_>, want: u64) -> R<()> {
    let at = r.at() as usize;
    if r.uint()? == want {
        Ok(())
    } else {
        Err(r.unsupported(at))
    }
}

fn parse_manifest(bytes: &[u8]) -> R<Facts> {
    let mut m = Reader::new(bytes, Doc::Manifest);
    m.map_of(4)?;
    m.key_is(1)?;
    expect_uint(&mut m, 1)?; // manifest-version
    m.key_is(2)?;
    let sequence = m.u32()?;
    m.key_is(3)?;
    let common = m.bytes()?;
    m.key_is(7)?;
    let validate = m.bytes()?;
    m.end()?;

    // suit-validate: [condition-image-match, 15]
    let mut v = Reader::new(validate, Doc::Manifest);
    v.array_of(2)?;
    expect_uint(&mut v, suit::COND_IMAGE_MATCH)?;
    expect_uint(&mut v, POLICY)?;
    v.end()?;

    // suit-common: {2: [["FRTA", h'00']], 4: << shared sequence >>}
    let mut c = Reader::new(common, Doc::Manifest);
    c.map_of(2)?;
    c.key_is(2)?;
    c.array_of(1)?;
    c.array_of(2)?;
    for part in COMPONENT {
        let at = c.at() as usize;
        if c.bytes()? != part {
            return Err(c.unsupported(at));
        }
    }
    c.key_is(4)?;
    let shared = c.bytes()?;
    c.end()?;

    // shared sequence: [20, {params}, 1, 15, 2, 15 (, 24, 15)]
    let mut s = Reader::new(shared, Doc::Manifest);
    let at = s.at() as usize;
    let len = s.array()?;
    if len != 6 && len != 8 {
        return Err(s.malformed(at));
    }
    expect_uint(&mut s, suit::DIR_OVERRIDE)?;
    let at = s.at() as usize;
    let n = s.map()?;
    if n != 8 && n != 9 {
        return Err(s.malformed(at));
    }
    s.key_is(suit::P_VENDOR)?;
    let at = s.at() as usize;
    if s.bytes_n::<16>()? != vendor_id() {
        return Err(s.unsupported(at));
    }
    s.key_is(suit::P_CLASS)?;
    let class_id = s.bytes_n::<16>()?;
    s.key_is(suit::P_DIGEST)?;
    let d = s.bytes()?;
    let image_digest = suit_digest(d)?;
    s.key_is(suit::P_SIZE)?;
    let image_size = s.u32()?;
    let device_id = if n == 9 {
        s.key_is(suit::P_DEVICE)?;
        Some(s.bytes_n::<16>()?)
    } else {
        None
    };
    s.key_is(suit::P_VERSION)?;
    let version = s.u32()?;
    s.key_is(suit::P_COUNTER)?;
    let security_counter = s.u32()?;
    s.key_is(suit::P_EXPIRES)?;
    let expires = s.uint()?;
    s.key_is(suit::P_REGIONS)?;
    s.array_of(3)?;
    let mut region_digests = [[0u8; 32]; 3];
    for d in region_digests.iter_mut() {
        *d = s.bytes_n::<32>()?;
    }
    let mut conditions = [suit::COND_VENDOR, suit::COND_CLASS, suit::COND_DEVICE].into_iter();
    let want = if device_id.is_some() { 3 } else { 2 };
    if (len - 2) / 2 != want {
        return Err(s.malformed(at));
    }
    for cond in conditions.by_ref().take(want as usize) {
        expect_uint(&mut s, cond)?;
        expect_uint(&mut s, POLICY)?;
    }
    s.end()?;

    Ok(Facts {
        sequence,
        image_size,
        image_digest,
        version,
        security_counter,
        expires,
        class_id,
        device_id,
        region_digests,
    })
}
