//! Issue 18, item 4: `GET /metrics`. A device over an in-memory pipe (the real session, the
//! real services, a memory store) takes a job and downloads blocks; the scrape, parsed as
//! exposition text, shows what it did and what the store holds. The TLS counters are checked
//! end to end over real mutual TLS ([`TestServer`]). The Grafana dashboard in `docs/grafana`
//! is checked against a scrape: every metric its queries name exists.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ferrota_proto::JobStatus;
use ferrota_server::admin::Admin;
use ferrota_server::store::rollout::RolloutStatus;
use ferrota_server::store::{
    Execution, Job, JobState, MemoryStore, OtaRecord, RolloutProgress, RolloutRecord, RolloutStore,
    SharedStore, SqliteStore, Store, StreamRecord, Thing,
};
use ferrota_server::{Broker, Identity, Limits, Policy, SessionEnd, serve_connection};
use rumqttc::{Connect, Packet, Publish, QoS, Subscribe};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use crate::common;

// ---- A small reader of the exposition format (OpenMetrics text) ----

/// One sample: metric name and its labels.
type Key = (String, BTreeMap<String, String>);

/// A scrape read strictly: every sample belongs to a family declared by a `# TYPE` line
/// before it (its name is the family's, or the family's with a suffix its type allows), label
/// values are quoted, values are numbers, the text ends with `# EOF`. Panics naming the line
/// otherwise.
#[derive(Debug, Default)]
struct Scrape {
    samples: BTreeMap<Key, f64>,
    /// Family name → type.
    families: BTreeMap<String, String>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut s = Scrape::default();
        let mut eof = false;
        for line in text.lines() {
            assert!(!eof, "a line after # EOF: {line:?}");
            if line == "# EOF" {
                eof = true;
                continue;
            }
            if let Some(rest) = line.strip_prefix("# ") {
                let mut w = rest.splitn(3, ' ');
                let (kind, name) = (w.next().unwrap(), w.next().expect("a family name"));
                match kind {
                    "TYPE" => {
                        let t = w.next().expect("a type").to_string();
                        assert!(
                            ["counter", "gauge", "histogram", "info", "unknown"]
                                .contains(&t.as_str()),
                            "type {t}"
                        );
                        assert!(
                            s.families.insert(name.to_string(), t).is_none(),
                            "family {name} declared twice"
                        );
                    }
                    "HELP" | "UNIT" => assert!(w.next().is_some(), "empty {kind}: {line}"),
                    _ => panic!("unknown comment line {line:?}"),
                }
                continue;
            }
            let (key, value) = Self::sample(line);
            let family = s
                .families
                .iter()
                .find(|(f, t)| {
                    let suffixes: &[&str] = match t.as_str() {
                        "counter" => &["_total", "_created"],
                        "histogram" => &["_bucket", "_count", "_sum", "_created"],
                        "info" => &["_info"],
                        _ => &[""],
                    };
                    suffixes.iter().any(|x| key.0 == format!("{f}{x}"))
                })
                .unwrap_or_else(|| panic!("sample of no declared family: {line:?}"));
            assert!(
                family.0.starts_with("ferrota_"),
                "not prefixed: {}",
                family.0
            );
            assert!(
                s.samples.insert(key, value).is_none(),
                "sample twice: {line:?}"
            );
        }
        assert!(eof, "no # EOF at the end");
        s
    }

    fn sample(line: &str) -> (Key, f64) {
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("no value: {line:?}"),
        };
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name:?}"
        );
        let mut labels = BTreeMap::new();
        let rest = if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}').unwrap_or_else(|| panic!("no }}: {line:?}"));
            for pair in r[..end].split(',').filter(|p| !p.is_empty()) {
                let (k, v) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("label {pair:?}"));
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or_else(|| panic!("unquoted label value {pair:?}"));
                labels.insert(k.to_string(), v.to_string());
            }
            &r[end + 1..]
        } else {
            rest
        };
        let v = rest.trim().split(' ').next().unwrap();
        let value = match v {
            "+Inf" => f64::INFINITY,
            v => v
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("value {v:?}: {line:?}")),
        };
        ((name.to_string(), labels), value)
    }

    /// The value of `name` with exactly `labels`; panics when there is none.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let key = (
            name.to_string(),
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        *self
            .samples
            .get(&key)
            .unwrap_or_else(|| panic!("no sample {key:?} in {:#?}", self.samples.keys()))
    }

    /// Every sample of `name`, by its labels.
    fn all(&self, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        self.samples
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|((_, l), v)| (l.clone(), *v))
            .collect()
    }

    /// The metric names a query may use: every sample name.
    fn names(&self) -> BTreeSet<String> {
        self.samples.keys().map(|(n, _)| n.clone()).collect()
    }
}

