//! `ferrota image pack | from-merged-hex | sign-ota | verify`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use ferrota_image::build::BankBuilder;
use ferrota_image::input::{self, Format};
use ferrota_image::ota::{self, OtaSignature};
use ferrota_image::sign::{self, SignMode};
use ferrota_image::{FirmwareVersion, Region, VersionRecord, inspect, verify};
use ferrota_keys::KeyFile;
use serde_json::{Value, json};

use crate::args::{FromMergedHexArgs, PackArgs, SecurityCounter, SignOtaArgs, VerifyArgs};
use crate::fsio::{self, Access};
use crate::show::hex;

pub mod bankfile;

/// A `--cm0p`/`--cm7-0`/`--cm7-1` argument: `[elf:|hex:|raw:]FILE[@ADDRESS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    /// The file.
    pub path: PathBuf,
    /// The format, when forced or raw; `None` means detect by content.
    pub format: Option<Format>,
}

fn parse_address(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(&h.replace('_', ""), 16).ok(),
        None => s.parse().ok(),
    }
}

impl BuildSpec {
    /// Parses a build argument.
    pub fn parse(s: &str) -> Result<Self> {
        let (forced, rest) = match s.split_once(':') {
            Some(("elf", r)) => (Some("elf"), r),
            Some(("hex", r)) => (Some("hex"), r),
            Some(("raw", r)) => (Some("raw"), r),
            _ => (None, s),
        };
        if let Some((path, addr)) = rest.rsplit_once('@') {
            let looks_like_address = addr.starts_with(|c: char| c.is_ascii_digit());
            if looks_like_address {
                let address = parse_address(addr).ok_or_else(|| {
                    anyhow!("{s}: '{addr}' is not a load address (e.g. 0x10010000)")
                })?;
                if matches!(forced, Some("elf" | "hex")) {
                    bail!(
                        "{s}: only raw binaries take a load address; ELF and HEX files carry their own"
                    );
                }
                return Ok(BuildSpec {
                    path: path.into(),
                    format: Some(Format::Raw { address }),
                });
            }
        }
        let format = match forced {
            Some("elf") => Some(Format::Elf),
            Some("hex") => Some(Format::Hex),
            Some(_) => bail!("{s}: a raw binary needs its load address: raw:FILE@0x10010000"),
            None => None,
        };
        Ok(BuildSpec {
            path: rest.into(),
            format,
        })
    }
}

fn region_flag(region: Region) -> &'static str {
    match region {
        Region::Cm0p => "--cm0p",
        Region::Cm7_0 => "--cm7-0",
        Region::Cm7_1 => "--cm7-1",
    }
}

/// The security counter `pack` writes: `--security-counter N`, or for `auto` the version word
/// `major<<24 | minor<<16 | build`, which is exactly MCUboot imgtool's `auto` formula (its
/// revision is our build), or 0 when not given.
pub fn security_counter(arg: Option<SecurityCounter>, version: FirmwareVersion) -> u32 {
    match arg {
        Some(SecurityCounter::Value(n)) => n,
        Some(SecurityCounter::Auto) => version.0,
        None => 0,
    }
}

/// Warnings about a release's anti-rollback fields, before 4 MB move: a counter of 0 (the
/// image can never be protected against rollback), and, against the previous release (the bank
/// image the devices run now, `--previous`), a lower counter (the devices refuse the image once
/// that release is confirmed and has raised their floor) or a version that is not newer (an
/// OTA agent refuses it, AWS reason `0x0000000f`).
///
/// Decision: these are warnings, not errors, because each has a legitimate use (a development
/// build at 0, a re-release to a fleet that never confirmed the previous one); the board
/// itself enforces the floor.
pub fn counter_warnings(record: &VersionRecord, previous: Option<&VersionRecord>) -> Vec<String> {
    let mut w = Vec::new();
    if record.security_counter == 0 {
        w.push(
            "security counter 0: the board's anti-rollback floor can never protect against a \
             rollback to this image (pass --security-counter N, or auto to derive it from the \
             version)"
                .to_string(),
        );
    }
    if let Some(p) = previous {
        if record.security_counter < p.security_counter {
            w.push(format!(
                "security counter {} is lower than the previous release's {} (version {}): a \
                 board that confirmed that release refuses this image as below its floor",
                record.security_counter, p.security_counter, p.version
            ));
        }
        if record.version <= p.version {
            w.push(format!(
                "version {} is not newer than the previous release's {}: an OTA agent refuses it \
                 (version not newer)",
                record.version, p.version
            ));
        }
    }
    w
}

