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
//!
//! [trust]                      # signed update metadata (issue 20); absent: policy "aws-plain"
//! policy = "require"           # or "aws-plain": AWS's plain code-signing signature suffices
//! root = "root-1.cbor"         # the trust anchor (root v1 from `ferrota key trust-init`)
//! min_rate = 1024              # optional: slowest accepted download, bytes/s of signed size
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
    /// `[trust] root` names a file that is not a valid self-signed root document (the agent
    /// would refuse it too, but only at power-on: the board is told at load time instead).
    #[error(
        "{path}: refused as the trust anchor: {error} (expected root-1.cbor from `ferrota key trust-init`)"
    )]
    TrustAnchor {
        /// The file.
        path: PathBuf,
        /// Why.
        error: ferrota_manifest::TrustError,
    },
    /// `[trust] policy = "require"` without `root`: nothing to verify manifests against.
    #[error(
        "[trust] policy = \"require\" needs root = \"<root-1.cbor>\" (the anchor from `ferrota key trust-init`)"
    )]
    TrustRequiresRoot,
    /// `[trust] min_rate = 0`: every download would be "too slow" at once.
    #[error("[trust] min_rate must be at least 1 byte/s")]
    TrustRate,
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
    /// Signed update metadata (`[trust]`); absent, the AWS behaviour (`aws-plain`). Left out
    /// of the TOML when it is the default, so a bundle without it reads as before.
    #[serde(default, skip_serializing_if = "TrustSection::is_default")]
    pub trust: TrustSection,
}

/// Whether the board requires signed update metadata (`[trust] policy`); the agent's
/// [`ferrota_agent::TrustPolicy`] under the names a TOML file uses.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// `"aws-plain"` (default): real AWS IoT; a job is accepted on the pinned code-signing key
    /// alone and the board warns about it. A manifest that comes anyway is still checked.
    #[default]
    AwsPlain,
    /// `"require"`: Ferrota's server (`ferrota serve --trust-dir`); every firmware job needs a
    /// fresh signed timestamp and a manifest signed by a release key of the trusted root.
    Require,
}

impl Policy {
    /// The agent's policy.
    pub fn agent(self) -> ferrota_agent::TrustPolicy {
        match self {
            Policy::AwsPlain => ferrota_agent::TrustPolicy::AwsPlain,
            Policy::Require => ferrota_agent::TrustPolicy::Require,
        }
    }

    /// The TOML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::AwsPlain => "aws-plain",
            Policy::Require => "require",
        }
    }
}

/// `[trust]` of `device.toml` (issue 20, design §4.3 D-9).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrustSection {
    /// `require` or `aws-plain` (default).
    #[serde(default)]
    pub policy: Policy,
    /// The trust anchor: root v1 as `ferrota key trust-init` writes it (`root-1.cbor`),
    /// relative to `device.toml`. Required by `require`; with `aws-plain` it lets the board
    /// verify a manifest that a job carries anyway (without one, such a job is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// Slowest accepted download in bytes per second of the signed image size (the agent's
    /// default, 1024, when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_rate: Option<u32>,
}

impl TrustSection {
    /// `require` with the anchor at `root` (what `ferrota thing create --trust-root` writes).
    pub fn require(root: impl Into<PathBuf>) -> Self {
        TrustSection {
            policy: Policy::Require,
            root: Some(root.into()),
            min_rate: None,
        }
    }

    /// Whether this is the default (no `[trust]` table needed).
    pub fn is_default(&self) -> bool {
        *self == TrustSection::default()
    }
}

/// `[trust]` checked, with its anchor read: what [`crate::board`] hands the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustLoaded {
    /// The policy.
    pub policy: Policy,
    /// The anchor's bytes (a root v1 document that verified), kept here because the agent's
    /// configuration borrows them for as long as it runs.
    pub anchor: Option<Vec<u8>>,
    /// The anchor's root version (for the start-up line).
    pub root_version: Option<u32>,
    /// `min_rate`, if set.
    pub min_rate: Option<u32>,
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
            trust: TrustSection::default(),
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
        let trust = self.trust.resolve(dir)?;
        Ok(Loaded {
            root_ca_pem: read(&at(&self.root_ca))?,
            cert_pem: read(&at(&self.client_cert))?,
            key_pem: read(&at(&self.client_key))?,
            code_signing_key,
            trust,
            cfg: self,
        })
    }
}

