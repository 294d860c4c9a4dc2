//! Blocks per second served to one client over MQTT/TLS on loopback (4 KB and 64 KB blocks),
//! beside a raw TLS bulk transfer over the same loopback in the same run (the limit).
//!
//! `cargo bench -p ferrota-server --bench stream_throughput` prints a table and the ratio of
//! the stream's payload rate to the raw TLS rate. The client is a minimal MQTT client on the
//! same codec (no rumqttc event loop in the measurement), keeping 8 GetStream requests of
//! 128 KB in flight; it decodes and checks every block.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ferrota_proto::{DataBlock, StreamRequest};
use ferrota_server::admin::*;
use ferrota_server::config::Config;
use ferrota_server::server::Server;
use ferrota_server::tls::{TlsMaterial, provider, server_config};
use rumqttc::{Connect, Packet, Publish, QoS, Subscribe};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const FILE: usize = 16 * 1024 * 1024;
const WINDOW: u32 = 8;

fn client_tls(ca: &str, cert: &str, key: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                chain,
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    )
}

async fn send<W: AsyncWriteExt + Unpin>(w: &mut W, p: Packet) {
    let mut b = BytesMut::new();
    p.write(&mut b, usize::MAX).unwrap();
    w.write_all(&b).await.unwrap();
    w.flush().await.unwrap();
}

