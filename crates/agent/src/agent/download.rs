//! The transfer: asking for blocks, writing them into the inactive bank, and the end of the
//! download (the activation proof, then TRIAL).

use super::*;

impl<'a, V: BootVerifier> Agent<'a, V> {
    pub(super) fn fill_window(&mut self, now: Instant) {
        if !self.connected {
            return;
        }
        let max = self.cfg.effective_blocks_per_request();
        let (slots, reask) = match self.phase.download() {
            // After a timeout one request probes the path; nothing else goes out.
            Some(d) if d.probing => (1, false),
            Some(d) => (d.sched.slots(self.cfg.requests_in_flight, max), true),
            None => return,
        };
        let prechecked = matches!(self.phase, Phase::Downloading(_));
        loop {
            let Some(d) = self.phase.download_mut() else {
                return;
            };
            // Before the CM0+ region is checked, ask ahead of it by the lookahead at most
            // (Config::precheck_lookahead: keeps the link busy during the check's round trip).
            // A packed file's header comes alone first: no other block can be placed before it.
            let limit = if d.packed.as_ref().is_some_and(|p| p.header.is_none()) {
                1
            } else if prechecked {
                d.num_blocks
            } else {
                d.precheck_blocks
                    .saturating_add(self.cfg.precheck_lookahead)
                    .min(d.num_blocks)
            };
            if d.sched
                .next_request(now, slots, reask, max, limit)
                .is_none()
            {
                break;
            }
            self.stats.requests += 1;
        }
        if self.phase.download().is_some_and(|d| d.sched.has_unsent())
            && !self.out.iter().any(|o| matches!(o, Out::Requests))
        {
            self.push(Out::Requests);
        }
    }

