//! What the C API passes beyond the update itself: an application job failed with the
//! application's own status, the stream rejection's code, and every counter of the agent.

mod common;

use common::{Board, CData, Mem, fixture, run, start};
use ferrota_agent_ffi::*;
use ferrota_proto::job::{
    ExecutionOut, FileOut, JobDocumentOut, JobMessageOut, OtaJobOut, PackedBaseOut, PackedOut,
    Protocols,
};
use ferrota_proto::jobs_api::JobsRequest;
use ferrota_proto::stream::{StreamErrorCode, StreamRejection};
use ferrota_proto::topic::{Encoding, StreamOp, Topic};
use ferrota_sim::harness::{Msg, Service, THING};
use ferrota_sim::images::ota::{Spec, image};
use ferrota_sim::service::{JobsStreams, OtaFile};

/// A job for a file of type 7 (not firmware): the application's to handle.
fn other_file_job() -> JobsStreams {
    let mut f = OtaFile::image(vec![0x5A; 100], None);
    f.file_type = 7;
    f.path = "/app/config.bin".into();
    JobsStreams::new("job-app", "stream-app", vec![f])
}

/// Every event the agent has queued.
fn events(agent: *mut FerrotaAgent) -> Vec<FerrotaEvent> {
    let mut out = vec![];
    let mut e = std::mem::MaybeUninit::<FerrotaEvent>::uninit();
    // SAFETY: the live agent; `e` written on OK.
    while unsafe { ferrota_agent_poll_event(agent, e.as_mut_ptr()) } == FerrotaStatus::FerrotaOk {
        out.push(unsafe { e.assume_init() });
    }
    out
}

/// Hands every queued transmit to `server`; returns how many were publishes.
fn flush(agent: *mut FerrotaAgent, server: &mut JobsStreams) -> usize {
    let mut buf = vec![0u8; FERROTA_TRANSMIT_BUF_MIN];
    let mut n = 0;
    loop {
        let mut t = std::mem::MaybeUninit::<FerrotaTransmit>::uninit();
        // SAFETY: the live agent, buffers valid.
        let st = unsafe {
            ferrota_agent_poll_transmit(agent, buf.as_mut_ptr(), buf.len(), t.as_mut_ptr())
        };
        if st != FerrotaStatus::FerrotaOk {
            return n;
        }
        // SAFETY: written on OK.
        let t = unsafe { t.assume_init() };
        if t.kind == FerrotaTransmitKind::FerrotaPublish {
            n += 1;
            let topic = std::str::from_utf8(&t.topic[..t.topic_len]).expect("UTF-8 topic");
            let _ = server.handle(topic, &buf[..t.payload_len]);
        }
    }
}

