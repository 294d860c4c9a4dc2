//! The fixed trust fixtures of #20 (signed update metadata) for the agent's and the lab's tests:
//! root, release and timestamp keys from fixed scalars, the root chain they form, the metadata
//! file (fileType 142) of a test image and the signed timestamp of a Jobs reply.
//!
//! Fixed rather than generated for the reason [`crate::keys`] gives: every run is the same run,
//! so a failing test replays byte for byte. Everything is built with `ferrota_manifest::build`,
//! the same encoder the CLI and the server use, so a fixture is exactly what a real release
//! would carry. Test keys only: never put them in a real root.
//!
//! # The chain
//!
//! | Root | Root keys (threshold 2) | Release key | Timestamp key | Why |
//! |---|---|---|---|---|
//! | v1 ([`anchor`]) | 0, 1, 2 | 0 | 0 | the firmware's anchor |
//! | v2 | 0, 1, 2 | **1** | 0 | a release-key rotation (the compromised-release-key test) |
//! | v3 and later | 0, 1, **3** | 1 | **1** | a root-key and a timestamp-key rotation |
//!
//! Each document from v2 on is signed by every root key of its predecessor and of itself, so it
//! walks from its predecessor (old and new thresholds both met).

use std::sync::OnceLock;

use base64ct::{Base64UrlUnpadded, Encoding};
use ferrota_image::ota::sign_file;
use ferrota_image::p256::ecdsa::SigningKey;
use ferrota_manifest::build::{self, KeyFile, ManifestSpec};
use ferrota_manifest::{Role, TrustedRoot};

use crate::images::ota::TestImage;

/// Scalar `fill` repeated, last byte `last`: one fixed key per (family, index).
const fn scalar(fill: u8, last: u8) -> [u8; 32] {
    let mut s = [fill; 32];
    s[31] = last;
    s
}

/// The scalars of the root-role keys ([`root_key`]).
pub const ROOT_SCALARS: [[u8; 32]; 4] = [
    scalar(0x31, 0x10),
    scalar(0x31, 0x11),
    scalar(0x31, 0x12),
    scalar(0x31, 0x13),
];
/// The scalars of the release-role keys ([`release_key`]): they sign manifests and, in Require
/// mode, the OTA file signature (`sig-sha256-ecdsa`) too.
pub const RELEASE_SCALARS: [[u8; 32]; 2] = [scalar(0x42, 0x20), scalar(0x42, 0x21)];
/// The scalars of the timestamp-role keys ([`timestamp_key`]): the server's online key.
pub const TIMESTAMP_SCALARS: [[u8; 32]; 2] = [scalar(0x53, 0x30), scalar(0x53, 0x31)];
/// The scalar of [`attacker_key`].
pub const ATTACKER_SCALAR: [u8; 32] = scalar(0x66, 0x66);

/// The root threshold of every root of the chain.
pub const ROOT_THRESHOLD: u8 = 2;
/// The `issued` time of root v1 (Unix seconds); root `v` is issued `v - 1` days later.
pub const ISSUED: u64 = 1_767_225_600;

fn keys<const N: usize>(
    cell: &'static OnceLock<[SigningKey; N]>,
    s: &[[u8; 32]; N],
) -> &'static [SigningKey; N] {
    cell.get_or_init(|| s.map(|s| SigningKey::from_slice(&s).expect("valid scalar")))
}

/// Root-role key `i` (0..4). Panics on another index: a test asking for a key the chain does not
/// have is a broken test.
pub fn root_key(i: usize) -> &'static SigningKey {
    static K: OnceLock<[SigningKey; 4]> = OnceLock::new();
    &keys(&K, &ROOT_SCALARS)[i]
}

/// Release-role key `i` (0..2).
pub fn release_key(i: usize) -> &'static SigningKey {
    static K: OnceLock<[SigningKey; 2]> = OnceLock::new();
    &keys(&K, &RELEASE_SCALARS)[i]
}