#[test]
fn the_reader_refuses_what_is_not_exposition_text() {
    let ok = "# TYPE ferrota_x counter\n# HELP ferrota_x X.\nferrota_x_total{a=\"b\"} 3\n# EOF\n";
    assert_eq!(Scrape::parse(ok).get("ferrota_x_total", &[("a", "b")]), 3.0);
    for bad in [
        "# TYPE ferrota_x counter\nferrota_x_total 3\n",
        "ferrota_x_total 3\n# EOF\n",
        "# TYPE ferrota_x counter\nferrota_x_total{a=b} 3\n# EOF\n",
        "# TYPE ferrota_x counter\nferrota_x_total three\n# EOF\n",
        "# TYPE ferrota_x gauge\nferrota_x_total 3\n# EOF\n",
    ] {
        let r = std::panic::catch_unwind(|| Scrape::parse(bad));
        assert!(r.is_err(), "accepted: {bad:?}");
    }
}

// ---- In memory: a broker over a memory store, sessions over pipes, the API's router ----

const TOKEN: &str = "metrics-token";

struct Rig {
    broker: Arc<Broker>,
    admin: Arc<Admin>,
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn new(things: &[&str]) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::new();
        for n in things {
            store
                .create_thing(&Thing {
                    name: n.to_string(),
                    groups: vec![],
                    created_at: 0,
                })
                .await
                .unwrap();
        }
        let blobs = ferrota_server::store::DirBlobStore::new(dir.path()).unwrap();
        let broker = Broker::new(
            Arc::new(store),
            Arc::new(blobs),
            Policy::with_extra(&[], &[]),
            Limits::default(),
        );
        let admin = Arc::new(Admin {
            services: broker.services.clone(),
            sessions: broker.clone(),
            ca: None,
            endpoint: "localhost".into(),
            port: 8883,
        });
        Rig {
            broker,
            admin,
            _dir: dir,
        }
    }

    /// `GET /metrics` with `token` (none: no header): status, content type, body.
    async fn get(&self, token: Option<&str>) -> (u16, String, String) {
        use tower::ServiceExt as _;
        let mut r = axum::http::Request::builder().method("GET").uri("/metrics");
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        let router = ferrota_server::api::router(self.admin.clone(), TOKEN.into());
        let resp = router
            .oneshot(r.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .unwrap();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn scrape(&self) -> Scrape {
        let (status, ct, body) = self.get(Some(TOKEN)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(ct, ferrota_server::metrics::CONTENT_TYPE);
        Scrape::parse(&body)
    }
}

/// A device's side of an MQTT session over a pipe.
struct Dev {
    io: DuplexStream,
    buf: BytesMut,
    task: tokio::task::JoinHandle<SessionEnd>,
    pkid: u16,
}

impl Dev {
    async fn connect(b: &Arc<Broker>, thing: &str) -> Dev {
        let (client, server) = tokio::io::duplex(1 << 20);
        let id = Identity {
            thing: thing.into(),
            cert_id: None,
        };
        let task = tokio::spawn(serve_connection(b.clone(), server, id));
        let mut d = Dev {
            io: client,
            buf: BytesMut::new(),
            task,
            pkid: 0,
        };
        let mut c = Connect::new(thing);
        c.keep_alive = 60;
        d.send(Packet::Connect(c)).await;
        match d.recv().await {
            Packet::ConnAck(a) => assert_eq!(a.code, rumqttc::ConnectReturnCode::Success),
            p => panic!("{p:?}"),
        }
        d
    }

    async fn send(&mut self, p: Packet) {
        let mut b = BytesMut::new();
        p.write(&mut b, usize::MAX).unwrap();
        self.io.write_all(&b).await.unwrap();
    }

    async fn recv(&mut self) -> Packet {
        loop {
            match Packet::read(&mut self.buf, 1 << 20) {
                Ok(p) => return p,
                Err(rumqttc::Error::InsufficientBytes(_)) => {}
                Err(e) => panic!("{e}"),
            }
            let n = tokio::time::timeout(common::T, self.io.read_buf(&mut self.buf))
                .await
                .expect("a packet in time")
                .unwrap();
            assert!(n > 0, "the server closed the session");
        }
    }

    /// A PINGREQ and its PINGRESP: the session handles packets in order, so everything sent
    /// before was handled (and counted) when this returns.
    async fn ping(&mut self) {
        self.send(Packet::PingReq).await;
        match self.recv().await {
            Packet::PingResp => {}
            p => panic!("{p:?}"),
        }
    }

    fn next_pkid(&mut self) -> u16 {
        self.pkid += 1;
        self.pkid
    }

    async fn subscribe(&mut self, filter: &str) {
        let pkid = self.next_pkid();
        let mut s = Subscribe::new(filter, QoS::AtLeastOnce);
        s.pkid = pkid;
        self.send(Packet::Subscribe(s)).await;
        match self.recv().await {
            Packet::SubAck(a) => assert_eq!(a.pkid, pkid),
            p => panic!("{p:?}"),
        }
    }

    /// Publishes at QoS 1; returns the PUBLISHes received until its PUBACK and `then` more
    /// after it (each acknowledged).
    async fn publish(&mut self, topic: &str, payload: &str, then: usize) -> Vec<Publish> {
        let pkid = self.next_pkid();
        let mut p = Publish::new(topic, QoS::AtLeastOnce, payload.as_bytes().to_vec());
        p.pkid = pkid;
        self.send(Packet::Publish(p)).await;
        let mut got = Vec::new();
        let mut acked = false;
        while !acked || got.len() < then {
            match self.recv().await {
                Packet::PubAck(a) if a.pkid == pkid => acked = true,
                Packet::Publish(p) => {
                    if p.qos == QoS::AtLeastOnce {
                        self.send(Packet::PubAck(rumqttc::PubAck::new(p.pkid)))
                            .await;
                    }
                    got.push(p);
                }
                p => panic!("{p:?}"),
            }
        }
        got
    }
}

fn firmware(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 253) as u8).collect()
}

