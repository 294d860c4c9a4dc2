//! The deterministic harness (STYLE §1 `Pair`): the agent on a `ferrota_t2g::Device` booted by
//! the `ferrota-boot` DBM ([`crate::platform::boot_for_agent`]), a Jobs/Streams [`Service`], a
//! network with latency, loss, duplication and reordering, and virtual time. Nothing sleeps;
//! every run with the same seed is the same run.
//!
//! The service is a parameter: `ferrota_lab::sim_service::ServerService` plugs in the real
//! server's Jobs and Streams services (in memory); anything that answers the device's MQTT
//! messages with replies fits (the agent's own tests use a tiny fixture for job documents the
//! real server never sends).

use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;
use std::time::Duration;

use embedded_storage::nor_flash::NorFlash;
use ferrota_agent::TrustPolicy;
use ferrota_agent::{Agent, AgentEvent, AppOutcome, Config, Instant, Running, State, TransmitKind};
use ferrota_boot::Bank;
use ferrota_image::{BootKey, HardwareId, KeyRing};
use ferrota_t2g::{Device, PowerCut};

use crate::images::ota::{BOARD, TestImage};
use crate::keys::{boot_ring, code_verifying_key};
use crate::platform::{DevPlatform, boot_for_agent};

/// The thing name of the simulated device.
pub const THING: &str = "thing-1";

/// A message: topic and payload.
pub type Msg = (String, Vec<u8>);

/// The other end of the device's MQTT connection: AWS IoT Jobs and Streams, or a model of them.
pub trait Service {
    /// The replies to one message the device published (in the order they are sent).
    fn handle(&mut self, topic: &str, payload: &[u8]) -> Vec<Msg>;
    /// The harness's virtual time, told before every [`Service::handle`]: a service with a
    /// clock (the real server's timestamps, its execution timers) runs on it. The default
    /// ignores it (a model without time).
    fn set_now(&mut self, now: Instant) {
        let _ = now;
    }
}

/// Programs an OTA file into a physical bank as a debugger does.
pub fn install(dev: &mut Device, bank: Bank, img: &TestImage) {
    dev.reset();
    let mut sb = dev.single_bank().expect("single-bank mode");
    let base = bank.sbm_offset();
    let len = (img.file.len() as u32).div_ceil(0x8000) * 0x8000;
    sb.erase(base, base + len).expect("erase");
    let mut f = img.file.clone();
    f.resize(f.len().div_ceil(8) * 8, 0xFF);
    sb.write(base, &f).expect("program");
}

/// The boot chain as far as the agent cares, with the test board's boot-key ring (the fixed
/// boot key in slot 0, the second one in slot 1) less the slots the eFuses revoke, and
/// [`BOARD`].
pub fn boot(dev: &mut Device) -> Result<Running, String> {
    let ring = boot_ring(dev.efuse().revoked_boot_keys());
    boot_for_agent(dev, ring, HardwareId::new(BOARD)).map_err(|e| e.to_string())
}

/// The agent under test: the test board's boot-key ring, pinned code-signing key.
pub type TestAgent = Agent<'static, KeyRing<BootKey>>;

/// Settings of the agent under test.
#[derive(Clone, Copy)]
pub struct AgentSettings {
    /// [`Config::block_size`].
    pub block_size: u32,
    /// [`Config::blocks_per_request`].
    pub blocks_per_request: u32,
    /// [`Config::requests_in_flight`].
    pub requests_in_flight: usize,
    /// [`Config::precheck_lookahead`].
    pub precheck_lookahead: u32,
    /// [`Config::gap_retransmit`].
    pub gap_retransmit: bool,
    /// [`Config::packed`]. Off by default here (on in [`Config::new`]): the download tests
    /// measure the schedule on the bank image's 1,016 blocks, as AWS's own device fetches
    /// it; the packed and delta tests turn it on.
    pub packed: bool,
    /// Signed update metadata required ([`TrustPolicy::Require`] with the fixture anchor
    /// `ferrota_sim::trust::anchor_static()` and [`BOARD`] as hardware id); default off
    /// ([`TrustPolicy::AwsPlain`], no anchor).
    pub require_manifest: bool,
    /// [`ferrota_agent::TrustConfig::min_rate`] when set.
    pub min_rate: Option<u32>,
    /// [`ferrota_agent::TrustConfig::rate_grace`] when set.
    pub rate_grace: Option<Duration>,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            block_size: 4096,
            blocks_per_request: 32,
            requests_in_flight: 4,
            precheck_lookahead: 256,
            gap_retransmit: true,
            packed: false,
            require_manifest: false,
            min_rate: None,
            rate_grace: None,
        }
    }
}

