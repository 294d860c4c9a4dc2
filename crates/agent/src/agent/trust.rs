//! Signed update metadata on the device (issue #20, design §4): the signed timestamp of every
//! Jobs message, the fileType-142 manifest fetched and verified before any image block, the
//! trust store, and the activation proof that names the manifest (or the plain AWS signature).
//!
//! Decisions where the design is silent:
//! - The slow-retrieval deadline (`0x0000000e: 0x00000001`) runs only for a download whose
//!   manifest was accepted: in AwsPlain mode without a manifest the size is the unsigned job
//!   document's, which an attacker sets anyway, and the existing momentum limit applies.
//! - The manifest block is asked for again after `Config::initial_rto` (doubling, capped at
//!   `max_rto`) while no answer comes, and the job is `aborted: 0x0000000e` after
//!   `Config::momentum_limit` tries, as a download without progress.
//! - The time estimate of D-8 takes the newest accepted timestamp (in RAM) and the persisted
//!   `clock_floor`; `attested_time` is raised in RAM at every accepted timestamp and persisted
//!   with the manifest record or at a checkpoint (`TrustConfig::time_checkpoint`).

use ferrota_manifest::store::{self, TrustState};
use ferrota_manifest::{
    MANIFEST_FILE_TYPE, ManifestMatched, TrustError, TrustedRoot, VerifiedManifest, bind,
    check_sequence, class_id, device_id, parse_bundle, verify_envelope, verify_timestamp,
    walk_roots,
};

use super::*;
use crate::config::TrustPolicy;

/// The base64url text of a timestamp decodes into this many bytes at most (design §3.2: about
/// 150 B; 256 B of buffer).
pub(super) const TIMESTAMP_MAX: usize = 256;

/// The newest accepted timestamp, with the agent's instant it arrived at.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fresh {
    /// The device's time estimate when it arrived: the timestamp's `time`, or the running
    /// estimate when that was later. A timestamp accepted again (a duplicate, or a replay
    /// within its lifetime) must never turn the estimate back: otherwise replaying one
    /// recorded answer more often than its lifetime would keep a frozen device fresh forever.
    pub time: u64,
    pub expires: u64,
    pub metadata: Option<[u8; 32]>,
    pub received_at: Instant,
}

/// What the timestamp of the Jobs message being handled came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TsOutcome {
    /// The message carried none.
    Absent,
    /// Verified and fresh.
    Accepted,
    /// Names a root above the trusted one: verified after the manifest's roots are walked.
    Deferred,
    /// Refused with this `0x000000e3` sub.
    Refused(u32),
}

/// What `begin_image_download` needs of the job once the manifest is accepted.
pub(super) struct ImageJob {
    pub file_id: u8,
    pub file_size: u32,
    pub signature: OtaSignature,
    pub tag: u64,
    pub choice: Option<packed::Choice>,
}

/// A job whose metadata file is being fetched ([`Phase::FetchingManifest`]).
pub(super) struct Pending {
    pub image: ImageJob,
    /// The metadata file's `fileid` and `filesize` (one block).
    pub manifest_id: u8,
    pub manifest_size: u32,
    pub tries: u32,
    pub rto: Duration,
    /// The job message's timestamp outcome, kept with the job: a later Jobs message (a
    /// duplicate with its timestamp stripped) cannot turn the binding off.
    pub ts: TsOutcome,
    /// The timestamp bytes when [`TsOutcome::Deferred`].
    pub deferred: heapless::Vec<u8, TIMESTAMP_MAX>,
}

/// Permission to activate an image that no manifest names: made only by
/// `Agent::plain_allowed`, when the policy is [`TrustPolicy::AwsPlain`] and the job offered no
/// metadata file. Not `Clone`, private field:
///
/// ```compile_fail
/// let p = ferrota_agent::PlainAccepted(());
/// ```
/// ```compile_fail
/// fn copy(p: &ferrota_agent::PlainAccepted) -> ferrota_agent::PlainAccepted {
///     p.clone()
/// }
/// ```
#[derive(Debug, PartialEq, Eq)]
pub struct PlainAccepted(());