/// A device connects, subscribes, takes its OTA job (start-next) and downloads a 3,000-byte
/// file in 1 KiB blocks: the scrape counts the connection, each packet type both ways, three
/// blocks and 3,000 bytes, and reads one IN_PROGRESS execution from the store; the store
/// calls the services made were timed. After DISCONNECT the connection is no longer open.
#[tokio::test]
async fn a_scrape_shows_what_a_device_did_and_what_the_store_holds() {
    let rig = Rig::new(&["dev-1", "dev-2"]).await;
    let before = rig.scrape().await;
    assert_eq!(before.get("ferrota_mqtt_connections_open", &[]), 0.0);
    assert_eq!(before.get("ferrota_stream_sent_bytes_total", &[]), 0.0);
    assert_eq!(before.get("ferrota_store_up", &[]), 1.0);

    let data = firmware(3000);
    let sha = rig.admin.put_file(&data).await.unwrap();
    let req = ferrota_server::admin::CreateOtaUpdate::new("up1")
        .description("metrics")
        .target("thing/dev-1")
        .target("thing/dev-2")
        .file(common::data_file("/ota/f.bin", sha));
    rig.admin.create_ota(&req).await.unwrap();

    let mut d = Dev::connect(&rig.broker, "dev-1").await;
    d.subscribe("$aws/things/dev-1/streams/+/data/json").await;
    let got = d
        .publish("$aws/things/dev-1/jobs/start-next", "{}", 1)
        .await;
    let accepted = got
        .iter()
        .find(|p| p.topic == "$aws/things/dev-1/jobs/start-next/accepted")
        .expect("start-next accepted");
    let v: serde_json::Value = serde_json::from_slice(&accepted.payload).unwrap();
    let stream = v["execution"]["jobDocument"]["afr_ota"]["streamname"]
        .as_str()
        .unwrap_or_else(|| panic!("no stream in {v}"))
        .to_string();
    let blocks = d
        .publish(
            &format!("$aws/things/dev-1/streams/{stream}/get/json"),
            r#"{"c":"m","f":0,"l":1024,"o":0,"n":3}"#,
            3,
        )
        .await;
    let data_blocks = blocks.iter().filter(|p| p.topic.ends_with("/data/json"));
    assert_eq!(data_blocks.count(), 3);
    let publishes_out = (got.len() + blocks.len()) as f64;
    let qos1 = got
        .iter()
        .chain(&blocks)
        .filter(|p| p.qos == QoS::AtLeastOnce)
        .count() as f64;
    d.ping().await;

    let s = rig.scrape().await;
    assert_eq!(s.get("ferrota_stream_blocks_sent_total", &[]), 3.0);
    assert_eq!(s.get("ferrota_stream_sent_bytes_total", &[]), 3000.0);
    assert_eq!(s.get("ferrota_mqtt_connections_open", &[]), 1.0);
    assert_eq!(s.get("ferrota_mqtt_connections_accepted_total", &[]), 1.0);
    let rx = |p: &str| s.get("ferrota_mqtt_messages_received_total", &[("packet", p)]);
    let tx = |p: &str| s.get("ferrota_mqtt_messages_sent_total", &[("packet", p)]);
    assert_eq!(rx("connect"), 1.0);
    assert_eq!(rx("subscribe"), 1.0);
    assert_eq!(rx("publish"), 2.0);
    assert_eq!(rx("puback"), qos1, "every QoS 1 message acknowledged");
    assert_eq!(rx("pingreq"), 1.0);
    assert_eq!(tx("connack"), 1.0);
    assert_eq!(tx("suback"), 1.0);
    assert_eq!(tx("puback"), 2.0);
    assert_eq!(tx("publish"), publishes_out);
    assert_eq!(tx("pingresp"), 1.0);
    assert_eq!(tx("unsuback"), 0.0);
    // Executions by state, read from the store: dev-1 took its job, dev-2 has not.
    let state = |st: &str| s.get("ferrota_job_executions", &[("state", st)]);
    assert_eq!(state("IN_PROGRESS"), 1.0);
    assert_eq!(state("QUEUED"), 1.0);
    assert_eq!(state("SUCCEEDED"), 0.0);
    assert_eq!(
        s.all("ferrota_job_executions").len(),
        ferrota_server::metrics::EXECUTION_STATES.len(),
        "every AWS state reported"
    );
    // Store latency: the start-next's reads and its update were timed, under their names.
    let count = |op: &str| {
        s.all("ferrota_store_operation_duration_seconds_count")
            .into_iter()
            .filter(|(l, _)| l["op"] == op)
            .map(|(_, v)| v)
            .sum::<f64>()
    };
    assert!(count("update_execution") >= 1.0, "{:?}", s.names());
    assert!(count("executions_of_thing") >= 1.0);
    for (l, _) in s.all("ferrota_store_operation_duration_seconds_count") {
        assert!(
            l["op"].chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "op label {l:?}"
        );
    }

    // The device finishes: SUCCEEDED in the next scrape.
    d.publish(
        "$aws/things/dev-1/jobs/AFR_OTA-up1/update",
        r#"{"status":"SUCCEEDED"}"#,
        1,
    )
    .await;
    d.send(Packet::Disconnect).await;
    assert_eq!(
        tokio::time::timeout(common::T, &mut d.task)
            .await
            .unwrap()
            .unwrap(),
        SessionEnd::Disconnected
    );
    let s = rig.scrape().await;
    assert_eq!(s.get("ferrota_mqtt_connections_open", &[]), 0.0);
    assert_eq!(s.get("ferrota_mqtt_connections_accepted_total", &[]), 1.0);
    assert_eq!(
        s.get(
            "ferrota_mqtt_messages_received_total",
            &[("packet", "disconnect")]
        ),
        1.0
    );
    assert_eq!(
        s.get("ferrota_job_executions", &[("state", "SUCCEEDED")]),
        1.0
    );
    assert_eq!(
        s.get("ferrota_job_executions", &[("state", "IN_PROGRESS")]),
        0.0
    );
}

