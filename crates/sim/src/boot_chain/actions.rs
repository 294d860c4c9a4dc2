//! What a debugger and the CM7 app do to the device between boots: program a bank image, and
//! the app's update actions through `ferrota_boot::app`.

use core::time::Duration;

use ferrota_boot::Bank;
use ferrota_boot::app;
use ferrota_boot::log::BootState;
use ferrota_boot::log::{Event, Trial};
use ferrota_image::verify::{verify_bank_in_flash, verify_boot_in_flash, verify_written_bank};
use ferrota_image::{BankVerified, BootVerifier, VerifiedBoot, VersionRecord};
use ferrota_t2g::geometry::{
    CODE_BASE, CODE_LARGE_SECTOR, CODE_ROW, EFUSE_COUNTER_BITS, HALF_LARGE_SIZE,
};
use ferrota_t2g::{BankMode, Device, Mapping};

use super::Error;
use super::run::{SCRATCH, marker_log, read_params, read_state};

/// Size of a bank image: the large sectors of one bank, 0x3F8000 bytes.
pub const BANK_IMAGE_SIZE: usize = HALF_LARGE_SIZE as usize;

/// What [`program_bank`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Programmed {
    /// The physical bank written.
    pub bank: Bank,
    /// Sectors erased.
    pub sectors_erased: u32,
    /// 512-byte rows programmed (rows that are all 0xFF are left erased, as debuggers do).
    pub rows_programmed: u32,
    /// Flash operations.
    pub ops: u64,
    /// Simulated flash time.
    pub flash_time: Duration,
    /// Whether the whole bank verifies with the provisioned key (`None`: no key provisioned).
    pub verification: Option<Result<VersionRecord, ferrota_image::Error>>,
}

/// Programs a bank image into a physical bank as a debugger does: single-bank addresses, every
/// large sector of the bank erased, then every row that is not blank programmed. Anything may be
/// written (the boot chain judges it); [`Programmed::verification`] says what the DBM will think.
pub fn program_bank(dev: &mut Device, bank: Bank, image: &[u8]) -> Result<Programmed, Error> {
    if image.len() != BANK_IMAGE_SIZE {
        return Err(Error::BankSize { len: image.len() });
    }
    let (ops, t) = (dev.op_count(), dev.now());
    dev.reset();
    let base = CODE_BASE + bank.sbm_offset();
    let mut sectors_erased = 0;
    for off in (0..HALF_LARGE_SIZE).step_by(CODE_LARGE_SECTOR as usize) {
        dev.erase_sector(base + off)?;
        sectors_erased += 1;
    }
    let mut rows_programmed = 0;
    for (i, row) in image.chunks(CODE_ROW as usize).enumerate() {
        if row.iter().all(|&b| b == 0xFF) {
            continue;
        }
        dev.program_code(base + (i as u32) * CODE_ROW, row)?;
        rows_programmed += 1;
    }
    let (ops, flash_time) = (dev.op_count() - ops, dev.now() - t);
    let verification = match read_params(dev) {
        Ok(p) => Some(verify_physical_bank(dev, bank, &p.ring)),
        Err(Error::NoDbm | Error::Key(_) | Error::KeySlot(_)) => None,
        Err(e) => return Err(e),
    };
    Ok(Programmed {
        bank,
        sectors_erased,
        rows_programmed,
        ops,
        flash_time,
        verification,
    })
}

/// Verifies every region of a physical bank (on a copy at reset: single-bank view).
pub fn verify_physical_bank<K: BootVerifier>(
    dev: &Device,
    bank: Bank,
    key: &K,
) -> Result<VersionRecord, ferrota_image::Error> {
    let mut d = dev.clone();
    d.reset();
    let mut sb = d.single_bank().expect("single-bank mode after reset");
    verify_bank_in_flash(&mut sb, bank.sbm_offset(), key, &mut [0u8; SCRATCH])
        .map(|v| *v.boot().record())
}

/// The CM0+ region and version record of a physical bank, as the DBM checks it.
pub fn verify_boot_of<K: BootVerifier>(
    dev: &Device,
    bank: Bank,
    key: &K,
) -> Result<VersionRecord, ferrota_image::Error> {
    boot_proof_of(dev, bank, key).map(|v| *v.record())
}