/// Why an activation is allowed: the only argument besides the bank's proof that the private
/// activation function takes, so no path reaches TRIAL without one (design §4.1 step 8).
#[derive(Debug, PartialEq, Eq)]
pub enum Trust {
    /// A release key's manifest names the written bank (`ferrota_manifest::bind`).
    Manifest(ManifestMatched),
    /// AWS mode: the pinned code-signing key's signature alone.
    AwsPlain(PlainAccepted),
}

/// The FAILED status of a metadata refusal with `sub`.
pub(super) fn trust_failed(sub: u32) -> OtaStatus {
    OtaStatus::Failed {
        main: PalErr::SignatureCheckFailed.code(),
        sub,
    }
}

fn trust_fault<E: NorFlashError>(e: store::StoreError<E>) -> FlashFault {
    match e {
        store::StoreError::Flash(e) => FlashFault::new(FlashOp::Trust, e.kind()),
        #[allow(unreachable_patterns)]
        _ => FlashFault::new(FlashOp::Trust, NorFlashErrorKind::Other),
    }
}

/// Reads the trust state at start: `None` without an anchor (AwsPlain, no metadata possible).
pub(super) fn load_trust<P: Platform>(
    anchor: Option<&[u8]>,
    platform: &mut P,
) -> Result<Option<TrustState>, StartError> {
    let Some(doc) = anchor else {
        return Ok(None);
    };
    let root =
        TrustedRoot::from_anchor(doc).map_err(|_| StartError::Config(ConfigError::TrustAnchor))?;
    let mut area = platform.trust_area().map_err(StartError::Flash)?;
    let s = store::read(&mut area, &root).map_err(|e| StartError::Flash(trust_fault(e)))?;
    Ok(Some(s))
}

impl<'a, V: BootVerifier> Agent<'a, V> {
    /// The `trust` object of the shadow report (`None`: AWS bytes unchanged, for an AWS device
    /// that never took an update on the plain signature and has no anchor).
    pub(super) fn trust_out(&self) -> Option<ferrota_proto::shadow::TrustOut> {
        let require = self.cfg.trust.policy == TrustPolicy::Require;
        if self.trust.is_none() && self.plain == 0 && !require {
            return None;
        }
        let t = self.trust.as_ref();
        Some(ferrota_proto::shadow::TrustOut {
            require,
            root: t.map(|t| t.root.version()),
            seq: t.map(|t| t.installed_seq),
            fresh: t.map(|_| self.is_fresh),
            plain: self.plain,
        })
    }

    /// The device's time estimate (design D-8): `max(clock_floor, ts.time + elapsed)`.
    pub(super) fn time_estimate(&self, now: Instant) -> u64 {
        let floor = self.trust.as_ref().map_or(0, |t| t.clock_floor);
        let from_ts = self.last_ts.map_or(0, |f| {
            f.time
                .saturating_add(now.saturating_since(f.received_at).as_secs())
        });
        floor.max(from_ts)
    }

    /// Step 1 of design §4.1: the `ferrotaTimestamp` of every Jobs message.
    pub(super) fn on_timestamp<P: Platform>(
        &mut self,
        now: Instant,
        text: Option<&str>,
        platform: &mut P,
    ) {
        self.deferred_ts.clear();
        self.ts_outcome = TsOutcome::Absent;
        let Some(text) = text else {
            return;
        };
        let Some(state) = self.trust.as_ref() else {
            return;
        };
        let mut buf = [0u8; TIMESTAMP_MAX];
        let Ok(bytes) =
            <base64ct::Base64UrlUnpadded as base64ct::Encoding>::decode(text.as_bytes(), &mut buf)
        else {
            self.ts_outcome = TsOutcome::Refused(ferrota_manifest::SUB_TIMESTAMP);
            return;
        };
        match verify_timestamp(bytes, &state.root, self.cfg.thing_name) {
            Ok(ts) => self.accept_timestamp(now, &ts, platform),
            Err(TrustError::TimestampRootAhead { .. }) => {
                let _ = self.deferred_ts.extend_from_slice(bytes);
                self.ts_outcome = TsOutcome::Deferred;
            }
            Err(e) => self.ts_outcome = TsOutcome::Refused(e.sub()),
        }
    }

