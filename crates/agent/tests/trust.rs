//! Signed update metadata on the device (issue #20, design §4): the agent on the simulated
//! board against a fixture service that serves a job with a bank image (file 0) and its
//! metadata file (fileType 142, file 1), with a signed timestamp in every Jobs reply. The
//! fixtures are `ferrota_sim::trust` (the same builders the CLI and the server use); the attack
//! suite against the real server is `crates/lab/tests/attacks/`.

use std::time::Duration;

use ferrota_agent::{AgentEvent, State};
use ferrota_boot::Bank;
use ferrota_boot::log::{BootState, LOG_ADDRESS, LOG_SIZE, MarkerLog};
use ferrota_manifest::store::{self, TRUST_AREA, TRUST_AREA_LEN, TrustState};
use ferrota_proto::job::JobStatus;
use ferrota_proto::topic::{JobRef, JobsTopic, Reply, Topic, TopicKind};
use ferrota_sim::harness::{AgentSettings, Msg, Service, Sim, THING};
use std::sync::Arc;

use ferrota_sim::images::ota::{Spec, TestImage, image};
use ferrota_sim::service::{JobsStreams, OtaFile, Times};
use ferrota_sim::trust::{
    self as fx, bundle_for, file_digest, file_signature, release_key_of, root_chain,
};
use ferrota_t2g::{Device, PowerCut};

const JOB: &str = "job-trust";
const STREAM: &str = "stream-trust";
/// Unix seconds at the harness's instant 0.
const EPOCH: u64 = 1_800_000_000;

/// How the fixture signs its Jobs replies.
#[derive(Clone)]
enum Ts {
    /// A fresh timestamp naming the job's metadata file, `lifetime` seconds, by root `root`.
    Valid { lifetime: u64, root: u32 },
    /// This text, always.
    Fixed(String),
    /// None.
    Absent,
}

/// The shared Jobs and Streams model (`ferrota_sim::service`) with one firmware job (`image`,
/// file 0, and `bundle`, file 1), a clock, a signed timestamp in every `$next/get` answer, and
/// the shadow reports.
struct Fixture {
    jobs: JobsStreams,
    image: Arc<TestImage>,
    bundle: Option<Vec<u8>>,
    ts: Ts,
    now_s: u64,
    reports: Vec<serde_json::Value>,
}

impl Fixture {
    fn new(image: Arc<TestImage>, bundle: Option<Vec<u8>>, ts: Ts) -> Self {
        let signature = match &bundle {
            // In Require mode the file signature is the release key's (design §4.1 step 8).
            Some(_) => file_signature(&image.file, release_key_of(1)),
            None => image.signature.clone(),
        };
        let mut files = vec![OtaFile {
            cert_file: None,
            ..OtaFile::image(image.file.clone(), Some(signature))
        }];
        if let Some(b) = &bundle {
            files.push(OtaFile {
                path: "/ota/image.suit".into(),
                size: b.len() as u32,
                file_type: 142,
                cert_file: None,
                signature: None,
                data: b.clone(),
            });
        }
        let mut jobs = JobsStreams::new(JOB, STREAM, files);
        jobs.times = Times {
            now: EPOCH,
            queued_at: EPOCH,
            last_updated_at: EPOCH,
        };
        Fixture {
            jobs,
            image,
            bundle,
            ts,
            now_s: EPOCH,
            reports: vec![],
        }
    }

    fn timestamp(&self) -> Option<String> {
        match &self.ts {
            Ts::Valid { lifetime, root } => Some(fx::timestamp(
                THING,
                self.now_s,
                self.now_s + lifetime,
                self.bundle.as_deref().map(file_digest),
                *root,
            )),
            Ts::Fixed(s) => Some(s.clone()),
            Ts::Absent => None,
        }
    }
}

impl Service for Fixture {
    fn set_now(&mut self, now: ferrota_agent::Instant) {
        self.now_s = EPOCH + now.as_micros() / 1_000_000;
        self.jobs.times.now = self.now_s;
    }

