//! Why a key, public key or certificate was refused.

use std::path::PathBuf;

use ferrota_image::sflash_key::KeyObjectError;

/// What was wrong with the bytes of a key or certificate (the file is added by [`KeyError`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Neither PEM nor a binary format this crate knows.
    #[error(
        "not a PEM file (no \"-----BEGIN\" line), a DER key or certificate, or an SFlash key object ({sflash})"
    )]
    NotRecognized {
        /// Why the SFlash key object reader refused it.
        sflash: KeyObjectError,
    },
    /// A PEM file without any key or certificate block.
    #[error(
        "PEM holds no key or certificate (found {found}; expected PRIVATE KEY, EC PRIVATE KEY, RSA PRIVATE KEY, PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)"
    )]
    NoKeyBlock {
        /// The labels found, comma separated ("nothing" if none).
        found: String,
    },
    /// A PEM block whose base64 or framing is broken.
    #[error("malformed PEM block \"{label}\": {error}")]
    Pem {
        /// The block's label.
        label: String,
        /// What is wrong.
        error: pem_rfc7468::Error,
    },
    /// A password-protected private key.
    #[error(
        "encrypted private keys are not supported; decrypt it first (openssl pkcs8 -in enc.pem -out key.pem)"
    )]
    Encrypted,
    /// The DER inside is malformed.
    #[error("malformed {what}: {error}")]
    Der {
        /// What was being decoded.
        what: &'static str,
        /// What is wrong.
        error: der::Error,
    },
    /// A key algorithm other than EC and RSA.
    #[error("key algorithm {oid} is not supported (expected ECDSA P-256 or RSA-2048)")]
    Algorithm {
        /// The algorithm OID.
        oid: der::asn1::ObjectIdentifier,
    },
    /// An EC key on another curve.
    #[error("EC key on curve {curve} is not supported (expected P-256, prime256v1)")]
    Curve {
        /// The curve OID, or "unnamed" when the parameters are explicit or missing.
        curve: String,
    },
    /// The EC key's bytes are invalid for P-256.
    #[error("invalid P-256 {what}")]
    P256 {
        /// Which part.
        what: &'static str,
    },
    /// The RSA key is malformed (or could not be generated).
    #[error("invalid RSA key: {0}")]
    Rsa(rsa::Error),
    /// A PKCS#1 structure is malformed.
    #[error("malformed PKCS#1 RSA key: {0}")]
    Pkcs1(pkcs1::Error),
    /// A PKCS#8 structure is malformed.
    #[error("malformed PKCS#8 private key: {0}")]
    Pkcs8(pkcs8::Error),
    /// A SubjectPublicKeyInfo is malformed.
    #[error("malformed public key: {0}")]
    Spki(spki::Error),
    /// An RSA key of another size.
    #[error("RSA keys must be 2048 bits (the T2G ROM's scheme); this one is {bits} bits")]
    RsaSize {
        /// Its size.
        bits: usize,
    },
    /// A private key was needed.
    #[error("expected a private key, found {found}")]
    NotPrivate {
        /// What was found.
        found: &'static str,
    },
    /// An ECDSA P-256 key was needed.
    #[error(
        "expected an ECDSA P-256 key (OTA and code-signing signatures are ECDSA P-256), found {found}"
    )]
    NotP256 {
        /// What was found.
        found: &'static str,
    },
    /// The SFlash key object is malformed.
    #[error("SFlash key object: {0}")]
    KeyObject(KeyObjectError),
    /// Creating a certificate failed.
    #[error("cannot create the certificate: {0}")]
    Certificate(x509_cert::builder::Error),
    /// A validity period that cannot be encoded.
    #[error("certificate validity of {days} days is out of range (1..=36500)")]
    Validity {
        /// The requested days.
        days: u32,
    },
    /// A PEM block without its END line.
    #[error("PEM block \"{label}\" has no \"-----END {label}-----\" line (file truncated?)")]
    PemUnterminated {
        /// The block's label.
        label: String,
    },
    /// Binary DER that is no key or certificate this crate reads.
    #[error("DER data is not an X.509 certificate, PKCS#8 private key or SubjectPublicKeyInfo")]
    DerNotRecognized,
    /// The random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// A refusal with the file it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file could not be read.
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is larger than any key, certificate or CRL file ([`crate::MAX_KEY_FILE`]).
    #[error("{}: larger than {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The bound.
        limit: u64,
    },
    /// The file's content was refused.
    #[error("{}: {error}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        error: ParseError,
    },
}

impl KeyError {
    /// Attaches a file to a parse error.
    pub fn parse(path: impl Into<PathBuf>, error: ParseError) -> Self {
        KeyError::Parse {
            path: path.into(),
            error,
        }
    }
}
