//! Host builders (feature `std`): root documents, envelopes and timestamps, in exactly the
//! deterministic encoding the device parsers accept (minicbor writes shortest-form heads; the
//! builders write map keys in canonical order).
//!
//! Encoding into a `Vec` cannot fail, so the builders return bytes, not `Result`s. The
//! lower-level `*Spec` types let tests (and tools) write any field value, including ones the
//! device refuses; the convenience functions of the design's API contract write valid ones.

use std::vec::Vec;

use minicbor::Encoder;
use minicbor::data::Tag;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};

use crate::cose::{ES256, TAG_SIGN};
use crate::{Kid, cose, kid_of};

type Enc = Encoder<Vec<u8>>;
type EncResult<'a> = Result<&'a mut Enc, minicbor::encode::Error<core::convert::Infallible>>;

/// Runs an encoding into a fresh `Vec`.
pub(crate) fn encode(f: impl FnOnce(&mut Enc) -> EncResult<'_>) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new());
    // Writing into a Vec cannot fail.
    f(&mut e).expect("encoding into a Vec cannot fail");
    e.into_writer()
}

/// The SEC1 uncompressed bytes (`04‖X‖Y`) of a public key.
pub fn sec1(key: &VerifyingKey) -> [u8; 65] {
    let p = key.to_sec1_point(false);
    let mut out = [0u8; 65];
    out.copy_from_slice(p.as_bytes());
    out
}

/// The key id of a signing key's public half.
pub fn kid(key: &SigningKey) -> Kid {
    kid_of(&sec1(key.verifying_key()))
}

/// Signs a prehashed digest, low-S, as raw `r‖s`.
pub(crate) fn sign(key: &SigningKey, digest: &[u8; 32]) -> [u8; 64] {
    let sig: Signature = key
        .sign_prehash(digest)
        .expect("a 32-byte digest can be signed");
    let mut out = [0u8; 64];
    out.copy_from_slice(&sig.normalize_s().to_bytes());
    out
}

/// The protected header `{1: -7, 4: kid}`.
pub(crate) fn protected(kid: &Kid) -> Vec<u8> {
    encode(|e| e.map(2)?.u64(1)?.i64(ES256)?.u64(4)?.bytes(kid))
}

/// One key of a root document, as the contract's `KeyFile`: a public key and its role bits
/// ([`crate::Role`]; bit 0 root, bit 1 release, bit 2 timestamp).
#[derive(Debug, Clone, Copy)]
pub struct KeyFile {
    /// Role bits.
    pub roles: u8,
    /// The public key.
    pub key: VerifyingKey,
}

/// Every field of a root document, written as given (tests use it for documents the device
/// must refuse).
#[derive(Debug, Clone)]
pub struct RootSpec {
    /// Document type (1 = root).
    pub doc_type: u64,
    /// Root version.
    pub version: u64,
    /// Issue time, Unix seconds.
    pub issued: u64,
    /// `(kid, roles, SEC1 bytes)` per key.
    pub keys: Vec<(Kid, u64, [u8; 65])>,
    /// Root, release and timestamp thresholds.
    pub thresholds: [u64; 3],
    /// Revoked boot-key slots.
    pub revoked: u64,
}

impl RootSpec {
    /// A valid spec: `keys` with their own key ids, thresholds `[root_threshold, 1, 1]`.
    pub fn new(
        version: u32,
        issued: u64,
        keys: &[KeyFile],
        root_threshold: u8,
        revoked: u8,
    ) -> Self {
        RootSpec {
            doc_type: crate::root::TYPE_ROOT,
            version: version.into(),
            issued,
            keys: keys
                .iter()
                .map(|k| {
                    let s = sec1(&k.key);
                    (kid_of(&s), u64::from(k.roles), s)
                })
                .collect(),
            thresholds: [root_threshold.into(), 1, 1],
            revoked: revoked.into(),
        }
    }

