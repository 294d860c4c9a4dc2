//! The OTA agent on the CM7 (QEMU `mps2-an500`, run with `-icount shift=0`).
//!
//! `ferrota-agent` with a memory-mapped [`Platform`]: the inactive bank is RAM NOR with the
//! code-flash rules at the upper bank's place (0x603F8000), the resume area and the marker log
//! are RAM NOR with the work-flash rules. The host (`ferrota-qemu agent`) recorded a whole
//! update on its own agent (job document, 32 stream blocks, status updates; see
//! [`ferrota_qemu_harness::agent_script`]) and loaded the inputs as a script; this replays them
//! at the same instants and prints one line per output (MQTT operation, application event) and
//! the marker log's newest record at the end: the host checks the lines equal its own.
//!
//! Figures (`name=value` lines): SysTick ticks spent in the agent (all calls, and the longest
//! one: the last block, which hashes the file from flash and checks both signatures), the
//! calibration loop, and the stack high-water.

#![no_std]
#![no_main]

use ferrota_agent::{
    Agent, Config, FlashFault, FlashOp, Instant, NorFlashErrorKind, Platform, RESUME_AREA_LEN,
    Running,
};
use ferrota_boot::Bank;
use ferrota_boot::log::{LOG_SIZE, MarkerLog};
use ferrota_fw_board::{
    BOARD, MappedFlash, RamCodeFlash, RamNor, counter, entry, exit, report, report_num, stack,
};
use ferrota_image::p256::ecdsa::VerifyingKey;
use ferrota_image::sflash_key::{SFLASH_KEY_ADDRESS, SFLASH_KEY_AREA, parse_key_object};
use ferrota_image::{BANK_SIZE, BootKey, HardwareId, VersionRecord};
use ferrota_qemu_harness::agent_script::{
    self as script, INACTIVE_BANK, Kind, RESUME, SCRIPT, SCRIPT_MAX, Script,
};
use ferrota_qemu_harness::map::{SFLASH_SIZE, T2G_SFLASH};
use ferrota_qemu_harness::report::{self as line, Line};

const CALIBRATION_LOOPS: u32 = 1_000_000;

/// The board's flashes: plain RAM with NOR rules.
struct RamPlatform;

impl Platform for RamPlatform {
    type Bank<'p> = RamCodeFlash;
    type Resume<'p> = RamNor;
    type Log<'p> = RamNor;
    type Active<'p> = RamCodeFlash;
    type Trust<'p> = RamNor;
    fn trust_area(&mut self) -> Result<RamNor, FlashFault> {
        // The recorded script runs the AwsPlain default with no anchor: the agent never opens
        // the trust store, and none is mapped. Were it asked for, the agent halts on this.
        Err(FlashFault::new(FlashOp::Open, NorFlashErrorKind::Other))
    }
    fn inactive_bank(&mut self) -> Result<RamCodeFlash, FlashFault> {
        // SAFETY: PSRAM the script and the other windows do not overlap (agent_script::map).
        Ok(unsafe { RamCodeFlash::new(INACTIVE_BANK, BANK_SIZE) })
    }
    fn resume_area(&mut self) -> Result<RamNor, FlashFault> {
        // SAFETY: as above.
        Ok(unsafe { RamNor::new(RESUME, RESUME_AREA_LEN) })
    }
    fn active_bank(&mut self) -> Result<RamCodeFlash, FlashFault> {
        // The script is one download up to the activation: no self-test, so no confirm reads
        // the running bank, and none is loaded. Were one asked for, the agent halts on this.
        Err(FlashFault::new(FlashOp::Open, NorFlashErrorKind::Other))
    }
    fn marker_log(&mut self) -> Result<RamNor, FlashFault> {
        // SAFETY: the log window below the firmware's RAM (memory.x).
        Ok(unsafe { RamNor::new(BOARD.log, LOG_SIZE) })
    }
}

