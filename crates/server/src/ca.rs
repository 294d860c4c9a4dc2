//! The server's certificate authority (rcgen, ECDSA P-256): the CA itself, the server's TLS
//! certificate, thing certificates (subject CN = thing name, client-auth EKU) and the CRL.
//!
//! Files under `<data>/ca/`: `ca.crt.pem`, `ca.key.pem` (0600), `server.crt.pem`,
//! `server.key.pem` (0600), `crl.pem`.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::tls::certificate_id;

/// A CA error.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Certificate generation failed.
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file of the CA does not hold what it should (e.g. a damaged key).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// `ca init` on an existing CA.
    #[error("a CA exists already in {0} (remove it to start over)")]
    Exists(PathBuf),
}

fn rd(p: &Path) -> Result<String, CaError> {
    std::fs::read_to_string(p).map_err(|source| CaError::Io {
        path: p.into(),
        source,
    })
}

/// Writes a file atomically (temporary file, fsync, rename), `0600` when `secret`.
pub fn write_file(p: &Path, data: &[u8], secret: bool) -> Result<(), CaError> {
    use std::io::Write;
    let io = |source| CaError::Io {
        path: p.into(),
        source,
    };
    let dir = p.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    // A temporary name of this writer's own: two processes writing one file (workers sharing
    // a data directory) must not truncate or rename each other's temporary file.
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        p.file_name().and_then(|n| n.to_str()).unwrap_or("f"),
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        if secret {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o.open(&tmp).map_err(io)?;
        f.write_all(data).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, p).map_err(io)
}

fn serial() -> SerialNumber {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("OS random");
    b[0] &= 0x7F;
    b[0] |= 0x01;
    SerialNumber::from_slice(&b)
}

/// A certificate and its key, PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Certificate PEM.
    pub cert_pem: String,
    /// Private key PEM (PKCS#8).
    pub key_pem: String,
    /// Certificate id (SHA-256 of the DER, hex).
    pub cert_id: String,
    /// Serial number, hex.
    pub serial: String,
}

/// The CA, loaded.
pub struct Ca {
    dir: PathBuf,
    cert_pem: String,
    key: KeyPair,
}

impl Ca {
    /// Paths.
    pub fn cert_path(dir: &Path) -> PathBuf {
        dir.join("ca.crt.pem")
    }

    /// Creates the CA and a server certificate for `server_names` (DNS names or IP addresses;
    /// `localhost` and `127.0.0.1` are always included).
    pub fn init(dir: &Path, server_names: &[String]) -> Result<Ca, CaError> {
        if Self::cert_path(dir).exists() {
            return Err(CaError::Exists(dir.into()));
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Ferrota fleet CA");
        dn.push(DnType::OrganizationName, "Ferrota");
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        p.serial_number = Some(serial());
        let now = OffsetDateTime::now_utc();
        p.not_before = now - Duration::days(1);
        p.not_after = now + Duration::days(365 * 20);
        let cert = p.self_signed(&key)?;
        write_file(
            &dir.join("ca.key.pem"),
            key.serialize_pem().as_bytes(),
            true,
        )?;
        write_file(&Self::cert_path(dir), cert.pem().as_bytes(), false)?;
        let ca = Ca {
            dir: dir.into(),
            cert_pem: cert.pem(),
            key,
        };
        let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        names.extend(server_names.iter().cloned());
        let server = ca.issue_server(&names)?;
        write_file(
            &dir.join("server.crt.pem"),
            server.cert_pem.as_bytes(),
            false,
        )?;
        write_file(&dir.join("server.key.pem"), server.key_pem.as_bytes(), true)?;
        ca.write_crl(&[])?;
        Ok(ca)
    }

    /// Loads the CA from `dir`.
    pub fn load(dir: &Path) -> Result<Ca, CaError> {
        let key_path = dir.join("ca.key.pem");
        let key = KeyPair::from_pem(&rd(&key_path)?).map_err(|e| CaError::Invalid {
            path: key_path.clone(),
            message: format!("not the CA's PEM private key: {e}"),
        })?;
        Ok(Ca {
            dir: dir.into(),
            cert_pem: rd(&Self::cert_path(dir))?,
            key,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn issuer(&self) -> Result<Issuer<'static, &KeyPair>, CaError> {
        Ok(Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)?)
    }

    fn issue(&self, p: CertificateParams) -> Result<Issued, CaError> {
        self.issue_with(&self.issuer()?, p)
    }

    /// Issues with an issuer parsed once (the CA certificate is not re-parsed per thing when
    /// a fleet is created).
    fn issue_with(
        &self,
        issuer: &Issuer<'static, &KeyPair>,
        p: CertificateParams,
    ) -> Result<Issued, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let serial = p.serial_number.clone().map(|s| hex::encode(s.to_bytes()));
        let cert = p.signed_by(&key, issuer)?;
        Ok(Issued {
            cert_id: certificate_id(cert.der()),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            serial: serial.unwrap_or_default(),
        })
    }

    fn leaf_params(cn: &str) -> CertificateParams {
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        p.distinguished_name = dn;
        p.serial_number = Some(serial());
        let now = OffsetDateTime::now_utc();
        p.not_before = now - Duration::days(1);
        p.not_after = now + Duration::days(365 * 10);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.use_authority_key_identifier_extension = true;
        p
    }

    /// A thing certificate: subject CN = thing name, client authentication.
    pub fn issue_thing(&self, thing: &str) -> Result<Issued, CaError> {
        let mut p = Self::leaf_params(thing);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(p)
    }

    pub(crate) fn issue_thing_with(
        &self,
        issuer: &Issuer<'static, &KeyPair>,
        thing: &str,
    ) -> Result<Issued, CaError> {
        let mut p = Self::leaf_params(thing);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue_with(issuer, p)
    }

    /// A server certificate for the given DNS names / IP addresses.
    pub fn issue_server(&self, names: &[String]) -> Result<Issued, CaError> {
        let mut p = Self::leaf_params(names.first().map_or("ferrota", |s| s.as_str()));
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ok(SanType::DnsName(n.clone().try_into()?)),
            })
            .collect::<Result<_, rcgen::Error>>()?;
        self.issue(p)
    }

    /// Writes `crl.pem` listing the given serials (hex) with their revocation times.
    pub fn write_crl(&self, revoked: &[(String, u64)]) -> Result<String, CaError> {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + Duration::days(30),
            crl_number: SerialNumber::from(now.unix_timestamp() as u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .filter_map(|(s, at)| {
                    Some(RevokedCertParams {
                        serial_number: SerialNumber::from_slice(&hex::decode(s).ok()?),
                        revocation_time: OffsetDateTime::from_unix_timestamp(*at as i64)
                            .unwrap_or(now),
                        reason_code: Some(RevocationReason::Unspecified),
                        invalidity_date: None,
                    })
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer()?)?;
        let pem = crl.pem()?;
        write_file(&self.dir.join("crl.pem"), pem.as_bytes(), false)?;
        Ok(pem)
    }
}
