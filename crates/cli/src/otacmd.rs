//! `ferrota ota create|list|describe|cancel` through the HTTP API of a running server.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::servecmd::config;
use crate::serverargs::{ApiArgs, OtaCommand, OtaIdArgs};

struct Api {
    base: String,
    /// Where the base URL came from, for the message of a wrong address.
    base_from: String,
    token: String,
    /// Where the token came from, for the message of a 401.
    token_from: String,
}

/// The largest operator token file read.
const TOKEN_FILE_MAX: u64 = 4096;

impl Api {
    fn new(a: &ApiArgs) -> Result<Api> {
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
        Ok(Api {
            base,
            base_from,
            token,
            token_from,
        })
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into()
    }

    /// Before a file is sent: one cheap authenticated request (`GET /api/limits`), so a wrong
    /// address, a wrong token or a file over the server's limit is reported as such at once,
    /// instead of the "Broken pipe" of a body nobody (or the wrong server) is reading. Every
    /// Ferrota server has the route, so anything but its JSON answer (a 404, an MQTT/TLS
    /// port, another HTTP service) means the address is not a Ferrota API.
    fn preflight(&self, len: usize) -> Result<()> {
        let url = format!("{}/api/limits", self.base);
        let mut r = Self::agent()
            .get(&url)
            .header("authorization", &format!("Bearer {}", self.token))
            .call()
            .map_err(|e| crate::settings::unreachable(&self.base, &self.base_from, &e))?;
        let status = r.status();
        if status == ureq::http::StatusCode::UNAUTHORIZED {
            bail!(
                "{url}: 401 unauthorized: wrong operator token (from {})",
                self.token_from
            );
        }
        let not_ferrota =
            |what: String| crate::settings::not_ferrota(&self.base, &self.base_from, &what);
        if !status.is_success() {
            return Err(not_ferrota(format!("GET /api/limits answered {status}")));
        }
        let body = r
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .map_err(|e| anyhow!("{url}: {e}"))?;
        let max = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["maxFileBytes"].as_u64())
            .ok_or_else(|| {
                let start: String = body.chars().take(80).collect();
                not_ferrota(format!("GET /api/limits answered {start:?}"))
            })?;
        if len as u64 > max {
            bail!("file is {len} bytes; the server accepts at most {max}");
        }
        Ok(())
    }

    fn call(&self, method: &str, path: &str, body: Option<Vec<u8>>, json: bool) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        if let (Some(b), false) = (&body, json) {
            self.preflight(b.len())?;
        }
        let agent = Self::agent();
        let r = match (method, body) {
            ("GET", _) => agent.get(&url).header("authorization", &auth).call(),
            (_, Some(b)) => agent
                .post(&url)
                .header("authorization", &auth)
                .header(
                    "content-type",
                    if json {
                        "application/json"
                    } else {
                        "application/octet-stream"
                    },
                )
                .send(&b[..]),
            (_, None) => agent.post(&url).header("authorization", &auth).send_empty(),
        };
        let mut r = r.map_err(|e| crate::settings::unreachable(&self.base, &self.base_from, &e))?;
        let status = r.status();
        if status == ureq::http::StatusCode::UNAUTHORIZED {
            bail!(
                "{url}: 401 unauthorized: wrong operator token (from {})",
                self.token_from
            );
        }
        let text = r
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| anyhow!("{url}: {e}"))?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            // AWS's error JSON (`{"code","message"}`); `error` is what servers before
            // issue 14 sent.
            let msg = v
                .get("message")
                .or_else(|| v.get("error"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            bail!("{url}: {status}: {msg}");
        }
        Ok(v)
    }
}