    /// The payload map.
    pub fn payload(&self) -> Vec<u8> {
        encode(|e| {
            e.map(6)?.u64(0)?.u64(self.doc_type)?;
            e.u64(1)?.u64(self.version)?;
            e.u64(2)?.u64(self.issued)?;
            e.u64(3)?.array(self.keys.len() as u64)?;
            for (kid, roles, sec1) in &self.keys {
                e.array(3)?.bytes(kid)?.u64(*roles)?.bytes(sec1)?;
            }
            e.u64(4)?.array(3)?;
            for t in self.thresholds {
                e.u64(t)?;
            }
            e.u64(5)?.u64(self.revoked)
        })
    }

    /// The signed document: COSE_Sign with one signature per signer, in the order given.
    pub fn sign(&self, signers: &[&SigningKey]) -> Vec<u8> {
        sign_root_payload(&self.payload(), signers)
    }
}

/// Wraps a root payload in a COSE_Sign signed by `signers` (in that order, duplicates kept).
pub fn sign_root_payload(payload: &[u8], signers: &[&SigningKey]) -> Vec<u8> {
    let sigs: Vec<(Vec<u8>, [u8; 64])> = signers
        .iter()
        .map(|k| {
            let p = protected(&kid(k));
            let s = sign(k, &cose::sign_digest(&p, payload));
            (p, s)
        })
        .collect();
    encode(|e| {
        e.tag(Tag::new(TAG_SIGN))?
            .array(4)?
            .bytes(&[])?
            .map(0)?
            .bytes(payload)?;
        e.array(sigs.len() as u64)?;
        for (p, s) in &sigs {
            e.array(3)?.bytes(p)?.map(0)?.bytes(s)?;
        }
        Ok(e)
    })
}

/// A root document (design §3.3): `keys` with their roles, root threshold `root_threshold`
/// (release and timestamp thresholds are 1), boot-key slots `revoked`, signed by `signers`.
pub fn root_doc(
    version: u32,
    issued: u64,
    keys: &[KeyFile],
    root_threshold: u8,
    revoked: u8,
    signers: &[&SigningKey],
) -> Vec<u8> {
    RootSpec::new(version, issued, keys, root_threshold, revoked).sign(signers)
}

/// Every field of a timestamp payload, written as given.
#[derive(Debug, Clone)]
pub struct TimestampSpec {
    /// Document type (2 = timestamp).
    pub doc_type: u64,
    /// Thing name.
    pub thing: std::string::String,
    /// Server time.
    pub time: u64,
    /// Expiry.
    pub expires: u64,
    /// SHA-256 of the metadata file, or none.
    pub metadata: Option<[u8; 32]>,
    /// Root version of the signing key.
    pub root_version: u64,
}

impl TimestampSpec {
    /// The payload map.
    pub fn payload(&self) -> Vec<u8> {
        encode(|e| {
            e.map(6)?.u64(0)?.u64(self.doc_type)?;
            e.u64(1)?.str(&self.thing)?;
            e.u64(2)?.u64(self.time)?;
            e.u64(3)?.u64(self.expires)?;
            e.u64(4)?;
            match &self.metadata {
                Some(d) => e.bytes(d)?,
                None => e.null()?,
            };
            e.u64(5)?.u64(self.root_version)
        })
    }

    /// The signed timestamp (COSE_Sign1, embedded payload).
    pub fn sign(&self, key: &SigningKey) -> Vec<u8> {
        sign1(&self.payload(), key)
    }
}

/// A COSE_Sign1 with an embedded payload, signed by `key`.
pub fn sign1(payload: &[u8], key: &SigningKey) -> Vec<u8> {
    let p = protected(&kid(key));
    let s = sign(key, &cose::sign1_digest(&p, payload));
    encode(|e| {
        e.tag(Tag::new(cose::TAG_SIGN1))?
            .array(4)?
            .bytes(&p)?
            .map(0)?
            .bytes(payload)?
            .bytes(&s)
    })
}

/// A timestamp document (design §3.2) for `thing`, signed by the timestamp key `key` of root
/// `root_version`.
pub fn timestamp(
    thing: &str,
    time: u64,
    expires: u64,
    metadata: Option<[u8; 32]>,
    root_version: u32,
    key: &SigningKey,
) -> Vec<u8> {
    TimestampSpec {
        doc_type: crate::timestamp::TYPE_TIMESTAMP,
        thing: thing.into(),
        time,
        expires,
        metadata,
        root_version: root_version.into(),
    }
    .sign(key)
}

