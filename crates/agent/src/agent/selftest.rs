//! After the reset into the new image: the self-test job, confirm or reject, the final report.

use super::*;

impl<'a, V: BootVerifier> Agent<'a, V> {
    pub(super) fn on_self_test_job<P: Platform>(
        &mut self,
        now: Instant,
        ex: &JobExecution<'_>,
        platform: &mut P,
    ) {
        if self.state() == State::SelfTest && ex.job_id == self.job.as_str() {
            return;
        }
        if let Ok(JobDocument::Ota(ota)) = ex.document()
            && !self
                .cfg
                .firmware_file_types
                .contains(&ota.file.file_type.unwrap_or(0))
        {
            // Only firmware has a self-test; the official agent version-checks only firmware.
            return;
        }
        self.abandon_download();
        self.set_job(ex.job_id);
        let mut updated_by = ex.status_details.updated_by().unwrap_or(0);
        let active = ex
            .status_details
            .self_test()
            .is_some_and(|v| v.eq_str("active"));
        if active
            && (self.image_state == ImageState::PendingCommit || self.confirmed_here())
            && updated_by == self.running_version()
        {
            // `self_test: active` carries the *new* version: the reset came during the
            // self-test (or between confirm and the SUCCEEDED report). The version that did
            // the download is in the resume record.
            if let Some(old) = self.activated_version(ex, platform) {
                updated_by = old;
            }
        }
        self.self_test_with(now, updated_by, platform);
    }

    pub(super) fn self_test_with<P: Platform>(
        &mut self,
        now: Instant,
        updated_by: u32,
        platform: &mut P,
    ) {
        let run = self.running_version();
        let pending = self.image_state == ImageState::PendingCommit;
        if run <= updated_by {
            // The new image is not running: it did not boot, or was reverted, or this is an
            // old image. As the official agent: 16 for the same version, 15 for older.
            let code = if run == updated_by {
                OtaErr::SameFirmwareVersion
            } else {
                OtaErr::DowngradeNotAllowed
            };
            let status = OtaStatus::Rejected {
                sub_reason: code.code(),
            };
            if pending {
                return self.reject_and_reset(status, platform);
            }
            self.clear_resume(platform);
            return self.end_job(AgentEvent::JobFailed { status });
        }
        if !pending {
            // Newer than `updatedBy` but not under trial: confirmed already (a reset came
            // between confirm and the SUCCEEDED report) → report it; otherwise a mismatch.
            if self.confirmed_here() {
                return self.report_succeeded(updated_by, platform);
            }
            return self.end_job(AgentEvent::JobFailed {
                status: OtaStatus::Rejected {
                    sub_reason: OtaErr::ImageStateMismatch.code(),
                },
            });
        }
        self.publish_status(OtaStatus::SelfTestActive {
            updated_by: AppVersion::from_u32(run),
        });
        let deadline = now + self.cfg.self_test_deadline;
        self.phase = Phase::SelfTest { updated_by };
        // The deadline replaces the wait for the job document.
        self.timers.stop(Timer::SelfTestWait);
        self.timers.set(Timer::SelfTest, deadline);
        self.event(AgentEvent::StartSelfTest { deadline });
    }

    /// Booted under trial, but the job document has no `self_test`: the `self_test: ready`
    /// report was lost (a reset between activation and the publish). If the resume record says
    /// this agent activated this very job, carry on with the self-test; otherwise reset, as the
    /// official agent does.
    pub(super) fn on_pending_without_self_test<P: Platform>(
        &mut self,
        now: Instant,
        ex: &JobExecution<'_>,
        platform: &mut P,
    ) {
        let activating = self.activated_version(ex, platform);
        match activating {
            Some(updated_by) => {
                self.set_job(ex.job_id);
                self.self_test_with(now, updated_by, platform);
            }
            None => self.event(AgentEvent::ResetRequested),
        }
    }

    /// The running version the resume record says activated this very job, if it does.
    pub(super) fn activated_version<P: Platform>(
        &self,
        ex: &JobExecution<'_>,
        platform: &mut P,
    ) -> Option<u32> {
        let Ok(JobDocument::Ota(ota)) = ex.document() else {
            return None;
        };
        let mut sig_buf = [0u8; SIGNATURE_TEXT_MAX];
        let sig = ota
            .file
            .signature_for(self.cfg.signature_key)?
            .unescape(&mut sig_buf)
            .ok()?;
        let tag = resume::tag(&[
            ex.job_id.as_bytes(),
            ota.stream_name.unwrap_or("").as_bytes(),
            &[ota.file.file_id],
            sig.as_bytes(),
        ]);
        let mut area = platform.resume_area().ok()?;
        let rec = resume::read(&mut area).ok()??;
        (rec.identity.tag == tag).then_some(rec.activating)?
    }

