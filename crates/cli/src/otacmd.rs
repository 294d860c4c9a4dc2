//! `ferrota ota create|list|describe|cancel` through the HTTP API of a running server.

use anyhow::{Context, Result, anyhow, bail};
use ferrota_api::{Client, FIRMWARE_FILE_TYPE, OtaFile, PageRequest};
use serde_json::Value;

use crate::servecmd::config;
use crate::serverargs::{ApiArgs, OtaCommand, OtaIdArgs};
use ferrota_server::config::Config;

/// A client of the running server's HTTP API with the CLI's error messages (also used by
/// `thing list --query` and `group`).
pub(crate) struct Api {
    client: Client,
    /// Where the base URL came from, for the message of a wrong address.
    base_from: String,
    /// Where the token came from, for the message of a 401.
    token_from: String,
    /// Which CA an https:// server's certificate is checked against, for the message of an
    /// untrusted one.
    trusted: String,
}

/// The largest operator token file read.
const TOKEN_FILE_MAX: u64 = 4096;

impl Api {
    pub(crate) fn new(a: &ApiArgs) -> Result<Api> {
        let cfg = config(&a.data)?;
        let (base, base_from) = crate::settings::api_base(a, &cfg)?;
        let (token, token_from) = match &a.token {
            Some(t) => (
                t.clone(),
                crate::settings::flag_or_env("--token", "FERROTA_TOKEN", t),
            ),
            None => {
                let p = cfg.token_path();
                let bytes = crate::fsio::read(&p, TOKEN_FILE_MAX).with_context(|| {
                    format!(
                        "{}: operator token (pass --token or --data-dir)",
                        p.display()
                    )
                })?;
                let t = String::from_utf8(bytes)
                    .map_err(|_| anyhow!("{}: operator token is not text", p.display()))?;
                (t.trim().to_string(), p.display().to_string())
            }
        };
        let (client, trusted) = client(a, &cfg, base, token)?;
        Ok(Api {
            client,
            base_from,
            token_from,
            trusted,
        })
    }

    /// A failed call in words: no answer (with the likely mistakes), a 401 (naming where the
    /// token came from), or the server's message with its status.
    fn error(&self, e: ferrota_api::Error) -> anyhow::Error {
        let base = self.client.base_url();
        match e {
            e @ ferrota_api::Error::Transport { .. } if e.untrusted_certificate().is_some() => {
                let reason = e.untrusted_certificate().unwrap_or_default();
                crate::settings::untrusted(base, &self.base_from, &reason, &self.trusted)
            }
            ferrota_api::Error::Transport { source, .. } => {
                crate::settings::unreachable(base, &self.base_from, &source)
            }
            ferrota_api::Error::Api { url, error } if error.status == 401 => anyhow!(
                "{url}: 401 unauthorized: wrong or revoked operator token (from {})",
                self.token_from
            ),
            ferrota_api::Error::Api { url, error } => {
                anyhow!("{url}: {}: {}", status_text(error.status), error.message)
            }
            e => anyhow!(e),
        }
    }

    /// Before a file is sent: one cheap authenticated request (`GET /api/limits`), so a wrong
    /// address, a wrong token or a file over the server's limit is reported as such at once,
    /// instead of the "Broken pipe" of a body nobody (or the wrong server) is reading. Every
    /// Ferrota server has the route, so anything but its JSON answer (a 404, an MQTT/TLS
    /// port, another HTTP service) means the address is not a Ferrota API.
    fn preflight(&self, len: usize) -> Result<()> {
        let not_ferrota = |what: String| {
            crate::settings::not_ferrota(self.client.base_url(), &self.base_from, &what)
        };
        let max = match self.client.limits() {
            Ok(l) => l.max_file_bytes,
            Err(ferrota_api::Error::Api { error, .. }) if error.status != 401 => {
                return Err(not_ferrota(format!(
                    "GET /api/limits answered {}",
                    status_text(error.status)
                )));
            }
            Err(ferrota_api::Error::Decode { start, .. }) => {
                return Err(not_ferrota(format!("GET /api/limits answered {start:?}")));
            }
            Err(e) => return Err(self.error(e)),
        };
        if len as u64 > max {
            bail!("file is {len} bytes; the server accepts at most {max}");
        }
        Ok(())
    }

    /// The API's base URL, for messages.
    pub(crate) fn base_url(&self) -> &str {
        self.client.base_url()
    }

    /// Runs a call, its error in words ([`Api::error`]).
    pub(crate) fn run<T>(
        &self,
        f: impl FnOnce(&Client) -> Result<T, ferrota_api::Error>,
    ) -> Result<T> {
        f(&self.client).map_err(|e| self.error(e))
    }
}

