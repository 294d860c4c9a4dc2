//! The attack suite of issue #20 (design `docs/design/20-manifests.md` §6): each attack of
//! TUF/Uptane's list run against the real server's services ([`ServerService`] with trust on:
//! real timestamps, real metadata checks at create) and the simulated board (`ferrota_sim`'s
//! harness, the agent in Require mode), in virtual time. One file per attack, one test per file
//! named as in the design's table.
//!
//! Every refused attack is checked by [`Stopped::check`]: the device reported the job FAILED
//! with the named reason, nothing was activated, the running image and bank did not change, no
//! trial is pending, and after a reset the same image boots. An attack the design marks **pre**
//! must be refused before any image block left the server and before the agent wrote a LOCKED
//! record ([`Stopped::pre`]: the marker log's state is exactly as before).
//!
//! Shared setup: a device on v1.1 in the lower bank whose trust store says sequence 5 is
//! installed ([`trusted_sim`]), and releases made as `ferrota release sign` makes them
//! ([`release`]): the metadata file signed by the release key, and `files[0]`'s OTA signature
//! made with the same key (in Require mode the agent checks it with the manifest's release key).

mod arbitrary_software;
mod aws_plain_mode_warns;
mod compromised_release_key;
mod compromised_server_without_offline_keys;
mod endless_data;
mod indefinite_freeze;
mod mix_and_match;
mod replay;
mod revoked_boot_key_after_rotation;
mod rollback;
mod slow_retrieval;
mod wrong_hardware_id;

use std::sync::Arc;
use std::time::Duration;

use crate::common::image::{Spec, TestImage, image};
use crate::common::{AgentSettings, FirmwareJob, ServerService, Sim, SimExt, job, state};
use ferrota_agent::AgentEvent;
use ferrota_boot::Bank;
use ferrota_boot::log::BootState;
use ferrota_image::p256::ecdsa::SigningKey;
use ferrota_lab::sim_service::TrustSetup;
use ferrota_manifest::store::{self, TRUST_AREA, TRUST_AREA_LEN, TrustState};
use ferrota_proto::job::JobStatus;
use ferrota_sim::trust;

/// Virtual time a job gets to end (a small image takes seconds).
pub const LIMIT: Duration = Duration::from_secs(600);

/// The manifest sequence the device has installed before each attack.
pub const INSTALLED_SEQ: u32 = 5;

/// The block size of the agent under test (its default).
pub const BLOCK: u32 = 4096;

/// The image the device runs: v1.1.0, security counter 1, boot-signed with slot 0's key.
pub fn v1() -> Arc<TestImage> {
    image(Spec::new(1, 1))
}

/// The agent as a Ferrota device ships: policy Require, the fixtures' anchor (root v1).
pub fn require() -> AgentSettings {
    AgentSettings {
        require_manifest: true,
        packed: false,
        ..AgentSettings::default()
    }
}

/// A Require-mode device on [`v1`] against a server with trust on ([`TrustSetup::chain`]`(1)`:
/// root v1, its timestamp key, one-hour timestamps, metadata checked at create), with
/// [`INSTALLED_SEQ`] installed; its first report and job query answered.
pub fn trusted_sim(seed: u64) -> Sim {
    trusted_sim_with(seed, &TrustSetup::chain(1))
}

/// [`trusted_sim`] with another trust setup on the server.
pub fn trusted_sim_with(seed: u64, setup: &TrustSetup) -> Sim {
    let mut sim = Sim::start(ServerService::with_trust(setup), &v1(), seed, require());
    install_seq(&mut sim, INSTALLED_SEQ);
    sim.reset_now();
    sim.run_until(Duration::from_secs(2), |_| false);
    sim
}

/// Puts the simulated board `dev` (a differently provisioned chip) under `sim`: [`v1`] programmed
/// in its lower bank, [`INSTALLED_SEQ`] in its trust store, then a reset (the DBM and the agent
/// start on it); its first report and job query answered.
pub fn restart_on(sim: &mut Sim, dev: ferrota_t2g::Device) {
    sim.dev = dev;
    crate::common::install(&mut sim.dev, Bank::Lower, &v1());
    install_seq(sim, INSTALLED_SEQ);
    sim.reset_now();
    sim.run_until(Duration::from_secs(2), |_| false);
}

