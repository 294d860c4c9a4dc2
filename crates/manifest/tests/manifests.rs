//! The SUIT envelope (design §3.1): build → verify, golden bytes, one test per refusal, and the
//! sequence rule.

mod common;

use common::*;
use ferrota_image::FirmwareVersion;
use ferrota_manifest::build::{self, ManifestSpec};
use ferrota_manifest::store::TrustState;
use ferrota_manifest::{
    Doc, SUB_EXPIRED, SUB_MANIFEST, SUB_SEQUENCE, SUB_SIGNER, TrustError, check_sequence, class_id,
    device_id, parse_bundle, verify_envelope, walk_roots,
};
use sha2::{Digest, Sha256};

fn spec() -> ManifestSpec {
    ManifestSpec {
        image_digest: [0x11; 32],
        image_size: 0x0001_2345,
        class_id: class_id("KIT_T2G-B-H_EVK"),
        version: FirmwareVersion::new(1, 2, 3),
        security_counter: 2,
        region_digests: [[0x21; 32], [0x22; 32], [0x23; 32]],
    }
}

fn verify(file: &[u8]) -> Result<ferrota_manifest::VerifiedManifest, TrustError> {
    verify_envelope(&parse_bundle(file)?, &anchor())
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("present")
}

#[test]
fn round_trip() {
    let file = build::envelope(&spec(), 7, 90_000, None, release(0), &[]);
    assert!(file.len() < 512, "envelope is {} B", file.len());
    let b = parse_bundle(&file).unwrap();
    assert_eq!(b.roots().count(), 0);
    assert_eq!(b.file_digest(), <[u8; 32]>::from(Sha256::digest(&file)));
    assert_eq!(b.signer(), build::kid(release(0)));
    let m = verify_envelope(&b, &anchor()).unwrap();
    let s = spec();
    assert_eq!(m.sequence(), 7);
    assert_eq!(m.image_size(), s.image_size);
    assert_eq!(m.image_digest(), &s.image_digest);
    assert_eq!(m.version(), s.version);
    assert_eq!(m.security_counter(), 2);
    assert_eq!(m.expires(), 90_000);
    assert_eq!(m.class_id(), &s.class_id);
    assert_eq!(m.device_id(), None);
    assert_eq!(m.region_digests(), &s.region_digests);
    assert_eq!(m.signer(), build::kid(release(0)));
    assert_eq!(m.release_key(), release(0).verifying_key());
    assert_eq!(m.file_digest(), &b.file_digest());
}

#[test]
fn per_thing_manifest() {
    let file = build::envelope(&spec(), 8, 0, Some("thing-7"), release(0), &[]);
    let m = verify(&file).unwrap();
    assert_eq!(m.device_id(), Some(&device_id("thing-7")));
    assert_eq!(m.check_expiry(u64::MAX), Ok(()));
}

#[test]
fn integrated_roots_rotate_the_release_key() {
    let roots = vec![root_v2(), root_v3()];
    let file = build::envelope(&spec(), 9, 0, None, release(1), &roots);
    assert!(file.len() <= 4096, "fits one stream block: {}", file.len());
    let b = parse_bundle(&file).unwrap();
    let got: Vec<&[u8]> = b.roots().collect();
    assert_eq!(got, vec![&roots[0][..], &roots[1][..]]);
    assert_eq!(
        verify_envelope(&b, &anchor()),
        Err(TrustError::UnknownSigner(Doc::Manifest))
    );
    let r3 = walk_roots(&anchor(), b.roots()).unwrap();
    assert_eq!(r3.version(), 3);
    assert_eq!(verify_envelope(&b, &r3).unwrap().sequence(), 9);
    // The rotated-out release key no longer signs.
    let old = build::envelope(&spec(), 10, 0, None, release(0), &roots);
    let b = parse_bundle(&old).unwrap();
    let r3 = walk_roots(&anchor(), b.roots()).unwrap();
    assert_eq!(
        verify_envelope(&b, &r3),
        Err(TrustError::UnknownSigner(Doc::Manifest))
    );
}

