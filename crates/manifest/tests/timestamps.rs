//! Timestamps (design §3.2): build → verify, and one test per refusal.

mod common;

use common::*;
use ferrota_manifest::build::{self, TimestampSpec};
use ferrota_manifest::{
    Doc, SUB_METADATA, SUB_STALE, SUB_TIMESTAMP, Timestamp, TrustError, peek_timestamp_root,
    verify_timestamp, walk_roots,
};

const THING: &str = "ferrota-kit-01";
const DIGEST: [u8; 32] = [0xAB; 32];

fn spec() -> TimestampSpec {
    TimestampSpec {
        doc_type: 2,
        thing: THING.into(),
        time: 10_000,
        expires: 13_600,
        metadata: Some(DIGEST),
        root_version: 1,
    }
}

fn err(bytes: &[u8]) -> TrustError {
    verify_timestamp(bytes, &anchor(), THING).expect_err("timestamp must be refused")
}

#[test]
fn round_trip() {
    let b = build::timestamp(THING, 10_000, 13_600, Some(DIGEST), 1, timestamp(0));
    assert!(b.len() < 256, "fits the agent's 256 B buffer: {}", b.len());
    let t = verify_timestamp(&b, &anchor(), THING).unwrap();
    assert_eq!(
        t,
        Timestamp {
            time: 10_000,
            expires: 13_600,
            metadata: Some(DIGEST),
            root_version: 1
        }
    );
    assert_eq!(peek_timestamp_root(&b), Some(1));
    assert_eq!(t.check_names(&DIGEST), Ok(()));
    assert_eq!(t.check_fresh(10_000, 13_599), Ok(()));
    let none = build::timestamp(THING, 10_000, 13_600, None, 1, timestamp(0));
    let t = verify_timestamp(&none, &anchor(), THING).unwrap();
    assert_eq!(t.metadata, None);
    assert_eq!(t.check_names(&DIGEST), Err(TrustError::MetadataMismatch));
    assert_eq!(TrustError::MetadataMismatch.sub(), SUB_METADATA);
}

#[test]
fn stale_and_expired() {
    let b = spec().sign(timestamp(0));
    let t = verify_timestamp(&b, &anchor(), THING).unwrap();
    assert_eq!(t.check_fresh(10_001, 0), Err(TrustError::TimestampStale));
    assert_eq!(t.check_fresh(0, 13_600), Err(TrustError::TimestampExpired));
    assert_eq!(TrustError::TimestampStale.sub(), SUB_STALE);
    assert_eq!(TrustError::TimestampExpired.sub(), SUB_STALE);
    let mut s = spec();
    s.expires = s.time;
    assert_eq!(err(&s.sign(timestamp(0))), TrustError::TimestampExpired);
}

#[test]
fn other_thing() {
    let mut s = spec();
    s.thing = "ferrota-kit-02".into();
    assert_eq!(err(&s.sign(timestamp(0))), TrustError::OtherThing);
    assert_eq!(TrustError::OtherThing.sub(), SUB_TIMESTAMP);
}

#[test]
fn signer_roles() {
    let s = spec();
    assert_eq!(
        err(&s.sign(attacker())),
        TrustError::UnknownSigner(Doc::Timestamp)
    );
    assert_eq!(
        err(&s.sign(release(0))),
        TrustError::WrongRole(Doc::Timestamp)
    );
    assert_eq!(err(&s.sign(root(0))), TrustError::WrongRole(Doc::Timestamp));
    let mut b = s.sign(timestamp(0));
    let n = b.len();
    b[n - 1] ^= 1;
    assert_eq!(err(&b), TrustError::BadSignature(Doc::Timestamp));
    for e in [
        TrustError::UnknownSigner(Doc::Timestamp),
        TrustError::BadSignature(Doc::Timestamp),
    ] {
        assert_eq!(e.sub(), SUB_TIMESTAMP);
    }
}

#[test]
fn deferred_until_the_roots_are_walked() {
    // Signed by the timestamp key of root v3, which root v1 does not know.
    let b = build::timestamp(THING, 10_000, 13_600, Some(DIGEST), 3, timestamp(1));
    assert_eq!(peek_timestamp_root(&b), Some(3));
    assert_eq!(
        err(&b),
        TrustError::TimestampRootAhead { have: 1, named: 3 }
    );
    let (v2, v3) = (root_v2(), root_v3());
    let r3 = walk_roots(&anchor(), [&v2[..], &v3[..]].into_iter()).unwrap();
    assert_eq!(verify_timestamp(&b, &r3, THING).unwrap().root_version, 3);
    // The old timestamp key left the root with v3.
    let old = build::timestamp(THING, 10_000, 13_600, None, 1, timestamp(0));
    assert_eq!(
        verify_timestamp(&old, &r3, THING),
        Err(TrustError::UnknownSigner(Doc::Timestamp))
    );
}

#[test]
fn wrong_document_type() {
    let mut s = spec();
    s.doc_type = 1;
    assert_eq!(
        err(&s.sign(timestamp(0))),
        TrustError::WrongDocumentType(Doc::Timestamp)
    );
    // A root document is not a timestamp (other tag).
    assert!(matches!(
        err(&anchor_doc()),
        TrustError::Malformed {
            doc: Doc::Timestamp,
            at: 0
        }
    ));
}

#[test]
fn truncated_and_trailing() {
    let b = spec().sign(timestamp(0));
    for n in 1..b.len() {
        assert_eq!(
            err(&b[..n]),
            TrustError::Truncated(Doc::Timestamp),
            "cut at {n}"
        );
        assert_eq!(peek_timestamp_root(&b[..n]), None);
    }
    let mut long = b.clone();
    long.push(0xF6);
    assert_eq!(err(&long), TrustError::TrailingBytes(Doc::Timestamp));
}

#[test]
fn unknown_key_is_refused() {
    // A payload with key 6 instead of 5.
    let mut p = spec().payload();
    let n = p.len();
    assert_eq!(p[n - 2], 0x05);
    p[n - 2] = 0x06;
    let b = build::sign1(&p, timestamp(0));
    assert!(matches!(
        err(&b),
        TrustError::Unsupported {
            doc: Doc::Timestamp,
            ..
        }
    ));
}