/// Writes a trust record saying manifest `seq` (signed by root v1's release key) is installed
/// and seen, as an earlier update would have left it. The device must be reset afterwards (the
/// agent reads its store when it starts).
pub fn install_seq(sim: &mut Sim, seq: u32) {
    let mut s = TrustState::new(trust::trusted_anchor());
    s.installed_seq = seq;
    s.seen_seq = seq;
    s.seen_kid = ferrota_manifest::build::kid(trust::release_key_of(1));
    // Erased work flash reads as an error unless WORK_ERR_SILENT is set (as the agent runs).
    sim.dev
        .set_work_err_silent(true)
        .expect("set WORK_ERR_SILENT");
    let mut f = sim
        .dev
        .work_flash_range(TRUST_AREA, TRUST_AREA_LEN)
        .expect("the trust area is work flash");
    store::write(&mut f, &s).expect("write the trust record");
}

/// Release `id` of `spec` with manifest sequence `seq`, as `ferrota release sign` makes it with
/// root v1's release key: metadata file and `files[0]` signature by that key, no roots
/// integrated.
pub fn release(id: &str, spec: Spec, seq: u32) -> FirmwareJob {
    signed_release(id, image(spec), seq, trust::release_key_of(1), &[])
}

/// Release `id` of `img` with sequence `seq`, metadata file and `files[0]` signed by `key`, root
/// documents `roots` integrated.
pub fn signed_release(
    id: &str,
    img: Arc<TestImage>,
    seq: u32,
    key: &SigningKey,
    roots: &[Vec<u8>],
) -> FirmwareJob {
    let bundle = trust::bundle_for(&img, seq, 0, None, key, roots);
    job(id, img).signed_by(key).with_bundle(bundle, key)
}

/// An image an attacker built: v1.9.0 (counter 9) for this board, boot-signed with a key the
/// board does not trust, its OTA signature by [`trust::attacker_key`].
pub fn attacker_image() -> Arc<TestImage> {
    use ferrota_image::{FirmwareVersion, HardwareId, VersionRecord};
    use ferrota_sim::images::{SignedFile, Tamper, signed_ota_file};
    use std::sync::OnceLock;
    static I: OnceLock<Arc<TestImage>> = OnceLock::new();
    I.get_or_init(|| {
        let spec = Spec::new(9, 9);
        let record = VersionRecord {
            version: FirmwareVersion::new(1, 9, 0),
            security_counter: 9,
            hardware: HardwareId::new(spec.board).expect("a valid hardware id"),
            flags: 0,
        };
        let SignedFile { file, signature } = signed_ota_file(
            &ferrota_sim::keys::bench_boot_key(),
            trust::attacker_key(),
            record,
            spec.len as usize,
            Tamper::None,
        )
        .expect("the attacker's image builds");
        Arc::new(TestImage {
            spec,
            file,
            signature,
        })
    })
    .clone()
}

/// The last status the device published for OTA update `id`: status and `reason`.
pub fn last_status(sim: &Sim, id: &str) -> Option<(String, Option<String>)> {
    let last = sim.statuses(id).pop()?;
    let v: serde_json::Value = serde_json::from_str(&last).ok()?;
    let status = v["status"].as_str()?.to_string();
    let reason = v["statusDetails"]["reason"].as_str().map(str::to_string);
    Some((status, reason))
}

/// Runs OTA update `id` until the device reported it FAILED or SUCCEEDED, or the server ended it
/// otherwise (a server-side end the device never reports: timed out, removed). An update the
/// operator canceled counts only once the device spoke: the attack is about what it does.
pub fn run_to_end(sim: &mut Sim, id: &str) {
    let ended = sim.run_until(LIMIT, |s| {
        last_status(s, id).is_some_and(|(st, _)| st == "FAILED" || st == "SUCCEEDED")
            || s.server
                .try_job(id)
                .is_some_and(|v| v.status.is_terminal() && v.status != JobStatus::Canceled)
    });
    assert!(ended, "{id} never ended: {:?}", sim.statuses(id));
}