#[test]
fn an_application_job_fails_with_the_application_s_own_status() {
    use FerrotaStatus::*;
    for (kind, main, sub, reason) in [
        (
            FerrotaFailKind::FerrotaFailCodes,
            0x1f,
            0x2,
            "0x0000001f: 0x00000002",
        ),
        (
            FerrotaFailKind::FerrotaFailRejected,
            0x42,
            0,
            "rejected: 0x00000042",
        ),
        (
            FerrotaFailKind::FerrotaFailAborted,
            0x7,
            0,
            "aborted: 0x00000007",
        ),
    ] {
        let mut board = Board::new();
        let data = CData::new();
        let mut mem = Mem::new();
        let mut server = other_file_job();
        let mut now = 1_000_000u64;
        let agent = start(&mut mem, &mut board, &data, now);
        run(
            agent,
            &mut server,
            &mut now,
            FerrotaEventKind::FerrotaEventOtherFileJob,
            |_, _, _| {},
        );
        let before = server.updates.len();
        // SAFETY (block): the live agent.
        unsafe {
            // Refused: an unknown kind, a sub code where the reason has none. Nothing is sent.
            assert_eq!(
                ferrota_agent_fail_app_job(agent, now, 3, 1, 0),
                FerrotaErrInvalid
            );
            assert_eq!(
                ferrota_agent_fail_app_job(agent, now, 1, 1, 5),
                FerrotaErrInvalid
            );
            assert_eq!(flush(agent, &mut server), 0);
            assert!(events(agent).is_empty());
            assert_eq!(
                ferrota_agent_fail_app_job(agent, now, kind as u32, main, sub),
                FerrotaOk
            );
        }
        assert!(flush(agent, &mut server) > 0);
        assert_eq!(server.updates.len(), before + 1, "{:?}", server.updates);
        let update = server.updates.last().expect("a status update");
        assert!(
            update.contains("FAILED") && update.contains(reason),
            "{kind:?}: {update}"
        );
        let failed = events(agent)
            .into_iter()
            .find(|e| e.kind == FerrotaEventKind::FerrotaEventJobFailed)
            .expect("a JobFailed event");
        assert_eq!((failed.a, failed.b, failed.c), (kind as u64, main, sub));
        // The job is over: a second answer does nothing.
        // SAFETY: the live agent.
        unsafe {
            assert_eq!(ferrota_agent_fail_app_job(agent, now, 0, 1, 1), FerrotaOk);
            assert_eq!(flush(agent, &mut server), 0);
            assert_eq!(ferrota_agent_deinit(agent), FerrotaOk);
        }
    }
}

#[test]
fn a_stream_rejection_passes_its_code_and_a_missing_stream_fails_the_job() {
    let mut board = Board::new();
    let data = CData::new();
    let mut mem = Mem::new();
    let mut server = fixture(&image(Spec::new(2, 2)));
    server.serves_stream = false;
    let mut now = 1_000_000u64;
    let agent = start(&mut mem, &mut board, &data, now);
    run(
        agent,
        &mut server,
        &mut now,
        FerrotaEventKind::FerrotaEventDownloadStarted,
        |_, _, _| {},
    );
    let topic =
        Topic::stream(THING, &server.stream, StreamOp::Rejected, Encoding::Cbor).to_string();
    let mut reject = |code: &str| {
        let mut buf = [0u8; 128];
        let r = StreamRejection {
            code,
            message: Some("no"),
            client_token: None,
        };
        let n = r.encode(&mut buf).expect("fits");
        // SAFETY: the live agent, buffers valid for the call.
        let st = unsafe {
            ferrota_agent_handle_message(agent, now, topic.as_ptr(), topic.len(), buf.as_ptr(), n)
        };
        assert_eq!(st, FerrotaStatus::FerrotaOk);
        flush(agent, &mut server);
        events(agent)
    };
    // A code AWS does not have: passed as unknown; the download goes on.
    let ev = reject("SomethingNew");
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].kind, FerrotaEventKind::FerrotaEventStreamRejected);
    assert_eq!(
        ev[0].a,
        FerrotaStreamError::FerrotaStreamErrorUnknown as u64
    );
    // Throttled: passed with its code; the download goes on.
    let ev = reject(StreamErrorCode::BlockCountLimitExceeded.as_str());
    assert_eq!(
        (ev.len(), ev[0].a),
        (
            1,
            FerrotaStreamError::FerrotaStreamErrorBlockCountLimitExceeded as u64
        )
    );
    // The stream is gone: its code, then the job fails (RequestFileBlockFailed, 0x8).
    let ev = reject(StreamErrorCode::ResourceNotFound.as_str());
    assert_eq!(ev[0].kind, FerrotaEventKind::FerrotaEventStreamRejected);
    assert_eq!(
        ev[0].a,
        FerrotaStreamError::FerrotaStreamErrorResourceNotFound as u64
    );
    let failed = ev
        .iter()
        .find(|e| e.kind == FerrotaEventKind::FerrotaEventJobFailed)
        .expect("the job fails");
    assert_eq!(
        (failed.a, failed.b),
        (FerrotaFailKind::FerrotaFailCodes as u64, 8)
    );
    // SAFETY: the live agent.
    assert_eq!(
        unsafe { ferrota_agent_deinit(agent) },
        FerrotaStatus::FerrotaOk
    );
}

