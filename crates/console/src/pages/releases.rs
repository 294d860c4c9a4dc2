//! `/ui/releases`: upload a signed image. Before anything is uploaded the console reads the
//! image as `ferrota image show` does (a firmware file must be a bank image: CM0+ region
//! header and version record), and checks the OTA signature over the file with the public key
//! of the code-signing certificate the devices hold, as `ferrota ota create
//! --code-signing-cert` does; the certificate then goes with the release, so the server
//! checks the signature again when a rollout is created. A release is not stored apart from
//! its file: the page answers with the image's report and the rollout form for it, and the
//! releases of earlier OTA updates can be picked again on the rollouts page.

use askama::Template;
use axum::extract::{Multipart, State};
use axum::http::Method;
use axum::response::Response;
use ferrota_api::{FIRMWARE_FILE_TYPE, Limits, OtaFile, OtaSummary, UploadedFile};
use ferrota_image::inspect;
use ferrota_image::ota::OtaSignature;

use crate::call::Caller;
use crate::session::Operator;
use crate::view::{self, Problem};

/// A release offered for a rollout: its file entry (as JSON, the form's value) and a label.
pub struct Choice {
    /// The OTA file entry, JSON.
    pub json: String,
    /// What the operator sees.
    pub label: String,
}

/// The releases of earlier OTA updates (newest first, one per file content).
pub async fn earlier(api: &Caller, token: &str) -> Result<Vec<Choice>, Problem> {
    let mut list: Vec<OtaSummary> = api.get(token, "/api/ota-updates").await?;
    list.sort_by_key(|o| std::cmp::Reverse(o.created_at));
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for o in list {
        let files = o.request.get("files").cloned().unwrap_or_default();
        let Ok(files) = serde_json::from_value::<Vec<OtaFile>>(files) else {
            continue;
        };
        for f in files {
            if !seen.insert(f.file_location.sha256.clone()) {
                continue;
            }
            let label = format!(
                "{} from {} ({}…, {})",
                f.file_name,
                o.ota_update_id,
                &f.file_location.sha256[..f.file_location.sha256.len().min(12)],
                view::when(o.created_at)
            );
            if let Ok(json) = serde_json::to_string(&f) {
                out.push(Choice { json, label });
            }
        }
    }
    Ok(out)
}

#[derive(Template)]
#[template(path = "releases.html")]
struct ReleasesPage {
    title: &'static str,
    nav: &'static str,
    max_mib: u64,
    earlier: Vec<Choice>,
}

/// `GET /ui/releases`.
pub async fn page(State(api): State<Caller>, op: Operator) -> Result<Response, Problem> {
    let limits: Limits = api.get(&op.token, "/api/limits").await?;
    Ok(view::html(&ReleasesPage {
        title: "Releases",
        nav: "releases",
        max_mib: limits.max_file_bytes / (1024 * 1024),
        earlier: earlier(&api, &op.token).await?,
    }))
}

#[derive(Template)]
#[template(path = "release.html")]
struct ReleasePage {
    title: String,
    nav: &'static str,
    report: String,
    sha256: String,
    size: usize,
    version: String,
    file_json: String,
    file_label: String,
    earlier: Vec<Choice>,
}

/// What the upload form sent.
#[derive(Default)]
struct Upload {
    image: Vec<u8>,
    image_name: String,
    signature: String,
    certificate: Vec<u8>,
    file_name: String,
    cert_name: String,
    file_type: String,
}

async fn read_form(mut m: Multipart) -> Result<Upload, Problem> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        Problem::Invalid(format!("the upload did not arrive whole: {e}"))
    };
    let mut u = Upload::default();
    while let Some(field) = m.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "image" {
            u.image_name = field.file_name().unwrap_or("image.bin").to_string();
        }
        let bytes = field.bytes().await.map_err(bad)?.to_vec();
        let text = || String::from_utf8_lossy(&bytes).trim().to_string();
        match name.as_str() {
            "image" => u.image = bytes,
            "signature" | "signatureText" => {
                if !bytes.iter().all(u8::is_ascii_whitespace) {
                    u.signature = text();
                }
            }
            "certificate" => u.certificate = bytes,
            "fileName" => u.file_name = text(),
            "certName" => u.cert_name = text(),
            "fileType" => u.file_type = text(),
            other => {
                return Err(Problem::Invalid(format!(
                    "unknown form field {other:?}; nothing was uploaded"
                )));
            }
        }
    }
    Ok(u)
}

/// The certificate as `certificateChain.inlineDocument` carries it: PEM text as is, DER as
/// base64.
fn certificate_text(cert: &[u8]) -> String {
    use base64::Engine;
    match std::str::from_utf8(cert) {
        Ok(pem) if pem.contains("-----BEGIN") => pem.trim().to_string(),
        Ok(b64) => b64.trim().to_string(),
        Err(_) => base64::engine::general_purpose::STANDARD.encode(cert),
    }
}

