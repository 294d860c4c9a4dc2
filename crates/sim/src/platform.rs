//! The agent's [`Platform`] over a `ferrota_t2g::Device`: the inactive bank
//! through the 0x12000000 alias, the resume area at [`RESUME_AREA`] (the work-flash sector after
//! the marker log, reserved for the agent), the trust store at [`TRUST_AREA`] (the two sectors
//! after it) and the marker log. One definition for the simulated
//! board, the test harness and the QEMU harness, so all three lend the agent the same flashes;
//! and [`boot_for_agent`], the DBM's part of a boot that the agent's tests and the QEMU agent run
//! start the agent from.

use embedded_storage::nor_flash::NorFlashError;
use ferrota_agent::{
    FlashFault, FlashOp, Platform, RESUME_AREA, RESUME_AREA_LEN, Running, TRUST_AREA,
    TRUST_AREA_LEN,
};
use ferrota_boot::dbm::{Dbm, Decision, Halt};
use ferrota_boot::log::{LOG_ADDRESS, LOG_SIZE, LogError, MarkerLog};
use ferrota_image::{BootVerifier, HardwareId};
use ferrota_t2g::{BankMode, CodeFlashView, Device, Mapping, WorkFlashView};

/// The flashes of a `Device`, lent to the agent per call.
pub struct DevPlatform<'d>(pub &'d mut Device);

fn open_fault(e: ferrota_t2g::Error) -> FlashFault {
    FlashFault::new(FlashOp::Open, e.kind())
}

impl Platform for DevPlatform<'_> {
    type Bank<'p>
        = CodeFlashView<'p>
    where
        Self: 'p;
    type Resume<'p>
        = WorkFlashView<'p>
    where
        Self: 'p;
    type Log<'p>
        = WorkFlashView<'p>
    where
        Self: 'p;
    type Active<'p>
        = CodeFlashView<'p>
    where
        Self: 'p;
    type Trust<'p>
        = WorkFlashView<'p>
    where
        Self: 'p;
    fn trust_area(&mut self) -> Result<WorkFlashView<'_>, FlashFault> {
        self.0
            .work_flash_range(TRUST_AREA, TRUST_AREA_LEN)
            .map_err(open_fault)
    }
    fn active_bank(&mut self) -> Result<CodeFlashView<'_>, FlashFault> {
        self.0.active_bank().map_err(open_fault)
    }
    fn inactive_bank(&mut self) -> Result<CodeFlashView<'_>, FlashFault> {
        self.0.inactive_bank().map_err(open_fault)
    }
    fn resume_area(&mut self) -> Result<WorkFlashView<'_>, FlashFault> {
        self.0
            .work_flash_range(RESUME_AREA, RESUME_AREA_LEN)
            .map_err(open_fault)
    }
    fn marker_log(&mut self) -> Result<WorkFlashView<'_>, FlashFault> {
        self.0
            .work_flash_range(LOG_ADDRESS, LOG_SIZE)
            .map_err(open_fault)
    }
}

/// Why [`boot_for_agent`] found no bank to run.
#[derive(Debug, thiserror::Error)]
pub enum AgentBootError {
    /// The memory model refused an operation (or the power was cut).
    #[error("memory: {0}")]
    Memory(#[from] ferrota_t2g::Error),
    /// The marker log could not be read or written.
    #[error("marker log: {0:?}")]
    Log(LogError<ferrota_t2g::Error>),
    /// The DBM halted: both banks refused.
    #[error("the DBM halted: {0:?}")]
    Halt(Halt),
}

impl From<LogError<ferrota_t2g::Error>> for AgentBootError {
    fn from(e: LogError<ferrota_t2g::Error>) -> Self {
        AgentBootError::Log(e)
    }
}

/// The boot chain as far as the agent cares: the DBM reads the marker log, chooses a bank,
/// persists its decision and the bank is mapped at 0x10000000 (dual-bank mode), leaving
/// WORK_ERR_SILENT set so the agent can read the log. The ROM and the CM0+ stage are left out
/// (see [`crate::boot_chain::boot_pass`] for the whole chain): the agent's tests and the QEMU
/// agent run start the agent on what the DBM decided, with the key and board id they pass.
pub fn boot_for_agent<K: BootVerifier>(
    dev: &mut Device,
    key: &K,
    hardware: Option<HardwareId>,
) -> Result<Running, AgentBootError> {
    dev.reset();
    dev.set_work_err_silent(true)?;
    let dbm = Dbm::new(key)
        .efuse_floor(dev.rollback_counter())
        .hardware(hardware);
    let read = dbm.read_log(&mut marker_log(dev)?)?;
    let mut scratch = [0u8; 4096];
    let choice = read.choose(&mut dev.single_bank()?, &mut scratch);
    let b = match choice.persist(&mut marker_log(dev)?)? {
        Decision::Boot(b) => b,
        Decision::Halt(h) => return Err(AgentBootError::Halt(h)),
    };
    dev.set_bank_mode(BankMode::Dual)?;
    dev.set_mapping(if b.bank.main_map() {
        Mapping::B
    } else {
        Mapping::A
    })?;
    dev.set_work_err_silent(true)?;
    Ok(Running {
        bank: b.bank,
        record: b.record,
    })
}

/// The marker log of a device (WORK_ERR_SILENT must be set to read it).
fn marker_log(dev: &mut Device) -> Result<MarkerLog<WorkFlashView<'_>>, AgentBootError> {
    Ok(MarkerLog::new(
        dev.work_flash_range(LOG_ADDRESS, LOG_SIZE)?,
    )?)
}