/// The manifest bytes are pinned: a change of the encoding is a format change.
#[test]
fn golden_manifest_bytes() {
    let small = ManifestSpec {
        image_digest: [0xAA; 32],
        image_size: 4096,
        class_id: [0xC1; 16],
        version: FirmwareVersion::new(1, 0, 0),
        security_counter: 1,
        region_digests: [[0x01; 32], [0x02; 32], [0x03; 32]],
    };
    let m = small.manifest(1, 0, None);
    assert_eq!(m.len(), 235); // FORMAT.md's example
    let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
    let expected = concat!(
        "a4",
        "0101",
        "0201", // {1: 1, 2: 1,
        "03",
        "58",
        "de", // 3: << (222 B)
        "a2",
        "02",
        "81",
        "82",
        "4446525441",
        "4100", // {2: [["FRTA", h'00']],
        "04",
        "58",
        "d0", // 4: << (208 B)
        "86",
        "14",
        "a8", // [20, {8 entries:
        "0150",
        "", // 1: vendor id (16 B, below)
    );
    assert!(hex.starts_with(expected), "{hex}");
    let vendor: String = ferrota_manifest::vendor_id()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let rest = concat!(
        "0250",
        "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1", // 2: class id
        "0358",
        "24",
        "822f5820",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", // 3: << [-16, digest] >>
        "0e",
        "191000", // 14: 4096
        "390100",
        "1a01000000", // -257: 1.0.0
        "390101",
        "01", // -258: 1
        "390102",
        "00", // -259: 0
        "390103",
        "83", // -260: [
        "5820",
        "0101010101010101010101010101010101010101010101010101010101010101",
        "5820",
        "0202020202020202020202020202020202020202020202020202020202020202",
        "5820",
        "0303030303030303030303030303030303030303030303030303030303030303", // ]}
        "010f",
        "020f", // 1, 15, 2, 15]
        "07",
        "43",
        "82030f", // 7: << [3, 15] >>}
    );
    assert_eq!(hex, format!("{expected}{vendor}{rest}"));
    // uuid8: version 8, RFC 9562 variant.
    let v = ferrota_manifest::vendor_id();
    assert_eq!(v[6] >> 4, 8);
    assert_eq!(v[8] >> 6, 0b10);
    // ECDSA signing is deterministic (RFC 6979): the whole envelope is reproducible.
    let a = build::envelope(&small, 1, 0, None, release(0), &[]);
    let b = build::envelope(&small, 1, 0, None, release(0), &[]);
    assert_eq!(a, b);
    assert_eq!(&a[..3], &[0xd8, 0x6b, 0xa2]); // 107({2 entries
}

#[test]
fn digest_mismatch() {
    let mut file = build::envelope(&spec(), 7, 0, None, release(0), &[]);
    let m = spec().manifest(7, 0, None);
    let at = find(&file, &m);
    file[at + 4] ^= 1; // the sequence number
    assert_eq!(verify(&file), Err(TrustError::DigestMismatch));
    assert_eq!(TrustError::DigestMismatch.sub(), SUB_SIGNER);
}

#[test]
fn signer_must_be_a_release_key() {
    for (k, e) in [
        (attacker(), TrustError::UnknownSigner(Doc::Manifest)),
        (timestamp(0), TrustError::WrongRole(Doc::Manifest)),
        (root(0), TrustError::WrongRole(Doc::Manifest)),
    ] {
        let file = build::envelope(&spec(), 7, 0, None, k, &[]);
        assert_eq!(verify(&file), Err(e));
        assert_eq!(e.sub(), SUB_SIGNER);
    }
}

#[test]
fn bad_signature() {
    let mut file = build::envelope(&spec(), 7, 0, None, release(0), &[]);
    let m = spec().manifest(7, 0, None);
    let at = find(&file, &m);
    let head = if m.len() < 256 { 2 } else { 3 };
    let sig_end = at - 1 - head; // key 3, then the bstr head
    file[sig_end - 1] ^= 1;
    assert_eq!(verify(&file), Err(TrustError::BadSignature(Doc::Manifest)));
    assert_eq!(TrustError::BadSignature(Doc::Manifest).sub(), SUB_SIGNER);
}

