//! Private and public keys: reading them from PEM, DER or SFlash objects, generating them, and
//! writing them as PEM.

use std::path::Path;

use der::{Decode, Encode};
use ferrota_image::p256::ecdsa::{SigningKey, VerifyingKey};
use ferrota_image::scheme::{BootKey, Rsa2048PublicKey, Scheme};
use ferrota_image::sflash_key;
use ferrota_image::sign::BootSigningKey;
use p256::elliptic_curve::Generate;
use pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;
use spki::{DecodePublicKey, EncodePublicKey};
use zeroize::Zeroizing;

use crate::cert::{self, CertificateInfo};
use crate::error::{KeyError, ParseError};

/// OID of `id-ecPublicKey`.
const ID_EC_PUBLIC_KEY: der::asn1::ObjectIdentifier = const_oid::db::rfc5912::ID_EC_PUBLIC_KEY;
/// OID of the P-256 curve (`prime256v1`, `secp256r1`).
const SECP256R1: der::asn1::ObjectIdentifier = const_oid::db::rfc5912::SECP_256_R_1;
/// OID of `rsaEncryption`.
const RSA_ENCRYPTION: der::asn1::ObjectIdentifier = const_oid::db::rfc5912::RSA_ENCRYPTION;

/// The kinds of key Ferrota generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA P-256: Ferrota's boot scheme and the only OTA signing scheme.
    EcdsaP256,
    /// RSA-2048: the T2G ROM's boot scheme.
    Rsa2048,
}

/// A private key.
#[derive(Clone)]
pub enum PrivateKey {
    /// ECDSA P-256.
    EcdsaP256(SigningKey),
    /// RSA-2048.
    Rsa2048(rsa::PrivateKey),
}

impl core::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PrivateKey({})", self.describe())
    }
}

impl PrivateKey {
    /// A new key from the operating system's random number generator.
    pub fn generate(kind: KeyType) -> Result<Self, ParseError> {
        Self::generate_with_rng(kind, &mut getrandom::SysRng)
    }

    /// A new key from `rng` (seed one for reproducible tests).
    pub fn generate_with_rng<R>(kind: KeyType, rng: &mut R) -> Result<Self, ParseError>
    where
        R: rand_core::TryCryptoRng + ?Sized,
        getrandom::Error: From<R::Error>,
    {
        match kind {
            KeyType::EcdsaP256 => SigningKey::try_generate_from_rng(rng)
                .map(PrivateKey::EcdsaP256)
                .map_err(|e| ParseError::Random(e.into())),
            KeyType::Rsa2048 => rsa::PrivateKey::new(rng, 2048)
                .map(PrivateKey::Rsa2048)
                .map_err(ParseError::Rsa),
        }
    }

    /// What kind of key this is, for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            PrivateKey::EcdsaP256(_) => "an ECDSA P-256 private key",
            PrivateKey::Rsa2048(_) => "an RSA-2048 private key",
        }
    }

    /// The boot signature scheme this key signs with.
    pub fn scheme(&self) -> Scheme {
        match self {
            PrivateKey::EcdsaP256(_) => Scheme::EcdsaP256,
            PrivateKey::Rsa2048(_) => Scheme::Rsa2048,
        }
    }

    /// The public half.
    pub fn public_key(&self) -> Result<PublicKey, ParseError> {
        match self {
            PrivateKey::EcdsaP256(k) => Ok(PublicKey::EcdsaP256(*k.verifying_key())),
            PrivateKey::Rsa2048(k) => rsa_public(k.as_public_key()).map(PublicKey::Rsa2048),
        }
    }

    /// The key as a boot signing key.
    pub fn into_boot_signing_key(self) -> BootSigningKey {
        match self {
            PrivateKey::EcdsaP256(k) => BootSigningKey::EcdsaP256(k),
            PrivateKey::Rsa2048(k) => BootSigningKey::Rsa2048(k),
        }
    }

    /// The key as an OTA (code-signing) key, which must be ECDSA P-256.
    pub fn into_ota_signing_key(self) -> Result<SigningKey, ParseError> {
        match self {
            PrivateKey::EcdsaP256(k) => Ok(k),
            other => Err(ParseError::NotP256 {
                found: other.describe(),
            }),
        }
    }

    /// The key as PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"), as `openssl genpkey` writes it.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, ParseError> {
        let doc = match self {
            PrivateKey::EcdsaP256(k) => k.to_pkcs8_der().map_err(ParseError::Pkcs8)?,
            PrivateKey::Rsa2048(k) => k.to_pkcs8_der().map_err(ParseError::Pkcs8)?,
        };
        pem_rfc7468::encode_string("PRIVATE KEY", pem_rfc7468::LineEnding::LF, doc.as_bytes())
            .map(Zeroizing::new)
            .map_err(|error| ParseError::Pem {
                label: "PRIVATE KEY".into(),
                error,
            })
    }
}

