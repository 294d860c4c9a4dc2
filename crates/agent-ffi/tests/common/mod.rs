//! A simulated board (`ferrota_t2g::Device` running v1 in the lower bank) behind the C
//! callbacks, and the C configuration of the test device: what a C program would pass.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::ffi::c_void;

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use ferrota_agent::Platform;
use ferrota_agent_ffi::*;
use ferrota_boot::Bank;
use ferrota_boot::log::{BootState, Event, LOG_ADDRESS, LOG_SIZE, MarkerLog, Trial};
use ferrota_sim::harness::{Msg, Service, THING, boot, install};
use ferrota_sim::images::ota::{BOARD, Spec, TestImage, image};
use ferrota_sim::platform::DevPlatform;
use ferrota_sim::service::{JobsStreams, OtaFile};
use ferrota_t2g::{BankMode, Device, Mapping};

/// The board the callbacks reach, plus counters a test can look at.
pub struct Board {
    pub dev: Device,
    pub bank: u8,
    /// Callback calls that failed.
    pub failures: u32,
    /// Programs of the inactive bank to let through before every further one fails (a
    /// flash driver error); `None`: all succeed.
    pub bank_writes_left: Option<u32>,
    /// The boot manager's callbacks fail: log reads, log writes, reads of each bank.
    pub log_reads_fail: bool,
    pub log_writes_fail: bool,
    pub bank_reads_fail: [bool; 2],
    /// An agent the write callback calls back into (a C callback that breaks the rule), null
    /// for none; what those calls returned.
    pub reenter: *mut FerrotaAgent,
    pub reentries: Vec<FerrotaStatus>,
}

/// Runs `f` on the area's view; `false` when it cannot be opened or `f` fails.
fn on_area(b: &mut Board, area: FerrotaArea, f: &mut dyn FnMut(&mut dyn Area) -> bool) -> bool {
    let mut p = DevPlatform(&mut b.dev);
    match area {
        FerrotaArea::FerrotaAreaInactiveBank => p.inactive_bank().is_ok_and(|mut v| f(&mut v)),
        FerrotaArea::FerrotaAreaActiveBank => p.active_bank().is_ok_and(|mut v| f(&mut v)),
        FerrotaArea::FerrotaAreaResume => p.resume_area().is_ok_and(|mut v| f(&mut v)),
        FerrotaArea::FerrotaAreaMarkerLog => p.marker_log().is_ok_and(|mut v| f(&mut v)),
        FerrotaArea::FerrotaAreaTrust => p.trust_area().is_ok_and(|mut v| f(&mut v)),
    }
}

/// What the callbacks need of a view, object-safe.
pub trait Area {
    fn read(&mut self, off: u32, buf: &mut [u8]) -> bool;
    fn write(&mut self, off: u32, data: &[u8]) -> bool;
    fn erase(&mut self, from: u32, to: u32) -> bool;
    fn size(&self) -> u32;
}

impl<F: NorFlash> Area for F {
    fn read(&mut self, off: u32, buf: &mut [u8]) -> bool {
        ReadNorFlash::read(self, off, buf).is_ok()
    }
    fn write(&mut self, off: u32, data: &[u8]) -> bool {
        NorFlash::write(self, off, data).is_ok()
    }
    fn erase(&mut self, from: u32, to: u32) -> bool {
        NorFlash::erase(self, from, to).is_ok()
    }
    fn size(&self) -> u32 {
        ReadNorFlash::capacity(self) as u32
    }
}

fn rc(b: &mut Board, ok: bool) -> i32 {
    if ok {
        0
    } else {
        b.failures += 1;
        -1
    }
}

/// # Safety
/// As C's: `user` is a `Board`, `buf` writable for `len`.
pub unsafe extern "C" fn read_cb(
    user: *mut c_void,
    area: FerrotaArea,
    off: u32,
    buf: *mut u8,
    len: usize,
) -> i32 {
    // SAFETY: the test passes a live `Board` as `user`; `buf` is the agent's buffer.
    let (b, out) = unsafe {
        (
            &mut *user.cast::<Board>(),
            std::slice::from_raw_parts_mut(buf, len),
        )
    };
    let ok = on_area(b, area, &mut |a| a.read(off, out));
    rc(b, ok)
}