/// `/metrics` needs the operator token like the API: none or a wrong one is AWS's 401 JSON,
/// and no metric leaks.
#[tokio::test]
async fn metrics_need_the_operator_token() {
    let rig = Rig::new(&[]).await;
    for t in [None, Some("wrong"), Some("")] {
        let (status, _, body) = rig.get(t).await;
        assert_eq!(status, 401, "{t:?}: {body}");
        assert!(!body.contains("ferrota_"), "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["code"], "UnauthorizedException");
    }
    let (status, ct, body) = rig.get(Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(body.ends_with("# EOF\n"));
}

/// A store that fails every read of the fleet's numbers: the scrape still answers, with the
/// process's counters and `ferrota_store_up 0`, and no fleet series.
#[tokio::test]
async fn a_failing_store_still_gives_the_process_metrics() {
    let store = MemoryStore::new();
    store.fail_next("execution_status_totals");
    let m = ferrota_server::metrics::Metrics::new();
    m.stream_block_sent(10);
    let text = m.encode(&store).await.unwrap();
    let s = Scrape::parse(&text);
    assert_eq!(s.get("ferrota_store_up", &[]), 0.0);
    assert_eq!(s.get("ferrota_stream_sent_bytes_total", &[]), 10.0);
    assert!(s.all("ferrota_job_executions").is_empty());
}

// ---- The store's two aggregate reads, on every store ----

fn rollout(job: &str, status: RolloutStatus) -> RolloutRecord {
    RolloutRecord {
        job_id: job.into(),
        plan: "{}".into(),
        status,
        wave: 0,
        state: "{}".into(),
        reason_code: None,
        comment: None,
        next_at: None,
        version: 1,
    }
}

async fn create_rollout(s: &dyn Store, id: &str, job: &str, targets: &[(&str, u32)]) {
    let stream = StreamRecord {
        stream_id: format!("S-{id}"),
        description: String::new(),
        version: 1,
        files: Vec::new(),
    };
    let j = Job {
        job_id: job.into(),
        document: "{}".into(),
        state: JobState::InProgress,
        ota_update_id: Some(id.into()),
        created_at: 10,
        in_progress_timeout_minutes: None,
    };
    let ota = OtaRecord {
        ota_update_id: id.into(),
        status: "CREATE_COMPLETE".into(),
        request: "{}".into(),
        job_id: job.into(),
        stream_id: stream.stream_id.clone(),
        created_at: 10,
        error_info: None,
    };
    let targets: Vec<(String, u32)> = targets.iter().map(|(t, w)| (t.to_string(), *w)).collect();
    s.create_ota_rollout(
        &stream,
        &j,
        &ota,
        &rollout(job, RolloutStatus::Running),
        &targets,
    )
    .await
    .unwrap();
}

async fn set_status(s: &dyn Store, job: &str, thing: &str, status: JobStatus) {
    let e = s.execution(job, thing).await.unwrap().unwrap();
    let next = Execution {
        status,
        version_number: e.version_number + 1,
        ..e.clone()
    };
    assert!(s.update_execution(&next, e.version_number).await.unwrap());
}

fn progress(ota: &str, wave: u32, status: Option<JobStatus>, count: u64) -> RolloutProgress {
    RolloutProgress {
        ota_update_id: ota.into(),
        wave,
        status,
        count,
    }
}

async fn aggregate_contract(s: &dyn Store) {
    assert!(s.execution_status_totals().await.unwrap().is_empty());
    assert!(s.rollout_progress().await.unwrap().is_empty());
    create_rollout(s, "u1", "j1", &[("a", 0), ("b", 0), ("c", 1)]).await;
    create_rollout(s, "u2", "j2", &[("a", 0)]).await;
    let things = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
    assert_eq!(
        s.release_targets("j1", &things(&["a", "b"]), 20)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.release_targets("j2", &things(&["a"]), 20).await.unwrap(),
        1
    );
    set_status(s, "j1", "a", JobStatus::InProgress).await;
    set_status(s, "j2", "a", JobStatus::InProgress).await;
    set_status(s, "j2", "a", JobStatus::Succeeded).await;

    let mut totals = s.execution_status_totals().await.unwrap();
    totals.sort_by_key(|(st, _)| st.as_str());
    assert_eq!(
        totals,
        [
            (JobStatus::InProgress, 1),
            (JobStatus::Queued, 1),
            (JobStatus::Succeeded, 1)
        ]
    );
    let mut p = s.rollout_progress().await.unwrap();
    p.sort_by_key(|x| {
        (
            x.ota_update_id.clone(),
            x.wave,
            x.status.map(|s| s.as_str()),
        )
    });
    assert_eq!(
        p,
        [
            progress("u1", 0, Some(JobStatus::InProgress), 1),
            progress("u1", 0, Some(JobStatus::Queued), 1),
            progress("u1", 1, None, 1),
            progress("u2", 0, Some(JobStatus::Succeeded), 1),
        ]
    );
    // A stopped rollout is not active: its targets leave the progress, its executions stay
    // in the totals.
    let mut r = s.rollout("j1").await.unwrap().unwrap();
    r.status = RolloutStatus::Stopped;
    r.version = 2;
    assert!(s.update_rollout(&r, 1).await.unwrap());
    let p = s.rollout_progress().await.unwrap();
    assert_eq!(p, [progress("u2", 0, Some(JobStatus::Succeeded), 1)]);
    assert_eq!(s.execution_status_totals().await.unwrap().len(), 3);
}

/// [`Store::execution_status_totals`] and [`ferrota_server::store::RolloutStore::rollout_progress`]
/// count the same on memory, SQLite and PostgreSQL.
#[tokio::test]
async fn every_store_counts_executions_and_rollout_progress_alike() {
    let dir = tempfile::tempdir().unwrap();
    let mut stores: Vec<(&str, SharedStore)> = vec![
        ("memory", Arc::new(MemoryStore::new())),
        (
            "sqlite",
            Arc::new(SqliteStore::open(&dir.path().join("m.db")).await.unwrap()),
        ),
    ];
    if let Some(pg) = common::postgres_store("metrics_aggregates").await {
        stores.push(("postgres", Arc::new(pg)));
    }
    for (name, s) in stores {
        eprintln!("store: {name}");
        aggregate_contract(&*s).await;
    }
}

/// The rollout gauges in a scrape: targets per wave and executions per state, labelled with
/// the OTA update id.
#[tokio::test]
async fn a_scrape_shows_each_active_rollouts_waves() {
    let store = MemoryStore::new();
    create_rollout(&store, "u1", "j1", &[("a", 0), ("b", 0), ("c", 1)]).await;
    store
        .release_targets("j1", &["a".to_string()], 20)
        .await
        .unwrap();
    let m = ferrota_server::metrics::Metrics::new();
    let s = Scrape::parse(&m.encode(&store).await.unwrap());
    let t = |w: &str| {
        s.get(
            "ferrota_rollout_targets",
            &[("ota_update_id", "u1"), ("wave", w)],
        )
    };
    assert_eq!(t("0"), 2.0);
    assert_eq!(t("1"), 1.0);
    assert_eq!(
        s.all("ferrota_rollout_executions"),
        [(
            [
                ("ota_update_id".to_string(), "u1".to_string()),
                ("state".to_string(), "QUEUED".to_string()),
                ("wave".to_string(), "0".to_string())
            ]
            .into(),
            1.0
        )]
    );
}

/// Every method of the store traits, defaults included, is forwarded and timed by
/// `TimedStore` under its own name: a new method with a default would otherwise silently run
/// the default over the wrapper (losing the store's own implementation) and go untimed.
#[test]
fn the_timed_store_forwards_every_store_method() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src/");
    let read = |f: &str| std::fs::read_to_string(format!("{src}{f}")).unwrap();
    // Without whitespace: rustfmt breaks long calls across lines.
    let timed: String = read("metrics/timed.rs")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut n = 0;
    for f in [
        "store/mod.rs",
        "store/rollout.rs",
        "store/shadow.rs",
        "store/attrs.rs",
        "store/access.rs",
    ] {
        let text = read(f);
        // The trait's methods only (access.rs goes on with the audit batcher's own).
        let text = text.split("#[cfg(test)]").next().unwrap();
        let text = text.split("pub struct AuditBatcher").next().unwrap();
        let mut rest = text;
        while let Some(i) = rest.find("async fn ") {
            rest = &rest[i + 9..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            n += 1;
            assert!(
                timed.contains(&format!("asyncfn{name}("))
                    && timed.contains(&format!("\"{name}\""))
                    && timed.contains(&format!("self.inner.{name}(")),
                "{f}: {name} is not forwarded and timed by TimedStore"
            );
        }
    }
    assert!(n >= 50, "only {n} store methods found");
}

// ---- The Grafana dashboard ----

/// `docs/grafana/ferrota.json` imports (a dashboard with a schema version, a Prometheus data
/// source variable, panels each with a title and queries) and every `ferrota_…` name its
/// queries use is a sample name of a real scrape (a renamed metric breaks this test).
#[tokio::test]
async fn the_grafana_dashboard_queries_only_metrics_that_exist() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/grafana/ferrota.json"
    );
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(d["schemaVersion"].as_u64().unwrap() >= 30);
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(d["uid"].as_str().is_some_and(|t| !t.is_empty()));

    // A scrape with every family populated: a session, a block, a rollout, a TLS failure.
    let rig = Rig::new(&["dev-1"]).await;
    create_rollout(&*rig.broker.store, "u1", "j1", &[("dev-1", 0)]).await;
    rig.broker
        .store
        .release_targets("j1", &["dev-1".to_string()], 20)
        .await
        .unwrap();
    rig.broker.services.metrics.stream_block_sent(1);
    rig.broker
        .services
        .metrics
        .tls_handshake(Err(ferrota_server::metrics::TlsFailure::NoCertificate));
    let _d = Dev::connect(&rig.broker, "dev-1").await;
    let names = rig.scrape().await.names();

    let mut exprs = Vec::new();
    let panels = d["panels"].as_array().unwrap();
    assert!(panels.len() >= 8, "{} panels", panels.len());
    for p in panels {
        if p["type"] == "row" {
            continue;
        }
        assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()), "{p}");
        let targets = p["targets"].as_array().unwrap_or_else(|| panic!("{p}"));
        assert!(!targets.is_empty());
        for t in targets {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    let mut used = BTreeSet::new();
    for e in &exprs {
        let mut rest = e.as_str();
        while let Some(i) = rest.find("ferrota_") {
            let n: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[i + n.len()..];
            assert!(names.contains(&n), "{e}: {n} is in no scrape ({names:?})");
            used.insert(n);
        }
    }
    // Each family appears on the dashboard.
    for family in [
        "ferrota_mqtt_connections_open",
        "ferrota_mqtt_connections_accepted_total",
        "ferrota_tls_handshakes_total",
        "ferrota_tls_handshake_failures_total",
        "ferrota_mqtt_messages_received_total",
        "ferrota_mqtt_messages_sent_total",
        "ferrota_stream_sent_bytes_total",
        "ferrota_stream_blocks_sent_total",
        "ferrota_job_executions",
        "ferrota_rollout_executions",
        "ferrota_rollout_targets",
        "ferrota_store_operation_duration_seconds_bucket",
    ] {
        assert!(used.contains(family), "{family} is on no panel");
    }
}