    pub(super) fn finish_self_test<P: Platform>(
        &mut self,
        _now: Instant,
        passed: bool,
        platform: &mut P,
    ) {
        // Only called during the self-test, whose phase holds the version that did the download.
        let Phase::SelfTest { updated_by } = self.phase else {
            return;
        };
        self.timers.stop(Timer::SelfTest);
        if !passed {
            return self.reject_and_reset(OtaStatus::Rejected { sub_reason: 0 }, platform);
        }
        // `confirm` takes the proof that the running bank's CM0+ region verifies: check the bank
        // this image runs from, and that its record is the one the boot reported.
        let boot = {
            let mut scratch = [0u8; 512];
            platform
                .active_bank()
                .map(|mut bank| verify_boot_in_flash(&mut bank, 0, self.cfg.boot_key, &mut scratch))
        };
        let boot = match boot {
            Err(f) => return self.halt(f),
            Ok(Err(e)) => match e.kind {
                ferrota_image::ErrorKind::Flash(k) => {
                    return self.halt(FlashFault::new(FlashOp::ReadBank, k));
                }
                // The running bank does not verify: never raise the floor from it.
                _ => Err(BootErr::Refused),
            },
            Ok(Ok(b)) if *b.record() == self.running.record => Ok(b),
            // Not the image the boot reported: the caller's `Running` is wrong.
            Ok(Ok(_)) => Err(BootErr::Refused),
        };
        let confirmed = boot.and_then(|boot| {
            let l = platform.marker_log().map_err(BootErr::Flash)?;
            let mut log = MarkerLog::new(l).map_err(log_fault)?;
            app::confirm(&mut log, self.running.bank, &boot).map_err(app_fault)
        });
        match confirmed {
            Ok(floor) => {
                self.image_state = ImageState::Valid;
                self.floor = floor;
                self.event(AgentEvent::Confirmed { floor });
                self.request_revocation();
                self.count_plain_confirm();
                self.report_succeeded(updated_by, platform);
            }
            Err(BootErr::Flash(f)) => self.halt(f),
            Err(BootErr::Refused) => self.end_job(AgentEvent::JobFailed {
                status: OtaStatus::Failed {
                    main: PalErr::CommitFailed.code(),
                    sub: 0,
                },
            }),
        }
    }

    pub(super) fn confirmed_here(&self) -> bool {
        self.image_state == ImageState::Valid
            && matches!(self.last_event, LogEvent::Confirmed { bank } if bank == self.running.bank)
    }

    /// The resume record is left in place: it binds to this job only, the next job erases it,
    /// and it lets a reset before the SUCCEEDED report still name the version that did the
    /// download.
    pub(super) fn report_succeeded<P: Platform>(&mut self, updated_by: u32, _platform: &mut P) {
        self.publish_status(OtaStatus::Accepted {
            version: AppVersion::from_u32(self.running_version()),
            updated_by: AppVersion::from_u32(updated_by),
        });
        self.end_job(AgentEvent::JobSucceeded);
    }

    pub(super) fn reject_and_reset<P: Platform>(&mut self, status: OtaStatus, platform: &mut P) {
        let rejected = platform.marker_log().map_err(BootErr::Flash).and_then(|l| {
            let mut log = MarkerLog::new(l).map_err(log_fault)?;
            app::reject(&mut log, self.running.bank).map_err(app_fault)
        });
        if let Err(BootErr::Flash(f)) = rejected {
            return self.halt(f);
        }
        self.clear_resume(platform);
        self.image_state = ImageState::Invalid;
        self.end_job(AgentEvent::JobFailed { status });
        self.event(AgentEvent::Rejected);
        self.event(AgentEvent::ResetRequested);
        self.phase = Phase::Activated;
    }

    pub(super) fn clear_resume<P: Platform>(&mut self, platform: &mut P) {
        if let Ok(mut r) = platform.resume_area() {
            let _ = resume::clear(&mut r);
        }
    }
}
