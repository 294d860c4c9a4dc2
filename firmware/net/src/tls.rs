//! TLS 1.3 with embedded-tls: the crypto provider (randomness, the thing's key and certificate,
//! the server's verification) for `TLS_AES_128_GCM_SHA256` over P-256.
//!
//! * Signing: the thing's P-256 scalar from the provisioning block (p256 0.13, embedded-tls's
//!   own version), deterministic ECDSA (RFC 6979): no randomness needed to sign.
//! * Verification ([`ServerVerifier`]): the server's leaf certificate must be issued by the
//!   provisioned CA (its issuer is the CA's subject, its ECDSA-P256/SHA-256 signature checks
//!   against the CA's key), carry a P-256 key, list serverAuth in its extended key usage (the
//!   fleet CA also issues every thing's clientAuth certificate: without this check a thing's
//!   certificate named like the server could impersonate it) and name `server_name` in a DNS
//!   subjectAltName (exact, case-insensitive; no CN fallback, no wildcards); the
//!   CertificateVerify signature must check against the leaf's key. Further certificates the
//!   server sends (its CA) are ignored: trust comes from the pinned CA only, so no chain
//!   through intermediates.
//!
//!   Why not embedded-tls's `rustpki` verifier (evaluated first, and used until the figures
//!   came in): it decodes every certificate into `der`-derived structures, 19.6 KB of flash and
//!   about 24 KB more stack during the handshake than this check (frames of 9.2 KB in
//!   `DecodedCertificate::from_der`, 8.4 KB in its `verify_certificate`, 4.5 KB decoding the
//!   extensions), and checks neither
//!   the extended key usage nor that a SAN-less leaf's CN is not a thing name. The walk here is
//!   the fields above over a bounds-checked TLV reader, tested on the server's real
//!   certificates, every truncation and every flipped bit.
//! * Not checked, by design: critical extensions this walk does not know, `basicConstraints`
//!   and `keyUsage` of the leaf. The only issuer accepted is the pinned fleet CA, which issues
//!   exactly two kinds of leaf (the server's, with serverAuth and its DNS name; things', with
//!   clientAuth and no DNS name) and no CA certificates; a leaf it did not make does not get
//!   this far. A deployment whose CA issues more kinds needs those checks (or `rustpki`).
//! * Time: the board has no real-time clock, so validity periods are not checked. The pinned
//!   CA is the server's own, which issues server certificates for its lifetime; revocation is
//!   out of reach as well (no CRL/OCSP on the device).
//! * Randomness: ChaCha20 ([`rand_chacha`]) seeded with SHA-256 of the provisioning seed and
//!   emulated-time readings taken when the server's SYN-ACK arrived (see [`crate::Link`]).

use embedded_tls::blocking::{
    Aes128GcmSha256, Certificate, CertificateEntryRef, CertificateRef, CertificateVerifyRef,
    CryptoProvider, TlsCipherSuite, TlsError, TlsVerifier,
};
use embedded_tls::{CryptoRngCore, SignatureScheme};
use p256::ecdsa::signature::{SignerMut, Verifier};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use rand_chacha::ChaCha20Rng;
use sha2::Digest;

/// The cipher suite: AES-128-GCM with SHA-256 (rustls offers it; the smallest one).
pub(crate) type Suite = Aes128GcmSha256;

/// DER object identifier values (the bytes after tag and length).
mod oid {
    /// id-ce-extKeyUsage (2.5.29.37).
    pub const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
    /// id-ce-subjectAltName (2.5.29.17).
    pub const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
    /// id-kp-serverAuth (1.3.6.1.5.5.7.3.1).
    pub const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
    /// ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
    pub const ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    /// id-ecPublicKey (1.2.840.10045.2.1).
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    /// prime256v1 (1.2.840.10045.3.1.7).
    pub const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
}

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const EXTENSIONS: u8 = 0xa3;
const DNS_NAME: u8 = 0x82;

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

/// The TLV at the start of `input` if its tag is `tag`: (contents, whole TLV, rest).
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8], &[u8])> {
    let (t, value, rest) = tlv(input)?;
    (t == tag).then_some((value, &input[..input.len() - rest.len()], rest))
}

