//! [`Client`]: one blocking client of the HTTP API for every Rust caller (the CLI, the lab's
//! scenarios, the fleet bench, tests), so the paths, the token header and the reading of AWS's
//! error JSON are written once.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::jobconfig::{
    DescribeJobResponse, GetJobDocumentResponse, RolloutAction, RolloutDescription,
};
use crate::types::{
    ApiError, CreateOtaUpdate, CreateThing, HistoryDescription, Limits, OtaDescription, OtaSummary,
    PageRequest, Revoked, ThingBundle, ThingDescription, ThingSummary, UploadedFile,
};
use crate::types::{
    CreateThingGroup, Deleted, SearchIndex, SearchIndexAnswer, ThingGroupDescription, UpdateThing,
};

/// Largest answer read, bytes: a describe page is a few hundred KB at the status-details
/// limits, a thing list of a 10k fleet a few MB.
pub const ANSWER_MAX: u64 = 64 * 1024 * 1024;

/// Why a call failed. Each variant names the URL, so a message says which call it was.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No HTTP answer: nothing listens there, or it is not HTTP (an MQTT/TLS port answers a
    /// plain HTTP request with a TLS alert or by closing).
    #[error("{url}: {source}")]
    Transport {
        /// The request's URL.
        url: String,
        /// What ureq saw.
        #[source]
        source: ureq::Error,
    },
    /// The server answered with an error status (its AWS error JSON in `error`).
    #[error("{url}: {error}")]
    Api {
        /// The request's URL.
        url: String,
        /// Status, AWS code and message.
        error: ApiError,
    },
    /// A success status whose body is not the answer's JSON (not a Ferrota API, or another
    /// version of it).
    #[error("{url}: HTTP {status}: the answer is not the expected JSON ({reason}): {start:?}")]
    Decode {
        /// The request's URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Why it did not parse.
        reason: String,
        /// The start of the body (at most 80 characters).
        start: String,
    },
}

impl Error {
    /// Why the server's TLS certificate was refused (rustls's words: an unknown issuer, a
    /// name it is not valid for, expired), when that is what failed; `None` for any other
    /// error. Lets a caller say "pass the CA" instead of "nothing listens".
    pub fn untrusted_certificate(&self) -> Option<String> {
        let Error::Transport { source, .. } = self else {
            return None;
        };
        let tls = match source {
            ureq::Error::Rustls(e) => Some(e),
            ureq::Error::Io(io) => io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
            _ => None,
        }?;
        match tls {
            rustls::Error::InvalidCertificate(c) => Some(format!("{c:?}")),
            _ => None,
        }
    }

    /// The HTTP status of an error answer ([`Error::Api`]); `None` without one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { error, .. } => Some(error.status),
            Error::Decode { status, .. } => Some(*status),
            Error::Transport { .. } => None,
        }
    }
}

/// A blocking client of one server's HTTP API: its base URL (`http://127.0.0.1:8443`, no
/// trailing slash needed) and operator token (`<data>/api-token`, sent as
/// `Authorization: Bearer <token>`). Methods are the API's routes, typed both ways (the table
/// in `ferrota_server::api`); an error answer is parsed into an [`ApiError`].
///
/// Blocking on purpose: every caller is a command or a test that waits for the answer; an
/// async caller runs it with `tokio::task::spawn_blocking` (the client is `Clone + Send`).
#[derive(Clone)]
pub struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

impl Client {
    /// A client of the API at `base_url` with operator token `token`. Nothing is sent yet
    /// ([`Client::limits`] is the cheap authenticated call that checks both).
    ///
    /// An `https://` server's certificate is checked against the platform's trusted roots
    /// (a certificate from a public CA, or one the system trusts); for the fleet CA or
    /// another CA of one's own, [`Client::with_ca_pem`].
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Client {
        Self::build(
            base_url.into(),
            token.into(),
            ureq::tls::RootCerts::PlatformVerifier,
        )
    }