#[test]
fn signed_but_unsupported_content() {
    let m = spec().manifest(7, 0, None);
    assert_eq!(&m[..3], &[0xa4, 0x01, 0x01]);
    let mut v2 = m.clone();
    v2[2] = 0x02; // manifest-version 2
    let e = verify(&build::envelope_of(&v2, release(0), &[])).unwrap_err();
    assert_eq!(
        e,
        TrustError::Unsupported {
            doc: Doc::Manifest,
            at: 2
        }
    );
    assert_eq!(e.sub(), SUB_MANIFEST);
    // Another vendor id.
    let mut other = m.clone();
    let at = find(&other, &ferrota_manifest::vendor_id());
    other[at] ^= 1;
    let e = verify(&build::envelope_of(&other, release(0), &[])).unwrap_err();
    assert!(
        matches!(
            e,
            TrustError::Unsupported {
                doc: Doc::Manifest,
                ..
            }
        ),
        "{e}"
    );
    // Trailing bytes after the manifest map.
    let mut long = m.clone();
    long.push(0);
    let e = verify(&build::envelope_of(&long, release(0), &[])).unwrap_err();
    assert_eq!(e, TrustError::TrailingBytes(Doc::Manifest));
}

#[test]
fn too_many_roots() {
    let a = anchor_doc();
    let file = build::envelope(&spec(), 7, 0, None, release(0), &vec![a; 5]);
    assert_eq!(parse_bundle(&file).unwrap_err(), TrustError::TooManyRoots);
}

#[test]
fn duplicate_root_names_are_not_canonical() {
    let a = anchor_doc();
    let file = build::envelope(&spec(), 7, 0, None, release(0), &[a.clone(), a]);
    assert!(matches!(
        parse_bundle(&file).unwrap_err(),
        TrustError::NotCanonical {
            doc: Doc::Manifest,
            ..
        }
    ));
}

#[test]
fn root_name_must_match_its_version() {
    let file = build::envelope(&spec(), 7, 0, None, release(0), &[root_v2()]);
    let at = find(&file, b"#ferrota-root-2");
    let mut renamed = file.clone();
    renamed[at + 14] = b'3';
    assert!(matches!(
        parse_bundle(&renamed).unwrap_err(),
        TrustError::Unsupported {
            doc: Doc::Manifest,
            ..
        }
    ));
    let mut bad = file.clone();
    bad[at + 1] = b'F';
    assert!(matches!(
        parse_bundle(&bad).unwrap_err(),
        TrustError::Unsupported {
            doc: Doc::Manifest,
            ..
        }
    ));
    // A root document that does not parse is a root error.
    let v2 = root_v2();
    let mut broken = build::envelope(&spec(), 7, 0, None, release(0), std::slice::from_ref(&v2));
    let at = find(&broken, &v2);
    broken[at] = 0xd2; // tag 18, not 98
    assert_eq!(
        parse_bundle(&broken).unwrap_err().sub(),
        ferrota_manifest::SUB_ROOT
    );
}

#[test]
fn truncated_trailing_garbage() {
    let file = build::envelope(&spec(), 7, 0, None, release(0), &[root_v2()]);
    for n in 1..file.len() {
        let e = parse_bundle(&file[..n]).unwrap_err();
        assert_eq!(e, TrustError::Truncated(Doc::Manifest), "cut at {n}");
        assert_eq!(e.sub(), SUB_MANIFEST);
    }
    assert!(parse_bundle(&[]).is_err());
    let mut long = file.clone();
    long.push(0);
    assert_eq!(
        parse_bundle(&long).unwrap_err(),
        TrustError::TrailingBytes(Doc::Manifest)
    );
    // A timestamp is not an envelope.
    let ts = build::timestamp("t", 1, 2, None, 1, timestamp(0));
    assert!(matches!(
        parse_bundle(&ts).unwrap_err(),
        TrustError::Malformed {
            doc: Doc::Manifest,
            at: 0
        }
    ));
}

