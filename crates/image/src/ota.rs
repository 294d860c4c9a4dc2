//! The OTA file signature, exactly as AWS code signing makes it (`spec/aws-iot-ota.md` §5):
//! ECDSA P-256 over SHA-256 of the **whole file as streamed**, DER-encoded
//! (`SEQUENCE { r INTEGER, s INTEGER }`, 70–72 bytes), base64 with the standard alphabet, carried
//! in the job document under `sig-sha256-ecdsa`. OpenSSL's `dgst -sha256 -sign` makes the same
//! bytes' format, and the device checks it against the public key of the code-signing
//! certificate (the chain is not validated on the device, as in AWS's PALs).
//!
//! This is a different key and a different signature from the boot signatures: the OTA signature
//! proves the file came from the release pipeline; the boot signatures let the bootloader trust
//! what is in flash at every reset.

use base64ct::{Base64, Base64Unpadded, Encoding};
use p256::ecdsa::{Signature, VerifyingKey, signature::hazmat::PrehashVerifier};

/// The job-document key that carries the signature.
pub const SIGNATURE_KEY: &str = "sig-sha256-ecdsa";
/// Largest decoded signature AWS allows in a job document (room for RSA-3072).
pub const MAX_SIGNATURE_BYTES: usize = 384;
/// Longest base64 text of a P-256 DER signature (72 bytes → 96 characters).
pub const MAX_P256_BASE64: usize = 96;

/// Why an OTA signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtaSignatureError {
    /// The text is not base64.
    NotBase64,
    /// The decoded bytes are more than AWS allows.
    TooLong,
    /// The bytes are not a DER ECDSA P-256 signature.
    NotDer,
    /// The signature does not match the file under the key.
    Mismatch,
}

impl core::fmt::Display for OtaSignatureError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            OtaSignatureError::NotBase64 => "OTA signature is not valid base64",
            OtaSignatureError::TooLong => "OTA signature is longer than 384 bytes",
            OtaSignatureError::NotDer => "OTA signature is not a DER ECDSA P-256 signature",
            OtaSignatureError::Mismatch => "OTA signature does not match the file",
        })
    }
}

impl core::error::Error for OtaSignatureError {}

/// Proof that a file's OTA signature was checked. Only this crate makes one; neither `Clone` nor
/// `Copy`. `ferrota_boot::app::request_activation` takes it inside a
/// [`crate::verify::BankVerified`], which binds it to the boot check of the same bank.
#[derive(Debug, PartialEq, Eq)]
pub struct OtaSignatureValid(());

/// A decoded OTA signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtaSignature(Signature);

impl OtaSignature {
    /// Decodes the job document's base64 text (padding optional, surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, OtaSignatureError> {
        let text = text.trim();
        let mut buf = [0u8; MAX_SIGNATURE_BYTES];
        if text.len() > MAX_SIGNATURE_BYTES.div_ceil(3) * 4 {
            return Err(OtaSignatureError::TooLong);
        }
        let decoded = if text.len().is_multiple_of(4) {
            Base64::decode(text, &mut buf)
        } else {
            Base64Unpadded::decode(text, &mut buf)
        };
        let der = decoded.map_err(|_| OtaSignatureError::NotBase64)?;
        Self::from_der(der)
    }

    /// Decodes DER bytes.
    pub fn from_der(der: &[u8]) -> Result<Self, OtaSignatureError> {
        if der.len() > MAX_SIGNATURE_BYTES {
            return Err(OtaSignatureError::TooLong);
        }
        Signature::from_der(der)
            .map(OtaSignature)
            .map_err(|_| OtaSignatureError::NotDer)
    }

    /// Wraps a signature produced by a signer.
    pub fn from_signature(sig: Signature) -> Self {
        OtaSignature(sig)
    }

    /// The DER encoding, as OpenSSL and AWS write it.
    pub fn to_der(&self) -> p256::ecdsa::DerSignature {
        self.0.to_der()
    }

    /// The base64 text for a job document, written into `out` (96 bytes always suffice).
    pub fn to_base64<'a>(&self, out: &'a mut [u8; MAX_P256_BASE64]) -> &'a str {
        let der = self.to_der();
        // 72 DER bytes encode to 96 characters, which `out` always holds.
        Base64::encode(der.as_bytes(), out).unwrap_or("")
    }

    /// Checks the signature over a file's SHA-256 digest (as hashed from flash by the agent).
    pub fn verify_digest(
        &self,
        key: &VerifyingKey,
        digest: &[u8; 32],
    ) -> Result<OtaSignatureValid, OtaSignatureError> {
        key.verify_prehash(digest, &self.0)
            .map(|()| OtaSignatureValid(()))
            .map_err(|_| OtaSignatureError::Mismatch)
    }

    /// Checks the signature over a whole file in memory.
    pub fn verify_file(
        &self,
        key: &VerifyingKey,
        file: &[u8],
    ) -> Result<OtaSignatureValid, OtaSignatureError> {
        use sha2::{Digest, Sha256};
        self.verify_digest(key, &Sha256::digest(file).into())
    }
}

/// Signs a file the way AWS code signing does (deterministic ECDSA, RFC 6979, so the same file
/// and key always give the same signature; low-S, which every verifier accepts).
#[cfg(feature = "std")]
pub fn sign_file(
    key: &p256::ecdsa::SigningKey,
    file: &[u8],
) -> Result<OtaSignature, p256::ecdsa::Error> {
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use sha2::{Digest, Sha256};
    let digest: [u8; 32] = Sha256::digest(file).into();
    let sig: Signature = key.sign_prehash(&digest)?;
    Ok(OtaSignature(sig.normalize_s()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_garbage() {
        assert_eq!(
            OtaSignature::from_base64("not base64!"),
            Err(OtaSignatureError::NotBase64)
        );
        assert_eq!(
            OtaSignature::from_base64("AAAA"),
            Err(OtaSignatureError::NotDer)
        );
        let long = "A".repeat(600);
        assert_eq!(
            OtaSignature::from_base64(&long),
            Err(OtaSignatureError::TooLong)
        );
    }
}