/// The version record of `--previous`.
fn previous_record(path: &Path) -> Result<VersionRecord> {
    let file = bankfile::read_bank_file(path).context("--previous")?;
    inspect::inspect(&file.bytes).record.map_err(|e| {
        anyhow!(
            "--previous: {}: no valid version record to compare with: {e}",
            path.display()
        )
    })
}

/// `image pack`.
pub fn pack(a: &PackArgs) -> Result<()> {
    // Refuse a bad output choice before any work.
    bankfile::output_format(&a.output, &a.out)?;
    let key = ferrota_keys::load_boot_signing_key(&a.boot_key)?;
    let previous = a.previous.as_deref().map(previous_record).transpose()?;
    let record = VersionRecord {
        version: a.version,
        security_counter: security_counter(a.security_counter, a.version),
        hardware: a.hardware.unwrap_or_default(),
        flags: 0,
    };
    let mut builder = BankBuilder::new(record);
    let builds = [
        (Region::Cm0p, Some(&a.cm0p)),
        (Region::Cm7_0, Some(&a.cm7_0)),
        (Region::Cm7_1, a.cm7_1.as_ref()),
    ];
    let mut placed = Vec::new();
    for (region, spec) in builds {
        let Some(spec) = spec else {
            placed.push(json!({"name": region.name(), "source": null, "bytes": 0}));
            continue;
        };
        let what = format!("{} {spec}", region_flag(region));
        let build = BuildSpec::parse(spec).with_context(|| region_flag(region))?;
        let bytes =
            fsio::read(&build.path, fsio::BUILD_LIMIT).with_context(|| region_flag(region))?;
        let segments = input::read(&bytes, build.format).with_context(|| what.clone())?;
        builder
            .add(region, &segments)
            .with_context(|| what.clone())?;
        let len: usize = segments.iter().map(|s| s.data.len()).sum();
        placed.push(json!({
            "name": region.name(),
            "source": build.path.display().to_string(),
            "bytes": len,
        }));
    }
    let bank = builder
        .finish(&key)
        .with_context(|| format!("{}: cannot sign", a.boot_key.display()))?;
    let public = key
        .boot_key()
        .with_context(|| format!("{}: unusable boot key", a.boot_key.display()))?;
    verify::verify_bank(&bank, &public)
        .context("the packed image does not verify under its own key (internal error)")?;
    let warnings = counter_warnings(&record, previous.as_ref());
    for w in &warnings {
        eprintln!("warning: {}: {w}", a.output.display());
    }
    let written = bankfile::write_bank(&a.output, &bank, &a.out)?;
    let record = inspect::inspect(&bank).record.unwrap_or(record);
    if a.json {
        let doc = json!({
            "file": a.output.display().to_string(),
            "format": written.format.name(),
            "address": written.address,
            "fileBytes": written.file_bytes,
            "bankBytes": bank.len(),
            "versionRecord": record_json(&record),
            "scheme": key.scheme().name(),
            "regions": placed,
            "previous": previous.as_ref().map(record_json),
            "warnings": warnings,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    eprintln!(
        "wrote {} ({}): version {}, security counter {}, hardware {:?}; every region signed ({})",
        a.output.display(),
        describe_written(&written, bank.len()),
        record.version,
        record.security_counter,
        record.hardware.as_str(),
        key.scheme().name()
    );
    for (region, p) in Region::ALL.iter().zip(&placed) {
        match p["source"].as_str() {
            Some(src) => eprintln!("  {region}: {} bytes from {src}", p["bytes"]),
            None => eprintln!("  {region}: no build: an empty, signed image"),
        }
    }
    Ok(())
}

/// "0x3f8000 bytes" or "Intel HEX, 0x3f8000 bytes at 0x10000000".
fn describe_written(w: &bankfile::Written, bank_len: usize) -> String {
    match w.address {
        Some(a) => format!(
            "Intel HEX, {bank_len:#x} bytes at {a:#010x}, for a debugger; OTA and `t2g program` \
             take the raw .bin"
        ),
        None => format!("{bank_len:#x} bytes"),
    }
}

/// A version record in the camelCase JSON of `pack --json` and `verify --json`.
fn record_json(r: &VersionRecord) -> Value {
    json!({
        "version": r.version.to_string(),
        "securityCounter": r.security_counter,
        "hardware": r.hardware.as_str(),
        "flags": r.flags,
    })
}

/// `image from-merged-hex`.
pub fn from_merged_hex(a: &FromMergedHexArgs) -> Result<()> {
    let name = a.input.display().to_string();
    bankfile::output_format(&a.output, &a.out)?;
    let bytes = fsio::read(&a.input, fsio::BUILD_LIMIT)?;
    let text = input::hex_text(&bytes).with_context(|| name.clone())?;
    let (mut bank, report) = input::merged_hex_to_bank(text).with_context(|| name.clone())?;
    let key = a
        .boot_key
        .as_deref()
        .map(ferrota_keys::load_boot_signing_key)
        .transpose()?;
    let resign_hint = |e: input::RecordError| match e {
        input::RecordError::Cm0pSigned | input::RecordError::AppIdSigned { .. } => {
            anyhow!("{name}: {e}: pass --resign to re-sign every region with --boot-key")
        }
        e => anyhow!("{name}: {e}"),
    };

    let mut app_ids = Vec::new();
    if let Some(version) = a.record.version {
        let record = VersionRecord {
            version,
            security_counter: a.record.security_counter.unwrap_or(0),
            hardware: a.record.hardware.unwrap_or_default(),
            flags: 0,
        };
        // The appIds follow the record, as in pack. A refusal only changes the bank in memory:
        // nothing is written.
        input::write_version_record(&mut bank, record, a.resign).map_err(resign_hint)?;
        app_ids = input::set_app_ids(&mut bank, version, a.resign).map_err(resign_hint)?;
    }

    // A two-core build leaves CM7_1 all zero: with a key it becomes the empty, signed image
    // pack makes. The CM7_1 flag of a record stays clear (no reset vector there).
    let cm7_1_empty = input::region_is_empty(&bank, Region::Cm7_1);
    let mut filled = false;
    if key.is_some() && cm7_1_empty {
        let version = input::bank_version(&bank);
        filled = input::fill_empty_cm7_1(&mut bank, version);
    }

    let mut signed = Vec::new();
    if let Some(key) = &key {
        let boot_key = a.boot_key.as_deref().unwrap_or(Path::new("--boot-key"));
        let mode = if a.resign {
            SignMode::All
        } else {
            SignMode::UnsignedOnly
        };
        signed = sign::sign_regions(&mut bank, key, mode).with_context(|| name.clone())?;
        let public = key
            .boot_key()
            .with_context(|| format!("{}: unusable boot key", boot_key.display()))?;
        for region in Region::ALL {
            verify::verify_region(&bank, region, &public).map_err(|e| {
                anyhow!(
                    "{name}: {e}: the existing signature was not made with {} (pass --resign to re-sign every region)",
                    boot_key.display()
                )
            })?;
        }
    }
    let written = bankfile::write_bank(&a.output, &bank, &a.out)?;

    eprintln!(
        "wrote {} ({}): kept {} bytes from {} records, gaps filled with 0x00",
        a.output.display(),
        describe_written(&written, bank.len()),
        report.kept_bytes,
        report.kept_records
    );
    if report.dropped.is_empty() {
        eprintln!("  dropped nothing");
    }
    for d in &report.dropped {
        eprintln!(
            "  dropped {} bytes ({} records from 0x{:08X}): {}",
            d.bytes, d.records, d.first_address, d.area
        );
    }
    if !app_ids.is_empty() {
        let names: Vec<String> = app_ids.iter().map(ToString::to_string).collect();
        eprintln!(
            "  appId set from the version record (as pack does): {}",
            names.join(", ")
        );
    }
    if filled {
        eprintln!(
            "  CM7_1: no image in the build (a two-core build): given the header pack writes for \
             an absent CM7_1, an empty, signed image"
        );
    }
    if key.is_some() {
        let names: Vec<String> = signed.iter().map(ToString::to_string).collect();
        eprintln!(
            "  signed: {}; every region verifies under the boot key",
            if names.is_empty() {
                "nothing (all regions were signed)".into()
            } else {
                names.join(", ")
            }
        );
    } else {
        let summary = inspect::inspect(&bank);
        for r in &summary.regions {
            let why = if r.region == Region::Cm7_1 && cm7_1_empty {
                "is empty (a two-core build has no CM7_1 image)".to_string()
            } else if let Err(e) = &r.header_check {
                format!("has no valid header ({e})")
            } else if r.signed != Some(true) {
                "is not signed".to_string()
            } else {
                continue;
            };
            eprintln!(
                "warning: {}: the {} region {why}; the boot chain refuses the bank until every \
                 region is signed: add --boot-key (an empty CM7_1 then gets the empty, signed \
                 image pack makes)",
                a.output.display(),
                r.region
            );
        }
    }
    match inspect::inspect(&bank).record {
        Ok(r) => eprintln!(
            "  version record: {}, security counter {}",
            r.version, r.security_counter
        ),
        Err(_) => eprintln!(
            "  note: no version record; Ferrota's boot chain requires one (add --version and --boot-key)"
        ),
    }
    Ok(())
}

/// `image sign-ota`. Refuses an empty file (no OTA file is empty; the server refuses it too)
/// and, without `--force`, an existing signature file (it may belong to another build).
/// Signs a file that is not a complete bank image (truncated, or another kind of file) with
/// a warning, as `t2g program` writes an image that will not verify: a non-firmware OTA file
/// is legitimate, but a truncated bank is the common mistake, and the device only finds out
/// after the whole download.
pub fn sign_ota(a: &SignOtaArgs) -> Result<()> {
    let out = a.output.clone().unwrap_or_else(|| {
        let mut p = a.input.clone().into_os_string();
        p.push(".sig");
        PathBuf::from(p)
    });
    let key = ferrota_keys::load_ota_signing_key(&a.key)?;
    let file = fsio::read(&a.input, fsio::OTA_LIMIT)?;
    if file.is_empty() {
        bail!("{}: empty file; nothing to sign", a.input.display());
    }
    if !a.force && out.exists() {
        bail!(
            "{}: already exists (use --force to replace it)",
            out.display()
        );
    }
    if let Some(w) = not_a_bank(&file) {
        eprintln!("warning: {}: {w}; signed anyway", a.input.display());
    }
    let sig = ota::sign_file(&key, &file)
        .map_err(|e| anyhow!("{}: cannot sign: {e}", a.key.display()))?;
    let mut buf = [0u8; ota::MAX_P256_BASE64];
    let b64 = sig.to_base64(&mut buf);
    fsio::write_atomic(&out, format!("{b64}\n").as_bytes(), Access::Public, a.force)?;
    println!("{b64}");
    eprintln!(
        "wrote OTA signature ({}: ECDSA P-256 over SHA-256 of {} bytes, DER, base64) to {}",
        ota::SIGNATURE_KEY,
        file.len(),
        out.display()
    );
    Ok(())
}

/// Why `file` is not a complete bank image a device would install, if it is not.
pub(crate) fn not_a_bank(file: &[u8]) -> Option<String> {
    let bank = ferrota_image::layout::BANK_SIZE as usize;
    if input::detect(file) == Some(Format::Hex) {
        return Some(
            "Intel HEX text, not a bank image: HEX is for a debugger's initial programming; \
             OTA sends the raw bank (pack -o bank.bin)"
                .into(),
        );
    }
    if file.len() != bank {
        return Some(format!(
            "{} bytes, not a bank image ({bank:#x} bytes): truncated, or not firmware; a device \
             installs only a whole bank",
            file.len()
        ));
    }
    let s = inspect::inspect(file);
    if let Err(e) = &s.record {
        return Some(format!("not a bank image a device installs: {e}"));
    }
    s.regions
        .iter()
        .find_map(|r| r.header_check.as_ref().err())
        .map(|e| format!("not a bank image a device installs: {e}"))
}

/// Reads `--ota-signature`: base64 text, or a file holding base64 text or DER.
fn load_ota_signature(arg: &str) -> Result<OtaSignature> {
    let path = Path::new(arg);
    if path.is_file() {
        let bytes = fsio::read(path, fsio::SIGNATURE_LIMIT)?;
        let sig = if bytes.first() == Some(&0x30) {
            OtaSignature::from_der(&bytes)
        } else {
            match std::str::from_utf8(&bytes) {
                Ok(text) => OtaSignature::from_base64(text),
                Err(_) => Err(ota::OtaSignatureError::NotBase64),
            }
        };
        return sig.map_err(|e| anyhow!("{}: {e}", path.display()));
    }
    OtaSignature::from_base64(arg)
        .map_err(|e| anyhow!("--ota-signature: {e} (and there is no file named '{arg}')"))
}

/// `image verify`. With `--json` the result is one object on stdout (camelCase keys, the
/// checks not asked for are `null`); a failed check is an error on stderr and exit status 1
/// either way, so a script never mistakes a printed document for success.
pub fn verify(a: &VerifyArgs) -> Result<()> {
    let name = a.input.display().to_string();
    let bank = fsio::read(&a.input, fsio::OTA_LIMIT)?;
    let mut boot_json = Value::Null;
    let mut ota_json = Value::Null;
    let mut text = Vec::new();
    if let Some(key_path) = &a.boot_key {
        let key = ferrota_keys::load_public_key(key_path)?;
        // The boot check also reads the Intel HEX bank image pack writes for a debugger; the
        // OTA signature below is always over the file's own bytes, as they are streamed.
        let hex_bank;
        let boot_bank = if input::detect(&bank) == Some(Format::Hex) {
            hex_bank = bankfile::read_bank_file(&a.input)?.bytes;
            &hex_bank
        } else {
            &bank
        };
        let v = verify::verify_bank(boot_bank, &key.boot_key())
            .map_err(|e| anyhow!("{name}: boot signature check failed: {e}"))?;
        text.push(format!(
            "boot signatures OK ({}, key from {}):",
            key.scheme().name(),
            key_path.display()
        ));
        let mut regions = Vec::new();
        for r in [v.boot().cm0p(), v.cm7_0(), v.cm7_1()] {
            text.push(format!(
                "  {:<5} region at {:#08x}: objSize {:#x}, sha256 {}",
                r.region().to_string(),
                r.region().offset(),
                r.header().obj_size,
                hex(r.digest())
            ));
            regions.push(json!({
                "name": r.region().name(),
                "offset": r.region().offset(),
                "objSize": r.header().obj_size,
                "appId": r.header().app_id,
                "sha256": hex(r.digest()),
            }));
        }
        let rec = v.boot().record();
        text.push(format!(
            "  version record: {}, security counter {}, hardware {:?}, flags {:#x}",
            rec.version,
            rec.security_counter,
            rec.hardware.as_str(),
            rec.flags
        ));
        boot_json = json!({
            "scheme": key.scheme().name(),
            "key": key_path.display().to_string(),
            "regions": regions,
            "versionRecord": record_json(rec),
        });
    }
    if let Some(sig_arg) = &a.ota_signature {
        let sig = load_ota_signature(sig_arg)?;
        let (key_path, file) = match (&a.cert, &a.key) {
            (Some(c), _) => (c, KeyFile::load(c)?),
            (None, Some(k)) => (k, KeyFile::load(k)?),
            (None, None) => bail!("--ota-signature needs --cert or --key"),
        };
        let mut note = String::new();
        let mut subject = None;
        if a.cert.is_some() {
            let KeyFile::Certificate(info) = &file else {
                bail!(
                    "{}: expected a certificate, found {} (use --key for keys)",
                    key_path.display(),
                    file.describe()
                );
            };
            note = format!(", certificate {}", info.subject);
            subject = Some(info.subject.to_string());
            if !info.code_signing {
                eprintln!(
                    "warning: {}: the certificate's extendedKeyUsage does not include codeSigning",
                    key_path.display()
                );
            }
        }
        let vk = file
            .public_key()
            .and_then(|k| k.ota_verifying_key())
            .map_err(|e| anyhow!("{}: {e}", key_path.display()))?;
        sig.verify_file(&vk, &bank).map_err(|e| {
            anyhow!(
                "{name}: {e} (ECDSA P-256/SHA-256 over {} bytes, key from {})",
                bank.len(),
                key_path.display()
            )
        })?;
        text.push(format!(
            "OTA signature OK (ECDSA P-256/SHA-256 over {} bytes, key from {}{note})",
            bank.len(),
            key_path.display()
        ));
        ota_json = json!({
            "signatureAlgorithm": ota::SIGNATURE_KEY,
            "bytes": bank.len(),
            "key": key_path.display().to_string(),
            "certificateSubject": subject,
        });
    }
    if a.json {
        let doc = json!({
            "file": name,
            "ok": true,
            "bootSignatures": boot_json,
            "otaSignature": ota_json,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for line in text {
            println!("{line}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_specs() {
        let p = |s: &str| BuildSpec::parse(s).map_err(|e| e.to_string());
        assert_eq!(
            p("a.elf").unwrap(),
            BuildSpec {
                path: "a.elf".into(),
                format: None
            }
        );
        assert_eq!(
            p("x.bin@0x10010000").unwrap().format,
            Some(Format::Raw {
                address: 0x1001_0000
            })
        );
        assert_eq!(
            p("raw:x.bin@268500992").unwrap().format,
            Some(Format::Raw {
                address: 0x1001_0000
            })
        );
        assert_eq!(p("hex:x.txt").unwrap().format, Some(Format::Hex));
        assert_eq!(p("elf:x").unwrap().format, Some(Format::Elf));
        assert_eq!(
            p("me@host/a.elf").unwrap().path,
            PathBuf::from("me@host/a.elf")
        );
        assert!(
            p("raw:x.bin")
                .unwrap_err()
                .contains("needs its load address")
        );
        assert!(p("x.bin@0xZZ").unwrap_err().contains("not a load address"));
        assert!(p("elf:x@0x10").unwrap_err().contains("only raw"));
        assert_eq!(
            p("C:\\fw\\a.elf").unwrap().path,
            PathBuf::from("C:\\fw\\a.elf")
        );
    }
}
