//! Scenario `delta`: packed full images and delta updates (issue #19) beside detools and
//! bsdiff, on image pairs that stand for real releases, in the same run.
//!
//! # Pairs
//!
//! * Always, built in-process ([`pairs::synthetic`]): generated code at two versions, and a
//!   random edit of it. They need no cross toolchain, so `--short` and CI run them.
//! * Unless `--short`, every pair in `--pairs DIR` (default `target/delta-pairs`), which
//!   `scripts/delta-pairs.sh` fills with real compiler output: the project's own Cortex-M
//!   firmware at two versions (a log string, a feature bump, an opt-level change) and the
//!   sample firmware's 1.0.0 → 1.1.0, the demo's update. Each side is packed into a signed
//!   4,161,536-byte bank image as `ferrota image pack` packs it.
//!
//! # Measures, per pair
//!
//! * **Sizes**: the packed full image ([`codec::full`]), the delta ([`codec::delta`], checked to
//!   rebuild the new image), and the peers' patches on the same two bank files
//!   ([`peers::run`]: detools lzma and heatshrink, bsdiff4; each applied back and checked).
//!   Each is given ÷ the new image's **code bytes** ([`pairs::code_bytes`]: what is not fill)
//!   and ÷ the **bank** (4,161,536 bytes).
//! * **Wire**: bytes of the stream's data messages ([`wire_bytes`]): each 4 KB block as the
//!   CBOR `{c, f, l, i, p}` map the agent receives (client token `"rdy"`), as today's
//!   4,186,656-byte figure for a full bank counts them; MQTT and TLS framing are not counted
//!   (the same ~1% on every side).
//! * **Apply time**: the packed file applied as the agent does, into the inactive bank of a
//!   `ferrota-t2g` device ([`codec::apply_on_device`]): erases and programs on its timing model,
//!   plus reads of the active bank at [`codec::READ_BYTES_PER_SEC`] (the base hash and COPY
//!   ops), beside today's full write ([`codec::write_full`]). CPU time (decompression, hashing)
//!   is not in the model.
//! * **Device RAM**: [`codec::ram`].

pub mod codec;
pub mod pairs;
pub mod peers;

use std::path::{Path, PathBuf};

use ferrota_proto::DataBlock;
use ferrota_proto::stream::OFFICIAL_CLIENT_TOKEN;
use serde_json::json;

use self::pairs::Pair;
use self::peers::{Outcome, Sizes};
use crate::report::{Report, Table, Target};
use crate::{BenchError, Options, Scenario};

/// Bytes on the wire today for a full bank (1,016 data messages of a 4,161,536-byte file).
pub const TODAY_WIRE: u64 = 4_186_656;
/// Share of [`TODAY_WIRE`] the demo's update may move.
pub const TARGET_DEMO_SHARE: f64 = 0.05;
/// Device RAM a delta update may add.
pub const TARGET_RAM: usize = 16 * 1024;
/// The pairs directory when `--pairs` is not given (relative to the working directory).
pub const DEFAULT_PAIRS: &str = "target/delta-pairs";
/// The name of the demo's pair in the pairs directory.
pub const DEMO_PAIR: &str = "sample-1.0.0-1.1.0";

/// Bytes of the stream data messages that carry a file of `file_len` bytes in 4 KB blocks:
/// per block the CBOR map `{c: "rdy", f, l, i, p}` (`DataBlock::encoded_len`).
pub fn wire_bytes(file_len: usize) -> u64 {
    static ZEROS: [u8; codec::BLOCK_SIZE as usize] = [0; codec::BLOCK_SIZE as usize];
    let b = ZEROS.len();
    (0..file_len.div_ceil(b))
        .map(|i| {
            let len = (file_len - i * b).min(b);
            DataBlock::new(Some(OFFICIAL_CLIENT_TOKEN), 0, i as u32, &ZEROS[..len]).encoded_len()
                as u64
        })
        .sum()
}

/// 1234567 → "1,234,567".
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "bytes (÷ code %, ÷ bank %)".
fn sized(n: u64, code: usize, bank: usize) -> String {
    format!(
        "{} ({:.1}%, {:.2}%)",
        group(n),
        n as f64 * 100.0 / code.max(1) as f64,
        n as f64 * 100.0 / bank.max(1) as f64
    )
}

/// One pair's figures.
#[derive(Debug, Clone, serde::Serialize)]
struct Figures {
    name: String,
    about: String,
    synthetic: bool,
    bank_bytes: usize,
    code_bytes: usize,
    packed_full: u64,
    delta: u64,
    peers: Option<Sizes>,
    wire_full: u64,
    wire_packed: u64,
    wire_delta: u64,
    full_write_secs: f64,
    full_write_ops: u64,
    delta_apply_secs: f64,
    delta_apply_ops: u64,
    delta_read_bytes: u64,
}