/// The agent's configuration for [`THING`] on [`BOARD`] with the fixed keys and `s` (the
/// boot-key ring with no slot revoked; [`Sim`] lends the ring of the device's eFuses).
pub fn config(s: AgentSettings) -> Config<'static, KeyRing<BootKey>> {
    static HW: OnceLock<HardwareId> = OnceLock::new();
    let mut c = Config::new(THING, boot_ring(0), code_verifying_key());
    c.hardware = Some(*HW.get_or_init(|| HardwareId::new(BOARD).unwrap()));
    c.block_size = s.block_size;
    c.blocks_per_request = s.blocks_per_request;
    c.requests_in_flight = s.requests_in_flight;
    c.precheck_lookahead = s.precheck_lookahead;
    c.gap_retransmit = s.gap_retransmit;
    c.packed = s.packed;
    if s.require_manifest {
        c.trust.policy = TrustPolicy::Require;
        c.trust.anchor = Some(crate::trust::anchor_static());
    }
    if let Some(r) = s.min_rate {
        c.trust.min_rate = r;
    }
    if let Some(g) = s.rate_grace {
        c.trust.rate_grace = g;
    }
    c
}

/// The network between the device and the service.
#[derive(Debug, Clone)]
pub struct Net {
    /// One-way latency.
    pub latency: Duration,
    /// Extra random delay (reordering), uniform in `[0, jitter)`.
    pub jitter: Duration,
    /// Probability that a data block to the device is lost.
    pub loss: f64,
    /// Probability that a data block is delivered twice.
    pub dup: f64,
    /// Probability that a device request to the stream is lost.
    pub request_loss: f64,
    /// Time to transmit one data block to the device (serialisation; 0 = infinitely fast).
    pub per_block: Duration,
}

impl Default for Net {
    fn default() -> Self {
        Net {
            latency: Duration::from_millis(25),
            jitter: Duration::ZERO,
            loss: 0.0,
            dup: 0.0,
            request_loss: 0.0,
            per_block: Duration::ZERO,
        }
    }
}

/// What the simulated application does on its self-test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppBehaviour {
    /// Reports a pass after 200 ms.
    Passes,
    /// Reports a failure after 200 ms.
    Fails,
    /// Never reports.
    Hangs,
}

#[derive(Debug)]
enum Pending {
    ToDevice(String, Vec<u8>),
    ToServer(String, Vec<u8>),
    PowerOn,
    Reset,
    Reconnect,
    SelfTestDone(bool),
}

/// The device, the agent on it, the service `S` and the network between them, in virtual time.
pub struct Sim<S> {
    /// The chip.
    pub dev: Device,
    /// Virtual time.
    pub now: Instant,
    /// The agent, while the device runs.
    pub agent: Option<TestAgent>,
    /// The Jobs/Streams service.
    pub server: S,
    /// The network.
    pub net: Net,
    /// The agent's settings (kept across resets).
    pub settings: AgentSettings,
    /// What the application does on its self-test.
    pub app: AppBehaviour,
    /// What the last boot runs.
    pub running: Option<Running>,
    /// Every event the agent raised.
    pub events: Vec<AgentEvent>,
    /// Boots so far.
    pub boots: u32,
    /// Power cuts so far.
    pub power_cuts: u32,
    queue: BTreeMap<(Instant, u64), Pending>,
    seq: u64,
    rng: u64,
    subs: HashSet<String>,
    connected: bool,
    link_free_at: Instant,
    /// Drop stream data until this instant (a black hole).
    pub blackhole_until: Instant,
    /// Drop these block indices the first time the server sends them.
    pub drop_once: Vec<u32>,
    /// When the first stream request left the device.
    pub first_request_at: Option<Instant>,
    /// When the last new block was accepted.
    pub last_block_at: Option<Instant>,
    /// Device time per stream message (programming the block into flash, the runtime's other
    /// work): messages arriving while the device is busy wait in its receive queue.
    pub device_per_block: Duration,
    device_busy_until: Instant,
    /// Every `request_stall_every`-th stream request reaches the service `request_stall` late
    /// (TCP delayed ACK holding a small segment back: ~40 ms on Linux, even on loopback).
    pub request_stall: Duration,
    /// Every how many stream requests one is held back (0: none).
    pub request_stall_every: u32,
    stream_requests_out: u32,
}

