//! Shared fixtures and the simulated boot chain: a `ferrota_t2g::Device` driven through
//! ROM → DBM → mapping switch → CM0+ stage by `ferrota_sim::boot_chain`, exactly as the chip
//! runs them.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use embedded_storage::nor_flash::NorFlash;
use ferrota_boot::cm0p;
use ferrota_boot::dbm::{BootReason, Halt};
use ferrota_boot::log::{BootState, LOG_ADDRESS, LOG_SIZE, LogError, MarkerLog};
use ferrota_boot::rom::RomError;
use ferrota_boot::{Bank, app};
use ferrota_image::ota::sign_file;
use ferrota_image::p256::ecdsa::SigningKey;
use ferrota_image::scheme::{SLOT, SignatureFault};
use ferrota_image::sign::BootSigningKey;
use ferrota_image::verify::{
    WrittenBankError, verify_bank_in_flash, verify_boot_in_flash, verify_region,
    verify_written_bank,
};
use ferrota_image::{
    BankVerified, BootKey, BootVerifier, FirmwareVersion, HardwareId, Region, Scheme, VerifiedBoot,
    VersionRecord,
};
use ferrota_sim::boot_chain;
use ferrota_sim::images::{Flaw, SHRUNK_CM7_0, TestBank, test_bank};
use ferrota_t2g::{BankMode, Device, LifeCycle, Mapping, WorkFlashView};

/// The CM7_0 objSize of the test banks: small, so a verification hashes ~80 KB, not 4 MB.
pub const CM7_0_OBJ_SIZE: u32 = SHRUNK_CM7_0;
/// Hash scratch size.
pub const SCRATCH: usize = 4096;
/// The board's id.
pub const BOARD: &str = "KIT_T2G-B-H_LITE";

/// The bank ranges a test image occupies: (bank offset, length). Everything else is unsigned
/// and left alone. The CM0+ region is the last one the agent writes.
pub const RANGES: [(u32, u32); 3] = [(0x3E_8000, 0x1_0000), (0x1_0000, 0x8000), (0, 0x1_0000)];

/// The boot signing key of the test boards (`ferrota_sim::keys`).
pub fn signing_key() -> &'static BootSigningKey {
    ferrota_sim::keys::boot_signing_key()
}

/// A verifier that remembers results: a signature over the same digest is checked once per test
/// binary. The digest is still computed from the flash contents every time, so any tampering
/// still shows (a different digest misses the cache).
pub struct CachedKey {
    key: BootKey,
    seen: Mutex<HashMap<SigKey, Result<(), SignatureFault>>>,
}

type SigKey = ([u8; 32], [u8; SLOT]);
type ImageCache = Mutex<HashMap<(Kind, u32), Arc<Image>>>;

impl BootVerifier for CachedKey {
    fn scheme(&self) -> Scheme {
        self.key.scheme()
    }
    fn verify_digest(&self, digest: &[u8; 32], slot: &[u8; SLOT]) -> Result<(), SignatureFault> {
        let k = (*digest, *slot);
        if let Some(r) = self.seen.lock().unwrap().get(&k) {
            return *r;
        }
        let r = self.key.verify_digest(digest, slot);
        self.seen.lock().unwrap().insert(k, r);
        r
    }
}

pub fn key() -> &'static CachedKey {
    static K: OnceLock<CachedKey> = OnceLock::new();
    K.get_or_init(|| CachedKey {
        key: signing_key().boot_key().unwrap(),
        seen: Mutex::new(HashMap::new()),
    })
}

/// What an image does when it runs (the CM7 app's behaviour), encoded in its version's build
/// number so the harness knows it from the record the DBM verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Passes its self-test and confirms.
    Good,
    /// Crashes before it can confirm.
    Crashing,
    /// Fails its self-test and rejects itself.
    Rejecting,
    /// Signed, but one CM0+ byte was changed after signing (the DBM refuses it).
    TamperedCm0p,
    /// Signed, but one CM7_0 byte was changed after signing (the CM0+ stage refuses it).
    TamperedCm7_0,
    /// CM7_1 signature slot zeroed (unsigned, as the seed shipped it).
    UnsignedCm7_1,
    /// Signed, one CM7_1 byte changed.
    TamperedCm7_1,
    /// Signed for another board.
    OtherBoard,
}