fn rsa_public(key: &rsa::PublicKey) -> Result<Rsa2048PublicKey, ParseError> {
    Rsa2048PublicKey::from_rsa(key).ok_or(ParseError::RsaSize {
        bits: key.n_bytes().len() * 8,
    })
}

fn rsa_private(key: rsa::PrivateKey) -> Result<PrivateKey, ParseError> {
    rsa_public(key.as_public_key())?;
    Ok(PrivateKey::Rsa2048(key))
}

/// A public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// ECDSA P-256.
    EcdsaP256(VerifyingKey),
    /// RSA-2048.
    Rsa2048(Rsa2048PublicKey),
}

impl PublicKey {
    /// What kind of key this is, for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            PublicKey::EcdsaP256(_) => "an ECDSA P-256 public key",
            PublicKey::Rsa2048(_) => "an RSA-2048 public key",
        }
    }

    /// The boot signature scheme this key verifies.
    pub fn scheme(&self) -> Scheme {
        match self {
            PublicKey::EcdsaP256(_) => Scheme::EcdsaP256,
            PublicKey::Rsa2048(_) => Scheme::Rsa2048,
        }
    }

    /// The key as a boot verifier.
    pub fn boot_key(&self) -> BootKey {
        match self {
            PublicKey::EcdsaP256(k) => BootKey::EcdsaP256(*k),
            PublicKey::Rsa2048(k) => BootKey::Rsa2048(k.clone()),
        }
    }

    /// The key from a boot verifier.
    pub fn from_boot_key(key: BootKey) -> Self {
        match key {
            BootKey::EcdsaP256(k) => PublicKey::EcdsaP256(k),
            BootKey::Rsa2048(k) => PublicKey::Rsa2048(k),
        }
    }

    /// The key for OTA signature checks, which must be ECDSA P-256.
    pub fn ota_verifying_key(&self) -> Result<VerifyingKey, ParseError> {
        match self {
            PublicKey::EcdsaP256(k) => Ok(*k),
            other => Err(ParseError::NotP256 {
                found: other.describe(),
            }),
        }
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Result<Vec<u8>, ParseError> {
        let doc = match self {
            PublicKey::EcdsaP256(k) => k.to_public_key_der().map_err(ParseError::Spki)?,
            PublicKey::Rsa2048(k) => k
                .to_rsa()
                .map_err(ParseError::Rsa)?
                .to_public_key_der()
                .map_err(ParseError::Spki)?,
        };
        Ok(doc.into_vec())
    }

    /// The key as SPKI PEM ("-----BEGIN PUBLIC KEY-----"), as `openssl pkey -pubout` writes it.
    pub fn to_pem(&self) -> Result<String, ParseError> {
        pem_rfc7468::encode_string(
            "PUBLIC KEY",
            pem_rfc7468::LineEnding::LF,
            &self.to_spki_der()?,
        )
        .map_err(|error| ParseError::Pem {
            label: "PUBLIC KEY".into(),
            error,
        })
    }

    /// The SFlash public-key object (76 bytes for P-256, 1096 for RSA-2048).
    pub fn sflash_object(&self) -> Vec<u8> {
        match self {
            PublicKey::EcdsaP256(k) => sflash_key::p256_key_object(k).to_vec(),
            PublicKey::Rsa2048(k) => sflash_key::rsa2048_key_object(k).to_vec(),
        }
    }
}

