//! The decision matrix: device states built with `ferrota-t2g` and `ferrota-boot`, decided on
//! the host and under QEMU, compared line for line.

use std::path::Path;
use std::process::Command;

use embedded_storage::nor_flash::NorFlash;
use ferrota_boot::dbm::Dbm;
use ferrota_boot::log::{BootState, Event, LOG_ADDRESS, LOG_SIZE, MarkerLog, Trial};
use ferrota_boot::rom::{self, LifeCycle};
use ferrota_boot::{Bank, dbm};
use ferrota_image::sflash_key::{
    SFLASH_KEY_ADDRESS, SFLASH_KEY_AREA, p256_key_object, parse_key_object,
};
use ferrota_image::sign::BootSigningKey;
use ferrota_image::verify::verify_boot_in_flash;
use ferrota_image::{BootKey, FirmwareVersion, HardwareId, Region};
use ferrota_sim::boot_chain::Provisioning;
use ferrota_sim::images::{self, TestBank, test_bank};
use ferrota_t2g::Device;

use crate::export::{ExportError, Load, export};
use crate::inputs::BoardInputs;
use crate::map::Board;
use crate::report::{self, Line};

/// The board id the matrix's DBM is configured with.
pub const BOARD_ID: &str = "KIT_T2G-B-H_LITE";

/// The boot signing key of the matrix (`ferrota_sim::keys::boot_signing_key`, a fixed test
/// scalar).
pub fn signing_key() -> &'static BootSigningKey {
    ferrota_sim::keys::boot_signing_key()
}

/// What is wrong with an image, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// Nothing.
    None,
    /// One CM0+ byte changed after signing.
    TamperedCm0p,
    /// Signed for another board.
    OtherBoard,
    /// The CM0+ signature slot zeroed.
    Unsigned,
}

/// A signed bank image with security counter `counter` (version 1.`counter`.0). With
/// `full_cm7_0`, CM7_0 keeps its full objSize (0x3D7F00: the whole bank is hashed on
/// verification); otherwise it is shrunk to 0x3000.
pub fn bank_image(counter: u32, flaw: Flaw, full_cm7_0: bool) -> Vec<u8> {
    let spec = TestBank {
        version: FirmwareVersion::new(1, counter as u8, 0),
        counter,
        board: BOARD_ID,
        seed: u64::from(counter),
        full_cm7_0,
        flaw: match flaw {
            Flaw::None => images::Flaw::None,
            Flaw::TamperedCm0p => images::Flaw::Tampered(Region::Cm0p),
            Flaw::OtherBoard => images::Flaw::OtherBoard,
            Flaw::Unsigned => images::Flaw::Unsigned(Region::Cm0p),
        },
    };
    test_bank(&spec, signing_key()).expect("the matrix's bank builds")
}

/// The SFlash public-key object of the matrix key.
pub fn key_object() -> Vec<u8> {
    match signing_key().boot_key().expect("public key") {
        BootKey::EcdsaP256(k) => p256_key_object(&k).to_vec(),
        BootKey::Rsa2048(_) => unreachable!("the matrix key is P-256"),
    }
}

/// A provisioned board (`ferrota_sim::boot_chain::provision`): DBM area configured for
/// [`BOARD_ID`], the matrix key's object, TOC2 in SFlash, S-HASH blown; NORMAL_PROVISIONED.
pub fn provisioned() -> Device {
    ferrota_sim::boot_chain::provision(&Provisioning {
        key: signing_key().boot_key().expect("public key"),
        life_cycle: ferrota_t2g::LifeCycle::NormalProvisioned,
        hardware: HardwareId::new(BOARD_ID),
    })
    .expect("a blank device provisions")
}

/// Programs the CM0+ region of `img` into `bank` (single-bank mode, as a debugger does). Only
/// the CM0+ region matters to the DBM.
pub fn install(dev: &mut Device, bank: Bank, img: &[u8]) {
    dev.reset();
    let mut sb = dev.single_bank().expect("single bank");
    let base = bank.sbm_offset();
    sb.erase(base, base + 0x1_0000).expect("erase");
    sb.write(base, &img[..0x1_0000]).expect("write");
}

/// Appends records to the marker log.
pub fn record(dev: &mut Device, states: &[BootState]) {
    dev.reset();
    dev.set_work_err_silent(true).expect("flash ctl");
    let mut log =
        MarkerLog::new(dev.work_flash_range(LOG_ADDRESS, LOG_SIZE).expect("range")).expect("log");
    for s in states {
        log.append(s).expect("append");
    }
}

