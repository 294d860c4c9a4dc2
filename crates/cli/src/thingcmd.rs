//! `ferrota thing create|list|describe|revoke`, on the data directory (the running server reads
//! the same SQLite database, so a revoked thing is refused at its next connect).

use anyhow::Result;
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
                for t in admin.list_things().await? {
                    println!("{}\t{}", t.name, t.groups.join(","));
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

async fn create(a: &ThingCreateArgs) -> Result<()> {
    let cfg = config(&a.data)?;
    let admin = open_admin(&cfg, port(&cfg)).await?;
    let b = admin.create_thing(&a.name, &a.groups).await?;
    let dir = a.output.join(&a.name);
    let w = |n: &str, t: &str, secret: bool| write_file(&dir.join(n), t.as_bytes(), secret);
    w(&format!("{}.crt.pem", a.name), &b.certificate_pem, false)?;
    w(&format!("{}.key.pem", a.name), &b.private_key_pem, true)?;
    w("root-ca.pem", &b.root_ca_pem, false)?;
    w("credentials_config.h", &b.credentials_config_h, true)?;
    w("ota_config.h", &b.ota_config_h, false)?;
    w("bundle.json", &serde_json::to_string_pretty(&b)?, true)?;
    // The simulated board's configuration (`ferrota device run`); code-signing.crt.pem is the
    // operator's to add.
    let device =
        ferrota_device::config::DeviceConfig::for_thing(&a.name, &cfg.endpoint, port(&cfg));
    w("device.toml", &device.to_toml(), false)?;
    println!("{}", dir.display());
    eprintln!(
        "thing {} created (certificate {}); bundle in {}",
        a.name,
        b.certificate_id,
        dir.display()
    );
    Ok(())
}