/// What the checks learned of an image (read once: a bank is 4 MB, its regions hashed).
#[derive(Debug)]
struct Checked {
    file_type: Option<u8>,
    /// `ferrota image show`'s text.
    report: String,
    /// The version record's version, or `—`.
    version: String,
}

/// The checks made before an upload; the error says what is wrong and that nothing was
/// uploaded.
fn check(u: &Upload) -> Result<Checked, String> {
    let nothing = "nothing was uploaded";
    if u.image.is_empty() {
        return Err(format!("choose the image file; {nothing}"));
    }
    let file_type = match u.file_type.as_str() {
        "" => Some(FIRMWARE_FILE_TYPE),
        "none" => None,
        t => Some(
            t.parse::<u8>()
                .map_err(|_| format!("file type {t:?} is not 0-255 or none; {nothing}"))?,
        ),
    };
    let summary = inspect::inspect(&u.image);
    let report = inspect::report(&u.image_name, &summary);
    if file_type == Some(FIRMWARE_FILE_TYPE)
        && let Some((what, e)) = summary.not_a_bank_image()
    {
        return Err(format!(
            "{}: file type {FIRMWARE_FILE_TYPE} is firmware, but this is not a Ferrota bank \
             image ({what}: {e}); {nothing}. What the file holds:\n{report}",
            u.image_name
        ));
    }
    if u.signature.is_empty() {
        return Err(format!(
            "give the OTA signature (the .sig file `ferrota image sign-ota` writes); {nothing}"
        ));
    }
    let sig = OtaSignature::from_base64(&u.signature).map_err(|e| {
        format!("the signature is not base64 of a DER ECDSA P-256 signature ({e}); {nothing}")
    })?;
    if u.certificate.is_empty() {
        return Err(format!(
            "give the code-signing certificate the devices hold: the signature is checked \
             against it before the upload; {nothing}"
        ));
    }
    let key = ferrota_keys::material::code_signing_key(&u.certificate)
        .map_err(|e| format!("code-signing certificate: {e}; {nothing}"))?;
    if sig.verify_file(&key, &u.image).is_err() {
        return Err(format!(
            "the OTA signature does not verify over {} with the code-signing certificate's key \
             (signed with another key, e.g. the boot key, or the signature of another file?); \
             every device holding this certificate would reject it; {nothing}",
            u.image_name
        ));
    }
    let version = summary
        .record
        .map_or_else(|_| "—".to_string(), |r| r.version.to_string());
    Ok(Checked {
        file_type,
        report,
        version,
    })
}

/// `POST /ui/releases` (multipart): checks, uploads, and answers with the release's page.
pub async fn upload(
    State(api): State<Caller>,
    op: Operator,
    form: Multipart,
) -> Result<Response, Problem> {
    let mut u = read_form(form).await?;
    let Checked {
        file_type,
        report,
        version,
    } = check(&u).map_err(Problem::Invalid)?;
    let size = u.image.len();
    let up: UploadedFile = {
        let body = api
            .send(
                &op.token,
                Method::POST,
                "/api/files",
                std::mem::take(&mut u.image),
            )
            .await?;
        serde_json::from_slice(&body).map_err(|e| {
            Problem::Invalid(format!("the API's answer to the upload did not parse: {e}"))
        })?
    };
    let file_name = if u.file_name.is_empty() {
        u.image_name.clone()
    } else {
        u.file_name.clone()
    };
    let cert_name = if u.cert_name.is_empty() {
        "code-signer.crt".to_string()
    } else {
        u.cert_name.clone()
    };
    let file = OtaFile::new(&file_name, &up.sha256, &u.signature)
        .file_type(file_type)
        .certificate_name(&cert_name)
        .certificate(certificate_text(&u.certificate));
    Ok(view::html(&ReleasePage {
        title: format!("Release {file_name} {version}"),
        nav: "releases",
        report,
        sha256: up.sha256.clone(),
        size,
        file_json: serde_json::to_string(&file).unwrap_or_default(),
        file_label: format!(
            "{file_name} {version} ({}…)",
            &up.sha256[..up.sha256.len().min(12)]
        ),
        version,
        earlier: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_goes_as_pem_or_base64() {
        assert_eq!(
            certificate_text(b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"),
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----"
        );
        assert_eq!(certificate_text(&[0x30, 0x82, 0xff]), "MIL/");
    }

    #[test]
    fn an_upload_without_image_signature_or_certificate_is_refused_by_name() {
        let mut u = Upload::default();
        assert!(check(&u).unwrap_err().contains("choose the image"));
        u.image = vec![0xff; 64];
        u.image_name = "x.bin".into();
        let e = check(&u).unwrap_err();
        assert!(e.contains("not a Ferrota bank image"), "{e}");
        u.file_type = "none".into();
        assert!(check(&u).unwrap_err().contains("give the OTA signature"));
        u.signature = "not base64!".into();
        assert!(check(&u).unwrap_err().contains("not base64 of a DER"));
        u.file_type = "300".into();
        assert!(check(&u).unwrap_err().contains("not 0-255"));
    }
}