    /// A verified timestamp: freshness against the attested time and the estimate, then the
    /// freshness timer and, past the checkpoint, the store.
    fn accept_timestamp<P: Platform>(
        &mut self,
        now: Instant,
        ts: &ferrota_manifest::Timestamp,
        platform: &mut P,
    ) {
        let est = self.time_estimate(now);
        let Some(state) = self.trust.as_mut() else {
            return;
        };
        if let Err(e) = ts.check_fresh(state.attested_time, est) {
            self.ts_outcome = TsOutcome::Refused(e.sub());
            return;
        }
        state.attested_time = state.attested_time.max(ts.time);
        let checkpoint = state.clock_floor + self.cfg.trust.time_checkpoint.as_secs();
        let persist = ts.time >= checkpoint;
        if persist {
            state.clock_floor = state.clock_floor.max(ts.time);
        }
        let anchor = ts.time.max(est);
        self.last_ts = Some(Fresh {
            time: anchor,
            expires: ts.expires,
            metadata: ts.metadata,
            received_at: now,
        });
        if !self.is_fresh {
            // Fresh again (or for the first time since start): the report says so.
            self.push(Out::Report);
        }
        self.is_fresh = true;
        self.ts_outcome = TsOutcome::Accepted;
        self.timers.set(
            Timer::Freshness,
            now + Duration::from_secs(ts.expires.saturating_sub(anchor)),
        );
        self.arm_checkpoint(now);
        self.event(AgentEvent::TimestampAccepted { time: ts.time });
        if persist && let Err(f) = self.persist_trust(platform) {
            self.halt(f);
        }
    }

    /// Writes the in-RAM trust state as the newest record.
    pub(super) fn persist_trust<P: Platform>(
        &mut self,
        platform: &mut P,
    ) -> Result<(), FlashFault> {
        let Some(state) = self.trust.as_ref() else {
            return Ok(());
        };
        let mut area = platform.trust_area()?;
        store::write(&mut area, state).map_err(trust_fault)
    }

    /// `Timer::Freshness` fired: the newest timestamp expired.
    pub(super) fn on_freshness_lost(&mut self) {
        if let Some(f) = self.last_ts {
            self.is_fresh = false;
            self.event(AgentEvent::FreshnessLost {
                expired_at: f.expires,
            });
            self.push(Out::Report);
        }
    }

    /// Arms the uptime checkpoint (`Timer::Checkpoint`) unless it is armed already or the
    /// checkpoint interval is 0.
    fn arm_checkpoint(&mut self, now: Instant) {
        let every = self.cfg.trust.time_checkpoint;
        if every.as_secs() > 0 && self.timers.get(Timer::Checkpoint).is_none() {
            self.timers.set(Timer::Checkpoint, now + every);
        }
    }

    /// `Timer::Checkpoint` fired: the time estimate is persisted as `clock_floor` when it moved
    /// past the stored one, then the timer is armed again. A flash fault halts, as any failed
    /// trust write does.
    pub(super) fn on_time_checkpoint<P: Platform>(&mut self, now: Instant, platform: &mut P) {
        let est = self.time_estimate(now);
        let Some(state) = self.trust.as_mut() else {
            return;
        };
        let moved = est > state.clock_floor;
        if moved {
            state.clock_floor = est;
        }
        self.arm_checkpoint(now);
        if moved && let Err(f) = self.persist_trust(platform) {
            self.halt(f);
        }
    }

    /// Re-arms the freshness timer after a `stop_all` (a job ended): it outlives jobs.
    pub(super) fn rearm_freshness(&mut self) {
        if let Some(f) = self.last_ts
            && self.is_fresh
        {
            self.timers.set(
                Timer::Freshness,
                f.received_at + Duration::from_secs(f.expires.saturating_sub(f.time)),
            );
        }
    }

