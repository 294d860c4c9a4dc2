//! The operator HTTP API (axum, JSON). Every request but `/api/health` needs
//! `Authorization: Bearer <token>`: the bootstrap token in `<data>/api-token` (an admin's) or
//! one made with `POST /api/tokens`.
//!
//! | method | path | body → answer |
//! |---|---|---|
//! | GET | `/api/health` | `{"ok":true}` |
//! | GET | `/api/things` | things |
//! | POST | `/api/things` | `{"thingName","groups"?,"attributePayload"?}` → device bundle (AWS `CreateThing`'s attributes: at most 50, AWS's characters and lengths) |
//! | GET | `/api/things/{name}` | thing, certificates, executions, attributes |
//! | GET | `/api/things/{name}/shadow` | its classic Device Shadow as AWS's GetThingShadow answers it (`state` with `desired`/`reported`/`delta`, `metadata`, `version`, `timestamp`); 404 `ResourceNotFoundException` when the thing or its shadow does not exist |
//! | PATCH | `/api/things/{name}` | AWS `UpdateThing`: `{"attributePayload":{"attributes","merge"?}}` → thing (an empty value removes an attribute) |
//! | POST | `/api/indices/search` | AWS `SearchIndex`: `{"queryString","maxResults"?,"nextToken"?}` → `{"things":[{"thingName","thingGroupNames","attributes","connectivity","shadow"?}],"nextToken"?}` (query syntax: [`crate::query`]) |
//! | POST | `/api/thing-groups` | AWS `CreateDynamicThingGroup`: `{"thingGroupName","queryString"}` → group with its members |
//! | GET | `/api/thing-groups` | static and dynamic groups |
//! | GET | `/api/thing-groups/{name}` | group with its members now (`members`) |
//! | DELETE | `/api/thing-groups/{name}` | `{"deleted":name}` (dynamic groups; things untouched) |
//! | POST | `/api/things/{name}/revoke` | `{"revoked":n}` (disconnects it; the CRL is reloaded at once) |
//! | GET | `/api/limits` | `{"maxFileBytes"}`: the CLI asks before sending a file, so a wrong token or an oversized file is reported as such, not as a broken pipe |
//! | POST | `/api/files` | raw bytes → `{"sha256","size"}` |
//! | POST | `/api/ota-updates` | `CreateOTAUpdate` (with `awsJobTimeoutConfig.inProgressTimeoutInMinutes`, 1–10080; `awsJobExecutionsRolloutConfig`, `awsJobAbortConfig`, CreateJob's `jobExecutionsRetryConfig` and `schedulingConfig`, Ferrota's `rolloutWaves`, see `crate::rollout`; `targetSelection` SNAPSHOT or CONTINUOUS, `protocols` `["MQTT"]`; `fileType` optional; `certificateChain.inlineDocument` checked against the signature) → description with `jobProcessDetails` |
//! | GET | `/api/ota-updates` | list |
//! | GET | `/api/ota-updates/{id}?maxResults=&nextToken=` | description with one page of per-thing status (AWS paging: `maxResults` 1–250, default 100; `nextToken` in the answer while more follow) |
//! | GET | `/api/ota-updates/{id}/things/{thing}/history` | that execution's history (newest 50, oldest first) |
//! | POST | `/api/ota-updates/{id}/cancel?force=true` | description (first page, with AWS's `forceCanceled`, `reasonCode`, `comment`); no body |
//! | GET | `/api/jobs/{jobId}` | AWS DescribeJob: `{"job":{"jobId","status","forceCanceled","reasonCode","comment","targetSelection","jobProcessDetails",…configs}}` |
//! | GET | `/api/rollouts/{id}` | the rollout of OTA update `id`: status, reason, waves with their counts, rate, next release |
//! | POST | `/api/rollouts/{id}/pause`, `…/resume`, `…/approve`, `…/cancel?force=true` | the rollout after the action; no body; an action the rollout's state does not allow is a 400 that changes nothing |
//! | GET | `/api/tokens` | `{"tokens":[{"tokenId","name","role","createdAt","revokedAt"?}]}` (admin) |
//! | POST | `/api/tokens` | `{"name","role"}` → `{"token","description"}`: the secret, this once (admin) |
//! | DELETE | `/api/tokens/{id}` | the token, revoked (admin) |
//! | GET | `/api/audit?maxResults=&nextToken=` | `{"records":[{"seq","at","actor","tokenId"?,"action","target","result","prevHash","hash"}],"nextToken"?}`, oldest first (`maxResults` 1–1000, default 250) |
//! | GET | `/metrics` | Prometheus metrics, OpenMetrics text ([`crate::metrics`]); the token as every route (Prometheus: `authorization: {credentials: …}`) |
//!
//! Every route but `/api/health` checks the token's role ([`crate::operators`]): reads need
//! `viewer`, releases and rollout steering `release-manager`, the rest `admin`; below it the
//! answer is 403 `AccessDeniedException`. Changes are appended to the audit log.
//!
//! ## Conventions (one style for every answer and every `--json` of the CLI)
//! - Keys are AWS's camelCase (`otaUpdateId`, `thingName`, `statusDetails`, …), with AWS's
//!   names where AWS has the concept (`jobProcessDetails.numberOfQueuedThings`, `nextToken`,
//!   `errorInfo`).
//! - Timestamps are epoch seconds (JSON numbers), as every AWS IoT API sends them
//!   (`createdAt`, `queuedAt`, `startedAt`, `lastUpdatedAt`): one type per field name, so a
//!   client written for AWS parses them unchanged. The CLI's human (non-JSON) output prints
//!   times as RFC 3339.
//! - A reason a device reports stays verbatim in `statusDetails.reason` (what AWS's console
//!   shows); its meaning in words is a separate `reasonText` beside `statusDetails`
//!   ([`crate::admin::reason_text`]), absent when the code is unknown.
//! - Errors are AWS's error JSON, `{"code":"InvalidRequestException","message":"…"}`, with
//!   AWS's codes and statuses: `InvalidRequestException` 400, `InvalidQueryException` 400 (a
//!   fleet-index query that does not parse, with the position), `UnauthorizedException` 401,
//!   `AccessDeniedException` 403 (a token below the route's role),
//!   `ResourceNotFoundException` 404, `MethodNotAllowedException` 405,
//!   `ResourceAlreadyExistsException` 409, `RequestEntityTooLargeException` 413,
//!   `InternalFailureException` 500 (the 405 and 413 that axum answers itself are rewritten
//!   to this form too).
//! - Nothing is accepted and ignored: a request body or query parameter Ferrota does not know
//!   is refused with a 400 naming it (AWS's behaviour for unknown fields), and AWS fields that
//!   Ferrota knows but does not implement yet are refused by name with the reason
//!   ([`UNSUPPORTED_OTA_FIELDS`]); nothing is stored then. Bodies are read as JSON whatever
//!   their `content-type`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use ferrota_api::{
    ApiError, CreateThing, CreateThingGroup, Deleted, Limits, Revoked, RolloutAction, SearchIndex,
    UpdateThing, UploadedFile,
};