/// Runs OTA update `id` to SUCCEEDED, the new image confirmed and running.
pub fn succeeds(sim: &mut Sim, id: &str, version: u32) {
    assert!(sim.run_job(id, LIMIT), "{id}: {:?}", sim.statuses(id));
    assert_eq!(
        sim.server.job(id).status,
        JobStatus::Succeeded,
        "{id}: {:?}",
        sim.statuses(id)
    );
    sim.run_until(Duration::from_secs(2), |_| false);
    assert_eq!(sim.running_version(), version, "{id}");
}

/// What the device looked like before an attack ([`Stopped::before`]).
pub struct Stopped {
    version: u32,
    bank: Bank,
    log: BootState,
    events: usize,
    image_blocks: u32,
}

/// Whether an attack must be refused before the image's transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Before any image block and before LOCKED (design: **pre**).
    Pre,
    /// After the transfer began (the image was written in part or whole, never activated).
    During,
}

impl Stopped {
    /// The device's state now.
    pub fn before(sim: &Sim) -> Self {
        Stopped {
            version: sim.running_version(),
            bank: sim.running.expect("the device runs").bank,
            log: state(&sim.dev),
            events: sim.events.len(),
            image_blocks: sim.server.blocks_sent_of(0),
        }
    }

    /// Runs OTA update `id` to its end and checks that the attack was stopped with a reason
    /// starting `reason` (design §6 "assertions every test makes").
    pub fn check(&self, sim: &mut Sim, id: &str, reason: &str, when: When) {
        run_to_end(sim, id);
        self.check_ended(sim, id, reason, when);
    }

    /// [`Stopped::check`] for an update that already ended (or that the server does not
    /// hold as the device's: the device's own report is what counts).
    pub fn check_ended(&self, sim: &mut Sim, id: &str, reason: &str, when: When) {
        let (status, got) =
            last_status(sim, id).unwrap_or_else(|| panic!("{id}: the device reported nothing"));
        assert_eq!(status, "FAILED", "{id}: {:?}", sim.statuses(id));
        assert!(
            got.as_deref().is_some_and(|r| r.starts_with(reason)),
            "{id}: reason {got:?}, expected {reason}…"
        );
        // The server holds what the device said, unless the operator ended it first.
        if let Some(v) = sim.server.try_job(id)
            && !matches!(v.status, JobStatus::Canceled | JobStatus::Succeeded)
        {
            assert_eq!(v.status, JobStatus::Failed, "{id}");
        }
        let activated = sim.events[self.events..].contains(&AgentEvent::Activated);
        assert!(!activated, "{id}: activated");
        if when == When::Pre {
            assert_eq!(
                sim.server.blocks_sent_of(0),
                self.image_blocks,
                "{id}: image blocks left the server"
            );
            assert_eq!(state(&sim.dev), self.log, "{id}: the marker log changed");
        }
        sim.run_until(Duration::from_secs(2), |_| false);
        self.same_image(sim, id, "2 s after the refusal");
        // The attacker's setup (a freeze, a man in the middle) stays in place across the reset.
        sim.reset_now();
        sim.run_until(Duration::from_secs(2), |_| false);
        self.same_image(sim, id, "after a reset, the attack still on");
    }

    /// The image, bank and trial state are as before.
    fn same_image(&self, sim: &Sim, id: &str, when: &str) {
        assert_eq!(
            sim.running_version(),
            self.version,
            "{id}: running version {when}"
        );
        assert_eq!(
            sim.running.expect("running").bank,
            self.bank,
            "{id}: bank {when}"
        );
        assert_eq!(
            state(&sim.dev).trial,
            None,
            "{id}: a trial is pending {when}"
        );
    }
}

/// Sub code `sub` of `0x000000e3` as the device reports it.
pub fn e3(sub: u32) -> String {
    format!("0x000000e3: 0x{sub:08x}")
}
