//! `ferrota thing create|list|describe|revoke`, on the data directory (the running server reads
//! the same SQLite database, so a revoked thing is refused at its next connect).

use anyhow::{Context, Result, bail};
use ferrota_server::ca::write_file;
use ferrota_server::server::open_admin;

use crate::servecmd::{config, runtime};
use crate::serverargs::{ThingCommand, ThingCreateArgs};

fn port(cfg: &ferrota_server::config::Config) -> u16 {
    cfg.mqtt_listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8883)
}

/// Runs a `thing` command.
pub fn run(c: ThingCommand) -> Result<()> {
    runtime()?.block_on(async move {
        match c {
            ThingCommand::Create(a) => create(&a).await,
            ThingCommand::List(a) => {
                let cfg = config(&a.data)?;
                let admin = open_admin(&cfg, port(&cfg)).await?;
                let things = admin.list_things().await?;
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&things)?);
                    return Ok(());
                }
                // Human lines: name, groups, registration time as RFC 3339 (the JSON keeps
                // AWS's epoch seconds).
                for t in things {
                    println!(
                        "{}\t{}\t{}",
                        t.thing_name,
                        t.groups.join(","),
                        ferrota_server::admin::rfc3339(t.created_at)
                    );
                }
                Ok(())
            }
            ThingCommand::Describe(a) => {
                let cfg = config(&a.data)?;
                let admin = open_admin(&cfg, port(&cfg)).await?;
                let d = admin.describe_thing(&a.name).await?;
                println!("{}", serde_json::to_string_pretty(&d)?);
                Ok(())
            }
            ThingCommand::Revoke(a) => {
                let cfg = config(&a.data)?;
                let admin = open_admin(&cfg, port(&cfg)).await?;
                let n = admin.revoke_thing(&a.name).await?;
                println!("revoked {n} certificate(s) of {}", a.name);
                Ok(())
            }
        }
    })
}

/// `thing create`: the bundle is written to a temporary directory beside its target and
/// renamed into place before the thing is stored, and removed if storing fails, so an
/// unwritable output directory leaves no thing behind (and no certificate whose key is lost).
async fn create(a: &ThingCreateArgs) -> Result<()> {
    let cfg = config(&a.data)?;
    let admin = open_admin(&cfg, port(&cfg)).await?;
    let dir = a.output.join(&a.name);
    let written = std::cell::Cell::new(false);
    let stage = |b: &ferrota_server::admin::ThingBundle| {
        write_bundle(a, &cfg, &dir, b)
            .map(|()| written.set(true))
            .map_err(|e| format!("{e:#}"))
    };
    let b = match admin.create_thing_with(&a.name, &a.groups, stage).await {
        Ok(b) => b,
        Err(e) => {
            if written.get() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return Err(e.into());
        }
    };
    println!("{}", dir.display());
    eprintln!(
        "thing {} created (certificate {}); bundle in {}",
        a.name,
        b.certificate_id,
        dir.display()
    );
    Ok(())
}

/// Writes the device bundle of `b` into `dir` (which must not exist) all at once.
fn write_bundle(
    a: &ThingCreateArgs,
    cfg: &ferrota_server::config::Config,
    dir: &std::path::Path,
    b: &ferrota_server::admin::ThingBundle,
) -> Result<()> {
    let out = &a.output;
    if dir.exists() {
        bail!(
            "{}: already exists (the bundle is not replaced)",
            dir.display()
        );
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("{}: cannot create the output directory", out.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", a.name))
        .tempdir_in(out)
        .with_context(|| format!("{}: cannot write the bundle there", out.display()))?;
    let w = |n: &str, t: &str, secret: bool| write_file(&tmp.path().join(n), t.as_bytes(), secret);
    w(&format!("{}.crt.pem", a.name), &b.certificate_pem, false)?;
    w(&format!("{}.key.pem", a.name), &b.private_key_pem, true)?;
    w("root-ca.pem", &b.root_ca_pem, false)?;
    w("credentials_config.h", &b.credentials_config_h, true)?;
    w("ota_config.h", &b.ota_config_h, false)?;
    w("bundle.json", &serde_json::to_string_pretty(b)?, true)?;
    // The simulated board's configuration (`ferrota device run`); code-signing.crt.pem is the
    // operator's to add.
    let device = ferrota_device::config::DeviceConfig::for_thing(&a.name, &cfg.endpoint, port(cfg));
    w("device.toml", &device.to_toml(), false)?;
    std::fs::rename(tmp.path(), dir)
        .with_context(|| format!("{}: cannot move the bundle into place", dir.display()))?;
    Ok(())
}
