//! Arbitrary bytes into every parser of the signed update metadata (#20), the code a device runs
//! on attacker bytes before (or while) checking a signature: the metadata file
//! (`parse_bundle`, then `walk_roots` over its integrated roots and `verify_envelope` against a
//! fixed root), the timestamp (`peek_timestamp_root`, `verify_timestamp`), an anchor
//! (`TrustedRoot::from_anchor`) and a root rotation (`walk_roots`), and a trust-store record
//! (`store::decode`). Must never panic; any error is fine.
//!
//! The fixed root is a real one (fixed scalars, three root keys of threshold 2, a release and a
//! timestamp key), so inputs that name its key ids reach the signature checks and past them.
//! The manifest's contents are parsed only after its signature verifies (SUIT §8.3), which no
//! mutated input can forge: an input that starts like a manifest (`a4`, a map of 4) is also
//! wrapped in an envelope signed by the release key, so the manifest parser sees fuzz bytes too
//! (only those inputs pay for the signing).
#![no_main]

use std::sync::OnceLock;

use ferrota_manifest::build::{self, KeyFile};
use ferrota_manifest::p256::ecdsa::SigningKey;
use ferrota_manifest::store::{self, RECORD_SIZE};
use ferrota_manifest::{
    Role, TrustedRoot, parse_bundle, peek_timestamp_root, verify_envelope, verify_timestamp,
    walk_roots,
};
use libfuzzer_sys::fuzz_target;

fn key(last: u8) -> SigningKey {
    let mut s = [0x31u8; 32];
    s[31] = last;
    SigningKey::from_slice(&s).expect("valid scalar")
}

fn release() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| key(4))
}

fn root() -> &'static TrustedRoot {
    static R: OnceLock<TrustedRoot> = OnceLock::new();
    R.get_or_init(|| {
        let roots = [key(1), key(2), key(3)];
        let kf = |k: &SigningKey, r: Role| KeyFile {
            roles: r as u8,
            key: *k.verifying_key(),
        };
        let mut keys: Vec<KeyFile> = roots.iter().map(|k| kf(k, Role::Root)).collect();
        keys.push(kf(release(), Role::Release));
        keys.push(kf(&key(5), Role::Timestamp));
        let doc = build::root_doc(1, 1_000, &keys, 2, 0, &[&roots[0], &roots[1]]);
        TrustedRoot::from_anchor(&doc).expect("the fixed anchor verifies")
    })
}

fuzz_target!(|data: &[u8]| {
    let root = root();

    // The metadata file, as the agent reads it from a stream block.
    if let Ok(b) = parse_bundle(data) {
        let _ = b.file_digest();
        let _ = b.signer();
        let walked = walk_roots(root, b.roots());
        let r = walked.as_ref().unwrap_or(root);
        if let Ok(m) = verify_envelope(&b, r) {
            let _ = m.check_expiry(u64::MAX);
            let _ = m.check_expiry(0);
        }
    }

    // Fuzz bytes as a manifest, behind a genuine release-key signature.
    if data.first() == Some(&0xa4) {
        let file = build::envelope_of(data, release(), &[]);
        if let Ok(b) = parse_bundle(&file) {
            let _ = verify_envelope(&b, root);
        }
    }

    // The timestamp of a Jobs reply.
    let _ = peek_timestamp_root(data);
    if let Ok(t) = verify_timestamp(data, root, "thing-1") {
        let _ = t.check_fresh(t.time, t.expires);
        let _ = t.check_names(&[0; 32]);
    }

    // An anchor, and a root rotation from the fixed root (whole input, then split in two so a
    // chain of two documents is reached too).
    let _ = TrustedRoot::from_anchor(data);
    let _ = walk_roots(root, core::iter::once(data));
    if data.len() >= 2 {
        let (a, b) = data.split_at(usize::from(data[0]) % data.len());
        let _ = walk_roots(root, [a, b].into_iter());
    }

    // A trust-store record, as read back from work flash.
    let mut rec = [0xFFu8; RECORD_SIZE];
    let n = data.len().min(RECORD_SIZE);
    rec[..n].copy_from_slice(&data[..n]);
    let _ = store::decode(&rec);
});
