//! The COSE signatures checked independently of the crate's own Sig_structure code: each
//! document's Sig_structure is rebuilt here from RFC 9052 §4.4 by hand (as bytes, with
//! `minicbor` only for the parts), and the signature verified with `p256` directly. A wrong
//! context string or field order in the crate would pass its round trips but fail here.

mod common;

use common::*;
use ferrota_manifest::build::{self, ManifestSpec};
use ferrota_manifest::p256::ecdsa::signature::hazmat::PrehashVerifier;
use ferrota_manifest::p256::ecdsa::{Signature, SigningKey};
use minicbor::Decoder;
use sha2::{Digest, Sha256};

fn bstr(b: &[u8]) -> Vec<u8> {
    let mut e = minicbor::Encoder::new(Vec::new());
    e.bytes(b).unwrap();
    e.into_writer()
}

fn check(key: &SigningKey, to_be_signed: &[u8], sig: &[u8]) {
    let digest = Sha256::digest(to_be_signed);
    let sig = Signature::from_slice(sig).unwrap();
    key.verifying_key()
        .verify_prehash(&digest, &sig)
        .expect("signature over the RFC 9052 Sig_structure");
}

fn protected_of(key: &SigningKey) -> Vec<u8> {
    let mut p = vec![0xa2, 0x01, 0x26, 0x04, 0x48];
    p.extend_from_slice(&build::kid(key));
    p
}

#[test]
fn timestamp_is_cose_sign1() {
    let key = timestamp(0);
    let doc = build::timestamp("thing", 1, 2, None, 1, key);
    let mut d = Decoder::new(&doc);
    assert_eq!(d.tag().unwrap().as_u64(), 18);
    assert_eq!(d.array().unwrap(), Some(4));
    let protected = d.bytes().unwrap();
    assert_eq!(protected, &protected_of(key)[..]);
    assert_eq!(d.map().unwrap(), Some(0));
    let payload = d.bytes().unwrap();
    let sig = d.bytes().unwrap();
    // ["Signature1", protected, h'', payload]
    let mut tbs = vec![0x84, 0x6a];
    tbs.extend_from_slice(b"Signature1");
    tbs.extend(bstr(protected));
    tbs.push(0x40);
    tbs.extend(bstr(payload));
    check(key, &tbs, sig);
}

#[test]
fn envelope_is_suit_detached_cose_sign1() {
    let key = release(0);
    let spec = ManifestSpec {
        image_digest: [1; 32],
        image_size: 10,
        class_id: [2; 16],
        version: ferrota_image::FirmwareVersion::new(1, 0, 0),
        security_counter: 0,
        region_digests: [[3; 32]; 3],
    };
    let file = build::envelope(&spec, 1, 0, None, key, &[]);
    let manifest = spec.manifest(1, 0, None);
    let mut d = Decoder::new(&file);
    assert_eq!(d.tag().unwrap().as_u64(), 107);
    d.map().unwrap();
    assert_eq!(d.u64().unwrap(), 2);
    let auth = d.bytes().unwrap();
    let mut a = Decoder::new(auth);
    assert_eq!(a.array().unwrap(), Some(2));
    let digest = a.bytes().unwrap();
    // SUIT_Digest = [-16, SHA-256(manifest bstr content)]
    let mut want = vec![0x82, 0x2f, 0x58, 0x20];
    want.extend_from_slice(&Sha256::digest(&manifest));
    assert_eq!(digest, &want[..]);
    let sign1 = a.bytes().unwrap();
    let mut s = Decoder::new(sign1);
    assert_eq!(s.tag().unwrap().as_u64(), 18);
    assert_eq!(s.array().unwrap(), Some(4));
    let protected = s.bytes().unwrap();
    assert_eq!(protected, &protected_of(key)[..]);
    assert_eq!(s.map().unwrap(), Some(0));
    s.null().unwrap();
    let sig = s.bytes().unwrap();
    // Detached payload: the SUIT_Digest bstr.
    let mut tbs = vec![0x84, 0x6a];
    tbs.extend_from_slice(b"Signature1");
    tbs.extend(bstr(protected));
    tbs.push(0x40);
    tbs.extend(bstr(digest));
    check(key, &tbs, sig);
}

#[test]
fn root_is_cose_sign() {
    let doc = anchor_doc();
    let mut d = Decoder::new(&doc);
    assert_eq!(d.tag().unwrap().as_u64(), 98);
    assert_eq!(d.array().unwrap(), Some(4));
    assert_eq!(d.bytes().unwrap(), b"");
    assert_eq!(d.map().unwrap(), Some(0));
    let payload = d.bytes().unwrap();
    assert_eq!(d.array().unwrap(), Some(2));
    for key in [root(0), root(1)] {
        assert_eq!(d.array().unwrap(), Some(3));
        let protected = d.bytes().unwrap();
        assert_eq!(protected, &protected_of(key)[..]);
        assert_eq!(d.map().unwrap(), Some(0));
        let sig = d.bytes().unwrap();
        // ["Signature", h'' (body protected), sign protected, h'' (external aad), payload]
        let mut tbs = vec![0x85, 0x69];
        tbs.extend_from_slice(b"Signature");
        tbs.push(0x40);
        tbs.extend(bstr(protected));
        tbs.push(0x40);
        tbs.extend(bstr(payload));
        check(key, &tbs, sig);
    }
}
