//! `ferrota t2g ...`: a simulated CYT4BF in a file. Every command loads the device (a power-on),
//! calls `ferrota_sim::boot_chain`, and saves the device atomically only when it succeeded,
//! so a bad input never changes the file.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use ferrota_boot::Bank;
use ferrota_boot::log::BootState;
use ferrota_sim::boot_chain::{
    self, BankMark, BankStatus, DeviceReport, Provisioning, text::describe_event,
    text::describe_record, text::describe_state,
};
use ferrota_t2g::{Device, LifeCycle};
use serde_json::{Value, json};

use crate::fsio;
use crate::t2gargs::{
    ActivateArgs, BootArgs, DeviceArgs, LifeCycleArg, NewArgs, ProgramArgs, ShowArgs, T2gCommand,
};

/// Runs a `t2g` command.
pub fn run(c: T2gCommand) -> Result<()> {
    match c {
        T2gCommand::New(a) => new(&a),
        T2gCommand::Program(a) => program(&a),
        T2gCommand::Boot(a) => boot(&a),
        T2gCommand::Show(a) => show(&a),
        T2gCommand::Activate(a) => activate(&a),
        T2gCommand::Confirm(a) => confirm(&a),
        T2gCommand::Reject(a) => reject(&a),
    }
}

fn load(path: &Path) -> Result<Device> {
    Device::load(path).map_err(|e| match e {
        ferrota_t2g::PersistError::Io(io) => {
            anyhow!("{}: cannot read the device file: {io}", path.display())
        }
        other => anyhow!("{}: {other}", path.display()),
    })
}

fn save(dev: &Device, path: &Path) -> Result<()> {
    dev.save(path)
        .map_err(|e| anyhow!("{}: cannot save the device: {e}", path.display()))
}

fn bank_name(b: Bank) -> &'static str {
    match b {
        Bank::Lower => "lower",
        Bank::Upper => "upper",
    }
}

fn lifecycle(a: LifeCycleArg) -> LifeCycle {
    match a {
        LifeCycleArg::Virgin => LifeCycle::Virgin,
        LifeCycleArg::Normal => LifeCycle::Normal,
        LifeCycleArg::NormalProvisioned => LifeCycle::NormalProvisioned,
        LifeCycleArg::SecureWithDebug => LifeCycle::SecureWithDebug,
        LifeCycleArg::Secure => LifeCycle::Secure,
    }
}

fn new(a: &NewArgs) -> Result<()> {
    if !a.force && a.device.exists() {
        bail!(
            "{}: already exists (use --force to replace it)",
            a.device.display()
        );
    }
    let key = ferrota_keys::load_public_key(&a.boot_key)?;
    let dev = boot_chain::provision(&Provisioning {
        key: key.boot_key(),
        life_cycle: lifecycle(a.life_cycle),
        hardware: a.hardware,
    })
    .with_context(|| format!("{}: cannot provision", a.device.display()))?;
    save(&dev, &a.device)?;
    println!(
        "{}: new CYT4BF, life cycle {:?}, boot key {} ({}), hardware {}; both banks erased",
        a.device.display(),
        dev.lifecycle(),
        key.describe(),
        key.scheme().name(),
        a.hardware.as_ref().map_or("any", |h| h.as_str())
    );
    Ok(())
}

fn program(a: &ProgramArgs) -> Result<()> {
    let image = fsio::read(&a.image, fsio::BANK_LIMIT)?;
    let mut dev = load(&a.device)?;
    let p = boot_chain::program_bank(&mut dev, a.bank, &image).map_err(|e| match e {
        boot_chain::Error::BankSize { .. } => anyhow!("{}: {e}", a.image.display()),
        other => anyhow!("{}: {other}", a.device.display()),
    })?;
    save(&dev, &a.device)?;
    println!(
        "programmed {} into the {} bank: {} sectors erased, {} rows programmed, {} flash operations, {:?} simulated",
        a.image.display(),
        bank_name(a.bank),
        p.sectors_erased,
        p.rows_programmed,
        p.ops,
        p.flash_time
    );
    match p.verification {
        Some(Ok(r)) => {
            println!("verifies with the provisioned key: {}", describe_record(&r));
            if let Some(w) = below_floor(&dev, &r) {
                eprintln!("warning: {}: {w}", a.image.display());
            }
        }
        Some(Err(e)) => eprintln!(
            "warning: {}: does not verify with the provisioned key ({e}); written anyway, the boot chain will refuse it",
            a.image.display()
        ),
        None => eprintln!("warning: the device has no provisioned key; the image was not checked"),
    }
    Ok(())
}