    fn handle(&mut self, topic: &str, payload: &[u8]) -> Vec<Msg> {
        let Ok(t) = Topic::parse(topic) else {
            return vec![];
        };
        match t.kind {
            TopicKind::Jobs(JobsTopic::Describe {
                job: JobRef::Next,
                reply: Reply::Request,
            }) => self.jobs.ferrota_timestamp = self.timestamp(),
            TopicKind::Shadow { .. } => {
                self.reports
                    .push(serde_json::from_slice(payload).expect("the report is JSON"));
                return vec![];
            }
            _ => {}
        }
        self.jobs.handle(topic, payload)
    }
}

fn require() -> AgentSettings {
    AgentSettings {
        require_manifest: true,
        ..AgentSettings::default()
    }
}

fn v1() -> Arc<TestImage> {
    image(Spec::new(1, 1))
}

fn v2() -> Arc<TestImage> {
    image(Spec::new(2, 2))
}

fn valid() -> Ts {
    Ts::Valid {
        lifetime: 3600,
        root: 1,
    }
}

/// The device's trust store as the next start reads it.
fn trust_store(dev: &Device) -> TrustState {
    let mut d = dev.clone();
    d.power_cycle();
    d.set_work_err_silent(true).unwrap();
    let mut area = d.work_flash_range(TRUST_AREA, TRUST_AREA_LEN).unwrap();
    store::read(&mut area, &fx::trusted_anchor()).expect("the store reads back")
}

/// The boot state as the next boot reads it.
fn boot_state(dev: &Device) -> BootState {
    let mut d = dev.clone();
    d.power_cycle();
    d.set_work_err_silent(true).unwrap();
    let mut log = MarkerLog::new(d.work_flash_range(LOG_ADDRESS, LOG_SIZE).unwrap()).unwrap();
    log.state().unwrap()
}

fn terminal(sim: &Sim<Fixture>) -> bool {
    sim.server.jobs.status.is_terminal()
}

fn last_update(sim: &Sim<Fixture>) -> &str {
    sim.server.jobs.updates.last().map_or("", |s| s.as_str())
}

/// The job ended FAILED with `reason` and no image block was ever sent.
fn assert_refused_before_any_image_block(sim: &Sim<Fixture>, reason: &str) {
    assert!(last_update(sim).contains(reason), "{}", last_update(sim));
    assert_eq!(sim.server.jobs.blocks_sent(0), 0);
}

fn run_job(fixture: Fixture, settings: AgentSettings, seed: u64) -> Sim<Fixture> {
    let mut sim = Sim::start(fixture, &v1(), seed, settings);
    assert!(
        sim.run_until(Duration::from_secs(600), terminal),
        "{:?} {:?}",
        sim.server.jobs.updates,
        sim.events
    );
    sim
}

#[test]
fn require_happy_path_succeeds_and_persists_the_sequence_across_a_reset() {
    let v2 = v2();
    let bundle = fx::bundle(&v2, 6);
    let sim = run_job(Fixture::new(v2, Some(bundle), valid()), require(), 1);
    let mut sim = sim;
    assert_eq!(
        sim.server.jobs.status,
        JobStatus::Succeeded,
        "{:?}",
        sim.server.jobs.updates
    );
    assert_eq!(sim.running_version(), self::v2().spec.version.0);
    assert!(sim.events.contains(&AgentEvent::ManifestAccepted {
        sequence: 6,
        version: self::v2().spec.version
    }));
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e, AgentEvent::TimestampAccepted { .. }))
    );
    assert!(!sim.events.contains(&AgentEvent::PlainSignatureAccepted));
    let s = trust_store(&sim.dev);
    assert_eq!((s.installed_seq, s.seen_seq), (6, 6));
    assert!(s.attested_time >= EPOCH);
    sim.reset_now();
    sim.run_until(Duration::from_secs(5), |_| false);
    assert_eq!(trust_store(&sim.dev).installed_seq, 6);
    let r = sim.server.reports.last().unwrap();
    assert_eq!(r["state"]["reported"]["trust"]["policy"], "require");
    assert_eq!(r["state"]["reported"]["trust"]["seq"], 6);
}