    pub(super) fn on_block<P: Platform>(
        &mut self,
        now: Instant,
        stream: &str,
        payload: &[u8],
        platform: &mut P,
    ) {
        if let Phase::FetchingManifest(_) = self.phase {
            return self.on_manifest_data(now, stream, payload, platform);
        }
        let Some(d) = self.phase.download_mut() else {
            // No download (e.g. a late duplicate of the final block, §4.9 hazard 1): ignored.
            self.stats.ignored += 1;
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
        if block.file_id != u32::from(d.file_id) || block.block_id >= d.num_blocks {
            self.stats.ignored += 1;
            return;
        }
        let i = block.block_id;
        if block.payload.len() as u32 != d.block_len(i) {
            self.stats.malformed += 1;
            return;
        }
        if !d.sched.missing.is_missing(i) {
            self.stats.duplicates += 1;
            // Both copies of a block found lost came: it was late (reordering tolerance).
            self.stats.late += u32::from(d.sched.on_duplicate(i));
            return;
        }
        if i != 0 && d.packed.as_ref().is_some_and(|p| p.header.is_none()) {
            // A frame before the header (never asked for yet): it cannot be placed.
            self.stats.ignored += 1;
            return;
        }
        let written = if d.packed.is_none() {
            Self::write_block(d, i, block.payload, platform).map(|()| true)
        } else if i == 0 {
            // Held blocks were turned away above: the header is read once.
            self.on_packed_header(block.payload, platform)
        } else {
            self.on_packed_frame(i, block.payload, platform)
        };
        match written {
            Err(f) => return self.halt(f),
            Ok(false) => return self.fail_packed(platform),
            Ok(true) => {}
        }
        let Some(d) = self.phase.download_mut() else {
            return;
        };
        let _ = d.sched.missing.mark_received(i);
        let news = d.sched.on_block(now, i, self.cfg.gap_retransmit);
        self.stats.gaps += news.lost;
        self.stats.late += u32::from(news.late);

        d.sched.momentum = 0;
        d.probing = false;
        self.stats.blocks_accepted += 1;
        let (received, total) = (d.sched.missing.received_count(), d.num_blocks);
        // Each chunk the block held data of is complete once all its blocks are in (a packed
        // block may finish one chunk and start the next).
        let (first, end) = d.chunks_of(i).unwrap_or((0, 0));
        for c in first..end {
            let (a, b) = d.chunk_blocks(c);
            let chunk_complete = d.sched.missing.first_missing_from(a).is_none_or(|m| m >= b);
            if chunk_complete {
                if let Some(p) = d.packed.as_mut() {
                    p.done.set(c, true);
                }
                let ok = platform
                    .resume_area()
                    .ok()
                    .and_then(|mut r| resume::mark_chunk(&mut r, c).ok());
                if ok.is_none() {
                    self.stats.mark_failures += 1;
                }
            }
        }
        if received < total
            && (received == 1 || received.is_multiple_of(self.cfg.progress_every.max(1)))
        {
            self.publish_status(OtaStatus::Receiving { received, total });
        }
        self.after_progress(now, platform);
    }

    pub(super) fn write_block<P: Platform>(
        d: &mut Download,
        i: u32,
        data: &[u8],
        platform: &mut P,
    ) -> Result<(), FlashFault> {
        let mut bank = platform.inactive_bank()?;
        d.erase_chunk_once(d.chunks_of(i).map_or(0, |(c, _)| c), &mut bank)?;
        let w = <P::Bank<'_> as NorFlash>::WRITE_SIZE;
        const { assert!(<P::Bank<'_> as NorFlash>::WRITE_SIZE <= 64) };
        let at = i * d.block_size;
        let aligned = data.len() - data.len() % w;
        if aligned > 0 {
            bank.write(at, &data[..aligned])
                .map_err(fk(FlashOp::WriteBlock))?;
        }
        if aligned < data.len() {
            let mut tail = [0xFFu8; 64];
            tail[..data.len() - aligned].copy_from_slice(&data[aligned..]);
            bank.write(at + aligned as u32, &tail[..w])
                .map_err(fk(FlashOp::WriteBlock))?;
        }
        Ok(())
    }

    /// Every block is in: hash the bank as read back, check the OTA signature, re-check the
    /// CM0+ region, activate, report `self_test: ready`.
    pub(super) fn finish_download<P: Platform>(&mut self, platform: &mut P) {
        let Some(d) = self.phase.take_download() else {
            return;
        };
        self.push(Out::Unsubscribe(Sub::Data));
        // One proof for both checks over the bank as read back: the OTA signature first (sub 0),
        // then the CM0+ region (the precheck passed on the same bytes, but re-verify: a proof,
        // not a memory).
        let mut scratch = [0u8; 1024];
        // The file signature is the release key's when a manifest is bound (design §4.1 step
        // 8): a release-key rotation needs no new firmware.
        let code_key = self
            .manifest
            .as_ref()
            .map_or(self.cfg.code_signing_key, |m| *m.release_key());
        let verified = match platform.inactive_bank() {
            Ok(mut bank) => verify_written_bank(
                &mut bank,
                0,
                d.image_size,
                &d.signature,
                &code_key,
                self.cfg.boot_key,
                &mut scratch,
            ),
            Err(f) => return self.halt(f),
        };
        let proof = match verified {
            Ok(p) => p,
            Err(WrittenBankError::Flash(k)) => {
                return self.halt(FlashFault::new(FlashOp::ReadBank, k));
            }
            Err(WrittenBankError::OtaSignature(_)) => {
                // Start afresh if the job comes again: the bytes in flash are not the signed file.
                if let Ok(mut r) = platform.resume_area() {
                    let _ = resume::clear(&mut r);
                }
                return self.end_job(AgentEvent::JobFailed {
                    status: OtaStatus::Failed {
                        main: PalErr::SignatureCheckFailed.code(),
                        sub: 0,
                    },
                });
            }
            Err(WrittenBankError::Boot(_)) => {
                return self.end_job(AgentEvent::JobFailed {
                    status: OtaStatus::Failed {
                        main: PalErr::SignatureCheckFailed.code(),
                        sub: SUB_BOOT_SIGNATURE,
                    },
                });
            }
        };
        match self.check_record(proof.record(), platform) {
            Err(f) => return self.halt(f),
            Ok(Check::Refused(status)) => return self.end_job(AgentEvent::JobFailed { status }),
            Ok(Check::Ok(_)) => {}
        }
        let trust = match self.trust_for_activation(&proof) {
            Ok(t) => t,
            Err(status) => return self.end_job(AgentEvent::JobFailed { status }),
        };
        // The installed sequence before TRIAL: a cut after it leaves a floor that only refuses
        // this same manifest again, never a bank that boots half-trusted.
        if let Err(f) = self.persist_installed(&trust, platform) {
            return self.halt(f);
        }
        let run = self.running_version();
        if !self.activate(&proof, trust, platform) {
            return;
        }
        self.publish_status(OtaStatus::SelfTestReady {
            updated_by: AppVersion::from_u32(run),
        });
        self.phase = Phase::Activated;
        self.event(AgentEvent::Activated);
        self.event(AgentEvent::ResetRequested);
    }

    /// The only caller of `app::request_activation`: TRIAL needs the bank's proof and a
    /// [`Trust`] (a bound manifest or the AwsPlain permission). `false`: the job ended.
    fn activate<P: Platform>(
        &mut self,
        proof: &ferrota_image::verify::BankVerified,
        trust: Trust,
        platform: &mut P,
    ) -> bool {
        let _ = trust;
        let run = self.running_version();
        if let Ok(mut r) = platform.resume_area() {
            let _ = resume::mark_activating(&mut r, run);
        }
        let activated = platform.marker_log().map_err(BootErr::Flash).and_then(|l| {
            let mut log = MarkerLog::new(l).map_err(log_fault)?;
            app::request_activation(&mut log, self.running.bank, proof, self.cfg.trial_budget)
                .map_err(app_fault)
        });
        match activated {
            Ok(_) => true,
            Err(BootErr::Flash(f)) => {
                self.halt(f);
                false
            }
            Err(BootErr::Refused) => {
                self.end_job(AgentEvent::JobFailed {
                    status: OtaStatus::Failed {
                        main: PalErr::ActivateFailed.code(),
                        sub: 0,
                    },
                });
                false
            }
        }
    }
}
