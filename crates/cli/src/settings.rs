//! Where every command finds the server: one resolution of the configuration file, the data
//! directory, the operator API and the MQTT endpoint, shared by `serve`, `ca`, `thing` and `ota`,
//! so that a server set up once (a config file, or `FERROTA_*` variables) is the one every
//! command talks about.
//!
//! Precedence, highest first: a command-line flag; its `FERROTA_*` environment variable (clap's
//! `env`, see [`crate::serverargs`]); the configuration file; the built-in default.
//!
//! * **The configuration file** is `-c FILE` (`FERROTA_CONFIG`), else the first that exists of
//!   `./ferrota.toml` and `$XDG_CONFIG_HOME/ferrota/ferrota.toml` (`~/.config/ferrota/…` when
//!   `XDG_CONFIG_HOME` is unset; a relative `XDG_CONFIG_HOME` is ignored, as the XDG Base
//!   Directory specification says), else none (the built-in defaults). The file is the server's
//!   own ([`ferrota_server::config`]): the clients read `data_dir`, `http_listen`, `endpoint` and
//!   `mqtt_listen` from it. Its relative paths are relative to the working directory, as they
//!   are for `ferrota serve`.
//! * **Where the server really listens** is recorded by `ferrota serve` in
//!   `<data>/listening.json` ([`Listening`]) once its sockets are bound: a configuration may say
//!   port 0, or `serve` may have been given `--mqtt-listen`. `thing create` writes the recorded
//!   MQTT port into the device bundle and `ota` uses the recorded API address, before anything
//!   the configuration says. The record stays when the server stops (it is where the server
//!   listened last, and so most likely where it listens next); a new start overwrites it, and
//!   every command that uses it says so on stderr, so a stale record is seen, not silently
//!   trusted.
//! * **HTTPS** (`ferrota serve --http-tls`, issue 18): the record says whether the API is
//!   served over TLS, so the URL taken from it is `https://`; so is the one made from a
//!   configuration with `http_tls` or `http_cert`. The server's certificate is checked against
//!   `--ca FILE` (`FERROTA_CA`), else, for an `https://` URL, the data directory's fleet CA
//!   (`<data>/ca/ca.crt.pem`) when it has one, else the system's trusted roots
//!   (`crate::otacmd`); one it does not trust is an error naming the URL, the CA tried and
//!   `--ca` ([`untrusted`]).
//! * **A wrong server is found before any upload**: `ota create` asks the API one cheap
//!   authenticated question first (`GET /api/limits`), and [`unreachable`] words what went
//!   wrong (nothing listening, an MQTT/TLS port, another HTTP server).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use ferrota_server::config::Config;
use serde::{Deserialize, Serialize};

use crate::serverargs::{ApiArgs, DataArgs};

/// File name of the default configuration (in the working directory, then in the user's
/// configuration directory).
pub const CONFIG_FILE: &str = "ferrota.toml";

/// The largest `listening.json` read.
const RECORD_MAX: u64 = 64 * 1024;

/// The default configuration file: `./ferrota.toml`, then
/// `$XDG_CONFIG_HOME/ferrota/ferrota.toml` (or `$HOME/.config/ferrota/ferrota.toml`); `None` if
/// neither exists.
pub fn default_config_path() -> Option<PathBuf> {
    let local = PathBuf::from(CONFIG_FILE);
    if local.is_file() {
        return Some(local);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|h| h.join(".config"))
        })?;
    let p = base.join("ferrota").join(CONFIG_FILE);
    p.is_file().then_some(p)
}

/// The configuration: `-c`/`FERROTA_CONFIG`, else the default file, else the defaults; then
/// `--data-dir`/`FERROTA_DATA_DIR` over its `data_dir`.
pub fn config(d: &DataArgs) -> Result<Config> {
    let path = d.config.clone().or_else(default_config_path);
    let mut cfg = match &path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    if let Some(dir) = &d.data_dir {
        cfg.data_dir = dir.clone();
    }
    Ok(cfg)
}

