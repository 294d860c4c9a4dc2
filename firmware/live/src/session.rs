//! The event loop: the agent over the NET helper's [`Link`] (Ethernet, TCP, TLS 1.3, MQTT
//! 3.1.1), as `crates/device`'s `Board::app` drives it on the host.
//!
//! ```text
//!  Link::new ─▶ connect ─▶ handle_connected ─▶ ┌─ drain: poll_transmit → publish / subscribe
//!     ▲  (fresh Storage,         (until           │         poll_event → lines, self-test, reset
//!     │   back-off 0.1 s → 5 s)   CONNACK)        ├─ Link::poll until the agent's next timeout
//!     │                                           │         (messages → handle_message)
//!     └──────────── any NetError ◀────────────────┴─ handle_timeout when it is due
//! ```
//!
//! A reset request (after the activation, a rejected self-test, or no self-test job in time)
//! sends what is queued, waits (bounded) for the QoS 1 acknowledgements, closes the link, prints
//! `reset` and asks for a system reset (SYSRESETREQ): QEMU restarts the DBM, the PSRAM keeps
//! its bytes. While the link is down the agent's timers still run; what it queues waits for the
//! next connection.
//!
//! The self-test is the application's: it passes, unless the binary is built with the cargo
//! feature `fail-self-test` (the rollback test).
//!
//! Figures (`fig` lines) after a download is activated: `download-ms` (board clock, from the
//! job's file choice to the activation), `download-bytes` and `bytes` (the file; the second is
//! the contract's name), `stream-bytes` (MQTT payload bytes of the blocks), `busy-ticks` and
//! `ticks` (SysTick, 40 instructions each under `-icount shift=0`: busy ticks exclude the WFI
//! idle), `activate-busy-ticks` (the call that took the last block: read-back hash and both
//! signatures), the agent's counters, `stack`.

use ferrota_agent::{Agent, AgentEvent, AppOutcome, Instant, TRANSMIT_BUF_MIN, TransmitKind};
use ferrota_fw_board::{clock, stack};
use ferrota_fw_net::{Link, NetError, Storage};
use ferrota_image::BootKey;
use ferrota_qemu_harness::inputs;
use ferrota_qemu_harness::map::MPS2_AN500;
use ferrota_qemu_harness::provision::Provision;

use crate::console::{Con, say};
use crate::platform::LivePlatform;

/// How long one connection attempt (TCP, TLS handshake, MQTT CONNECT) may take.
const CONNECT_MS: u64 = 60_000;
/// First wait after a failed session; doubled up to [`BACKOFF_MAX_MS`] (as `crates/device`).
const BACKOFF_MIN_MS: u64 = 100;
/// Longest wait between attempts.
const BACKOFF_MAX_MS: u64 = 5_000;
/// How long a reset waits for the QoS 1 acknowledgements (as `crates/device`: 3 s).
const FLUSH_MS: u64 = 3_000;
/// Longest single [`Link::poll`] when the agent has no timer running.
const IDLE_POLL_MS: u64 = 1_000;

type LiveAgent<'a> = Agent<'a, BootKey>;

/// The agent's clock: milliseconds of the board clock.
pub fn now() -> Instant {
    Instant::from_millis(clock::now_ms())
}

fn ms_of(t: Instant) -> u64 {
    t.as_micros().div_ceil(1000)
}

/// A download's figures, from the job's file choice to the activation.
#[derive(Clone, Copy)]
struct Download {
    start_ms: u64,
    start_ticks: u64,
    start_busy: u64,
    file_bytes: u32,
    stream_bytes: u64,
}

/// What the loop remembers between calls.
struct App {
    job: [u8; 64],
    job_len: usize,
    tenth: Option<u32>,
    download: Option<Download>,
    /// Busy ticks of the last agent call.
    last_call: u64,
    reset: bool,
}

impl App {
    const fn new() -> Self {
        App {
            job: [0; 64],
            job_len: 0,
            tenth: None,
            download: None,
            last_call: 0,
            reset: false,
        }
    }

    /// After every agent call: `job <id> received` for a new job, `download <n>/<total>` at
    /// every tenth, then the events.
    fn after_call(&mut self, agent: &mut LiveAgent<'_>, p: &mut LivePlatform) {
        let id = agent.job_id().as_bytes();
        if !id.is_empty() && id != &self.job[..self.job_len] {
            self.job_len = id.len().min(self.job.len());
            self.job[..self.job_len].copy_from_slice(&id[..self.job_len]);
            self.tenth = None;
            let mut c = Con::new();
            c.bytes(b"job ");
            c.bytes(id);
            c.bytes(b" received");
            c.send();
        }
        if let Some((n, total)) = agent.progress() {
            let tenth = u32::try_from(u64::from(n) * 10 / u64::from(total.max(1))).unwrap_or(10);
            if self.tenth != Some(tenth) {
                self.tenth = Some(tenth);
                say!("download {n}/{total}");
            }
        }
        self.events(agent, p);
    }

