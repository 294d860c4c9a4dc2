//! The agent's deterministic harness: `ferrota_sim::harness` (the agent on a simulated device,
//! a network with latency, loss, duplication and reordering, virtual time) with this crate's
//! model of the AWS Jobs/Streams service ([`server::Server`]). Nothing sleeps; every run with
//! the same seed is the same run.
#![allow(dead_code)]

pub mod image;
pub mod official;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use ferrota_boot::log::{BootState, LOG_ADDRESS, LOG_SIZE, MarkerLog};
use ferrota_t2g::{Device, WorkFlashView};

use image::TestImage;
use server::{Job, Server};

#[allow(unused_imports)]
pub use embedded_storage::nor_flash::NorFlashError;
#[allow(unused_imports)]
pub use ferrota_sim::harness::{
    AgentSettings, AppBehaviour, Net, THING, TestAgent, boot, config, install,
};
#[allow(unused_imports)]
pub use ferrota_sim::platform::DevPlatform;

/// The harness with the model service.
pub type Sim = ferrota_sim::harness::Sim<Server>;

impl ferrota_sim::harness::Service for Server {
    fn handle(&mut self, topic: &str, payload: &[u8]) -> Vec<server::Msg> {
        Server::handle(self, topic, payload)
    }
}

pub fn log(dev: &mut Device) -> MarkerLog<WorkFlashView<'_>> {
    MarkerLog::new(dev.work_flash_range(LOG_ADDRESS, LOG_SIZE).unwrap()).unwrap()
}

pub fn state(dev: &Device) -> BootState {
    let mut d = dev.clone();
    d.power_cycle();
    d.set_work_err_silent(true).unwrap();
    log(&mut d).state().unwrap()
}

/// The harness's operations on the model service's jobs.
pub trait SimExt {
    /// A device running `v1` in the lower bank, connected, no job yet.
    fn new(v1: &TestImage, seed: u64) -> Self;
    /// As [`SimExt::new`] with other agent settings.
    fn with_settings(v1: &TestImage, seed: u64, settings: AgentSettings) -> Self;
    /// Adds a job on the server (pushing notify-next to the device if connected).
    fn add_job(&mut self, job: Job);
    /// Cancels a job on the server; AWS pushes notify-next with what is next now.
    fn cancel_job(&mut self, id: &str);
    /// Runs until job `id` is terminal on the server.
    fn run_job(&mut self, id: &str, limit: Duration) -> bool;
    /// The status updates the device published for `job`.
    fn statuses(&self, job: &str) -> Vec<String>;
}

impl SimExt for Sim {
    fn new(v1: &TestImage, seed: u64) -> Self {
        Self::with_settings(v1, seed, AgentSettings::default())
    }

    fn with_settings(v1: &TestImage, seed: u64, settings: AgentSettings) -> Self {
        Sim::start(Server::new(THING), v1, seed, settings)
    }

    fn add_job(&mut self, job: Job) {
        if let Some((t, p)) = self.server.add_job(job)
            && self.connected()
        {
            self.send_to_device(t, p);
        }
    }

    fn cancel_job(&mut self, id: &str) {
        let j = self.server.jobs.iter_mut().find(|j| j.id == id).unwrap();
        j.status = ferrota_proto::job::JobStatus::Canceled;
        let msg = self.server.job_message(None);
        let t = ferrota_proto::topic::Topic::notify_next(THING).to_string();
        self.send_to_device(t, msg);
    }

    fn run_job(&mut self, id: &str, limit: Duration) -> bool {
        let id = id.to_string();
        self.run_until(limit, |s| {
            s.server
                .jobs
                .iter()
                .any(|j| j.id == id && j.status.is_terminal())
        })
    }

    fn statuses(&self, job: &str) -> Vec<String> {
        self.server
            .updates
            .iter()
            .filter(|u| u.job == job)
            .map(|u| u.payload.clone())
            .collect()
    }
}

pub fn job(id: &str, img: Arc<TestImage>) -> Job {
    Job::firmware(id, img)
}