impl Kind {
    fn code(self) -> u16 {
        self as u16
    }
    pub fn of(record: &VersionRecord) -> Kind {
        use Kind::*;
        [
            Good,
            Crashing,
            Rejecting,
            TamperedCm0p,
            TamperedCm7_0,
            UnsignedCm7_1,
            TamperedCm7_1,
            OtherBoard,
        ][usize::from(record.version.build())]
    }
    /// Whether the DBM accepts its CM0+ region (floor aside).
    pub fn dbm_ok(self) -> bool {
        !matches!(self, Kind::TamperedCm0p | Kind::OtherBoard)
    }
    /// Whether the CM0+ stage accepts its CM7 regions.
    pub fn cm7_ok(self) -> bool {
        !matches!(
            self,
            Kind::TamperedCm7_0 | Kind::UnsignedCm7_1 | Kind::TamperedCm7_1
        )
    }
}

/// A test image: the bytes of its three ranges.
#[derive(Debug)]
pub struct Image {
    pub kind: Kind,
    pub counter: u32,
    pub version: FirmwareVersion,
    pub segments: Vec<(u32, Vec<u8>)>,
    /// The bad-mark fingerprint (first 4 bytes of the CM0+ digest), if its CM0+ verifies.
    pub fingerprint: Option<u32>,
}

/// The image of `kind` with security counter `counter` (version 1.counter.kind), built and
/// signed once per test binary.
pub fn image(kind: Kind, counter: u32) -> Arc<Image> {
    static CACHE: OnceLock<ImageCache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(i) = cache.lock().unwrap().get(&(kind, counter)) {
        return i.clone();
    }
    let img = Arc::new(build_image(kind, counter));
    cache.lock().unwrap().insert((kind, counter), img.clone());
    img
}

fn build_image(kind: Kind, counter: u32) -> Image {
    let version = FirmwareVersion::new(1, counter as u8, kind.code());
    let flaw = match kind {
        Kind::Good | Kind::Crashing | Kind::Rejecting => Flaw::None,
        Kind::TamperedCm0p => Flaw::Tampered(Region::Cm0p),
        Kind::TamperedCm7_0 => Flaw::Tampered(Region::Cm7_0),
        Kind::TamperedCm7_1 => Flaw::Tampered(Region::Cm7_1),
        Kind::UnsignedCm7_1 => Flaw::Unsigned(Region::Cm7_1),
        Kind::OtherBoard => Flaw::OtherBoard,
    };
    let spec = TestBank {
        version,
        counter,
        board: BOARD,
        seed: u64::from(counter) * 16 + u64::from(kind.code()),
        full_cm7_0: false,
        flaw,
    };
    let bank = test_bank(&spec, signing_key()).expect("the test bank builds");
    let fingerprint = verify_region(&bank, Region::Cm0p, key())
        .ok()
        .map(|v| u32::from_le_bytes([v.digest()[0], v.digest()[1], v.digest()[2], v.digest()[3]]));
    let segments = RANGES
        .iter()
        .map(|&(o, l)| (o, bank[o as usize..(o + l) as usize].to_vec()))
        .collect();
    Image {
        kind,
        counter,
        version,
        segments,
        fingerprint,
    }
}

/// Writes an image into a flash view of one bank: erase everything first (CM0+ first, so a
/// partial bank never verifies), then write CM7_1, CM7_0 and CM0+ last.
pub fn write_image<F: NorFlash>(bank: &mut F, img: &Image) -> Result<(), F::Error> {
    for &(o, l) in RANGES.iter().rev() {
        bank.erase(o, o + l.max(0x8000))?;
    }
    for (o, bytes) in &img.segments {
        bank.write(*o, bytes)?;
    }
    Ok(())
}

