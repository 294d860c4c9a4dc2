//! The host side of the CM7 agent run ([`crate::agent_script`]): a device running v1.1.0 in the
//! lower bank (booted by the `ferrota-boot` DBM on `ferrota-t2g`), one firmware job for a small
//! v1.2.0 image, served by a minimal Jobs / Streams model built on `ferrota-proto`'s encoders;
//! the host's `ferrota-agent` downloads, verifies and activates it, and every input it got
//! becomes the script the firmware replays. Deterministic: fixed latency, no loss.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use embedded_storage::nor_flash::ReadNorFlash;
use ferrota_agent::{
    Agent, AgentEvent, Config, Instant, RESUME_AREA, RESUME_AREA_LEN, Running, TransmitKind,
};
use ferrota_boot::Bank;
use ferrota_boot::log::{LOG_ADDRESS, LOG_SIZE, MarkerLog};
use ferrota_image::p256::ecdsa::SigningKey;
use ferrota_image::sflash_key::{SFLASH_KEY_ADDRESS, SFLASH_KEY_AREA, parse_key_object};
use ferrota_image::{BootKey, HardwareId};
use ferrota_proto::job::{
    ExecutionOut, FileOut, JobDocumentOut, JobMessageOut, JobStatus, OtaJobOut, Protocols,
};
use ferrota_proto::jobs_api::JobsRequest;
use ferrota_proto::status::UpdateRequest;
use ferrota_proto::stream::StreamRequest;
use ferrota_proto::topic::{Encoding, JobRef, JobsTopic, Reply, StreamOp, Topic, TopicKind};
use ferrota_sim::service::data_blocks;
use ferrota_t2g::{Device, WorkFlashView};

use crate::agent_script::{self as script, Entry, HEADER, Kind};
use crate::export::{Load, windows};
use crate::map::MPS2_AN500;
use crate::matrix::{BOARD_ID, Flaw, bank_image, install, provisioned};
use crate::report::{self, Line};

/// The thing name.
pub const THING: &str = "cm7-agent-1";
/// The job id.
pub const JOB: &str = "ota-cm7-1";
/// The stream name.
pub const STREAM: &str = "ota-cm7-1-stream";
/// The update's file: the CM0+ region and 64 KB more (128 KB, 32 blocks of 4 KB).
pub const IMAGE_LEN: usize = 0x2_0000;
/// One-way latency of the modelled network.
pub const LATENCY: Duration = Duration::from_millis(25);
/// Gap between two data blocks on the link.
pub const PER_BLOCK: Duration = Duration::from_millis(2);

/// The pinned code-signing key (`ferrota_sim::keys::code_signing_key`, a fixed test scalar).
pub fn code_signing_key() -> SigningKey {
    ferrota_sim::keys::code_signing_key().clone()
}

pub use ferrota_sim::platform::DevPlatform;

fn log(dev: &mut Device) -> MarkerLog<WorkFlashView<'_>> {
    MarkerLog::new(dev.work_flash_range(LOG_ADDRESS, LOG_SIZE).expect("log")).expect("log")
}

/// Boots `dev` as the chip does: the DBM decides and persists, the bank is mapped
/// (`ferrota_sim::platform::boot_for_agent`).
fn boot(dev: &mut Device, key: &BootKey) -> Running {
    ferrota_sim::platform::boot_for_agent(dev, key, HardwareId::new(BOARD_ID))
        .unwrap_or_else(|e| panic!("the v1 device boots: {e}"))
}

/// A status update the device published.
#[derive(Debug, Clone)]
pub struct Update {
    /// The job.
    pub job: String,
    /// The JSON.
    pub payload: String,
}

/// The Jobs / Streams model: one firmware job.
struct Service {
    file: Vec<u8>,
    signature: String,
    status: JobStatus,
    version: u64,
    updates: Vec<Update>,
}

type Msg = (String, Vec<u8>);