/// The largest CA file read.
const CA_FILE_MAX: u64 = 1024 * 1024;

/// The API client and, in words, what it trusts for an `https://` server: `--ca`/`FERROTA_CA`;
/// else, for an `https://` URL, the fleet CA of the data directory when it has one (a server
/// with `--http-tls` on this machine, or a copy of its data directory's `ca/`); else the
/// platform's trusted roots (a certificate from a public CA). A plain `http://` URL ignores
/// them all.
fn client(a: &ApiArgs, cfg: &Config, base: String, token: String) -> Result<(Client, String)> {
    let fleet_ca = ferrota_server::ca::Ca::cert_path(&cfg.ca_dir());
    let file = match &a.ca {
        Some(p) => Some((
            p.clone(),
            crate::settings::flag_or_env("--ca", "FERROTA_CA", &p.display().to_string()),
        )),
        None if base.starts_with("https://") && fleet_ca.is_file() => Some((
            fleet_ca.clone(),
            format!("the fleet CA of {}", cfg.data_dir.display()),
        )),
        None => None,
    };
    let Some((path, from)) = file else {
        return Ok((
            Client::new(base, token),
            "the system's trusted roots".into(),
        ));
    };
    let pem = crate::fsio::read(&path, CA_FILE_MAX)
        .with_context(|| format!("{}: CA certificate ({from})", path.display()))?;
    let client = Client::with_ca_pem(base, token, &pem)
        .map_err(|e| anyhow!("{}: {e} (the CA certificate of {from})", path.display()))?;
    Ok((client, format!("{} ({from})", path.display())))
}

/// `404 Not Found`: a status as the CLI has always printed it.
fn status_text(status: u16) -> String {
    match ureq::http::StatusCode::from_u16(status) {
        Ok(s) => s.to_string(),
        Err(_) => status.to_string(),
    }
}

/// An answer as the JSON the CLI prints (keys sorted, as `serde_json::Value` keeps them).
fn json_of<T: serde::Serialize>(v: &T) -> Result<Value> {
    Ok(serde_json::to_value(v)?)
}

/// Runs an `ota` command.
/// `ota describe`: one page when `--max-results`/`--next-token` are given, else every page
/// followed and the executions printed as one list (each response stays small; the whole
/// list is what the operator asked for). `--history THING`: that execution's history.
fn describe(a: &OtaIdArgs) -> Result<Value> {
    let api = Api::new(&a.api)?;
    let id = &a.id;
    if let Some(t) = &a.history {
        return json_of(&api.run(|c| c.execution_history(id, t))?);
    }
    let page = |token: Option<&str>, max: Option<u32>| {
        let p = PageRequest {
            max_results: max.map(|m| m as usize),
            next_token: token.map(str::to_string),
        };
        api.run(|c| c.describe_ota_update(id, &p))
    };
    if a.max_results.is_some() || a.next_token.is_some() {
        return json_of(&page(a.next_token.as_deref(), a.max_results)?);
    }
    let mut first = page(None, None)?;
    let mut token = first.next_token.take();
    while let Some(t) = token {
        let mut next = page(Some(&t), None)?;
        first.executions.append(&mut next.executions);
        token = next.next_token;
    }
    json_of(&first)
}