/// Each refusal ends FAILED with its reason before any image block was asked for, leaves the
/// bank unlocked (no LOCKED record) and the trust store as it was (blank).
#[test]
fn each_refusal_ends_before_any_image_block_with_stored_state_intact() {
    let img = v2();
    let good = || fx::bundle(&v2(), 6);
    let other_file_ts = fx::timestamp(
        THING,
        EPOCH + 1,
        EPOCH + 3600,
        Some(file_digest(&fx::bundle(&v2(), 7))),
        1,
    );
    type Case = (&'static str, Option<Vec<u8>>, Ts, Option<u32>, &'static str);
    let cases: Vec<Case> = vec![
        ("no manifest", None, valid(), None, "0x000000e3: 0x00000003"),
        (
            "no timestamp",
            Some(good()),
            Ts::Absent,
            None,
            "0x000000e3: 0x00000006",
        ),
        (
            "garbage timestamp",
            Some(good()),
            Ts::Fixed("AAAA".into()),
            None,
            "0x000000e3: 0x00000006",
        ),
        (
            "unreadable manifest",
            Some(vec![0xA0; 40]),
            valid(),
            None,
            "0x000000e3: 0x00000003",
        ),
        (
            "not a release key",
            Some(bundle_for(&img, 6, 0, None, fx::attacker_key(), &[])),
            valid(),
            None,
            "0x000000e3: 0x00000004",
        ),
        (
            "timestamp names another file",
            Some(good()),
            Ts::Fixed(other_file_ts),
            None,
            "0x000000e3: 0x0000000b",
        ),
        (
            "manifest expired",
            Some(bundle_for(
                &img,
                6,
                EPOCH - 10,
                None,
                release_key_of(1),
                &[],
            )),
            valid(),
            None,
            "0x000000e3: 0x00000008",
        ),
        (
            "sequence not newer",
            Some(fx::bundle(&img, 0)),
            valid(),
            None,
            "0x000000e3: 0x00000009",
        ),
        (
            "job size disagrees",
            Some(good()),
            valid(),
            Some(img.file.len() as u32 + 4096),
            "0x000000e3: 0x0000000a",
        ),
        (
            "another device",
            Some(bundle_for(
                &img,
                6,
                0,
                Some("thing-2"),
                release_key_of(1),
                &[],
            )),
            valid(),
            None,
            "rejected: 0x00000003",
        ),
        (
            "same version",
            Some(fx::bundle(&v1(), 6)),
            valid(),
            None,
            "rejected: 0x00000010",
        ),
        (
            "older version",
            Some(fx::bundle(&image(Spec::new(0, 1)), 6)),
            valid(),
            None,
            "rejected: 0x0000000f",
        ),
    ];
    for (name, bundle, ts, doc_size, reason) in cases {
        let mut f = Fixture::new(v2(), bundle, ts);
        if let Some(s) = doc_size {
            f.jobs.files[0].size = s;
        }
        let sim = run_job(f, require(), 3);
        assert_eq!(sim.server.jobs.status, JobStatus::Failed, "{name}");
        assert!(
            last_update(&sim).contains(reason),
            "{name}: {}",
            last_update(&sim)
        );
        assert_eq!(
            sim.server.jobs.blocks_sent(0),
            0,
            "{name}: image blocks sent"
        );
        assert!(
            !sim.events
                .iter()
                .any(|e| matches!(e, AgentEvent::DownloadStarted { .. })),
            "{name}"
        );
        let st = boot_state(&sim.dev);
        assert!(!st.is_locked(Bank::Upper), "{name}: LOCKED written");
        assert_eq!(st.trial, None, "{name}");
        let s = trust_store(&sim.dev);
        assert_eq!((s.installed_seq, s.seen_seq), (0, 0), "{name}");
        assert_eq!(sim.running_version(), v1().spec.version.0, "{name}");
    }
}