/// Runs an `ota` command.
/// `ota describe`: one page when `--max-results`/`--next-token` are given, else every page
/// followed and the executions printed as one list (each response stays small; the whole
/// list is what the operator asked for). `--history THING`: that execution's history.
fn describe(a: &OtaIdArgs) -> Result<Value> {
    let api = Api::new(&a.api)?;
    let id = urlencoding(&a.id);
    if let Some(t) = &a.history {
        let path = format!("/api/ota-updates/{id}/things/{}/history", urlencoding(t));
        return api.call("GET", &path, None, true);
    }
    let page = |token: Option<&str>, max: Option<u32>| {
        let mut q = Vec::new();
        if let Some(m) = max {
            q.push(format!("maxResults={m}"));
        }
        if let Some(t) = token {
            q.push(format!("nextToken={}", urlencoding(t)));
        }
        let q = if q.is_empty() {
            String::new()
        } else {
            format!("?{}", q.join("&"))
        };
        api.call("GET", &format!("/api/ota-updates/{id}{q}"), None, true)
    };
    if a.max_results.is_some() || a.next_token.is_some() {
        return page(a.next_token.as_deref(), a.max_results);
    }
    let mut first = page(None, None)?;
    let mut token = first
        .get("nextToken")
        .and_then(Value::as_str)
        .map(str::to_string);
    while let Some(t) = token {
        let mut next = page(Some(&t), None)?;
        let more = match next.get_mut("executions").map(Value::take) {
            Some(Value::Array(v)) => v,
            _ => bail!("/api/ota-updates/{id}: a page without executions"),
        };
        if let Some(Value::Array(all)) = first.get_mut("executions") {
            all.extend(more);
        }
        token = next
            .get("nextToken")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    if let Some(o) = first.as_object_mut() {
        o.remove("nextToken");
    }
    Ok(first)
}

/// Percent-encodes a path segment or query value (ids and tokens are `[a-zA-Z0-9_:-]` in
/// practice; anything else is escaped rather than trusted).
fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub fn run(c: OtaCommand) -> Result<()> {
    let v = match c {
        OtaCommand::Create(a) => {
            let api = Api::new(&a.api)?;
            let data = crate::fsio::read(&a.file, crate::fsio::OTA_LIMIT)?;
            let sig_path = a.signature.clone().unwrap_or_else(|| {
                let mut p = a.file.clone().into_os_string();
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
            check_before_upload(&a.file, &data, a.file_type.0, &sig_path, sig)?;
            let cert = match &a.code_signing_cert {
                Some(p) => Some(check_signature_with_cert(
                    &a.file, &data, &sig_path, sig, p,
                )?),
                None => None,
            };
            let up = api.call("POST", "/api/files", Some(data), false)?;
            let sha = up["sha256"]
                .as_str()
                .ok_or_else(|| anyhow!("upload: no sha256"))?;
            let mut targets: Vec<String> = a.things.iter().map(|t| format!("thing/{t}")).collect();
            targets.extend(a.groups.iter().map(|g| format!("thinggroup/{g}")));
            if targets.is_empty() {
                bail!("give at least one --thing or --group");
            }
            let mut chain = json!({"certificateName": a.cert_name});
            if let Some(pem) = cert {
                chain["inlineDocument"] = json!(pem);
            }
            let mut file = json!({
                "fileName": a.file_name,
                "fileLocation": {"sha256": sha},
                "codeSigning": {"customCodeSigning": {
                    "signature": {"inlineDocument": sig},
                    "certificateChain": chain,
                    "hashAlgorithm": "SHA256",
                    "signatureAlgorithm": "ECDSA"
                }}
            });
            // `--file-type none`: no fileType, as AWS writes the job document without one.
            if let Some(t) = a.file_type.0 {
                file["fileType"] = json!(t);
            }
            let mut req = json!({
                "otaUpdateId": a.id,
                "description": a.description,
                "targets": targets,
                "files": [file]
            });
            if let Some(m) = a.in_progress_timeout {
                req["awsJobTimeoutConfig"] = json!({"inProgressTimeoutInMinutes": m});
            }
            api.call(
                "POST",
                "/api/ota-updates",
                Some(serde_json::to_vec(&req)?),
                true,
            )?
        }
        OtaCommand::List(a) => Api::new(&a)?.call("GET", "/api/ota-updates", None, true)?,
        OtaCommand::Describe(a) => describe(&a)?,
        OtaCommand::Cancel(a) => Api::new(&a.api)?.call(
            "POST",
            &format!("/api/ota-updates/{}/cancel?force={}", a.id, a.force),
            None,
            true,
        )?,
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// `fileType` of T2G firmware: such a file must be a Ferrota bank image.
const FIRMWARE_FILE_TYPE: u8 = 141;

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
        let why = match (s.regions.first().map(|r| &r.header_check), &s.record) {
            (Some(Err(e)), _) => Some(format!("CM0+ region: {e}")),
            (_, Err(e)) => Some(format!("version record: {e}")),
            _ => None,
        };
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