use ferrota_api::access::{AuditEntry, AuditPage, CreateToken, TokenList};

use crate::admin::{Admin, AdminError, CreateOtaUpdate, PageRequest};
use crate::operators::{self, TokenError};

#[derive(Clone)]
struct AppState {
    admin: Arc<Admin>,
    token: Arc<str>,
}

/// AWS's error answer: status and `{"code","message"}` ([`ApiError`], which clients read).
fn aws_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = ApiError {
        status: status.as_u16(),
        code: code.into(),
        message: message.into(),
    };
    (status, Json(body)).into_response()
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            AdminError::Invalid(_) => (StatusCode::BAD_REQUEST, "InvalidRequestException"),
            AdminError::InvalidQuery(_) => (StatusCode::BAD_REQUEST, "InvalidQueryException"),
            AdminError::NotFound(_) => (StatusCode::NOT_FOUND, "ResourceNotFoundException"),
            AdminError::Exists(_) => (StatusCode::CONFLICT, "ResourceAlreadyExistsException"),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailureException",
            ),
        };
        aws_error(status, code, &self.to_string())
    }
}

/// Authenticates the bearer token ([`crate::operators::authenticate`]), checks the role the
/// route needs ([`crate::operators::required_role`]: 403 `AccessDeniedException` below it),
/// runs the request, and appends every change, and every refusal for a role, to the audit
/// log with its result.
async fn auth(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    let services = &s.admin.services;
    let who = match operators::authenticate(services, &s.token, &bearer).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return aws_error(
                StatusCode::UNAUTHORIZED,
                "UnauthorizedException",
                "missing, wrong or revoked operator token",
            );
        }
        Err(e) => return AdminError::from(e).into_response(),
    };
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let needed = operators::required_role(&method, &path);
    let resp = if who.role.allows(needed) {
        req.extensions_mut().insert(who.clone());
        let resp = next.run(req).await;
        if !operators::is_change(&method, &path) {
            return resp;
        }
        resp
    } else {
        aws_error(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            &format!(
                "token '{}' has role {}; {method} {path} needs {needed}",
                who.name, who.role
            ),
        )
    };
    // A change (or a refused one): recorded with its result. Answers here are small JSON.
    let (parts, body) = resp.into_parts();
    // The handlers' answers are JSON built in memory: read whole, without a limit.
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            return aws_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailureException",
                &format!("the answer could not be read: {e}"),
            );
        }
    };
    let answer: Option<Value> = serde_json::from_slice(&bytes).ok();
    let result = if parts.status.is_success() {
        parts.status.as_u16().to_string()
    } else {
        let code = answer
            .as_ref()
            .and_then(|a| a.get("code"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        format!("{} {code}", parts.status.as_u16())
            .trim_end()
            .to_string()
    };
    operators::audit(
        services,
        AuditEntry {
            at: services.clock.now(),
            actor: who.name.clone(),
            token_id: Some(who.token_id.clone()),
            action: operators::operation(&method, &path),
            target: operators::target(&path, answer.as_ref().filter(|_| parts.status.is_success())),
            result,
        },
    )
    .await;
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// A body that must carry nothing (`{}` or empty).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NoFields {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Force {
    #[serde(default)]
    force: bool,
}

/// AWS `CreateOTAUpdate` fields Ferrota knows but does not implement yet, with why: a request
/// naming one is refused (400), never run without it. `files[]` and the `codeSigning` of a
/// file are checked too (see `unsupported`).
pub const UNSUPPORTED_OTA_FIELDS: &[(&str, &str)] = &[
    (
        "awsJobPresignedUrlConfig",
        "HTTP delivery (presigned URLs) is not implemented: files go over MQTT streams",
    ),
    (
        "roleArn",
        "there is no IAM here: the server reads its own files and signs nothing",
    ),
    (
        "additionalParameters",
        "no additional parameters are implemented",
    ),
    ("tags", "tags are not implemented"),
];

/// Fields of `files[]` (and of their `codeSigning`) that AWS has and Ferrota does not implement.
const UNSUPPORTED_FILE_FIELDS: &[(&str, &str)] = &[
    (
        "attributes",
        "file attributes are not implemented (AWS writes them into the job document)",
    ),
    ("fileVersion", "fileVersion is not implemented"),
];
const UNSUPPORTED_SIGNING_FIELDS: &[(&str, &str)] = &[
    (
        "awsSignerJobId",
        "AWS Signer is not available: use customCodeSigning with a signature made by \
         `ferrota image sign-ota`",
    ),
    (
        "startSigningJobParameter",
        "AWS Signer is not available: use customCodeSigning with a signature made by \
         `ferrota image sign-ota`",
    ),
];

/// The first AWS field of a create request that Ferrota does not implement, as a refusal
/// naming it (with its path for fields inside `files[]`).
fn unsupported(v: &Value) -> Option<AdminError> {
    let refuse = |path: String, why: &str| {
        Some(AdminError::Invalid(format!(
            "{path}: not supported ({why}); remove it. Nothing was created"
        )))
    };
    for (k, why) in UNSUPPORTED_OTA_FIELDS {
        if v.get(k).is_some() {
            return refuse((*k).to_string(), why);
        }
    }
    let files = v.get("files").and_then(Value::as_array).map(Vec::as_slice);
    for (i, f) in files.unwrap_or_default().iter().enumerate() {
        for (k, why) in UNSUPPORTED_FILE_FIELDS {
            if f.get(k).is_some() {
                return refuse(format!("files[{i}].{k}"), why);
            }
        }
        for (k, why) in UNSUPPORTED_SIGNING_FIELDS {
            if f.get("codeSigning").and_then(|c| c.get(k)).is_some() {
                return refuse(format!("files[{i}].codeSigning.{k}"), why);
            }
        }
    }
    None
}

/// Reads a JSON body strictly: not JSON, a wrong type or an unknown field (serde's
/// `deny_unknown_fields` on every request type) is a 400 naming the field by its path
/// (`files[0].fileLocation: unknown field ...`). An empty body reads as `{}`.
fn strict<T: DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| AdminError::Invalid(format!("the body is not JSON: {e}")))?
    };
    from_value(v)
}