/// Programs an image into a physical bank as a debugger does (single-bank mode).
pub fn install(dev: &mut Device, bank: Bank, img: &Image) {
    dev.reset();
    let mut sb = dev.single_bank().unwrap();
    let base = bank.sbm_offset();
    for &(o, l) in RANGES.iter().rev() {
        sb.erase(base + o, base + o + l.max(0x8000)).unwrap();
    }
    for (o, bytes) in &img.segments {
        sb.write(base + o, bytes).unwrap();
    }
}

/// A board provisioned by `ferrota_sim::boot_chain::provision`: SFlash holds the boot key (and
/// a DBM area, TOC2), S-HASH blown, life cycle NORMAL_PROVISIONED (or SECURE).
pub fn provisioned(secure: bool) -> Device {
    boot_chain::provision(&boot_chain::Provisioning {
        key: signing_key().boot_key().unwrap(),
        life_cycle: if secure {
            LifeCycle::Secure
        } else {
            LifeCycle::NormalProvisioned
        },
        hardware: HardwareId::new(BOARD),
    })
    .unwrap()
}

/// The standard start: v1 (counter 1) good in the lower bank, nothing recorded.
pub fn fresh() -> Device {
    static D: OnceLock<Device> = OnceLock::new();
    D.get_or_init(|| {
        let mut d = provisioned(false);
        install(&mut d, Bank::Lower, &image(Kind::Good, 1));
        d.reset();
        d
    })
    .clone()
}

#[derive(Debug)]
pub enum SimError {
    Device(ferrota_t2g::Error),
    Chain(boot_chain::Error),
    Log(LogError<ferrota_t2g::Error>),
    App(app::AppError<ferrota_t2g::Error>),
}

impl From<ferrota_t2g::Error> for SimError {
    fn from(e: ferrota_t2g::Error) -> Self {
        SimError::Device(e)
    }
}
impl From<boot_chain::Error> for SimError {
    fn from(e: boot_chain::Error) -> Self {
        SimError::Chain(e)
    }
}
impl From<LogError<ferrota_t2g::Error>> for SimError {
    fn from(e: LogError<ferrota_t2g::Error>) -> Self {
        SimError::Log(e)
    }
}
impl From<app::AppError<ferrota_t2g::Error>> for SimError {
    fn from(e: app::AppError<ferrota_t2g::Error>) -> Self {
        SimError::App(e)
    }
}

/// The marker log of a device (WORK_ERR_SILENT must be set to read it).
pub fn log(dev: &mut Device) -> MarkerLog<WorkFlashView<'_>> {
    MarkerLog::new(dev.work_flash_range(LOG_ADDRESS, LOG_SIZE).unwrap()).unwrap()
}

/// The log state, read as the DBM reads it (on a copy, so the device is unchanged).
pub fn state(dev: &Device) -> BootState {
    let mut d = dev.clone();
    d.power_cycle();
    d.set_work_err_silent(true).unwrap();
    log(&mut d).state().unwrap()
}

/// One pass of the boot chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pass {
    /// CM7_0 runs from `bank`.
    App(Running),
    /// The CM0+ stage recorded a failure and reset.
    Reset(cm0p::Reset),
    /// The DBM halted.
    Halt(Halt),
    /// The ROM refused to start.
    RomRefused(RomError),
}

/// What runs after a boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub bank: Bank,
    pub record: VersionRecord,
    pub reason: BootReason,
    pub start_cm7_1: bool,
    /// CM0+-stage resets before this run.
    pub resets: u32,
}

