//! Job documents: which job is ours, the OTA job's checks, starting or resuming its download.

use super::trust::ImageJob;
use super::*;

impl<'a, V: BootVerifier> Agent<'a, V> {
    pub(super) fn on_job_message<P: Platform>(
        &mut self,
        now: Instant,
        payload: &[u8],
        platform: &mut P,
    ) {
        if matches!(self.phase, Phase::Activated | Phase::Halted) {
            return;
        }
        let Ok(msg) = JobMessage::parse(payload) else {
            return;
        };
        // Every Jobs message's signed timestamp, with or without a job (design §4.1 step 1).
        self.on_timestamp(now, msg.ferrota_timestamp, platform);
        if matches!(self.phase, Phase::Halted) {
            return;
        }
        let Some(ex) = msg.execution else {
            // Nothing pending: a download in progress was cancelled on the server.
            if self.phase.download().is_some() || matches!(self.phase, Phase::FetchingManifest(_)) {
                self.abandon_download();
            }
            if matches!(self.phase, Phase::AwaitingApp { .. }) {
                self.phase = Phase::Idle;
                self.event(AgentEvent::JobCancelled);
            }
            return;
        };
        if !self.finished.is_empty() && ex.job_id == self.finished.as_str() {
            // Already reported SUCCEEDED or FAILED: a stale copy of the job, not a new one.
            return;
        }
        let same_job = ex.job_id == self.job.as_str();
        if ex.status_details.in_self_test() {
            self.on_self_test_job(now, &ex, platform);
            return;
        }
        match self.state() {
            State::SelfTest | State::AwaitingApp if same_job => return,
            State::AwaitingSelfTestJob => {
                self.on_pending_without_self_test(now, &ex, platform);
                return;
            }
            _ => {}
        }
        match ex.document() {
            Err(e) => {
                if same_job && self.phase.take_download().is_some() {
                    self.push(Out::Unsubscribe(Sub::Data));
                }
                self.set_job(ex.job_id);
                let sub = match e {
                    JobError::Invalid(ferrota_proto::job::Field::FileSize) => {
                        JobParseErr::ZeroFileSize.code()
                    }
                    _ => JobParseErr::NonConformingJobDoc.code(),
                };
                self.end_job(AgentEvent::JobFailed {
                    status: OtaStatus::Failed {
                        main: OtaErr::JobParserError.code(),
                        sub,
                    },
                });
            }
            Ok(JobDocument::Custom(_)) => {
                self.abandon_download();
                self.set_job(ex.job_id);
                self.phase = Phase::AwaitingApp { file_type: 0 };
                self.event(AgentEvent::CustomJob);
            }
            Ok(JobDocument::Ota(ota)) => self.on_ota_job(now, ex.job_id, &ota, platform),
        }
    }

    pub(super) fn set_job(&mut self, id: &str) {
        self.job.clear();
        let _ = self.job.push_str(id);
    }

    pub(super) fn on_ota_job<P: Platform>(
        &mut self,
        now: Instant,
        job_id: &str,
        ota: &OtaJob<'_>,
        platform: &mut P,
    ) {
        let file = ota.file;
        let stream = ota.stream_name.unwrap_or("");
        if self.phase.download().is_some() || matches!(self.phase, Phase::FetchingManifest(_)) {
            if job_id == self.job.as_str() && stream == self.stream.as_str() {
                // The same job again (reconnect, duplicate notification): keep going (§4.7
                // hazard 3 does not restart us).
                self.fill_window(now);
                return;
            }
            self.abandon_download();
        }
        self.manifest = None;
        self.set_job(job_id);
        if !ota.protocols.mqtt || ota.stream_name.is_none() {
            self.end_job(AgentEvent::JobFailed {
                status: OtaStatus::Aborted {
                    sub_reason: OtaErr::InvalidDataProtocol.code(),
                },
            });
            return;
        }
        let file_type = file.file_type.unwrap_or(0);
        if !self.cfg.firmware_file_types.contains(&file_type) {
            self.phase = Phase::AwaitingApp { file_type };
            self.event(AgentEvent::OtherFileJob {
                file_type,
                file_size: file.file_size,
                file_id: file.file_id,
            });
            return;
        }
        let sig_fail = OtaStatus::Failed {
            main: PalErr::SignatureCheckFailed.code(),
            sub: 0,
        };
        let mut sig_buf = [0u8; SIGNATURE_TEXT_MAX];
        let sig_text = file
            .signature_for(self.cfg.signature_key)
            .and_then(|s| s.unescape(&mut sig_buf).ok());
        let Some(sig_text) = sig_text else {
            self.end_job(AgentEvent::JobFailed { status: sig_fail });
            return;
        };
        let Ok(signature) = OtaSignature::from_base64(sig_text) else {
            self.end_job(AgentEvent::JobFailed { status: sig_fail });
            return;
        };
        let block_size = self.cfg.block_size;
        let bank_cap = match platform.inactive_bank() {
            Ok(b) => b.capacity() as u32,
            Err(f) => return self.halt(f),
        };
        let too_small = file.file_size < Region::Cm0p.size();
        if too_small
            || file.file_size > BANK_SIZE
            || file.file_size > bank_cap
            || block_count(file.file_size, block_size) > MAX_BLOCKS
        {
            self.end_job(AgentEvent::JobFailed {
                status: OtaStatus::Failed {
                    main: PalErr::RxFileTooLarge.code(),
                    sub: if too_small { SUB_TOO_SMALL } else { 0 },
                },
            });
            return;
        }
        self.stream.clear();
        let _ = self.stream.push_str(stream);
        // A packed full image or a delta from the active bank instead of the 4 MB bank image,
        // when the document offers one that fits (packed.rs: the base is hashed here, before
        // anything is written).
        let choice = self.choose_packed(ota, &file, platform);
        let image = ImageJob {
            file_id: file.file_id,
            file_size: file.file_size,
            signature,
            // files[0]'s id, whichever file is fetched: the self-test after a reset finds the
            // record by the job alone (Agent::activated_version); `file_id` of the identity
            // tells the encodings apart.
            tag: resume::tag(&[
                job_id.as_bytes(),
                stream.as_bytes(),
                &[file.file_id],
                sig_text.as_bytes(),
            ]),
            choice,
        };
        // The metadata file (when offered or required) is fetched and checked before the bank
        // is locked or any image block asked for (design §4.1 step 2).
        self.after_prepare(now, ota, image, platform);
    }

