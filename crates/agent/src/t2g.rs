//! The agent's [`Platform`] over a `ferrota_t2g::Device` (feature `t2g`, std): the inactive bank
//! through the 0x12000000 alias, the resume area at [`RESUME_AREA`] (the work-flash sector after
//! the marker log, reserved for the agent) and the marker log. One definition for the simulated
//! board, the test harness and the QEMU harness, so all three lend the agent the same flashes.

use embedded_storage::nor_flash::NorFlashError;
use ferrota_boot::log::{LOG_ADDRESS, LOG_SIZE};
use ferrota_t2g::{CodeFlashView, Device, WorkFlashView};

use crate::platform::{FlashFault, FlashOp, Platform, RESUME_AREA, RESUME_AREA_LEN};

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