#[test]
fn aws_plain_accepts_the_plain_signature_and_says_so() {
    let mut sim = run_job(
        Fixture::new(v2(), None, Ts::Absent),
        AgentSettings::default(),
        4,
    );
    assert_eq!(sim.server.jobs.status, JobStatus::Succeeded);
    sim.run_until(Duration::from_secs(2), |_| false);
    assert!(sim.events.contains(&AgentEvent::PlainSignatureAccepted));
    let r = sim
        .server
        .reports
        .iter()
        .rev()
        .find(|r| r["state"]["reported"].get("trust").is_some())
        .expect("a report with the trust object");
    let t = &r["state"]["reported"]["trust"];
    assert_eq!(t["policy"], "aws-plain");
    assert_eq!(t["plain"], 1);
}

#[test]
fn a_reset_during_the_download_re_verifies_the_same_manifest() {
    let v2 = image(Spec::new(2, 2).len(0x10_0000));
    let bundle = fx::bundle(&v2, 6);
    let mut sim = Sim::start(Fixture::new(v2, Some(bundle), valid()), &v1(), 5, require());
    assert!(sim.run_until(Duration::from_secs(60), |s| {
        s.events
            .iter()
            .any(|e| matches!(e, AgentEvent::VersionAccepted { .. }))
            && s.server.jobs.blocks_sent(0) > 150
    }));
    sim.reset_now();
    assert!(sim.run_until(Duration::from_secs(600), terminal));
    assert_eq!(
        sim.server.jobs.status,
        JobStatus::Succeeded,
        "{:?}",
        sim.server.jobs.updates
    );
    let accepted = sim
        .events
        .iter()
        .filter(|e| matches!(e, AgentEvent::ManifestAccepted { sequence: 6, .. }))
        .count();
    assert_eq!(accepted, 2, "accepted again after the reset (same digest)");
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e, AgentEvent::DownloadStarted { resumed, .. } if *resumed > 0)),
        "{:?}",
        sim.events
    );
    assert_eq!(trust_store(&sim.dev).installed_seq, 6);
}

#[test]
fn a_stale_timestamp_is_refused() {
    let v2 = v2();
    let bundle = fx::bundle(&v2, 6);
    // Accepted at connect (time EPOCH+1000), then the job arrives with an older one.
    let newer = fx::timestamp(THING, EPOCH + 1000, EPOCH + 9000, None, 1);
    let older = fx::timestamp(
        THING,
        EPOCH + 500,
        EPOCH + 9000,
        Some(file_digest(&bundle)),
        1,
    );
    let mut f = Fixture::new(v2, Some(bundle), Ts::Fixed(newer));
    f.jobs.status = JobStatus::Succeeded; // nothing pending at first
    let mut sim = Sim::start(f, &v1(), 6, require());
    sim.run_until(Duration::from_secs(2), |_| false);
    assert!(
        sim.events
            .contains(&AgentEvent::TimestampAccepted { time: EPOCH + 1000 })
    );
    sim.server.jobs.status = JobStatus::Queued;
    sim.server.ts = Ts::Fixed(older);
    sim.disconnect_for(Duration::from_millis(100));
    assert!(sim.run_until(Duration::from_secs(60), terminal));
    assert_refused_before_any_image_block(&sim, "0x000000e3: 0x00000007");
}

#[test]
fn an_expired_timestamp_is_refused() {
    let v2 = v2();
    let bundle = fx::bundle(&v2, 6);
    // Valid for one minute; the job document comes back (the same timestamp) two minutes later.
    let ts = fx::timestamp(THING, EPOCH, EPOCH + 60, Some(file_digest(&bundle)), 1);
    let mut f = Fixture::new(v2, Some(bundle), Ts::Fixed(ts));
    f.jobs.status = JobStatus::Succeeded;
    let mut sim = Sim::start(f, &v1(), 7, require());
    sim.run_until(Duration::from_secs(120), |_| false);
    assert!(
        sim.events.iter().any(
            |e| matches!(e, AgentEvent::FreshnessLost { expired_at } if *expired_at == EPOCH + 60)
        ),
        "{:?}",
        sim.events
    );
    sim.server.jobs.status = JobStatus::Queued;
    sim.disconnect_for(Duration::from_millis(100));
    assert!(sim.run_until(Duration::from_secs(60), terminal));
    assert_refused_before_any_image_block(&sim, "0x000000e3: 0x00000007");
}

