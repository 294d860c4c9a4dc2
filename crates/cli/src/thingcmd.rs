//! `ferrota thing create|list|update|describe|revoke`, on the data directory (the running server
//! reads the same SQLite database, so a revoked thing is refused at its next connect), or
//! through a server's HTTP API when a server or a token is given ([`remote`]): the same routes,
//! role checks and answers as every other client, so an operator without access to the data
//! directory manages things with a token. `thing list --query` always asks a server (AWS
//! SearchIndex), which knows who is connected.

use anyhow::{Context, Result, bail};
use ferrota_server::ca::write_file;
use ferrota_server::server::open_admin;

use crate::otacmd::Api;
use crate::servecmd::{config, runtime};
use crate::serverargs::{ApiArgs, ThingCommand, ThingCreateArgs, ThingListArgs, ThingUpdateArgs};

fn port(cfg: &ferrota_server::config::Config) -> u16 {
    cfg.mqtt_listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8883)
}

/// Whether a thing command goes through a server's HTTP API rather than the data directory:
/// a server was named (`--server`/`--api`, `FERROTA_SERVER`, `FERROTA_API`) or a token given
/// (`--token`, `FERROTA_TOKEN`). Decision: a token means nothing to a data directory (whoever
/// can read it is its admin), so giving one asks for the API, as `ota` does; without either,
/// the data directory is used as before, so a server need not run for `thing create`.
fn remote(a: &ApiArgs) -> bool {
    a.api.is_some()
        || a.token.is_some()
        || std::env::var("FERROTA_SERVER").is_ok_and(|v| !v.is_empty())
}

/// Runs a `thing` command.
pub fn run(c: ThingCommand) -> Result<()> {
    let api = match &c {
        ThingCommand::Create(a) => &a.api,
        ThingCommand::List(a) => &a.api,
        ThingCommand::Update(a) => &a.api,
        ThingCommand::Describe(a) | ThingCommand::Revoke(a) => &a.api,
    };
    // Through the HTTP API (blocking), outside the runtime.
    if remote(api) {
        return run_remote(c);
    }
    if let ThingCommand::List(a) = &c
        && a.query.is_some()
    {
        return search(a);
    }
    runtime()?.block_on(async move {
        match c {
            ThingCommand::Create(a) => create(&a).await,
            ThingCommand::Update(a) => {
                let cfg = config(&a.api.data)?;
                let admin = open_admin(&cfg, port(&cfg)).await?;
                let d = admin.update_thing(&a.name, &update_request(&a)?).await?;
                println!("{}", serde_json::to_string_pretty(&d.attributes)?);
                Ok(())
            }
            ThingCommand::List(a) => {
                let cfg = config(&a.api.data)?;
                let admin = open_admin(&cfg, port(&cfg)).await?;
                print_things(admin.list_things().await?, a.json)
            }
            ThingCommand::Describe(a) => {
                let cfg = config(&a.api.data)?;
                let admin = open_admin(&cfg, port(&cfg)).await?;
                print_description(&admin.describe_thing(&a.name).await?)
            }
            ThingCommand::Revoke(a) => {
                let cfg = config(&a.api.data)?;
                let admin = open_admin(&cfg, port(&cfg)).await?;
                let n = admin.revoke_thing(&a.name).await?;
                println!("revoked {n} certificate(s) of {}", a.name);
                Ok(())
            }
        }
    })
}

/// A thing command through the server's HTTP API (`ferrota_api::Client`): the same routes
/// and checks as every other client, the token's role included (create, update and revoke
/// need `admin`; a refusal is the server's 403 message). The output is the local command's.
fn run_remote(c: ThingCommand) -> Result<()> {
    match c {
        ThingCommand::Create(a) => create_remote(&a),
        ThingCommand::List(a) if a.query.is_some() => search(&a),
        ThingCommand::List(a) => {
            let things = Api::new(&a.api)?.run(|c| c.list_things())?;
            print_things(things, a.json)
        }
        ThingCommand::Update(a) => {
            let req = update_request(&a)?;
            let d = Api::new(&a.api)?.run(|c| c.update_thing(&a.name, &req))?;
            println!("{}", serde_json::to_string_pretty(&d.attributes)?);
            Ok(())
        }
        ThingCommand::Describe(a) => {
            print_description(&Api::new(&a.api)?.run(|c| c.describe_thing(&a.name))?)
        }
        ThingCommand::Revoke(a) => {
            let r = Api::new(&a.api)?.run(|c| c.revoke_thing(&a.name))?;
            println!("revoked {} certificate(s) of {}", r.revoked, a.name);
            Ok(())
        }
    }
}