/// What the checks need of a certificate.
#[derive(Debug, Clone, Copy)]
struct Cert<'a> {
    /// The signed part, TLV included.
    tbs: &'a [u8],
    issuer: &'a [u8],
    subject: &'a [u8],
    /// The P-256 key, SEC1 uncompressed.
    key: &'a [u8],
    /// The extensions' SEQUENCE contents (empty if none).
    extensions: &'a [u8],
    /// The issuer's ECDSA signature, DER.
    signature: &'a [u8],
}

impl<'a> Cert<'a> {
    fn parse(der: &'a [u8]) -> Option<Self> {
        let (certificate, _, rest) = expect(der, SEQUENCE)?;
        if !rest.is_empty() {
            return None;
        }
        let (tbs_value, tbs, rest) = expect(certificate, SEQUENCE)?;
        let (algorithm, _, rest) = expect(rest, SEQUENCE)?;
        let (sig_oid, _, _) = expect(algorithm, OID)?;
        let (signature, _, rest) = expect(rest, BIT_STRING)?;
        if sig_oid != oid::ECDSA_SHA256 || !rest.is_empty() {
            return None;
        }
        let signature = signature.strip_prefix(&[0])?; // no unused bits
        // TBSCertificate: [0] version, serial, signature algorithm, issuer, validity, subject,
        // subjectPublicKeyInfo, then optional [1], [2], [3] extensions.
        let mut fields = tbs_value;
        if fields.first() == Some(&0xa0) {
            fields = tlv(fields)?.2;
        }
        let (_, _, fields) = expect(fields, 0x02)?; // serial
        let (inner_alg, _, fields) = expect(fields, SEQUENCE)?;
        if expect(inner_alg, OID)?.0 != oid::ECDSA_SHA256 {
            return None;
        }
        let (_, issuer, fields) = expect(fields, SEQUENCE)?;
        let (_, _, fields) = expect(fields, SEQUENCE)?; // validity (no clock to check it)
        let (_, subject, fields) = expect(fields, SEQUENCE)?;
        let (spki, _, mut fields) = expect(fields, SEQUENCE)?;
        let (key_alg, _, spki_rest) = expect(spki, SEQUENCE)?;
        let (alg, _, curve) = expect(key_alg, OID)?;
        let (curve, _, _) = expect(curve, OID)?;
        if alg != oid::EC_PUBLIC_KEY || curve != oid::P256 {
            return None;
        }
        let (key, _, _) = expect(spki_rest, BIT_STRING)?;
        let key = key.strip_prefix(&[0])?;
        let mut extensions: &[u8] = &[];
        while !fields.is_empty() {
            let (tag, value, rest) = tlv(fields)?;
            if tag == EXTENSIONS {
                extensions = expect(value, SEQUENCE)?.0;
            }
            fields = rest;
        }
        Some(Cert {
            tbs,
            issuer,
            subject,
            key,
            extensions,
            signature,
        })
    }

    /// The value (OCTET STRING contents) of the extension `id`.
    fn extension(&self, id: &[u8]) -> Option<&'a [u8]> {
        let mut list = self.extensions;
        while !list.is_empty() {
            let (extension, _, rest) = expect(list, SEQUENCE)?;
            list = rest;
            let (ext_id, _, mut fields) = expect(extension, OID)?;
            if ext_id != id {
                continue;
            }
            // Optional `critical` BOOLEAN, then the OCTET STRING.
            while !fields.is_empty() {
                let (tag, value, rest) = tlv(fields)?;
                if tag == OCTET_STRING {
                    return Some(value);
                }
                fields = rest;
            }
            return None;
        }
        None
    }

    /// Whether the extended key usage lists serverAuth.
    fn server_auth(&self) -> bool {
        (|| {
            let (mut purposes, _, _) = expect(self.extension(oid::EXT_KEY_USAGE)?, SEQUENCE)?;
            while !purposes.is_empty() {
                let (tag, purpose, rest) = tlv(purposes)?;
                if tag == OID && purpose == oid::SERVER_AUTH {
                    return Some(true);
                }
                purposes = rest;
            }
            Some(false)
        })()
        .unwrap_or(false)
    }

    /// Whether a DNS subjectAltName is `name` (ASCII case-insensitive, no wildcards).
    fn names(&self, name: &str) -> bool {
        (|| {
            let (mut names, _, _) = expect(self.extension(oid::SUBJECT_ALT_NAME)?, SEQUENCE)?;
            while !names.is_empty() {
                let (tag, value, rest) = tlv(names)?;
                if tag == DNS_NAME && value.eq_ignore_ascii_case(name.as_bytes()) {
                    return Some(true);
                }
                names = rest;
            }
            Some(false)
        })()
        .unwrap_or(false)
    }

    /// Whether `issuer` signed this certificate.
    fn signed_by(&self, issuer: &Cert<'_>) -> bool {
        let Ok(key) = VerifyingKey::from_sec1_bytes(issuer.key) else {
            return false;
        };
        let Ok(signature) = Signature::from_der(self.signature) else {
            return false;
        };
        self.issuer == issuer.subject && key.verify(self.tbs, &signature).is_ok()
    }
}