/// Why the board will refuse `r` for its anti-rollback floor (the larger of the marker log's
/// floor and the eFuse counter, as the Dual Bank Manager enforces it), if it will. `t2g program`
/// writes the bank anyway, as a debugger would, but says so before anyone waits for a boot.
fn below_floor(dev: &Device, r: &ferrota_image::VersionRecord) -> Option<String> {
    let log_floor = boot_chain::read_state(dev).map_or(0, |s| s.floor);
    let floor = log_floor.max(dev.rollback_counter());
    (r.security_counter < floor).then(|| {
        format!(
            "security counter {} is below the board's anti-rollback floor {floor} (marker log \
             {log_floor}, eFuse {}): written anyway, the Dual Bank Manager will refuse to boot it",
            r.security_counter,
            dev.rollback_counter()
        )
    })
}

fn boot(a: &BootArgs) -> Result<()> {
    let mut dev = load(&a.device)?;
    let o = boot_chain::boot(&mut dev, a.user1)
        .with_context(|| format!("{}: boot failed", a.device.display()))?;
    save(&dev, &a.device)?;
    for s in &o.steps {
        println!("{s}");
    }
    match o.started() {
        Some(_) => {
            println!("{}", o.summary());
            Ok(())
        }
        None => bail!("{}: no image started: {}", a.device.display(), o.summary()),
    }
}

fn activate(a: &ActivateArgs) -> Result<()> {
    let mut dev = load(&a.device)?;
    let r = boot_chain::activate(&mut dev, a.budget, a.force)
        .map_err(|e| anyhow!("{}: cannot activate: {e}", a.device.display()))?;
    save(&dev, &a.device)?;
    println!(
        "activated the {} bank ({}) for a trial of {} boots; running bank {}; {} flash operations, {:?}",
        bank_name(r.target),
        r.record
            .map_or("does not verify".into(), |v| describe_record(&v)),
        a.budget,
        bank_name(r.running),
        r.ops,
        r.flash_time
    );
    Ok(())
}

fn confirm(a: &DeviceArgs) -> Result<()> {
    let mut dev = load(&a.device)?;
    let c = boot_chain::confirm(&mut dev)
        .map_err(|e| anyhow!("{}: cannot confirm: {e}", a.device.display()))?;
    save(&dev, &a.device)?;
    println!(
        "confirmed the {} bank ({}); anti-rollback floor {} (eFuse counter {}); {} operations, {:?}",
        bank_name(c.bank),
        describe_record(&c.record),
        c.floor,
        c.efuse_counter,
        c.ops,
        c.flash_time
    );
    Ok(())
}

fn reject(a: &DeviceArgs) -> Result<()> {
    let mut dev = load(&a.device)?;
    let r = boot_chain::reject(&mut dev)
        .map_err(|e| anyhow!("{}: cannot reject: {e}", a.device.display()))?;
    save(&dev, &a.device)?;
    println!(
        "rejected the {} bank: {}; the next boot runs the {} bank",
        bank_name(r.bank),
        describe_event(&r.state.event),
        bank_name(r.state.preferred())
    );
    Ok(())
}

fn show(a: &ShowArgs) -> Result<()> {
    let dev = load(&a.device)?;
    let r = boot_chain::report(&dev)
        .map_err(|e| anyhow!("{}: cannot read: {e}", a.device.display()))?;
    let file = a.device.display().to_string();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&file, &r))?);
    } else {
        print!("{}", to_text(&file, &r));
    }
    Ok(())
}

fn state_json(s: &BootState) -> Value {
    json!({
        "current": s.current.map(bank_name),
        "trial": s.trial.map(|t| json!({"bank": bank_name(t.bank), "budget": t.budget, "used": t.used})),
        "floor": s.floor,
        "badMarks": {
            "lower": s.bad_mark(Bank::Lower).filter(|_| !s.is_locked(Bank::Lower)),
            "upper": s.bad_mark(Bank::Upper).filter(|_| !s.is_locked(Bank::Upper)),
        },
        "locked": {
            "lower": s.is_locked(Bank::Lower),
            "upper": s.is_locked(Bank::Upper),
        },
        "event": describe_event(&s.event),
    })
}

/// Why a locked bank does not boot, for `show`.
const LOCKED_WHY: &str = "locked: its image was rejected by the self-test, reverted, refused by the agent or left half-written; the DBM boots it on no path (fallback, USER1, reset) until a new activation";