/// Streams the whole file once with block size `l`; returns (blocks, seconds).
async fn stream_run(
    port: u16,
    tls: Arc<rustls::ClientConfig>,
    thing: &str,
    stream: &str,
    l: u32,
) -> (u32, f64) {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    let io = TlsConnector::from(tls)
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let (mut r, mut w) = tokio::io::split(io);
    let mut buf = BytesMut::with_capacity(1 << 20);
    let mut c = Connect::new(thing);
    c.keep_alive = 60;
    send(&mut w, Packet::Connect(c)).await;
    let data_topic = format!("$aws/things/{thing}/streams/{stream}/data/cbor");
    send(
        &mut w,
        Packet::Subscribe(Subscribe::new(&data_topic, QoS::AtMostOnce)),
    )
    .await;
    let mut read = async |buf: &mut BytesMut| loop {
        match Packet::read(buf, 1 << 20) {
            Ok(p) => return p,
            Err(rumqttc::Error::InsufficientBytes(_)) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(r.read_buf(buf).await.unwrap() > 0, "closed");
    };
    assert!(matches!(read(&mut buf).await, Packet::ConnAck(_)));
    assert!(matches!(read(&mut buf).await, Packet::SubAck(_)));
    let blocks = (FILE as u32).div_ceil(l);
    let per_req = (128 * 1024 / l).max(1);
    let get = format!("$aws/things/{thing}/streams/{stream}/get/cbor");
    let request = |o: u32| {
        let req = StreamRequest {
            client_token: None,
            stream_version: None,
            file_id: 0,
            block_size: l,
            offset: Some(o),
            bitmap: None,
            num_blocks: Some(per_req),
        };
        let mut b = [0u8; 64];
        let n = req.encode(&mut b).unwrap();
        Packet::Publish(Publish::new(&get, QoS::AtMostOnce, b[..n].to_vec()))
    };
    let t0 = Instant::now();
    let mut next_off = 0;
    for _ in 0..WINDOW {
        if next_off < blocks {
            send(&mut w, request(next_off)).await;
            next_off += per_req;
        }
    }
    let mut got = 0u32;
    let mut expect = 0u32;
    while got < blocks {
        let Packet::Publish(p) = read(&mut buf).await else {
            continue;
        };
        let b = DataBlock::decode(&p.payload).unwrap();
        assert_eq!(b.block_id, expect);
        expect += 1;
        got += 1;
        if got.is_multiple_of(per_req) && next_off < blocks {
            send(&mut w, request(next_off)).await;
            next_off += per_req;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    send(&mut w, Packet::Disconnect).await;
    (got, secs)
}

/// Raw TLS: the server writes FILE bytes in 64 KB writes, the client reads them.
async fn raw_tls(m: &TlsMaterial, tls: Arc<rustls::ClientConfig>) -> f64 {
    let acceptor = TlsAcceptor::from(server_config(m).unwrap());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let srv = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let mut s = acceptor.accept(tcp).await.unwrap();
        let chunk = vec![0xa5u8; 64 * 1024];
        let mut one = [0u8; 1];
        s.read_exact(&mut one).await.unwrap();
        for _ in 0..FILE / chunk.len() {
            s.write_all(&chunk).await.unwrap();
        }
        s.flush().await.unwrap();
        let _ = s.read(&mut one).await;
    });
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut c = TlsConnector::from(tls)
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    let t0 = Instant::now();
    c.write_all(b"g").await.unwrap();
    c.flush().await.unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0;
    while n < FILE {
        n += c.read(&mut buf).await.unwrap();
    }
    let secs = t0.elapsed().as_secs_f64();
    drop(c);
    let _ = srv.await;
    FILE as f64 / secs
}

fn main() {
    ferrota_server::tls::install_crypto_provider();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            data_dir: dir.path().into(),
            ..Config::default()
        };
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let server = Server::open(&cfg, port).await.unwrap();
        let admin = server.admin.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(l, None, async {
            let _ = stopped.await;
        }));
        let b = admin.create_thing("bench", &[]).await.unwrap();
        let data: Vec<u8> = (0..FILE).map(|i| (i * 7 % 253) as u8).collect();
        let sha = admin.put_file(&data).await.unwrap();
        let d = admin
            .create_ota(&CreateOtaUpdate::new("bench").thing("bench").file(
                // A data file (7): create_ota refuses non-image firmware (141); the
                // signature is well-formed DER (r = s = 1).
                OtaFile::new("/ota/bench.bin", sha, "MAYCAQECAQE=").file_type(Some(7)),
            ))
            .await
            .unwrap();
        let tls = client_tls(&b.root_ca_pem, &b.certificate_pem, &b.private_key_pem);
        let ca = cfg.ca_dir();
        let m = TlsMaterial {
            client_cas_pem: vec![b.root_ca_pem.clone()],
            server_cert_pem: std::fs::read_to_string(ca.join("server.crt.pem")).unwrap(),
            server_key_pem: std::fs::read_to_string(ca.join("server.key.pem")).unwrap(),
            crls_pem: vec![],
        };
        // Warm up, then measure the best of 3 of each.
        let _ = raw_tls(&m, tls.clone()).await;
        let _ = stream_run(port, tls.clone(), "bench", &d.stream_id, 64 * 1024).await;
        let mut raw: f64 = 0.0;
        for _ in 0..3 {
            raw = raw.max(raw_tls(&m, tls.clone()).await);
        }
        println!(
            "{:<28} {:>12} {:>12} {:>10}",
            "transfer (16 MiB, loopback)", "blocks/s", "MB/s", "of raw TLS"
        );
        println!(
            "{:<28} {:>12} {:>12.1} {:>9.0}%",
            "raw TLS bulk (64 KB writes)",
            "-",
            raw / 1e6,
            100.0
        );
        for l in [4096u32, 64 * 1024] {
            let mut best = (0u32, f64::MAX);
            for _ in 0..3 {
                let r = stream_run(port, tls.clone(), "bench", &d.stream_id, l).await;
                if r.1 < best.1 {
                    best = r;
                }
            }
            let bps = best.0 as f64 / best.1;
            let rate = FILE as f64 / best.1;
            println!(
                "{:<28} {:>12.0} {:>12.1} {:>9.0}%",
                format!("MQTT stream, {} KB blocks", l / 1024),
                bps,
                rate / 1e6,
                100.0 * rate / raw
            );
        }
        let _ = stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    });
}