/// `thing list`'s output: JSON, or lines of name, groups, registration time as RFC 3339 (the
/// JSON keeps AWS's epoch seconds) and attributes.
fn print_things(things: Vec<ferrota_api::ThingSummary>, json: bool) -> Result<()> {
    print_list(&things, json, |t| {
        [
            t.thing_name.clone(),
            t.groups.join(","),
            ferrota_server::admin::rfc3339(t.created_at),
            attributes_text(&t.attributes),
        ]
    })
}

/// A list as pretty JSON, or one tab-separated line per item.
fn print_list<T: serde::Serialize>(
    items: &[T],
    json: bool,
    line: impl Fn(&T) -> [String; 4],
) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(items)?);
        return Ok(());
    }
    for t in items {
        println!("{}", line(t).join("\t"));
    }
    Ok(())
}

/// `thing describe`'s output: stdout stays the JSON it always was (scripts read it); the
/// inventory in words goes to stderr for the person at the terminal.
fn print_description(d: &ferrota_api::ThingDescription) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(d)?);
    eprintln!("{}", inventory_text(&d.thing_name, &d.inventory));
    Ok(())
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
    let api = Api::new(&a.api)?;
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
    // Human lines: name, groups, connected or not, attributes.
    print_list(&things, a.json, |t| {
        [
            t.thing_name.clone(),
            t.thing_group_names.join(","),
            if t.connectivity.connected {
                "connected"
            } else {
                "disconnected"
            }
            .to_string(),
            attributes_text(&t.attributes),
        ]
    })
}

/// `thing update`'s request: attributes merged (or replaced with --replace); a removal is
/// AWS's empty value. The command prints the thing's attributes after the change.
fn update_request(a: &ThingUpdateArgs) -> Result<ferrota_api::UpdateThing> {
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
    Ok(ferrota_api::UpdateThing {
        attribute_payload: ferrota_api::AttributePayload {
            attributes,
            merge: Some(!a.replace),
        },
    })
}

/// `thing create`: the bundle is written to a temporary directory beside its target and
/// renamed into place before the thing is stored, and removed if storing fails, so an
/// unwritable output directory leaves no thing behind (and no certificate whose key is lost).
/// The MQTT host and port in it are where the data directory's server listens
/// ([`crate::settings::mqtt_endpoint`]), said on stderr; a `--code-signing-cert` is checked
/// before anything is created.
async fn create(a: &ThingCreateArgs) -> Result<()> {
    let mut cfg = config(&a.api.data)?;
    let signer = a
        .code_signing_cert
        .as_deref()
        .map(code_signing_pem)
        .transpose()?;
    let anchor = a.trust_root.as_deref().map(trust_anchor).transpose()?;
    let ep = crate::settings::mqtt_endpoint(&cfg, a.mqtt_port)?;
    cfg.endpoint = ep.host.clone();
    let admin = open_admin(&cfg, ep.port).await?;
    let dir = a.output.join(&a.name);
    let written = std::cell::Cell::new(false);
    let stage = |b: &ferrota_server::admin::ThingBundle| {
        write_bundle(a, &ep, signer.as_deref(), anchor.as_ref(), &dir, b)
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
    trust_note(anchor.as_ref());
    if signer.is_none() {
        eprintln!(
            "note: no --code-signing-cert: put the code-signing certificate into the bundle as \
             {CODE_SIGNING_FILE} before `ferrota device run`"
        );
    }
    Ok(())
}

/// `--trust-root`, read and checked: its bytes and the bundle's file name for it.
struct Anchor {
    bytes: Vec<u8>,
    /// `root-<version>.cbor`: `root-1.cbor` for the anchor `key trust-init` writes.
    file: String,
}

/// Reads `--trust-root` and checks it as the board will (`TrustedRoot::from_anchor`: a root
/// document that meets its own threshold), so a wrong file is refused before the thing exists
/// rather than when the board starts.
fn trust_anchor(p: &std::path::Path) -> Result<Anchor> {
    // A root document is about 600 bytes; 64 KB is the trust commands' limit too.
    let bytes = crate::fsio::read(p, 64 * 1024).context("--trust-root")?;
    let root = ferrota_manifest::TrustedRoot::from_anchor(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "--trust-root {}: refused as a trust anchor: {e} (expected root-1.cbor from \
             `ferrota key trust-init`)",
            p.display()
        )
    })?;
    Ok(Anchor {
        bytes,
        file: format!("root-{}.cbor", root.version()),
    })
}