/// The fixture, but its job document also offers a delta (issue #19) from a base this board
/// does not run: the agent must count the mismatch and fetch the full image.
struct DeltaOffer(JobsStreams);

impl Service for DeltaOffer {
    fn handle(&mut self, topic: &str, payload: &[u8]) -> Vec<Msg> {
        let replies = self.0.handle(topic, payload);
        let next = Topic::next_get_accepted(THING).to_string();
        replies
            .into_iter()
            .map(|(t, p)| {
                if t != next {
                    return (t, p);
                }
                let req = JobsRequest::parse(payload).expect("a $next/get request");
                let token = req.client_token.map(|c| c.raw().to_string());
                (t, self.document(token.as_deref()))
            })
            .collect()
    }
}

impl DeltaOffer {
    fn document(&self, token: Option<&str>) -> Vec<u8> {
        let img = &self.0.files[0];
        let sig = img.signature.as_deref().expect("signed");
        let image = FileOut {
            file_path: Some(&img.path),
            file_size: img.size,
            file_id: 0,
            cert_file: img.cert_file.as_deref(),
            file_type: Some(img.file_type),
            signature: Some(("sig-sha256-ecdsa", sig)),
            ..Default::default()
        };
        let zeros = "0".repeat(64);
        let delta = FileOut {
            file_id: 1,
            file_size: 1000,
            packed: Some(PackedOut {
                encoding: "frpk1",
                block_size: 4096,
                base: Some(PackedBaseOut {
                    sha256: &zeros,
                    size: 0x1_0000,
                    version: "1.1.0",
                    hardware_id: None,
                }),
            }),
            ..image
        };
        let files = [image, delta];
        let m = JobMessageOut {
            timestamp: self.0.times.now,
            client_token: token,
            execution: Some(ExecutionOut {
                job_id: &self.0.job_id,
                thing_name: None,
                status: self.0.status,
                status_details: &[],
                queued_at: self.0.times.queued_at,
                started_at: None,
                last_updated_at: self.0.times.last_updated_at,
                version_number: 1,
                execution_number: 1,
                job_document: JobDocumentOut::Ota(OtaJobOut {
                    protocols: Protocols::MQTT,
                    stream_name: Some(&self.0.stream),
                    files: &files,
                }),
            }),
            ferrota_timestamp: None,
        };
        let mut buf = vec![0u8; 8192];
        let n = m.encode(&mut buf).expect("document fits").len();
        buf.truncate(n);
        buf
    }
}

#[test]
fn the_stats_carry_every_counter_of_the_agent() {
    let mut board = Board::new();
    let data = CData::new();
    let mut mem = Mem::new();
    let v2 = image(Spec::new(2, 2));
    let mut server = DeltaOffer(fixture(&v2));
    let mut now = 1_000_000u64;
    let agent = start(&mut mem, &mut board, &data, now);
    let events = run(
        agent,
        &mut server,
        &mut now,
        FerrotaEventKind::FerrotaEventResetRequested,
        |_, _, _| {},
    );
    assert!(events.contains(&FerrotaEventKind::FerrotaEventActivated));
    let mut s = FerrotaStats::default();
    // SAFETY: the live agent.
    unsafe {
        assert_eq!(ferrota_agent_stats(agent, &mut s), FerrotaStatus::FerrotaOk);
        assert_eq!(ferrota_agent_deinit(agent), FerrotaStatus::FerrotaOk);
    }
    assert_eq!(s.delta_base_mismatch, 1, "{s:?}");
    assert_eq!(s.packed_errors, 0);
    assert_eq!(
        s.blocks_accepted as usize,
        v2.file.len().div_ceil(4096),
        "the full image"
    );
}