fn from_value<T: DeserializeOwned>(v: Value) -> Result<T, AdminError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        AdminError::Invalid(if path == "." {
            format!("{inner} (fields Ferrota does not know are refused, not ignored)")
        } else {
            format!("{path}: {inner} (fields Ferrota does not know are refused, not ignored)")
        })
    })
}

/// A create request: AWS fields not implemented are refused by name first (a clearer message
/// than "unknown field"), then the body is read strictly. A request refused here deletes the
/// uploads it names that nothing uses, as a refused create does
/// ([`Admin::remove_unused_uploads`]).
async fn ota_request(admin: &Admin, body: &[u8]) -> Result<CreateOtaUpdate, AdminError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| AdminError::Invalid(format!("the body is not JSON: {e}")))?;
    let r = match unsupported(&v) {
        Some(e) => Err(e),
        None => from_value(v.clone()),
    };
    if r.is_err() {
        let shas: Vec<String> = v
            .get("files")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|f| {
                f.pointer("/fileLocation/sha256")?
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        admin.remove_unused_uploads(&shas).await;
    }
    r
}

/// A query string read strictly (unknown parameters refused, as bodies are).
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, AdminError> {
    q.map(|Query(t)| t)
        .map_err(|e| AdminError::Invalid(format!("query: {}", e.body_text())))
}