/// One ROM → DBM → switch → CM0+ pass from reset: `ferrota_sim::boot_chain::boot_pass`
/// with the caching verifier and this board's id.
pub fn boot_pass(dev: &mut Device, user1: bool) -> Result<Pass, SimError> {
    let mut steps = Vec::new();
    let pass = boot_chain::boot_pass(dev, key(), HardwareId::new(BOARD), user1, &mut steps)?;
    Ok(match pass {
        boot_chain::Pass::App(a) => {
            assert_eq!(a.mapping == Mapping::B, a.boot.bank.main_map());
            Pass::App(Running {
                bank: a.boot.bank,
                record: a.boot.record,
                reason: a.boot.reason,
                start_cm7_1: a.start.start_cm7_1,
                resets: 0,
            })
        }
        boot_chain::Pass::Reset(r) => Pass::Reset(r),
        boot_chain::Pass::Halt(h) => Pass::Halt(h),
        boot_chain::Pass::RomRefused(e) => Pass::RomRefused(e),
    })
}

/// The outcome of a boot (after any CM0+-stage resets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran {
    App(Running),
    Halt(Halt),
    RomRefused(RomError),
}

impl Ran {
    pub fn app(&self) -> &Running {
        match self {
            Ran::App(r) => r,
            other => panic!("expected an app to run, got {other:?}"),
        }
    }
}

/// Boots until an app runs, the DBM halts or the ROM refuses (at most 4 CM0+-stage resets).
pub fn boot(dev: &mut Device, user1: bool) -> Result<Ran, SimError> {
    for resets in 0..5 {
        match boot_pass(dev, user1)? {
            Pass::App(mut r) => {
                r.resets = resets;
                return Ok(Ran::App(r));
            }
            Pass::Halt(h) => return Ok(Ran::Halt(h)),
            Pass::RomRefused(e) => return Ok(Ran::RomRefused(e)),
            Pass::Reset(_) => continue,
        }
    }
    panic!("reset loop: the CM0+ stage keeps refusing");
}

/// Independent check of what runs: every region of the bank verifies, the hardware matches, and
/// the counter is at or above the floor (the log's and the eFuse's).
pub fn assert_sound(dev: &Device, r: &Running) {
    let mut d = dev.clone();
    d.reset();
    d.set_bank_mode(BankMode::Dual).unwrap();
    d.set_mapping(if r.bank.main_map() {
        Mapping::B
    } else {
        Mapping::A
    })
    .unwrap();
    let mut scratch = [0u8; SCRATCH];
    let v = verify_bank_in_flash(&mut d.active_bank().unwrap(), 0, key(), &mut scratch)
        .expect("the running bank verifies completely");
    assert_eq!(*v.boot().record(), r.record);
    let floor = state(dev).floor.max(dev.rollback_counter());
    assert!(
        r.record.security_counter >= floor,
        "counter {} below floor {floor}",
        r.record.security_counter
    );
    assert_eq!(r.record.hardware.as_str(), BOARD);
}

/// The agent's first step of an update: lock the inactive bank before writing it.
pub fn agent_lock(dev: &mut Device, running: Bank) -> Result<(), SimError> {
    app::lock_for_update(&mut log(dev), running)?;
    Ok(())
}

/// The code-signing key of the test images' OTA signature (`ferrota_sim::keys`).
fn code_key() -> &'static SigningKey {
    ferrota_sim::keys::code_signing_key()
}

/// The agent's check of the bank it wrote (`img`, in physical `bank`): the OTA signature of the
/// image file (its segments, erased gaps 0xFF) and the CM0+ region, both read back from flash
/// (on a copy of the device at reset, whatever the mapping, costing no operation of `dev`).
pub fn verify_written(
    dev: &Device,
    bank: Bank,
    img: &Image,
) -> Result<BankVerified, WrittenBankError> {
    let len = img
        .segments
        .iter()
        .map(|(o, b)| *o as usize + b.len())
        .max()
        .unwrap_or(0);
    let mut file = vec![0xFFu8; len];
    for (o, b) in &img.segments {
        file[*o as usize..*o as usize + b.len()].copy_from_slice(b);
    }
    let sig = sign_file(code_key(), &file).expect("P-256 signing");
    let mut scratch = [0u8; SCRATCH];
    let mut d = dev.clone();
    d.reset();
    verify_written_bank(
        &mut d.single_bank().expect("single-bank mode after reset"),
        bank.sbm_offset(),
        len as u32,
        &sig,
        code_key().verifying_key(),
        key(),
        &mut scratch,
    )
}

