//! Code-signing certificates: the X.509 certificate whose public key checks OTA signatures.
//!
//! [`code_signing_certificate`] makes what AWS's OpenSSL recipe for custom code signing makes
//! (`openssl req -new -x509 -extensions my_exts -key ecdsasigner.key -days N` with
//! `keyUsage = digitalSignature`, `extendedKeyUsage = codeSigning`): a self-signed X.509 v3
//! certificate, ECDSA P-256 with SHA-256, subject and issuer `CN=<name>`. Ferrota also marks
//! keyUsage critical (RFC 5280 §4.2.1.3 says it SHOULD be), states `basicConstraints CA:FALSE`,
//! and adds subject and authority key identifiers, as OpenSSL 3 does by default.
//!
//! It is signed with the same RustCrypto P-256 key type as everything else, so no second crypto
//! backend enters the tool.

use std::time::{Duration, SystemTime};

use der::asn1::{Any, ObjectIdentifier, SetOfVec};
use der::{Decode, Tag};
use ferrota_image::p256::ecdsa::{DerSignature, SigningKey};
use spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder};
use x509_cert::certificate::{Certificate, TbsCertificate};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;

use crate::error::ParseError;
use crate::material::{PublicKey, parse_spki, to_der};

/// `id-kp-codeSigning`.
pub const ID_KP_CODE_SIGNING: ObjectIdentifier = const_oid::db::rfc5280::ID_KP_CODE_SIGNING;

/// Longest validity accepted, in days (100 years).
pub const MAX_DAYS: u32 = 36_500;

/// What Ferrota reads from a certificate.
#[derive(Debug, Clone)]
pub struct CertificateInfo {
    /// The subject public key.
    pub public_key: PublicKey,
    /// The subject, RFC 4514 text.
    pub subject: String,
    /// The issuer, RFC 4514 text.
    pub issuer: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// Whether extendedKeyUsage includes codeSigning.
    pub code_signing: bool,
    /// The certificate's DER.
    pub der: Vec<u8>,
}

/// Reads an X.509 certificate from DER.
pub fn parse_certificate_der(der: &[u8]) -> Result<CertificateInfo, ParseError> {
    let cert = Certificate::from_der(der).map_err(|error| ParseError::Der {
        what: "X.509 certificate",
        error,
    })?;
    let tbs = cert.tbs_certificate();
    let public_key = parse_spki(&to_der(tbs.subject_public_key_info())?)?;
    let code_signing = matches!(
        tbs.get_extension::<ExtendedKeyUsage>(),
        Ok(Some((_, eku))) if eku.0.contains(&ID_KP_CODE_SIGNING)
    );
    Ok(CertificateInfo {
        public_key,
        subject: tbs.subject().to_string(),
        issuer: tbs.issuer().to_string(),
        not_before: tbs.validity().not_before.to_system_time(),
        not_after: tbs.validity().not_after.to_system_time(),
        code_signing,
        der: der.to_vec(),
    })
}

/// A name with a single common name, encoded as UTF8String.
fn common_name(cn: &str) -> Result<Name, ParseError> {
    let der_err = |error| ParseError::Der {
        what: "subject name",
        error,
    };
    let atv = AttributeTypeAndValue {
        oid: const_oid::db::rfc4519::CN,
        value: Any::new(Tag::Utf8String, cn.as_bytes()).map_err(der_err)?,
    };
    let mut set = SetOfVec::new();
    set.insert(atv).map_err(der_err)?;
    let rdn = RelativeDistinguishedName::try_from(set.into_vec()).map_err(der_err)?;
    let mut seq = RdnSequence::default();
    seq.push(rdn);
    Name::from_der(&to_der(&seq)?).map_err(der_err)
}

/// The profile of a self-signed code-signing certificate.
struct CodeSigning {
    subject: Name,
}

impl BuilderProfile for CodeSigning {
    fn get_issuer(&self, subject: &Name) -> Name {
        subject.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let mut ext: Vec<Extension> = Vec::new();
        let ski = SubjectKeyIdentifier::try_from(spk)?;
        ext.push(
            BasicConstraints {
                ca: false,
                path_len_constraint: None,
            }
            .to_extension(tbs.subject(), &ext)?,
        );
        ext.push(KeyUsage(KeyUsages::DigitalSignature.into()).to_extension(tbs.subject(), &ext)?);
        ext.push(ExtendedKeyUsage(vec![ID_KP_CODE_SIGNING]).to_extension(tbs.subject(), &ext)?);
        ext.push(
            AuthorityKeyIdentifier {
                key_identifier: Some(ski.0.clone()),
                ..Default::default()
            }
            .to_extension(tbs.subject(), &ext)?,
        );
        ext.push(ski.to_extension(tbs.subject(), &ext)?);
        Ok(ext)
    }
}

/// Creates a self-signed code-signing certificate for `key`, valid from now for `days` days;
/// returns it as PEM. See the module docs for its content.
pub fn code_signing_certificate(
    key: &SigningKey,
    cn: &str,
    days: u32,
) -> Result<String, ParseError> {
    if days == 0 || days > MAX_DAYS {
        return Err(ParseError::Validity { days });
    }
    let validity = Validity::from_now(Duration::from_secs(u64::from(days) * 86_400))
        .map_err(|_| ParseError::Validity { days })?;
    let mut serial = [0u8; 16];
    getrandom::fill(&mut serial).map_err(ParseError::Random)?;
    serial[0] = (serial[0] & 0x7F) | 0x40; // positive, and no leading zero byte
    let serial = SerialNumber::new(&serial).map_err(|error| ParseError::Der {
        what: "serial number",
        error,
    })?;
    let spki =
        SubjectPublicKeyInfoOwned::from_key(key.verifying_key()).map_err(ParseError::Spki)?;
    let profile = CodeSigning {
        subject: common_name(cn)?,
    };
    let builder = CertificateBuilder::new(profile, serial, validity, spki)
        .map_err(ParseError::Certificate)?;
    let cert = builder
        .build::<_, DerSignature>(key)
        .map_err(ParseError::Certificate)?;
    pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, &to_der(&cert)?).map_err(
        |error| ParseError::Pem {
            label: "CERTIFICATE".into(),
            error,
        },
    )
}