/// Says on stderr what the bundle's board will trust.
fn trust_note(anchor: Option<&Anchor>) {
    match anchor {
        Some(a) => eprintln!(
            "trust: the board requires signed update metadata (anchor {} in the bundle; \
             serve with --trust-dir, create jobs with `ota create --manifest`)",
            a.file
        ),
        None => eprintln!(
            "note: no --trust-root: the board accepts AWS's plain code-signing signature \
             (policy aws-plain, with a warning in its log)"
        ),
    }
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
    anchor: Option<&Anchor>,
    dir: &std::path::Path,
    b: &ferrota_server::admin::ThingBundle,
) -> Result<()> {
    let tmp = staging(a, dir)?;
    fill_bundle(&tmp, a, ep, signer, anchor, dir, b)
}

/// Refuses a bundle directory that exists (a bundle is never replaced: it holds a key).
fn not_there(dir: &std::path::Path) -> Result<()> {
    if dir.exists() {
        bail!(
            "{}: already exists (the bundle is not replaced)",
            dir.display()
        );
    }
    Ok(())
}

/// A temporary directory beside the bundle's place `dir` (which must not exist), where the
/// bundle is written before it is renamed into place: made before the thing is created, so
/// an existing bundle or an unwritable output directory is refused first.
fn staging(a: &ThingCreateArgs, dir: &std::path::Path) -> Result<tempfile::TempDir> {
    let out = &a.output;
    not_there(dir)?;
    std::fs::create_dir_all(out)
        .with_context(|| format!("{}: cannot create the output directory", out.display()))?;
    tempfile::Builder::new()
        .prefix(&format!(".{}.", a.name))
        .tempdir_in(out)
        .with_context(|| format!("{}: cannot write the bundle there", out.display()))
}

/// Writes the bundle's files into `tmp` ([`staging`]) and renames it to `dir`.
fn fill_bundle(
    tmp: &tempfile::TempDir,
    a: &ThingCreateArgs,
    ep: &crate::settings::Endpoint,
    signer: Option<&str>,
    anchor: Option<&Anchor>,
    dir: &std::path::Path,
    b: &ferrota_server::admin::ThingBundle,
) -> Result<()> {
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
    let mut device = ferrota_device::config::DeviceConfig::for_thing(&a.name, &ep.host, ep.port);
    debug_assert_eq!(
        device.code_signing_cert,
        std::path::Path::new(CODE_SIGNING_FILE)
    );
    if let Some(an) = anchor {
        write_file(&tmp.path().join(&an.file), &an.bytes, false)?;
        device.trust = ferrota_device::config::TrustSection::require(&an.file);
    }
    w("device.toml", &device.to_toml(), false)?;
    if let Some(pem) = signer {
        w(CODE_SIGNING_FILE, pem, false)?;
    }
    not_there(dir)?;
    std::fs::rename(tmp.path(), dir)
        .with_context(|| format!("{}: cannot move the bundle into place", dir.display()))?;
    Ok(())
}

