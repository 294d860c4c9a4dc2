//! Verifying a full 4,161,536-byte bank (SHA-256 of every region + three ECDSA P-256 checks),
//! beside OpenSSL's `openssl dgst -sha256` on the same file in the same run.
//!
//! OpenSSL runs as a process, so its figure is `time(file) − time(empty file)`: the process start
//! is subtracted and only hashing is compared. After criterion's own report, a table prints the
//! throughputs and the ratio (ours / OpenSSL's). Run: `cargo bench -p ferrota-image`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

// The image tests' fixed keys, so this crate defines its test keys in one file.
#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{Criterion, Throughput};
use ferrota_image::build::filled_bank;
use ferrota_image::sign::BootSigningKey;
use ferrota_image::verify::verify_bank;
use ferrota_image::{BANK_SIZE, FirmwareVersion, HardwareId, VersionRecord};
use sha2::{Digest, Sha256};

fn full_bank() -> (Vec<u8>, BootSigningKey) {
    let key = common::boot_key(0x42);
    let record = VersionRecord {
        version: FirmwareVersion::new(1, 0, 0),
        security_counter: 1,
        hardware: HardwareId::new("bench").expect("valid"),
        flags: 0,
    };
    let bank = filled_bank(record, &key, 0x1234_5678).expect("signs");
    (bank, key)
}

fn openssl_once(path: &Path) -> Option<Duration> {
    let t = Instant::now();
    let out = Command::new("openssl")
        .arg("dgst")
        .arg("-sha256")
        .arg(path)
        .output()
        .ok()?;
    out.status.success().then(|| t.elapsed())
}

/// Criterion's mean estimate for a benchmark, in nanoseconds per iteration.
fn estimate(id: &str) -> Option<f64> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let text =
        std::fs::read_to_string(dir.join("criterion").join(id).join("new/estimates.json")).ok()?;
    let at = text.find("\"mean\"")?;
    let rest = &text[at..];
    let p = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    rest[p..].split([',', '}']).next()?.trim().parse().ok()
}

fn main() {
    let (bank, key) = full_bank();
    let public = key.boot_key().expect("public key");
    assert_eq!(bank.len(), BANK_SIZE as usize);
    let dir = std::env::temp_dir().join(format!("ferrota-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("bank.bin");
    let empty = dir.join("empty.bin");
    std::fs::write(&file, &bank).expect("write bank");
    std::fs::write(&empty, []).expect("write empty");
    let have_openssl = openssl_once(&empty).is_some();

    let mut c = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    let mut g = c.benchmark_group("bank_4161536");
    g.throughput(Throughput::Bytes(bank.len() as u64));
    g.bench_function("ferrota_verify_bank", |b| {
        b.iter(|| verify_bank(black_box(&bank), &public).expect("verifies"))
    });
    g.bench_function("ferrota_sha256", |b| {
        b.iter(|| Sha256::digest(black_box(&bank)))
    });
    if have_openssl {
        g.bench_function("openssl_dgst_sha256", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let full = openssl_once(&file).unwrap_or_default();
                    let start = openssl_once(&empty).unwrap_or_default();
                    total += full.saturating_sub(start);
                }
                total
            })
        });
    }
    g.finish();
    c.final_summary();
    let _ = std::fs::remove_dir_all(&dir);

    let mbps = |ns: f64| bank.len() as f64 / (ns / 1e9) / 1e6;
    let ours = estimate("bank_4161536/ferrota_verify_bank");
    let sha = estimate("bank_4161536/ferrota_sha256");
    let theirs = estimate("bank_4161536/openssl_dgst_sha256");
    println!("\n| what (4,161,536-byte bank) | MB/s | vs OpenSSL SHA-256 |");
    println!("|---|---:|---:|");
    for (name, v) in [
        ("ferrota verify_bank (SHA-256 + 3 × ECDSA P-256)", ours),
        ("ferrota SHA-256 only (sha2)", sha),
        ("openssl dgst -sha256 (process start subtracted)", theirs),
    ] {
        match (v, theirs) {
            (Some(ns), Some(o)) => println!("| {name} | {:.0} | {:.2} |", mbps(ns), o / ns),
            (Some(ns), None) => println!("| {name} | {:.0} | n/a |", mbps(ns)),
            _ => println!("| {name} | not measured | |"),
        }
    }
}
