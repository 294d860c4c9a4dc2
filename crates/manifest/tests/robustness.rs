//! Every parser against arbitrary and mutated bytes (never a panic, only the document's own
//! sub-code), the errors' words, and the RAM the main values cost.

mod common;

use common::*;
use ferrota_manifest::build::{self, ManifestSpec};
use ferrota_manifest::store::TrustState;
use ferrota_manifest::{
    Bundle, Doc, SUB_MANIFEST, SUB_ROOT, SUB_SIGNER, SUB_STALE, SUB_TIMESTAMP, Timestamp,
    TrustError, TrustedRoot, VerifiedManifest, class_id, parse_bundle, peek_timestamp_root,
    verify_envelope, verify_timestamp, walk_roots,
};
use proptest::prelude::*;

fn envelope() -> Vec<u8> {
    let spec = ManifestSpec {
        image_digest: [7; 32],
        image_size: 1000,
        class_id: class_id("hw"),
        version: ferrota_image::FirmwareVersion::new(1, 1, 0),
        security_counter: 1,
        region_digests: [[1; 32], [2; 32], [3; 32]],
    };
    build::envelope(&spec, 3, 0, Some("t"), release(1), &[root_v2()])
}

/// Every parser on `bytes`: returns nothing, must not panic, and any error names the right
/// document kind.
fn all_parsers(bytes: &[u8], root: &TrustedRoot) {
    match parse_bundle(bytes) {
        Ok(b) => {
            if let Ok(r) = walk_roots(root, b.roots())
                && let Err(e) = verify_envelope(&b, &r)
            {
                assert_eq!(e.doc(), Doc::Manifest, "{e}");
                assert!(matches!(e.sub(), SUB_MANIFEST | SUB_SIGNER), "{e}");
            }
        }
        // An integrated root that does not parse is a root error.
        Err(e) => assert!(matches!(e.sub(), SUB_MANIFEST | SUB_ROOT), "{e}"),
    }
    if let Err(e) = TrustedRoot::from_anchor(bytes) {
        assert_eq!(e.sub(), SUB_ROOT, "{e}");
    }
    if let Err(e) = walk_roots(root, [bytes].into_iter()) {
        assert_eq!(e.sub(), SUB_ROOT, "{e}");
    }
    let _ = peek_timestamp_root(bytes);
    if let Err(e) = verify_timestamp(bytes, root, "t") {
        assert!(matches!(e.sub(), SUB_TIMESTAMP | SUB_STALE), "{e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        all_parsers(&bytes, &anchor());
    }

    /// Valid documents with bytes changed: deeper paths than random bytes reach.
    #[test]
    fn mutated_documents_never_panic(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut doc = match which {
            0 => envelope(),
            1 => anchor_doc(),
            2 => root_v2(),
            _ => build::timestamp("t", 10, 20, Some([9; 32]), 1, timestamp(0)),
        };
        for (i, v) in edits {
            let i = i.index(doc.len());
            doc[i] = v;
        }
        all_parsers(&doc, &anchor());
    }

    /// A changed byte is refused, unless it lies in a signature of an integrated root that the
    /// thresholds do not need (TUF: invalid signatures count for nothing): then the same root
    /// and the same manifest facts verify, and only the file digest differs (so a timestamp
    /// naming the genuine file refuses it, and the sequence rule cannot take it as a resume).
    #[test]
    fn a_changed_envelope_never_verifies_other_facts(
        i in any::<prop::sample::Index>(),
        x in 1u8..=255,
    ) {
        let genuine = envelope();
        let b0 = parse_bundle(&genuine).unwrap();
        let r0 = walk_roots(&anchor(), b0.roots()).unwrap();
        let m0 = verify_envelope(&b0, &r0).unwrap();
        let v2 = root_v2();
        let start = genuine.windows(v2.len()).position(|w| w == &v2[..]).unwrap();
        let mut file = genuine.clone();
        let i = i.index(file.len());
        file[i] ^= x;
        if let Ok(b) = parse_bundle(&file)
            && let Ok(r) = walk_roots(&anchor(), b.roots())
            && let Ok(m) = verify_envelope(&b, &r)
        {
            prop_assert!((start..start + v2.len()).contains(&i), "byte {i} ^ {x:#x}");
            prop_assert_eq!(&r, &r0);
            prop_assert_ne!(m.file_digest(), m0.file_digest());
            prop_assert_eq!(
                (m.sequence(), m.image_digest(), m.image_size(), m.version()),
                (m0.sequence(), m0.image_digest(), m0.image_size(), m0.version())
            );
        }
    }
}

/// Exhaustive and deterministic: every byte of an envelope (with an integrated root) with its
/// low bit flipped. The only changes that still verify are in the signatures of the
/// integrated root that its thresholds do not need; they verify the same root and facts.
#[test]
fn every_flipped_byte_of_an_envelope() {
    let genuine = envelope();
    let b0 = parse_bundle(&genuine).unwrap();
    let r0 = walk_roots(&anchor(), b0.roots()).unwrap();
    let m0 = verify_envelope(&b0, &r0).unwrap();
    let v2 = root_v2();
    let start = genuine
        .windows(v2.len())
        .position(|w| w == &v2[..])
        .unwrap();
    let mut verified = 0;
    for i in 0..genuine.len() {
        let bit = 0x01u8;
        let mut file = genuine.clone();
        file[i] ^= bit;
        all_parsers(&file, &anchor());
        if let Ok(b) = parse_bundle(&file)
            && let Ok(r) = walk_roots(&anchor(), b.roots())
            && let Ok(m) = verify_envelope(&b, &r)
        {
            assert!(
                (start..start + v2.len()).contains(&i),
                "byte {i} ^ {bit:#x}"
            );
            assert_eq!(r, r0);
            assert_eq!(
                (m.sequence(), m.image_digest(), m.region_digests()),
                (m0.sequence(), m0.image_digest(), m0.region_digests())
            );
            assert_ne!(m.file_digest(), m0.file_digest());
            verified += 1;
        }
    }
    // Root v2 is signed by root keys 0, 1 (old and new) and 3 (new only), thresholds 2 and 2:
    // key 3's signature is spare, so its 64 signature bytes and its 8 kid bytes (an unknown kid
    // counts for nothing) are the only ones a flip leaves verifying.
    assert_eq!(verified, 64 + 8);
}

#[test]
fn every_error_has_words_and_a_sub() {
    let all = [
        TrustError::Truncated(Doc::Manifest),
        TrustError::Malformed {
            doc: Doc::Root,
            at: 3,
        },
        TrustError::NotCanonical {
            doc: Doc::Timestamp,
            at: 0,
        },
        TrustError::Unsupported {
            doc: Doc::Manifest,
            at: 9,
        },
        TrustError::TrailingBytes(Doc::Root),
        TrustError::WrongDocumentType(Doc::Timestamp),
        TrustError::Algorithm(Doc::Root),
        TrustError::TooManyRoots,
        TrustError::DigestMismatch,
        TrustError::UnknownSigner(Doc::Manifest),
        TrustError::WrongRole(Doc::Timestamp),
        TrustError::BadSignature(Doc::Manifest),
        TrustError::KidMismatch,
        TrustError::BadKey,
        TrustError::KeyList,
        TrustError::Roles,
        TrustError::Threshold,
        TrustError::Revocation,
        TrustError::VersionSkip {
            current: 1,
            found: 3,
        },
        TrustError::OldThreshold { have: 1, need: 2 },
        TrustError::NewThreshold { have: 0, need: 2 },
        TrustError::TimestampRootAhead { have: 1, named: 2 },
        TrustError::OtherThing,
        TrustError::TimestampStale,
        TrustError::TimestampExpired,
        TrustError::ManifestExpired,
        TrustError::SequenceNotNewer { found: 1, floor: 2 },
        TrustError::MetadataMismatch,
    ];
    for e in all {
        assert!(!e.to_string().is_empty());
        assert!((3..=11).contains(&e.sub()), "{e}");
    }
    assert_eq!(TrustError::WrongRole(Doc::Timestamp).sub(), SUB_TIMESTAMP);
    assert_eq!(TrustError::BadSignature(Doc::Root).sub(), SUB_ROOT);
}

/// The RAM the agent pays (64-bit host figures, stated in the crate docs; a 32-bit MCU has
/// smaller slices in `Bundle`, the rest is the same).
#[test]
fn sizes() {
    use core::mem::size_of;
    let root = size_of::<TrustedRoot>();
    let manifest = size_of::<VerifiedManifest>();
    let bundle = size_of::<Bundle<'_>>();
    let state = size_of::<TrustState>();
    println!(
        "TrustedRoot {root}, VerifiedManifest {manifest}, Bundle {bundle}, TrustState {state}"
    );
    assert!(root <= 5 * 96 + 32, "{root}");
    assert!(manifest <= 320, "{manifest}");
    assert_eq!(size_of::<TrustError>(), 12);
    assert_eq!(size_of::<Timestamp>(), 56);
    #[cfg(target_pointer_width = "64")]
    {
        assert_eq!(root, ROOT_SIZE);
        assert_eq!(manifest, MANIFEST_SIZE);
        assert_eq!(bundle, BUNDLE_SIZE);
        assert_eq!(state, STATE_SIZE);
    }
}

const ROOT_SIZE: usize = 496;
const MANIFEST_SIZE: usize = 304;
const BUNDLE_SIZE: usize = 208;
const STATE_SIZE: usize = 560;