/// The MQTT endpoint a server wrote into a bundle (`AWS_IOT_ENDPOINT` and `AWS_MQTT_PORT` of
/// its `credentials_config.h`, [`ferrota_server::admin::credentials_h`]), for the bundle's
/// `device.toml`: a remote server knows where its devices connect, the CLI does not.
fn bundle_endpoint(
    b: &ferrota_api::ThingBundle,
    server: &str,
) -> Result<crate::settings::Endpoint> {
    let define = |name: &str| {
        b.credentials_config_h.lines().find_map(|l| {
            l.strip_prefix("#define ")?
                .strip_prefix(name)?
                .strip_prefix(' ')
                .map(str::trim)
        })
    };
    let host = define("AWS_IOT_ENDPOINT").map(|h| h.trim_matches('"').to_string());
    let port = define("AWS_MQTT_PORT").and_then(|p| p.parse::<u16>().ok());
    match (host, port) {
        (Some(host), Some(port)) if !host.is_empty() => Ok(crate::settings::Endpoint {
            host,
            port,
            from: format!("the server's bundle ({server})"),
            warning: None,
        }),
        _ => bail!(
            "the server's bundle for {} names no MQTT endpoint (AWS_IOT_ENDPOINT, AWS_MQTT_PORT \
             in credentials_config.h)",
            b.thing_name
        ),
    }
}

/// `thing create` through a server's API: the output directory is checked and a staging
/// directory made first, then the server creates the thing (AWS CreateThing) and answers the
/// bundle, which is written and renamed into place. The private key exists only in that
/// answer: if the bundle cannot be written after all, the thing's certificate is revoked at
/// once (no ACTIVE certificate whose key is lost) and the error says so.
fn create_remote(a: &ThingCreateArgs) -> Result<()> {
    if a.mqtt_port.is_some() {
        bail!(
            "--mqtt-port: a remote server writes its own MQTT endpoint into the bundle (its \
             config's endpoint and mqtt_listen); --mqtt-port applies to a data directory's \
             `thing create`"
        );
    }
    let signer = a
        .code_signing_cert
        .as_deref()
        .map(code_signing_pem)
        .transpose()?;
    let anchor = a.trust_root.as_deref().map(trust_anchor).transpose()?;
    let api = Api::new(&a.api)?;
    let dir = a.output.join(&a.name);
    let tmp = staging(a, &dir)?;
    let attributes: std::collections::BTreeMap<String, String> =
        a.attributes.iter().cloned().collect();
    let req = ferrota_api::CreateThing {
        thing_name: a.name.clone(),
        groups: a.groups.clone(),
        attribute_payload: (!attributes.is_empty()).then_some(ferrota_api::AttributePayload {
            attributes,
            merge: None,
        }),
    };
    let b = api.run(|c| c.create_thing(&req))?;
    let written = bundle_endpoint(&b, api.base_url()).and_then(|ep| {
        fill_bundle(&tmp, a, &ep, signer.as_deref(), anchor.as_ref(), &dir, &b).map(|()| ep)
    });
    let ep = match written {
        Ok(ep) => ep,
        Err(e) => {
            let undo = match api.run(|c| c.revoke_thing(&a.name)) {
                Ok(_) => "its certificate was revoked (create the thing again under another name, \
                          or revoke and recreate it)"
                    .to_string(),
                Err(r) => format!(
                    "revoking its certificate failed too: {r:#}; revoke it with \
                                   `ferrota thing revoke {}`",
                    a.name
                ),
            };
            bail!(
                "{e:#}; thing {} was created on {} but its bundle (with the only copy of its \
                 key) could not be written: {undo}",
                a.name,
                api.base_url()
            );
        }
    };
    println!("{}", dir.display());
    eprintln!(
        "thing {} created on {} (certificate {}); bundle in {}; MQTT endpoint {}:{} ({})",
        a.name,
        api.base_url(),
        b.certificate_id,
        dir.display(),
        ep.host,
        ep.port,
        ep.from
    );
    trust_note(anchor.as_ref());
    if signer.is_none() {
        eprintln!(
            "note: no --code-signing-cert: put the code-signing certificate into the bundle as \
             {CODE_SIGNING_FILE} before `ferrota device run`"
        );
    }
    Ok(())
}