#[entry]
fn main() -> ! {
    stack::paint();
    counter::start();
    report_num("calibrate-instructions=", 2 * CALIBRATION_LOOPS + 2);
    report_num("calibrate-ticks=", counter::calibrate(CALIBRATION_LOOPS));
    let ok = run();
    report_num("stack=", stack::high_water());
    exit(ok)
}

/// Ticks of all agent calls, and of the longest.
struct Clock {
    total: u32,
    longest: u32,
}

impl Clock {
    fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let t = counter::now();
        let r = f();
        let d = counter::since(t);
        self.total = self.total.saturating_add(d);
        self.longest = self.longest.max(d);
        r
    }
}

#[inline(never)]
fn run() -> bool {
    let sflash = MappedFlash::new(BOARD.sflash, SFLASH_SIZE);
    let at = (SFLASH_KEY_ADDRESS - T2G_SFLASH) as usize;
    let Ok(key) = parse_key_object(&sflash.bytes()[at..at + SFLASH_KEY_AREA]) else {
        report(b"error key-object");
        return false;
    };
    let mem = MappedFlash::new(SCRIPT, SCRIPT_MAX);
    let Some(s) = Script::parse(mem.bytes()) else {
        report(b"error script");
        return false;
    };
    let (Some(thing), Ok(code_key), Ok(record)) = (
        s.thing(),
        VerifyingKey::from_sec1_bytes(s.code_key()),
        VersionRecord::parse(s.record()),
    ) else {
        report(b"error script-header");
        return false;
    };
    let mut cfg: Config<'_, BootKey> = Config::new(thing, &key, code_key);
    cfg.hardware = s.hardware().and_then(HardwareId::new);
    cfg.block_size = s.word(script::at::BLOCK_SIZE);
    cfg.blocks_per_request = s.word(script::at::BLOCKS_PER_REQUEST);
    cfg.requests_in_flight = s.word(script::at::IN_FLIGHT) as usize;
    let running = Running {
        bank: if s.word(script::at::BANK) == 1 {
            Bank::Upper
        } else {
            Bank::Lower
        },
        record,
    };
    let mut p = RamPlatform;
    let mut clock = Clock {
        total: 0,
        longest: 0,
    };
    let start = Instant::from_micros(s.start());
    let Ok(mut agent) = clock.time(|| Agent::new(start, cfg, running, &mut p)) else {
        report(b"error agent-new");
        return false;
    };
    report(b"new ok");
    let mut calls = 0u32;
    for e in s.entries() {
        let now = Instant::from_micros(e.at);
        clock.time(|| match e.kind {
            Kind::Connected => agent.handle_connected(now),
            Kind::Message => agent.handle_message(now, e.topic, e.payload, &mut p),
            Kind::Timeout => agent.handle_timeout(now, &mut p),
        });
        calls += 1;
        drain(&mut agent);
    }
    let stats = agent.stats();
    drop(agent);
    let Ok(snap) = MarkerLog::new(p.marker_log().unwrap_or_else(|_| unreachable!()))
        .and_then(|mut l| l.read())
    else {
        report(b"error log");
        return false;
    };
    let mut l = Line::new();
    l.push("final");
    line::log(&mut l, &snap);
    report(l.as_bytes());
    report_num("calls=", calls);
    report_num("blocks=", stats.blocks_accepted);
    report_num("agent-ticks=", clock.total);
    report_num("longest-call-ticks=", clock.longest);
    report_num(
        "agent-size=",
        core::mem::size_of::<Agent<'_, BootKey>>() as u32,
    );
    true
}

/// Prints the agent's outputs in the host's order: MQTT operations, then events.
#[inline(never)]
fn drain(agent: &mut Agent<'_, BootKey>) {
    let mut buf = [0u8; 512];
    while let Some(t) = agent.poll_transmit(&mut buf) {
        report(script::transmit_line(&t, &buf).as_bytes());
    }
    while let Some(e) = agent.poll_event() {
        report(script::event_line(&e).as_bytes());
    }
}