#[test]
fn manifest_expiry() {
    let m = verify(&build::envelope(&spec(), 7, 5_000, None, release(0), &[])).unwrap();
    assert_eq!(m.check_expiry(4_999), Ok(()));
    assert_eq!(m.check_expiry(5_000), Err(TrustError::ManifestExpired));
    assert_eq!(TrustError::ManifestExpired.sub(), SUB_EXPIRED);
}

#[test]
fn sequence_rule() {
    let file = build::envelope(&spec(), 7, 0, None, release(0), &[]);
    let m = verify(&file).unwrap();
    let mut s = TrustState::new(anchor());
    assert_eq!(check_sequence(&s, &m), Ok(()));
    s.installed_seq = 7;
    assert_eq!(
        check_sequence(&s, &m),
        Err(TrustError::SequenceNotNewer { found: 7, floor: 7 })
    );
    assert_eq!(
        TrustError::SequenceNotNewer { found: 7, floor: 7 }.sub(),
        SUB_SEQUENCE
    );
    // Accepted but not installed: the same file resumes, another file with that seq does not.
    s.installed_seq = 5;
    s.seen_seq = 7;
    s.seen_kid = build::kid(release(0));
    s.seen_digest = *m.file_digest();
    assert_eq!(check_sequence(&s, &m), Ok(()));
    let other = verify(&build::envelope(&spec(), 7, 1, None, release(0), &[])).unwrap();
    assert_eq!(
        check_sequence(&s, &other),
        Err(TrustError::SequenceNotNewer { found: 7, floor: 7 })
    );
    // A floor set by a release key that left the root no longer binds (fast-forward recovery).
    s.seen_seq = 1_000_000;
    assert_eq!(s.floor(), 1_000_000);
    let (v2, v3) = (root_v2(), root_v3());
    s.root = walk_roots(&anchor(), [&v2[..], &v3[..]].into_iter()).unwrap();
    assert_eq!(s.floor(), 5);
    assert_eq!(check_sequence(&s, &m), Ok(()));
}

#[test]
fn spec_from_a_bank_image() {
    use ferrota_image::build::{BankBuilder, sample_build};
    use ferrota_image::sign::BootSigningKey;
    use ferrota_image::{HardwareId, Region, VersionRecord};
    let key = BootSigningKey::EcdsaP256(root(0).clone());
    let bank = |hw: &str, cm7_1: bool| {
        let mut b = BankBuilder::new(VersionRecord {
            version: FirmwareVersion::new(1, 4, 2),
            security_counter: 6,
            hardware: HardwareId::new(hw).unwrap_or_default(),
            flags: 0,
        });
        b.add(Region::Cm0p, &sample_build(Region::Cm0p, 0x1000, 3))
            .unwrap();
        b.add(Region::Cm7_0, &sample_build(Region::Cm7_0, 0x2000, 3))
            .unwrap();
        if cm7_1 {
            b.add(Region::Cm7_1, &sample_build(Region::Cm7_1, 0x800, 3))
                .unwrap();
        }
        b.finish(&key).unwrap()
    };
    let image = bank("KIT_T2G-B-H_EVK", true);
    let s = ManifestSpec::from_bank_image(&image).unwrap();
    assert_eq!(s.image_size as usize, image.len());
    assert_eq!(s.image_digest, <[u8; 32]>::from(Sha256::digest(&image)));
    assert_eq!(s.class_id, class_id("KIT_T2G-B-H_EVK"));
    assert_eq!(
        (s.version, s.security_counter),
        (FirmwareVersion::new(1, 4, 2), 6)
    );
    let cm0p = ferrota_image::inspect::inspect(&image).regions[0]
        .digest
        .unwrap();
    assert_eq!(s.region_digests[0], cm0p);
    assert!(s.region_digests.iter().all(|d| d != &[0; 32]));
    let m = verify(&build::envelope(&s, 1, 0, None, release(0), &[])).unwrap();
    assert_eq!(m.region_digests(), &s.region_digests);
    // A bank built without CM7_1 code still has a signed (empty) CM7_1 region: its digest.
    // No hardware id: refused. Not an image: refused.
    let small = bank("KIT_T2G-B-H_EVK", false);
    let s = ManifestSpec::from_bank_image(&small).unwrap();
    let cm7_1 = ferrota_image::inspect::inspect(&small).regions[2]
        .digest
        .unwrap();
    assert_eq!(s.region_digests[2], cm7_1);
    assert_eq!(
        ManifestSpec::from_bank_image(&bank("", true)),
        Err(build::SpecError::NoHardwareId)
    );
    assert!(matches!(
        ManifestSpec::from_bank_image(&[0u8; 64]),
        Err(build::SpecError::NotABankImage(..))
    ));
}