    /// Step 2 of design §4.1, after the existing checks: fetch the metadata file when the job
    /// has one (or must have one), else start the image at once (AwsPlain).
    pub(super) fn after_prepare<P: Platform>(
        &mut self,
        now: Instant,
        ota: &OtaJob<'_>,
        image: ImageJob,
        platform: &mut P,
    ) {
        let require = self.cfg.trust.policy == TrustPolicy::Require;
        let mut entries = ota
            .files()
            .filter(|f| f.file_type == Some(MANIFEST_FILE_TYPE));
        let entry = entries.next();
        let more = entries.next().is_some();
        let Some(entry) = entry else {
            if require {
                return self.end_job(AgentEvent::JobFailed {
                    status: trust_failed(ferrota_manifest::SUB_MANIFEST),
                });
            }
            return self.begin_image_download(now, image, platform);
        };
        match self.ts_outcome {
            TsOutcome::Refused(sub) => {
                return self.end_job(AgentEvent::JobFailed {
                    status: trust_failed(sub),
                });
            }
            TsOutcome::Absent if require => {
                return self.end_job(AgentEvent::JobFailed {
                    status: trust_failed(ferrota_manifest::SUB_TIMESTAMP),
                });
            }
            _ => {}
        }
        if more || entry.file_size > self.cfg.block_size || self.trust.is_none() {
            return self.end_job(AgentEvent::JobFailed {
                status: trust_failed(ferrota_manifest::SUB_MANIFEST),
            });
        }
        self.phase = Phase::FetchingManifest(Pending {
            image,
            manifest_id: entry.file_id,
            manifest_size: entry.file_size,
            tries: 0,
            rto: self.cfg.initial_rto,
            ts: self.ts_outcome,
            deferred: core::mem::take(&mut self.deferred_ts),
        });
        self.push(Out::Subscribe(Sub::Data));
        self.request_manifest(now);
    }

    /// Asks for block 0 of the metadata file and arms the retry.
    pub(super) fn request_manifest(&mut self, now: Instant) {
        let Phase::FetchingManifest(p) = &mut self.phase else {
            return;
        };
        let (id, rto) = (p.manifest_id, p.rto);
        if self.connected {
            self.stats.requests += 1;
            self.push(Out::ManifestRequest(id));
        }
        self.timers.set(Timer::ManifestRetry, now + rto);
    }

    /// `Timer::ManifestRetry` fired.
    pub(super) fn on_manifest_retry(&mut self, now: Instant) {
        let (limit, max) = (self.cfg.momentum_limit, self.cfg.max_rto);
        let Phase::FetchingManifest(p) = &mut self.phase else {
            return;
        };
        p.tries += 1;
        p.rto = (p.rto * 2).min(max);
        if p.tries > limit {
            return self.end_job(AgentEvent::JobFailed {
                status: OtaStatus::Aborted {
                    sub_reason: OtaErr::MomentumAbort.code(),
                },
            });
        }
        self.stats.timeouts += 1;
        self.request_manifest(now);
    }

    /// A data block while the metadata file is fetched.
    pub(super) fn on_manifest_data<P: Platform>(
        &mut self,
        now: Instant,
        stream: &str,
        payload: &[u8],
        platform: &mut P,
    ) {
        let Phase::FetchingManifest(p) = &self.phase else {
            return;
        };
        if stream != self.stream.as_str() {
            self.stats.ignored += 1;
            return;
        }
        let Ok(block) = DataBlock::decode(payload) else {
            self.stats.malformed += 1;
            return;
        };
        if block.file_id != u32::from(p.manifest_id) || block.block_id != 0 {
            self.stats.ignored += 1;
            return;
        }
        if block.payload.len() as u32 != p.manifest_size {
            self.stats.malformed += 1;
            return;
        }
        self.timers.stop(Timer::ManifestRetry);
        self.on_manifest_block(now, block.payload, platform);
    }