#[test]
fn freshness_timer_reports_fresh_false() {
    let mut f = Fixture::new(
        v2(),
        None,
        Ts::Valid {
            lifetime: 30,
            root: 1,
        },
    );
    f.jobs.status = JobStatus::Succeeded;
    let mut sim = Sim::start(f, &v1(), 8, require());
    sim.run_until(Duration::from_secs(2), |_| false);
    let fresh = |s: &Sim<Fixture>| {
        s.server.reports.last().unwrap()["state"]["reported"]["trust"]["fresh"].clone()
    };
    assert_eq!(
        fresh(&sim),
        true,
        "a report when the timestamp makes the device fresh"
    );
    assert!(sim.run_until(Duration::from_secs(60), |s| {
        s.events
            .iter()
            .any(|e| matches!(e, AgentEvent::FreshnessLost { .. }))
    }));
    sim.run_until(Duration::from_secs(1), |_| false);
    assert_eq!(fresh(&sim), false);
}

#[test]
fn a_deferred_timestamp_is_verified_after_the_root_rotation() {
    let v2 = v2();
    // Root v3 (new release and timestamp keys), integrated in the envelope; the timestamp is
    // signed by v3's timestamp key, which the device learns only from the bundle.
    let bundle = bundle_for(&v2, 6, 0, None, release_key_of(3), &root_chain(3));
    let mut f = Fixture::new(
        v2,
        Some(bundle),
        Ts::Valid {
            lifetime: 3600,
            root: 3,
        },
    );
    f.jobs.files[0].signature = Some(file_signature(&f.image.file, release_key_of(3)));
    let sim = run_job(f, require(), 9);
    assert_eq!(
        sim.server.jobs.status,
        JobStatus::Succeeded,
        "{:?}",
        sim.server.jobs.updates
    );
    assert!(sim.events.contains(&AgentEvent::RootUpdated { version: 3 }));
    assert_eq!(trust_store(&sim.dev).root.version(), 3);
}

#[test]
fn a_slow_download_fails_at_its_deadline() {
    let v2 = v2();
    let bundle = fx::bundle(&v2, 6);
    let settings = AgentSettings {
        min_rate: Some(1 << 30),
        rate_grace: Some(Duration::from_secs(1)),
        ..require()
    };
    let mut sim = Sim::start(Fixture::new(v2, Some(bundle), valid()), &v1(), 10, settings);
    sim.net.per_block = Duration::from_millis(50);
    assert!(sim.run_until(Duration::from_secs(600), terminal));
    assert!(
        last_update(&sim).contains("0x0000000e: 0x00000001"),
        "{}",
        last_update(&sim)
    );
    assert!(!sim.events.contains(&AgentEvent::Activated));
    assert_eq!(boot_state(&sim.dev).trial, None);
}

/// A power cut (clean or tearing) at every flash operation from the manifest's block to TRIAL
/// (the trust record, LOCKED, the resume record, every bank erase and write, the installed
/// sequence, the activating mark and TRIAL). The bank never boots without its manifest's sequence in
/// the store, the store always reads back old or new, and the update completes.
#[test]
fn power_cuts_from_the_manifest_block_to_trial() {
    let v2 = v2();
    let bundle = fx::bundle(&v2, 6);
    // A clean run to find the operation range.
    let mut sim = Sim::start(
        Fixture::new(v2, Some(bundle.clone()), valid()),
        &v1(),
        11,
        require(),
    );
    assert!(sim.run_until(Duration::from_secs(60), |s| {
        s.agent_state() == Some(State::FetchingManifest)
    }));
    let first = sim.dev.op_count();
    assert!(sim.run_until(Duration::from_secs(600), |s| {
        s.events.contains(&AgentEvent::Activated)
    }));
    let last = sim.dev.op_count();
    assert!(last > first);
    eprintln!("operations {first}..={last}");
    // Every operation, clean and torn: the two halves of the range on two threads (each run
    // is independent; most of its time is the device's P-256 checks).
    let mid = first + (last - first) / 2;
    std::thread::scope(|scope| {
        for (lo, hi) in [(first, mid), (mid + 1, last)] {
            let bundle = &bundle;
            scope.spawn(move || {
                for op in lo..=hi {
                    cut_and_recover(op, bundle);
                }
            });
        }
    });
}

