//! `ferrota thing create|list|update|describe|revoke`, on the data directory (the running server
//! reads the same SQLite database, so a revoked thing is refused at its next connect). `thing
//! list --query` is the exception: it asks the running server (AWS SearchIndex), which knows
//! who is connected.

use anyhow::{Context, Result, bail};
use ferrota_server::ca::write_file;
use ferrota_server::server::open_admin;

use crate::servecmd::{config, runtime};
use crate::serverargs::{ThingCommand, ThingCreateArgs, ThingListArgs, ThingUpdateArgs};

fn port(cfg: &ferrota_server::config::Config) -> u16 {
    cfg.mqtt_listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8883)
}

/// Runs a `thing` command.
pub fn run(c: ThingCommand) -> Result<()> {
    // Through the HTTP API (blocking), outside the runtime.
    if let ThingCommand::List(a) = &c
        && a.query.is_some()
    {
        return search(a);
    }
    runtime()?.block_on(async move {
        match c {
            ThingCommand::Create(a) => create(&a).await,
            ThingCommand::Update(a) => update(&a).await,
            ThingCommand::List(a) => {
                let cfg = config(&a.api.data)?;
                let admin = open_admin(&cfg, port(&cfg)).await?;
                let things = admin.list_things().await?;
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&things)?);
                    return Ok(());
                }
                // Human lines: name, groups, registration time as RFC 3339 (the JSON keeps
                // AWS's epoch seconds), attributes.
                for t in things {
                    println!(
                        "{}\t{}\t{}\t{}",
                        t.thing_name,
                        t.groups.join(","),
                        ferrota_server::admin::rfc3339(t.created_at),
                        attributes_text(&t.attributes)
                    );
                }
                Ok(())
            }
            ThingCommand::Describe(a) => {
                let cfg = config(&a.data)?;
                let admin = open_admin(&cfg, port(&cfg)).await?;
                let d = admin.describe_thing(&a.name).await?;
                println!("{}", serde_json::to_string_pretty(&d)?);
                // stdout stays the JSON it always was (scripts read it); the inventory in
                // words goes to stderr for the person at the terminal.
                eprintln!("{}", inventory_text(&d.thing_name, &d.inventory));
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

/// A thing's inventory in words: `dev-1: runs 1.2.0 (bank B, on trial), floor 3, hardware
/// KIT_T2G; connected, last seen <RFC 3339>; last job AFR_OTA-x SUCCEEDED (<RFC 3339>)`.
fn inventory_text(name: &str, inv: &ferrota_api::ThingInventory) -> String {
    use ferrota_server::admin::rfc3339;
    let mut s = format!("{name}: ");
    match inv.reported.as_ref().and_then(|r| r.firmware.as_ref()) {
        Some(f) => s.push_str(&format!(
            "runs {} (bank {}{}), floor {}",
            f.version,
            f.bank,
            if f.pending_trial { ", on trial" } else { "" },
            f.anti_rollback_floor
        )),
        None => s.push_str("firmware not reported"),
    }
    if let Some(h) = inv.reported.as_ref().and_then(|r| r.hardware_id.as_deref()) {
        s.push_str(&format!(", hardware {h}"));
    }
    if let Some(at) = inv.reported_at {
        s.push_str(&format!(" (reported {})", rfc3339(at)));
    }
    s.push_str(if inv.connected {
        "; connected"
    } else {
        "; not connected"
    });
    match inv.last_seen {
        Some(t) => s.push_str(&format!(", last seen {}", rfc3339(t))),
        None => s.push_str(", never seen"),
    }
    if let Some(j) = &inv.last_job {
        s.push_str(&format!(
            "; last job {} {} ({})",
            j.job_id,
            j.status,
            rfc3339(j.last_updated_at)
        ));
    }
    s
}

/// `k=v,k=v`, for the human lines.
fn attributes_text(a: &std::collections::BTreeMap<String, String>) -> String {
    a.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `thing list --query`: every page of the running server's SearchIndex answer.
fn search(a: &ThingListArgs) -> Result<()> {
    let api = crate::otacmd::Api::new(&a.api)?;
    let mut req = ferrota_api::SearchIndex {
        query_string: a.query.clone().unwrap_or_default(),
        ..Default::default()
    };
    let mut things = Vec::new();
    loop {
        let page = api.run(|c| c.search_index(&req))?;
        things.extend(page.things);
        match page.next_token {
            Some(t) => req.next_token = Some(t),
            None => break,
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&things)?);
        return Ok(());
    }
    // Human lines: name, groups, connected or not, attributes.
    for t in things {
        println!(
            "{}\t{}\t{}\t{}",
            t.thing_name,
            t.thing_group_names.join(","),
            if t.connectivity.connected {
                "connected"
            } else {
                "disconnected"
            },
            attributes_text(&t.attributes)
        );
    }
    Ok(())
}

/// `thing update`: attributes merged (or replaced with --replace); a removal is AWS's empty
/// value. Prints the thing's attributes after the change.
async fn update(a: &ThingUpdateArgs) -> Result<()> {
    let cfg = config(&a.data)?;
    let admin = open_admin(&cfg, port(&cfg)).await?;
    let mut attributes: std::collections::BTreeMap<String, String> =
        a.attributes.iter().cloned().collect();
    for k in &a.remove {
        if attributes.contains_key(k) {
            bail!("attribute {k:?} is both set (--attribute) and removed (--remove-attribute)");
        }
        attributes.insert(k.clone(), String::new());
    }
    if attributes.is_empty() && !a.replace {
        bail!("nothing to change: give --attribute NAME=VALUE or --remove-attribute NAME");
    }
    let req = ferrota_server::admin::UpdateThing {
        attribute_payload: ferrota_server::admin::AttributePayload {
            attributes,
            merge: Some(!a.replace),
        },
    };
    let d = admin.update_thing(&a.name, &req).await?;
    println!("{}", serde_json::to_string_pretty(&d.attributes)?);
    Ok(())
}

/// `thing create`: the bundle is written to a temporary directory beside its target and
/// renamed into place before the thing is stored, and removed if storing fails, so an
/// unwritable output directory leaves no thing behind (and no certificate whose key is lost).
/// The MQTT host and port in it are where the data directory's server listens
/// ([`crate::settings::mqtt_endpoint`]), said on stderr; a `--code-signing-cert` is checked
/// before anything is created.
async fn create(a: &ThingCreateArgs) -> Result<()> {
    let mut cfg = config(&a.data)?;
    let signer = a
        .code_signing_cert
        .as_deref()
        .map(code_signing_pem)
        .transpose()?;
    let ep = crate::settings::mqtt_endpoint(&cfg, a.mqtt_port)?;
    cfg.endpoint = ep.host.clone();
    let admin = open_admin(&cfg, ep.port).await?;
    let dir = a.output.join(&a.name);
    let written = std::cell::Cell::new(false);
    let stage = |b: &ferrota_server::admin::ThingBundle| {
        write_bundle(a, &ep, signer.as_deref(), &dir, b)
            .map(|()| written.set(true))
            .map_err(|e| format!("{e:#}"))
    };
    let payload = ferrota_server::admin::AttributePayload {
        attributes: a.attributes.iter().cloned().collect(),
        merge: None,
    };
    let b = match admin
        .create_thing_with_attributes(&a.name, &a.groups, &payload, stage)
        .await
    {
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
        "thing {} created (certificate {}); bundle in {}; MQTT endpoint {}:{} ({})",
        a.name,
        b.certificate_id,
        dir.display(),
        ep.host,
        ep.port,
        ep.from
    );
    if let Some(w) = &ep.warning {
        eprintln!("warning: {w}");
    }
    if signer.is_none() {
        eprintln!(
            "note: no --code-signing-cert: put the code-signing certificate into the bundle as \
             {CODE_SIGNING_FILE} before `ferrota device run`"
        );
    }
    Ok(())
}

/// The bundle's code-signing certificate, the name `device.toml` gives it
/// ([`ferrota_device::config::DeviceConfig::for_thing`]).
const CODE_SIGNING_FILE: &str = "code-signing.crt.pem";

/// The code-signing certificate of `--code-signing-cert` as PEM: the file must hold an X.509
/// certificate (PEM or DER) with an ECDSA P-256 key, the only OTA signature the agent checks;
/// a key or a boot (RSA) certificate is refused here, before the thing exists, rather than by
/// the device at its first update. The PEM is re-encoded from the DER, so the bundle holds the
/// certificate alone (no chain, no private key that shared the input file).
fn code_signing_pem(p: &std::path::Path) -> Result<String> {
    let what = "--code-signing-cert";
    let info = match ferrota_keys::KeyFile::load(p).context(what)? {
        ferrota_keys::KeyFile::Certificate(c) => c,
        other => bail!(
            "{what} {}: holds {}, not a certificate (make one with `ferrota cert code-signing`)",
            p.display(),
            other.describe()
        ),
    };
    info.public_key.ota_verifying_key().map_err(|e| {
        anyhow::anyhow!(
            "{what} {}: {e} (OTA signatures are ECDSA P-256; is this the boot key's certificate?)",
            p.display()
        )
    })?;
    if !info.code_signing {
        eprintln!(
            "warning: {what} {}: no extendedKeyUsage codeSigning (AWS's code-signing \
             certificates have it); used anyway",
            p.display()
        );
    }
    pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, &info.der)
        .map_err(|e| anyhow::anyhow!("{what} {}: {e}", p.display()))
}

/// The seed's `ota_config.h` with the code-signing certificate where the seed's firmware takes
/// it (`AWS_IOT_OTA_SIGNING_CERT`, the PEM as one C string), added before the include guard's
/// `#endif`, so a bundle made with `--code-signing-cert` needs no hand-pasting for the real
/// board either.
fn with_signing_cert(ota_config_h: &str, pem: &str) -> String {
    let mut define = String::from("#define AWS_IOT_OTA_SIGNING_CERT \\\n");
    let lines: Vec<&str> = pem.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let more = if i + 1 < lines.len() { " \\" } else { "" };
        define.push_str(&format!("\"{line}\\n\"{more}\n"));
    }
    match ota_config_h.rsplit_once("#endif") {
        Some((head, tail)) => format!("{head}{define}\n#endif{tail}"),
        None => format!("{ota_config_h}\n{define}"),
    }
}

/// Writes the device bundle of `b` into `dir` (which must not exist) all at once.
fn write_bundle(
    a: &ThingCreateArgs,
    ep: &crate::settings::Endpoint,
    signer: Option<&str>,
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
    let ota_config_h = match signer {
        Some(pem) => with_signing_cert(&b.ota_config_h, pem),
        None => b.ota_config_h.clone(),
    };
    w("ota_config.h", &ota_config_h, false)?;
    w("bundle.json", &serde_json::to_string_pretty(b)?, true)?;
    // The simulated board's configuration (`ferrota device run`), naming the endpoint the
    // server's bundle files name.
    let device = ferrota_device::config::DeviceConfig::for_thing(&a.name, &ep.host, ep.port);
    debug_assert_eq!(
        device.code_signing_cert,
        std::path::Path::new(CODE_SIGNING_FILE)
    );
    w("device.toml", &device.to_toml(), false)?;
    if let Some(pem) = signer {
        w(CODE_SIGNING_FILE, pem, false)?;
    }
    std::fs::rename(tmp.path(), dir)
        .with_context(|| format!("{}: cannot move the bundle into place", dir.display()))?;
    Ok(())
}