/// # Safety
/// As C's: `user` is a `Board`, `data` readable for `len`.
pub unsafe extern "C" fn write_cb(
    user: *mut c_void,
    area: FerrotaArea,
    off: u32,
    data: *const u8,
    len: usize,
) -> i32 {
    // SAFETY: the test passes a live `Board` as `user`; `data` is the agent's buffer.
    let (b, data) = unsafe {
        (
            &mut *user.cast::<Board>(),
            std::slice::from_raw_parts(data, len),
        )
    };
    if !b.reenter.is_null() {
        let mut at = 0u64;
        // SAFETY: the agent whose callback this is: the calls must be refused, not run.
        let (poll, end) = unsafe {
            (
                ferrota_agent_poll_timeout(b.reenter, &mut at),
                ferrota_agent_deinit(b.reenter),
            )
        };
        b.reentries.extend([poll, end]);
    }
    if area == FerrotaArea::FerrotaAreaInactiveBank {
        match &mut b.bank_writes_left {
            Some(0) => return rc(b, false),
            Some(n) => *n -= 1,
            None => {}
        }
    }
    let ok = on_area(b, area, &mut |a| a.write(off, data));
    rc(b, ok)
}

/// # Safety
/// As C's: `user` is a `Board`.
pub unsafe extern "C" fn erase_cb(user: *mut c_void, area: FerrotaArea, from: u32, to: u32) -> i32 {
    // SAFETY: the test passes a live `Board` as `user`.
    let b = unsafe { &mut *user.cast::<Board>() };
    let ok = on_area(b, area, &mut |a| a.erase(from, to));
    rc(b, ok)
}

impl Board {
    /// A board running v1.1 (counter 1) in the lower bank, booted.
    pub fn new() -> Box<Board> {
        let mut dev = Device::new();
        install(&mut dev, Bank::Lower, &image(Spec::new(1, 1)));
        let running = boot(&mut dev).expect("v1 boots");
        let bank = match running.bank {
            Bank::Lower => 0,
            Bank::Upper => 1,
        };
        Box::new(Board {
            dev,
            bank,
            failures: 0,
            bank_writes_left: None,
            log_reads_fail: false,
            log_writes_fail: false,
            bank_reads_fail: [false; 2],
            reenter: std::ptr::null_mut(),
            reentries: Vec::new(),
        })
    }

    /// A board with `img` programmed into the lower bank as a debugger does, nothing else
    /// (no boot yet: the marker log is erased).
    pub fn with_lower(img: &TestImage) -> Box<Board> {
        let mut dev = Device::new();
        install(&mut dev, Bank::Lower, img);
        Box::new(Board {
            dev,
            bank: 0,
            failures: 0,
            bank_writes_left: None,
            log_reads_fail: false,
            log_writes_fail: false,
            bank_reads_fail: [false; 2],
            reenter: std::ptr::null_mut(),
            reentries: Vec::new(),
        })
    }

    /// The callbacks over this board (the board must not move: it is boxed).
    pub fn platform(&mut self) -> FerrotaPlatform {
        let mut area_size = [0u32; FERROTA_AREA_COUNT];
        for (i, area) in [
            FerrotaArea::FerrotaAreaInactiveBank,
            FerrotaArea::FerrotaAreaActiveBank,
            FerrotaArea::FerrotaAreaResume,
            FerrotaArea::FerrotaAreaMarkerLog,
            FerrotaArea::FerrotaAreaTrust,
        ]
        .into_iter()
        .enumerate()
        {
            on_area(self, area, &mut |a| {
                area_size[i] = a.size();
                true
            });
        }
        FerrotaPlatform {
            user: (self as *mut Board).cast(),
            read: Some(read_cb),
            write: Some(write_cb),
            erase: Some(erase_cb),
            area_size,
        }
    }
}

/// The configuration data a C program keeps for the agent's life (`static const` there).
pub struct CData {
    pub key: Box<FerrotaBootKey>,
    pub code_key: Vec<u8>,
}

impl CData {
    pub fn new() -> CData {
        let ferrota_image::BootKey::EcdsaP256(k) = ferrota_sim::keys::boot_key() else {
            panic!("the test boards' boot key is P-256");
        };
        let obj = ferrota_image::sflash_key::p256_key_object(k);
        // SAFETY: zeroed storage is a valid (unparsed) key: plain integers.
        let mut key: Box<FerrotaBootKey> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `obj` is readable, `key` writable.
        let st = unsafe { ferrota_boot_key_parse(obj.as_ptr(), obj.len(), &mut *key) };
        assert_eq!(st, FerrotaStatus::FerrotaOk);
        let code_key = ferrota_sim::keys::code_verifying_key()
            .to_sec1_point(false)
            .as_bytes()
            .to_vec();
        CData { key, code_key }
    }