/// What a key file holds.
#[derive(Debug, Clone)]
pub enum KeyFile {
    /// A private key.
    Private(PrivateKey),
    /// A public key (SPKI, PKCS#1 or an SFlash object).
    Public(PublicKey),
    /// An X.509 certificate.
    Certificate(Box<CertificateInfo>),
}

impl KeyFile {
    /// Reads a key file's bytes: PEM (PKCS#8, SEC1, PKCS#1, SPKI, certificate), DER, or an SFlash
    /// key object.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        if let Some(text) = std::str::from_utf8(bytes)
            .ok()
            .filter(|t| t.contains("-----BEGIN "))
        {
            return parse_pem(text);
        }
        if bytes.first() == Some(&0x30) {
            return parse_der(bytes);
        }
        match sflash_key::parse_key_object(bytes) {
            Ok(k) => Ok(KeyFile::Public(PublicKey::from_boot_key(k))),
            Err(sflash) => Err(ParseError::NotRecognized { sflash }),
        }
    }

    /// Reads a key file of at most [`crate::MAX_KEY_FILE`] bytes (a wrong path such as
    /// `/dev/zero` ends in an error, not in gigabytes of memory).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        use std::io::Read;
        let read_err = |error| KeyError::Read {
            path: path.to_path_buf(),
            error,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .map_err(read_err)?
            .take(crate::MAX_KEY_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > crate::MAX_KEY_FILE {
            return Err(KeyError::TooLarge {
                path: path.to_path_buf(),
                limit: crate::MAX_KEY_FILE,
            });
        }
        Self::parse(&bytes).map_err(|e| KeyError::parse(path, e))
    }

    /// What the file holds, for messages.
    pub fn describe(&self) -> &'static str {
        match self {
            KeyFile::Private(k) => k.describe(),
            KeyFile::Public(k) => k.describe(),
            KeyFile::Certificate(_) => "a certificate",
        }
    }

    /// The public key in the file, whatever form it takes.
    pub fn public_key(&self) -> Result<PublicKey, ParseError> {
        match self {
            KeyFile::Private(k) => k.public_key(),
            KeyFile::Public(k) => Ok(k.clone()),
            KeyFile::Certificate(c) => Ok(c.public_key.clone()),
        }
    }

    /// The private key, or an error naming what the file holds instead.
    pub fn into_private(self) -> Result<PrivateKey, ParseError> {
        match self {
            KeyFile::Private(k) => Ok(k),
            other => Err(ParseError::NotPrivate {
                found: other.describe(),
            }),
        }
    }
}

/// Reads a private key (PKCS#8, SEC1 or PKCS#1 PEM).
pub fn load_private_key(path: &Path) -> Result<PrivateKey, KeyError> {
    KeyFile::load(path)?
        .into_private()
        .map_err(|e| KeyError::parse(path, e))
}

/// Reads a boot signing key (ECDSA P-256 or RSA-2048 private key).
pub fn load_boot_signing_key(path: &Path) -> Result<BootSigningKey, KeyError> {
    load_private_key(path).map(PrivateKey::into_boot_signing_key)
}

/// Reads an OTA (code-signing) private key, which must be ECDSA P-256.
pub fn load_ota_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    load_private_key(path)?
        .into_ota_signing_key()
        .map_err(|e| KeyError::parse(path, e))
}