    /// A client that trusts, for an `https://` server, only the CA certificates in `ca_pem`
    /// (PEM; e.g. a Ferrota server's fleet CA, `<data>/ca/ca.crt.pem`). Refused when it
    /// holds no certificate or one that does not parse.
    pub fn with_ca_pem(
        base_url: impl Into<String>,
        token: impl Into<String>,
        ca_pem: &[u8],
    ) -> Result<Client, String> {
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(ca_pem) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
                Ok(_) => {}
                Err(e) => return Err(format!("not PEM: {e}")),
            }
        }
        if certs.is_empty() {
            return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into());
        }
        let mut roots = rustls::RootCertStore::empty();
        for c in &certs {
            roots
                .add(rustls::pki_types::CertificateDer::from(c.der()))
                .map_err(|e| format!("not a usable CA certificate: {e}"))?;
        }
        Ok(Self::build(
            base_url.into(),
            token.into(),
            ureq::tls::RootCerts::new_with_certs(&certs),
        ))
    }

    fn build(base: String, token: String, roots: ureq::tls::RootCerts) -> Client {
        let base = base.trim_end_matches('/').to_string();
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(roots)
            // ring, explicitly: no process default has to be installed by the caller.
            .unversioned_rustls_crypto_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .build();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls)
            .build()
            .into();
        Client { base, token, agent }
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET /api/limits`: the cheapest authenticated call. Every Ferrota server has the route,
    /// so a 404 or a body that is not its JSON means the address is not a Ferrota API.
    pub fn limits(&self) -> Result<Limits, Error> {
        self.get("/api/limits", &[])
    }

    /// `GET /api/things`.
    pub fn list_things(&self) -> Result<Vec<ThingSummary>, Error> {
        self.get("/api/things", &[])
    }

    /// `POST /api/things`: a thing with a new certificate; the answer carries its private key.
    pub fn create_thing(&self, req: &CreateThing) -> Result<ThingBundle, Error> {
        self.post_json("/api/things", req)
    }

    /// `GET /api/things/{name}`.
    pub fn describe_thing(&self, name: &str) -> Result<ThingDescription, Error> {
        self.get(&format!("/api/things/{}", segment(name)), &[])
    }

    /// `PATCH /api/things/{name}`: AWS `UpdateThing` (attributes); answers the thing.
    pub fn update_thing(&self, name: &str, req: &UpdateThing) -> Result<ThingDescription, Error> {
        self.send_json("PATCH", &format!("/api/things/{}", segment(name)), req)
    }

    /// `POST /api/indices/search`: AWS `SearchIndex` (one page).
    pub fn search_index(&self, req: &SearchIndex) -> Result<SearchIndexAnswer, Error> {
        self.post_json("/api/indices/search", req)
    }

    /// `POST /api/thing-groups`: AWS `CreateDynamicThingGroup`.
    pub fn create_thing_group(
        &self,
        req: &CreateThingGroup,
    ) -> Result<ThingGroupDescription, Error> {
        self.post_json("/api/thing-groups", req)
    }

    /// `GET /api/thing-groups`: static and dynamic groups (without members).
    pub fn list_thing_groups(&self) -> Result<Vec<ThingGroupDescription>, Error> {
        self.get("/api/thing-groups", &[])
    }

    /// `GET /api/thing-groups/{name}`: a group with its members now.
    pub fn describe_thing_group(&self, name: &str) -> Result<ThingGroupDescription, Error> {
        self.get(&format!("/api/thing-groups/{}", segment(name)), &[])
    }

    /// `DELETE /api/thing-groups/{name}`: deletes a dynamic group.
    pub fn delete_thing_group(&self, name: &str) -> Result<Deleted, Error> {
        let url = self.url(&format!("/api/thing-groups/{}", segment(name)));
        let r = self
            .agent
            .delete(&url)
            .header("authorization", &self.auth())
            .call();
        self.answer(url, r)
    }

    /// `POST /api/tokens`: a new operator token (admin); its secret is in the answer only.
    pub fn create_token(
        &self,
        req: &crate::access::CreateToken,
    ) -> Result<crate::access::CreatedToken, Error> {
        self.post_json("/api/tokens", req)
    }

    /// `GET /api/tokens`: every operator token, revoked ones too (admin).
    pub fn list_tokens(&self) -> Result<crate::access::TokenList, Error> {
        self.get("/api/tokens", &[])
    }

    /// `DELETE /api/tokens/{id}`: revokes a token (admin).
    pub fn revoke_token(&self, id: &str) -> Result<crate::access::TokenDescription, Error> {
        let url = self.url(&format!("/api/tokens/{}", segment(id)));
        let r = self
            .agent
            .delete(&url)
            .header("authorization", &self.auth())
            .call();
        self.answer(url, r)
    }

    /// `GET /api/audit`: one page of the audit log, oldest first (`next_token` from the
    /// previous page).
    pub fn audit_page(
        &self,
        next_token: Option<&str>,
        max_results: u32,
    ) -> Result<crate::access::AuditPage, Error> {
        let mut q = vec![("maxResults", max_results.to_string())];
        if let Some(t) = next_token {
            q.push(("nextToken", t.to_string()));
        }
        self.get("/api/audit", &q)
    }

    /// The whole audit log, page by page.
    pub fn audit_log(&self) -> Result<Vec<crate::access::AuditRecord>, Error> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self.audit_page(next.as_deref(), 1000)?;
            out.extend(page.records);
            match page.next_token {
                Some(t) => next = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// `POST /api/things/{name}/revoke`: revokes its certificates and disconnects it.
    pub fn revoke_thing(&self, name: &str) -> Result<Revoked, Error> {
        self.post_empty(&format!("/api/things/{}/revoke", segment(name)))
    }

    /// `POST /api/files`: stores `data` (content-addressed; the answer's `sha256` goes into a
    /// create request). Ask [`Client::limits`] first to report a file over the server's limit
    /// as such rather than as a connection closed mid-body.
    pub fn upload_file(&self, data: &[u8]) -> Result<UploadedFile, Error> {
        let url = self.url("/api/files");
        let r = self
            .agent
            .post(&url)
            .header("authorization", &self.auth())
            .header("content-type", "application/octet-stream")
            .send(data);
        self.answer(url, r)
    }

    /// `POST /api/ota-updates` (AWS `CreateOTAUpdate`): the update's description.
    pub fn create_ota_update(&self, req: &CreateOtaUpdate) -> Result<OtaDescription, Error> {
        self.post_json("/api/ota-updates", req)
    }

    /// `GET /api/ota-updates`.
    pub fn list_ota_updates(&self) -> Result<Vec<OtaSummary>, Error> {
        self.get("/api/ota-updates", &[])
    }

    /// `GET /api/ota-updates/{id}`: one page of its executions (AWS paging: `nextToken` in the
    /// answer while more follow).
    pub fn describe_ota_update(
        &self,
        id: &str,
        page: &PageRequest,
    ) -> Result<OtaDescription, Error> {
        let mut q: Vec<(&str, String)> = Vec::new();
        if let Some(m) = page.max_results {
            q.push(("maxResults", m.to_string()));
        }
        if let Some(t) = &page.next_token {
            q.push(("nextToken", t.clone()));
        }
        self.get(&format!("/api/ota-updates/{}", segment(id)), &q)
    }

    /// `GET /api/ota-updates/{id}/things/{thing}/history`: that execution's history (newest
    /// 50, oldest first).
    pub fn execution_history(
        &self,
        id: &str,
        thing: &str,
    ) -> Result<Vec<HistoryDescription>, Error> {
        self.get(
            &format!(
                "/api/ota-updates/{}/things/{}/history",
                segment(id),
                segment(thing)
            ),
            &[],
        )
    }

    /// `GET /api/jobs/{jobId}`: AWS DescribeJob.
    pub fn describe_job(&self, job_id: &str) -> Result<DescribeJobResponse, Error> {
        self.get(&format!("/api/jobs/{}", segment(job_id)), &[])
    }

    /// `GET /api/jobs/{jobId}/job-document`: AWS GetJobDocument (the whole stored document).
    pub fn job_document(&self, job_id: &str) -> Result<GetJobDocumentResponse, Error> {
        self.get(&format!("/api/jobs/{}/job-document", segment(job_id)), &[])
    }

    /// `GET /api/rollouts/{id}`: the rollout of OTA update `id`, wave by wave.
    pub fn describe_rollout(&self, id: &str) -> Result<RolloutDescription, Error> {
        self.get(&format!("/api/rollouts/{}", segment(id)), &[])
    }

    /// `POST /api/rollouts/{id}/{action}` with `action` one of `pause`, `resume`, `approve`
    /// (opens the next wave when it waits for approval) or `cancel` (cancels the job, as
    /// [`Client::cancel_ota_update`]; `force` as there).
    pub fn rollout_action(
        &self,
        id: &str,
        action: RolloutAction,
    ) -> Result<RolloutDescription, Error> {
        let url = self.url(&format!(
            "/api/rollouts/{}/{}",
            segment(id),
            action.as_str()
        ));
        let mut req = self.agent.post(&url);
        if let RolloutAction::Cancel { force: true } = action {
            req = req.query("force", "true");
        }
        let r = req.header("authorization", &self.auth()).send_empty();
        self.answer(url, r)
    }

    /// `POST /api/ota-updates/{id}/cancel?force=`: cancels the job (`force` also cancels
    /// executions IN_PROGRESS, as AWS CancelJob's `force`).
    pub fn cancel_ota_update(&self, id: &str, force: bool) -> Result<OtaDescription, Error> {
        let url = self.url(&format!("/api/ota-updates/{}/cancel", segment(id)));
        let r = self
            .agent
            .post(&url)
            .query("force", if force { "true" } else { "false" })
            .header("authorization", &self.auth())
            .send_empty();
        self.answer(url, r)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn auth(&self) -> String {
        format!("Bearer {}", self.token)
    }

    fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T, Error> {
        let url = self.url(path);
        let mut req = self.agent.get(&url);
        for (k, v) in query {
            req = req.query(*k, v);
        }
        let r = req.header("authorization", &self.auth()).call();
        self.answer(url, r)
    }

    fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        let url = self.url(path);
        // Serialising our own request types cannot fail (string keys, no non-finite floats).
        let body = serde_json::to_vec(body).unwrap_or_default();
        let r = self
            .agent
            .post(&url)
            .header("authorization", &self.auth())
            .header("content-type", "application/json")
            .send(&body[..]);
        self.answer(url, r)
    }

    /// A JSON body with another method than POST (`PATCH`).
    fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        let url = self.url(path);
        let body = serde_json::to_vec(body).unwrap_or_default();
        let builder = match method {
            "PATCH" => self.agent.patch(&url),
            "PUT" => self.agent.put(&url),
            _ => self.agent.post(&url),
        };
        let r = builder
            .header("authorization", &self.auth())
            .header("content-type", "application/json")
            .send(&body[..]);
        self.answer(url, r)
    }

    fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let url = self.url(path);
        let r = self
            .agent
            .post(&url)
            .header("authorization", &self.auth())
            .send_empty();
        self.answer(url, r)
    }

    /// Reads an answer: a success status is the answer's JSON, any other AWS's error JSON.
    fn answer<T: DeserializeOwned>(
        &self,
        url: String,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T, Error> {
        let mut r = match r {
            Ok(r) => r,
            Err(source) => return Err(Error::Transport { url, source }),
        };
        let status = r.status().as_u16();
        let body = match r.body_mut().with_config().limit(ANSWER_MAX).read_to_vec() {
            Ok(b) => b,
            Err(source) => return Err(Error::Transport { url, source }),
        };
        if !r.status().is_success() {
            return Err(Error::Api {
                url,
                error: api_error(status, &body),
            });
        }
        serde_json::from_slice(&body).map_err(|e| Error::Decode {
            url,
            status,
            reason: e.to_string(),
            start: start_of(&body),
        })
    }
}

/// An error answer as [`ApiError`]: AWS's `{"code","message"}`; `{"error"}` (what servers
/// before issue 14 sent) as the message; anything else with an empty code and the start of
/// the body as the message.
fn api_error(status: u16, body: &[u8]) -> ApiError {
    #[derive(serde::Deserialize)]
    struct Any {
        code: Option<String>,
        message: Option<String>,
        error: Option<String>,
    }
    match serde_json::from_slice::<Any>(body) {
        Ok(Any {
            code,
            message,
            error,
        }) if message.is_some() || error.is_some() => ApiError {
            status,
            code: code.unwrap_or_default(),
            message: message.or(error).unwrap_or_default(),
        },
        _ => ApiError {
            status,
            code: String::new(),
            message: start_of(body),
        },
    }
}

fn start_of(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(80).collect()
}

/// Percent-encodes a path segment (ids and names are `[a-zA-Z0-9_:-]` in practice; anything
/// else is escaped rather than trusted).
fn segment(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_read_as_aws_error_json() {
        let e = api_error(
            400,
            br#"{"code":"InvalidRequestException","message":"files[0]: bad"}"#,
        );
        assert_eq!(
            e,
            ApiError {
                status: 400,
                code: "InvalidRequestException".into(),
                message: "files[0]: bad".into()
            }
        );
        // Servers before issue 14.
        let e = api_error(404, br#"{"error":"OTA update x not found"}"#);
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("", "OTA update x not found")
        );
        // Not JSON at all (another HTTP service): the start of the body, no code.
        let e = api_error(404, b"not found");
        assert_eq!(
            (e.status, e.code.as_str(), e.message.as_str()),
            (404, "", "not found")
        );
        assert_eq!(e.to_string(), "HTTP 404: not found");
        let e = api_error(
            400,
            br#"{"code":"InvalidRequestException","message":"bad"}"#,
        );
        assert_eq!(e.to_string(), "HTTP 400 InvalidRequestException: bad");
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(segment("a-b_c.1"), "a-b_c.1");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}