    /// Acts on the agent's events; calls back into the agent for the self-test and for jobs
    /// that are not firmware, so it loops until none is left.
    fn events(&mut self, agent: &mut LiveAgent<'_>, p: &mut LivePlatform) {
        while let Some(e) = agent.poll_event() {
            match e {
                AgentEvent::StartSelfTest { .. } => {
                    let pass = !cfg!(feature = "fail-self-test");
                    say!("self-test {}", if pass { "pass" } else { "FAIL" });
                    agent.self_test_result(now(), pass, p);
                }
                AgentEvent::ResetRequested => self.reset = true,
                AgentEvent::OtherFileJob { file_type, .. } => {
                    say!("event app-job file-type={file_type} declined");
                    agent.finish_app_job(now(), AppOutcome::Declined);
                }
                AgentEvent::CustomJob => {
                    say!("event app-job custom declined");
                    agent.finish_app_job(now(), AppOutcome::Declined);
                }
                AgentEvent::FileChosen {
                    encoding,
                    file_bytes,
                } => {
                    say!("event file {encoding:?} bytes={file_bytes}");
                    self.download = Some(Download {
                        start_ms: clock::now_ms(),
                        start_ticks: clock::ticks(),
                        start_busy: clock::busy_ticks(),
                        file_bytes,
                        stream_bytes: 0,
                    });
                }
                AgentEvent::DownloadStarted { blocks, resumed } => {
                    say!("event download-started blocks={blocks} resumed={resumed}");
                }
                AgentEvent::VersionAccepted { version } => {
                    say!("event version-accepted {version}");
                }
                AgentEvent::Activated => {
                    say!("event activated");
                    self.figures(agent);
                }
                AgentEvent::Confirmed { floor } => {
                    say!("event confirmed floor={floor}");
                    raise_efuse_floor(floor);
                }
                AgentEvent::Rejected => say!("event rejected"),
                // The counters start afresh for the next job (as `crates/device`), so a
                // download's figures never include an earlier job's blocks.
                AgentEvent::JobSucceeded => {
                    say!("event job-succeeded");
                    agent.reset_stats();
                }
                AgentEvent::JobFailed { .. } => {
                    say!("event job-failed");
                    agent.reset_stats();
                    self.download = None;
                }
                AgentEvent::JobCancelled => say!("event job-cancelled"),
                AgentEvent::FlashFault(f) => say!("event flash-fault {:?} {:?}", f.op, f.kind),
                other => say!("event {other:?}"),
            }
        }
    }

    /// The download's figures, at its activation.
    fn figures(&mut self, agent: &LiveAgent<'_>) {
        let Some(d) = self.download.take() else {
            return;
        };
        let s = agent.stats();
        say!("fig download-ms={}", clock::now_ms() - d.start_ms);
        say!("fig download-bytes={}", d.file_bytes);
        // The contract's name for the same figure (the host divides busy ticks by it).
        say!("fig bytes={}", d.file_bytes);
        say!("fig stream-bytes={}", d.stream_bytes);
        say!("fig busy-ticks={}", clock::busy_ticks() - d.start_busy);
        say!("fig ticks={}", clock::ticks() - d.start_ticks);
        say!("fig activate-busy-ticks={}", self.last_call);
        say!("fig blocks={}", s.blocks_accepted);
        say!("fig requests={}", s.requests);
        say!("fig duplicates={}", s.duplicates);
        say!("fig timeouts={}", s.timeouts);
        say!("fig stack={}", stack::high_water());
    }
}

/// The emulated eFuse anti-rollback counter (the board-inputs block, which the DBM reads at
/// every boot) is raised to a confirmed image's floor, as the chip's application blows fuses.
fn raise_efuse_floor(floor: u32) {
    let at = (MPS2_AN500.inputs as usize + inputs::EFUSE_FLOOR_AT) as *mut u32;
    // SAFETY: the inputs block's counter word in the PSRAM (`inputs::EFUSE_FLOOR_AT`, word
    // aligned); nothing else writes it while the app runs.
    unsafe {
        if core::ptr::read_volatile(at) < floor {
            core::ptr::write_volatile(at, floor);
        }
    }
}

