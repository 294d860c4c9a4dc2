//! The configuration file of `ferrota serve` (TOML). Every key is optional:
//!
//! ```toml
//! data_dir = "/var/lib/ferrota"     # store, firmware files, CA, operator token
//! database_url = "postgres://ferrota@db.example.com/ferrota"  # optional: the store on
//!                                   #   PostgreSQL instead of <data>/ferrota.db (workers share it)
//! database_wait = 30                # seconds to wait at start for that server to answer
//! mqtt_listen = "127.0.0.1:8883"    # MQTT over mutual TLS (loopback by default; "0.0.0.0:8883"
//!                                   #   or a LAN address exposes it to devices)
//! http_listen = "127.0.0.1:8080"    # operator HTTP API and /metrics (loopback by default;
//!                                   #   any other address needs HTTPS, see below)
//! http_tls = true                   # HTTPS for it, certificate issued by the fleet CA at each
//!                                   #   start for localhost, 127.0.0.1, ::1, endpoint,
//!                                   #   server_names and the http_listen host
//! http_cert = "api.crt.pem"         # or your own certificate chain and key (PEM; turns
//! http_key = "api.key.pem"          #   HTTPS on without http_tls)
//! endpoint = "ota.example.com"      # host name written into device bundles
//! server_names = ["ota.example.com"]  # extra names in the server certificate (at `ca init`)
//! client_cas = ["other-ca.pem"]     # registered CAs whose device certificates are accepted
//! crls = ["other-ca.crl.pem"]       # revocation lists (the server CA's crl.pem is always used)
//! max_connections = 10000
//! blob_url = "s3://ota-firmware"   # firmware files in an S3 bucket (default: <data>/firmware);
//! s3_endpoint = "http://127.0.0.1:8333"  #   an S3-compatible server (default: AWS S3);
//! s3_region = "eu-west-1"          #   credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
//! blob_cache_mib = 64              #   verified chunks kept in memory (crate::store::s3)
//! [policy]                          # extra patterns; ${iot:Connection.Thing.ThingName} allowed
//! publish = ["telemetry/${iot:Connection.Thing.ThingName}"]
//! subscribe = ["broadcast/#"]
//! [limits]
//! max_packet_size = 262144
//! queue_messages = 2048
//! queue_bytes = 8388608
//! max_inflight = 100
//! max_pending = 256                 # connections not yet through TLS (crate::gate)
//! max_pending_per_address = 32      #   of those, from one IP address
//! tls_handshake_timeout = 5         # seconds from TCP accept to the end of the TLS handshake
//! connect_timeout = 5               # seconds from the TLS handshake to CONNECT
//! max_subscriptions = 50            # per connection (AWS IoT Core: 50)
//! max_filters_per_subscribe = 8     # per SUBSCRIBE (AWS: 8); more disconnects
//! max_filter_len = 256              # bytes (AWS: 256)
//! max_filter_slashes = 7            # (AWS: 7)
//! [broker]                          # client mode (see crate::bridge): no MQTT listener; the
//! external = "mqtts://broker:8883"  # Jobs and Streams connect to this broker as one client
//! client_id = "ferrota-services"    # also the CN of the service certificate
//! share_group = "ferrota"           # optional: $share/<group>/… for several instances
//! ca = "broker-ca.pem"              # optional: the broker's CA (default: the fleet CA)
//! cert = "svc.crt.pem"              # optional: default <data>/ca/service.crt.pem, issued by
//! key = "svc.key.pem"               #   the fleet CA on first start
//! [trust]                           # signed update metadata (#20, crate::trust)
//! dir = "/etc/ferrota/trust"        # what `ferrota key trust-init` wrote: root-*.cbor and the
//!                                   #   timestamp-*.pem (root and release keys may stay offline)
//! timestamp_lifetime = 3600         # seconds a Jobs answer's timestamp stays valid
//! check_bundles = true              # OTA create refuses a fileType-142 file that does not
//!                                   #   verify against files[0]
//! ```
//!
//! ## HTTPS for the operator API
//!
//! The HTTP listener carries the operator token on every request, so it is served in clear
//! only on loopback. An `http_listen` address that is not loopback (`0.0.0.0:8080`, `[::]`, a
//! LAN address, a name that resolves to one) without HTTPS is refused at start
//! ([`Config::check_http_listen`]), naming the address and the keys that fix it; nothing is
//! bound or created then. With `http_tls = true` (`ferrota serve --http-tls`) the server
//! issues itself a certificate from the fleet CA at every start (ECDSA P-256, kept in memory:
//! the CA is what clients trust, so a new leaf per start needs nothing from them); the CLI
//! trusts the fleet CA of a local data directory by itself, and a remote client takes it as
//! `--ca <data>/ca/ca.crt.pem`. With `http_cert`/`http_key` (`--http-cert`/`--http-key`) the
//! server uses that chain and key instead (a certificate of your own CA or a public one);
//! give both. Every route of the listener (the API, `/metrics`, the `[broker]` auth routes)
//! is served over it; a plain-HTTP request to the HTTPS port gets a 400 saying to use
//! `https://`, and a failed handshake closes only its own connection.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::broker::Limits;
use crate::policy::Policy;

