//! Bad scripts for the C replay (`firmware/c-agent`, issue #22 item 4): `ferrota-qemu
//! agent-refusals` runs the C program on each and expects a clear refusal (one `error …` line,
//! a failed exit, no `final` line, and only lines the host's agent also printed before it).
//!
//! The script is input from outside the program (the host loads it into the PSRAM), and so is
//! what it hands to the C API: each case breaks one thing the C program or the C API must check
//! (the header, an entry's framing, a topic or thing name that is not UTF-8, the code-signing
//! key, the running version record, stream tuning that is zero or out of range). The Rust replay
//! (`firmware/cm7-agent`) is not run on them: it ends the entries silently at the first
//! malformed one (`agent_script::Entries`), by design of that harness.

use crate::agent_script::{HEADER, SCRIPT_MAX, at};

/// One bad script and the refusal expected for it.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Short name (the QEMU run's file names).
    pub name: &'static str,
    /// The script's bytes.
    pub script: Vec<u8>,
    /// What the C program's error line starts with (`error <what>` and, for a status of the C
    /// API, its numeric code: the ABI, not the message text).
    pub expect: &'static str,
}

fn put(s: &mut [u8], at: usize, v: u32) {
    s[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn word(s: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([s[at], s[at + 1], s[at + 2], s[at + 3]])
}

/// Offsets and kinds of a well-formed script's entries.
pub fn entry_offsets(script: &[u8]) -> Vec<(usize, u32)> {
    let mut out = Vec::new();
    let mut p = HEADER;
    for _ in 0..word(script, at::ENTRIES) {
        out.push((p, word(script, p)));
        let end = p + 20 + word(script, p + 12) as usize + word(script, p + 16) as usize;
        p = end.div_ceil(4) * 4;
    }
    out
}

/// The bad scripts made from a good one (`host_run`'s `script.bin`). Panics if `good` has no
/// message entry (the recorded update always has several).
pub fn refusals(good: &[u8]) -> Vec<Refusal> {
    let entries = entry_offsets(good);
    let (msg, _) = *entries
        .iter()
        .find(|(_, k)| *k == 2)
        .expect("the recording has messages");
    let case = |name, expect, f: &dyn Fn(&mut Vec<u8>)| {
        let mut script = good.to_vec();
        f(&mut script);
        Refusal {
            name,
            script,
            expect,
        }
    };
    vec![
        case("magic", "error script", &|s| s[0] ^= 1),
        case("total-short", "error script", &|s| {
            put(s, at::TOTAL, HEADER as u32 - 1)
        }),
        case("total-past-memory", "error script", &|s| {
            put(s, at::TOTAL, SCRIPT_MAX + 1)
        }),
        // Zero reads as "the default" in FerrotaConfig: the program refuses it itself.
        case("tuning-zero", "error script-tuning", &|s| {
            put(s, at::BLOCKS_PER_REQUEST, 0)
        }),
        // FERROTA_ERR_CONFIG (-7): other tuning goes to the C API, which refuses what the
        // agent does (more than 40 requests in flight, FERROTA_REQUESTS_IN_FLIGHT_MAX; a block
        // size that is no power of two).
        case("in-flight", "error agent-init: -7 ", &|s| {
            put(s, at::IN_FLIGHT, 41)
        }),
        case("block-size", "error agent-init: -7 ", &|s| {
            put(s, at::BLOCK_SIZE, 1000)
        }),
        case("bank", "error script-bank", &|s| put(s, at::BANK, 0x100)),
        // FERROTA_ERR_UTF8 (-4) from ferrota_agent_init.
        case("thing-utf8", "error agent-init: -4 ", &|s| {
            s[at::THING] = 0xFF
        }),
        // FERROTA_ERR_INVALID (-5): not a SEC1 point.
        case("code-key", "error agent-init: -5 ", &|s| {
            s[at::CODE_KEY] = 0x05
        }),
        // FERROTA_ERR_IMAGE (-11): the version record's magic.
        case("record", "error agent-init: -11 ", &|s| {
            s[at::RECORD] ^= 0xFF
        }),
        case("entry-kind", "error script-entry", &|s| put(s, HEADER, 9)),
        case("entry-length", "error script-entry", &|s| {
            put(s, msg + 12, u32::MAX - 15)
        }),
        case("entries-count", "error script-entry", &|s| {
            let n = word(s, at::ENTRIES);
            put(s, at::ENTRIES, n + 1)
        }),
        // FERROTA_ERR_UTF8 (-4) from ferrota_agent_handle_message.
        case("topic-utf8", "error handle: -4 ", &|s| s[msg + 20] = 0xFF),
    ]
}

/// The check of one C run on a bad script: `Ok` with the error line, or what is wrong.
/// `host` is the host agent's lines for the good script.
pub fn judge(r: &Refusal, stdout: &str, success: bool, host: &[String]) -> Result<String, String> {
    let lines: Vec<&str> = stdout.lines().filter(|l| !is_figure(l)).collect();
    if success {
        return Err("the program exited successfully".into());
    }
    let Some(i) = lines.iter().position(|l| l.starts_with("error ")) else {
        return Err(format!("no error line in {lines:?}"));
    };
    if !lines[i].starts_with(r.expect) {
        return Err(format!(
            "error line {:?}, expected {:?}…",
            lines[i], r.expect
        ));
    }
    if i + 1 != lines.len() {
        return Err(format!("lines after the error: {:?}", &lines[i + 1..]));
    }
    if lines[..i].iter().zip(host).any(|(t, h)| t != h) || i > host.len() {
        return Err(format!(
            "lines before the error are not the host's: {:?}",
            &lines[..i]
        ));
    }
    Ok(lines[i].to_owned())
}

/// Blocks per request of [`tuned`]'s script (the recording's agent asks for 32).
pub const TUNED_BLOCKS_PER_REQUEST: u32 = 8;

/// The good script with other stream tuning ([`TUNED_BLOCKS_PER_REQUEST`] blocks per
/// request): not a refusal. The C replay must pass it to the C API (`FerrotaConfig`) and run
/// on; [`judge_tuned`] checks that its stream requests then ask for that many blocks.
pub fn tuned(good: &[u8]) -> Vec<u8> {
    let mut s = good.to_vec();
    put(&mut s, at::BLOCKS_PER_REQUEST, TUNED_BLOCKS_PER_REQUEST);
    s
}

/// The `"n"` of a stream-request line (`pub q0 …/streams/…/get/cbor hex:…`), or `None` for
/// another line.
fn request_blocks(line: &str) -> Option<Option<u32>> {
    let (topic, hex) = line.strip_prefix("pub q0 ")?.split_once(" hex:")?;
    if !(topic.contains("/streams/") && topic.ends_with("/get/cbor")) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    let bytes = bytes?;
    let r = ferrota_proto::stream::StreamRequest::decode(&bytes).ok()?;
    Some(r.num_blocks)
}

/// The check of the C run on [`tuned`]'s script: it ran to its end (exit 0, no error line, the
/// `final` line) and every stream request asked for [`TUNED_BLOCKS_PER_REQUEST`] blocks, where
/// the host's recording asked for more: the script's tuning reached the agent.
pub fn judge_tuned(stdout: &str, success: bool, host: &[String]) -> Result<String, String> {
    let lines: Vec<&str> = stdout.lines().filter(|l| !is_figure(l)).collect();
    if let Some(e) = lines.iter().find(|l| l.starts_with("error ")) {
        return Err(format!("refused: {e}"));
    }
    if !success || !lines.iter().any(|l| l.starts_with("final")) {
        return Err(format!("the run did not end: {lines:?}"));
    }
    let ours: Vec<Option<u32>> = lines.iter().filter_map(|l| request_blocks(l)).collect();
    let theirs: Vec<Option<u32>> = host.iter().filter_map(|l| request_blocks(l)).collect();
    if ours.is_empty() || ours.iter().any(|n| *n != Some(TUNED_BLOCKS_PER_REQUEST)) {
        return Err(format!("stream requests asked for {ours:?} blocks"));
    }
    if theirs.iter().all(|n| *n == Some(TUNED_BLOCKS_PER_REQUEST)) {
        return Err(format!(
            "the recording's requests ({theirs:?}) prove nothing"
        ));
    }
    Ok(format!(
        "{} stream requests of {TUNED_BLOCKS_PER_REQUEST} blocks (recorded: {theirs:?})",
        ours.len()
    ))
}

/// A figure line of the firmware (`name=number`), not part of the compared output.
pub fn is_figure(l: &str) -> bool {
    l.split_once('=').is_some_and(|(k, v)| {
        !k.is_empty()
            && k.bytes().all(|c| c.is_ascii_lowercase() || c == b'-')
            && !v.is_empty()
            && v.bytes().all(|c| c.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent_script::{MAGIC, Script};
    use ferrota_image::VersionRecord;
    use ferrota_image::p256::ecdsa::VerifyingKey;

    /// A small well-formed script: header, a connected entry, two messages.
    fn good() -> Vec<u8> {
        use crate::agent_script::{Entry, Kind, push_entry};
        let mut s = vec![0u8; 4096];
        put(&mut s, 0, MAGIC);
        put(&mut s, at::BLOCK_SIZE, 4096);
        put(&mut s, at::BLOCKS_PER_REQUEST, 32);
        put(&mut s, at::IN_FLIGHT, 16);
        let key = ferrota_sim::keys::code_verifying_key();
        s[at::CODE_KEY..at::CODE_KEY + 65].copy_from_slice(key.to_sec1_point(false).as_bytes());
        s[at::THING..at::THING + 5].copy_from_slice(b"thing");
        let mut pos = HEADER;
        for (kind, topic, payload) in [
            (Kind::Connected, "", &b""[..]),
            (Kind::Message, "a/b", &b"{}"[..]),
            (Kind::Message, "c", &b"xyz"[..]),
        ] {
            let e = Entry {
                kind,
                at: 5,
                topic,
                payload,
            };
            push_entry(&mut s, &mut pos, &e).expect("room");
        }
        put(&mut s, at::ENTRIES, 3);
        put(&mut s, at::TOTAL, pos as u32);
        s.truncate(pos);
        s
    }

    fn case<'a>(all: &'a [Refusal], name: &str) -> &'a Refusal {
        all.iter().find(|r| r.name == name).expect(name)
    }

    #[test]
    fn each_bad_script_breaks_what_its_name_says() {
        let g = good();
        assert!(Script::parse(&g).is_some());
        assert_eq!(Script::parse(&g).expect("good").entries().count(), 3);
        let all = refusals(&g);
        // Every case differs from the good script, and in one place only or one word.
        for r in &all {
            let diff = r.script.iter().zip(&g).filter(|(a, b)| a != b).count();
            assert!((1..=4).contains(&diff), "{}: {diff} bytes differ", r.name);
        }
        for name in ["magic", "total-short", "total-past-memory"] {
            let r = case(&all, name);
            // The firmware maps SCRIPT_MAX bytes: a total beyond is refused as for the Rust parser.
            let mut mem = r.script.clone();
            mem.resize(SCRIPT_MAX as usize, 0);
            assert!(Script::parse(&mem).is_none(), "{name}");
        }
        let parsed = |name| Script::parse(&case(&all, name).script).map(|s| s.entries().count());
        assert_eq!(parsed("entry-kind"), Some(0));
        assert_eq!(parsed("entry-length"), Some(1));
        assert_eq!(parsed("entries-count"), Some(3));
        assert_eq!(
            word(&case(&all, "entries-count").script, at::ENTRIES),
            4,
            "one entry more than the script holds"
        );
        assert_eq!(parsed("topic-utf8"), Some(1));
        let thing = Script::parse(&case(&all, "thing-utf8").script).expect("header intact");
        assert_eq!(thing.thing(), None);
        let key = Script::parse(&case(&all, "code-key").script).expect("header intact");
        assert!(VerifyingKey::from_sec1_bytes(key.code_key()).is_err());
        assert_eq!(
            word(&case(&all, "tuning-zero").script, at::BLOCKS_PER_REQUEST),
            0
        );
        assert_eq!(word(&case(&all, "in-flight").script, at::IN_FLIGHT), 41);
        assert_eq!(word(&case(&all, "block-size").script, at::BLOCK_SIZE), 1000);
        assert_eq!(word(&case(&all, "bank").script, at::BANK), 0x100);
    }

    #[test]
    fn the_record_case_breaks_a_real_version_record() {
        let mut g = good();
        let rec = crate::matrix::bank_image(1, crate::matrix::Flaw::None, false);
        let area = &rec[0x18..0x100];
        g[at::RECORD..at::RECORD + area.len()].copy_from_slice(area);
        let ok = |s: &[u8]| {
            let a: &[u8; 232] = s[at::RECORD..at::RECORD + 232].try_into().expect("232");
            VersionRecord::parse(a).is_ok()
        };
        assert!(ok(&g));
        assert!(!ok(&case(&refusals(&g), "record").script));
    }

    /// A stream-request line asking for `n` blocks, as `transmit_line` prints it.
    fn request_line(n: u32) -> String {
        let r = ferrota_proto::stream::StreamRequest {
            client_token: Some("rdy"),
            stream_version: None,
            file_id: 0,
            block_size: 4096,
            offset: Some(0),
            bitmap: None,
            num_blocks: Some(n),
        };
        let mut buf = [0u8; 64];
        let len = r.encode(&mut buf).expect("room");
        let hex: String = buf[..len].iter().map(|b| format!("{b:02x}")).collect();
        format!("pub q0 $aws/things/t/streams/s/get/cbor hex:{hex}")
    }

    #[test]
    fn the_tuned_script_changes_blocks_per_request_only() {
        let g = good();
        let t = tuned(&g);
        assert_eq!(word(&t, at::BLOCKS_PER_REQUEST), TUNED_BLOCKS_PER_REQUEST);
        assert_ne!(word(&g, at::BLOCKS_PER_REQUEST), TUNED_BLOCKS_PER_REQUEST);
        assert_eq!(t.iter().zip(&g).filter(|(a, b)| a != b).count(), 1);
    }

    #[test]
    fn judge_tuned_wants_a_whole_run_with_the_tuned_requests() {
        let host = vec!["new ok".to_owned(), request_line(32), "final".to_owned()];
        let ok = format!(
            "new ok\n{}\n{}\nfinal x\nstack=5\n",
            request_line(8),
            request_line(8)
        );
        assert!(judge_tuned(&ok, true, &host).is_ok());
        // A failed exit, an error line, no final line, a request of the recorded size, none.
        assert!(judge_tuned(&ok, false, &host).is_err());
        let refused = format!("new ok\n{}\nerror handle: -4 x\nfinal\n", request_line(8));
        assert!(judge_tuned(&refused, true, &host).is_err());
        assert!(judge_tuned(&format!("new ok\n{}\n", request_line(8)), true, &host).is_err());
        let recorded = format!("new ok\n{}\n{}\nfinal\n", request_line(8), request_line(32));
        assert!(judge_tuned(&recorded, true, &host).is_err());
        assert!(judge_tuned("new ok\nfinal\n", true, &host).is_err());
        // A recording that asked for the tuned size already proves nothing.
        let same = vec![request_line(8)];
        assert!(judge_tuned(&ok, true, &same).is_err());
    }

    #[test]
    fn judge_accepts_a_clear_refusal_only() {
        let r = Refusal {
            name: "x",
            script: vec![],
            expect: "error handle: -4 ",
        };
        let host = vec![
            "new ok".to_owned(),
            "sub q1 t".to_owned(),
            "final".to_owned(),
        ];
        let good = "calibrate-ticks=5\nnew ok\nsub q1 t\nerror handle: -4 not UTF-8\nstack=9\n";
        assert!(judge(&r, good, false, &host).is_ok());
        // Exit status 0, another error, no error, a line after it, a line the host never printed.
        assert!(judge(&r, good, true, &host).is_err());
        assert!(judge(&r, "new ok\nerror handle: -5 x\n", false, &host).is_err());
        assert!(judge(&r, "new ok\nsub q1 t\n", false, &host).is_err());
        assert!(judge(&r, "new ok\nerror handle: -4 x\nfinal\n", false, &host).is_err());
        assert!(judge(&r, "new ok\nsub q1 u\nerror handle: -4 x\n", false, &host).is_err());
    }
}