/// Runs sessions until a reset; returns only on a fatal error.
pub fn run(agent: &mut LiveAgent<'_>, p: &mut LivePlatform, prov: &Provision<'_>) -> &'static str {
    say!(
        "fig agent-size={}",
        core::mem::size_of::<LiveAgent<'static>>()
    );
    say!(
        "fig storage-size={}",
        core::mem::size_of::<Storage<'static>>()
    );
    let mut app = App::new();
    app.events(agent, p);
    let mut backoff = BACKOFF_MIN_MS;
    loop {
        session(agent, p, prov, &mut app, &mut backoff);
        agent.handle_disconnected(now());
        let until = clock::now_ms() + backoff;
        backoff = (backoff * 2).min(BACKOFF_MAX_MS);
        // Offline: the agent's timers still run (the self-test deadline, the reset after no
        // self-test job); its transmits wait for the next connection.
        while clock::now_ms() < until {
            timeouts(agent, p, &mut app);
            if app.reset {
                reset(None);
            }
            clock::idle();
        }
    }
}

/// One session: a fresh storage, Ethernet, connect, then the loop until a network error.
fn session(
    agent: &mut LiveAgent<'_>,
    p: &mut LivePlatform,
    prov: &Provision<'_>,
    app: &mut App,
    backoff: &mut u64,
) {
    let mut storage = Storage::new();
    let mut link = match Link::new(&mut storage, prov) {
        Ok(l) => l,
        Err(e) => {
            say!("error net-up {}", e.name());
            return;
        }
    };
    say!("net up");
    if let Err(e) = link.connect(clock::now_ms() + CONNECT_MS) {
        say!("error connect {}", e.name());
        link.close();
        return;
    }
    say!("mqtt connected");
    let f = link.figures();
    say!("fig handshake-busy-ticks={}", f.handshake_busy_ticks);
    say!("fig connect-ms={}", f.connect_ms);
    *backoff = BACKOFF_MIN_MS;
    agent.handle_connected(now());
    app.after_call(agent, p);
    loop {
        if let Err(e) = transmit(agent, &mut link) {
            say!("error send {}", e.name());
            link.close();
            return;
        }
        if app.reset {
            reset(Some(&mut link));
        }
        let until = agent
            .poll_timeout()
            .map_or(u64::MAX, ms_of)
            .min(clock::now_ms() + IDLE_POLL_MS);
        let r = link.poll(until, &mut |topic, payload| {
            if topic.contains("/streams/")
                && topic.ends_with("/data/cbor")
                && let Some(d) = &mut app.download
            {
                d.stream_bytes += payload.len() as u64;
            }
            let t = clock::busy_ticks();
            agent.handle_message(now(), topic, payload, p);
            app.last_call = clock::busy_ticks() - t;
            app.after_call(agent, p);
        });
        // `poll` returns `Ok(0)` at `until`; every error (a stall is `Timeout`) ends the session.
        if let Err(e) = r {
            say!("error poll {}", e.name());
            link.close();
            return;
        }
        timeouts(agent, p, app);
    }
}

/// Calls `handle_timeout` when the agent's deadline has passed.
fn timeouts(agent: &mut LiveAgent<'_>, p: &mut LivePlatform, app: &mut App) {
    if agent.poll_timeout().is_some_and(|t| t <= now()) {
        let t = clock::busy_ticks();
        agent.handle_timeout(now(), p);
        app.last_call = clock::busy_ticks() - t;
        app.after_call(agent, p);
    }
}

/// Carries out the agent's MQTT operations; `status <json>` for every Jobs status update.
fn transmit(agent: &mut LiveAgent<'_>, link: &mut Link<'_>) -> Result<(), NetError> {
    let mut buf = [0u8; TRANSMIT_BUF_MIN];
    while let Some(t) = agent.poll_transmit(&mut buf) {
        let topic = t.topic.as_str();
        match t.kind {
            TransmitKind::Subscribe => link.subscribe(topic, t.qos)?,
            TransmitKind::Unsubscribe => link.unsubscribe(topic)?,
            TransmitKind::Publish { len } => {
                let payload = &buf[..len];
                if topic.contains("/jobs/") && !topic.ends_with("/get") {
                    let mut c = Con::new();
                    c.bytes(b"status ");
                    c.bytes(payload);
                    c.send();
                }
                link.publish(topic, payload, t.qos)?;
            }
        }
    }
    Ok(())
}

/// Sends what is queued, waits for the acknowledgements, closes the link, and resets the board.
fn reset(link: Option<&mut Link<'_>>) -> ! {
    if let Some(link) = link {
        if let Err(e) = link.flush(clock::now_ms() + FLUSH_MS) {
            say!("error flush {}", e.name());
        }
        link.close();
    }
    say!("fig stack={}", stack::high_water());
    say!("reset");
    clock::stop();
    cortex_m::peripheral::SCB::sys_reset()
}
