//! Root documents and the chain walk (design §3.3): the 1→3 walk, and one test per rule that
//! ends in exactly its `TrustError`.

mod common;

use common::*;
use ferrota_manifest::build::{self, RootSpec};
use ferrota_manifest::{Doc, Role, SUB_ROOT, TrustError, TrustedRoot, walk_roots};

fn anchor_err(doc: &[u8]) -> TrustError {
    TrustedRoot::from_anchor(doc).expect_err("anchor must be refused")
}

fn walk_err(docs: &[&[u8]]) -> TrustError {
    let e = walk_roots(&anchor(), docs.iter().copied()).expect_err("walk must be refused");
    assert_eq!(e.sub(), SUB_ROOT, "{e}");
    e
}

#[test]
fn anchor_round_trip() {
    let a = anchor();
    assert_eq!(a.version(), 1);
    assert_eq!(a.issued(), 1_000);
    assert_eq!(a.threshold(), 2);
    assert_eq!(a.revoked_boot_keys(), 0);
    assert_eq!(a.keys().count(), 5);
    let rel = build::kid(release(0));
    assert!(a.has_release_kid(&rel));
    assert_eq!(
        a.key(&rel, Role::Release),
        Some(*release(0).verifying_key())
    );
    assert_eq!(a.key(&rel, Role::Root), None);
    assert!(!a.has_release_kid(&build::kid(timestamp(0))));
}

#[test]
fn walk_one_to_three() {
    let (v2, v3) = (root_v2(), root_v3());
    let r = walk_roots(&anchor(), [&v2[..], &v3[..]].into_iter()).unwrap();
    assert_eq!(r.version(), 3);
    assert_eq!(r.threshold(), 3);
    assert_eq!(r.revoked_boot_keys(), 0b1);
    assert!(r.has_release_kid(&build::kid(release(1))));
    assert!(!r.has_release_kid(&build::kid(release(0))));
    assert!(r.key(&build::kid(timestamp(1)), Role::Timestamp).is_some());
    assert!(r.key(&build::kid(root(2)), Role::Root).is_none());
}

#[test]
fn documents_at_or_below_current_are_skipped() {
    let (a, v2, v3) = (anchor_doc(), root_v2(), root_v3());
    let r = walk_roots(&anchor(), [&a[..], &v2[..], &v3[..]].into_iter()).unwrap();
    assert_eq!(r.version(), 3);
    let r2 = walk_roots(&r, [&v2[..]].into_iter()).unwrap();
    assert_eq!(r2, r);
    assert_eq!(
        walk_roots(&anchor(), core::iter::empty()).unwrap(),
        anchor()
    );
}

#[test]
fn unknown_signers_are_ignored() {
    let v2 = build::root_doc(
        2,
        2_000,
        &keys_v2(),
        2,
        0,
        &[attacker(), root(0), root(1), root(3)],
    );
    assert_eq!(
        walk_roots(&anchor(), [&v2[..]].into_iter())
            .unwrap()
            .version(),
        2
    );
}

#[test]
fn version_skip() {
    let v3 = root_v3();
    assert_eq!(
        walk_err(&[&v3]),
        TrustError::VersionSkip {
            current: 1,
            found: 3
        }
    );
}

#[test]
fn missing_old_key_signature() {
    // Root 3 is only a key of the new root: the old root saw one signature (root 0) of 2.
    let v2 = build::root_doc(2, 2_000, &keys_v2(), 2, 0, &[root(0), root(3)]);
    assert_eq!(
        walk_err(&[&v2]),
        TrustError::OldThreshold { have: 1, need: 2 }
    );
}

#[test]
fn missing_new_key_signature() {
    // The new root's root keys are 3 and 4; only 3 signed.
    let keys = vec![
        kf(root(3), R),
        kf(root(4), R),
        kf(release(0), REL),
        kf(timestamp(0), TS),
    ];
    let v2 = build::root_doc(2, 2_000, &keys, 2, 0, &[root(0), root(1), root(3)]);
    assert_eq!(
        walk_err(&[&v2]),
        TrustError::NewThreshold { have: 1, need: 2 }
    );
}