impl<S: Service> Sim<S> {
    /// A device running `v1` in the lower bank, connected to `server`, no job yet; `seed` drives
    /// every random choice of the network.
    pub fn start(server: S, v1: &TestImage, seed: u64, settings: AgentSettings) -> Self {
        let mut dev = Device::new();
        install(&mut dev, Bank::Lower, v1);
        let mut sim = Sim {
            dev,
            now: Instant::from_millis(1000),
            agent: None,
            server,
            net: Net::default(),
            settings,
            app: AppBehaviour::Passes,
            running: None,
            events: vec![],
            boots: 0,
            power_cuts: 0,
            queue: BTreeMap::new(),
            seq: 0,
            rng: seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1,
            subs: HashSet::new(),
            connected: false,
            link_free_at: Instant::ZERO,
            blackhole_until: Instant::ZERO,
            drop_once: vec![],
            first_request_at: None,
            last_block_at: None,
            device_per_block: Duration::ZERO,
            device_busy_until: Instant::ZERO,
            request_stall: Duration::ZERO,
            request_stall_every: 0,
            stream_requests_out: 0,
        };
        sim.power_on();
        sim
    }

    fn rand(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    fn at(&mut self, t: Instant, p: Pending) {
        self.seq += 1;
        self.queue.insert((t, self.seq), p);
    }

    fn delay(&mut self) -> Duration {
        let j = self.net.jitter.as_micros() as f64 * self.rand();
        self.net.latency + Duration::from_micros(j as u64)
    }

    /// Boots the device (DBM) and starts the agent, then connects.
    fn power_on(&mut self) {
        let running = loop {
            match boot(&mut self.dev) {
                Ok(r) => break r,
                Err(e) if self.dev.power_lost() => {
                    let _ = e;
                    self.power_cuts += 1;
                    self.dev.power_cycle();
                }
                Err(e) => panic!("boot: {e}"),
            }
        };
        self.boots += 1;
        self.running = Some(running);
        let mut cfg = config(self.settings);
        cfg.boot_key = boot_ring(self.dev.efuse().revoked_boot_keys());
        let agent = Agent::new(self.now, cfg, running, &mut DevPlatform(&mut self.dev))
            .expect("agent starts");
        self.agent = Some(agent);
        self.connected = true;
        self.subs.clear();
        let now = self.now;
        self.agent.as_mut().unwrap().handle_connected(now);
        self.pump();
    }

    /// The device lost power or reset: the agent is gone, messages to it are lost.
    fn device_down(&mut self) {
        self.agent = None;
        self.connected = false;
        self.subs.clear();
        self.queue
            .retain(|_, p| !matches!(p, Pending::ToDevice(..) | Pending::SelfTestDone(_)));
    }

    fn check_power(&mut self) -> bool {
        if self.dev.power_lost() {
            self.power_cuts += 1;
            self.device_down();
            self.dev.power_cycle();
            let t = self.now + Duration::from_millis(500);
            self.at(t, Pending::PowerOn);
            return true;
        }
        false
    }

    /// Schedules a power cut (`cut`).
    pub fn cut_power_at_op(&mut self, cut: PowerCut) {
        self.dev.schedule_power_cut(cut);
    }

    /// Drops the connection for `d`.
    pub fn disconnect_for(&mut self, d: Duration) {
        if let Some(a) = self.agent.as_mut() {
            a.handle_disconnected(self.now);
        }
        self.connected = false;
        self.subs.clear();
        self.queue
            .retain(|_, p| !matches!(p, Pending::ToDevice(..)));
        let t = self.now + d;
        self.at(t, Pending::Reconnect);
    }

    /// Whether the device is connected.
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// Delivers a message to the device after the usual network delay, whatever the server's
    /// state (a stale copy that crossed the device's last update, say).
    pub fn send_to_device(&mut self, topic: String, payload: Vec<u8>) {
        let d = self.delay();
        let at = self.now + d;
        self.at(at, Pending::ToDevice(topic, payload));
    }

    /// Drains the agent's outputs.
    pub fn pump(&mut self) {
        if self.check_power() {
            return;
        }
        let mut buf = [0u8; 512];
        loop {
            let Some(agent) = self.agent.as_mut() else {
                return;
            };
            let Some(t) = agent.poll_transmit(&mut buf) else {
                break;
            };
            match t.kind {
                TransmitKind::Subscribe => {
                    self.subs.insert(t.topic.to_string());
                }
                TransmitKind::Unsubscribe => {
                    self.subs.remove(t.topic.as_str());
                }
                TransmitKind::Publish { len } => {
                    if !self.connected {
                        continue;
                    }
                    let mut stall = Duration::ZERO;
                    if ferrota_proto::topic::Topic::stream_op_of(t.topic.as_str()).is_some() {
                        self.first_request_at.get_or_insert(self.now);
                        if self.rand() < self.net.request_loss {
                            continue;
                        }
                        self.stream_requests_out += 1;
                        if self.request_stall_every > 0
                            && self
                                .stream_requests_out
                                .is_multiple_of(self.request_stall_every)
                        {
                            stall = self.request_stall;
                        }
                    }
                    let d = self.delay() + stall;
                    let at = self.now + d;
                    self.at(
                        at,
                        Pending::ToServer(t.topic.to_string(), buf[..len].to_vec()),
                    );
                }
            }
        }
        while let Some(e) = self.agent.as_mut().and_then(|a| a.poll_event()) {
            self.events.push(e);
            match e {
                AgentEvent::ResetRequested => {
                    let t = self.now + Duration::from_millis(50);
                    self.at(t, Pending::Reset);
                }
                AgentEvent::StartSelfTest { .. } => match self.app {
                    AppBehaviour::Passes | AppBehaviour::Fails => {
                        let t = self.now + Duration::from_millis(200);
                        let pass = self.app == AppBehaviour::Passes;
                        self.at(t, Pending::SelfTestDone(pass));
                    }
                    AppBehaviour::Hangs => {}
                },
                AgentEvent::Confirmed { floor } => {
                    let _ = self.dev.raise_rollback_counter(floor);
                }
                AgentEvent::RevokeBootKeys { mask } => {
                    // The board's part of a revocation (design §5): the boot chain's guard
                    // checks the running image still verifies without the slots, then blows
                    // the missing bits one per operation. A refusal or a power cut leaves a
                    // subset blown; the agent asks again at its next start.
                    let _ = crate::boot_chain::revoke::apply(&mut self.dev, mask);
                }
                _ => {}
            }
        }
        self.check_power();
    }

    /// Resets the device now (as a watchdog or a user would).
    pub fn reset_now(&mut self) {
        self.device_down();
        self.power_on();
    }

    /// Cuts the power before the next flash operation.
    pub fn cut_power_now(&mut self) {
        let op = self.dev.op_count();
        self.dev.schedule_power_cut(PowerCut::Before(op));
    }

    fn deliver_to_device(&mut self, topic: String, payload: Vec<u8>) {
        // Stream data reaches the device only while it is subscribed (clean sessions).
        if topic.contains("/data/cbor") && !self.subs.contains(&topic) {
            return;
        }
        let data = topic.contains("/data/cbor");
        if data && self.now < self.device_busy_until {
            // Still busy with the previous block: this one waits in the receive queue.
            let t = self.device_busy_until;
            self.at(t, Pending::ToDevice(topic, payload));
            return;
        }
        let now = self.now;
        let Some(agent) = self.agent.as_mut() else {
            return;
        };
        if data {
            self.device_busy_until = now + self.device_per_block;
        }
        let before = agent.stats().blocks_accepted;
        agent.handle_message(now, &topic, &payload, &mut DevPlatform(&mut self.dev));
        if agent.stats().blocks_accepted > before {
            self.last_block_at = Some(now);
        }
        self.pump();
    }

    fn deliver_to_server(&mut self, topic: String, payload: Vec<u8>) {
        self.server.set_now(self.now);
        let replies = self.server.handle(&topic, &payload);
        let mut t0 = self.now;
        for (t, p) in replies {
            let data = t.contains("/data/cbor");
            if data {
                if self.now < self.blackhole_until || self.rand() < self.net.loss {
                    continue;
                }
                let i = ferrota_proto::stream::DataBlock::decode(&p)
                    .unwrap()
                    .block_id;
                if let Some(k) = self.drop_once.iter().position(|&b| b == i) {
                    self.drop_once.remove(k);
                    continue;
                }
                // Serialisation on the link to the device.
                t0 = t0.max(self.link_free_at) + self.net.per_block;
                self.link_free_at = t0;
            }
            let d = self.delay();
            let at = t0 + d;
            let dup = data && self.rand() < self.net.dup;
            if dup {
                let d2 = self.delay() + Duration::from_millis(3);
                let at2 = t0 + d2;
                self.at(at2, Pending::ToDevice(t.clone(), p.clone()));
            }
            self.at(at, Pending::ToDevice(t, p));
        }
    }

    /// Runs until `done` holds or `limit` of virtual time passed; returns whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            if done(self) {
                return true;
            }
            let next_q = self.queue.keys().next().map(|k| k.0);
            let next_t = self.agent.as_ref().and_then(|a| a.poll_timeout());
            let next = match (next_q, next_t) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(x) => x,
                    None => return done(self),
                },
            };
            if next > end {
                self.now = end;
                return done(self);
            }
            self.now = self.now.max(next);
            if next_t.is_some_and(|t| t <= self.now) {
                let now = self.now;
                if let Some(a) = self.agent.as_mut() {
                    a.handle_timeout(now, &mut DevPlatform(&mut self.dev));
                }
                self.pump();
                continue;
            }
            let (&k, _) = self.queue.iter().next().unwrap();
            let p = self.queue.remove(&k).unwrap();
            match p {
                Pending::ToDevice(t, pl) => self.deliver_to_device(t, pl),
                Pending::ToServer(t, pl) => self.deliver_to_server(t, pl),
                Pending::PowerOn => self.power_on(),
                Pending::Reset => {
                    self.device_down();
                    self.power_on();
                }
                Pending::Reconnect => {
                    if let Some(a) = self.agent.as_mut() {
                        self.connected = true;
                        a.handle_connected(self.now);
                    }
                    self.pump();
                }
                Pending::SelfTestDone(pass) => {
                    let now = self.now;
                    if let Some(a) = self.agent.as_mut() {
                        a.self_test_result(now, pass, &mut DevPlatform(&mut self.dev));
                    }
                    self.pump();
                }
            }
        }
    }

    /// The agent (panics while the device is down).
    pub fn agent(&self) -> &TestAgent {
        self.agent.as_ref().unwrap()
    }

    /// The agent's state, while the device runs.
    pub fn agent_state(&self) -> Option<State> {
        self.agent.as_ref().map(|a| a.state())
    }

    /// The version the last boot runs.
    pub fn running_version(&self) -> u32 {
        self.running.unwrap().record.version.0
    }

    /// The application finished a job the agent handed it.
    pub fn finish_app_job(&mut self, outcome: AppOutcome) {
        let now = self.now;
        self.agent.as_mut().unwrap().finish_app_job(now, outcome);
        self.pump();
    }

    /// The elapsed virtual time since `t0`.
    pub fn since(&self, t0: Instant) -> Duration {
        self.now.saturating_since(t0)
    }
}
