//! # ferrota-keys: keys and code-signing certificates for Ferrota's host tools
//!
//! Two keys protect a Ferrota update, and this crate reads, makes and writes both:
//!
//! * the **boot key** (ECDSA P-256, or RSA-2048 for the T2G ROM's scheme) signs every region of
//!   a bank image; its public half is provisioned in SFlash as a key object
//!   ([`ferrota_image::sflash_key`]), which [`PublicKey::sflash_object`] and [`c_array`] produce;
//! * the **code-signing key** (ECDSA P-256 only) signs the OTA file, as AWS code signing does; its
//!   public half travels in a self-signed code-signing certificate ([`code_signing_certificate`]).
//!
//! Accepted inputs ([`KeyFile::parse`]): PEM PKCS#8 `PRIVATE KEY` (P-256 or RSA), SEC1
//! `EC PRIVATE KEY` (what `openssl ecparam -genkey -name prime256v1` writes, with or without its
//! `EC PARAMETERS` block), PKCS#1 `RSA PRIVATE KEY` (`openssl genrsa`), SPKI `PUBLIC KEY`,
//! PKCS#1 `RSA PUBLIC KEY`, X.509 `CERTIFICATE`; the same as DER; and the binary SFlash key
//! object. Everything is RustCrypto (p256, rsa, x509-cert): one crypto backend.
//!
//! Every error names the file and says what was expected ([`KeyError`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Largest key, certificate or CRL file read (256 KiB): a PEM certificate chain is a few KB,
/// a large CRL some hundreds of KB at most.
pub const MAX_KEY_FILE: u64 = 256 * 1024;

pub mod cert;
pub mod error;
pub mod material;

pub use cert::{CertificateInfo, code_signing_certificate, parse_certificate_der};
pub use error::{KeyError, ParseError};
pub use material::{
    KeyFile, KeyType, PrivateKey, PublicKey, load_boot_signing_key, load_ota_signing_key,
    load_ota_verifying_key, load_private_key, load_public_key,
};

/// Renders bytes as a C array definition for firmware builds, e.g. the SFlash key object:
///
/// ```text
/// /* <comment> */
/// const uint8_t ferrota_sflash_public_key[76] = {
///     0x4c, 0x00, 0x00, 0x00, ...
/// };
/// ```
///
/// `name` must be a C identifier; anything else is replaced by `_`.
pub fn c_array(name: &str, comment: &str, bytes: &[u8]) -> String {
    let mut ident: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if ident.is_empty() || ident.starts_with(|c: char| c.is_ascii_digit()) {
        ident.insert(0, '_');
    }
    let comment = comment.replace("*/", "* /");
    let mut out = format!(
        "/* {comment} */\n#include <stdint.h>\n\nconst uint8_t {ident}[{}] = {{\n",
        bytes.len()
    );
    for chunk in bytes.chunks(12) {
        out.push_str("   ");
        for b in chunk {
            out.push_str(&format!(" 0x{b:02x},"));
        }
        out.push('\n');
    }
    out.push_str("};\n");
    out
}

#[cfg(test)]
mod tests;