/// Where the server of a data directory listens (`<data>/listening.json`, written by
/// `ferrota serve` once its sockets are bound).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listening {
    /// The MQTT/TLS socket.
    pub mqtt: SocketAddr,
    /// The operator HTTP API socket.
    pub http: SocketAddr,
    /// The host name devices connect to (the configuration's `endpoint`, a name in the server
    /// certificate).
    pub endpoint: String,
    /// The process id of that `ferrota serve`.
    pub pid: u32,
    /// Whether the API is served over HTTPS (`https://` URLs); absent in older records.
    #[serde(default)]
    pub https: bool,
}

/// Writes the record (atomically, so a reader never sees half of it).
pub fn record(cfg: &Config, l: &Listening) -> Result<()> {
    let p = cfg.listening_path();
    ferrota_server::ca::write_file(&p, &serde_json::to_vec_pretty(l)?, false)
        .with_context(|| format!("{}: cannot record the listening addresses", p.display()))
}

/// The record of the data directory's server, if it has started once.
pub fn recorded(cfg: &Config) -> Result<Option<Listening>> {
    let p = cfg.listening_path();
    if !p.exists() {
        return Ok(None);
    }
    let bytes = crate::fsio::read(&p, RECORD_MAX)?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        anyhow!(
            "{}: {e} (written by `ferrota serve`; delete it or start the server again)",
            p.display()
        )
    })
}

/// An address to connect to for a listening address: the unspecified address (every
/// interface) is reached on loopback.
pub(crate) fn connectable(a: SocketAddr) -> SocketAddr {
    let ip = match a.ip() {
        std::net::IpAddr::V4(v) if v.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v) if v.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, a.port())
}

/// The port of a `host:port` listen address as written in the configuration.
fn listen_port(what: &str, addr: &str) -> Result<u16> {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .ok_or_else(|| anyhow!("{what} {addr:?} is not host:port"))
}

/// Which of a flag and its environment variable gave `value`, for messages: clap takes the
/// flag over the variable, so the variable gave it exactly when it holds this value (and if
/// both hold it, either name is true).
pub fn flag_or_env(flag: &str, var: &str, value: &str) -> String {
    if std::env::var(var).is_ok_and(|v| v == value) {
        var.to_string()
    } else {
        flag.to_string()
    }
}

/// The operator API's base URL and where it came from (for messages): `--api`/`FERROTA_API`,
/// else the data directory's record, else the configuration's `http_listen`.
pub fn api_base(a: &ApiArgs, cfg: &Config) -> Result<(String, String)> {
    if let Some(u) = &a.api {
        return Ok((
            u.trim_end_matches('/').to_string(),
            flag_or_env("--api", "FERROTA_API", u),
        ));
    }
    // FERROTA_SERVER: the same as FERROTA_API (which wins), the name other fleet tools use.
    if let Some(u) = std::env::var("FERROTA_SERVER")
        .ok()
        .filter(|u| !u.is_empty())
    {
        return Ok((u.trim_end_matches('/').to_string(), "FERROTA_SERVER".into()));
    }
    if let Some(l) = recorded(cfg)? {
        let scheme = if l.https { "https" } else { "http" };
        return Ok((
            format!("{scheme}://{}", connectable(l.http)),
            format!(
                "where the server of {} listens, {}",
                cfg.data_dir.display(),
                cfg.listening_path().display()
            ),
        ));
    }
    let listen = &cfg.http_listen;
    if listen_port("http_listen", listen)? == 0 {
        bail!(
            "the configuration's http_listen {listen:?} leaves the port to the system and no \
             server has recorded one in {}: pass --api (the `http` line `ferrota serve` prints)",
            cfg.listening_path().display()
        );
    }
    let scheme = if cfg.http_tls_enabled() {
        "https"
    } else {
        "http"
    };
    let base = match listen.parse::<SocketAddr>() {
        Ok(a) => format!("{scheme}://{}", connectable(a)),
        Err(_) => format!("{scheme}://{listen}"),
    };
    Ok((base, "the configuration's http_listen".into()))
}

