//! The timestamp document (design §3.2, D-5): the server's signed statement "at `time`, for
//! thing `thing`, the current metadata file is `metadata`", valid until `expires`.

use crate::TrustedRoot;
use crate::cbor::{R, Reader};
use crate::cose::{self, TAG_SIGN1};
use crate::error::{Doc, TrustError};
use crate::root::Role;

/// Document type of a timestamp (payload key 0).
pub(crate) const TYPE_TIMESTAMP: u64 = 2;

/// A verified timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// Server time, Unix seconds.
    pub time: u64,
    /// Expiry, Unix seconds (always above `time`).
    pub expires: u64,
    /// SHA-256 of the metadata file (fileType 142) of the job document it came with, if any.
    pub metadata: Option<[u8; 32]>,
    /// The root version whose timestamp key signed it.
    pub root_version: u32,
}

impl Timestamp {
    /// Freshness (design D-8): refused as [`TrustError::TimestampStale`] if older than the newest
    /// timestamp already accepted (`attested_time`, a replay), and as
    /// [`TrustError::TimestampExpired`] if it has expired by the device's estimate of now (a
    /// freeze).
    pub fn check_fresh(&self, attested_time: u64, now_estimate: u64) -> Result<(), TrustError> {
        if self.time < attested_time {
            return Err(TrustError::TimestampStale);
        }
        if self.expires <= now_estimate {
            return Err(TrustError::TimestampExpired);
        }
        Ok(())
    }

    /// Mix-and-match: the timestamp must name exactly this metadata file (the SHA-256 of the
    /// whole envelope, [`crate::Bundle::file_digest`]).
    pub fn check_names(&self, file_digest: &[u8; 32]) -> Result<(), TrustError> {
        if self.metadata.as_ref() == Some(file_digest) {
            Ok(())
        } else {
            Err(TrustError::MetadataMismatch)
        }
    }
}

struct Parsed<'b> {
    protected: &'b [u8],
    payload: &'b [u8],
    sig: &'b [u8],
    kid: crate::Kid,
    thing: &'b str,
    ts: Timestamp,
}

fn parse(bytes: &[u8]) -> R<Parsed<'_>> {
    let mut r = Reader::new(bytes, Doc::Timestamp);
    r.tag(TAG_SIGN1)?;
    r.array_of(4)?;
    let protected = r.bytes()?;
    cose::empty_map(&mut r)?;
    let payload = r.bytes()?;
    let sig = r.bytes()?;
    r.end()?;
    let kid = cose::protected_kid(protected, Doc::Timestamp)?;

    let mut p = Reader::new(payload, Doc::Timestamp);
    p.map_of(6)?;
    p.key_is(0)?;
    if p.uint()? != TYPE_TIMESTAMP {
        return Err(TrustError::WrongDocumentType(Doc::Timestamp));
    }
    p.key_is(1)?;
    let thing = p.text()?;
    p.key_is(2)?;
    let time = p.uint()?;
    p.key_is(3)?;
    let expires = p.uint()?;
    p.key_is(4)?;
    let metadata = if p.is_null()? {
        p.null()?;
        None
    } else {
        Some(p.bytes_n::<32>()?)
    };
    p.key_is(5)?;
    let root_version = p.u32()?;
    p.end()?;
    Ok(Parsed {
        protected,
        payload,
        sig,
        kid,
        thing,
        ts: Timestamp {
            time,
            expires,
            metadata,
            root_version,
        },
    })
}

/// The root version a timestamp names, unverified: lets the agent decide to keep the bytes and
/// verify them after walking an envelope's roots. `None` if it is not a well-formed timestamp.
pub fn peek_timestamp_root(bytes: &[u8]) -> Option<u32> {
    parse(bytes).ok().map(|p| p.ts.root_version)
}

/// Verifies a timestamp against the trusted root for thing `thing`.
///
/// Order: strict parse, root version not ahead of `root`
/// ([`TrustError::TimestampRootAhead`]: verify again after the walk), a timestamp-role signer,
/// the ES256 signature, then the payload's claims (thing, `expires > time`). Freshness against
/// the device's clock is [`Timestamp::check_fresh`].
pub fn verify_timestamp(
    bytes: &[u8],
    root: &TrustedRoot,
    thing: &str,
) -> Result<Timestamp, TrustError> {
    let p = parse(bytes)?;
    if p.ts.root_version > root.version() {
        return Err(TrustError::TimestampRootAhead {
            have: root.version(),
            named: p.ts.root_version,
        });
    }
    let key = root.signer(&p.kid, Role::Timestamp, Doc::Timestamp)?;
    if !cose::verify(&key, &cose::sign1_digest(p.protected, p.payload), p.sig) {
        return Err(TrustError::BadSignature(Doc::Timestamp));
    }
    if p.thing != thing {
        return Err(TrustError::OtherThing);
    }
    if p.ts.expires <= p.ts.time {
        return Err(TrustError::TimestampExpired);
    }
    Ok(p.ts)
}