/// Timestamp-role key `i` (0..2).
pub fn timestamp_key(i: usize) -> &'static SigningKey {
    static K: OnceLock<[SigningKey; 2]> = OnceLock::new();
    &keys(&K, &TIMESTAMP_SCALARS)[i]
}

/// A key no root of the chain lists: what an attacker signs with.
pub fn attacker_key() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::from_slice(&ATTACKER_SCALAR).expect("valid scalar"))
}

/// The root-key indexes of root `version` (see the module's table).
fn root_indexes(version: u32) -> [usize; 3] {
    if version >= 3 { [0, 1, 3] } else { [0, 1, 2] }
}

/// The release key of root `version`: release key 0 in v1, release key 1 from v2 on.
pub fn release_key_of(version: u32) -> &'static SigningKey {
    release_key(usize::from(version >= 2))
}

/// The timestamp key of root `version`: timestamp key 0 up to v2, timestamp key 1 from v3 on.
pub fn timestamp_key_of(version: u32) -> &'static SigningKey {
    timestamp_key(usize::from(version >= 3))
}

/// The keys root `version` lists, with their roles.
pub fn keys_of(version: u32) -> Vec<KeyFile> {
    let kf = |k: &SigningKey, role: Role| KeyFile {
        roles: role as u8,
        key: *k.verifying_key(),
    };
    let mut v: Vec<KeyFile> = root_indexes(version)
        .iter()
        .map(|&i| kf(root_key(i), Role::Root))
        .collect();
    v.push(kf(release_key_of(version), Role::Release));
    v.push(kf(timestamp_key_of(version), Role::Timestamp));
    v
}

/// Root document `version` of the chain with boot-key slots `revoked` revoked, signed by every
/// root key of its predecessor and of itself (v1: by its own). Revocations are cumulative: a
/// chain that revokes in v2 must keep the bits in every later root (the device refuses one
/// that clears them).
pub fn root(version: u32, revoked: u8) -> Vec<u8> {
    assert!(version >= 1, "root versions start at 1");
    let mut signers: Vec<usize> = root_indexes(version).to_vec();
    if version > 1 {
        signers.extend(root_indexes(version - 1));
    }
    signers.sort_unstable();
    signers.dedup();
    let signers: Vec<&SigningKey> = signers.into_iter().map(root_key).collect();
    build::root_doc(
        version,
        ISSUED + u64::from(version - 1) * 86_400,
        &keys_of(version),
        ROOT_THRESHOLD,
        revoked,
        &signers,
    )
}

/// Root v1, the document the firmware carries as its trust anchor (`TrustConfig::anchor`).
pub fn anchor() -> Vec<u8> {
    root(1, 0)
}

/// [`anchor`], built once per process: for a configuration that borrows its anchor for the whole
/// run (`TrustConfig::anchor: Option<&'a [u8]>` in an agent that lives as long as the test).
pub fn anchor_static() -> &'static [u8] {
    static A: OnceLock<Vec<u8>> = OnceLock::new();
    A.get_or_init(anchor)
}

/// [`anchor`], parsed and self-signature checked: the root a blank trust store starts from.
pub fn trusted_anchor() -> TrustedRoot {
    TrustedRoot::from_anchor(&anchor()).expect("the fixed anchor verifies")
}

/// The rotations v2..=vn (empty for `n < 2`), in the order an envelope integrates them and
/// `ferrota_manifest::walk_roots` walks them; no boot key revoked.
pub fn root_chain(n: u32) -> Vec<Vec<u8>> {
    (2..=n).map(|v| root(v, 0)).collect()
}

/// The manifest facts of a test image (`ManifestSpec::from_bank_image` over its file).
pub fn spec_of(image: &TestImage) -> ManifestSpec {
    ManifestSpec::from_bank_image(&image.file).expect("a test image names its board")
}