/// What a manifest says about one bank image (design §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestSpec {
    /// SHA-256 of the bank image as streamed (`files[0]`).
    pub image_digest: [u8; 32],
    /// Its size in bytes (`files[0]` filesize).
    pub image_size: u32,
    /// [`crate::class_id`] of the board's hardware id.
    pub class_id: [u8; 16],
    /// Firmware version of the image.
    pub version: ferrota_image::FirmwareVersion,
    /// Security counter of the image's version record.
    pub security_counter: u32,
    /// SHA-256 of the signed bytes of the CM0+, CM7_0 and CM7_1 regions.
    pub region_digests: [[u8; 32]; 3],
}

/// Why [`ManifestSpec::from_bank_image`] refused an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecError {
    /// Not a bank image the agent could check: the CM0+ region's header or the version record
    /// is refused (`ferrota_image::inspect::BankSummary::not_a_bank_image`).
    NotABankImage(&'static str, ferrota_image::Error),
    /// The CM0+ or CM7_0 region's signed bytes are missing.
    RegionMissing(ferrota_image::Region),
    /// The version record names no hardware id: a manifest must name the board it is for.
    NoHardwareId,
    /// The image is larger than 4 GiB.
    TooLarge,
}

impl core::fmt::Display for SpecError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SpecError::NotABankImage(what, e) => write!(f, "not a bank image: {what}: {e}"),
            SpecError::RegionMissing(r) => write!(f, "region {r:?} has no signed bytes"),
            SpecError::NoHardwareId => {
                f.write_str("the version record names no hardware id (the manifest's class id)")
            }
            SpecError::TooLarge => f.write_str("image larger than 4 GiB"),
        }
    }
}

impl std::error::Error for SpecError {}

impl ManifestSpec {
    /// The spec of a bank image as it is streamed (`files[0]`): its SHA-256 and length, the
    /// version record's version, counter and hardware id (as [`crate::class_id`]), and the
    /// SHA-256 of each region's signed bytes. CM7_1 is optional in a bank: an absent CM7_1 is
    /// all zeros (the agent compares the CM0+ digest; decision, not in the plan). An image
    /// without a hardware id is refused: a manifest always names its board.
    pub fn from_bank_image(image: &[u8]) -> Result<ManifestSpec, SpecError> {
        use ferrota_image::Region;
        use sha2::{Digest, Sha256};
        let s = ferrota_image::inspect::inspect(image);
        if let Some((what, e)) = s.not_a_bank_image() {
            return Err(SpecError::NotABankImage(what, e));
        }
        let record = s
            .record
            .map_err(|e| SpecError::NotABankImage("version record", e))?;
        let hw = record.hardware.as_str();
        if hw.is_empty() {
            return Err(SpecError::NoHardwareId);
        }
        let mut region_digests = [[0u8; 32]; 3];
        for (d, r) in region_digests.iter_mut().zip(&s.regions) {
            match (r.digest, r.region) {
                (Some(x), _) => *d = x,
                (None, Region::Cm7_1) => {}
                (None, region) => return Err(SpecError::RegionMissing(region)),
            }
        }
        Ok(ManifestSpec {
            image_digest: Sha256::digest(image).into(),
            image_size: u32::try_from(image.len()).map_err(|_| SpecError::TooLarge)?,
            class_id: crate::class_id(hw),
            version: record.version,
            security_counter: record.security_counter,
            region_digests,
        })
    }