impl Service {
    fn job_message(&self, token: Option<&str>) -> Vec<u8> {
        let mut buf = vec![0u8; 8192];
        let live = !self.status.is_terminal();
        let files = [FileOut {
            file_path: Some("/ota/image.bin"),
            file_size: self.file.len() as u32,
            file_id: 0,
            cert_file: Some("signer.crt"),
            file_type: Some(141),
            signature: Some(("sig-sha256-ecdsa", self.signature.as_str())),
            ..Default::default()
        }];
        let exec = live.then_some(ExecutionOut {
            job_id: JOB,
            thing_name: None,
            status: self.status,
            status_details: &[],
            queued_at: 1_795_635_657,
            started_at: None,
            last_updated_at: 1_795_635_717,
            version_number: self.version,
            execution_number: 1,
            job_document: JobDocumentOut::Ota(OtaJobOut {
                protocols: Protocols::MQTT,
                stream_name: Some(STREAM),
                files: &files,
            }),
        });
        let m = JobMessageOut {
            timestamp: 1_795_635_717,
            client_token: token,
            execution: exec,
            ferrota_timestamp: None,
        };
        let n = m.encode(&mut buf).expect("job document fits").len();
        buf.truncate(n);
        buf
    }

    /// A device publish; returns the messages for the device.
    fn handle(&mut self, topic: &str, payload: &[u8]) -> Vec<Msg> {
        let t = Topic::parse(topic).expect("device publishes valid topics");
        match t.kind {
            TopicKind::Jobs(JobsTopic::Describe {
                job: JobRef::Next,
                reply: Reply::Request,
            }) => {
                let req = JobsRequest::parse(payload).expect("valid request");
                let tok = req.client_token.map(|c| c.raw().to_string());
                vec![(
                    Topic::next_get_accepted(THING).to_string(),
                    self.job_message(tok.as_deref()),
                )]
            }
            TopicKind::Jobs(JobsTopic::Update {
                job,
                reply: Reply::Request,
            }) => {
                let req = UpdateRequest::parse(payload).expect("valid update");
                self.updates.push(Update {
                    job: job.to_string(),
                    payload: String::from_utf8_lossy(payload).into_owned(),
                });
                self.status = req.status;
                self.version += 1;
                let mut out = vec![(
                    Topic::update(THING, job, Reply::Accepted).to_string(),
                    b"{\"timestamp\":1}".to_vec(),
                )];
                if self.status.is_terminal() {
                    out.push((
                        Topic::notify_next(THING).to_string(),
                        self.job_message(None),
                    ));
                }
                out
            }
            TopicKind::Stream {
                stream,
                op: StreamOp::Get,
                encoding: Encoding::Cbor,
            } if stream == STREAM => {
                let req = StreamRequest::decode(payload).expect("valid request");
                req.validate().expect("request within AWS limits");
                let data = Topic::stream(THING, stream, StreamOp::Data, Encoding::Cbor).to_string();
                data_blocks(&data, &req, &self.file)
            }
            _ => vec![],
        }
    }
}

/// What the host run produced.
pub struct HostRun {
    /// `-device loader` files for the firmware.
    pub loads: Vec<Load>,
    /// The host agent's lines (what the firmware must print).
    pub lines: Vec<String>,
    /// Status updates the service received.
    pub updates: Vec<Update>,
    /// Script entries.
    pub entries: usize,
    /// Script bytes.
    pub script_bytes: usize,
}

fn drain(
    agent: &mut Agent<'_, BootKey>,
    svc: &mut Service,
    now: Instant,
    queue: &mut BTreeMap<(Instant, u64), Msg>,
    seq: &mut u64,
    lines: &mut Vec<String>,
) -> bool {
    let mut buf = [0u8; 512];
    let mut link = now;
    while let Some(t) = agent.poll_transmit(&mut buf) {
        lines.push(script::transmit_line(&t, &buf).as_str().to_owned());
        if let TransmitKind::Publish { len } = t.kind {
            for (topic, payload) in svc.handle(&t.topic, &buf[..len]) {
                let at = if topic.ends_with("/data/cbor") {
                    link = link + PER_BLOCK;
                    link + LATENCY * 2
                } else {
                    now + LATENCY * 2
                };
                *seq += 1;
                queue.insert((at, *seq), (topic, payload));
            }
        }
    }
    let mut reset = false;
    while let Some(e) = agent.poll_event() {
        lines.push(script::event_line(&e).as_str().to_owned());
        reset |= e == AgentEvent::ResetRequested;
    }
    reset
}