    /// Steps 3 to 5 of design §4.1: verify the metadata file in place, check it, persist, and
    /// start the image download. Every refusal ends the job before any image block is asked
    /// for and before the bank is locked.
    fn on_manifest_block<P: Platform>(&mut self, now: Instant, file: &[u8], platform: &mut P) {
        let fail = |sub: u32| AgentEvent::JobFailed {
            status: trust_failed(sub),
        };
        let Some(state) = self.trust.as_ref() else {
            return self.end_job(fail(ferrota_manifest::SUB_MANIFEST));
        };
        let bundle = match parse_bundle(file) {
            Ok(b) => b,
            Err(e) => return self.end_job(fail(e.sub())),
        };
        let root = match walk_roots(&state.root, bundle.roots()) {
            Ok(r) => r,
            Err(e) => return self.end_job(fail(e.sub())),
        };
        let old_root = state.root.version();
        let Phase::FetchingManifest(p) = &self.phase else {
            return;
        };
        let ts_at_job = p.ts;
        if ts_at_job == TsOutcome::Deferred {
            let mut buf = [0u8; TIMESTAMP_MAX];
            let n = p.deferred.len();
            buf[..n].copy_from_slice(&p.deferred);
            match verify_timestamp(&buf[..n], &root, self.cfg.thing_name) {
                Ok(ts) => {
                    // The root is not persisted yet; the timestamp is checked against it.
                    self.accept_timestamp(now, &ts, platform);
                    if let TsOutcome::Refused(sub) = self.ts_outcome {
                        return self.end_job(fail(sub));
                    }
                    if matches!(self.phase, Phase::Halted) {
                        return;
                    }
                }
                Err(e) => return self.end_job(fail(e.sub())),
            }
        }
        let m = match verify_envelope(&bundle, &root) {
            Ok(m) => m,
            Err(e) => return self.end_job(fail(e.sub())),
        };
        // Require: the timestamp accepted for this job must name this file; AwsPlain: when the
        // job came with one (design §4.1 step 3.5).
        if ts_at_job != TsOutcome::Absent || self.cfg.trust.policy == TrustPolicy::Require {
            let names = self
                .last_ts
                .is_some_and(|f| f.metadata.as_ref() == Some(&bundle.file_digest()));
            if !names {
                return self.end_job(fail(ferrota_manifest::SUB_METADATA));
            }
        }
        let Phase::FetchingManifest(p) = &self.phase else {
            return;
        };
        let file_size = p.image.file_size;
        if let Some(status) = self.check_manifest(now, &m, &root, file_size) {
            return self.end_job(AgentEvent::JobFailed { status });
        }
        // Accept: one record with the new root and the seen manifest (design §4.1 step 5).
        if let Some(state) = self.trust.as_mut() {
            state.root = root;
            state.seen_seq = m.sequence();
            state.seen_kid = m.signer();
            state.seen_digest = *m.file_digest();
        }
        if let Err(f) = self.persist_trust(platform) {
            return self.halt(f);
        }
        let new_root = self.trust.as_ref().map_or(old_root, |t| t.root.version());
        if new_root != old_root {
            self.event(AgentEvent::RootUpdated { version: new_root });
        }
        self.event(AgentEvent::ManifestAccepted {
            sequence: m.sequence(),
            version: m.version(),
        });
        let secs = u64::from(m.image_size()) / u64::from(self.cfg.trust.min_rate.max(1));
        let deadline = now + self.cfg.trust.rate_grace + Duration::from_secs(secs);
        self.manifest = Some(m);
        let Phase::FetchingManifest(p) = core::mem::replace(&mut self.phase, Phase::Idle) else {
            return;
        };
        self.begin_image_download(now, p.image, platform);
        if self.phase.download().is_some() {
            self.timers.set(Timer::SlowRetrieval, deadline);
        }
    }