/// `ferrota serve` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Data directory.
    pub data_dir: PathBuf,
    /// The store on PostgreSQL (`postgres://user[:password]@host[:port]/database`) instead of
    /// the SQLite file `<data>/ferrota.db`: what several workers of one fleet share
    /// (`docs/DEPLOY.md`). The data directory still holds the CA, the token and the firmware
    /// files. `None` (the default): SQLite, as before. Also `ferrota serve --database-url`
    /// and `FERROTA_DATABASE_URL`. Errors name the URL with its password replaced by `***`.
    pub database_url: Option<String>,
    /// How long a start waits for the PostgreSQL server of `database_url` to answer, in
    /// seconds (a worker may start before its database); then it fails, naming the URL.
    pub database_wait: u64,
    /// MQTT/TLS listen address. Loopback (`127.0.0.1:8883`) by default, as the HTTP API is:
    /// a server started to try things out is not reachable from the network until an
    /// address is given (`0.0.0.0:8883` for every interface).
    pub mqtt_listen: String,
    /// HTTP API listen address. Anything but loopback needs HTTPS (`http_tls`, or
    /// `http_cert` and `http_key`): refused at start otherwise ([`Config::check_http_listen`]).
    pub http_listen: String,
    /// Serve the HTTP API over TLS with a certificate the fleet CA issues at every start
    /// ([`Config::http_cert_names`]). Implied by `http_cert`/`http_key`.
    pub http_tls: bool,
    /// The HTTPS certificate chain (PEM), instead of one from the fleet CA; with `http_key`.
    pub http_cert: Option<PathBuf>,
    /// The private key of `http_cert` (PEM).
    pub http_key: Option<PathBuf>,
    /// Host name for device bundles.
    pub endpoint: String,
    /// Extra server certificate names.
    pub server_names: Vec<String>,
    /// Extra accepted client CAs (PEM files).
    pub client_cas: Vec<PathBuf>,
    /// Extra CRLs (PEM files).
    pub crls: Vec<PathBuf>,
    /// Connection cap.
    pub max_connections: usize,
    /// Policy additions.
    pub policy: PolicyConfig,
    /// Limits.
    pub limits: LimitsConfig,
    /// Client mode: the services on an external broker.
    pub broker: BrokerConfig,
    /// Where firmware files live: `None` (or `file:`) for `<data>/firmware`,
    /// `s3://<bucket>` for an S3 bucket ([`crate::store::S3BlobStore`]). Several servers
    /// share one bucket; the credentials come from the usual AWS environment variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`), never from this file.
    pub blob_url: Option<String>,
    /// Endpoint of an S3-compatible server (`http://host:port`); default: AWS S3.
    pub s3_endpoint: Option<String>,
    /// Region to sign for (default: `AWS_REGION`, else `us-east-1`).
    pub s3_region: Option<String>,
    /// MiB of verified S3 chunks kept in memory (one GET per chunk for the whole fleet).
    pub blob_cache_mib: u64,
    /// Signed update metadata (#20): off unless `[trust] dir` is set.
    pub trust: TrustConfig,
}