/// The proof [`verify_boot_of`] checks: what `ferrota_boot::app::confirm` requires.
pub fn boot_proof_of<K: BootVerifier>(
    dev: &Device,
    bank: Bank,
    key: &K,
) -> Result<VerifiedBoot, ferrota_image::Error> {
    let mut d = dev.clone();
    d.reset();
    let mut sb = d.single_bank().expect("single-bank mode after reset");
    verify_boot_in_flash(&mut sb, bank.sbm_offset(), key, &mut [0u8; SCRATCH])
}

/// The agent's check of a bank before it activates it, for a lab device that holds bank images,
/// not downloads: [`verify_written_bank`] over the bank's bytes in flash. A `t2g` device file has
/// no release pipeline and so no OTA signature; the lab plays the pipeline's part by signing the
/// bank image with the fixed test code-signing key (`crate::keys`), then checks it exactly as the agent checks a
/// download (the OTA signature over the bytes read back, then the CM0+ region with the
/// provisioned boot key). The proof is only ever made by `ferrota-image`.
fn lab_check<K: BootVerifier>(dev: &Device, bank: Bank, key: &K) -> Result<BankVerified, Error> {
    let mut d = dev.clone();
    d.reset();
    let mut sb = d.single_bank()?;
    let base = bank.sbm_offset();
    let mut file = vec![0u8; BANK_IMAGE_SIZE];
    embedded_storage::nor_flash::ReadNorFlash::read(&mut sb, base, &mut file)?;
    // The fixed test code-signing key: this signature proves only that the bytes were read
    // back whole, never where they came from (that is the release pipeline's key).
    let code_key = crate::keys::code_signing_key();
    let sig = ferrota_image::ota::sign_file(code_key, &file)
        .map_err(|e| Error::Lab(format!("cannot sign the bank image: {e}")))?;
    verify_written_bank(
        &mut sb,
        base,
        BANK_IMAGE_SIZE as u32,
        &sig,
        code_key.verifying_key(),
        key,
        &mut [0u8; SCRATCH],
    )
    .map_err(|e| match e {
        ferrota_image::verify::WrittenBankError::Boot(error) => Error::BankInvalid { bank, error },
        other => Error::Lab(format!("the {bank} bank cannot be checked: {other}")),
    })
}

/// `--force`: TRIAL for the inactive bank without the agent's check, written as
/// `ferrota_boot::app::request_activation` writes it. This is what a faulty or compromised app
/// could do; the lab offers it, and the boot chain's tests use it, to show the DBM refusing
/// such a bank at boot on its own.
pub fn unchecked_trial(dev: &mut Device, running: Bank, budget: u8) -> Result<BootState, Error> {
    let mut log = marker_log(dev)?;
    let s = log.state()?;
    let target = running.other();
    let new = BootState {
        current: Some(running),
        trial: Some(Trial {
            bank: target,
            budget,
            used: 0,
        }),
        event: Event::Trial { bank: target },
        ..s.with_bad_mark(target, None)
    };
    log.append(&new)?;
    Ok(new)
}

/// The bad-mark fingerprint ([`ferrota_boot::dbm::fingerprint`]) of the image in a physical
/// bank, if its CM0+ region verifies.
pub fn fingerprint_of<K: BootVerifier>(dev: &Device, bank: Bank, key: &K) -> Option<u32> {
    let mut d = dev.clone();
    d.reset();
    let mut sb = d.single_bank().ok()?;
    verify_boot_in_flash(&mut sb, bank.sbm_offset(), key, &mut [0u8; SCRATCH])
        .ok()
        .map(|v| ferrota_boot::dbm::fingerprint(&v))
}

/// The bank the app runs from after the last boot, from the log: the trial bank once the DBM
/// has started an attempt of it (BOOTED is written before the jump), else the current bank.
pub fn running_bank(state: &BootState) -> Bank {
    match state.trial {
        Some(t) if t.used > 0 => t.bank,
        _ => state.preferred(),
    }
}

/// The device as the app sees it: dual-bank mode, `running` mapped, WORK_ERR_SILENT set.
fn as_app(dev: &mut Device, running: Bank) -> Result<(), Error> {
    dev.reset();
    dev.set_work_err_silent(true)?;
    dev.set_bank_mode(BankMode::Dual)?;
    dev.set_mapping(if running.main_map() {
        Mapping::B
    } else {
        Mapping::A
    })?;
    Ok(())
}