    /// The C configuration for the test thing on `board`.
    pub fn config(&self, board: &Board) -> FerrotaConfig {
        FerrotaConfig {
            thing_name: THING.as_ptr(),
            thing_name_len: THING.len(),
            boot_key: &*self.key,
            code_signing_key: self.code_key.as_ptr(),
            code_signing_key_len: self.code_key.len(),
            hardware_id: BOARD.as_ptr(),
            hardware_id_len: BOARD.len(),
            trust_anchor: std::ptr::null(),
            trust_anchor_len: 0,
            require_signed_metadata: 0,
            running_bank: board.bank,
            block_size: 0,
            blocks_per_request: 0,
            requests_in_flight: 0,
        }
    }
}

/// Memory for the agent, aligned as the header asks.
#[repr(C, align(8))]
pub struct Mem(pub [u8; FERROTA_AGENT_SIZE + 16]);

impl Mem {
    pub fn new() -> Box<Mem> {
        Box::new(Mem([0; FERROTA_AGENT_SIZE + 16]))
    }
    pub fn ptr(&mut self) -> *mut c_void {
        self.0.as_mut_ptr().cast()
    }
}

/// Creates an agent on `board` with `data`'s configuration; panics unless it starts.
pub fn start(mem: &mut Mem, board: &mut Board, data: &CData, now_us: u64) -> *mut FerrotaAgent {
    let cfg = data.config(board);
    let p = board.platform();
    let mut out = std::ptr::null_mut();
    // SAFETY: everything lives for the test; `mem` is aligned and large enough.
    let st =
        unsafe { ferrota_agent_init(mem.ptr(), FERROTA_AGENT_SIZE, &cfg, &p, now_us, &mut out) };
    assert_eq!(st, FerrotaStatus::FerrotaOk);
    out
}

// ---- the boot manager's callbacks (single-bank mode, before the switch) ----

/// # Safety
/// As C's: `user` is a `Board`, `buf` writable for `len`.
pub unsafe extern "C" fn dbm_read_bank(
    user: *mut c_void,
    bank: u8,
    off: u32,
    buf: *mut u8,
    len: usize,
) -> i32 {
    // SAFETY: the test passes a live `Board` as `user`; `buf` is the DBM's buffer.
    let (b, out) = unsafe {
        (
            &mut *user.cast::<Board>(),
            std::slice::from_raw_parts_mut(buf, len),
        )
    };
    let base = match bank {
        0 => Bank::Lower,
        1 => Bank::Upper,
        _ => return rc(b, false),
    }
    .sbm_offset();
    if b.bank_reads_fail[usize::from(bank)] {
        return rc(b, false);
    }
    let ok = b
        .dev
        .single_bank()
        .is_ok_and(|mut v| ReadNorFlash::read(&mut v, base + off, out).is_ok());
    rc(b, ok)
}

/// # Safety
/// As C's: `user` is a `Board`, `buf` writable for `len`.
pub unsafe extern "C" fn dbm_read_log(
    user: *mut c_void,
    off: u32,
    buf: *mut u8,
    len: usize,
) -> i32 {
    // SAFETY: as `dbm_read_bank`.
    let (b, out) = unsafe {
        (
            &mut *user.cast::<Board>(),
            std::slice::from_raw_parts_mut(buf, len),
        )
    };
    if b.log_reads_fail {
        return rc(b, false);
    }
    let ok = b
        .dev
        .work_flash_range(LOG_ADDRESS, LOG_SIZE)
        .is_ok_and(|mut v| ReadNorFlash::read(&mut v, off, out).is_ok());
    rc(b, ok)
}

/// # Safety
/// As C's: `user` is a `Board`, `data` readable for `len`.
pub unsafe extern "C" fn dbm_write_log(
    user: *mut c_void,
    off: u32,
    data: *const u8,
    len: usize,
) -> i32 {
    // SAFETY: as `dbm_read_bank`.
    let (b, data) = unsafe {
        (
            &mut *user.cast::<Board>(),
            std::slice::from_raw_parts(data, len),
        )
    };
    if b.log_writes_fail {
        return rc(b, false);
    }
    let ok = b
        .dev
        .work_flash_range(LOG_ADDRESS, LOG_SIZE)
        .is_ok_and(|mut v| NorFlash::write(&mut v, off, data).is_ok());
    rc(b, ok)
}

