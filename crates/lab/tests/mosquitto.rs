//! A board against Debian's `mosquitto` as the broker, with ferrota-server's Jobs and Streams
//! services connected to it as a client ([`ferrota_server::bridge`]): the agent must not
//! depend on anything only our broker does (e.g. Jobs replies delivered without a
//! subscription). mosquitto authenticates every client by its certificate
//! (`require_certificate`, `use_identity_as_username`) and confines a thing to
//! `$aws/things/<its CN>/#`. Loopback only; skipped with a note when mosquitto is not installed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferrota_boot::Bank;
use ferrota_device::board::{BoardEvent, Options};
use ferrota_lab::images::Tamper;
use ferrota_lab::lab::{self, Lab};
use ferrota_server::bridge::{self, External};
use ferrota_server::ca::Ca;

const MOSQUITTO: &str = "/usr/sbin/mosquitto";
const SERVICE: &str = "ferrota-services";

/// Kills mosquitto when dropped (also when the test panics).
struct Mosquitto {
    child: Child,
    log: PathBuf,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mosquitto {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle` (or panics after `limit`, showing the log).
    async fn wait_log(&self, needle: &str, limit: Duration) {
        let until = tokio::time::Instant::now() + limit;
        while !self.log().contains(needle) {
            assert!(
                tokio::time::Instant::now() < until,
                "mosquitto never logged {needle:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Writes the configuration and ACL into `dir` and starts mosquitto on a free loopback port.
fn start_mosquitto(dir: &Path, ca_dir: &Path) -> (Mosquitto, u16) {
    let port = free_port();
    let acl = dir.join("acl");
    std::fs::write(
        &acl,
        format!(
            "pattern readwrite $aws/things/%u/#\n\nuser {SERVICE}\ntopic readwrite $aws/things/#\n"
        ),
    )
    .unwrap();
    let log = dir.join("mosquitto.log");
    let conf = dir.join("mosquitto.conf");
    let p = |f: &str| ca_dir.join(f).display().to_string();
    std::fs::write(
        &conf,
        format!(
            "per_listener_settings false\n\
             allow_anonymous false\n\
             acl_file {acl}\n\
             persistence false\n\
             user root\n\
             log_dest file {log}\n\
             log_type all\n\
             listener {port} 127.0.0.1\n\
             cafile {ca}\n\
             certfile {cert}\n\
             keyfile {key}\n\
             require_certificate true\n\
             use_identity_as_username true\n",
            acl = acl.display(),
            log = log.display(),
            ca = p("ca.crt.pem"),
            cert = p("server.crt.pem"),
            key = p("server.key.pem"),
        ),
    )
    .unwrap();
    let child = Command::new(MOSQUITTO)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mosquitto");
    (Mosquitto { child, log }, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_board_updates_through_mosquitto_with_the_services_as_a_client() {
    if ferrota_infra::skip_without("mosquitto", Path::new(MOSQUITTO).exists()) {
        return;
    }
    let lab = Lab::start().await.expect("lab");
    let ca_dir = lab.dir.join("server").join("ca");
    let (mosq, port) = start_mosquitto(&lab.dir, &ca_dir);
    mosq.wait_log("Opening ipv4 listen socket", Duration::from_secs(10))
        .await;

    // The services' identity: a certificate from the fleet CA with CN = the ACL's user.
    let ca = Ca::load(&ca_dir).expect("CA");
    let svc = ca.issue_thing(SERVICE).expect("service certificate");
    let ext = External {
        host: "localhost".into(),
        port,
        client_id: SERVICE.into(),
        ca_pem: ca.cert_pem().to_string(),
        cert_pem: svc.cert_pem,
        key_pem: svc.key_pem,
        share_group: None,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let services = tokio::spawn(bridge::run(lab.broker.clone(), ext, async {
        let _ = stop_rx.await;
    }));
    // Subscribed to the last request filter: the services are ready.
    mosq.wait_log(
        &format!("{SERVICE} 1 {}", bridge::REQUEST_FILTERS[7]),
        Duration::from_secs(10),
    )
    .await;

    update_through(&lab, &mosq, port, "mosq-board").await;
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(5), services)
        .await
        .expect("services stop")
        .expect("services task")
        .expect("services ran");
    drop(mosq);
    lab.shutdown().await;
}

/// `[broker] external` in the server configuration: `Server::run` starts the services as a
/// client (the service certificate is issued from the fleet CA at open), as `ferrota serve`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferrota_serve_with_an_external_broker_section() {
    if ferrota_infra::skip_without("mosquitto", Path::new(MOSQUITTO).exists()) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ca_dir = tmp.path().join("server").join("ca");
    // The database first, then the CA, as `ferrota ca init` does (a CA without a database
    // reads as a lost database).
    let data = ferrota_server::config::Config {
        data_dir: tmp.path().join("server"),
        ..Default::default()
    };
    ferrota_server::server::init_data_dir(&data, &[])
        .await
        .expect("CA");
    let (mosq, port) = start_mosquitto(tmp.path(), &ca_dir);
    mosq.wait_log("Opening ipv4 listen socket", Duration::from_secs(10))
        .await;
    let lab = Lab::start_configured(tmp.path(), |c| {
        c.broker.external = Some(format!("mqtts://localhost:{port}"));
        c.broker.client_id = SERVICE.into();
    })
    .await
    .expect("lab");
    assert!(ca_dir.join("service.crt.pem").exists());
    mosq.wait_log(
        &format!("{SERVICE} 1 {}", bridge::REQUEST_FILTERS[7]),
        Duration::from_secs(10),
    )
    .await;
    update_through(&lab, &mosq, port, "serve-board").await;
    lab.shutdown().await;
    // The services disconnected at shutdown.
    mosq.wait_log(
        &format!("Client {SERVICE} disconnected"),
        Duration::from_secs(5),
    )
    .await;
}

/// Runs a board on mosquitto through a whole OTA update (v1.0 → v1.1) to SUCCEEDED.
async fn update_through(lab: &Lab, mosq: &Mosquitto, port: u16, thing: &str) {
    let id = format!("{thing}_v1_1_0").replace('-', "_");
    let v1_0 = lab.image(0, 1, Tamper::None).unwrap();
    let v1_1 = lab.image(1, 2, Tamper::None).unwrap();
    let (dev, cfg) = lab.add_device_on(thing, &v1_0, port).await.unwrap();
    let mut board = lab::board(
        dev,
        cfg,
        Options {
            quiet: true,
            ..Options::default()
        },
    );
    lab.update(&id, &[thing], &v1_1).await.unwrap();
    let (events, met) = lab::drive(&mut board, Duration::from_secs(120), |e| {
        e.last() == Some(&BoardEvent::JobSucceeded)
    })
    .await
    .expect("board runs");
    assert!(
        met,
        "no JobSucceeded through mosquitto: {events:?}\nmosquitto log tail:\n{}",
        tail(&mosq.log(), 60)
    );
    assert!(
        events.iter().any(|e| matches!(
            e,
            BoardEvent::Booted {
                bank: Bank::Upper,
                ..
            }
        )),
        "{events:?}"
    );
    let (status, _) = lab.terminal_status(&id, thing).await.unwrap();
    assert_eq!(status, "SUCCEEDED");
    // The board really talked to mosquitto, authenticated as its CN, and the image came as
    // stream blocks published by the services' client.
    let log = mosq.log();
    assert!(log.contains(&format!("u'{thing}'")), "{}", tail(&log, 60));
    let blocks = log
        .lines()
        .filter(|l| l.contains(&format!("Sending PUBLISH to {thing}")) && l.contains("/data/cbor"))
        .count();
    let requests = log
        .lines()
        .filter(|l| l.contains(&format!("Received PUBLISH from {thing}")))
        .count();
    eprintln!("through mosquitto: {requests} requests from the board, {blocks} data blocks to it");
    assert!(blocks >= 1000, "{blocks} data blocks\n{}", tail(&log, 60));
    assert!(!lab.broker.is_connected(thing));
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