type Res = Result<Response, AdminError>;

impl From<TokenError> for AdminError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Invalid(m) => AdminError::Invalid(m),
            TokenError::NotFound(id) => AdminError::NotFound(format!("token {id}")),
            TokenError::Store(e) => e.into(),
        }
    }
}

/// `GET /api/audit`'s query: AWS's paging names.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AuditQuery {
    /// 1–1000, default 250.
    max_results: Option<u32>,
    /// From the previous page.
    next_token: Option<String>,
}

/// One page of the audit log in stored order ([`AuditPage`]).
async fn audit_page(admin: &Admin, q: AuditQuery) -> Res {
    let limit = q.max_results.unwrap_or(250);
    if !(1..=1000).contains(&limit) {
        return Err(AdminError::Invalid(format!(
            "maxResults {limit}: between 1 and 1000"
        )));
    }
    let after = match q.next_token.as_deref() {
        None => 0,
        Some(t) => t.parse::<u64>().map_err(|_| {
            AdminError::Invalid(format!(
                "nextToken '{t}' is not one this API gave (pass the previous page's nextToken)"
            ))
        })?,
    };
    let rows = admin.services.store.audit_records(after, limit + 1).await?;
    let more = rows.len() > limit as usize;
    let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let next_token = more
        .then(|| rows.last().map(|(pos, _)| pos.to_string()))
        .flatten();
    ok(AuditPage {
        records: rows.into_iter().map(|(_, r)| r).collect(),
        next_token,
    })
}

fn ok<T: serde::Serialize>(v: T) -> Res {
    Ok(Json(v).into_response())
}

/// GetThingShadow: the thing's classic shadow document (see [`crate::shadow`]).
async fn thing_shadow(admin: &Admin, name: &str) -> Res {
    let b = &admin.services;
    if b.store.thing(name).await?.is_none() {
        return Err(AdminError::NotFound(format!("thing {name}")));
    }
    match crate::shadow::document(b, name).await? {
        Some(doc) => ok(doc.get_body(b.clock.now(), None)),
        None => Ok(aws_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &crate::shadow::ShadowError::not_found(name).message,
        )),
    }
}

/// `GET /metrics`: the process's metrics and the fleet's, read from the store now
/// ([`crate::metrics::Metrics::encode`]), as OpenMetrics text.
async fn metrics(admin: &Admin) -> Response {
    let b = &admin.services;
    match b.metrics.encode(b.store.as_ref()).await {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                crate::metrics::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(_) => aws_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailureException",
            "the metrics could not be encoded",
        ),
    }
}