fn bank_json(b: &boot_chain::BankReport) -> Value {
    let (status, record, error) = match &b.status {
        BankStatus::Erased => ("erased", None, None),
        BankStatus::Valid(r) => ("valid", Some(r), None),
        BankStatus::CoresInvalid { record, error } => {
            ("cm7-invalid", Some(record), Some(error.to_string()))
        }
        BankStatus::Invalid(e) => ("invalid", None, Some(e.to_string())),
        BankStatus::NoKey => ("no-key", None, None),
    };
    // The log's verdict overrides the image's: a locked or marked bank never boots.
    let (status, error) = match b.mark {
        BankMark::None => (status, error),
        BankMark::Locked => ("locked", Some(LOCKED_WHY.to_string())),
        BankMark::MarkedBad => (
            "marked-bad",
            Some("the CM0+ stage refused this image's CM7 regions".to_string()),
        ),
    };
    json!({
        "bank": bank_name(b.bank),
        "status": status,
        "version": record.map(|r| r.version.to_string()),
        "securityCounter": record.map(|r| r.security_counter),
        "hardware": record.map(|r| r.hardware.as_str().to_string()),
        "error": error,
    })
}

fn to_json(file: &str, r: &DeviceReport) -> Value {
    json!({
        "device": file,
        "lifeCycle": format!("{:?}", r.life_cycle),
        "shashBlown": r.shash_blown,
        "bootKey": match &r.key {
            Ok(s) => json!({"scheme": s.name()}),
            Err(e) => json!({"error": e.to_string()}),
        },
        "hardware": r.dbm.and_then(|d| d.hardware).map(|h| h.as_str().to_string()),
        "running": {
            "bank": bank_name(r.running),
            "bankMode": "dual",
            "mapping": format!("{:?}", r.mapping),
        },
        "log": {
            "state": state_json(&r.state),
            "records": r.records.iter().map(|x| json!({
                "sector": x.sector,
                "slot": x.slot,
                "seq": x.seq,
                "state": state_json(&x.state),
            })).collect::<Vec<_>>(),
        },
        "banks": r.banks.iter().map(bank_json).collect::<Vec<_>>(),
        "floor": {"log": r.floor_log, "efuse": r.floor_efuse},
        "wear": r.wear.iter().map(|w| json!({
            "area": w.area,
            "sectors": w.sectors,
            "written": w.written,
            "erases": w.erases,
            "max": w.max,
        })).collect::<Vec<_>>(),
        "clockNs": u64::try_from(r.clock.as_nanos()).unwrap_or(u64::MAX),
        "opCount": r.op_count,
    })
}

fn to_text(file: &str, r: &DeviceReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{file}: CYT4BF, life cycle {:?}, S-HASH {}",
        r.life_cycle,
        if r.shash_blown { "blown" } else { "not blown" }
    );
    let _ = writeln!(
        s,
        "boot key: {}; hardware: {}",
        match &r.key {
            Ok(k) => k.name().to_string(),
            Err(e) => format!("none ({e})"),
        },
        match r.dbm {
            None => "no Ferrota DBM provisioned".to_string(),
            Some(d) => d.hardware.map_or("any".into(), |h| h.as_str().to_string()),
        }
    );
    let _ = writeln!(
        s,
        "running: {} bank (dual-bank mode, mapping {:?})",
        bank_name(r.running),
        r.mapping
    );
    let _ = writeln!(s, "marker log: {}", describe_state(&r.state));
    let mut recs = r.records.clone();
    recs.sort_by_key(|x| x.seq);
    for x in &recs {
        let _ = writeln!(
            s,
            "  #{:<4} sector {} slot {:>2}: {}",
            x.seq,
            x.sector,
            x.slot,
            describe_event(&x.state.event)
        );
    }
    for b in &r.banks {
        let what = match &b.status {
            BankStatus::Erased => "erased".to_string(),
            BankStatus::Valid(v) => format!("valid, {}", describe_record(v)),
            BankStatus::CoresInvalid { record, error } => {
                format!("{}; CM0+ verifies but {error}", describe_record(record))
            }
            BankStatus::Invalid(e) => format!("refused: {e}"),
            BankStatus::NoKey => "not checked (no key provisioned)".into(),
        };
        let what = match b.mark {
            BankMark::None => what,
            BankMark::Locked => format!("{LOCKED_WHY}; holds: {what}"),
            BankMark::MarkedBad => {
                format!("marked bad: the CM0+ stage refused its CM7 regions; holds: {what}")
            }
        };
        let _ = writeln!(s, "{} bank: {what}", bank_name(b.bank));
    }
    let _ = writeln!(
        s,
        "anti-rollback floor: log {}, eFuse counter {}",
        r.floor_log, r.floor_efuse
    );
    let _ = writeln!(s, "erase counts:");
    for w in &r.wear {
        let _ = writeln!(
            s,
            "  {:<48} {:>4} sectors, {:>4} written, {:>6} erases, max {}",
            w.area, w.sectors, w.written, w.erases, w.max
        );
    }
    let _ = writeln!(
        s,
        "simulated clock: {:?} after {} flash operations",
        r.clock, r.op_count
    );
    s
}
