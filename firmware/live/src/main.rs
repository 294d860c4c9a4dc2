//! The live board's application (issue #21), first step: started by the DBM (`firmware/dbm`,
//! feature `live`) at `live::APP_EXEC`, it reads what the chip's application would read and
//! says what runs:
//!
//! * the DBM's hand-off (`live::handoff`, FLASH_CTL's stand-in): the bank it runs from;
//! * the version record of that bank (bank offset 0x18) and the image state from the marker log
//!   (`ferrota_boot::app::image_state`): `app version=X.Y.Z bank=lower state=confirmed`.
//!
//! The agent over the network follows (NET's `ferrota-fw-net`).

#![no_std]
#![no_main]

mod console;

use ferrota_boot::Bank;
use ferrota_boot::app::ImageState;
use ferrota_boot::log::{LOG_SIZE, MarkerLog};
use ferrota_fw_board::{MappedFlash, RamNor, entry, exit, stack};
use ferrota_image::version::{RECORD_AREA, RECORD_OFFSET};
use ferrota_image::{BANK_SIZE, VersionRecord};
use ferrota_qemu_harness::live::{self, HANDOFF, handoff::Handoff};

use console::say;

/// Interrupt lines of QEMU's mps2-an500 (its NVIC's `num-irq`).
const IRQS: usize = 32;

/// The device part of the vector table: every line to cortex-m-rt's `DefaultHandler` (nothing
/// here uses an interrupt line; the network is polled, SysTick is an exception). 16 + 32 words
/// keep the table within 256 bytes, so it may start at `live::APP_VECTOR_TABLE`.
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
    let r = run();
    if let Err(why) = r {
        say!("error {why}");
    }
    say!("fig stack={}", stack::high_water());
    exit(r.is_ok())
}

/// Says what runs; `Err` names what is missing.
fn run() -> Result<(), &'static str> {
    let h = Handoff::decode(MappedFlash::new(HANDOFF, live::handoff::SIZE as u32).bytes())
        .ok_or("handoff: the DBM left none (the app runs only through the DBM)")?;
    let bank = MappedFlash::new(h.bank_base(), BANK_SIZE).bytes();
    let at = RECORD_OFFSET as usize;
    let record = bank
        .get(at..at + RECORD_AREA)
        .and_then(|a| <&[u8; RECORD_AREA]>::try_from(a).ok())
        .and_then(|a| VersionRecord::parse(a).ok())
        .ok_or("version-record")?;
    // SAFETY: the marker log's PSRAM window, which nothing else uses while this runs.
    let state = MarkerLog::new(unsafe { RamNor::new(live::LOG, LOG_SIZE) })
        .and_then(|mut l| ferrota_boot::app::image_state(&mut l, h.bank))
        .map_err(|_| "marker-log")?;
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
    Ok(())
}