/// Reads the public key from a private key, public key, certificate or SFlash key object file.
pub fn load_public_key(path: &Path) -> Result<PublicKey, KeyError> {
    KeyFile::load(path)?
        .public_key()
        .map_err(|e| KeyError::parse(path, e))
}

/// Reads the OTA verifying key from any key file or certificate; it must be ECDSA P-256.
pub fn load_ota_verifying_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    load_public_key(path)?
        .ota_verifying_key()
        .map_err(|e| KeyError::parse(path, e))
}

/// The PEM blocks of a text: `(label, DER bytes)`.
fn pem_blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>, ParseError> {
    const BEGIN: &str = "-----BEGIN ";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let Some(label_len) = after.find("-----") else {
            return Err(ParseError::PemUnterminated {
                label: after.lines().next().unwrap_or("").to_string(),
            });
        };
        let label = &after[..label_len];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = rest[start..].find(&end_marker) else {
            return Err(ParseError::PemUnterminated {
                label: label.into(),
            });
        };
        let block = &rest[start..start + end + end_marker.len()];
        if block.contains("Proc-Type:") && block.contains("ENCRYPTED") {
            return Err(ParseError::Encrypted);
        }
        let (decoded_label, der) =
            pem_rfc7468::decode_vec(block.as_bytes()).map_err(|error| ParseError::Pem {
                label: label.into(),
                error,
            })?;
        out.push((decoded_label.to_string(), der));
        rest = &rest[start + end + end_marker.len()..];
    }
    Ok(out)
}

fn parse_pem(text: &str) -> Result<KeyFile, ParseError> {
    let mut found = Vec::new();
    for (label, der) in pem_blocks(text)? {
        match label.as_str() {
            "PRIVATE KEY" => return parse_pkcs8(&der).map(KeyFile::Private),
            "ENCRYPTED PRIVATE KEY" => return Err(ParseError::Encrypted),
            "EC PRIVATE KEY" => {
                let sec1 = sec1::EcPrivateKey::from_der(&der).map_err(|error| ParseError::Der {
                    what: "SEC1 EC private key",
                    error,
                })?;
                if let Some(params) = sec1.parameters {
                    check_curve_oid(params.named_curve())?;
                }
                return p256::SecretKey::from_sec1_der(&der)
                    .map(|k| KeyFile::Private(PrivateKey::EcdsaP256(SigningKey::from(k))))
                    .map_err(|_| ParseError::P256 {
                        what: "SEC1 private key",
                    });
            }
            "RSA PRIVATE KEY" => {
                use pkcs1::DecodeRsaPrivateKey;
                let key = rsa::PrivateKey::from_pkcs1_der(&der).map_err(ParseError::Pkcs1)?;
                return rsa_private(key).map(KeyFile::Private);
            }
            "PUBLIC KEY" => return parse_spki(&der).map(KeyFile::Public),
            "RSA PUBLIC KEY" => {
                use pkcs1::DecodeRsaPublicKey;
                let key = rsa::PublicKey::from_pkcs1_der(&der).map_err(ParseError::Pkcs1)?;
                return rsa_public(&key).map(|k| KeyFile::Public(PublicKey::Rsa2048(k)));
            }
            "CERTIFICATE" => {
                return cert::parse_certificate_der(&der)
                    .map(|c| KeyFile::Certificate(Box::new(c)));
            }
            other => found.push(other.to_string()),
        }
    }
    Err(ParseError::NoKeyBlock {
        found: if found.is_empty() {
            "nothing".into()
        } else {
            found.join(", ")
        },
    })
}

fn parse_der(der: &[u8]) -> Result<KeyFile, ParseError> {
    if let Ok(c) = cert::parse_certificate_der(der) {
        return Ok(KeyFile::Certificate(Box::new(c)));
    }
    if pkcs8::PrivateKeyInfoRef::from_der(der).is_ok() {
        return parse_pkcs8(der).map(KeyFile::Private);
    }
    if spki::SubjectPublicKeyInfoRef::from_der(der).is_ok() {
        return parse_spki(der).map(KeyFile::Public);
    }
    Err(ParseError::DerNotRecognized)
}