/// Puts the inactive bank on trial without the agent's check (`ferrota_sim`'s forged TRIAL
/// record, as `app::request_activation` writes it): what a faulty or compromised app could do,
/// so the tests show the DBM refusing such a bank on its own.
pub fn unchecked_trial(dev: &mut Device, running: Bank, budget: u8) -> Result<(), SimError> {
    boot_chain::unchecked_trial(dev, running, budget)?;
    Ok(())
}

/// Activates `img`, already written into the inactive bank, as the agent does: its check, then
/// TRIAL. An image whose CM0+ region does not verify (which the agent would refuse) is put on
/// trial by [`unchecked_trial`], so the DBM's own refusal is what the tests see.
pub fn activate_written(
    dev: &mut Device,
    running: Bank,
    img: &Image,
    budget: u8,
) -> Result<(), SimError> {
    if img.fingerprint.is_some() {
        let proof = verify_written(dev, running.other(), img).expect("the agent's check passes");
        app::request_activation(&mut log(dev), running, &proof, budget)?;
    } else {
        unchecked_trial(dev, running, budget)?;
    }
    Ok(())
}

/// The app's side after a boot: the agent locks the inactive bank, writes `img` into it and
/// activates it ([`activate_written`]).
pub fn agent_update(dev: &mut Device, running: Bank, img: &Image) -> Result<(), SimError> {
    agent_lock(dev, running)?;
    write_image(&mut dev.inactive_bank()?, img)?;
    activate_written(dev, running, img, ferrota_boot::log::DEFAULT_BUDGET)
}

/// The running bank's boot proof, as the app obtains it: the CM0+ region of the bank it runs
/// from, verified (on a copy of the device at reset, so the check reads the physical bank
/// whatever the mapping and costs no operation of `dev`).
pub fn running_boot(dev: &Device, bank: Bank) -> VerifiedBoot {
    let mut d = dev.clone();
    d.reset();
    let mut scratch = [0u8; SCRATCH];
    verify_boot_in_flash(
        &mut d.single_bank().expect("single-bank mode after reset"),
        bank.sbm_offset(),
        key(),
        &mut scratch,
    )
    .expect("the running bank's CM0+ region verifies")
}

/// The app's side: confirm, then raise the eFuse counter to the new floor.
pub fn agent_confirm(dev: &mut Device, r: &Running) -> Result<u32, SimError> {
    let boot = running_boot(dev, r.bank);
    assert_eq!(
        *boot.record(),
        r.record,
        "the running bank is the one booted"
    );
    let floor = app::confirm(&mut log(dev), r.bank, &boot)?;
    dev.raise_rollback_counter(floor.min(128))?;
    Ok(floor)
}

/// Runs the app behaviour of the image that runs: confirm (Good), reject (Rejecting), nothing
/// (Crashing), but only while its bank is under trial.
pub fn run_app(dev: &mut Device, r: &Running) -> Result<(), SimError> {
    let s = log(dev).state()?;
    if !matches!(s.trial, Some(t) if t.bank == r.bank) {
        return Ok(());
    }
    match Kind::of(&r.record) {
        Kind::Crashing => {}
        Kind::Rejecting => {
            app::reject(&mut log(dev), r.bank)?;
        }
        _ => {
            agent_confirm(dev, r)?;
        }
    }
    Ok(())
}

/// Appends the current state `n` times (moves the log's write position without changing the
/// state).
pub fn pad_log(dev: &mut Device, n: usize) {
    dev.power_cycle();
    dev.set_work_err_silent(true).unwrap();
    let mut l = log(dev);
    let s = l.state().unwrap();
    for _ in 0..n {
        l.append(&s).unwrap();
    }
}
