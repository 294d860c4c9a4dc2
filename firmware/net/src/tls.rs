//! TLS 1.3 with embedded-tls: the crypto provider (randomness, the thing's key and certificate,
//! the server's verification) for `TLS_AES_128_GCM_SHA256` over P-256.
//!
//! * Signing: the thing's P-256 scalar from the provisioning block (p256 0.13, embedded-tls's
//!   own version), deterministic ECDSA (RFC 6979): no randomness needed to sign.
//! * Verification: embedded-tls's `rustpki` verifier: the server's chain must end at the
//!   provisioned CA (each certificate's ECDSA-P256/SHA-256 signature checked), the leaf's DNS
//!   SAN (or CN) must match `server_name`, and the CertificateVerify signature must check
//!   against the leaf's key. On top, [`ServerVerifier`] requires the leaf's extended key usage
//!   to include serverAuth: the fleet CA also issues every thing's (clientAuth) certificate,
//!   so without it a thing's certificate named like the server could impersonate it.
//! * Time: the board has no real-time clock, so validity periods are not checked (`NoClock`).
//!   The pinned CA is the server's own, which issues server certificates for its lifetime;
//!   revocation is out of reach as well (no CRL/OCSP on the device).
//! * Randomness: ChaCha20 ([`rand_chacha`]) seeded with SHA-256 of the provisioning seed and
//!   emulated-time readings taken when the server's SYN-ACK arrived (see [`crate::Link`]).

use embedded_tls::blocking::{
    Aes128GcmSha256, Certificate, CertificateEntryRef, CertificateRef, CertificateVerifyRef,
    CryptoProvider, NoClock, TlsError, TlsVerifier,
};
use embedded_tls::pki::CertVerifier;
use embedded_tls::{CryptoRngCore, SignatureScheme};
use p256::ecdsa::signature::SignerMut;
use p256::ecdsa::{DerSignature, SigningKey};
use rand_chacha::ChaCha20Rng;

/// Bytes of the server's certificate chain kept between Certificate and CertificateVerify.
pub const CHAIN_MAX: usize = 3072;

/// The cipher suite: AES-128-GCM with SHA-256 (rustls offers it; the smallest one).
pub(crate) type Suite = Aes128GcmSha256;

/// DER object identifier value of id-ce-extKeyUsage (2.5.29.37).
const OID_EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
/// DER object identifier value of id-kp-serverAuth (1.3.6.1.5.5.7.3.1).
const OID_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];

/// One DER TLV: its tag byte and contents; `rest` follows it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tags never occur in the structures walked here
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 3 {
            return None;
        }
        let bytes = rest.get(..n)?;
        let len = bytes.iter().fold(0usize, |a, &b| (a << 8) | usize::from(b));
        (len, rest.get(n..)?)
    };
    let value = rest.get(..len)?;
    Some((tag, value, rest.get(len..)?))
}

/// Whether a DER certificate's extended key usage lists serverAuth.
pub(crate) fn has_server_auth(cert: &[u8]) -> bool {
    (|| {
        let (_, certificate, _) = tlv(cert)?;
        let (_, mut tbs, _) = tlv(certificate)?;
        // TBSCertificate: skip to the [3] EXPLICIT extensions.
        let extensions = loop {
            let (tag, value, rest) = tlv(tbs)?;
            if tag == 0xa3 {
                break value;
            }
            tbs = rest;
        };
        let (_, mut list, _) = tlv(extensions)?;
        while !list.is_empty() {
            let (_, extension, rest) = tlv(list)?;
            list = rest;
            let (_, oid, mut fields) = tlv(extension)?;
            if oid != OID_EXT_KEY_USAGE {
                continue;
            }
            // Optional `critical` BOOLEAN, then the OCTET STRING holding SEQUENCE OF OID.
            let mut value = None;
            while !fields.is_empty() {
                let (tag, v, rest) = tlv(fields)?;
                if tag == 0x04 {
                    value = Some(v);
                }
                fields = rest;
            }
            let (_, mut purposes, _) = tlv(value?)?;
            while !purposes.is_empty() {
                let (tag, purpose, rest) = tlv(purposes)?;
                if tag == 0x06 && purpose == OID_SERVER_AUTH {
                    return Some(true);
                }
                purposes = rest;
            }
            return Some(false);
        }
        Some(false)
    })()
    .unwrap_or(false)
}

/// The server's certificate check: embedded-tls's chain, name and signature checks against
/// the pinned CA, and serverAuth on the leaf.
pub(crate) struct ServerVerifier<'s> {
    inner: CertVerifier<'s, Suite, NoClock, CHAIN_MAX>,
}

impl<'s> ServerVerifier<'s> {
    pub fn new(ca_der: &'s [u8]) -> Self {
        ServerVerifier {
            inner: CertVerifier::new(Certificate::X509(ca_der)),
        }
    }
}

impl TlsVerifier<Suite> for ServerVerifier<'_> {
    fn set_hostname_verification(&mut self, hostname: &str) -> Result<(), TlsError> {
        self.inner.set_hostname_verification(hostname)
    }

    fn verify_certificate(
        &mut self,
        transcript: &<Suite as embedded_tls::blocking::TlsCipherSuite>::Hash,
        cert: CertificateRef,
    ) -> Result<(), TlsError> {
        match cert.entries.first() {
            Some(CertificateEntryRef::X509(leaf)) if has_server_auth(leaf) => {}
            _ => return Err(TlsError::InvalidCertificate),
        }
        self.inner.verify_certificate(transcript, cert)
    }

    fn verify_signature(&mut self, verify: CertificateVerifyRef) -> Result<(), TlsError> {
        self.inner.verify_signature(verify)
    }
}

/// Everything the handshake asks of the board.
pub(crate) struct Provider<'s> {
    pub rng: ChaCha20Rng,
    pub verifier: ServerVerifier<'s>,
    pub key: SigningKey,
    pub cert: &'s [u8],
}

impl CryptoProvider for Provider<'_> {
    type CipherSuite = Suite;
    type Signature = DerSignature;

    fn rng(&mut self) -> impl CryptoRngCore {
        &mut self.rng
    }

    fn verifier(&mut self) -> Result<&mut impl TlsVerifier<Suite>, TlsError> {
        Ok(&mut self.verifier)
    }

    fn signer(&mut self) -> Result<(impl SignerMut<DerSignature>, SignatureScheme), TlsError> {
        Ok((self.key.clone(), SignatureScheme::EcdsaSecp256r1Sha256))
    }

    fn client_cert(&mut self) -> Option<Certificate<impl AsRef<[u8]>>> {
        Some(Certificate::X509(self.cert))
    }
}