pub fn run(c: OtaCommand) -> Result<()> {
    let v = match c {
        OtaCommand::Create(a) => {
            // Checked before anything is read or uploaded: a refused create leaves nothing.
            // The request (--cli-input-json, the command line, the rollout settings) is read
            // and checked in full first.
            let mut req = crate::rolloutcmd::build_request(&crate::rolloutcmd::CreateParts {
                cli_input: a.cli_input_json.as_deref(),
                id: a.id.as_deref(),
                things: &a.things,
                groups: &a.groups,
                description: a.description.as_deref(),
                in_progress_timeout: a.in_progress_timeout,
                file_given: a.file.is_some(),
                rollout: &a.rollout,
            })?;
            let api = Api::new(&a.api)?;
            if let Some(path) = &a.file {
                // The manifest is read and checked before the image is uploaded.
                let manifest = match &a.manifest {
                    Some(m) => Some(read_manifest(&a, m)?),
                    None => None,
                };
                req.files = vec![upload(&api, &a, path)?];
                if let Some((m, data, sig)) = manifest {
                    api.preflight(data.len())?;
                    let up = api
                        .run(|c| c.upload_file(&data))
                        .with_context(|| format!("{}: uploading the manifest", m.display()))?;
                    req.files.push(
                        OtaFile::new(manifest_path(&a.file_name), up.sha256, &sig)
                            .file_type(Some(ferrota_manifest::MANIFEST_FILE_TYPE))
                            .certificate_name(&a.cert_name),
                    );
                }
            }
            json_of(&api.run(|c| c.create_ota_update(&req))?)?
        }
        OtaCommand::List(a) => json_of(&Api::new(&a)?.run(Client::list_ota_updates)?)?,
        OtaCommand::Describe(a) => describe(&a)?,
        OtaCommand::Cancel(a) => {
            json_of(&Api::new(&a.api)?.run(|c| c.cancel_ota_update(&a.id, a.force))?)?
        }
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// The device path of the manifest: `<file_name>.suit`.
fn manifest_path(file_name: &str) -> String {
    format!("{file_name}.suit")
}

/// `--manifest`: the file (at most one stream block, the strict SUIT envelope a device
/// parses) and its OTA signature (`--manifest-signature`, default `<manifest>.sig`). Checked
/// before anything is uploaded; the signatures and the digest against --file are the server's
/// check (with `serve --trust-dir`) and the device's.
fn read_manifest(
    a: &crate::serverargs::OtaCreateArgs,
    path: &std::path::Path,
) -> Result<(std::path::PathBuf, Vec<u8>, String)> {
    let data = crate::fsio::read(path, 64 * 1024)?;
    let max = ferrota_server::admin::METADATA_FILE_MAX;
    if data.len() as u64 > max {
        bail!(
            "{}: {} bytes; a manifest must fit one stream block ({max} bytes): sign it with \
             fewer root documents",
            path.display(),
            data.len()
        );
    }
    ferrota_manifest::parse_bundle(&data).map_err(|e| {
        anyhow!(
            "{}: not a Ferrota manifest (SUIT envelope from `ferrota release sign`): {e}",
            path.display()
        )
    })?;
    let sig_path = a.manifest_signature.clone().unwrap_or_else(|| {
        let mut p = path.to_path_buf().into_os_string();
        p.push(".sig");
        p.into()
    });
    let sig = std::fs::read_to_string(&sig_path).with_context(|| {
        format!(
            "{}: the manifest's OTA signature (base64; `ferrota release sign` writes it)",
            sig_path.display()
        )
    })?;
    let sig = sig.trim().to_string();
    if let Err(e) = ferrota_image::ota::OtaSignature::from_base64(&sig) {
        bail!(
            "{}: {e} (expected base64 of a DER ECDSA P-256 signature)",
            sig_path.display()
        );
    }
    Ok((path.to_path_buf(), data, sig))
}

/// `ota create --file`: checks the file and its signature, uploads it, and returns the
/// request's file entry.
fn upload(
    api: &Api,
    a: &crate::serverargs::OtaCreateArgs,
    path: &std::path::Path,
) -> Result<OtaFile> {
    let data = crate::fsio::read(path, crate::fsio::OTA_LIMIT)?;
    let sig_path = a.signature.clone().unwrap_or_else(|| {
        let mut p = path.to_path_buf().into_os_string();
        p.push(".sig");
        p.into()
    });
    let sig = std::fs::read_to_string(&sig_path)
        .with_context(|| format!("{}: OTA signature (base64)", sig_path.display()))?;
    let sig = sig.trim();
    if sig.is_empty() || sig.len() > 512 {
        bail!(
            "{}: not an OTA signature (base64 DER, ≤ 512 characters)",
            sig_path.display()
        );
    }
    check_before_upload(path, &data, a.file_type.0, &sig_path, sig)?;
    let cert = match &a.code_signing_cert {
        Some(p) => Some(check_signature_with_cert(path, &data, &sig_path, sig, p)?),
        None => None,
    };
    let bases = delta_bases(a, path, &data)?;
    api.preflight(data.len())?;
    let up = api.run(|c| c.upload_file(&data))?;
    // `--file-type none`: no fileType, as AWS writes the job document without one.
    let mut file = OtaFile::new(&a.file_name, up.sha256, sig)
        .file_type(a.file_type.0)
        .certificate_name(&a.cert_name);
    for (old, data) in &bases {
        api.preflight(data.len())?;
        let up = api
            .run(|c| c.upload_file(data))
            .with_context(|| format!("{}: uploading the delta base", old.display()))?;
        file = file.delta_from(up.sha256);
    }
    if let Some(pem) = cert {
        file = file.certificate(pem);
    }
    Ok(file)
}

/// `--delta-from`: each base read and checked before anything is uploaded (a Ferrota bank
/// image, not the new file, named once, at most [`ferrota_api::DELTA_BASES_MAX`]; the new file
/// must be firmware). The server checks the same again.
fn delta_bases(
    a: &crate::serverargs::OtaCreateArgs,
    file: &std::path::Path,
    new: &[u8],
) -> Result<Vec<(std::path::PathBuf, Vec<u8>)>> {
    if a.delta_from.is_empty() {
        return Ok(Vec::new());
    }
    if a.file_type.0 != Some(FIRMWARE_FILE_TYPE) {
        bail!(
            "--delta-from: deltas are made for firmware (--file-type {FIRMWARE_FILE_TYPE}, a \
             Ferrota bank image) only"
        );
    }
    if a.delta_from.len() > ferrota_api::DELTA_BASES_MAX {
        bail!(
            "--delta-from: {} bases; at most {} (each is a delta the server makes and streams)",
            a.delta_from.len(),
            ferrota_api::DELTA_BASES_MAX
        );
    }
    let mut out: Vec<(std::path::PathBuf, Vec<u8>)> = Vec::new();
    for old in &a.delta_from {
        let data = crate::fsio::read(old, crate::fsio::OTA_LIMIT)
            .with_context(|| format!("{}: delta base (--delta-from)", old.display()))?;
        if let Some((what, e)) = ferrota_image::inspect::inspect(&data).not_a_bank_image() {
            bail!(
                "{}: --delta-from takes earlier Ferrota bank images, and this is not one \
                 ({what}: {e}); see `ferrota image show`",
                old.display()
            );
        }
        if data == new {
            bail!(
                "{}: --delta-from is the same image as {}; name the images devices run now",
                old.display(),
                file.display()
            );
        }
        if let Some((first, _)) = out.iter().find(|(_, d)| *d == data) {
            bail!(
                "{}: --delta-from names the same image as {}",
                old.display(),
                first.display()
            );
        }
        out.push((old.clone(), data));
    }
    Ok(out)
}

/// Refuses, before anything is uploaded, what every device would reject: a signature that is
/// not base64 of a DER ECDSA P-256 signature, and a firmware file that is not a bank image
/// (CM0+ region header and version record, as `ferrota image show` reads them). The server
/// checks the same again; checking here first means a bad input never leaves an upload behind.
fn check_before_upload(
    file: &std::path::Path,
    data: &[u8],
    file_type: Option<u8>,
    sig_path: &std::path::Path,
    sig: &str,
) -> Result<()> {
    if let Err(e) = ferrota_image::ota::OtaSignature::from_base64(sig) {
        bail!(
            "{}: {e} (expected base64 of a DER ECDSA P-256 signature, as `ferrota image sign-ota` writes)",
            sig_path.display()
        );
    }
    if file_type == Some(FIRMWARE_FILE_TYPE) {
        let s = ferrota_image::inspect::inspect(data);
        let why = s.not_a_bank_image().map(|(what, e)| format!("{what}: {e}"));
        if let Some(why) = why {
            bail!(
                "{}: fileType {FIRMWARE_FILE_TYPE} is firmware, but this is not a Ferrota bank \
                 image ({why}); see `ferrota image show`, or pass --file-type for other files",
                file.display()
            );
        }
    }
    Ok(())
}

/// `--code-signing-cert`: the signature must verify over the file with the certificate's
/// public key, as every device holding that certificate will check it after downloading the
/// whole file. Checked before the upload, so a mismatch (a file signed with the boot key, the
/// signature of another file, a certificate of another key) costs nothing on the server.
/// Returns the certificate as text (PEM, or base64 of DER) for `certificateChain.inlineDocument`,
/// which the server checks again.
fn check_signature_with_cert(
    file: &std::path::Path,
    data: &[u8],
    sig_path: &std::path::Path,
    sig: &str,
    cert_path: &std::path::Path,
) -> Result<String> {
    let cert = crate::fsio::read(cert_path, ferrota_keys::MAX_KEY_FILE)?;
    let key = ferrota_server::admin::code_signing_key(&cert)
        .map_err(|e| anyhow!("{}: {e}", cert_path.display()))?;
    let signature = ferrota_image::ota::OtaSignature::from_base64(sig)
        .map_err(|e| anyhow!("{}: {e}", sig_path.display()))?;
    if signature.verify_file(&key, data).is_err() {
        bail!(
            "{}: the OTA signature does not verify over {} with the key of the code-signing \
             certificate {} (was the file signed with another key, e.g. the boot key, or is this \
             the signature of another file?); every device holding this certificate would reject \
             it. Sign with the certificate's key: `ferrota image sign-ota {} --key <code-signing key>`",
            sig_path.display(),
            file.display(),
            cert_path.display(),
            file.display()
        );
    }
    Ok(match String::from_utf8(cert) {
        Ok(pem) if pem.contains("-----BEGIN") => pem,
        Ok(other) => base64_of(other.as_bytes()),
        Err(e) => base64_of(e.as_bytes()),
    })
}

fn base64_of(der: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(der)
}