/// Whether a DER certificate's extended key usage lists serverAuth.
#[cfg(test)]
fn has_server_auth(der: &[u8]) -> bool {
    Cert::parse(der).is_some_and(|c| c.server_auth())
}

/// The server's certificate check against the pinned CA (module docs).
pub(crate) struct ServerVerifier<'s> {
    ca: &'s [u8],
    name: &'s str,
    /// The leaf's key, once its certificate checked.
    key: Option<VerifyingKey>,
    /// The transcript up to the Certificate message, for CertificateVerify.
    transcript: Option<<Suite as TlsCipherSuite>::Hash>,
    /// Whether a certificate checked and then its CertificateVerify did: the only proof that
    /// the peer is the server. embedded-tls 0.19 accepts the server's EncryptedExtensions,
    /// Certificate, CertificateVerify and Finished in any order and does not require the
    /// middle two, so a peer that skips them would open the session without ever calling this
    /// verifier; the link checks this flag after the handshake ([`ServerVerifier::verified`]).
    verified: bool,
}

impl<'s> ServerVerifier<'s> {
    pub fn new(ca_der: &'s [u8], name: &'s str) -> Self {
        ServerVerifier {
            ca: ca_der,
            name,
            key: None,
            transcript: None,
            verified: false,
        }
    }

    /// Whether the handshake proved the server (certificate, then CertificateVerify).
    pub fn verified(&self) -> bool {
        self.verified
    }

    /// The leaf's key if `leaf` passes every check against the CA.
    fn check(&self, leaf: &[u8]) -> Option<VerifyingKey> {
        let ca = Cert::parse(self.ca)?;
        let leaf = Cert::parse(leaf)?;
        (leaf.signed_by(&ca) && leaf.server_auth() && leaf.names(self.name))
            .then(|| VerifyingKey::from_sec1_bytes(leaf.key).ok())
            .flatten()
    }
}

