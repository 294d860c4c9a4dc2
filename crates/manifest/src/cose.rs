//! COSE (RFC 9052) pieces: the ES256 protected header, the Sig_structure hashed straight into
//! SHA-256 (no buffer), and the signature check.

use minicbor::Encoder;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::Kid;
use crate::cbor::{R, Reader};
use crate::error::{Doc, TrustError};

/// COSE algorithm ES256 (RFC 9053 §2.1).
pub(crate) const ES256: i64 = -7;
/// COSE_Sign1 tag.
pub(crate) const TAG_SIGN1: u64 = 18;
/// COSE_Sign tag.
pub(crate) const TAG_SIGN: u64 = 98;

/// A `minicbor` writer that feeds SHA-256: the Sig_structure is hashed as it is encoded.
pub(crate) struct Sha256Writer(pub(crate) Sha256);

impl minicbor::encode::Write for Sha256Writer {
    type Error = core::convert::Infallible;
    fn write_all(&mut self, buf: &[u8]) -> Result<(), Self::Error> {
        self.0.update(buf);
        Ok(())
    }
}

fn finish(w: Sha256Writer) -> [u8; 32] {
    w.0.finalize().into()
}

/// SHA-256 of `["Signature1", protected, h'', payload]` (COSE_Sign1, RFC 9052 §4.4).
pub(crate) fn sign1_digest(protected: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut e = Encoder::new(Sha256Writer(Sha256::new()));
    // The writer cannot fail.
    let _ = e
        .array(4)
        .and_then(|e| e.str("Signature1"))
        .and_then(|e| e.bytes(protected))
        .and_then(|e| e.bytes(&[]))
        .and_then(|e| e.bytes(payload));
    finish(e.into_writer())
}

/// SHA-256 of `["Signature", h'', sign_protected, h'', payload]` (one COSE_Sign signer, with
/// an empty body-protected header).
pub(crate) fn sign_digest(sign_protected: &[u8], payload: &[u8]) -> [u8; 32] {
    let mut e = Encoder::new(Sha256Writer(Sha256::new()));
    let _ = e
        .array(5)
        .and_then(|e| e.str("Signature"))
        .and_then(|e| e.bytes(&[]))
        .and_then(|e| e.bytes(sign_protected))
        .and_then(|e| e.bytes(&[]))
        .and_then(|e| e.bytes(payload));
    finish(e.into_writer())
}

/// Reads a protected header `{1: -7, 4: h'<kid 8>'}` (exactly those two keys, in that order).
pub(crate) fn protected_kid(bytes: &[u8], doc: Doc) -> R<Kid> {
    let mut r = Reader::new(bytes, doc);
    r.map_of(2)?;
    r.key_is(1)?;
    if r.int()? != ES256 {
        return Err(TrustError::Algorithm(doc));
    }
    r.key_is(4)?;
    let kid = r.bytes_n::<8>()?;
    r.end()?;
    Ok(kid)
}

/// Reads an empty unprotected header `{}` (this subset carries nothing unprotected).
pub(crate) fn empty_map(r: &mut Reader<'_>) -> R<()> {
    let at = r.at() as usize;
    if r.map()? == 0 {
        Ok(())
    } else {
        Err(r.unsupported(at))
    }
}

/// Checks a raw `r‖s` ES256 signature over a prehashed digest. High-S signatures are refused,
/// so a signed document has one valid encoding (the builders normalise S).
pub(crate) fn verify(key: &VerifyingKey, digest: &[u8; 32], sig: &[u8]) -> bool {
    let Ok(sig) = Signature::from_slice(sig) else {
        return false;
    };
    if sig.normalize_s() != sig {
        return false;
    }
    key.verify_prehash(digest, &sig).is_ok()
}
