//! Why a manifest, a timestamp or a root document was refused.
//!
//! `Copy`, no strings, one variant per rule, so the agent can keep and report an error without an
//! allocator and a test can assert exactly which rule a damaged document broke. Every variant maps
//! to one FAILED reason sub-code of design §4.2 through [`TrustError::sub`].

use core::fmt;

/// Sub-code of `0x000000e3`: manifest missing or unreadable (not the Ferrota SUIT subset).
pub const SUB_MANIFEST: u32 = 3;
/// Sub-code: manifest not signed by a release key of the trusted root.
pub const SUB_SIGNER: u32 = 4;
/// Sub-code: root document chain refused.
pub const SUB_ROOT: u32 = 5;
/// Sub-code: timestamp missing, unreadable, for another thing, or not signed by a timestamp key.
pub const SUB_TIMESTAMP: u32 = 6;
/// Sub-code: timestamp stale or expired (freeze, replay).
pub const SUB_STALE: u32 = 7;
/// Sub-code: manifest expired.
pub const SUB_EXPIRED: u32 = 8;
/// Sub-code: manifest sequence number not newer (replay).
pub const SUB_SEQUENCE: u32 = 9;
/// Sub-code: job document or image disagrees with the manifest.
pub const SUB_MISMATCH: u32 = 10;
/// Sub-code: the timestamp names another metadata file (mix-and-match).
pub const SUB_METADATA: u32 = 11;

/// Which kind of document an error is about: the same broken rule (say, truncated CBOR) is a
/// different FAILED sub-code in a manifest, a root document and a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doc {
    /// The SUIT envelope (the fileType-142 file) and the manifest inside it.
    Manifest,
    /// A root document (the anchor or one integrated in the envelope).
    Root,
    /// A timestamp document.
    Timestamp,
}

impl Doc {
    fn word(self) -> &'static str {
        match self {
            Doc::Manifest => "manifest",
            Doc::Root => "root document",
            Doc::Timestamp => "timestamp",
        }
    }
}

