//! The live board's application (issue #21): `ferrota-agent` over Ethernet, TLS 1.3 and MQTT
//! 3.1.1 (`ferrota-fw-net`) on QEMU's `mps2-an500`, started by the DBM (`firmware/dbm`,
//! feature `live`) at `live::APP_EXEC`.
//!
//! At start it reads what the chip's application would read:
//!
//! * the DBM's hand-off (`live::handoff`, FLASH_CTL's stand-in): the bank it runs from;
//! * the version record of that bank (bank offset 0x18) and the image state from the marker log
//!   (`ferrota_boot::app::image_state`): `app version=X.Y.Z bank=lower state=confirmed`;
//! * the boot key from SFlash's public-key object (as `cm7-agent`);
//! * the provisioning block (`live::PROVISION`, [`Provision`]): thing, TLS material, server,
//!   code-signing key, trust anchor, hardware id. With a trust anchor the agent runs
//!   `TrustPolicy::Require` (which needs the hardware id), else `AwsPlain`.
//!
//! Then [`session`] runs the agent over the network until a reset. The agent's configuration
//! is `Config::new`'s defaults (4 KB blocks, 32 per request, 16 requests in flight), as
//! `crates/device` uses them. No heap: the `Agent` and the network `Storage` are on the stack
//! (`fig agent-size=` and `fig storage-size=` say how much), the stack high-water is measured by
//! painting (`fig stack=`).

#![no_std]
#![no_main]

mod console;
mod platform;
mod session;

use ferrota_agent::{Agent, Config, ConfigError, Running, StartError, TrustPolicy};
use ferrota_boot::Bank;
use ferrota_boot::app::ImageState;
use ferrota_boot::log::{LOG_SIZE, MarkerLog};
use ferrota_fw_board::{MappedFlash, RamNor, clock, entry, exit, stack};
use ferrota_image::p256::ecdsa::VerifyingKey;
use ferrota_image::sflash_key::{SFLASH_KEY_ADDRESS, SFLASH_KEY_AREA, parse_key_object};
use ferrota_image::version::{RECORD_AREA, RECORD_OFFSET};
use ferrota_image::{BANK_SIZE, HardwareId, VersionRecord};
use ferrota_qemu_harness::live::{self, HANDOFF, handoff::Handoff};
use ferrota_qemu_harness::map::{MPS2_AN500, SFLASH_SIZE, T2G_SFLASH};
use ferrota_qemu_harness::provision::Provision;

use console::say;
use platform::LivePlatform;

/// Interrupt lines of QEMU's mps2-an500 (its NVIC's `num-irq`).
const IRQS: usize = 32;

/// The device part of the vector table: every line to cortex-m-rt's `DefaultHandler` (nothing
/// here uses an interrupt line; the network is polled, SysTick is an exception). 16 + 32 words
/// keep the table within 256 bytes, so it may start at `live::APP_VECTOR_TABLE`.
// SAFETY (`link_section`, `no_mangle`): cortex-m-rt's linker script places exactly one
// `__INTERRUPTS` table in `.vector_table.interrupts`, after the exceptions; with the `device`
// feature it expects the application to define it, and nothing else does here.
#[unsafe(link_section = ".vector_table.interrupts")]
#[unsafe(no_mangle)]
static __INTERRUPTS: [unsafe extern "C" fn(); IRQS] = {
    unsafe extern "C" {
        fn DefaultHandler();
    }
    [DefaultHandler; IRQS]
};

#[entry]
fn main() -> ! {
    stack::paint();
    clock::start();
    let why = run();
    say!("error {why}");
    say!("fig stack={}", stack::high_water());
    exit(false)
}

/// Starts the agent and runs it; returns only why it cannot (a fatal error: the board halts).
fn run() -> &'static str {
    let Some(h) = Handoff::decode(MappedFlash::new(HANDOFF, live::handoff::SIZE as u32).bytes())
    else {
        return "handoff: the DBM left none (the app runs only through the DBM)";
    };
    let bank = MappedFlash::new(h.bank_base(), BANK_SIZE).bytes();
    let at = RECORD_OFFSET as usize;
    let Some(Ok(record)) = bank
        .get(at..at + RECORD_AREA)
        .and_then(|a| <&[u8; RECORD_AREA]>::try_from(a).ok())
        .map(VersionRecord::parse)
    else {
        return "version-record";
    };
    // SAFETY: the marker log's PSRAM window; the agent does not exist yet.
    let Ok(state) = MarkerLog::new(unsafe { RamNor::new(live::LOG, LOG_SIZE) })
        .and_then(|mut l| ferrota_boot::app::image_state(&mut l, h.bank))
    else {
        return "marker-log";
    };
    say!(
        "app version={} bank={} state={}",
        record.version,
        match h.bank {
            Bank::Lower => "lower",
            Bank::Upper => "upper",
        },
        match state {
            ImageState::PendingCommit => "trial",
            ImageState::Valid => "confirmed",
            ImageState::Invalid => "rejected",
        }
    );
    let sflash = MappedFlash::new(MPS2_AN500.sflash, SFLASH_SIZE).bytes();
    let key_at = (SFLASH_KEY_ADDRESS - T2G_SFLASH) as usize;
    let Ok(key) = parse_key_object(&sflash[key_at..key_at + SFLASH_KEY_AREA]) else {
        return "key-object";
    };
    let block = MappedFlash::new(live::PROVISION, live::PROVISION_MAX).bytes();
    let Some(prov) = Provision::decode(block) else {
        return "provisioning: no valid block at live::PROVISION";
    };
    let Ok(code_key) = VerifyingKey::from_sec1_bytes(prov.code_signing_key) else {
        return "provisioning: code-signing key";
    };
    let mut cfg: Config<'_, _> = Config::new(prov.thing, &key, code_key);
    if !prov.hardware.is_empty() {
        let Some(id) = HardwareId::new(prov.hardware) else {
            return "provisioning: hardware id";
        };
        cfg.hardware = Some(id);
    }
    if !prov.trust_anchor.is_empty() {
        cfg.trust.policy = TrustPolicy::Require;
        cfg.trust.anchor = Some(prov.trust_anchor);
    }
    let running = Running {
        bank: h.bank,
        record,
    };
    let mut p = LivePlatform::new(&h);
    // Matched in place: moving the ~15 KB agent out of the `Result` would take a second slot
    // of that size in this frame.
    let mut started = Agent::new(session::now(), cfg, running, &mut p);
    let agent = match &mut started {
        Ok(a) => a,
        Err(StartError::Config(ConfigError::TrustHardware)) => {
            return "agent-start: a trust anchor (policy require) needs a hardware id";
        }
        Err(StartError::Config(ConfigError::TrustAnchor)) => {
            return "agent-start: the trust anchor is not a valid root document";
        }
        Err(StartError::Config(_)) => return "agent-start: configuration refused",
        Err(StartError::Flash(_)) => return "agent-start: the marker log cannot be read",
        Err(_) => return "agent-start: the marker log is unusable",
    };
    say!(
        "event trust policy={}",
        if prov.trust_anchor.is_empty() {
            "aws-plain"
        } else {
            "require"
        }
    );
    session::run(agent, &mut p, &prov)
}