fn check_curve(params: Option<der::asn1::AnyRef<'_>>) -> Result<(), ParseError> {
    check_curve_oid(params.and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok()))
}

fn check_curve_oid(oid: Option<der::asn1::ObjectIdentifier>) -> Result<(), ParseError> {
    match oid {
        Some(SECP256R1) => Ok(()),
        Some(other) => Err(ParseError::Curve {
            curve: const_oid::db::DB
                .by_oid(&other)
                .map_or_else(|| other.to_string(), str::to_string),
        }),
        None => Err(ParseError::Curve {
            curve: "unnamed (explicit parameters)".into(),
        }),
    }
}

fn parse_pkcs8(der: &[u8]) -> Result<PrivateKey, ParseError> {
    let info = pkcs8::PrivateKeyInfoRef::from_der(der).map_err(|error| ParseError::Der {
        what: "PKCS#8 private key",
        error,
    })?;
    match info.algorithm.oid {
        ID_EC_PUBLIC_KEY => {
            check_curve(info.algorithm.parameters)?;
            SigningKey::from_pkcs8_der(der)
                .map(PrivateKey::EcdsaP256)
                .map_err(|_| ParseError::P256 {
                    what: "private key",
                })
        }
        RSA_ENCRYPTION => {
            rsa_private(rsa::PrivateKey::from_pkcs8_der(der).map_err(ParseError::Pkcs8)?)
        }
        oid => Err(ParseError::Algorithm { oid }),
    }
}

pub(crate) fn parse_spki(der: &[u8]) -> Result<PublicKey, ParseError> {
    let info = spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|error| ParseError::Der {
        what: "SubjectPublicKeyInfo",
        error,
    })?;
    match info.algorithm.oid {
        ID_EC_PUBLIC_KEY => {
            check_curve(info.algorithm.parameters)?;
            VerifyingKey::from_public_key_der(der)
                .map(PublicKey::EcdsaP256)
                .map_err(|_| ParseError::P256 { what: "public key" })
        }
        RSA_ENCRYPTION => {
            let key = rsa::PublicKey::from_public_key_der(der).map_err(ParseError::Spki)?;
            rsa_public(&key).map(PublicKey::Rsa2048)
        }
        oid => Err(ParseError::Algorithm { oid }),
    }
}

/// Re-encodes a decoded structure's DER (used for certificates' SPKI).
pub(crate) fn to_der(value: &impl Encode) -> Result<Vec<u8>, ParseError> {
    value.to_der().map_err(|error| ParseError::Der {
        what: "structure",
        error,
    })
}

/// The OTA verifying key of a code-signing certificate (PEM, DER, or base64 of DER as AWS's
/// `certificateChain.inlineDocument` carries it): the key a device checks OTA signatures
/// with. A file that holds a key instead of a certificate is refused, so the check uses what
/// devices hold (their `certfile`), and a certificate of a non-P-256 key is refused because
/// no device can check an OTA signature with it.
pub fn code_signing_key(cert: &[u8]) -> Result<ferrota_image::p256::ecdsa::VerifyingKey, String> {
    use base64::Engine;
    let text = std::str::from_utf8(cert).map(str::trim).unwrap_or("");
    let der;
    let bytes = if !text.is_empty() && !text.contains("-----BEGIN") && cert.first() != Some(&0x30) {
        der = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| "not a certificate (neither PEM, DER nor base64 of DER)".to_string())?;
        &der[..]
    } else {
        cert
    };
    match KeyFile::parse(bytes).map_err(|e| e.to_string())? {
        KeyFile::Certificate(c) => c
            .public_key
            .ota_verifying_key()
            .map_err(|e| format!("certificate: {e}")),
        other => Err(format!(
            "holds {}, not a code-signing certificate",
            other.describe()
        )),
    }
}