#[test]
fn duplicate_kid_counts_once() {
    let v2 = build::root_doc(2, 2_000, &keys_v2(), 2, 0, &[root(0), root(0), root(3)]);
    assert_eq!(
        walk_err(&[&v2]),
        TrustError::OldThreshold { have: 1, need: 2 }
    );
}

#[test]
fn forged_root_by_online_keys() {
    // A server holding the timestamp and release keys cannot make a root.
    let v2 = build::root_doc(
        2,
        2_000,
        &keys_v1(),
        2,
        0,
        &[timestamp(0), release(0), attacker()],
    );
    assert_eq!(
        walk_err(&[&v2]),
        TrustError::OldThreshold { have: 0, need: 2 }
    );
}

#[test]
fn bad_signature_counts_for_nothing() {
    let mut v2 = build::root_doc(2, 2_000, &keys_v2(), 2, 0, &[root(0), root(1)]);
    assert_eq!(
        walk_roots(&anchor(), [&v2[..]].into_iter())
            .unwrap()
            .version(),
        2
    );
    let n = v2.len();
    v2[n - 1] ^= 1; // the last signer's (root 1) signature
    assert_eq!(
        walk_err(&[&v2]),
        TrustError::OldThreshold { have: 1, need: 2 }
    );
}

#[test]
fn anchor_below_its_own_threshold() {
    let doc = build::root_doc(1, 0, &keys_v1(), 2, 0, &[root(0)]);
    assert_eq!(
        anchor_err(&doc),
        TrustError::NewThreshold { have: 1, need: 2 }
    );
}

#[test]
fn revocation_cannot_be_dropped() {
    let v2 = root_v2(); // revokes slot 0
    let v3 = build::root_doc(3, 3_000, &keys_v3(), 3, 0, &[root(0), root(1), root(3)]);
    assert_eq!(walk_err(&[&v2, &v3]), TrustError::Revocation);
}

fn spec() -> RootSpec {
    RootSpec::new(1, 0, &keys_v1(), 2, 0)
}

fn signed(s: &RootSpec) -> Vec<u8> {
    s.sign(&[root(0), root(1)])
}

#[test]
fn revocation_above_the_slots() {
    let mut s = spec();
    s.revoked = 0b1_0000;
    assert_eq!(anchor_err(&signed(&s)), TrustError::Revocation);
}

#[test]
fn kid_mismatch() {
    let mut s = spec();
    s.keys[3].0[0] ^= 1;
    assert_eq!(anchor_err(&signed(&s)), TrustError::KidMismatch);
}

#[test]
fn bad_key() {
    let mut s = spec();
    s.keys[3].2[64] ^= 1; // off the curve
    assert_eq!(anchor_err(&signed(&s)), TrustError::BadKey);
    let mut s = spec();
    s.keys[3].2[0] = 0x02; // not uncompressed
    assert_eq!(anchor_err(&signed(&s)), TrustError::BadKey);
}

#[test]
fn key_list() {
    let mut s = spec();
    let extra = s.keys[0];
    s.keys.push(extra);
    assert_eq!(anchor_err(&signed(&s)), TrustError::KeyList); // 6 keys
    let mut s = spec();
    s.keys[4] = s.keys[0];
    assert_eq!(anchor_err(&signed(&s)), TrustError::KeyList); // kid twice
    let mut s = spec();
    s.keys.clear();
    assert_eq!(anchor_err(&signed(&s)), TrustError::KeyList);
}

#[test]
fn roles() {
    let mut s = spec();
    s.keys[3].1 = 0;
    assert_eq!(anchor_err(&signed(&s)), TrustError::Roles);
    let mut s = spec();
    s.keys[3].1 = 8;
    assert_eq!(anchor_err(&signed(&s)), TrustError::Roles);
    let mut s = spec();
    s.keys.remove(4); // no timestamp key
    assert_eq!(anchor_err(&signed(&s)), TrustError::Roles);
}