/// The MQTT endpoint a device bundle names, and where it came from (for the note on stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name (the configuration's `endpoint`).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Where host and port came from.
    pub from: String,
    /// A disagreement the operator should see (a record older than the configuration).
    pub warning: Option<String>,
}

/// The MQTT endpoint of the data directory's server: `port` (`--mqtt-port`/`FERROTA_MQTT_PORT`,
/// for a port forwarded elsewhere) over the record of the running (or last) server, over the
/// configuration's `mqtt_listen`. A configuration that leaves the port to the system (`:0`)
/// with no record is an error: no port written is better than a wrong one.
///
/// In client mode (`[broker] external`) the devices connect to that broker, not to this
/// server (which has no MQTT listener then): its host and port are the endpoint, whatever the
/// record says.
pub fn mqtt_endpoint(cfg: &Config, port: Option<u16>) -> Result<Endpoint> {
    // A worker of a RabbitMQ cluster: devices connect to the nodes, at `endpoint` (their
    // host name) and `[broker] device_port`, never to the worker's own (unused) listener.
    if !cfg.broker.amqp.is_empty() {
        return Ok(Endpoint {
            host: cfg.endpoint.clone(),
            port: port.unwrap_or(cfg.broker.device_port),
            from: match port {
                Some(p) => flag_or_env("--mqtt-port", "FERROTA_MQTT_PORT", &p.to_string()),
                None => "the configuration's endpoint and [broker] device_port".into(),
            },
            warning: None,
        });
    }
    if let Some((host, broker_port)) =
        ferrota_server::bridge::External::address(cfg).map_err(|e| anyhow!(e))?
    {
        return Ok(Endpoint {
            host,
            port: port.unwrap_or(broker_port),
            from: match port {
                Some(p) => flag_or_env("--mqtt-port", "FERROTA_MQTT_PORT", &p.to_string()),
                None => "the configuration's [broker] external".into(),
            },
            warning: None,
        });
    }
    let rec = recorded(cfg)?;
    let host = rec
        .as_ref()
        .map_or_else(|| cfg.endpoint.clone(), |l| l.endpoint.clone());
    if let Some(port) = port {
        return Ok(Endpoint {
            host,
            port,
            from: flag_or_env("--mqtt-port", "FERROTA_MQTT_PORT", &port.to_string()),
            warning: None,
        });
    }
    if let Some(l) = rec {
        // Whether that server still runs: its API accepts a connection (loopback, at once).
        let running = std::net::TcpStream::connect_timeout(
            &connectable(l.http),
            std::time::Duration::from_millis(500),
        )
        .is_ok();
        // A configuration that names another fixed port than the record was changed after
        // the server started (the default configuration names none on purpose).
        let configured = listen_port("mqtt_listen", &cfg.mqtt_listen).ok();
        let warning = match configured {
            Some(p)
                if p != 0
                    && p != l.mqtt.port()
                    && cfg.mqtt_listen != Config::default().mqtt_listen =>
            {
                Some(format!(
                    "the configuration's mqtt_listen is {:?}, but the server last started on \
                     {}; restart it, or pass --mqtt-port {p}",
                    cfg.mqtt_listen, l.mqtt
                ))
            }
            _ => None,
        };
        return Ok(Endpoint {
            host,
            port: l.mqtt.port(),
            from: format!(
                "where the server of {} {}, {}",
                cfg.data_dir.display(),
                if running {
                    "listens"
                } else {
                    "last listened (not running now)"
                },
                cfg.listening_path().display()
            ),
            warning,
        });
    }
    let port = listen_port("mqtt_listen", &cfg.mqtt_listen)?;
    if port == 0 {
        bail!(
            "the configuration's mqtt_listen {:?} leaves the port to the system and no server \
             has recorded one in {}: start `ferrota serve` first, or pass --mqtt-port",
            cfg.mqtt_listen,
            cfg.listening_path().display()
        );
    }
    Ok(Endpoint {
        host,
        port,
        from: "the configuration's mqtt_listen (no server has started on this data directory)"
            .into(),
        warning: None,
    })
}

