//! Scenario `verify`: boot verification of a full bank, beside OpenSSL's SHA-256 of the same
//! file, in the same run.
//!
//! The bank is [`ferrota_image::build::filled_bank`]: every region filled to its signed size,
//! so verification hashes all 4,161,536 bytes and checks three ECDSA P-256 signatures. OpenSSL
//! runs as a process, so its figure is `time(bank) − time(empty file)` (the process start is
//! subtracted and only hashing compared). Every figure is the median of its repetitions, taken
//! interleaved so a burst of load hits all sides alike.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferrota_image::verify::verify_bank;
use ferrota_image::{FirmwareVersion, HardwareId, VersionRecord};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::report::{Report, Table, Target, mb_per_s};
use crate::{BenchError, Options, Scenario};

/// Ours ÷ OpenSSL's SHA-256 throughput the image issue set for verification.
pub const TARGET_RATIO: f64 = 0.80;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn openssl_once(path: &Path) -> Option<Duration> {
    let t = Instant::now();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256"])
        .arg(path)
        .output()
        .ok()?;
    out.status.success().then(|| t.elapsed())
}

/// Runs the scenario.
pub fn run(opts: &Options) -> Result<Report, BenchError> {
    let fail = |m: String| BenchError::new(Scenario::Verify, m);
    opts.say("verify: building and signing a filled 4,161,536-byte bank");
    let key = ferrota_sim::keys::verify_bench_boot_key();
    let record = VersionRecord {
        version: FirmwareVersion::new(1, 0, 0),
        security_counter: 1,
        hardware: HardwareId::new("bench").ok_or_else(|| fail("hardware id".into()))?,
        flags: 0,
    };
    let bank = ferrota_image::build::filled_bank(record, &key, 0x1234_5678)
        .map_err(|e| fail(format!("bank: {e}")))?;
    let public = key.boot_key().map_err(|e| fail(format!("key: {e}")))?;
    let dir = tempfile::tempdir().map_err(|e| fail(format!("temporary directory: {e}")))?;
    let (file, empty) = (dir.path().join("bank.bin"), dir.path().join("empty.bin"));
    std::fs::write(&file, &bank).map_err(|e| fail(format!("{}: {e}", file.display())))?;
    std::fs::write(&empty, []).map_err(|e| fail(format!("{}: {e}", empty.display())))?;
    let have_openssl = openssl_once(&empty).is_some();

    let reps = if opts.short { 1 } else { 15 };
    let (mut ours, mut sha, mut theirs) = (Vec::new(), Vec::new(), Vec::new());
    opts.say(format!(
        "verify: {reps} repetitions of verify_bank, SHA-256{}",
        if have_openssl {
            " and openssl dgst -sha256"
        } else {
            " (openssl not found: its column stays empty)"
        }
    ));
    for _ in 0..reps {
        let t = Instant::now();
        verify_bank(std::hint::black_box(&bank), &public)
            .map_err(|e| fail(format!("the filled bank does not verify: {e}")))?;
        ours.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(Sha256::digest(std::hint::black_box(&bank)));
        sha.push(t.elapsed());
        if have_openssl
            && let (Some(full), Some(start)) = (openssl_once(&file), openssl_once(&empty))
        {
            theirs.push(full.saturating_sub(start));
        }
    }
    let n = bank.len() as f64;
    let (ours, sha) = (median(ours).as_secs_f64(), median(sha).as_secs_f64());
    let theirs = (!theirs.is_empty()).then(|| median(theirs).as_secs_f64());
    let ratio = |t: f64| theirs.map(|o| o / t);

    let mut table = Table::new(["what (4,161,536-byte bank)", "MB/s", "vs OpenSSL SHA-256"]);
    let ratio_cell = |t: f64| ratio(t).map_or("n/a".to_string(), |r| format!("{r:.2}"));
    table.row([
        "ferrota verify_bank (SHA-256 + 3 × ECDSA P-256)".to_string(),
        mb_per_s(n, ours),
        ratio_cell(ours),
    ]);
    table.row([
        "ferrota SHA-256 only (sha2)".to_string(),
        mb_per_s(n, sha),
        ratio_cell(sha),
    ]);
    table.row([
        "openssl dgst -sha256 (process start subtracted)".to_string(),
        theirs.map_or("not found".into(), |t| mb_per_s(n, t)),
        theirs.map_or("n/a".into(), |_| "1.00".into()),
    ]);
    let mut targets = Vec::new();
    if let Some(r) = ratio(ours) {
        targets.push(Target::new(
            "verify_bank throughput ÷ OpenSSL SHA-256",
            format!("≥ {TARGET_RATIO:.2}"),
            format!("{r:.2}"),
            r >= TARGET_RATIO,
            opts.short,
        ));
    }
    Ok(Report {
        scenario: Scenario::Verify,
        title: "boot verification of a full bank beside OpenSSL".into(),
        short: opts.short,
        table,
        targets,
        notes: vec![
            format!("Median of {reps} interleaved repetitions of each."),
            "The bank is every region filled to its signed size: all bytes are hashed.".into(),
        ],
        data: json!({
            "bank_bytes": bank.len(),
            "repetitions": reps,
            "verify_bank_secs": ours,
            "sha256_secs": sha,
            "openssl_secs": theirs,
            "ratio_verify_vs_openssl": ratio(ours),
        }),
    })
}