/// The metadata file (the SUIT envelope, fileType 142) for `image`: sequence `seq`, expiry
/// `expires` (0 = none), for one thing when `device` is set, signed by `key` (a release key of
/// the root the device will trust, or another key for an attack), with the root documents
/// `roots` integrated (ascending versions, e.g. [`root_chain`]).
pub fn bundle_for(
    image: &TestImage,
    seq: u32,
    expires: u64,
    device: Option<&str>,
    key: &SigningKey,
    roots: &[Vec<u8>],
) -> Vec<u8> {
    build::envelope(&spec_of(image), seq, expires, device, key, roots)
}

/// The usual metadata file: [`bundle_for`] signed by root v1's release key, no expiry, no device
/// id, no roots.
pub fn bundle(image: &TestImage, seq: u32) -> Vec<u8> {
    bundle_for(image, seq, 0, None, release_key_of(1), &[])
}

/// The OTA file signature (`sig-sha256-ecdsa`, base64 DER) of `file` by `key`: in Require mode
/// the agent checks `files[0]`'s signature with the manifest's release key, so a release
/// re-signs the image with it.
pub fn file_signature(file: &[u8], key: &SigningKey) -> String {
    let mut out = [0u8; ferrota_image::ota::MAX_P256_BASE64];
    sign_file(key, file)
        .expect("P-256 signing")
        .to_base64(&mut out)
        .to_string()
}

/// SHA-256 of a whole metadata file: what a timestamp names (and the server's blob name).
pub fn file_digest(bundle: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(bundle).into()
}

/// The signed timestamp document (COSE_Sign1 bytes) for `thing`: server time `time`, valid until
/// `expires`, naming the metadata file `metadata` (its [`file_digest`]) or none, signed by the
/// timestamp key of root `root_version` ([`timestamp_key_of`]).
pub fn timestamp_doc(
    thing: &str,
    time: u64,
    expires: u64,
    metadata: Option<[u8; 32]>,
    root_version: u32,
) -> Vec<u8> {
    build::timestamp(
        thing,
        time,
        expires,
        metadata,
        root_version,
        timestamp_key_of(root_version),
    )
}

/// [`timestamp_doc`] as a Jobs reply carries it: the `ferrotaTimestamp` value, base64url
/// without padding (design §3.2).
pub fn timestamp(
    thing: &str,
    time: u64,
    expires: u64,
    metadata: Option<[u8; 32]>,
    root_version: u32,
) -> String {
    encode_timestamp(&timestamp_doc(thing, time, expires, metadata, root_version))
}