/// One row of the matrix.
#[derive(Debug, Clone)]
pub struct Case {
    /// Its name.
    pub name: &'static str,
    /// The device.
    pub dev: Device,
    /// The inputs (USER1, life cycle, eFuse).
    pub inputs: BoardInputs,
}

fn inputs(dev: &Device) -> BoardInputs {
    BoardInputs {
        lifecycle: LifeCycle::from_value(dev.lifecycle().value()),
        user1: false,
        efuse_floor: dev.rollback_counter(),
        shash: dev.efuse().shash(),
        hardware: HardwareId::new(BOARD_ID),
    }
}

/// The fingerprint the CM0+ stage records for an image.
fn fingerprint(img: &[u8]) -> u32 {
    let key = signing_key().boot_key().expect("key");
    let v = verify_boot_in_flash(&mut SliceFlash(img), 0, &key, &mut [0u8; 512]).expect("valid");
    dbm::fingerprint(&v)
}

struct SliceFlash<'a>(&'a [u8]);
impl embedded_storage::nor_flash::ErrorType for SliceFlash<'_> {
    type Error = embedded_storage::nor_flash::NorFlashErrorKind;
}
impl embedded_storage::nor_flash::ReadNorFlash for SliceFlash<'_> {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let o = offset as usize;
        let src = self
            .0
            .get(o..o + bytes.len())
            .ok_or(embedded_storage::nor_flash::NorFlashErrorKind::OutOfBounds)?;
        bytes.copy_from_slice(src);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.0.len()
    }
}

