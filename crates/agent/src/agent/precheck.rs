//! The CM0+ region's check before the rest of the image is fetched: its boot signature, then
//! its version record against the running firmware, the anti-rollback floor and the board.

use super::*;

impl<'a, V: BootVerifier> Agent<'a, V> {
    /// After blocks arrived (or were restored): precheck, finish, or ask for more.
    pub(super) fn after_progress<P: Platform>(&mut self, now: Instant, platform: &mut P) {
        let Some(d) = self.phase.download() else {
            return;
        };
        let pre_done = d
            .sched
            .missing
            .first_missing_from(0)
            .is_none_or(|b| b >= d.precheck_blocks);
        if matches!(self.phase, Phase::Prechecking(_)) && pre_done {
            match self.precheck(platform) {
                Err(f) => return self.halt(f),
                Ok(Check::Refused(status)) => {
                    return self.end_job(AgentEvent::JobFailed { status });
                }
                Ok(Check::Ok(rec)) => {
                    self.phase.prechecked();
                    self.event(AgentEvent::VersionAccepted {
                        version: rec.version,
                    });
                }
            }
        }
        if self
            .phase
            .download()
            .is_some_and(|d| d.sched.missing.is_complete())
        {
            // A packed file's chunks without frames are filled once every frame is in.
            if let Err(f) = self.run_fills(platform, u32::MAX) {
                return self.halt(f);
            }
            self.finish_download(platform);
        } else {
            self.fill_window(now);
        }
    }

    /// Verifies the CM0+ region in the bank with the boot key and checks its version record
    /// against the running firmware, the anti-rollback floor and the board.
    pub(super) fn precheck<P: Platform>(&mut self, platform: &mut P) -> Result<Check, FlashFault> {
        let mut scratch = [0u8; 512];
        let v = {
            let mut bank = platform.inactive_bank()?;
            verify_boot_in_flash(&mut bank, 0, self.cfg.boot_key, &mut scratch)
        };
        match v {
            Ok(v) => {
                // The region as streamed against the manifest (design §4.1 step 6, sub 10).
                if let Some(status) = self.check_manifest_image(v.record(), v.cm0p().digest()) {
                    return Ok(Check::Refused(status));
                }
                self.check_record(v.record(), platform)
            }
            Err(e) => {
                if let ferrota_image::ErrorKind::Flash(k) = e.kind {
                    return Err(FlashFault::new(FlashOp::ReadBank, k));
                }
                Ok(Check::Refused(OtaStatus::Failed {
                    main: PalErr::SignatureCheckFailed.code(),
                    sub: SUB_BOOT_SIGNATURE,
                }))
            }
        }
    }

    /// Checks a verified version record against the running firmware, the anti-rollback floor
    /// and the board.
    pub(super) fn check_record<P: Platform>(
        &mut self,
        rec: &VersionRecord,
        platform: &mut P,
    ) -> Result<Check, FlashFault> {
        let rec = *rec;
        let floor = platform.marker_log().map_err(BootErr::Flash).and_then(|l| {
            let mut log = MarkerLog::new(l).map_err(log_fault)?;
            app::report(&mut log, self.running.bank).map_err(log_fault)
        });
        let floor = match floor {
            Ok(r) => r.floor,
            Err(BootErr::Flash(f)) => return Err(f),
            Err(BootErr::Refused) => {
                return Err(FlashFault::new(
                    FlashOp::MarkerLog,
                    NorFlashErrorKind::Other,
                ));
            }
        };
        let new = rec.version.0;
        let run = self.running_version();
        let rejected = |e: OtaErr| {
            Ok(Check::Refused(OtaStatus::Rejected {
                sub_reason: e.code(),
            }))
        };
        if new == run {
            return rejected(OtaErr::SameFirmwareVersion);
        }
        if new < run || rec.security_counter < floor {
            return rejected(OtaErr::DowngradeNotAllowed);
        }
        if let Some(hw) = &self.cfg.hardware
            && !rec.hardware.as_str().is_empty()
            && rec.hardware != *hw
        {
            return rejected(OtaErr::InvalidArg);
        }
        Ok(Check::Ok(rec))
    }
}