/// One run of [`power_cuts_from_the_manifest_block_to_trial`]: the power cut at `op`, clean
/// and torn, then the update must still end SUCCEEDED with its sequence persisted.
fn cut_and_recover(op: u64, bundle: &[u8]) {
    for tear in [false, true] {
        let v2 = self::v2();
        let mut sim = Sim::start(
            Fixture::new(v2, Some(bundle.to_vec()), valid()),
            &v1(),
            11,
            require(),
        );
        sim.cut_power_at_op(if tear {
            PowerCut::Tear { op, seed: op }
        } else {
            PowerCut::Before(op)
        });
        assert!(
            sim.run_until(Duration::from_secs(600), |s| s.power_cuts > 0
                || terminal(s)),
            "op {op}"
        );
        let s = trust_store(&sim.dev);
        assert!(matches!(s.seen_seq, 0 | 6), "op {op}: {}", s.seen_seq);
        assert!(
            matches!(s.installed_seq, 0 | 6),
            "op {op}: {}",
            s.installed_seq
        );
        let st = boot_state(&sim.dev);
        if st.trial.is_some() {
            assert_eq!(
                s.installed_seq, 6,
                "op {op} tear {tear}: TRIAL without its sequence"
            );
        }
        assert!(
            sim.run_until(Duration::from_secs(900), terminal),
            "op {op} tear {tear}: {:?}",
            sim.server.jobs.updates
        );
        assert_eq!(
            sim.server.jobs.status,
            JobStatus::Succeeded,
            "op {op} tear {tear}: {:?}",
            sim.server.jobs.updates
        );
        assert_eq!(sim.running_version(), self::v2().spec.version.0);
        assert_eq!(
            trust_store(&sim.dev).installed_seq,
            6,
            "op {op} tear {tear}"
        );
    }
}

#[test]
fn require_needs_an_anchor_and_a_hardware_id() {
    use ferrota_agent::{ConfigError, TrustPolicy};
    let mut c = ferrota_sim::harness::config(require());
    assert_eq!(c.validate(), Ok(()));
    c.trust.anchor = None;
    assert_eq!(c.validate(), Err(ConfigError::TrustAnchor));
    let mut c = ferrota_sim::harness::config(require());
    c.hardware = None;
    assert_eq!(c.validate(), Err(ConfigError::TrustHardware));
    let mut c = ferrota_sim::harness::config(AgentSettings::default());
    assert_eq!(c.trust.policy, TrustPolicy::AwsPlain);
    assert_eq!(c.validate(), Ok(()));
    c.trust.min_rate = 0;
    assert_eq!(c.validate(), Err(ConfigError::TrustRate));
}

/// A metadata file in AwsPlain mode is enforced too: without an anchor it cannot be verified,
/// so the job is refused (sub 3) before any image block, never installed on the plain signature.
#[test]
fn aws_plain_does_not_ignore_a_manifest_it_cannot_verify() {
    let v2 = v2();
    let bundle = fx::bundle(&v2, 6);
    let sim = run_job(
        Fixture::new(v2, Some(bundle), Ts::Absent),
        AgentSettings::default(),
        12,
    );
    assert_refused_before_any_image_block(&sim, "0x000000e3: 0x00000003");
    assert!(!sim.events.contains(&AgentEvent::PlainSignatureAccepted));
}