/// The matrix: valid and tampered banks, trial and confirmed states, floors (log and eFuse),
/// USER1, bad marks, hardware ids, the ROM's S-HASH, a log that must compact.
pub fn cases() -> Vec<Case> {
    let good1 = bank_image(1, Flaw::None, false);
    let good2 = bank_image(2, Flaw::None, false);
    let good3 = bank_image(3, Flaw::None, false);
    let bad1 = bank_image(1, Flaw::TamperedCm0p, false);
    let bad2 = bank_image(2, Flaw::TamperedCm0p, false);
    let other = bank_image(2, Flaw::OtherBoard, false);
    let unsigned = bank_image(2, Flaw::Unsigned, false);
    let base = provisioned();
    let st = |current, trial, floor, event| BootState {
        current,
        trial,
        floor,
        bad: [None, None],
        event,
    };
    let trial = |used| {
        Some(Trial {
            bank: Bank::Upper,
            budget: 3,
            used,
        })
    };
    let activated = st(
        Some(Bank::Lower),
        trial(0),
        1,
        Event::Trial { bank: Bank::Upper },
    );
    let confirmed = st(
        Some(Bank::Upper),
        None,
        2,
        Event::Confirmed { bank: Bank::Upper },
    );

    let mut out = Vec::new();
    let mut case =
        |name: &'static str, f: &dyn Fn(&mut Device), tweak: &dyn Fn(&mut BoardInputs)| {
            let mut dev = base.clone();
            f(&mut dev);
            dev.reset();
            let mut i = inputs(&dev);
            tweak(&mut i);
            out.push(Case {
                name,
                dev,
                inputs: i,
            });
        };
    let none = |_: &mut BoardInputs| {};
    let user1 = |i: &mut BoardInputs| i.user1 = true;

    case("empty-device", &|_| {}, &none);
    case(
        "fresh-lower-valid",
        &|d| install(d, Bank::Lower, &good1),
        &none,
    );
    case(
        "lower-tampered-upper-valid",
        &|d| {
            install(d, Bank::Lower, &bad1);
            install(d, Bank::Upper, &good2);
        },
        &none,
    );
    case(
        "both-tampered",
        &|d| {
            install(d, Bank::Lower, &bad1);
            install(d, Bank::Upper, &bad2);
        },
        &none,
    );
    case(
        "upper-unsigned-lower-valid",
        &|d| {
            install(d, Bank::Lower, &good1);
            install(d, Bank::Upper, &unsigned);
            record(d, &[st(Some(Bank::Upper), None, 1, Event::None)]);
        },
        &none,
    );
    case(
        "trial-first-attempt",
        &|d| {
            install(d, Bank::Lower, &good1);
            install(d, Bank::Upper, &good2);
            record(d, &[activated]);
        },
        &none,
    );
    case(
        "trial-third-attempt",
        &|d| {
            install(d, Bank::Lower, &good1);
            install(d, Bank::Upper, &good2);
            record(
                d,
                &[
                    activated,
                    BootState {
                        trial: trial(2),
                        event: Event::Booted {
                            bank: Bank::Upper,
                            attempt: 2,
                        },
                        ..activated
                    },
                ],
            );
        },
        &none,
    );
    case(
        "trial-budget-exhausted",
        &|d| {
            install(d, Bank::Lower, &good1);
            install(d, Bank::Upper, &good2);
            record(
                d,
                &[
                    activated,
                    BootState {
                        trial: trial(3),
                        event: Event::Booted {
                            bank: Bank::Upper,
                            attempt: 3,
                        },
                        ..activated
                    },
                ],
            );
        },
        &none,
    );
    case(
        "trial-bank-tampered",
        &|d| {
            install(d, Bank::Lower, &good1);
            install(d, Bank::Upper, &bad2);
            record(d, &[activated]);
        },
        &none,
    );
    case(
        "confirmed-upper",
        &|d| {
            install(d, Bank::Lower, &good1);
            install(d, Bank::Upper, &good2);
            record(d, &[activated, confirmed]);
        },
        &none,
    );
    case(
        "confirmed-upper-tampered-lower-below-floor",
        &|d| {
            install(d, Bank::Lower, &good1);
            install(d, Bank::Upper, &bad2);
            record(d, &[activated, confirmed]);
        },
        &none,
    );
    case(
        "efuse-floor-refuses-lower",
        &|d| {
            install(d, Bank::Lower, &good1);
            install(d, Bank::Upper, &good3);
            d.raise_rollback_counter(3).expect("efuse");
        },
        &none,
    );
    case(
        "user1-prefers-lower",
        &|d| {
            install(d, Bank::Lower, &good1);
            install(d, Bank::Upper, &good2);
            record(d, &[activated, confirmed]);
        },
        &user1,
    );
    case(
        "user1-lower-tampered",
        &|d| {
            install(d, Bank::Lower, &bad1);
            install(d, Bank::Upper, &good2);
        },
        &user1,
    );
    case(
        "user1-cancels-trial",
        &|d| {
            install(d, Bank::Lower, &good1);
            install(d, Bank::Upper, &good2);
            record(d, &[activated]);
        },
        &user1,
    );
    case(
        "other-board-lower",
        &|d| {
            install(d, Bank::Lower, &other);
            install(d, Bank::Upper, &good2);
        },
        &none,
    );
    let fp = fingerprint(&good1);
    case(
        "bad-mark-on-lower",
        &|d| {
            install(d, Bank::Lower, &good1);
            install(d, Bank::Upper, &good2);
            record(
                d,
                &[BootState {
                    bad: [Some(fp), None],
                    event: Event::MarkedBad {
                        bank: Bank::Lower,
                        fault: ferrota_boot::log::Fault::MarkedBad,
                    },
                    ..st(Some(Bank::Lower), None, 0, Event::None)
                }],
            );
        },
        &none,
    );
    // Issue 14: the self-test rejected the image in the lower bank (locked); USER1, which
    // prefers the lower bank, and the current-bank path both run the upper one.
    let rejected_lower = BootState {
        event: Event::Reverted {
            bank: Bank::Lower,
            reason: ferrota_boot::log::RevertReason::Rejected,
        },
        ..st(Some(Bank::Upper), None, 0, Event::None).locking(Bank::Lower)
    };
    case(
        "user1-rejected-lower-locked",
        &|d| {
            install(d, Bank::Lower, &good1);
            install(d, Bank::Upper, &good2);
            record(d, &[rejected_lower]);
        },
        &user1,
    );
    case(
        "locked-lower-only",
        &|d| {
            install(d, Bank::Lower, &good1);
            record(d, &[rejected_lower]);
        },
        &none,
    );
    case(
        "log-needs-compaction",
        &|d| {
            install(d, Bank::Lower, &good1);
            install(d, Bank::Upper, &good2);
            let mut states = vec![
                st(Some(Bank::Lower), None, 1, Event::None);
                ferrota_boot::log::SLOTS_PER_SECTOR - 1
            ];
            states.push(activated);
            record(d, &states);
        },
        &none,
    );
    case(
        "secure-shash-ok",
        &|d| {
            install(d, Bank::Lower, &good1);
            d.advance_lifecycle(ferrota_t2g::LifeCycle::Secure)
                .expect("lifecycle");
        },
        &none,
    );
    case(
        "secure-shash-mismatch",
        &|d| {
            install(d, Bank::Lower, &good1);
            d.advance_lifecycle(ferrota_t2g::LifeCycle::Secure)
                .expect("lifecycle");
        },
        &|i: &mut BoardInputs| i.shash[0] ^= 1,
    );
    out
}