impl TlsVerifier<Suite> for ServerVerifier<'_> {
    fn set_hostname_verification(&mut self, hostname: &str) -> Result<(), TlsError> {
        // The name is the provisioned one (the link passes it); anything else is a bug.
        if hostname == self.name {
            Ok(())
        } else {
            Err(TlsError::InvalidCertificate)
        }
    }

    fn verify_certificate(
        &mut self,
        transcript: &<Suite as TlsCipherSuite>::Hash,
        cert: CertificateRef,
    ) -> Result<(), TlsError> {
        // One Certificate per handshake: a second one (before or after its CertificateVerify)
        // is refused, not allowed to replace the key that was or will be proven.
        if self.key.is_some() || self.verified {
            return Err(TlsError::InvalidCertificate);
        }
        let Some(CertificateEntryRef::X509(leaf)) = cert.entries.first() else {
            return Err(TlsError::InvalidCertificate);
        };
        self.key = Some(self.check(leaf).ok_or(TlsError::InvalidCertificate)?);
        self.transcript = Some(transcript.clone());
        Ok(())
    }

    fn verify_signature(&mut self, verify: CertificateVerifyRef) -> Result<(), TlsError> {
        let (Some(key), Some(transcript)) = (self.key.take(), self.transcript.take()) else {
            return Err(TlsError::InvalidSignature);
        };
        if verify.signature_scheme != SignatureScheme::EcdsaSecp256r1Sha256 {
            return Err(TlsError::InvalidSignatureScheme);
        }
        // RFC 8446 4.4.3: 64 spaces, the context string, a zero byte, the transcript hash.
        let mut message = [0x20u8; 64 + 34 + 32];
        message[64..98].copy_from_slice(b"TLS 1.3, server CertificateVerify\0");
        message[98..].copy_from_slice(&transcript.finalize());
        let signature =
            Signature::from_der(verify.signature).map_err(|_| TlsError::InvalidSignature)?;
        key.verify(&message, &signature)
            .map_err(|_| TlsError::InvalidSignature)?;
        self.verified = true;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::{Cert, ServerVerifier, Suite, has_server_auth};
    use embedded_tls::SignatureScheme;
    use embedded_tls::blocking::{
        CertificateEntryRef, CertificateRef, CertificateVerifyRef, TlsCipherSuite, TlsVerifier,
    };

    // Certificates a `ferrota serve` CA issued (public parts only).
    const SERVER: &[u8] = include_bytes!("../testdata/server.der");
    const SERVER_NAME: &str = "localhost";
    const THING: &[u8] = include_bytes!("../testdata/thing.der");
    const CA: &[u8] = include_bytes!("../testdata/ca.der");

    #[test]
    fn only_the_server_certificate_has_server_auth() {
        assert!(has_server_auth(SERVER));
        assert!(
            !has_server_auth(THING),
            "a thing certificate is clientAuth only"
        );
        assert!(!has_server_auth(CA), "the CA has no extended key usage");
        for n in 0..SERVER.len() {
            assert!(!has_server_auth(&SERVER[..n]), "truncated at {n}");
        }
        let mut flipped = SERVER.to_vec();
        for i in 0..flipped.len() {
            flipped[i] ^= 0x80;
            let _ = has_server_auth(&flipped); // never panics
            flipped[i] ^= 0x80;
        }
    }

    #[test]
    fn the_server_certificate_checks_and_no_other() {
        let v = ServerVerifier::new(CA, SERVER_NAME);
        assert!(v.check(SERVER).is_some());
        assert!(v.check(THING).is_none(), "clientAuth only, named dev-1");
        assert!(v.check(CA).is_none(), "self-signed, no serverAuth");
        assert!(ServerVerifier::new(CA, "LOCALHOST").check(SERVER).is_some());
        assert!(
            ServerVerifier::new(CA, "example.com")
                .check(SERVER)
                .is_none()
        );
        assert!(
            ServerVerifier::new(SERVER, SERVER_NAME)
                .check(SERVER)
                .is_none()
        );
        let thing = Cert::parse(THING).expect("parses");
        assert!(thing.signed_by(&Cert::parse(CA).expect("parses")));
        // Every single flipped bit of the leaf is refused (signature, names, key usage).
        let mut flipped = SERVER.to_vec();
        for i in 0..flipped.len() {
            for bit in 0..8 {
                flipped[i] ^= 1 << bit;
                assert!(v.check(&flipped).is_none(), "byte {i} bit {bit}");
                flipped[i] ^= 1 << bit;
            }
        }
        for n in 0..SERVER.len() {
            assert!(v.check(&SERVER[..n]).is_none(), "truncated at {n}");
        }
    }

    fn certificate(der: &[u8]) -> CertificateRef<'_> {
        let mut c = CertificateRef::with_context(&[]);
        assert!(c.entries.push(CertificateEntryRef::X509(der)).is_ok());
        c
    }

    #[test]
    fn only_a_certificate_and_its_certificate_verify_prove_the_server() {
        let transcript = <Suite as TlsCipherSuite>::Hash::default();
        let forged = || CertificateVerifyRef {
            signature_scheme: SignatureScheme::EcdsaSecp256r1Sha256,
            signature: &[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
        };
        let mut v = ServerVerifier::new(CA, SERVER_NAME);
        assert!(
            !v.verified(),
            "a handshake that skipped both messages proves nothing"
        );
        assert!(v.verify_signature(forged()).is_err(), "no certificate yet");
        assert!(!v.verified());

        let mut v = ServerVerifier::new(CA, SERVER_NAME);
        assert!(
            v.verify_certificate(&transcript, certificate(SERVER))
                .is_ok()
        );
        assert!(
            !v.verified(),
            "a certificate without its CertificateVerify proves nothing"
        );
        assert!(
            v.verify_certificate(&transcript, certificate(SERVER))
                .is_err(),
            "a second Certificate is refused"
        );
        assert!(v.verify_signature(forged()).is_err());
        assert!(
            !v.verified(),
            "a CertificateVerify that does not check proves nothing"
        );

        let mut v = ServerVerifier::new(CA, SERVER_NAME);
        assert!(
            v.verify_certificate(&transcript, certificate(THING))
                .is_err()
        );
        assert!(!v.verified());
    }
}