#[test]
fn thresholds() {
    for t in [[0, 1, 1], [4, 1, 1], [2, 2, 1], [2, 1, 0]] {
        let mut s = spec();
        s.thresholds = t;
        assert_eq!(anchor_err(&signed(&s)), TrustError::Threshold, "{t:?}");
    }
}

#[test]
fn wrong_document_type() {
    let mut s = spec();
    s.doc_type = 2;
    assert_eq!(
        anchor_err(&signed(&s)),
        TrustError::WrongDocumentType(Doc::Root)
    );
}

#[test]
fn version_zero_or_too_large() {
    for v in [0, 1 << 32] {
        let mut s = spec();
        s.version = v;
        assert!(matches!(
            anchor_err(&signed(&s)),
            TrustError::Unsupported { doc: Doc::Root, .. }
        ));
    }
}

#[test]
fn truncated_trailing_garbage() {
    let doc = anchor_doc();
    for n in 0..doc.len() {
        let e = anchor_err(&doc[..n]);
        assert_eq!(e.sub(), SUB_ROOT);
        if n > 0 {
            assert_eq!(e, TrustError::Truncated(Doc::Root), "cut at {n}");
        }
    }
    let mut long = doc.clone();
    long.push(0);
    assert_eq!(anchor_err(&long), TrustError::TrailingBytes(Doc::Root));
    assert!(matches!(
        anchor_err(&[0x01]),
        TrustError::Malformed {
            doc: Doc::Root,
            at: 0
        }
    ));
}

#[test]
fn not_canonical() {
    let doc = anchor_doc();
    assert_eq!(&doc[..2], &[0xd8, 0x62]); // tag 98, shortest form
    let mut long = vec![0xd9, 0x00, 0x62];
    long.extend_from_slice(&doc[2..]);
    assert_eq!(
        anchor_err(&long),
        TrustError::NotCanonical {
            doc: Doc::Root,
            at: 0
        }
    );
}

#[test]
fn other_algorithm() {
    use minicbor::Encoder;
    use minicbor::data::Tag;
    let payload = spec().payload();
    let mut p = Encoder::new(Vec::new());
    p.map(2)
        .unwrap()
        .u64(1)
        .unwrap()
        .i64(-35)
        .unwrap()
        .u64(4)
        .unwrap();
    p.bytes(&build::kid(root(0))).unwrap();
    let p = p.into_writer();
    let mut e = Encoder::new(Vec::new());
    e.tag(Tag::new(98))
        .unwrap()
        .array(4)
        .unwrap()
        .bytes(&[])
        .unwrap()
        .map(0)
        .unwrap();
    e.bytes(&payload).unwrap().array(1).unwrap();
    e.array(3)
        .unwrap()
        .bytes(&p)
        .unwrap()
        .map(0)
        .unwrap()
        .bytes(&[0; 64])
        .unwrap();
    assert_eq!(
        anchor_err(&e.into_writer()),
        TrustError::Algorithm(Doc::Root)
    );
}

#[test]
fn signer_count_bounds() {
    // More than MAX_SIGNATURES signers are refused unread; none at all too.
    let many: Vec<&_> =
        std::iter::repeat_n(root(0), ferrota_manifest::MAX_SIGNATURES + 1).collect();
    let doc = build::root_doc(1, 0, &keys_v1(), 2, 0, &many);
    assert!(matches!(
        anchor_err(&doc),
        TrustError::Unsupported { doc: Doc::Root, .. }
    ));
    let none = build::root_doc(1, 0, &keys_v1(), 2, 0, &[]);
    assert!(matches!(
        anchor_err(&none),
        TrustError::Unsupported { doc: Doc::Root, .. }
    ));
    // Exactly MAX_SIGNATURES is read (and one key id still counts once).
    let max: Vec<&_> = std::iter::repeat_n(root(0), ferrota_manifest::MAX_SIGNATURES).collect();
    let doc = build::root_doc(1, 0, &keys_v1(), 2, 0, &max);
    assert_eq!(
        anchor_err(&doc),
        TrustError::NewThreshold { have: 1, need: 2 }
    );
}