/// `[trust]`: signed update metadata (#20, [`crate::trust`]). Without `dir`, off: Jobs answers
/// are byte for byte AWS's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrustConfig {
    /// The trust directory `ferrota key trust-init` writes (also `ferrota serve --trust-dir`).
    pub dir: Option<PathBuf>,
    /// Seconds a timestamp stays valid (design §3.2; default 3600): a device that hears
    /// nothing newer for this long counts its offer as frozen.
    pub timestamp_lifetime: u64,
    /// Whether OTA create checks fileType-142 files against `files[0]` (default true).
    pub check_bundles: bool,
}

impl Default for TrustConfig {
    fn default() -> Self {
        TrustConfig {
            dir: None,
            timestamp_lifetime: crate::trust::DEFAULT_LIFETIME.as_secs(),
            check_bundles: true,
        }
    }
}

impl TrustConfig {
    /// The trust service of this configuration: `None` without `dir`; an error naming the
    /// file or the rule when the directory is refused (a server told to sign timestamps does
    /// not start without them).
    pub fn service(
        &self,
    ) -> Result<Option<std::sync::Arc<crate::trust::TrustService>>, crate::trust::TrustSetupError>
    {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        crate::trust::TrustService::load(
            dir,
            std::time::Duration::from_secs(self.timestamp_lifetime),
            self.check_bundles,
        )
        .map(|t| Some(std::sync::Arc::new(t)))
    }
}

/// `[broker]`: client mode ([`crate::bridge`], `external`) or worker mode on a RabbitMQ
/// cluster ([`crate::amqp`], `amqp`). Without either, the in-process broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// `mqtts://host:port` of the external broker.
    pub external: Option<String>,
    /// MQTT client id, and the CN of the service certificate issued on first start.
    pub client_id: String,
    /// Subscribe as `$share/<group>/…`.
    pub share_group: Option<String>,
    /// The broker's CA certificate (PEM); default: the fleet CA.
    pub ca: Option<PathBuf>,
    /// The service certificate (PEM); default `<data>/ca/service.crt.pem`.
    pub cert: Option<PathBuf>,
    /// The service key (PEM); default `<data>/ca/service.key.pem`.
    pub key: Option<PathBuf>,
    /// `amqp://user:password@host:port/%2f` of a RabbitMQ cluster's nodes: run as one of
    /// several workers consuming the devices' requests from it ([`crate::amqp`]). One URL or a
    /// list (`amqp = ["amqp://…node-1…", "amqp://…node-2…"]`): the worker connects to the
    /// first and, when its node is lost, to the next. Not with `external`.
    #[serde(
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub amqp: Vec<String>,
    /// How many unacknowledged requests RabbitMQ hands this worker at once (default 64).
    pub amqp_prefetch: u16,
    /// The port devices connect to on the cluster's nodes (`endpoint` is their host name),
    /// named in device bundles in AMQP mode (default 8883).
    pub device_port: u16,
    /// The secret in the path of the broker-auth endpoints RabbitMQ's HTTP auth backend asks
    /// (`/broker-auth/<secret>/…`, [`crate::broker_auth`]); without it they are not served.
    pub auth_secret: Option<String>,
}

/// A string or a list of strings (`[broker] amqp`).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            external: None,
            client_id: "ferrota-services".into(),
            share_group: None,
            ca: None,
            cert: None,
            key: None,
            amqp: Vec::new(),
            amqp_prefetch: 64,
            device_port: 8883,
            auth_secret: None,
        }
    }
}

