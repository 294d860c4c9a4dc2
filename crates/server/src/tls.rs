//! Mutual TLS: the server's rustls configuration (WebPKI client verifier over the server's CA
//! and any registered CA, with CRLs) and the identity of a connected client.
//!
//! Crypto provider: *ring*, passed explicitly to every rustls builder here, so this crate never
//! depends on a process-wide default. Binaries and tests also call
//! [`install_crypto_provider`] once, for code (rumqttc) that uses the default.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// Who is at the other end, as established by the transport (the TLS client certificate).
///
/// Defined here, with the code that derives it from a certificate, rather than in
/// [`crate::session`] (which consumes it): so the CA and the operator actions that name
/// certificates ([`crate::ca`], [`crate::admin`]) depend on this module alone and never reach
/// the sessions or the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The thing name: the certificate's subject CN.
    pub thing: String,
    /// The certificate id (SHA-256 of its DER, hex), checked against the registry; `None` for
    /// transports that authenticated the thing otherwise (in-process tests).
    pub cert_id: Option<String>,
}

/// The one crypto provider of Ferrota's TLS.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs *ring* as the process default (idempotent). Call first thing in every binary and
/// test that uses rustls through another crate.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A TLS setup error.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// PEM could not be read.
    #[error("PEM: {0}")]
    Pem(String),
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// PEM inputs of the server's TLS.
#[derive(Debug, Clone, Default)]
pub struct TlsMaterial {
    /// CA certificates whose client certificates are accepted (the server's CA first).
    pub client_cas_pem: Vec<String>,
    /// The server certificate chain.
    pub server_cert_pem: String,
    /// The server key.
    pub server_key_pem: String,
    /// Certificate revocation lists (PEM).
    pub crls_pem: Vec<String>,
}

/// Builds the rustls server configuration: TLS 1.2/1.3, client certificate required.
pub fn server_config(m: &TlsMaterial) -> Result<Arc<ServerConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for pem in &m.client_cas_pem {
        for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let c = c.map_err(|e| TlsError::Pem(e.to_string()))?;
            roots.add(c)?;
        }
    }
    let mut crls = Vec::new();
    for pem in &m.crls_pem {
        for c in CertificateRevocationListDer::pem_slice_iter(pem.as_bytes()) {
            crls.push(c.map_err(|e| TlsError::Pem(e.to_string()))?);
        }
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .with_crls(crls)
        .build()?;
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(m.server_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Pem(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(m.server_key_pem.as_bytes())
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    let cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    Ok(Arc::new(cfg))
}

/// The certificate id AWS uses: SHA-256 of the DER, lowercase hex.
pub fn certificate_id(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The subject common name of a DER certificate.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// The identity of a verified client: thing name = subject CN of its leaf certificate.
pub fn identity_of(conn: &rustls::ServerConnection) -> Option<Identity> {
    let leaf = conn.peer_certificates()?.first()?;
    Some(Identity {
        thing: common_name(leaf)?,
        cert_id: Some(certificate_id(leaf)),
    })
}