    /// The SUIT_Manifest bytes (key 3 of the envelope) for sequence `seq`, expiry `expires`
    /// (0 = none) and, for a per-thing manifest, the thing's name.
    pub fn manifest(&self, seq: u32, expires: u64, device: Option<&str>) -> Vec<u8> {
        use crate::manifest::{COMPONENT, POLICY, SHA256, suit};
        let digest = encode(|e| e.array(2)?.i64(SHA256)?.bytes(&self.image_digest));
        let shared = encode(|e| {
            e.array(if device.is_some() { 8 } else { 6 })?;
            e.u64(suit::DIR_OVERRIDE)?;
            e.map(if device.is_some() { 9 } else { 8 })?;
            e.i64(suit::P_VENDOR)?.bytes(&crate::vendor_id())?;
            e.i64(suit::P_CLASS)?.bytes(&self.class_id)?;
            e.i64(suit::P_DIGEST)?.bytes(&digest)?;
            e.i64(suit::P_SIZE)?.u32(self.image_size)?;
            if let Some(thing) = device {
                e.i64(suit::P_DEVICE)?.bytes(&crate::device_id(thing))?;
            }
            e.i64(suit::P_VERSION)?.u32(self.version.0)?;
            e.i64(suit::P_COUNTER)?.u32(self.security_counter)?;
            e.i64(suit::P_EXPIRES)?.u64(expires)?;
            e.i64(suit::P_REGIONS)?.array(3)?;
            for d in &self.region_digests {
                e.bytes(d)?;
            }
            e.u64(suit::COND_VENDOR)?.u64(POLICY)?;
            e.u64(suit::COND_CLASS)?.u64(POLICY)?;
            if device.is_some() {
                e.u64(suit::COND_DEVICE)?.u64(POLICY)?;
            }
            Ok(e)
        });
        let common = encode(|e| {
            e.map(2)?.u64(2)?.array(1)?.array(2)?;
            for part in COMPONENT {
                e.bytes(part)?;
            }
            e.u64(4)?.bytes(&shared)
        });
        let validate = encode(|e| e.array(2)?.u64(suit::COND_IMAGE_MATCH)?.u64(POLICY));
        encode(|e| {
            e.map(4)?.u64(1)?.u64(1)?;
            e.u64(2)?.u32(seq)?;
            e.u64(3)?.bytes(&common)?;
            e.u64(7)?.bytes(&validate)
        })
    }
}

/// The SUIT envelope (the fileType-142 file, design §3.1): the manifest of `spec`, signed by the
/// release key `key`, with the root documents `roots` integrated (ascending versions).
pub fn envelope(
    spec: &ManifestSpec,
    seq: u32,
    expires: u64,
    device: Option<&str>,
    key: &SigningKey,
    roots: &[Vec<u8>],
) -> Vec<u8> {
    envelope_of(&spec.manifest(seq, expires, device), key, roots)
}

/// An envelope around any manifest bytes: the SHA-256 SUIT_Digest of `manifest` and a detached
/// COSE_Sign1 over it by `key`. Root documents are named by the version they claim (a document
/// that does not parse is named version 0, which the device refuses).
pub fn envelope_of(manifest: &[u8], key: &SigningKey, roots: &[Vec<u8>]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let digest = encode(|e| {
        e.array(2)?
            .i64(crate::manifest::SHA256)?
            .bytes(&Sha256::digest(manifest))
    });
    let p = protected(&kid(key));
    let s = sign(key, &cose::sign1_digest(&p, &digest));
    let sign1 = encode(|e| {
        e.tag(Tag::new(cose::TAG_SIGN1))?
            .array(4)?
            .bytes(&p)?
            .map(0)?
            .null()?
            .bytes(&s)
    });
    let auth = encode(|e| e.array(2)?.bytes(&digest)?.bytes(&sign1));
    let mut named: Vec<(std::string::String, &Vec<u8>)> = roots
        .iter()
        .map(|r| {
            let v = crate::root::parse(r).map(|p| p.root.version).unwrap_or(0);
            (std::format!("{}{v}", crate::manifest::ROOT_KEY_PREFIX), r)
        })
        .collect();
    // Canonical order: shorter encoded keys first, then bytewise (= ascending versions).
    named.sort_by(|a, b| (a.0.len(), &a.0).cmp(&(b.0.len(), &b.0)));
    encode(|e| {
        e.tag(Tag::new(crate::manifest::TAG_ENVELOPE))?
            .map(2 + named.len() as u64)?;
        e.u64(2)?.bytes(&auth)?;
        e.u64(3)?.bytes(manifest)?;
        for (name, doc) in &named {
            e.str(name)?.bytes(doc)?;
        }
        Ok(e)
    })
}