/// The host's report line for a case: the same steps as the firmware, on the model.
pub fn host_line(case: &Case) -> String {
    let mut dev = case.dev.clone();
    dev.reset();
    let i = &case.inputs;
    let mut scratch = [0u8; 1024];
    let mut line = Line::new();
    if let Err(e) = rom::check(&mut dev.sflash(), i.lifecycle, &i.shash, &mut scratch) {
        report::rom_refused(&mut line, &e);
        return line.as_str().to_owned();
    }
    dev.set_work_err_silent(true).expect("flash ctl");
    let mut obj = vec![0u8; SFLASH_KEY_AREA];
    dev.read(SFLASH_KEY_ADDRESS, &mut obj).expect("sflash");
    let key = parse_key_object(&obj).expect("key object");
    let dbm = Dbm::new(&key)
        .user1(i.user1)
        .efuse_floor(i.efuse_floor)
        .hardware(i.hardware);
    // The log and the single-bank view are two views of one device: run the stages apart.
    let read = dbm
        .read_log(
            &mut MarkerLog::new(dev.work_flash_range(LOG_ADDRESS, LOG_SIZE).expect("log"))
                .expect("log"),
        )
        .expect("log read");
    let choice = read.choose(&mut dev.single_bank().expect("sbm"), &mut scratch);
    let mut log =
        MarkerLog::new(dev.work_flash_range(LOG_ADDRESS, LOG_SIZE).expect("log")).expect("log");
    let d = choice.persist(&mut log).expect("persist");
    let snap = log.read().expect("log");
    report::decision(&mut line, &d, &snap);
    line.as_str().to_owned()
}

/// Result of one QEMU run.
#[derive(Debug)]
pub struct QemuRun {
    /// Everything the firmware printed over semihosting.
    pub stdout: String,
    /// QEMU's diagnostics.
    pub stderr: String,
    /// QEMU's exit status (the firmware's semihosting exit code).
    pub success: bool,
}

/// Runs `elf` on `board` with the given images loaded (and `-icount shift=0` when `icount`).
pub fn run_qemu(
    board: &Board,
    elf: &Path,
    loads: &[Load],
    icount: bool,
) -> std::io::Result<QemuRun> {
    let mut cmd = Command::new("timeout");
    cmd.arg("120").arg("qemu-system-arm");
    cmd.args([
        "-machine",
        board.machine,
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        "none",
    ]);
    cmd.args(["-semihosting-config", "enable=on,target=native"]);
    if icount {
        cmd.args(["-icount", "shift=0"]);
    }
    cmd.arg("-kernel").arg(elf);
    for l in loads {
        cmd.arg("-device").arg(l.qemu_device());
    }
    let out = cmd.output()?;
    Ok(QemuRun {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        success: out.status.success(),
    })
}

/// The outcome of one case.
#[derive(Debug)]
pub struct CaseResult {
    /// The case.
    pub name: &'static str,
    /// The host's line.
    pub host: String,
    /// The firmware's `DBM ...` line (empty if it printed none).
    pub target: String,
    /// The firmware's other lines (stack, counters).
    pub extra: Vec<String>,
}

impl CaseResult {
    /// Whether host and target agree.
    pub fn passed(&self) -> bool {
        self.host == self.target
    }
}

/// Exports and runs one case.
pub fn run_case(
    case: &Case,
    board: &Board,
    elf: &Path,
    dir: &Path,
) -> Result<CaseResult, ExportError> {
    let loads = export(&case.dev, &case.inputs, board, &dir.join(case.name))?;
    let run = run_qemu(board, elf, &loads, false)?;
    let mut target = String::new();
    let mut extra = Vec::new();
    for l in run.stdout.lines() {
        if l.starts_with("DBM ") && target.is_empty() {
            target = l.to_owned();
        } else if !l.trim().is_empty() {
            extra.push(l.to_owned());
        }
    }
    if !run.success {
        extra.push(format!("qemu failed: {}", run.stderr.trim()));
    }
    Ok(CaseResult {
        name: case.name,
        host: host_line(case),
        target,
        extra,
    })
}