impl TrustSection {
    /// Checks the section and reads its anchor (relative to `dir`). The anchor is verified as
    /// the agent will (`TrustedRoot::from_anchor`: a root document meeting its own threshold),
    /// so a wrong or damaged file is refused when the board is configured, not at its first
    /// update.
    pub fn resolve(&self, dir: &Path) -> Result<TrustLoaded, ConfigError> {
        if self.min_rate == Some(0) {
            return Err(ConfigError::TrustRate);
        }
        let (anchor, root_version) = match &self.root {
            Some(p) => {
                let path = dir.join(p);
                let bytes = std::fs::read(&path).map_err(|error| ConfigError::Read {
                    path: path.clone(),
                    error,
                })?;
                let root = ferrota_manifest::TrustedRoot::from_anchor(&bytes)
                    .map_err(|error| ConfigError::TrustAnchor { path, error })?;
                (Some(bytes), Some(root.version()))
            }
            None if self.policy == Policy::Require => return Err(ConfigError::TrustRequiresRoot),
            None => (None, None),
        };
        Ok(TrustLoaded {
            policy: self.policy,
            anchor,
            root_version,
            min_rate: self.min_rate,
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
    /// `[trust]`, checked, with the anchor's bytes.
    pub trust: TrustLoaded,
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
        // No [trust] table: aws-plain, and the default is not written out.
        assert_eq!(min.trust, TrustSection::default());
        assert!(!c.to_toml().contains("[trust]"), "{}", c.to_toml());
    }

    const BASE: &str = "thing_name='a'\nendpoint='h'\nroot_ca='r'\nclient_cert='c'\nclient_key='k'\ncode_signing_cert='s'\n";

    #[test]
    fn trust_table_parses_and_round_trips() {
        let c: DeviceConfig = toml::from_str(&format!(
            "{BASE}[trust]\npolicy = 'require'\nroot = 'root-1.cbor'\nmin_rate = 2048\n"
        ))
        .unwrap();
        assert_eq!(c.trust.policy, Policy::Require);
        assert_eq!(c.trust.root.as_deref(), Some(Path::new("root-1.cbor")));
        assert_eq!(c.trust.min_rate, Some(2048));
        let text = c.to_toml();
        assert!(
            text.contains("[trust]") && text.contains("policy = \"require\""),
            "{text}"
        );
        assert_eq!(toml::from_str::<DeviceConfig>(&text).unwrap(), c);
        let mut t = DeviceConfig::for_thing("dev-1", "localhost", 1);
        t.trust = TrustSection::require("root-1.cbor");
        assert_eq!(toml::from_str::<DeviceConfig>(&t.to_toml()).unwrap(), t);

        let plain: DeviceConfig =
            toml::from_str(&format!("{BASE}[trust]\npolicy = 'aws-plain'\n")).unwrap();
        assert_eq!(
            plain.trust.policy.agent(),
            ferrota_agent::TrustPolicy::AwsPlain
        );
        for bad in [
            "[trust]\npolicy = 'sometimes'\n",
            "[trust]\nanchor = 'x'\n",
            "[trust]\nmin_rate = -1\n",
        ] {
            assert!(
                toml::from_str::<DeviceConfig>(&format!("{BASE}{bad}")).is_err(),
                "{bad}"
            );
        }
    }

    fn section(policy: Policy, root: Option<&str>, min_rate: Option<u32>) -> TrustSection {
        TrustSection {
            policy,
            root: root.map(PathBuf::from),
            min_rate,
        }
    }

    #[test]
    fn trust_anchor_is_read_relative_to_the_config_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join("root-1.cbor"), ferrota_sim::trust::anchor()).unwrap();
        let t = section(Policy::Require, Some("root-1.cbor"), Some(10))
            .resolve(dir)
            .unwrap();
        assert_eq!(t.policy, Policy::Require);
        assert_eq!(t.anchor.as_deref(), Some(&ferrota_sim::trust::anchor()[..]));
        assert_eq!(t.root_version, Some(1));
        assert_eq!(t.min_rate, Some(10));
        // aws-plain with an anchor: kept (a manifest that comes is verified).
        let t = section(Policy::AwsPlain, Some("root-1.cbor"), None)
            .resolve(dir)
            .unwrap();
        assert!(t.anchor.is_some());
        // The default: nothing read.
        let t = TrustSection::default().resolve(dir).unwrap();
        assert_eq!(
            (t.policy, t.anchor, t.min_rate),
            (Policy::AwsPlain, None, None)
        );
    }

    #[test]
    fn bad_trust_settings_are_refused_with_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        // require without a root.
        let e = section(Policy::Require, None, None)
            .resolve(dir)
            .unwrap_err();
        assert!(matches!(e, ConfigError::TrustRequiresRoot), "{e}");
        assert!(e.to_string().contains("needs root ="), "{e}");
        // A missing anchor file: named.
        let e = section(Policy::Require, Some("nope.cbor"), None)
            .resolve(dir)
            .unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e}");
        assert!(e.to_string().contains("nope.cbor"), "{e}");
        // Not a root document (a later root, junk, a truncated anchor): refused at load time.
        let anchor = ferrota_sim::trust::anchor();
        // A payload byte (in the key list): every signature breaks. (One broken signature of
        // three still meets the threshold of two, by design.)
        let mut bad_sig = anchor.clone();
        bad_sig[40] ^= 1;
        for (name, bytes) in [
            ("junk.cbor", b"not cbor".to_vec()),
            ("short.cbor", anchor[..anchor.len() / 2].to_vec()),
            ("sig.cbor", bad_sig),
            ("empty.cbor", Vec::new()),
        ] {
            std::fs::write(dir.join(name), bytes).unwrap();
            let e = section(Policy::AwsPlain, Some(name), None)
                .resolve(dir)
                .unwrap_err();
            assert!(matches!(e, ConfigError::TrustAnchor { .. }), "{name}: {e}");
            let text = e.to_string();
            assert!(
                text.contains(name) && text.contains("refused as the trust anchor"),
                "{text}"
            );
        }
        // min_rate 0.
        let e = section(Policy::AwsPlain, None, Some(0))
            .resolve(dir)
            .unwrap_err();
        assert!(matches!(e, ConfigError::TrustRate), "{e}");
    }
}