/// Extra policy patterns.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Publish patterns.
    pub publish: Vec<String>,
    /// Subscribe patterns.
    pub subscribe: Vec<String>,
}

/// MQTT limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// See [`Limits::max_packet_size`].
    pub max_packet_size: usize,
    /// See [`Limits::queue_messages`].
    pub queue_messages: usize,
    /// See [`Limits::queue_bytes`].
    pub queue_bytes: usize,
    /// See [`Limits::max_inflight`].
    pub max_inflight: usize,
    /// See [`Limits::max_pending`].
    pub max_pending: usize,
    /// See [`Limits::max_pending_per_address`].
    pub max_pending_per_address: usize,
    /// See [`Limits::tls_handshake_timeout`] (seconds).
    pub tls_handshake_timeout: u64,
    /// See [`Limits::connect_timeout`] (seconds).
    pub connect_timeout: u64,
    /// See [`Limits::max_subscriptions`].
    pub max_subscriptions: usize,
    /// See [`Limits::max_filters_per_subscribe`].
    pub max_filters_per_subscribe: usize,
    /// See [`Limits::max_filter_len`].
    pub max_filter_len: usize,
    /// See [`Limits::max_filter_slashes`].
    pub max_filter_slashes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = Limits::default();
        LimitsConfig {
            max_packet_size: l.max_packet_size,
            queue_messages: l.queue_messages,
            queue_bytes: l.queue_bytes,
            max_inflight: l.max_inflight,
            max_pending: l.max_pending,
            max_pending_per_address: l.max_pending_per_address,
            tls_handshake_timeout: l.tls_handshake_timeout.as_secs(),
            connect_timeout: l.connect_timeout.as_secs(),
            max_subscriptions: l.max_subscriptions,
            max_filters_per_subscribe: l.max_filters_per_subscribe,
            max_filter_len: l.max_filter_len,
            max_filter_slashes: l.max_filter_slashes,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("ferrota-data"),
            database_url: None,
            database_wait: 30,
            mqtt_listen: "127.0.0.1:8883".into(),
            http_listen: "127.0.0.1:8080".into(),
            http_tls: false,
            http_cert: None,
            http_key: None,
            endpoint: "localhost".into(),
            server_names: Vec::new(),
            client_cas: Vec::new(),
            crls: Vec::new(),
            max_connections: 10_000,
            policy: PolicyConfig::default(),
            limits: LimitsConfig::default(),
            broker: BrokerConfig::default(),
            blob_url: None,
            s3_endpoint: None,
            s3_region: None,
            #[cfg(feature = "serve")]
            blob_cache_mib: crate::store::s3::DEFAULT_CACHE_BYTES >> 20,
            // Without the `serve` feature there is no S3 store to cache for.
            #[cfg(not(feature = "serve"))]
            blob_cache_mib: 0,
            trust: TrustConfig::default(),
        }
    }
}

/// A configuration error.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// Not valid.
    #[error("{0}: {1}")]
    Toml(PathBuf, toml::de::Error),
    /// Parsed, but a value is out of range.
    #[error("{0}: {1}")]
    Invalid(PathBuf, String),
}