    /// Design §4.1 step 4: the manifest against this device, the clock, the sequence floor,
    /// the job document and the running image. `None`: accepted.
    fn check_manifest(
        &self,
        now: Instant,
        m: &VerifiedManifest,
        root: &TrustedRoot,
        file_size: u32,
    ) -> Option<OtaStatus> {
        let rejected = |e: OtaErr| {
            Some(OtaStatus::Rejected {
                sub_reason: e.code(),
            })
        };
        let hw = self.cfg.hardware.unwrap_or(self.running.record.hardware);
        if !hw.as_str().is_empty() && class_id(hw.as_str()) != *m.class_id() {
            return rejected(OtaErr::InvalidArg);
        }
        if m.device_id()
            .is_some_and(|d| *d != device_id(self.cfg.thing_name))
        {
            return rejected(OtaErr::InvalidArg);
        }
        if let Err(e) = m.check_expiry(self.time_estimate(now)) {
            return Some(trust_failed(e.sub()));
        }
        let state = self.trust.as_ref()?;
        let mut cand = state.clone();
        cand.root = root.clone();
        if let Err(e) = check_sequence(&cand, m) {
            return Some(trust_failed(e.sub()));
        }
        if m.image_size() != file_size {
            return Some(trust_failed(ferrota_manifest::SUB_MISMATCH));
        }
        let (new, run) = (m.version().0, self.running_version());
        if new == run {
            return rejected(OtaErr::SameFirmwareVersion);
        }
        if new < run || m.security_counter() < self.floor {
            return rejected(OtaErr::DowngradeNotAllowed);
        }
        None
    }

    /// Design §4.1 step 6: the CM0+ region in the bank against the manifest (`None`: no
    /// manifest, or it agrees).
    pub(super) fn check_manifest_image(
        &self,
        rec: &VersionRecord,
        cm0p_digest: &[u8; 32],
    ) -> Option<OtaStatus> {
        let m = self.manifest.as_ref()?;
        let hw = rec.hardware.as_str();
        let same = rec.version == m.version()
            && rec.security_counter == m.security_counter()
            && (hw.is_empty() || class_id(hw) == *m.class_id())
            && cm0p_digest == &m.region_digests()[0];
        if same {
            None
        } else {
            Some(trust_failed(ferrota_manifest::SUB_MISMATCH))
        }
    }

    /// Design §4.1 step 8: why this bank may be activated.
    pub(super) fn trust_for_activation(
        &mut self,
        proof: &ferrota_image::verify::BankVerified,
    ) -> Result<Trust, OtaStatus> {
        match &self.manifest {
            Some(m) => bind(proof, m)
                .map(Trust::Manifest)
                .map_err(|e| trust_failed(e.sub())),
            None => self
                .plain_allowed()
                .map(Trust::AwsPlain)
                .ok_or(trust_failed(ferrota_manifest::SUB_MANIFEST)),
        }
    }

    /// The only maker of [`PlainAccepted`]: AwsPlain, and no manifest was offered.
    fn plain_allowed(&mut self) -> Option<PlainAccepted> {
        if self.cfg.trust.policy != TrustPolicy::AwsPlain || self.manifest.is_some() {
            return None;
        }
        self.plain = self.plain.saturating_add(1);
        self.event(AgentEvent::PlainSignatureAccepted);
        Some(PlainAccepted(()))
    }

    /// Before the activation: the manifest's sequence is the installed one (design §4.1 step 8).
    pub(super) fn persist_installed<P: Platform>(
        &mut self,
        trust: &Trust,
        platform: &mut P,
    ) -> Result<(), FlashFault> {
        let Trust::Manifest(_) = trust else {
            return Ok(());
        };
        let (Some(m), Some(state)) = (self.manifest.as_ref(), self.trust.as_mut()) else {
            return Ok(());
        };
        state.installed_seq = state.installed_seq.max(m.sequence());
        self.persist_trust(platform)
    }

    /// At a confirm: an image confirmed with no trust store (AwsPlain without an anchor) was
    /// activated on the plain signature. Decision: counted here too, because the activation's
    /// own count dies with the reset that boots the image; with an anchor in AwsPlain mode the
    /// count covers this agent's lifetime only (the trust store has no field for it).
    pub(super) fn count_plain_confirm(&mut self) {
        if self.trust.is_none() && self.cfg.trust.policy == TrustPolicy::AwsPlain {
            self.plain = self.plain.saturating_add(1);
        }
    }

    /// After a confirm and at start: ask the board to revoke the root's boot-key slots.
    pub(super) fn request_revocation(&mut self) {
        if let Some(mask) = self
            .trust
            .as_ref()
            .map(|t| t.root.revoked_boot_keys())
            .filter(|&m| m != 0)
        {
            self.event(AgentEvent::RevokeBootKeys { mask });
        }
    }
}