/// A document that breaks a rule of the format, the trust chain or the freshness policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrustError {
    /// The bytes end before the document does.
    Truncated(Doc),
    /// The bytes are not CBOR of the expected shape (wrong type, wrong tag, wrong array length,
    /// a missing key) at byte `at`.
    Malformed {
        /// Which document.
        doc: Doc,
        /// Byte offset in the CBOR item being read.
        at: u32,
    },
    /// Not deterministic CBOR (RFC 8949 §4.2): an integer or length not in its shortest form,
    /// an indefinite length, or map keys not in strictly ascending bytewise order (which also
    /// refuses duplicate keys).
    NotCanonical {
        /// Which document.
        doc: Doc,
        /// Byte offset of the offending item.
        at: u32,
    },
    /// A map key, a command or a value this subset does not know (fail closed).
    Unsupported {
        /// Which document.
        doc: Doc,
        /// Byte offset of the offending item.
        at: u32,
    },
    /// Bytes follow the document.
    TrailingBytes(Doc),
    /// The document's type field names another document kind (a timestamp offered as a root,
    /// or the reverse): cross-type reuse of a signature.
    WrongDocumentType(Doc),
    /// A COSE algorithm other than ES256, or a digest algorithm other than SHA-256.
    Algorithm(Doc),
    /// The envelope has more integrated root documents than [`crate::MAX_BUNDLE_ROOTS`].
    TooManyRoots,
    /// The SUIT_Digest of the authentication wrapper is not the SHA-256 of the manifest bytes.
    DigestMismatch,
    /// The signer's key id is not in the trusted root.
    UnknownSigner(Doc),
    /// The signer's key is in the trusted root but without the role this document needs.
    WrongRole(Doc),
    /// The signature does not verify (or is not a low-S `r‖s` P-256 signature).
    BadSignature(Doc),
    /// A root document lists a key whose key id is not the first 8 bytes of its SHA-256.
    KidMismatch,
    /// A root document lists a key that is not an uncompressed P-256 point on the curve.
    BadKey,
    /// A root document lists more than [`crate::MAX_ROOT_KEYS`] keys, or a key id twice.
    KeyList,
    /// A root document's roles: a key with no role or an unknown role bit, or a role with no key.
    Roles,
    /// A root document's thresholds: root threshold 0 or above its root-key count, release or
    /// timestamp threshold not 1.
    Threshold,
    /// A root document clears a boot-key revocation bit set by its predecessor, or sets a bit
    /// above the 4 boot-key slots.
    Revocation,
    /// A new root document is not exactly one version above the current root.
    VersionSkip {
        /// The current root version.
        current: u32,
        /// The version the document carries.
        found: u32,
    },
    /// Too few distinct root keys of the *current* (old) root signed the new root.
    OldThreshold {
        /// Distinct valid signatures by old root keys.
        have: u8,
        /// The old root's threshold.
        need: u8,
    },
    /// Too few distinct root keys of the new root itself signed it.
    NewThreshold {
        /// Distinct valid signatures by the new root's root keys.
        have: u8,
        /// The new root's threshold.
        need: u8,
    },
    /// The timestamp was signed under a root newer than the trusted one: verify it again after
    /// walking the envelope's roots (design §4.1 step 3).
    TimestampRootAhead {
        /// The trusted root version.
        have: u32,
        /// The root version the timestamp names.
        named: u32,
    },
    /// The timestamp is for another thing.
    OtherThing,
    /// The timestamp is older than the newest one already accepted (replay).
    TimestampStale,
    /// The timestamp has expired by the device's clock estimate (freeze), or expires no later
    /// than it was issued.
    TimestampExpired,
    /// The manifest has expired by the device's clock estimate.
    ManifestExpired,
    /// The manifest's sequence number is not above the accepted floor and it is not the same
    /// file resumed.
    SequenceNotNewer {
        /// The manifest's sequence number.
        found: u32,
        /// The floor it had to beat.
        floor: u32,
    },
    /// The timestamp names another metadata file than this envelope (or none).
    MetadataMismatch,
    /// The bank an update wrote is not the image the manifest names: another length, digest,
    /// version, security counter, board or CM0+ region ([`crate::bind`]). Sub 10
    /// ([`SUB_MISMATCH`]), like the agent's own comparisons of the job document with the
    /// manifest.
    ImageMismatch,
}

impl TrustError {
    /// The document kind of an error.
    pub fn doc(&self) -> Doc {
        match *self {
            TrustError::Truncated(d)
            | TrustError::Malformed { doc: d, .. }
            | TrustError::NotCanonical { doc: d, .. }
            | TrustError::Unsupported { doc: d, .. }
            | TrustError::TrailingBytes(d)
            | TrustError::WrongDocumentType(d)
            | TrustError::Algorithm(d)
            | TrustError::UnknownSigner(d)
            | TrustError::WrongRole(d)
            | TrustError::BadSignature(d) => d,
            TrustError::TooManyRoots
            | TrustError::DigestMismatch
            | TrustError::ManifestExpired
            | TrustError::SequenceNotNewer { .. }
            | TrustError::ImageMismatch => Doc::Manifest,
            TrustError::KidMismatch
            | TrustError::BadKey
            | TrustError::KeyList
            | TrustError::Roles
            | TrustError::Threshold
            | TrustError::Revocation
            | TrustError::VersionSkip { .. }
            | TrustError::OldThreshold { .. }
            | TrustError::NewThreshold { .. } => Doc::Root,
            TrustError::TimestampRootAhead { .. }
            | TrustError::OtherThing
            | TrustError::TimestampStale
            | TrustError::TimestampExpired
            | TrustError::MetadataMismatch => Doc::Timestamp,
        }
    }