impl Config {
    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io(path.into(), e))?;
        toml::from_str(&text).map_err(|e| ConfigError::Toml(path.into(), e))
    }

    /// The policy.
    pub fn policy(&self) -> Policy {
        Policy::with_extra(&self.policy.publish, &self.policy.subscribe)
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_packet_size: self.limits.max_packet_size,
            queue_messages: self.limits.queue_messages,
            queue_bytes: self.limits.queue_bytes,
            max_inflight: self.limits.max_inflight,
            max_pending: self.limits.max_pending,
            max_pending_per_address: self.limits.max_pending_per_address,
            tls_handshake_timeout: std::time::Duration::from_secs(
                self.limits.tls_handshake_timeout.max(1),
            ),
            connect_timeout: std::time::Duration::from_secs(self.limits.connect_timeout.max(1)),
            max_subscriptions: self.limits.max_subscriptions,
            max_filters_per_subscribe: self.limits.max_filters_per_subscribe,
            max_filter_len: self.limits.max_filter_len,
            max_filter_slashes: self.limits.max_filter_slashes,
            ..Limits::default()
        }
    }

    /// The S3 bucket of `blob_url`, or `None` for files in the data directory. A URL of
    /// another scheme, or an `s3://` URL with no bucket or with a path, is refused (a path
    /// prefix is not supported: objects are `firmware/<sha256>` in the bucket).
    #[cfg(feature = "serve")]
    pub fn s3_options(&self) -> Result<Option<crate::store::S3Options>, String> {
        let Some(url) = self.blob_url.as_deref().filter(|u| *u != "file:") else {
            return Ok(None);
        };
        let bucket = url
            .strip_prefix("s3://")
            .map(|b| b.trim_end_matches('/'))
            .filter(|b| !b.is_empty() && !b.contains('/'))
            .ok_or_else(|| {
                format!("blob_url {url:?}: expected \"s3://<bucket>\" (or no blob_url for files in the data directory)")
            })?;
        Ok(Some(crate::store::S3Options {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            cache_bytes: self.blob_cache_mib.max(1) << 20,
            ..crate::store::S3Options::new(bucket)
        }))
    }

    /// Whether the HTTP API is served over TLS: `http_tls`, or a certificate of one's own.
    pub fn http_tls_enabled(&self) -> bool {
        self.http_tls || self.http_cert.is_some() || self.http_key.is_some()
    }

    /// The names of the HTTPS certificate the fleet CA issues (`http_tls` without
    /// `http_cert`): `localhost`, `127.0.0.1`, `::1`, the `endpoint`, the `server_names` and
    /// the host of `http_listen` unless it is the unspecified address (every interface: the
    /// names a client uses then are the endpoint's and `server_names`'). Duplicates removed,
    /// order kept.
    pub fn http_cert_names(&self) -> Vec<String> {
        let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        names.push(self.endpoint.clone());
        names.extend(self.server_names.iter().cloned());
        if let Some((host, _)) = self.http_listen.rsplit_once(':') {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let unspecified = host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_unspecified());
            if !host.is_empty() && !unspecified {
                names.push(host.to_string());
            }
        }
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| !n.is_empty() && seen.insert(n.clone()));
        names
    }

    /// Refuses an `http_listen` that is not loopback while the API would be served without
    /// TLS: the operator token (and every answer) would cross the network in clear. A name is
    /// resolved, and every address it resolves to must be loopback; a name that does not
    /// resolve is left to the bind, which reports it. The message names the address and the
    /// ways out.
    pub fn check_http_listen(&self) -> Result<(), String> {
        use std::net::ToSocketAddrs;
        if self.http_tls_enabled() {
            return Ok(());
        }
        let Ok(addrs) = self.http_listen.to_socket_addrs() else {
            return Ok(());
        };
        match addrs.map(|a| a.ip()).find(|ip| !ip.is_loopback()) {
            None => Ok(()),
            Some(ip) => Err(format!(
                "http_listen {:?}: {ip} is not a loopback address, and the HTTP API would be \
                 served without TLS (the operator token in clear on the network); refusing to \
                 start. Serve it over HTTPS: --http-tls (http_tls = true: a certificate from \
                 the fleet CA) or --http-cert FILE --http-key FILE (http_cert, http_key: your \
                 own), or listen on 127.0.0.1",
                self.http_listen
            )),
        }
    }

    /// `<data>/ca`.
    pub fn ca_dir(&self) -> PathBuf {
        self.data_dir.join("ca")
    }
    /// `<data>/ferrota.db`.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("ferrota.db")
    }
    /// `<data>/firmware`.
    pub fn files_dir(&self) -> PathBuf {
        self.data_dir.join("firmware")
    }
    /// `<data>/api-token`.
    pub fn token_path(&self) -> PathBuf {
        self.data_dir.join("api-token")
    }
    /// `<data>/listening.json`: where the server of this data directory listens, written by
    /// `ferrota serve` once its sockets are bound (so a port 0 in the configuration is
    /// recorded as the port the system chose). The other commands read it, so that a device
    /// bundle names the port the server really listens on and `ota` reaches its API.
    pub fn listening_path(&self) -> PathBuf {
        self.data_dir.join("listening.json")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_listeners_are_on_loopback_unless_an_address_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, "endpoint = \"ota.example.com\"\n").unwrap();
        for c in [Config::default(), Config::load(&path).unwrap()] {
            assert_eq!(c.mqtt_listen, "127.0.0.1:8883");
            for a in [&c.mqtt_listen, &c.http_listen] {
                let a: std::net::SocketAddr = a.parse().unwrap();
                assert!(a.ip().is_loopback(), "{a}");
            }
        }
        std::fs::write(&path, "mqtt_listen = \"0.0.0.0:8883\"\n").unwrap();
        assert_eq!(Config::load(&path).unwrap().mqtt_listen, "0.0.0.0:8883");
    }

    /// Issue 18: the operator API in clear only on loopback. Every address that is not
    /// loopback (every interface, IPv6's too, a LAN address) is refused with a message naming
    /// it and the keys that fix it; with HTTPS (`http_tls`, or one's own certificate) all are
    /// accepted; loopback (`127.0.0.1`, `::1`, `localhost`) is accepted in clear.
    #[test]
    fn an_api_in_clear_is_refused_on_anything_but_loopback() {
        let with = |listen: &str| Config {
            http_listen: listen.into(),
            ..Config::default()
        };
        for ok in [
            "127.0.0.1:8080",
            "[::1]:0",
            "localhost:8080",
            "127.0.0.2:80",
        ] {
            assert_eq!(with(ok).check_http_listen(), Ok(()), "{ok}");
        }
        for bad in [
            "0.0.0.0:8080",
            "[::]:8080",
            "192.168.1.20:8080",
            "10.0.0.1:0",
        ] {
            let e = with(bad).check_http_listen().unwrap_err();
            assert!(e.contains(bad), "{e}");
            assert!(e.contains("--http-tls") && e.contains("http_cert"), "{e}");
            let tls = Config {
                http_tls: true,
                ..with(bad)
            };
            assert_eq!(tls.check_http_listen(), Ok(()));
            let own = Config {
                http_cert: Some("c.pem".into()),
                http_key: Some("k.pem".into()),
                ..with(bad)
            };
            assert!(own.http_tls_enabled());
            assert_eq!(own.check_http_listen(), Ok(()));
        }
        assert!(!Config::default().http_tls_enabled());
    }

    /// The names of the certificate the fleet CA issues for HTTPS: loopback, the endpoint,
    /// `server_names`, and the listen host unless it is every interface; no duplicates.
    #[test]
    fn the_https_certificate_names_the_addresses_clients_use() {
        let c = Config {
            endpoint: "ota.example.com".into(),
            server_names: vec!["ota.example.com".into(), "10.0.0.5".into()],
            http_listen: "192.168.1.20:8443".into(),
            ..Config::default()
        };
        assert_eq!(
            c.http_cert_names(),
            [
                "localhost",
                "127.0.0.1",
                "::1",
                "ota.example.com",
                "10.0.0.5",
                "192.168.1.20"
            ]
        );
        for any in ["0.0.0.0:8443", "[::]:8443"] {
            let c = Config {
                http_listen: any.into(),
                ..Config::default()
            };
            assert_eq!(c.http_cert_names(), ["localhost", "127.0.0.1", "::1"]);
        }
    }

    /// `[broker] amqp` takes one node's URL or a list of them (tried in turn); anything else
    /// is refused when the file is read, naming the file.
    #[test]
    fn amqp_is_one_url_or_a_list_of_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("worker.toml");
        std::fs::write(&path, "[broker]\namqp = \"amqp://a:5672/%2f\"\n").unwrap();
        assert_eq!(
            Config::load(&path).unwrap().broker.amqp,
            ["amqp://a:5672/%2f"]
        );
        std::fs::write(
            &path,
            "[broker]\namqp = [\"amqp://a:5672/%2f\", \"amqp://b:5672/%2f\"]\n",
        )
        .unwrap();
        assert_eq!(
            Config::load(&path).unwrap().broker.amqp,
            ["amqp://a:5672/%2f", "amqp://b:5672/%2f"]
        );
        std::fs::write(&path, "[broker]\n").unwrap();
        assert!(Config::load(&path).unwrap().broker.amqp.is_empty());
        std::fs::write(&path, "[broker]\namqp = 5672\n").unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(e.contains("worker.toml"), "{e}");
    }

    /// `[trust]` (#20): off without `dir`; defaults lifetime 3600 s and checks on; an unknown
    /// key refused; a missing directory is an error naming it, not a server without trust.
    #[test]
    fn trust_table_defaults_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.toml");
        std::fs::write(&path, "[trust]\n").unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.trust.timestamp_lifetime, 3600);
        assert!(c.trust.check_bundles);
        assert!(c.trust.service().unwrap().is_none());
        std::fs::write(&path, "[trust]\nlifetime = 5\n").unwrap();
        assert!(Config::load(&path).is_err());
        let missing = dir.path().join("nope");
        std::fs::write(
            &path,
            format!(
                "[trust]\ndir = {:?}\ncheck_bundles = false\n",
                missing.display().to_string()
            ),
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        assert!(!c.trust.check_bundles);
        let e = c.trust.service().unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    #[cfg(feature = "serve")]
    fn blob_url_selects_the_s3_store_and_bad_urls_are_refused() {
        let mut c = Config::default();
        assert!(c.s3_options().unwrap().is_none(), "files in the data dir");
        c.blob_url = Some("file:".into());
        assert!(c.s3_options().unwrap().is_none());
        c.blob_url = Some("s3://ota-firmware".into());
        c.s3_endpoint = Some("http://127.0.0.1:8333".into());
        c.blob_cache_mib = 8;
        let o = c.s3_options().unwrap().expect("s3");
        assert_eq!(o.bucket, "ota-firmware");
        assert_eq!(o.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(o.cache_bytes, 8 << 20);
        for bad in ["s3://", "gs://bucket", "s3://bucket/prefix", "bucket"] {
            c.blob_url = Some(bad.into());
            let e = c.s3_options().unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    /// Issue 15: fault injection is not part of the production configuration. A `[faults]`
    /// table (an out-of-range one before, which was refused, or a valid one, which turned the
    /// dropping on) is now refused as an unknown field when the file is read, naming the file
    /// and the table, before anything is created. The bench and the lab install faults in
    /// code ([`crate::faults`]); the fraction check moved there with them.
    #[test]
    fn a_faults_table_is_refused_when_the_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let path = dir.path().join("server.toml");
        for table in [
            "[faults]\nstream_drop = 10.0\n",
            "[faults]\nstream_drop = 0.01\nseed = 7\n",
        ] {
            let toml = format!("data_dir = {:?}\n{table}", data.display().to_string());
            std::fs::write(&path, toml).unwrap();
            let e = Config::load(&path).unwrap_err();
            assert!(matches!(e, ConfigError::Toml(..)), "{e:?}");
            let text = e.to_string();
            assert!(text.contains("server.toml"), "{text}");
            assert!(text.contains("faults"), "{text}");
            assert!(
                !data.exists(),
                "nothing created for a refused configuration"
            );
        }
    }
}