/// # Safety
/// As C's: `user` is a `Board`.
pub unsafe extern "C" fn dbm_erase_log(user: *mut c_void, from: u32, to: u32) -> i32 {
    // SAFETY: as `dbm_read_bank`.
    let b = unsafe { &mut *user.cast::<Board>() };
    let ok = b
        .dev
        .work_flash_range(LOG_ADDRESS, LOG_SIZE)
        .is_ok_and(|mut v| NorFlash::erase(&mut v, from, to).is_ok());
    rc(b, ok)
}

/// The marker log read through `ferrota_marker_log_read` (the DBM's callback; erased words
/// read 0xFF as the DBM sets it).
pub fn log_snapshot(board: &mut Board) -> FerrotaLogSnapshot {
    board.dev.set_work_err_silent(true).expect("work flash");
    let mut out = std::mem::MaybeUninit::<FerrotaLogSnapshot>::uninit();
    // SAFETY: the board and `out` live for the call.
    let st = unsafe {
        ferrota_marker_log_read(
            Some(dbm_read_log),
            (board as *mut Board).cast(),
            out.as_mut_ptr(),
        )
    };
    assert_eq!(st, FerrotaStatus::FerrotaOk);
    // SAFETY: written on OK.
    unsafe { out.assume_init() }
}

/// The fields of a snapshot a test compares ("the log is unchanged").
pub fn log_key(s: &FerrotaLogSnapshot) -> (bool, u32, u32, u32, [u8; FERROTA_LOG_RECORD_SIZE]) {
    (s.present, s.seq, s.sector, s.slot, s.record)
}

impl Board {
    /// The boot manager's callbacks over this board (boxed: it must not move).
    pub fn dbm_platform(&mut self) -> FerrotaDbmPlatform {
        FerrotaDbmPlatform {
            user: (self as *mut Board).cast(),
            read_bank: Some(dbm_read_bank),
            bank_size: FERROTA_BANK_SIZE,
            read_log: Some(dbm_read_log),
            write_log: Some(dbm_write_log),
            erase_log: Some(dbm_erase_log),
        }
    }

    /// A reset as far as the DBM: single-bank mode, WORK_ERR_SILENT set (erased log words read
    /// 0xFF), as the boot ROM leaves it for the DBM.
    pub fn reset(&mut self) {
        self.dev.reset();
        self.dev.set_work_err_silent(true).expect("work flash");
    }

    /// Calls `ferrota_dbm_decide` on the reset board with `cfg`.
    pub fn decide(&mut self, cfg: &FerrotaDbmConfig) -> (FerrotaStatus, FerrotaDbmDecision) {
        self.reset();
        let p = self.dbm_platform();
        let mut out = std::mem::MaybeUninit::<FerrotaDbmDecision>::uninit();
        // SAFETY: the board, `cfg` and `out` live for the call.
        let st = unsafe { ferrota_dbm_decide(cfg, &p, out.as_mut_ptr()) };
        assert!(
            matches!(st, FerrotaStatus::FerrotaOk | FerrotaStatus::FerrotaErrHalt),
            "{st:?}"
        );
        // SAFETY: written on OK and on a halt.
        (st, unsafe { out.assume_init() })
    }

    /// The reset a C program emulates: the DBM decides through the C API, then the switch
    /// routine maps the chosen bank (dual-bank mode) and `self.bank` is it. Panics on a halt.
    pub fn reboot(&mut self, data: &CData) -> FerrotaDbmDecision {
        let (_, d) = self.decide(&data.dbm_config());
        assert_ne!(d.reason, FerrotaBootReason::FerrotaBootHalt, "{d:?}");
        self.dev.set_bank_mode(BankMode::Dual).expect("dual");
        self.dev
            .set_mapping(if d.bank == 1 { Mapping::B } else { Mapping::A })
            .expect("mapping");
        self.dev.set_work_err_silent(true).expect("work flash");
        self.bank = d.bank;
        d
    }
}

impl CData {
    /// The boot manager's configuration of the test board.
    pub fn dbm_config(&self) -> FerrotaDbmConfig {
        FerrotaDbmConfig {
            boot_key: &*self.key,
            hardware_id: BOARD.as_ptr(),
            hardware_id_len: BOARD.len(),
            efuse_floor: 0,
            user1: 0,
        }
    }
}