fn measure(p: &Pair, work: &Path, peers_note: &mut Option<String>) -> Result<Figures, String> {
    let full = codec::full(&p.new)?;
    let delta = codec::delta(&p.old, &p.new)?;
    let dir = work.join(&p.name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (old_f, new_f) = (dir.join("old.bin"), dir.join("new.bin"));
    for (f, b) in [(&old_f, &p.old), (&new_f, &p.new)] {
        std::fs::write(f, b).map_err(|e| format!("{}: {e}", f.display()))?;
    }
    let peers = if peers_note.is_some() {
        None
    } else {
        match peers::run(&old_f, &new_f, &dir)? {
            Outcome::Sizes(s, _) => Some(s),
            Outcome::Missing(m) => {
                *peers_note = Some(m);
                None
            }
        }
    };
    let full_write = codec::write_full(&p.new)?;
    let apply = codec::apply_on_device(&delta, &p.old, &p.new)?;
    Ok(Figures {
        name: p.name.clone(),
        about: p.about.clone(),
        synthetic: p.synthetic,
        bank_bytes: p.new.len(),
        code_bytes: pairs::code_bytes(&p.new),
        packed_full: full.len() as u64,
        delta: delta.len() as u64,
        peers,
        wire_full: wire_bytes(p.new.len()),
        wire_packed: wire_bytes(full.len()),
        wire_delta: wire_bytes(delta.len()),
        full_write_secs: full_write.time().as_secs_f64(),
        full_write_ops: full_write.ops,
        delta_apply_secs: apply.time().as_secs_f64(),
        delta_apply_ops: apply.ops,
        delta_read_bytes: apply.read_bytes,
    })
}

/// Runs the scenario; `pairs_dir` is `--pairs` (None: [`DEFAULT_PAIRS`]).
pub fn run(opts: &Options) -> Result<Report, BenchError> {
    let fail = |m: String| BenchError::new(Scenario::Delta, m);
    let key = ferrota_sim::keys::bench_boot_key();
    let mut notes = Vec::new();
    opts.say("delta: synthetic pairs (in-process)");
    let mut all = pairs::synthetic(&key).map_err(fail)?;
    let dir = opts
        .delta_pairs
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PAIRS));
    if opts.short {
        notes.push("Short run: synthetic pairs only (the pairs directory is not read).".into());
    } else {
        opts.say(format!("delta: release pairs from {}", dir.display()));
        match pairs::from_dir(&dir, &key).map_err(fail)? {
            Some(p) if !p.is_empty() => {
                notes.push(format!("Release pairs read from {}.", dir.display()));
                all.extend(p);
            }
            found => {
                let why = if found.is_some() {
                    "holds no pairs"
                } else {
                    "does not exist"
                };
                let line = format!(
                    "{} {why}: only the synthetic pairs ran. Build the release pairs (the \
                     project's firmware at two versions and the sample firmware 1.0.0 → 1.1.0; \
                     needs the cross toolchain, a few minutes) with `scripts/delta-pairs.sh` \
                     (or `scripts/delta-pairs.sh -o DIR` and `--pairs DIR`).",
                    dir.display()
                );
                opts.say(format!("delta: {line}"));
                notes.push(line);
            }
        }
    }
    let real = codec::codes_deltas().map_err(fail)?;
    let work = tempfile::tempdir().map_err(|e| fail(format!("temporary directory: {e}")))?;
    let mut peers_note = None;
    let mut figs = Vec::new();
    for p in &all {
        opts.say(format!(
            "delta: {}: encode, peers, apply on the flash model",
            p.name
        ));
        figs.push(
            measure(p, work.path(), &mut peers_note)
                .map_err(|e| fail(format!("{}: {e}", p.name)))?,
        );
    }
    let ram = codec::ram();

    let mut table = Table::new([
        "pair (new image: code bytes)",
        "packed full, B",
        "Ferrota delta, B (÷ code, ÷ bank)",
        "detools lzma, B",
        "detools heatshrink, B",
        "bsdiff4, B",
        "wire, B: full / packed / delta",
        "apply time: delta / full write",
    ]);
    for f in &figs {
        let peer = |g: fn(&Sizes) -> u64| {
            f.peers
                .as_ref()
                .map_or("–".into(), |s| sized(g(s), f.code_bytes, f.bank_bytes))
        };
        table.row([
            format!("{} ({})", f.name, group(f.code_bytes as u64)),
            group(f.packed_full),
            sized(f.delta, f.code_bytes, f.bank_bytes),
            peer(|s| s.detools_lzma),
            peer(|s| s.detools_heatshrink),
            peer(|s| s.bsdiff4),
            format!(
                "{} / {} / {}",
                group(f.wire_full),
                group(f.wire_packed),
                group(f.wire_delta)
            ),
            format!("{:.2} s / {:.2} s", f.delta_apply_secs, f.full_write_secs),
        ]);
    }

    // A placeholder's figures are printed, never judged.
    let judged = !opts.short && real;
    let prefix = if real { "" } else { "placeholder: " };
    let target = |what: &str, want: String, measured: String, met: bool| Target {
        what: what.into(),
        target: want,
        measured: format!("{prefix}{measured}"),
        met: judged.then_some(met),
    };
    let mut targets = Vec::new();
    let with_peers: Vec<&Figures> = figs.iter().filter(|f| f.peers.is_some()).collect();
    let beats = |g: fn(&Sizes) -> u64| {
        with_peers
            .iter()
            .filter(|f| f.peers.as_ref().is_some_and(|s| f.delta < g(s)))
            .count()
    };
    let (lzma, hs) = (beats(|s| s.detools_lzma), beats(|s| s.detools_heatshrink));
    targets.push(target(
        "Ferrota delta smaller than detools (lzma and heatshrink)",
        "every pair".into(),
        if with_peers.is_empty() {
            "peers not run".into()
        } else {
            format!(
                "smaller than lzma on {lzma}, than heatshrink on {hs} of {} pairs",
                with_peers.len()
            )
        },
        !with_peers.is_empty()
            && with_peers.len() == figs.len()
            && lzma == figs.len()
            && hs == figs.len(),
    ));
    targets.push(target(
        "device RAM a delta update adds",
        format!("≤ {} B", group(TARGET_RAM as u64)),
        format!(
            "{} B (Applier {} + Header {} + SHA-256 state {})",
            group(ram.total() as u64),
            ram.applier,
            ram.header,
            ram.base_hash
        ),
        ram.total() <= TARGET_RAM,
    ));
    let worst = figs
        .iter()
        .map(|f| f.delta_apply_secs / f.full_write_secs.max(1e-12))
        .fold(0.0f64, f64::max);
    targets.push(target(
        "apply time ÷ writing the full image, worst pair",
        "≤ 1.00".into(),
        format!("{worst:.3}"),
        worst <= 1.0,
    ));
    let limit = (TODAY_WIRE as f64 * TARGET_DEMO_SHARE) as u64;
    let demo = figs.iter().find(|f| f.name == DEMO_PAIR);
    targets.push(target(
        "the demo's update (sample 1.0.0 → 1.1.0) on the wire",
        format!(
            "≤ {:.0}% of {} B = {} B",
            TARGET_DEMO_SHARE * 100.0,
            group(TODAY_WIRE),
            group(limit)
        ),
        demo.map_or(
            format!("no {DEMO_PAIR} pair (scripts/delta-pairs.sh)"),
            |f| {
                format!(
                    "{} B ({:.2}%)",
                    group(f.wire_delta),
                    f.wire_delta as f64 * 100.0 / TODAY_WIRE as f64
                )
            },
        ),
        demo.is_some_and(|f| f.wire_delta <= limit),
    ));

    if !real {
        notes.insert(
            0,
            "**The Ferrota columns (packed full, delta, apply time, RAM) come from the \
             PLACEHOLDER ferrota-delta** (stored frames, no compression, no delta coding: a \
             \"delta\" is the sparse full image). They are not results; the targets are not \
             judged."
                .into(),
        );
    }
    notes.extend([
        "Pairs: ".to_string()
            + &figs
                .iter()
                .map(|f| format!("{}: {}", f.name, f.about))
                .collect::<Vec<_>>()
                .join("; ")
            + ".",
        "Code bytes: per region, its start to its last non-zero byte before the signature \
         slot, plus the 256-byte slot; the bank is 4,161,536 bytes."
            .into(),
        format!(
            "Peers on the same two bank files: {}",
            peers_note.clone().unwrap_or_else(|| {
                "detools create_patch (sequential, bsdiff, divsufsort) with lzma and with \
                 heatshrink (window 8, lookahead 7), bsdiff4.file_diff; every patch applied \
                 back and checked (scripts/delta-peers.py)."
                    .into()
            })
        ),
        "Wire: the stream's data messages, each 4 KB block as the CBOR map {c: \"rdy\", f, l, \
         i, p} (today's full bank: 4,186,656 B); MQTT and TLS framing not counted."
            .into(),
        format!(
            "Apply time: erase and program on ferrota-t2g's timing model (the inactive bank of \
             a device, written as the agent writes it) plus reads of the active bank (base \
             hash, COPY ops) at an assumed {:.0} MB/s; the full write erases 127 sectors and \
             programs every block. CPU time (decompression, SHA-256) is not modelled.",
            codec::READ_BYTES_PER_SEC / 1e6
        ),
        "Device RAM: size_of Applier (decoder, decompressor, page buffer) + Header (block 0's \
         chunk table, kept for the job) + sha2::Sha256 (base hash). The stream block buffer, \
         resume record and job state exist for a full image too and are not counted."
            .into(),
    ]);
    Ok(Report {
        scenario: Scenario::Delta,
        title: if real {
            "delta updates beside detools and bsdiff".into()
        } else {
            "delta updates beside detools and bsdiff (Ferrota columns: PLACEHOLDER)".into()
        },
        short: opts.short,
        table,
        targets,
        notes,
        data: json!({
            "placeholder": !real,
            "pairs": figs,
            "ram": {
                "applier": ram.applier,
                "header": ram.header,
                "base_hash": ram.base_hash,
                "total": ram.total(),
            },
            "peers_note": peers_note,
            "today_wire": TODAY_WIRE,
            "read_bytes_per_sec": codec::READ_BYTES_PER_SEC,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire count reproduces the figure the issue quotes for today's full bank.
    #[test]
    fn a_full_bank_is_todays_wire_figure() {
        assert_eq!(wire_bytes(4_161_536), TODAY_WIRE);
        assert_eq!(wire_bytes(0), 0);
        // One short block: map head, four keys, token, f, l, i and the 10 bytes.
        assert_eq!(wire_bytes(10), 1 + 8 + 6 + 1 + 1 + 1 + 1 + 10);
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(4_186_656), "4,186,656");
    }

    #[test]
    fn code_bytes_count_what_is_not_fill() {
        let key = ferrota_sim::keys::bench_boot_key();
        let p = pairs::synthetic(&key).expect("synthetic pairs");
        let code = pairs::code_bytes(&p[0].new);
        // 16 KB and 192 KB of generated code after the 0x100 headers, CM7_1's header, three
        // signature slots.
        assert!(code > 0x100 + 16 * 1024 + 0x100 + 192 * 1024, "{code}");
        assert!(
            code < 0x100 + 16 * 1024 + 0x100 + 192 * 1024 + 0x400,
            "{code}"
        );
        assert_eq!(pairs::code_bytes(&[0u8; 4_161_536]), 3 * 256);
    }

    /// The short run: synthetic pairs only, every row filled, every target present.
    #[test]
    fn the_short_run_measures_the_synthetic_pairs() {
        let opts = Options {
            short: true,
            ferrota_exe: PathBuf::new(),
            progress: false,
            faults: false,
            delta_pairs: Some(PathBuf::from("/nonexistent/never-read")),
        };
        let r = run(&opts).expect("the scenario runs");
        assert_eq!(r.table.rows.len(), 2, "{:?}", r.table.rows);
        assert!(
            r.table
                .rows
                .iter()
                .all(|row| row.len() == r.table.columns.len())
        );
        assert_eq!(r.targets.len(), 4);
        assert!(
            r.targets.iter().all(|t| t.met.is_none()),
            "a short run makes no claims"
        );
        let pairs = r.data["pairs"].as_array().expect("pairs");
        for p in pairs {
            assert_eq!(p["bank_bytes"], 4_161_536, "{p}");
            assert_eq!(p["wire_full"], TODAY_WIRE, "{p}");
            assert!(p["delta"].as_u64().expect("delta") > 0, "{p}");
            assert!(p["full_write_secs"].as_f64().expect("time") > 1.0, "{p}");
        }
    }

    #[test]
    fn a_pairs_directory_that_is_not_there_is_none() {
        let key = ferrota_sim::keys::bench_boot_key();
        assert!(
            pairs::from_dir(Path::new("/nonexistent/delta-pairs"), &key)
                .expect("no error")
                .is_none()
        );
    }

    #[test]
    fn a_pair_side_without_its_builds_is_a_clear_error() {
        let key = ferrota_sim::keys::bench_boot_key();
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("broken");
        std::fs::create_dir_all(p.join("old")).expect("mkdir");
        std::fs::create_dir_all(p.join("new")).expect("mkdir");
        std::fs::write(p.join("old/version"), "1.0.0").expect("write");
        let e = pairs::from_dir(dir.path(), &key).expect_err("no builds");
        assert!(e.contains("no cm0p.elf or cm0p.bin"), "{e}");
        std::fs::write(p.join("old/version"), "one").expect("write");
        let e = pairs::from_dir(dir.path(), &key).expect_err("bad version");
        assert!(e.contains("'one' is not a version"), "{e}");
    }
}