/// Envelopes assembled by hand, for the rules the builders never break.
mod hand_built {
    use super::*;
    use minicbor::Encoder;
    use minicbor::data::Tag;

    fn enc(f: impl FnOnce(&mut Encoder<Vec<u8>>)) -> Vec<u8> {
        let mut e = Encoder::new(Vec::new());
        f(&mut e);
        e.into_writer()
    }

    /// An envelope from its parts: digest algorithm, extra envelope entries.
    fn envelope(alg: i64, extra: &[(i64, &[u8])], indefinite_auth: bool) -> Vec<u8> {
        let manifest = spec().manifest(7, 0, None);
        let digest = enc(|e| {
            e.array(2).unwrap().i64(alg).unwrap();
            e.bytes(&Sha256::digest(&manifest)).unwrap();
        });
        // The signature bytes are never reached by these tests: zeros.
        let kid = build::kid(release(0));
        let protected = enc(|e| {
            e.map(2).unwrap().u64(1).unwrap().i64(-7).unwrap();
            e.u64(4).unwrap().bytes(&kid).unwrap();
        });
        let sign1 = enc(|e| {
            e.tag(Tag::new(18))
                .unwrap()
                .array(4)
                .unwrap()
                .bytes(&protected)
                .unwrap();
            e.map(0).unwrap().null().unwrap().bytes(&[0; 64]).unwrap();
        });
        let auth = enc(|e| {
            if indefinite_auth {
                e.begin_array().unwrap();
            } else {
                e.array(2).unwrap();
            }
            e.bytes(&digest).unwrap().bytes(&sign1).unwrap();
            if indefinite_auth {
                e.end().unwrap();
            }
        });
        enc(|e| {
            e.tag(Tag::new(107))
                .unwrap()
                .map(2 + extra.len() as u64)
                .unwrap();
            e.u64(2).unwrap().bytes(&auth).unwrap();
            e.u64(3).unwrap().bytes(&manifest).unwrap();
            for (k, v) in extra {
                e.i64(*k).unwrap().bytes(v).unwrap();
            }
        })
    }

    #[test]
    fn baseline_reaches_the_signature() {
        let file = envelope(-16, &[], false);
        assert_eq!(verify(&file), Err(TrustError::BadSignature(Doc::Manifest)));
    }

    #[test]
    fn digest_algorithm_other_than_sha256() {
        let file = envelope(-43, &[], false); // SHA-384
        assert_eq!(
            parse_bundle(&file).unwrap_err(),
            TrustError::Algorithm(Doc::Manifest)
        );
    }

    #[test]
    fn unknown_envelope_key() {
        let file = envelope(-16, &[(16, b"text")], false); // suit-text, not in the subset
        assert!(matches!(
            parse_bundle(&file).unwrap_err(),
            TrustError::Unsupported {
                doc: Doc::Manifest,
                ..
            }
        ));
    }

    #[test]
    fn indefinite_length_is_not_canonical() {
        let file = envelope(-16, &[], true);
        assert_eq!(
            parse_bundle(&file).unwrap_err(),
            TrustError::NotCanonical {
                doc: Doc::Manifest,
                at: 0
            }
        );
    }
}