/// The message for a request that got no HTTP answer: what was tried, where the address came
/// from, and the likely mistakes. An MQTT/TLS port answers a plain HTTP request with a TLS
/// alert or by closing, which ureq reports as a protocol or I/O error.
pub fn unreachable(base: &str, from: &str, e: &ureq::Error) -> anyhow::Error {
    let refused =
        matches!(e, ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused);
    let hint = if refused {
        "is `ferrota serve` running? Its API address is the `api` line it prints"
    } else if base.starts_with("https://") {
        "no HTTPS answer: does that server serve HTTPS (`ferrota serve --http-tls`; the `api` \
         line it prints says https://), and is it not the MQTT/TLS port?"
    } else {
        "no HTTP answer: is that the MQTT/TLS port? The API address is the `api` line \
         `ferrota serve` prints"
    };
    anyhow!("no Ferrota API at {base} ({from}): {e}; {hint}")
}

/// The message for an `https://` server whose certificate the CLI does not trust: the URL,
/// rustls's reason, which CA was used, and how to give the right one.
pub fn untrusted(base: &str, from: &str, reason: &str, trusted: &str) -> anyhow::Error {
    anyhow!(
        "{base} ({from}): the server's TLS certificate is not trusted ({reason}; trusted: \
         {trusted}); pass --ca FILE (FERROTA_CA) with the CA that issued it: a Ferrota \
         server's fleet CA is <data>/ca/ca.crt.pem on its machine"
    )
}

