//! The agent's deterministic harness over the real services: `ferrota_sim::harness` (the agent
//! on a simulated device, a network with latency, loss, duplication and reordering, virtual
//! time) with [`ferrota_lab::sim_service::ServerService`] (the server's Jobs and Streams over a
//! memory store). Nothing sleeps; every run with the same seed is the same run.
#![allow(dead_code)]

pub mod official;

use ferrota_boot::log::{BootState, LOG_ADDRESS, LOG_SIZE, MarkerLog};
use ferrota_t2g::{Device, WorkFlashView};

#[allow(unused_imports)]
pub use ferrota_lab::sim_service::{FirmwareJob, ServerService, Sim, SimExt, job};
#[allow(unused_imports)]
pub use ferrota_sim::harness::{
    AgentSettings, AppBehaviour, Net, THING, TestAgent, boot, config, install,
};
#[allow(unused_imports)]
pub use ferrota_sim::platform::DevPlatform;

/// Test images: signed bank images with an OTA signature, built once per test binary.
pub mod image {
    #[allow(unused_imports)]
    pub use ferrota_sim::images::ota::*;
    #[allow(unused_imports)]
    pub use ferrota_sim::keys::{boot_key, code_verifying_key};
}

/// A power cut at flash operation `op`: before it, or tearing it (a half-programmed row, a
/// half-erased sector) with `seed`.
pub fn cut_at(op: u64, seed: u64, tear: bool) -> ferrota_t2g::PowerCut {
    if tear {
        ferrota_t2g::PowerCut::Tear { op, seed }
    } else {
        ferrota_t2g::PowerCut::Before(op)
    }
}

/// The device's marker log.
pub fn log(dev: &mut Device) -> MarkerLog<WorkFlashView<'_>> {
    MarkerLog::new(dev.work_flash_range(LOG_ADDRESS, LOG_SIZE).unwrap()).unwrap()
}

/// The boot state as the next boot reads it.
pub fn state(dev: &Device) -> BootState {
    let mut d = dev.clone();
    d.power_cycle();
    d.set_work_err_silent(true).unwrap();
    log(&mut d).state().unwrap()
}
