//! The device configuration: `device.toml` in the bundle `ferrota thing create` writes (or any
//! TOML file of this shape). Paths are relative to the file.
//!
//! ```toml
//! thing_name = "dev-1"
//! endpoint = "localhost"
//! port = 8883
//! root_ca = "root-ca.pem"
//! client_cert = "dev-1.crt.pem"
//! client_key = "dev-1.key.pem"
//! code_signing_cert = "code-signing.crt.pem"   # the agent pins its public key
//! file_types = [141]
//! self_test_deadline_secs = 60
//! self_test_wait_secs = 16
//! block_size = 4096
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrota_image::p256::ecdsa::VerifyingKey;
use serde::{Deserialize, Serialize};

/// A configuration error.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("{path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The TOML is invalid.
    #[error("{path}: {error}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// Why.
        error: toml::de::Error,
    },
    /// The code-signing certificate holds no ECDSA P-256 key.
    #[error("code-signing certificate: {0}")]
    CodeSigning(ferrota_keys::KeyError),
}

fn default_port() -> u16 {
    8883
}
fn default_file_types() -> Vec<u8> {
    vec![ferrota_agent::FIRMWARE_FILE_TYPE]
}
fn default_deadline() -> u64 {
    60
}
fn default_wait() -> u64 {
    16
}
fn default_block() -> u32 {
    4096
}

/// `device.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// The thing name (MQTT client id, certificate CN).
    pub thing_name: String,
    /// Host name of the MQTT endpoint (also the TLS server name).
    pub endpoint: String,
    /// MQTT/TLS port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// The CA certificate that signed the server's certificate (PEM).
    pub root_ca: PathBuf,
    /// The thing's certificate (PEM).
    pub client_cert: PathBuf,
    /// The thing's private key (PEM).
    pub client_key: PathBuf,
    /// The code-signing certificate (or public key) whose key the agent pins.
    pub code_signing_cert: PathBuf,
    /// File types that are firmware.
    #[serde(default = "default_file_types")]
    pub file_types: Vec<u8>,
    /// Seconds the application's self-test may take.
    #[serde(default = "default_deadline")]
    pub self_test_deadline_secs: u64,
    /// Seconds to wait for the self-test job after a trial boot.
    #[serde(default = "default_wait")]
    pub self_test_wait_secs: u64,
    /// Stream block size.
    #[serde(default = "default_block")]
    pub block_size: u32,
}

impl DeviceConfig {
    /// The defaults for a thing's bundle (file names as `ferrota thing create` writes them).
    pub fn for_thing(thing: &str, endpoint: &str, port: u16) -> Self {
        DeviceConfig {
            thing_name: thing.into(),
            endpoint: endpoint.into(),
            port,
            root_ca: "root-ca.pem".into(),
            client_cert: format!("{thing}.crt.pem").into(),
            client_key: format!("{thing}.key.pem").into(),
            code_signing_cert: "code-signing.crt.pem".into(),
            file_types: default_file_types(),
            self_test_deadline_secs: default_deadline(),
            self_test_wait_secs: default_wait(),
            block_size: default_block(),
        }
    }

    /// The TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a device configuration serialises")
    }

    /// Reads a `device.toml` and every file it names.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let text = read(path)?;
        let cfg: DeviceConfig = toml::from_str(&text).map_err(|error| ConfigError::Toml {
            path: path.into(),
            error,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        cfg.resolve(dir)
    }

    /// Reads the files named, relative to `dir`.
    pub fn resolve(self, dir: &Path) -> Result<Loaded, ConfigError> {
        let at = |p: &Path| dir.join(p);
        let code_signing_key = ferrota_keys::load_ota_verifying_key(&at(&self.code_signing_cert))
            .map_err(ConfigError::CodeSigning)?;
        Ok(Loaded {
            root_ca_pem: read(&at(&self.root_ca))?,
            cert_pem: read(&at(&self.client_cert))?,
            key_pem: read(&at(&self.client_key))?,
            code_signing_key,
            cfg: self,
        })
    }
}

fn read(p: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(p).map_err(|error| ConfigError::Read {
        path: p.into(),
        error,
    })
}

/// A configuration with its files read.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The settings.
    pub cfg: DeviceConfig,
    /// Root CA (PEM).
    pub root_ca_pem: String,
    /// Client certificate (PEM).
    pub cert_pem: String,
    /// Client key (PEM).
    pub key_pem: String,
    /// The pinned code-signing key.
    pub code_signing_key: VerifyingKey,
}

impl Loaded {
    /// The self-test deadline.
    pub fn self_test_deadline(&self) -> Duration {
        Duration::from_secs(self.cfg.self_test_deadline_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_defaults() {
        let c = DeviceConfig::for_thing("dev-1", "localhost", 1234);
        let back: DeviceConfig = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back, c);
        let min: DeviceConfig = toml::from_str(
            "thing_name='a'\nendpoint='h'\nroot_ca='r'\nclient_cert='c'\nclient_key='k'\ncode_signing_cert='s'\n",
        )
        .unwrap();
        assert_eq!(min.port, 8883);
        assert_eq!(min.file_types, vec![141]);
        assert!(toml::from_str::<DeviceConfig>("thing_name='a'\nbogus=1").is_err());
    }
}
