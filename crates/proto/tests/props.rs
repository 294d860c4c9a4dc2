//! Property tests: encode → decode round trips, and parsers that never panic.

use ferrota_proto::bitmap::{BitmapView, BlockSet};
use ferrota_proto::job::{
    ExecutionOut, FileOut, JobDocument, JobDocumentOut, JobMessage, JobMessageOut, JobStatus,
    OtaJobOut, Protocols,
};
use ferrota_proto::json;
use ferrota_proto::status::{AppVersion, OtaStatus, UpdateRequest};
use ferrota_proto::stream::{DataBlock, StreamRejection, StreamRequest};
use ferrota_proto::topic::{Encoding, JobRef, JobsTopic, Reply, StreamOp, Topic, TopicKind};
use proptest::prelude::*;

fn name(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-zA-Z0-9_-]{{1,{max}}}")).unwrap()
}

fn thing() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9:_-]{1,128}").unwrap()
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        Just(Reply::Request),
        Just(Reply::Accepted),
        Just(Reply::Rejected)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn topic_round_trip(thing in thing(), job in name(72), stream in name(128), r in reply(), which in 0u8..9, op in 0u8..5, json in any::<bool>()) {
        let kind = match which {
            0 => TopicKind::Jobs(JobsTopic::Notify),
            1 => TopicKind::Jobs(JobsTopic::NotifyNext),
            2 => TopicKind::Jobs(JobsTopic::GetPending(r)),
            3 => TopicKind::Jobs(JobsTopic::StartNext(r)),
            4 => TopicKind::Jobs(JobsTopic::Describe { job: JobRef::Next, reply: r }),
            5 => TopicKind::Jobs(JobsTopic::Describe { job: JobRef::Id(&job), reply: r }),
            6 => TopicKind::Jobs(JobsTopic::Update { job: &job, reply: r }),
            _ => TopicKind::Stream {
                stream: &stream,
                op: [StreamOp::Get, StreamOp::Data, StreamOp::Rejected, StreamOp::Describe, StreamOp::Description][op as usize],
                encoding: if json { Encoding::Json } else { Encoding::Cbor },
            },
        };
        let t = Topic { thing: &thing, kind };
        let mut buf = [0u8; 400];
        let s = t.write(&mut buf).unwrap();
        prop_assert_eq!(Topic::parse(s), Ok(t));
    }

    #[test]
    fn topic_parse_never_panics(s in "(\\$aws/things/)?[a-z$/+#:_-]{0,12}(/jobs/|/streams/)?[a-z$/:-]{0,40}") {
        if let Ok(t) = Topic::parse(&s) {
            let mut buf = [0u8; 512];
            prop_assert_eq!(t.write(&mut buf).unwrap(), s.as_str());
        }
    }

    #[test]
    fn topic_parse_arbitrary(s in any::<String>()) {
        let _ = Topic::parse(&s);
    }

    #[test]
    fn json_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = JobMessage::parse(&bytes).map(|m| m.execution.map(|e| e.document()));
        let _ = UpdateRequest::parse(&bytes);
        let _ = OtaStatus::decode(&bytes);
        let _ = ferrota_proto::jobs_api::JobsRequest::parse(&bytes);
        let _ = ferrota_proto::jobs_api::JobsRejection::parse(&bytes);
    }

    #[test]
    fn cbor_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = StreamRequest::decode(&bytes);
        let _ = DataBlock::decode(&bytes);
        let _ = StreamRejection::decode(&bytes);
    }

    #[test]
    fn job_document_mutations_never_panic(pos in 0usize..400, byte in any::<u8>(), cut in 0usize..400) {
        let base = br#"{"timestamp":1,"clientToken":":t","execution":{"jobId":"j","status":"QUEUED","statusDetails":{"self_test":"ready","updatedBy":"0x00090002"},"jobDocument":{"afr_ota":{"protocols":["MQTT"],"streamname":"s","files":[{"filepath":"/a\"b","filesize":10,"fileid":0,"sig-sha256-ecdsa":"MEQC"}]}}}}"#;
        let mut v = base.to_vec();
        let p = pos % v.len();
        v[p] = byte;
        v.truncate(cut.max(1).min(v.len()));
        let _ = JobMessage::parse(&v).map(|m| m.execution.map(|e| e.document()));
        let mut w = base.to_vec();
        w[p] = byte;
        let _ = JobMessage::parse(&w).map(|m| m.execution.map(|e| e.document()));
    }

    #[test]
    fn json_iteration_sees_every_member(keys in proptest::collection::vec("[a-z]{1,6}", 0..8), ws in "[ \t\r\n]{0,3}") {
        let mut text = format!("{ws}{{{ws}");
        for (i, k) in keys.iter().enumerate() {
            if i > 0 { text.push_str(&format!("{ws},{ws}")); }
            text.push_str(&format!("\"{k}\"{ws}:{ws}[{ws}{i}{ws},{ws}{{{ws}}}{ws}]"));
        }
        text.push_str(&format!("{ws}}}{ws}"));
        let o = json::parse_object(text.as_bytes()).unwrap().unwrap();
        prop_assert_eq!(o.iter().count(), keys.len());
        for (i, (_, v)) in o.iter().enumerate() {
            let a = v.as_array().unwrap();
            prop_assert_eq!(a.len(), 2);
            prop_assert_eq!(a.iter().next().unwrap().as_u64(), Some(i as u64));
        }
    }

    #[test]
    fn job_message_round_trip(
        job_id in name(72), stream in name(44), path in "(\\PC|[\\x00-\\x1f]){0,40}", cert in "[ -~]{0,20}",
        size in 1u32.., id in 0u8.., ft in proptest::option::of(any::<u8>()), attr in proptest::option::of(any::<u32>()),
        sig in "[A-Za-z0-9+/=]{0,512}", ts in any::<u64>(), token in proptest::option::of("[ -~]{0,64}"),
        version in any::<u64>(), self_test in any::<bool>(), updated_by in any::<u32>(), mqtt in any::<bool>(), http in any::<bool>(),
        ferrota_ts in proptest::option::of("[A-Za-z0-9_-]{1,400}"),
    ) {
        let updated = format!("0x{updated_by:08x}");
        let details = [("self_test", "ready"), ("updatedBy", updated.as_str())];
        let files = [FileOut {
            file_path: Some(&path), file_size: size, file_id: id, cert_file: Some(&cert),
            file_type: ft, attr, update_data_url: None, auth_scheme: None,
            signature: Some(("sig-sha256-ecdsa", &sig)), packed: None,
        }];
        let msg = JobMessageOut {
            timestamp: ts,
            client_token: token.as_deref(),
            execution: Some(ExecutionOut {
                job_id: &job_id, thing_name: None, status: JobStatus::InProgress,
                status_details: if self_test { &details } else { &[] },
                queued_at: 1, started_at: Some(2), last_updated_at: 3, version_number: version, execution_number: 1,
                job_document: JobDocumentOut::Ota(OtaJobOut { protocols: Protocols { mqtt, http }, stream_name: Some(&stream), files: &files }),
            }),
            ferrota_timestamp: ferrota_ts.as_deref(),
        };
        let mut buf = vec![0u8; 4096];
        let text = msg.encode(&mut buf).unwrap();
        let m = JobMessage::parse(text.as_bytes()).unwrap();
        prop_assert_eq!(m.timestamp, Some(ts));
        prop_assert_eq!(m.ferrota_timestamp, ferrota_ts.as_deref());
        let mut tb = [0u8; 256];
        prop_assert_eq!(m.client_token.map(|t| t.unescape(&mut tb).unwrap().to_owned()), token.clone());
        let ex = m.execution.unwrap();
        prop_assert_eq!(ex.job_id, job_id.as_str());
        prop_assert_eq!(ex.version_number, Some(version));
        prop_assert_eq!(ex.status_details.in_self_test(), self_test);
        prop_assert_eq!(ex.status_details.updated_by(), self_test.then_some(updated_by));
        let JobDocument::Ota(j) = ex.document().unwrap() else { panic!() };
        prop_assert_eq!(j.protocols, Protocols { mqtt, http });
        prop_assert_eq!(j.stream_name, Some(stream.as_str()));
        let f = j.file;
        let mut pb = [0u8; 256];
        prop_assert_eq!(f.file_path.unwrap().unescape(&mut pb).unwrap(), path.as_str());
        prop_assert!(f.file_path.unwrap().eq_str(&path));
        prop_assert_eq!(f.cert_file.unwrap().unescape(&mut pb).unwrap(), cert.as_str());
        prop_assert_eq!((f.file_size, f.file_id, f.file_type, f.attr), (size, id, ft, attr));
        prop_assert_eq!(f.signature.unwrap().value.raw(), sig.as_str());
    }

    #[test]
    fn status_round_trip(kind in 0u8..7, a in any::<u32>(), b in any::<u32>()) {
        let s = match kind {
            0 => OtaStatus::Receiving { received: a, total: b },
            1 => OtaStatus::SelfTestReady { updated_by: AppVersion::from_u32(a) },
            2 => OtaStatus::SelfTestActive { updated_by: AppVersion::from_u32(a) },
            3 => OtaStatus::Accepted { version: AppVersion::from_u32(a), updated_by: AppVersion::from_u32(b) },
            4 => OtaStatus::Rejected { sub_reason: a },
            5 => OtaStatus::Aborted { sub_reason: a },
            _ => OtaStatus::Failed { main: a, sub: b },
        };
        let mut buf = [0u8; 128];
        let text = s.encode(&mut buf).unwrap();
        prop_assert_eq!(OtaStatus::decode(text.as_bytes()), Ok(s));
        prop_assert_eq!(UpdateRequest::parse(text.as_bytes()).unwrap().status, s.job_status());
    }

    #[test]
    fn stream_request_round_trip(
        c in proptest::option::of("\\PC{0,64}"), s in proptest::option::of(any::<u32>()), f in any::<u32>(), l in any::<u32>(),
        o in proptest::option::of(any::<u32>()), b in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        n in proptest::option::of(any::<u32>()),
    ) {
        let r = StreamRequest { client_token: c.as_deref(), stream_version: s, file_id: f, block_size: l, offset: o, bitmap: b.as_deref(), num_blocks: n };
        let mut buf = [0u8; 1024];
        let len = r.encode(&mut buf).unwrap();
        prop_assert_eq!(StreamRequest::decode(&buf[..len]), Ok(r));
        for k in 0..len {
            prop_assert!(StreamRequest::decode(&buf[..k]).is_err());
        }
    }

    #[test]
    fn data_block_round_trip(c in proptest::option::of("[ -~]{0,64}"), f in any::<u32>(), i in any::<u32>(), p in proptest::collection::vec(any::<u8>(), 0..2048), indef in any::<bool>()) {
        let blk = DataBlock::new(c.as_deref(), f, i, &p);
        let mut buf = vec![0u8; 2200];
        let len = if indef { blk.encode_indefinite(&mut buf).unwrap() } else { blk.encode(&mut buf).unwrap() };
        if !indef { prop_assert_eq!(len, blk.encoded_len()); }
        let d = DataBlock::decode(&buf[..len]).unwrap();
        prop_assert_eq!(d, blk);
        // Zero copy: the payload points into the message.
        prop_assert!(buf[..len].as_ptr_range().contains(&d.payload.as_ptr()) || p.is_empty());
        let mut small = vec![0u8; len - 1];
        prop_assert!(blk.encode(&mut small).is_err() || indef);
    }

    #[test]
    fn rejection_round_trip(code in "[A-Za-z]{1,30}", m in proptest::option::of("\\PC{0,80}"), c in proptest::option::of("[ -~]{0,64}")) {
        let r = StreamRejection { code: &code, message: m.as_deref(), client_token: c.as_deref() };
        let mut buf = [0u8; 512];
        let len = r.encode(&mut buf).unwrap();
        prop_assert_eq!(StreamRejection::decode(&buf[..len]), Ok(r));
    }

    #[test]
    fn block_set_matches_model(n in 0u32..=1024, ops in proptest::collection::vec((any::<bool>(), 0u32..1100), 0..300)) {
        let mut s = BlockSet::<128>::all_missing(n).unwrap();
        let mut model = vec![true; n as usize];
        for (recv, b) in ops {
            let r = if recv { s.mark_received(b) } else { s.mark_missing(b) };
            if b >= n {
                prop_assert!(r.is_err());
                continue;
            }
            let was = model[b as usize];
            prop_assert_eq!(r.unwrap(), if recv { was } else { !was });
            model[b as usize] = !recv;
        }
        let missing: Vec<u32> = (0..n).filter(|&b| model[b as usize]).collect();
        prop_assert_eq!(s.iter_missing().collect::<Vec<_>>(), missing.clone());
        prop_assert_eq!(s.missing_count() as usize, missing.len());
        prop_assert_eq!(BitmapView { offset: 0, bits: s.as_bytes() }.requested(n).collect::<Vec<_>>(), missing.clone());
        let back = BlockSet::<128>::from_bytes(n, s.as_bytes()).unwrap();
        prop_assert_eq!(&back, &s);
        // A window: the first `max` missing blocks at or after `from` that fit the buffer.
        let from = n / 3;
        let mut buf = [0u8; 8];
        let w = s.request_window(from, 10, &mut buf);
        let expect: Vec<u32> = missing.iter().copied().filter(|&b| b >= from).collect();
        match w {
            None => prop_assert!(expect.is_empty()),
            Some(w) => {
                let got: Vec<u32> = BitmapView { offset: w.offset, bits: &buf[..w.len] }.requested(n).collect();
                let want: Vec<u32> = expect.iter().copied().filter(|&b| b < w.offset + 64).take(10).collect();
                prop_assert_eq!(w.count as usize, got.len());
                prop_assert_eq!(got, want);
            }
        }
    }
}