    /// The second half of a firmware job, once its metadata (if any) is accepted: lock the
    /// bank, the resume record, and the first image block.
    pub(super) fn begin_image_download<P: Platform>(
        &mut self,
        now: Instant,
        image: ImageJob,
        platform: &mut P,
    ) {
        let block_size = self.cfg.block_size;
        // Lock the inactive bank before its first erase: whatever this download leaves there (a
        // torn, refused or unsigned image) must not boot through USER1 or a fallback. Only the
        // activation of a fully verified image unlocks it (ferrota_boot::log, "Bank locks").
        let locked = platform.marker_log().map_err(BootErr::Flash).and_then(|l| {
            let mut log = MarkerLog::new(l).map_err(log_fault)?;
            app::lock_for_update(&mut log, self.running.bank).map_err(app_fault)
        });
        match locked {
            Ok(_) => {}
            Err(BootErr::Flash(f)) => return self.halt(f),
            Err(BootErr::Refused) => {
                // Only while the running image is under trial: as the official agent when the
                // platform is in self-test and the job is not.
                return self.end_job(AgentEvent::JobFailed {
                    status: OtaStatus::Rejected {
                        sub_reason: OtaErr::ImageStateMismatch.code(),
                    },
                });
            }
        }
        let ImageJob {
            file_id: file0_id,
            file_size: file0_size,
            signature,
            tag,
            choice,
        } = image;
        let (file_id, file_size, encoding) = match &choice {
            Some(c) => (c.file_id, c.file_size, c.encoding),
            None => (file0_id, file0_size, FileEncoding::Image),
        };
        let num_blocks = block_count(file_size, block_size);
        if num_blocks > MAX_BLOCKS {
            self.end_job(AgentEvent::JobFailed {
                status: OtaStatus::Failed {
                    main: PalErr::RxFileTooLarge.code(),
                    sub: 0,
                },
            });
            return;
        }
        self.event(AgentEvent::FileChosen {
            encoding,
            file_bytes: file_size,
        });
        let erase = <P::Bank<'_> as NorFlash>::ERASE_SIZE as u32;
        let chunk_size = if choice.is_some() {
            PACKED_CHUNK.max(erase)
        } else {
            resume::chunk_size(file_size, block_size, erase)
        };
        let identity = resume::Identity {
            file_size,
            block_size,
            file_id: u32::from(file_id),
            // files[0]'s id, whichever file is fetched: the self-test after a reset finds the
            // record by the job alone (Agent::activated_version); `file_id` above tells the
            // encodings apart.
            tag,
            chunk_size,
        };
        let Ok(missing) = BlockSet::all_missing(num_blocks) else {
            return;
        };
        // Built straight into the phase (the resume record's finished chunks are marked there):
        // a `Download` is about 10 KB, and every move of it is a copy on the CM7's stack.
        self.phase = Phase::Prechecking(Download {
            sched: Schedule::new(missing),
            file_size,
            image_size: file0_size,
            packed: choice.map(|c| Packed {
                header: None,
                applier: ferrota_delta::Applier::new(),
                base: c.base,
                fill_pending: ChunkSet::default(),
                done: ChunkSet::default(),
            }),
            block_size,
            num_blocks,
            file_id,
            chunk_size: identity.chunk_size,
            erased: ChunkSet::default(),
            // A packed file: known once its header is in (Agent::on_packed_header).
            precheck_blocks: if choice.is_some() {
                num_blocks
            } else {
                Region::Cm0p.size().div_ceil(block_size).min(num_blocks)
            },
            probing: false,
            signature,
        });
        let Some(d) = self.phase.download_mut() else {
            return;
        };
        let mut resumed = 0;
        let r = (|| -> Result<(), FlashFault> {
            let mut area = platform.resume_area()?;
            let rec = resume::read(&mut area).map_err(|k| FlashFault::new(FlashOp::Resume, k))?;
            if rec.is_some_and(|r| r.identity == identity) {
                // A packed file's chunks are restored when its header is in.
                for c in 0..d.chunks() {
                    if resume::chunk_done(&mut area, c)
                        .map_err(|k| FlashFault::new(FlashOp::Resume, k))?
                    {
                        let (a, b) = d.chunk_blocks(c);
                        for i in a..b {
                            let _ = d.sched.missing.mark_received(i);
                        }
                        resumed += b - a;
                    }
                }
            } else {
                resume::start(&mut area, &identity)
                    .map_err(|k| FlashFault::new(FlashOp::Resume, k))?;
            }
            Ok(())
        })();
        if let Err(f) = r {
            return self.halt(f);
        }
        self.push(Out::Subscribe(Sub::Data));
        if choice.is_none() {
            self.event(AgentEvent::DownloadStarted {
                blocks: num_blocks,
                resumed,
            });
        }
        self.after_progress(now, platform);
    }
}