/// Builds the device, runs the host agent through one update, writes the script and the
/// images into `dir`.
pub fn host_run(dir: &Path) -> std::io::Result<HostRun> {
    std::fs::create_dir_all(dir)?;
    let board = MPS2_AN500;
    let mut dev = provisioned();
    let v1 = bank_image(1, Flaw::None, false);
    install(&mut dev, Bank::Lower, &v1);
    let mut obj = vec![0u8; SFLASH_KEY_AREA];
    dev.set_work_err_silent(true).expect("flash ctl");
    dev.read(SFLASH_KEY_ADDRESS, &mut obj).expect("sflash");
    let key = parse_key_object(&obj).expect("key object");
    let running = boot(&mut dev, &key);

    let mut file = bank_image(2, Flaw::None, false);
    file.truncate(IMAGE_LEN);
    let sig = ferrota_image::ota::sign_file(&code_signing_key(), &file).expect("signs");
    let mut b64 = [0u8; 96];
    let signature = sig.to_base64(&mut b64).to_string();

    // The state the firmware starts from: SFlash and marker log, resume area, inactive bank.
    let mut loads = Vec::new();
    let mut put = |name: &str, addr: u32, bytes: &[u8]| -> std::io::Result<()> {
        let f = dir.join(format!("{name}.bin"));
        std::fs::write(&f, bytes)?;
        loads.push(Load { file: f, addr });
        Ok(())
    };
    for (name, addr, bytes) in windows(&dev).expect("windows") {
        if name == "sflash" || name == "marker-log" {
            put(name, board.translate(addr).expect("window"), &bytes)?;
        }
    }
    let mut resume = vec![0u8; RESUME_AREA_LEN as usize];
    dev.work_flash_range(RESUME_AREA, RESUME_AREA_LEN)
        .expect("resume")
        .read(0, &mut resume)
        .expect("read");
    put("resume", script::RESUME, &resume)?;
    let span = IMAGE_LEN.div_ceil(0x8000) * 0x8000;
    let mut bank = vec![0u8; span];
    dev.inactive_bank()
        .expect("bank")
        .read(0, &mut bank)
        .expect("read");
    put("inactive-bank", script::INACTIVE_BANK, &bank)?;

    // The script header.
    let code_key = code_signing_key();
    let mut cfg = Config::new(THING, &key, *code_key.verifying_key());
    cfg.hardware = HardwareId::new(BOARD_ID);
    let mut s = vec![0u8; 1 << 20];
    let w = |s: &mut [u8], at: usize, v: u32| s[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let start = Instant::from_millis(1000);
    w(&mut s, 0, script::MAGIC);
    w(&mut s, script::at::START, start.as_micros() as u32);
    w(
        &mut s,
        script::at::START + 4,
        (start.as_micros() >> 32) as u32,
    );
    w(
        &mut s,
        script::at::BANK,
        u32::from(running.bank == Bank::Upper),
    );
    w(&mut s, script::at::BLOCK_SIZE, cfg.block_size);
    w(
        &mut s,
        script::at::BLOCKS_PER_REQUEST,
        cfg.blocks_per_request,
    );
    w(&mut s, script::at::IN_FLIGHT, cfg.requests_in_flight as u32);
    let sec1 = code_key.verifying_key().to_sec1_point(false);
    s[script::at::CODE_KEY..script::at::CODE_KEY + 65].copy_from_slice(sec1.as_bytes());
    s[script::at::THING..script::at::THING + THING.len()].copy_from_slice(THING.as_bytes());
    s[script::at::HARDWARE..script::at::HARDWARE + BOARD_ID.len()]
        .copy_from_slice(BOARD_ID.as_bytes());
    let rec = running.record.encode();
    s[script::at::RECORD..script::at::RECORD + rec.len()].copy_from_slice(&rec);
    let mut pos = HEADER;
    let mut entries = 0u32;
    let mut push = |s: &mut Vec<u8>, e: Entry<'_>| {
        while pos + 64 + e.topic.len() + e.payload.len() > s.len() {
            let n = s.len() * 2;
            s.resize(n, 0);
        }
        script::push_entry(s, &mut pos, &e).expect("room");
        entries += 1;
    };

    // The exchange.
    let mut svc = Service {
        file,
        signature,
        status: JobStatus::Queued,
        version: 1,
        updates: vec![],
    };
    let mut lines = Vec::new();
    let mut agent =
        Agent::new(start, cfg, running, &mut DevPlatform(&mut dev)).expect("agent starts");
    lines.push("new ok".to_owned());
    let mut queue: BTreeMap<(Instant, u64), Msg> = BTreeMap::new();
    let mut seq = 0u64;
    let mut now = start;
    push(
        &mut s,
        Entry {
            kind: Kind::Connected,
            at: now.as_micros(),
            topic: "",
            payload: &[],
        },
    );
    agent.handle_connected(now);
    let mut done = drain(&mut agent, &mut svc, now, &mut queue, &mut seq, &mut lines);
    let mut steps = 0;
    while !done && steps < 10_000 {
        steps += 1;
        let next_q = queue.keys().next().map(|k| k.0);
        let next_t = agent.poll_timeout();
        match (next_q, next_t) {
            (_, Some(t)) if next_q.is_none_or(|q| t < q) => {
                now = now.max(t);
                push(
                    &mut s,
                    Entry {
                        kind: Kind::Timeout,
                        at: now.as_micros(),
                        topic: "",
                        payload: &[],
                    },
                );
                agent.handle_timeout(now, &mut DevPlatform(&mut dev));
            }
            (Some(_), _) => {
                let (&k, _) = queue.iter().next().expect("non-empty");
                let (topic, payload) = queue.remove(&k).expect("present");
                now = now.max(k.0);
                push(
                    &mut s,
                    Entry {
                        kind: Kind::Message,
                        at: now.as_micros(),
                        topic: &topic,
                        payload: &payload,
                    },
                );
                agent.handle_message(now, &topic, &payload, &mut DevPlatform(&mut dev));
            }
            (None, None) => break,
            (None, Some(_)) => unreachable!("handled above"),
        }
        done = drain(&mut agent, &mut svc, now, &mut queue, &mut seq, &mut lines);
    }
    drop(agent);
    let snap = log(&mut dev).read().expect("log");
    // The host agent itself must have done the update: a TRIAL of the upper bank.
    assert!(
        snap.state.trial.is_some_and(|t| t.bank == Bank::Upper),
        "host agent did not activate: {:?} / {lines:?}",
        snap.state
    );
    let mut l = Line::new();
    l.push("final");
    report::log(&mut l, &snap);
    lines.push(l.as_str().to_owned());

    w(&mut s, script::at::ENTRIES, entries);
    w(&mut s, script::at::TOTAL, pos as u32);
    s.truncate(pos);
    assert!(pos as u32 <= script::SCRIPT_MAX, "script too large");
    let f = dir.join("script.bin");
    std::fs::write(&f, &s)?;
    loads.push(Load {
        file: f,
        addr: script::SCRIPT,
    });
    std::fs::write(dir.join("expected.txt"), lines.join("\n") + "\n")?;
    Ok(HostRun {
        loads,
        lines,
        updates: svc.updates,
        entries: entries as usize,
        script_bytes: pos,
    })
}