/// The message for an HTTP answer that is not the Ferrota API's (a 404 for a route every
/// Ferrota server has, or a body that is not its JSON).
pub fn not_ferrota(base: &str, from: &str, what: &str) -> anyhow::Error {
    anyhow!(
        "{base} ({from}) is not a Ferrota API: {what}; wrong --api? The API address is the \
         `http` line `ferrota serve` prints"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(dir: &Path) -> Config {
        Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        }
    }

    fn api(url: Option<&str>) -> ApiArgs {
        ApiArgs {
            api: url.map(str::to_string),
            ca: None,
            token: None,
            data: DataArgs {
                config: None,
                data_dir: None,
            },
        }
    }

    #[test]
    fn the_record_wins_over_the_configuration_and_a_flag_over_both() {
        let d = tempfile::tempdir().unwrap();
        let mut c = cfg(d.path());
        c.mqtt_listen = "0.0.0.0:1884".into();
        c.http_listen = "0.0.0.0:18080".into();
        let e = mqtt_endpoint(&c, None).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("localhost", 1884));
        assert_eq!(
            api_base(&api(None), &c).unwrap().0,
            "http://127.0.0.1:18080"
        );

        let l = Listening {
            mqtt: "127.0.0.1:28883".parse().unwrap(),
            http: "[::]:28080".parse().unwrap(),
            endpoint: "ota.example.com".into(),
            pid: 1,
            https: false,
        };
        record(&c, &l).unwrap();
        assert!(d.path().join("listening.json").is_file());
        assert_eq!(recorded(&c).unwrap(), Some(l));
        let e = mqtt_endpoint(&c, None).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("ota.example.com", 28883));
        assert!(e.from.contains("listening.json"), "{}", e.from);
        assert_eq!(api_base(&api(None), &c).unwrap().0, "http://[::1]:28080");

        // Nothing listens there: said so; the configuration's other port is a warning.
        assert!(e.from.contains("not running"), "{}", e.from);
        assert!(
            e.warning.as_deref().unwrap().contains("0.0.0.0:1884"),
            "{e:?}"
        );
        c.mqtt_listen = Config::default().mqtt_listen;
        assert_eq!(mqtt_endpoint(&c, None).unwrap().warning, None);
        assert_eq!(mqtt_endpoint(&c, Some(443)).unwrap().port, 443);
        assert_eq!(
            api_base(&api(Some("http://h:1/")), &c).unwrap().0,
            "http://h:1"
        );
    }

    /// Client mode: devices connect to the external broker, so a bundle names its host and
    /// port, not this server's record (which names the local port, where nothing listens for
    /// devices then); `--mqtt-port` still wins; a bad URL is an error naming it.
    #[test]
    fn a_cluster_worker_names_the_broker_nodes_not_its_own_listener() {
        let d = tempfile::tempdir().unwrap();
        let mut c = cfg(d.path());
        let l = Listening {
            mqtt: "127.0.0.1:28883".parse().unwrap(),
            http: "127.0.0.1:28080".parse().unwrap(),
            endpoint: "localhost".into(),
            pid: 1,
            https: false,
        };
        record(&c, &l).unwrap();
        c.endpoint = "mqtt.fleet.example".into();
        c.broker.amqp = vec!["amqp://w:p@127.0.0.1:5672/%2f".into()];
        c.broker.device_port = 18883;
        let e = mqtt_endpoint(&c, None).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("mqtt.fleet.example", 18883));
        assert!(e.from.contains("device_port"), "{}", e.from);
        assert_eq!(mqtt_endpoint(&c, Some(443)).unwrap().port, 443);
    }

    #[test]
    fn in_client_mode_the_endpoint_is_the_external_broker() {
        let d = tempfile::tempdir().unwrap();
        let mut c = cfg(d.path());
        let l = Listening {
            mqtt: "127.0.0.1:28883".parse().unwrap(),
            http: "127.0.0.1:28080".parse().unwrap(),
            endpoint: "localhost".into(),
            pid: 1,
            https: false,
        };
        record(&c, &l).unwrap();
        c.broker.external = Some("mqtts://broker.example:9883".into());
        let e = mqtt_endpoint(&c, None).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("broker.example", 9883));
        assert!(e.from.contains("[broker] external"), "{}", e.from);
        assert_eq!(mqtt_endpoint(&c, Some(443)).unwrap().port, 443);
        c.broker.external = Some("tcp://broker.example".into());
        let e = mqtt_endpoint(&c, None).unwrap_err().to_string();
        assert!(e.contains("tcp://broker.example"), "{e}");
    }

    /// An HTTPS server's record, or a configuration with HTTPS, gives an `https://` URL.
    #[test]
    fn an_https_server_is_reached_at_an_https_url() {
        let d = tempfile::tempdir().unwrap();
        let mut c = cfg(d.path());
        c.http_tls = true;
        assert_eq!(
            api_base(&api(None), &c).unwrap().0,
            "https://127.0.0.1:8080"
        );
        let l = Listening {
            mqtt: "127.0.0.1:28883".parse().unwrap(),
            http: "0.0.0.0:28443".parse().unwrap(),
            endpoint: "localhost".into(),
            pid: 1,
            https: true,
        };
        record(&cfg(d.path()), &l).unwrap();
        assert_eq!(
            api_base(&api(None), &cfg(d.path())).unwrap().0,
            "https://127.0.0.1:28443"
        );
        // A record written before HTTPS existed (no `https` key) is plain HTTP.
        let old = r#"{"mqtt":"127.0.0.1:1","http":"127.0.0.1:2","endpoint":"x","pid":1}"#;
        std::fs::write(c.listening_path(), old).unwrap();
        assert!(!recorded(&c).unwrap().unwrap().https);
    }

    #[test]
    fn a_port_left_to_the_system_without_a_record_is_an_error_not_a_guess() {
        let d = tempfile::tempdir().unwrap();
        let mut c = cfg(d.path());
        c.mqtt_listen = "127.0.0.1:0".into();
        c.http_listen = "127.0.0.1:0".into();
        let e = mqtt_endpoint(&c, None).unwrap_err().to_string();
        assert!(e.contains("--mqtt-port"), "{e}");
        let e = api_base(&api(None), &c).unwrap_err().to_string();
        assert!(e.contains("--api"), "{e}");
        c.mqtt_listen = "nonsense".into();
        assert!(mqtt_endpoint(&c, None).is_err());
    }

    #[test]
    fn a_damaged_record_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let c = cfg(d.path());
        std::fs::write(c.listening_path(), "{").unwrap();
        let e = format!("{:#}", mqtt_endpoint(&c, None).unwrap_err());
        assert!(e.contains("listening.json"), "{e}");
    }
}