    /// The sub-code of the FAILED reason `0x000000e3: <sub>` (design §4.2), in one place.
    pub fn sub(&self) -> u32 {
        match *self {
            TrustError::TimestampStale | TrustError::TimestampExpired => SUB_STALE,
            TrustError::ManifestExpired => SUB_EXPIRED,
            TrustError::SequenceNotNewer { .. } => SUB_SEQUENCE,
            TrustError::MetadataMismatch => SUB_METADATA,
            TrustError::ImageMismatch => SUB_MISMATCH,
            // Tampering with a signed envelope is an authentication failure, like a bad signature.
            TrustError::DigestMismatch => SUB_SIGNER,
            TrustError::UnknownSigner(Doc::Manifest)
            | TrustError::WrongRole(Doc::Manifest)
            | TrustError::BadSignature(Doc::Manifest) => SUB_SIGNER,
            _ => match self.doc() {
                Doc::Manifest => SUB_MANIFEST,
                Doc::Root => SUB_ROOT,
                Doc::Timestamp => SUB_TIMESTAMP,
            },
        }
    }
}

impl fmt::Display for TrustError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TrustError::Truncated(d) => write!(f, "{} is truncated", d.word()),
            TrustError::Malformed { doc, at } => {
                write!(
                    f,
                    "{} is not of the expected shape at byte {at}",
                    doc.word()
                )
            }
            TrustError::NotCanonical { doc, at } => {
                write!(f, "{} is not deterministic CBOR at byte {at}", doc.word())
            }
            TrustError::Unsupported { doc, at } => {
                write!(
                    f,
                    "{} has an unsupported key or value at byte {at}",
                    doc.word()
                )
            }
            TrustError::TrailingBytes(d) => write!(f, "bytes follow the {}", d.word()),
            TrustError::WrongDocumentType(d) => {
                write!(f, "document offered as a {} is of another type", d.word())
            }
            TrustError::Algorithm(d) => {
                write!(f, "{} uses an algorithm other than ES256/SHA-256", d.word())
            }
            TrustError::TooManyRoots => f.write_str("envelope carries too many root documents"),
            TrustError::DigestMismatch => {
                f.write_str("manifest digest does not match the manifest")
            }
            TrustError::UnknownSigner(d) => {
                write!(f, "{} signer is not in the trusted root", d.word())
            }
            TrustError::WrongRole(d) => write!(f, "{} signer lacks the required role", d.word()),
            TrustError::BadSignature(d) => write!(f, "{} signature does not verify", d.word()),
            TrustError::KidMismatch => f.write_str("root document key id does not match its key"),
            TrustError::BadKey => f.write_str("root document key is not a P-256 point"),
            TrustError::KeyList => {
                f.write_str("root document key list is too long or repeats a key id")
            }
            TrustError::Roles => {
                f.write_str("root document roles are invalid or a role has no key")
            }
            TrustError::Threshold => f.write_str("root document thresholds are invalid"),
            TrustError::Revocation => {
                f.write_str("root document drops or overflows boot-key revocations")
            }
            TrustError::VersionSkip { current, found } => {
                write!(f, "root version {found} does not follow {current}")
            }
            TrustError::OldThreshold { have, need } => {
                write!(
                    f,
                    "new root signed by {have} of the {need} old root keys needed"
                )
            }
            TrustError::NewThreshold { have, need } => {
                write!(
                    f,
                    "new root signed by {have} of its own {need} root keys needed"
                )
            }
            TrustError::TimestampRootAhead { have, named } => {
                write!(f, "timestamp names root {named}, trusted root is {have}")
            }
            TrustError::OtherThing => f.write_str("timestamp is for another thing"),
            TrustError::TimestampStale => {
                f.write_str("timestamp is older than one already accepted")
            }
            TrustError::TimestampExpired => f.write_str("timestamp has expired"),
            TrustError::ManifestExpired => f.write_str("manifest has expired"),
            TrustError::SequenceNotNewer { found, floor } => {
                write!(f, "manifest sequence {found} is not above {floor}")
            }
            TrustError::MetadataMismatch => f.write_str("timestamp names another metadata file"),
            TrustError::ImageMismatch => f.write_str("the written image is not the manifest's"),
        }
    }
}

impl core::error::Error for TrustError {}