// ---- End to end over real mutual TLS ----

/// `GET /metrics` over the real HTTP listener: status and body.
async fn http_get(s: &common::TestServer, path: &str, token: &str) -> (u16, String) {
    let req = format!(
        "GET {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
    );
    let mut c = tokio::net::TcpStream::connect(s.http).await.unwrap();
    c.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(common::T, c.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_string(),
    )
}

/// A client certificate for `cn` issued by a CA of its own (named otherwise than Ferrota's).
fn foreign_certificate(cn: &str) -> (String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "Somebody else's CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_cert.pem(), &ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Polls the server's scrape until `ok` holds (the acceptor counts in its own task), for at
/// most 5 s.
async fn scrape_until(s: &common::TestServer, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = http_get(s, "/metrics", &s.token).await;
        assert_eq!(status, 200, "{body}");
        let sc = Scrape::parse(&body);
        if ok(&sc) {
            return sc;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "not reached: {:#?}",
            sc.samples
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A device connects over mutual TLS: one handshake, one open connection. A client without a
/// certificate is refused in the handshake and counted under `no_certificate`, nothing else;
/// one with an unknown CA's certificate under `unknown_ca`, another Ferrota fleet's under
/// `bad_certificate`, a revoked one under `revoked`. A
/// wrong token gets 401 from the real listener too.
#[tokio::test]
async fn tls_handshakes_and_their_failures_are_counted_end_to_end() {
    let s = common::TestServer::start().await;
    let (status, _) = http_get(&s, "/metrics", "not-the-token").await;
    assert_eq!(status, 401);
    let fail =
        |sc: &Scrape, r: &str| sc.get("ferrota_tls_handshake_failures_total", &[("reason", r)]);

    let b = s.thing("tls-1", &[]).await;
    let _c = common::connect(&s, &b).await;
    let sc = scrape_until(&s, |sc| sc.get("ferrota_mqtt_connections_open", &[]) == 1.0).await;
    assert_eq!(sc.get("ferrota_tls_handshakes_total", &[]), 1.0);
    assert_eq!(sc.get("ferrota_mqtt_connections_accepted_total", &[]), 1.0);
    for (l, v) in sc.all("ferrota_tls_handshake_failures_total") {
        assert_eq!(v, 0.0, "{l:?}");
    }

    // No client certificate: refused in the handshake.
    let tls = common::client_config(&s.ca_pem(), None);
    let mut c = common::connect_with(s.port, "tls-1", tls);
    let e = common::refused(&mut c).await;
    assert!(!e.contains("Success"), "{e}");
    let sc = scrape_until(&s, |sc| fail(sc, "no_certificate") == 1.0).await;
    assert_eq!(sc.get("ferrota_tls_handshakes_total", &[]), 2.0);
    for (l, v) in sc.all("ferrota_tls_handshake_failures_total") {
        if l["reason"] != "no_certificate" {
            assert_eq!(v, 0.0, "{l:?}");
        }
    }
    assert_eq!(sc.get("ferrota_mqtt_connections_accepted_total", &[]), 1.0);

    // A certificate of an unknown CA: `unknown_ca`.
    let (cert, key) = foreign_certificate("tls-1");
    let tls = common::client_config(&s.ca_pem(), Some((&cert, &key)));
    let mut c = common::connect_with(s.port, "tls-1", tls);
    common::refused(&mut c).await;
    scrape_until(&s, |sc| fail(sc, "unknown_ca") == 1.0).await;

    // Another Ferrota fleet's certificate: its CA has our CA's name but not its key, so the
    // signature check fails: `bad_certificate`.
    let other = common::TestServer::start().await;
    let foreign = other.thing("tls-1", &[]).await;
    other.stop().await;
    let tls = common::client_config(
        &s.ca_pem(),
        Some((&foreign.certificate_pem, &foreign.private_key_pem)),
    );
    let mut c = common::connect_with(s.port, "tls-1", tls);
    common::refused(&mut c).await;
    scrape_until(&s, |sc| fail(sc, "bad_certificate") == 1.0).await;

    // Its own certificate once revoked (the CRL reloaded): `revoked`.
    assert_eq!(s.admin.revoke_thing("tls-1").await.unwrap(), 1);
    common::refused_in_tls(&s, &b).await;
    let sc = scrape_until(&s, |sc| fail(sc, "revoked") == 1.0).await;
    assert_eq!(fail(&sc, "no_certificate"), 1.0);
    assert_eq!(fail(&sc, "unknown_ca"), 1.0);
    assert_eq!(fail(&sc, "bad_certificate"), 1.0);
    assert_eq!(fail(&sc, "other"), 0.0);
    let failed: f64 = sc
        .all("ferrota_tls_handshake_failures_total")
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(failed, 4.0);
    assert!(sc.get("ferrota_tls_handshakes_total", &[]) >= 5.0);
    s.stop().await;
}