/// Any timestamp bytes (a forged or damaged one too) as the `ferrotaTimestamp` text.
pub fn encode_timestamp(doc: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::ota::{self, Spec};
    use ferrota_manifest::{
        Role, TrustError, parse_bundle, verify_envelope, verify_timestamp, walk_roots,
    };

    #[test]
    fn the_anchor_and_the_chain_walk() {
        let a = trusted_anchor();
        assert_eq!(a.version(), 1);
        assert_eq!(a.threshold(), ROOT_THRESHOLD);
        let chain = root_chain(4);
        assert_eq!(chain.len(), 3);
        let r = walk_roots(&a, chain.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(r.version(), 4);
        let rel = build::kid(release_key(1));
        assert!(r.has_release_kid(&rel));
        assert!(!r.has_release_kid(&build::kid(release_key(0))));
        assert!(
            r.key(&build::kid(timestamp_key(1)), Role::Timestamp)
                .is_some()
        );
        assert!(r.key(&build::kid(root_key(2)), Role::Root).is_none());
        assert!(root_chain(1).is_empty());
        // Each step alone, too (what a device one version behind walks).
        let mut cur = a;
        for (i, doc) in chain.iter().enumerate() {
            cur = walk_roots(&cur, core::iter::once(doc.as_slice())).unwrap();
            assert_eq!(cur.version(), i as u32 + 2);
        }
        // A revoking root walks and carries its mask.
        let r2 = walk_roots(&trusted_anchor(), core::iter::once(root(2, 0b1).as_slice())).unwrap();
        assert_eq!(r2.revoked_boot_keys(), 0b1);
        // Deterministic: the same bytes every time.
        assert_eq!(anchor(), anchor());
        assert_eq!(anchor_static(), anchor().as_slice());
        assert_eq!(root_chain(3), root_chain(3));
    }

    #[test]
    fn a_bundle_verifies_and_names_its_image() {
        let img = ota::image(Spec::new(2, 2));
        let file = bundle(&img, 6);
        let b = parse_bundle(&file).unwrap();
        assert_eq!(b.file_digest(), file_digest(&file));
        let m = verify_envelope(&b, &trusted_anchor()).unwrap();
        assert_eq!(m.sequence(), 6);
        assert_eq!(m.image_size(), img.file.len() as u32);
        assert_eq!(m.image_digest(), &file_digest(&img.file));
        assert_eq!(m.version(), img.spec.version);
        assert_eq!(m.security_counter(), 2);
        assert_eq!(m.class_id(), &ferrota_manifest::class_id(ota::BOARD));
        assert_eq!(m.expires(), 0);
        assert_eq!(m.device_id(), None);

        // With the chain integrated and the rotated release key: verifies after the walk only.
        let chain = root_chain(3);
        let file = bundle_for(&img, 7, 99, Some("thing-1"), release_key_of(3), &chain);
        let b = parse_bundle(&file).unwrap();
        assert_eq!(b.roots().count(), 2);
        assert_eq!(
            verify_envelope(&b, &trusted_anchor()).unwrap_err(),
            TrustError::UnknownSigner(ferrota_manifest::Doc::Manifest)
        );
        let root = walk_roots(&trusted_anchor(), b.roots()).unwrap();
        let m = verify_envelope(&b, &root).unwrap();
        assert_eq!(m.device_id(), Some(&ferrota_manifest::device_id("thing-1")));
        assert_eq!(m.expires(), 99);
        // An attacker's signature is refused.
        let file = bundle_for(&img, 8, 0, None, attacker_key(), &[]);
        assert!(verify_envelope(&parse_bundle(&file).unwrap(), &trusted_anchor()).is_err());
    }

    #[test]
    fn a_timestamp_verifies_as_the_reply_carries_it() {
        let img = ota::image(Spec::new(2, 2));
        let d = file_digest(&bundle(&img, 6));
        let text = timestamp("thing-1", 5_000, 8_600, Some(d), 1);
        assert!(
            text.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        let bytes = Base64UrlUnpadded::decode_vec(&text).unwrap();
        assert_eq!(bytes, timestamp_doc("thing-1", 5_000, 8_600, Some(d), 1));
        let t = verify_timestamp(&bytes, &trusted_anchor(), "thing-1").unwrap();
        assert_eq!(
            (t.time, t.expires, t.metadata, t.root_version),
            (5_000, 8_600, Some(d), 1)
        );
        assert_eq!(
            verify_timestamp(&bytes, &trusted_anchor(), "thing-2").unwrap_err(),
            TrustError::OtherThing
        );
        // Under root v3 (rotated timestamp key): deferred until the device has walked to v3.
        let v3 = timestamp_doc("thing-1", 5_000, 8_600, None, 3);
        assert!(matches!(
            verify_timestamp(&v3, &trusted_anchor(), "thing-1").unwrap_err(),
            TrustError::TimestampRootAhead { have: 1, named: 3 }
        ));
        let root = walk_roots(&trusted_anchor(), root_chain(3).iter().map(Vec::as_slice)).unwrap();
        assert_eq!(
            verify_timestamp(&v3, &root, "thing-1").unwrap().metadata,
            None
        );
    }

    #[test]
    fn the_file_signature_is_checked_with_the_release_key() {
        let img = ota::image(Spec::new(2, 2));
        let sig = file_signature(&img.file, release_key(0));
        let sig = ferrota_image::ota::OtaSignature::from_base64(&sig).unwrap();
        assert!(
            sig.verify_file(release_key(0).verifying_key(), &img.file)
                .is_ok()
        );
        assert!(
            sig.verify_file(release_key(1).verifying_key(), &img.file)
                .is_err()
        );
    }
}