/// Programs `img` into the upper bank and appends the TRIAL record the agent writes when it
/// activates it (`ferrota_boot::app::request_activation` from the lower bank).
pub fn activate_upper(board: &mut Board, img: &TestImage) {
    install(&mut board.dev, Bank::Upper, img);
    board.reset();
    let flash = board
        .dev
        .work_flash_range(LOG_ADDRESS, LOG_SIZE)
        .expect("log");
    let mut log = MarkerLog::new(flash).expect("4 KB");
    let s = log.state().expect("readable");
    log.append(&BootState {
        current: Some(Bank::Lower),
        trial: Some(Trial {
            bank: Bank::Upper,
            budget: 3,
            used: 0,
        }),
        event: Event::Trial { bank: Bank::Upper },
        ..s
    })
    .expect("appended");
}

/// `spec`'s image with one CM7_0 byte changed after the boot signing, and the OTA signature
/// made over the result: the agent and the boot manager accept it (they check the CM0+ region
/// and the file), the CM0+ stage refuses its CM7_0 region.
pub fn tampered_cm7_0(spec: Spec) -> TestImage {
    let good = image(spec);
    let mut file = good.file.clone();
    file[0x1_0800] ^= 0x01;
    let sig = ferrota_image::ota::sign_file(ferrota_sim::keys::code_signing_key(), &file)
        .expect("P-256 signing");
    let mut b64 = [0u8; 96];
    TestImage {
        spec,
        signature: sig.to_base64(&mut b64).to_string(),
        file,
    }
}

// ---- the C event loop against the Jobs + Streams model ----

/// One firmware job (`img`) over one stream (the shape of the agent tests' fixtures).
pub fn fixture(img: &TestImage) -> JobsStreams {
    let file = OtaFile::image(img.file.clone(), Some(img.signature.clone()));
    JobsStreams::new("job-ffi", "stream-ffi", vec![file])
}

/// The C event loop: handle one input, carry out every transmit, take every event, re-arm the
/// timer; until `until` is seen. `on_event` answers events (the self-test). Returns the events.
pub fn run(
    agent: *mut FerrotaAgent,
    server: &mut impl Service,
    now: &mut u64,
    until: FerrotaEventKind,
    mut on_event: impl FnMut(*mut FerrotaAgent, u64, &FerrotaEvent),
) -> Vec<FerrotaEventKind> {
    let mut buf = vec![0u8; FERROTA_TRANSMIT_BUF_MIN];
    let mut to_device: VecDeque<Msg> = VecDeque::new();
    let mut events = vec![];
    let mut done = false;
    // SAFETY (whole block): `agent` is live, every buffer valid for the call.
    unsafe {
        assert_eq!(
            ferrota_agent_handle_connected(agent, *now),
            FerrotaStatus::FerrotaOk
        );
        for _ in 0..100_000 {
            // Carry out every operation, in order.
            loop {
                let mut t = std::mem::MaybeUninit::<FerrotaTransmit>::uninit();
                match ferrota_agent_poll_transmit(
                    agent,
                    buf.as_mut_ptr(),
                    buf.len(),
                    t.as_mut_ptr(),
                ) {
                    FerrotaStatus::FerrotaNone => break,
                    FerrotaStatus::FerrotaOk => {}
                    e => panic!("poll_transmit: {e:?}"),
                }
                let t = t.assume_init();
                if t.kind == FerrotaTransmitKind::FerrotaPublish {
                    let topic = std::str::from_utf8(&t.topic[..t.topic_len]).unwrap();
                    to_device.extend(server.handle(topic, &buf[..t.payload_len]));
                }
            }
            if done {
                // What the last event's handling queued went out (the final status).
                return events;
            }
            let mut e = std::mem::MaybeUninit::<FerrotaEvent>::uninit();
            while ferrota_agent_poll_event(agent, e.as_mut_ptr()) == FerrotaStatus::FerrotaOk {
                let e = e.assume_init();
                events.push(e.kind);
                done |= e.kind == until;
                on_event(agent, *now, &e);
            }
            if done {
                continue;
            }
            *now += 1_000;
            if let Some((topic, payload)) = to_device.pop_front() {
                let st = ferrota_agent_handle_message(
                    agent,
                    *now,
                    topic.as_ptr(),
                    topic.len(),
                    payload.as_ptr(),
                    payload.len(),
                );
                assert_eq!(st, FerrotaStatus::FerrotaOk);
            } else {
                let mut at = 0u64;
                if ferrota_agent_poll_timeout(agent, &mut at) == FerrotaStatus::FerrotaOk {
                    *now = (*now).max(at);
                }
                assert_eq!(
                    ferrota_agent_handle_timeout(agent, *now),
                    FerrotaStatus::FerrotaOk
                );
            }
        }
    }
    panic!("{until:?} never came: {events:?}");
}