/// The API router.
pub fn router(admin: Arc<Admin>, token: String) -> Router {
    let state = AppState {
        admin,
        token: token.into(),
    };
    let protected = Router::new()
        .route(
            "/api/things",
            get(|State(s): State<AppState>| async move { ok(s.admin.list_things().await?) }).post(
                |State(s): State<AppState>, body: Bytes| async move {
                    let t: CreateThing = strict(&body)?;
                    let payload = t.attribute_payload.unwrap_or_default();
                    ok(s.admin
                        .create_thing_with_attributes(
                            &t.thing_name,
                            &t.groups,
                            &payload,
                            |_| Ok(()),
                        )
                        .await?)
                },
            ),
        )
        .route(
            "/api/things/{name}",
            get(
                |State(s): State<AppState>, Path(n): Path<String>| async move {
                    ok(s.admin.describe_thing(&n).await?)
                },
            )
            .patch(
                |State(s): State<AppState>, Path(n): Path<String>, body: Bytes| async move {
                    let u: UpdateThing = strict(&body)?;
                    ok(s.admin.update_thing(&n, &u).await?)
                },
            ),
        )
        .route(
            "/api/things/{name}/shadow",
            get(
                |State(s): State<AppState>, Path(n): Path<String>| async move {
                    thing_shadow(&s.admin, &n).await
                },
            ),
        )
        .route(
            "/api/indices/search",
            post(|State(s): State<AppState>, body: Bytes| async move {
                let q: SearchIndex = strict(&body)?;
                ok(s.admin.search_index(&q).await?)
            }),
        )
        .route(
            "/api/thing-groups",
            get(|State(s): State<AppState>| async move { ok(s.admin.list_thing_groups().await?) })
                .post(|State(s): State<AppState>, body: Bytes| async move {
                    let g: CreateThingGroup = strict(&body)?;
                    ok(s.admin.create_thing_group(&g).await?)
                }),
        )
        .route(
            "/api/thing-groups/{name}",
            get(
                |State(s): State<AppState>, Path(n): Path<String>| async move {
                    ok(s.admin.describe_thing_group(&n).await?)
                },
            )
            .merge(delete(
                |State(s): State<AppState>, Path(n): Path<String>| async move {
                    s.admin.delete_thing_group(&n).await?;
                    ok(Deleted { deleted: n })
                },
            )),
        )
        .route(
            "/api/things/{name}/revoke",
            post(
                |State(s): State<AppState>, Path(n): Path<String>, body: Bytes| async move {
                    let NoFields {} = strict(&body)?;
                    ok(Revoked {
                        revoked: s.admin.revoke_thing(&n).await?,
                    })
                },
            ),
        )
        // What a client checks before it sends a body: that its token is right (this is
        // behind the token check) and that the file fits (a refused body otherwise shows as
        // "Broken pipe" on the client, which is still sending when the server answers).
        .route(
            "/api/limits",
            get(|| async {
                ok(Limits {
                    max_file_bytes: crate::admin::OTA_FILE_MAX,
                })
            }),
        )
        .route(
            "/api/files",
            post(
                |State(s): State<AppState>, body: axum::body::Bytes| async move {
                    let h = s.admin.put_file(&body).await?;
                    ok(UploadedFile {
                        sha256: h,
                        size: body.len() as u64,
                    })
                },
            ),
        )
        .route(
            "/api/ota-updates",
            get(|State(s): State<AppState>| async move { ok(s.admin.list_ota().await?) }).post(
                |State(s): State<AppState>, body: Bytes| async move {
                    ok(s.admin
                        .create_ota(&ota_request(&s.admin, &body).await?)
                        .await?)
                },
            ),
        )
        .route(
            "/api/ota-updates/{id}",
            get(
                |State(s): State<AppState>,
                 Path(id): Path<String>,
                 p: Result<Query<PageRequest>, QueryRejection>| async move {
                    ok(s.admin.describe_ota_page(&id, &query(p)?).await?)
                },
            ),
        )
        .route(
            "/api/ota-updates/{id}/things/{thing}/history",
            get(
                |State(s): State<AppState>, Path((id, thing)): Path<(String, String)>| async move {
                    ok(s.admin.execution_history(&id, &thing).await?)
                },
            ),
        )
        .route(
            "/api/ota-updates/{id}/cancel",
            post(
                |State(s): State<AppState>,
                 Path(id): Path<String>,
                 f: Result<Query<Force>, QueryRejection>,
                 body: Bytes| async move {
                    let f = query(f)?;
                    // AWS CancelJob's body fields: not implemented, so refused by name (force
                    // is a query parameter, as in AWS).
                    if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&body)
                        && let Some(k) = m.keys().next()
                    {
                        return Err(AdminError::Invalid(format!(
                            "{k}: not supported in a cancel body (give force as ?force=true); \
                             nothing was canceled"
                        )));
                    }
                    let NoFields {} = strict(&body)?;
                    ok(s.admin.cancel_ota(&id, f.force).await?)
                },
            ),
        )
        .route(
            "/api/jobs/{id}",
            get(
                |State(s): State<AppState>, Path(id): Path<String>| async move {
                    ok(s.admin.describe_job(&id).await?)
                },
            ),
        )
        .route(
            "/api/rollouts/{id}",
            get(
                |State(s): State<AppState>, Path(id): Path<String>| async move {
                    ok(s.admin.describe_rollout(&id).await?)
                },
            ),
        )
        .route(
            "/api/rollouts/{id}/{action}",
            post(
                |State(s): State<AppState>,
                 Path((id, action)): Path<(String, String)>,
                 f: Result<Query<Force>, QueryRejection>,
                 body: Bytes| async move {
                    let f = query(f)?;
                    let NoFields {} = strict(&body)?;
                    let action = match action.as_str() {
                        "pause" => RolloutAction::Pause,
                        "resume" => RolloutAction::Resume,
                        "approve" => RolloutAction::Approve,
                        "cancel" => RolloutAction::Cancel { force: f.force },
                        other => {
                            return Err(AdminError::NotFound(format!(
                                "rollout action {other:?} (pause, resume, approve, cancel)"
                            )));
                        }
                    };
                    if f.force && !matches!(action, RolloutAction::Cancel { .. }) {
                        return Err(AdminError::Invalid(
                            "force applies to cancel only; nothing was changed".into(),
                        ));
                    }
                    ok(s.admin.rollout_action(&id, action).await?)
                },
            ),
        )
        .route(
            "/api/tokens",
            get(|State(s): State<AppState>| async move {
                let tokens = s.admin.services.store.tokens().await?;
                ok(TokenList {
                    tokens: tokens.into_iter().map(|t| t.description).collect(),
                })
            })
            .post(|State(s): State<AppState>, body: Bytes| async move {
                let req: CreateToken = strict(&body)?;
                ok(operators::create_token(&s.admin.services, &req).await?)
            }),
        )
        .route(
            "/api/tokens/{id}",
            delete(
                |State(s): State<AppState>, Path(id): Path<String>| async move {
                    ok(operators::revoke_token(&s.admin.services, &id).await?)
                },
            ),
        )
        .route(
            "/api/audit",
            get(
                |State(s): State<AppState>, q: Result<Query<AuditQuery>, QueryRejection>| async move {
                    audit_page(&s.admin, query(q)?).await
                },
            ),
        )
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move { metrics(&s.admin).await }),
        )
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(DefaultBodyLimit::max(17 * 1024 * 1024));
    Router::new()
        .route("/api/health", get(|| async { Json(json!({"ok": true})) }))
        .merge(protected)
        .fallback(|| async {
            aws_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFoundException",
                "no such API path (see the table in `ferrota_server::api`)",
            )
        })
        .layer(middleware::map_response(framework_errors_as_aws_json))
        .with_state(state)
}

/// The answers axum writes itself, before a handler runs, are plain text: 405 for a method a
/// path does not have, 413 for a body over the limit. A client that reads AWS error JSON
/// (`ferrota_api::Client`, an AWS SDK) would see an undecodable body, so they are rewritten
/// with the codes AWS IoT uses for the same statuses (`MethodNotAllowedException`,
/// `RequestEntityTooLargeException`); the 405's `Allow` header is kept. Every other answer,
/// JSON already, passes unchanged.
async fn framework_errors_as_aws_json(resp: Response) -> Response {
    let (code, message) = match resp.status() {
        StatusCode::METHOD_NOT_ALLOWED => (
            "MethodNotAllowedException",
            "this path does not take that method (see the table in `ferrota_server::api`)",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "RequestEntityTooLargeException",
            "the request body is over the API's limit (GET /api/limits gives maxFileBytes); \
             nothing was stored",
        ),
        _ => return resp,
    };
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return resp;
    }
    let allow = resp.headers().get(axum::http::header::ALLOW).cloned();
    let mut out = aws_error(resp.status(), code, message);
    if let Some(a) = allow {
        out.headers_mut().insert(axum::http::header::ALLOW, a);
    }
    out
}