/// A root that revokes boot-key slots: after the confirm the agent asks the board to revoke
/// them, and again at every start while the trusted root's mask is non-zero.
#[test]
fn a_root_revoking_boot_keys_asks_the_board_after_the_confirm_and_at_start() {
    let v2 = v2();
    let bundle = bundle_for(&v2, 6, 0, None, release_key_of(2), &[fx::root(2, 0b10)]);
    let mut f = Fixture::new(v2, Some(bundle), valid());
    f.jobs.files[0].signature = Some(file_signature(&f.image.file, release_key_of(2)));
    let mut sim = run_job(f, require(), 13);
    assert_eq!(
        sim.server.jobs.status,
        JobStatus::Succeeded,
        "{:?}",
        sim.server.jobs.updates
    );
    let confirmed = sim
        .events
        .iter()
        .position(|e| matches!(e, AgentEvent::Confirmed { .. }))
        .expect("confirmed");
    let revoke = sim
        .events
        .iter()
        .rposition(|e| *e == AgentEvent::RevokeBootKeys { mask: 0b10 })
        .expect("revocation asked");
    assert!(revoke > confirmed);
    let n = sim.events.len();
    sim.reset_now();
    assert!(sim.events[n..].contains(&AgentEvent::RevokeBootKeys { mask: 0b10 }));
    assert_eq!(trust_store(&sim.dev).root.revoked_boot_keys(), 0b10);
}

#[test]
fn a_frozen_timestamp_is_refused_after_a_long_disconnection_and_a_reset() {
    let v2 = v2();
    let bundle = fx::bundle(&v2, 6);
    // The attacker recorded a reply valid for an hour; the device got it, then was cut off for
    // two hours and reset. Its clock floor followed its uptime (a checkpoint every 15 min), so
    // after the reset the recorded reply is expired although no newer timestamp ever came.
    let recorded = fx::timestamp(THING, EPOCH, EPOCH + 3600, Some(file_digest(&bundle)), 1);
    let mut f = Fixture::new(v2, Some(bundle), Ts::Fixed(recorded));
    f.jobs.status = JobStatus::Succeeded;
    let mut sim = Sim::start(f, &v1(), 12, require());
    sim.run_until(Duration::from_secs(2), |_| false);
    assert!(
        sim.events
            .contains(&AgentEvent::TimestampAccepted { time: EPOCH })
    );
    sim.disconnect_for(Duration::from_secs(2 * 3600));
    sim.run_until(Duration::from_secs(2 * 3600 - 60), |_| false);
    let floor = trust_store(&sim.dev).clock_floor;
    assert!(
        floor >= EPOCH + 3600 + 15 * 60,
        "the uptime checkpoints persisted the estimate: floor {}",
        floor - EPOCH
    );
    sim.reset_now();
    sim.server.jobs.status = JobStatus::Queued;
    assert!(sim.run_until(Duration::from_secs(600), terminal));
    assert_refused_before_any_image_block(&sim, "0x000000e3: 0x00000007");
    assert_eq!(boot_state(&sim.dev).trial, None);
}

#[test]
fn a_timestamp_replayed_within_its_lifetime_does_not_extend_freshness() {
    // One recorded answer, valid for an hour, replayed every 50 minutes (each reconnect asks
    // for the next job and gets it again). The device's estimate never goes back, so it loses
    // freshness when the recorded timestamp expires, not an hour after the last replay.
    let recorded = fx::timestamp(THING, EPOCH, EPOCH + 3600, None, 1);
    let mut f = Fixture::new(v2(), None, Ts::Fixed(recorded));
    f.jobs.status = JobStatus::Succeeded;
    let mut sim = Sim::start(f, &v1(), 13, require());
    sim.run_until(Duration::from_secs(2), |_| false);
    for _ in 0..2 {
        sim.run_until(Duration::from_secs(50 * 60), |_| false);
        sim.disconnect_for(Duration::from_millis(100));
    }
    sim.run_until(Duration::from_secs(60), |_| false);
    let accepted = sim
        .events
        .iter()
        .filter(|e| matches!(e, AgentEvent::TimestampAccepted { .. }))
        .count();
    assert!(
        accepted >= 2,
        "the replay was accepted while valid: {accepted}"
    );
    assert!(
        sim.events.iter().any(
            |e| matches!(e, AgentEvent::FreshnessLost { expired_at } if *expired_at == EPOCH + 3600)
        ),
        "fresh past the recorded timestamp's expiry: {:?}",
        sim.events
    );
    assert!(!sim.agent().is_fresh());
}