/// What [`activate`] recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// The bank the app runs from.
    pub running: Bank,
    /// The bank under trial now.
    pub target: Bank,
    /// The target's version record (`None` if it does not verify and `force` was given).
    pub record: Option<VersionRecord>,
    /// The log state written.
    pub state: BootState,
    /// Flash operations.
    pub ops: u64,
    /// Simulated flash time.
    pub flash_time: Duration,
}

/// Activates the inactive bank, as the agent does after a download: TRIAL with `budget` boots.
/// Refuses a bank that does not verify with the provisioned key, and a downgrade below the
/// anti-rollback floor, as the agent would, unless `force` (to show the DBM refusing it).
pub fn activate(dev: &mut Device, budget: u8, force: bool) -> Result<Activation, Error> {
    let params = read_params(dev)?;
    let state = read_state(dev)?;
    let running = running_bank(&state);
    let target = running.other();
    let record = match verify_physical_bank(dev, target, &params.ring) {
        Ok(r) => {
            let floor = state.floor.max(dev.rollback_counter());
            if r.security_counter < floor && !force {
                return Err(Error::Downgrade {
                    bank: target,
                    counter: r.security_counter,
                    floor,
                });
            }
            Some(r)
        }
        Err(error) if !force => {
            return Err(Error::BankInvalid {
                bank: target,
                error,
            });
        }
        Err(_) => None,
    };
    let proof = match record {
        Some(_) => Some(lab_check(dev, target, &params.ring)?),
        None => None,
    };
    let (ops, t) = (dev.op_count(), dev.now());
    as_app(dev, running)?;
    let state = match &proof {
        Some(proof) => app::request_activation(&mut marker_log(dev)?, running, proof, budget)?,
        None => unchecked_trial(dev, running, budget)?,
    };
    Ok(Activation {
        running,
        target,
        record,
        state,
        ops: dev.op_count() - ops,
        flash_time: dev.now() - t,
    })
}

/// What [`confirm`] recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// The confirmed bank.
    pub bank: Bank,
    /// Its version record.
    pub record: VersionRecord,
    /// The log's floor now.
    pub floor: u32,
    /// The eFuse anti-rollback counter now.
    pub efuse_counter: u32,
    /// Flash and eFuse operations.
    pub ops: u64,
    /// Simulated time.
    pub flash_time: Duration,
}

/// Confirms the running image (its self-test passed): CONFIRMED, the log's floor raised to its
/// security counter, then the eFuse counter raised to the floor (capped at its 128 bits).
pub fn confirm(dev: &mut Device) -> Result<Confirmation, Error> {
    let params = read_params(dev)?;
    let running = running_bank(&read_state(dev)?);
    let boot = boot_proof_of(dev, running, &params.ring).map_err(|error| Error::BankInvalid {
        bank: running,
        error,
    })?;
    let record = *boot.record();
    let (ops, t) = (dev.op_count(), dev.now());
    as_app(dev, running)?;
    let floor = app::confirm(&mut marker_log(dev)?, running, &boot)?;
    dev.raise_rollback_counter(floor.min(EFUSE_COUNTER_BITS))?;
    Ok(Confirmation {
        bank: running,
        record,
        floor,
        efuse_counter: dev.rollback_counter(),
        ops: dev.op_count() - ops,
        flash_time: dev.now() - t,
    })
}

/// What [`reject`] recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The rejected bank.
    pub bank: Bank,
    /// The log state written.
    pub state: BootState,
    /// Flash operations.
    pub ops: u64,
    /// Simulated flash time.
    pub flash_time: Duration,
}

/// Rejects the running trial image (its self-test failed): REVERTED, the previous bank boots
/// next.
pub fn reject(dev: &mut Device) -> Result<Rejection, Error> {
    let running = running_bank(&read_state(dev)?);
    let (ops, t) = (dev.op_count(), dev.now());
    as_app(dev, running)?;
    let state = app::reject(&mut marker_log(dev)?, running)?;
    Ok(Rejection {
        bank: running,
        state,
        ops: dev.op_count() - ops,
        flash_time: dev.now() - t,
    })
}
