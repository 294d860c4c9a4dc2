//! The operator HTTP API (axum, JSON). Every request but `/api/health` needs
//! `Authorization: Bearer <token>` (`/api/openapi.json` neither): the bootstrap token in `<data>/api-token` (an admin's) or
//! one made with `POST /api/tokens`.
//!
//! | method | path | body → answer |
//! |---|---|---|
//! | GET | `/api/health` | `{"ok":true}` (no token) |
//! | GET | `/api/openapi.json` | this API's OpenAPI 3.1 document (no token: it holds no fleet data, and a client needs it to learn how to authenticate) |
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
//! The OpenAPI document is generated from the code: each handler's `#[utoipa::path]` (its
//! method, path, parameters, body, answers and error statuses) and the `ferrota_api` types'
//! `ToSchema` (their serde names, so it describes what goes on the wire); the router is built
//! from the same handlers ([`api_routes`]), and a test fails for a route without a document.
//! The bearer scheme, 401, 403 (from [`crate::operators::required_role`]), 413 and 500 are
//! added to every protected operation in one place ([`common_answers`]).
//!
//! Every route but `/api/health` and `/api/openapi.json` checks the token's role ([`crate::operators`]): reads need
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
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use ferrota_api::{
    ApiError, CreateThing, CreateThingGroup, Deleted, DescribeJobResponse, GetJobDocumentResponse,
    HistoryDescription, Limits, OtaDescription, OtaSummary, Revoked, RolloutAction,
    RolloutDescription, SearchIndex, SearchIndexAnswer, ThingBundle, ThingDescription,
    ThingGroupDescription, ThingSummary, UpdateThing, UploadedFile,
};
use utoipa::openapi::Object;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use ferrota_api::access::{
    AuditEntry, AuditPage, CreateToken, CreatedToken, Role, TokenDescription, TokenList,
};

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

/// `?force=true`: AWS CancelJob's `force` (IN_PROGRESS executions are canceled too).
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Force {
    /// Cancel IN_PROGRESS executions too (cancel only).
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
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
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
async fn metrics_text(admin: &Admin) -> Response {
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

/// `GET /api/health`'s answer.
#[derive(serde::Serialize, ToSchema)]
struct Health {
    /// Always `true`: the process answers.
    ok: bool,
}

/// AWS GetThingShadow's answer: the classic shadow document (see [`crate::shadow`]). Built as
/// JSON by the shadow service; this type only describes it in the OpenAPI document.
#[derive(ToSchema)]
#[allow(dead_code)]
struct ThingShadow {
    /// `desired`, `reported` and, where they differ, `delta`.
    state: ShadowState,
    /// Per-field `{"timestamp"}` of `desired` and `reported`.
    metadata: Object,
    /// The document's version.
    version: u64,
    /// Now, epoch seconds.
    timestamp: u64,
}

/// The shadow's `state`.
#[derive(ToSchema)]
#[allow(dead_code)]
struct ShadowState {
    /// What the operator wants.
    desired: Option<Object>,
    /// What the device reported.
    reported: Option<Object>,
    /// Where `desired` differs from `reported`.
    delta: Option<Object>,
}

/// A file's raw bytes (`POST /api/files`), described only.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
struct FileContent(Vec<u8>);

/// A rollout action of `POST /api/rollouts/{id}/{action}`, described only (the handler reads
/// the path segment and answers 404 for another).
#[derive(ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum RolloutActionName {
    /// Stop notifying new devices.
    Pause,
    /// Go on after a pause.
    Resume,
    /// Open the next wave of a gated rollout.
    Approve,
    /// Cancel the rollout and its job (`?force=true` cancels IN_PROGRESS executions too).
    Cancel,
}

/// The document's frame; the paths come from the handlers' `#[utoipa::path]` as they are
/// routed ([`api_routes`]), the shared answers from [`common_answers`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ferrota operator API",
        description = "The HTTP API of `ferrota serve`: things, thing groups, firmware files, \
                       OTA updates with their jobs and rollouts, operator tokens and the audit \
                       log. Names, limits and errors are AWS IoT's where AWS has the concept; \
                       errors are AWS's error JSON `{\"code\",\"message\"}`. Every route but \
                       `/api/health` and this document needs `Authorization: Bearer <token>` \
                       with the role the operation names."
    ),
    components(schemas(ApiError))
)]
struct ApiDoc;

/// The bearer security scheme's name in the document.
const BEARER: &str = "bearerToken";

/// Routes every client may call without a token: the health check and the document itself
/// (a client needs the document to learn how to authenticate; it holds no fleet data).
fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(openapi_json))
}

/// The routes behind the token check, each with its documentation (one `routes!` per path).
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_things, create_thing))
        .routes(routes!(describe_thing, update_thing))
        .routes(routes!(get_thing_shadow))
        .routes(routes!(search_index))
        .routes(routes!(list_thing_groups, create_thing_group))
        .routes(routes!(describe_thing_group, delete_thing_group))
        .routes(routes!(revoke_thing))
        .routes(routes!(limits))
        .routes(routes!(upload_file))
        .routes(routes!(list_ota_updates, create_ota_update))
        .routes(routes!(describe_ota_update))
        .routes(routes!(execution_history))
        .routes(routes!(cancel_ota_update))
        .routes(routes!(describe_job))
        .routes(routes!(get_job_document))
        .routes(routes!(describe_rollout))
        .routes(routes!(rollout_action))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(audit))
        .routes(routes!(metrics))
}

/// The OpenAPI 3.1 document of the API, generated from the handlers and the `ferrota_api`
/// types (their serde names are the wire's). Served at `GET /api/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(public_routes().into_openapi());
    doc.merge(api_routes().into_openapi());
    common_answers(&mut doc);
    doc
}

/// The document as served: built once per process.
static OPENAPI_JSON: std::sync::LazyLock<Bytes> = std::sync::LazyLock::new(|| {
    // Serializing the document (strings, maps and numbers only) cannot fail; an empty
    // object would still parse.
    Bytes::from(openapi().to_json().unwrap_or_else(|_| "{}".into()))
});

/// What every protected operation shares, added to each: the bearer scheme; 401; 403 when its
/// role ([`operators::required_role`]) is above `viewer`, named in its description; 413 for a
/// body (every POST and PATCH reads one); 500. Decided here, from the same function the
/// middleware asks, so the document cannot promise another role than the server checks.
fn common_answers(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder, SecurityRequirement};
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The bootstrap token in `<data>/api-token` (admin) or one made with \
                     `POST /api/tokens` / `ferrota token create`.",
                ))
                .build(),
        ),
    );
    let error = |what: &str| {
        ResponseBuilder::new()
            .description(what)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ApiError")))
                    .build(),
            )
            .build()
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let public = path == "/api/health" || path == "/api/openapi.json";
        let ops = [
            ("GET", &mut item.get),
            ("POST", &mut item.post),
            ("PATCH", &mut item.patch),
            ("DELETE", &mut item.delete),
            ("PUT", &mut item.put),
        ];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            if public {
                // No token: an empty requirement list overrides nothing global (there is none).
                op.security = Some(vec![SecurityRequirement::default()]);
                continue;
            }
            op.security = Some(vec![SecurityRequirement::new::<_, _, &str>(BEARER, [])]);
            // Path parameters stand for any value: the role depends only on the shape.
            let role = operators::required_role(method, path);
            let note = format!("Role: `{role}` or above.");
            op.description = Some(match op.description.take() {
                Some(d) => format!("{d}\n\n{note}"),
                None => note,
            });
            let r = &mut op.responses.responses;
            r.entry("401".into()).or_insert_with(|| {
                error("`UnauthorizedException`: a missing, wrong or revoked token.").into()
            });
            if role > Role::Viewer {
                r.entry("403".into()).or_insert_with(|| {
                    error(&format!(
                        "`AccessDeniedException`: the token's role is below `{role}`."
                    ))
                    .into()
                });
            }
            if matches!(method, "POST" | "PATCH") {
                r.entry("413".into()).or_insert_with(|| {
                    error("`RequestEntityTooLargeException`: the body is over the limit.").into()
                });
            }
            r.entry("500".into()).or_insert_with(|| {
                error("`InternalFailureException`: the store or the server failed.").into()
            });
        }
    }
}

/// Liveness: answers while the process runs; no token.
#[utoipa::path(get, path = "/api/health", tag = "server",
    responses((status = 200, description = "The server answers", body = Health)))]
async fn health() -> Json<Health> {
    Json(Health { ok: true })
}

/// This document (OpenAPI 3.1, JSON); no token, it holds no fleet data.
#[utoipa::path(get, path = "/api/openapi.json", tag = "server",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
async fn openapi_json() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI_JSON.clone(),
    )
        .into_response()
}

/// AWS ListThings: every thing with its groups and attributes.
#[utoipa::path(get, path = "/api/things", tag = "things",
    responses((status = 200, description = "The things", body = Vec<ThingSummary>)))]
async fn list_things(State(s): State<AppState>) -> Res {
    ok(s.admin.list_things().await?)
}

/// AWS CreateThing: a thing, its certificate and the device bundle (the private key is in
/// this answer only).
#[utoipa::path(post, path = "/api/things", tag = "things", request_body = CreateThing,
    responses(
        (status = 200, description = "The device bundle", body = ThingBundle),
        (status = 400, description = "`InvalidRequestException`: a bad name, group or attribute", body = ApiError),
        (status = 409, description = "`ResourceAlreadyExistsException`: the thing exists", body = ApiError),
    ))]
async fn create_thing(State(s): State<AppState>, body: Bytes) -> Res {
    let t: CreateThing = strict(&body)?;
    let payload = t.attribute_payload.unwrap_or_default();
    ok(s.admin
        .create_thing_with_attributes(&t.thing_name, &t.groups, &payload, |_| Ok(()))
        .await?)
}

/// AWS DescribeThing: the thing, its certificates, executions, inventory and attributes.
#[utoipa::path(get, path = "/api/things/{name}", tag = "things",
    params(("name" = String, Path, description = "Thing name", example = "dev-1")),
    responses(
        (status = 200, description = "The thing", body = ThingDescription),
        (status = 404, description = "`ResourceNotFoundException`: no such thing", body = ApiError),
    ))]
async fn describe_thing(State(s): State<AppState>, Path(n): Path<String>) -> Res {
    ok(s.admin.describe_thing(&n).await?)
}

/// AWS UpdateThing (attributes only): an empty value removes an attribute.
#[utoipa::path(patch, path = "/api/things/{name}", tag = "things", request_body = UpdateThing,
    params(("name" = String, Path, description = "Thing name", example = "dev-1")),
    responses(
        (status = 200, description = "The thing after the change", body = ThingDescription),
        (status = 400, description = "`InvalidRequestException`: a bad attribute", body = ApiError),
        (status = 404, description = "`ResourceNotFoundException`: no such thing", body = ApiError),
    ))]
async fn update_thing(State(s): State<AppState>, Path(n): Path<String>, body: Bytes) -> Res {
    let u: UpdateThing = strict(&body)?;
    ok(s.admin.update_thing(&n, &u).await?)
}

/// AWS GetThingShadow: the thing's classic Device Shadow.
#[utoipa::path(get, path = "/api/things/{name}/shadow", tag = "things",
    params(("name" = String, Path, description = "Thing name", example = "dev-1")),
    responses(
        (status = 200, description = "The shadow document", body = ThingShadow),
        (status = 404, description = "`ResourceNotFoundException`: no such thing, or it has no shadow", body = ApiError),
    ))]
async fn get_thing_shadow(State(s): State<AppState>, Path(n): Path<String>) -> Res {
    thing_shadow(&s.admin, &n).await
}

/// AWS SearchIndex over the fleet index (query syntax: `ferrota_server::query`).
#[utoipa::path(post, path = "/api/indices/search", tag = "things", request_body = SearchIndex,
    responses(
        (status = 200, description = "One page of matching things", body = SearchIndexAnswer),
        (status = 400, description = "`InvalidRequestException`, or `InvalidQueryException` for a query that does not parse", body = ApiError),
    ))]
async fn search_index(State(s): State<AppState>, body: Bytes) -> Res {
    let q: SearchIndex = strict(&body)?;
    ok(s.admin.search_index(&q).await?)
}

/// AWS ListThingGroups: static and dynamic groups.
#[utoipa::path(get, path = "/api/thing-groups", tag = "thing groups",
    responses((status = 200, description = "The groups", body = Vec<ThingGroupDescription>)))]
async fn list_thing_groups(State(s): State<AppState>) -> Res {
    ok(s.admin.list_thing_groups().await?)
}

/// AWS CreateDynamicThingGroup: a group whose members a fleet-index query selects.
#[utoipa::path(post, path = "/api/thing-groups", tag = "thing groups", request_body = CreateThingGroup,
    responses(
        (status = 200, description = "The group with its members", body = ThingGroupDescription),
        (status = 400, description = "`InvalidRequestException` or `InvalidQueryException`", body = ApiError),
        (status = 409, description = "`ResourceAlreadyExistsException`: the group exists", body = ApiError),
    ))]
async fn create_thing_group(State(s): State<AppState>, body: Bytes) -> Res {
    let g: CreateThingGroup = strict(&body)?;
    ok(s.admin.create_thing_group(&g).await?)
}

/// AWS DescribeThingGroup, with its members now.
#[utoipa::path(get, path = "/api/thing-groups/{name}", tag = "thing groups",
    params(("name" = String, Path, description = "Group name", example = "old-kits")),
    responses(
        (status = 200, description = "The group", body = ThingGroupDescription),
        (status = 404, description = "`ResourceNotFoundException`: no such group", body = ApiError),
    ))]
async fn describe_thing_group(State(s): State<AppState>, Path(n): Path<String>) -> Res {
    ok(s.admin.describe_thing_group(&n).await?)
}

/// AWS DeleteDynamicThingGroup (things untouched).
#[utoipa::path(delete, path = "/api/thing-groups/{name}", tag = "thing groups",
    params(("name" = String, Path, description = "Group name", example = "old-kits")),
    responses(
        (status = 200, description = "What was deleted", body = Deleted),
        (status = 400, description = "`InvalidRequestException`: not a dynamic group", body = ApiError),
        (status = 404, description = "`ResourceNotFoundException`: no such group", body = ApiError),
    ))]
async fn delete_thing_group(State(s): State<AppState>, Path(n): Path<String>) -> Res {
    s.admin.delete_thing_group(&n).await?;
    ok(Deleted { deleted: n })
}

/// Revokes the thing's certificates (AWS UpdateCertificate to REVOKED): it is disconnected and
/// the CRL reloaded at once. No body.
#[utoipa::path(post, path = "/api/things/{name}/revoke", tag = "things",
    params(("name" = String, Path, description = "Thing name", example = "dev-1")),
    responses(
        (status = 200, description = "How many certificates were revoked", body = Revoked),
        (status = 400, description = "`InvalidRequestException`: a body with fields", body = ApiError),
        (status = 404, description = "`ResourceNotFoundException`: no such thing", body = ApiError),
    ))]
async fn revoke_thing(State(s): State<AppState>, Path(n): Path<String>, body: Bytes) -> Res {
    let NoFields {} = strict(&body)?;
    ok(Revoked {
        revoked: s.admin.revoke_thing(&n).await?,
    })
}

/// What a client checks before it sends a body: that its token is right (this is behind the
/// token check) and that the file fits (a refused body otherwise shows as "Broken pipe" on the
/// client, which is still sending when the server answers).
#[utoipa::path(get, path = "/api/limits", tag = "files",
    responses((status = 200, description = "The limits", body = Limits)))]
async fn limits() -> Res {
    ok(Limits {
        max_file_bytes: crate::admin::OTA_FILE_MAX,
    })
}

/// Stores a firmware file (content-addressed): the raw bytes, any content type.
#[utoipa::path(post, path = "/api/files", tag = "files",
    request_body(content = FileContent, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "The stored file", body = UploadedFile),
        (status = 400, description = "`InvalidRequestException`: an empty or oversized file", body = ApiError),
    ))]
async fn upload_file(State(s): State<AppState>, body: Bytes) -> Res {
    let h = s.admin.put_file(&body).await?;
    ok(UploadedFile {
        sha256: h,
        size: body.len() as u64,
    })
}

/// AWS ListOTAUpdates.
#[utoipa::path(get, path = "/api/ota-updates", tag = "ota updates",
    responses((status = 200, description = "The OTA updates", body = Vec<OtaSummary>)))]
async fn list_ota_updates(State(s): State<AppState>) -> Res {
    ok(s.admin.list_ota().await?)
}

/// AWS CreateOTAUpdate: a stream and a job for the targets (see the module documentation of
/// `ferrota_server::api` for the AWS fields refused by name).
#[utoipa::path(post, path = "/api/ota-updates", tag = "ota updates", request_body = CreateOtaUpdate,
    responses(
        (status = 200, description = "The update", body = OtaDescription),
        (status = 400, description = "`InvalidRequestException`: a bad, unknown or unsupported field, a missing file or target, a signature that does not verify", body = ApiError),
        (status = 409, description = "`ResourceAlreadyExistsException`: the id is taken", body = ApiError),
    ))]
async fn create_ota_update(State(s): State<AppState>, body: Bytes) -> Res {
    ok(s.admin
        .create_ota(&ota_request(&s.admin, &body).await?)
        .await?)
}

/// AWS GetOTAUpdate with one page of per-thing status (AWS paging).
#[utoipa::path(get, path = "/api/ota-updates/{id}", tag = "ota updates",
    params(("id" = String, Path, description = "OTA update id", example = "rel-1"), PageRequest),
    responses(
        (status = 200, description = "The update with one page of executions", body = OtaDescription),
        (status = 400, description = "`InvalidRequestException`: a bad maxResults or nextToken, an unknown parameter", body = ApiError),
        (status = 404, description = "`ResourceNotFoundException`: no such update", body = ApiError),
    ))]
async fn describe_ota_update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    p: Result<Query<PageRequest>, QueryRejection>,
) -> Res {
    ok(s.admin.describe_ota_page(&id, &query(p)?).await?)
}

/// An execution's history (newest 50, oldest first).
#[utoipa::path(get, path = "/api/ota-updates/{id}/things/{thing}/history", tag = "ota updates",
    params(("id" = String, Path, description = "OTA update id", example = "rel-1"), ("thing" = String, Path, description = "Thing name", example = "dev-1")),
    responses(
        (status = 200, description = "The history", body = Vec<HistoryDescription>),
        (status = 404, description = "`ResourceNotFoundException`: no such update or execution", body = ApiError),
    ))]
async fn execution_history(
    State(s): State<AppState>,
    Path((id, thing)): Path<(String, String)>,
) -> Res {
    ok(s.admin.execution_history(&id, &thing).await?)
}

/// AWS CancelJob of the update's job; no body (`force` is a query parameter, as in AWS).
#[utoipa::path(post, path = "/api/ota-updates/{id}/cancel", tag = "ota updates",
    params(("id" = String, Path, description = "OTA update id", example = "rel-1"), Force),
    responses(
        (status = 200, description = "The update, canceled (first page)", body = OtaDescription),
        (status = 400, description = "`InvalidRequestException`: a body field, an unknown parameter", body = ApiError),
        (status = 404, description = "`ResourceNotFoundException`: no such update", body = ApiError),
    ))]
async fn cancel_ota_update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    f: Result<Query<Force>, QueryRejection>,
    body: Bytes,
) -> Res {
    let f = query(f)?;
    // AWS CancelJob's body fields: not implemented, so refused by name (force is a query
    // parameter, as in AWS).
    if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&body)
        && let Some(k) = m.keys().next()
    {
        return Err(AdminError::Invalid(format!(
            "{k}: not supported in a cancel body (give force as ?force=true); nothing was canceled"
        )));
    }
    let NoFields {} = strict(&body)?;
    ok(s.admin.cancel_ota(&id, f.force).await?)
}

/// AWS DescribeJob.
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "ota updates",
    params(("id" = String, Path, description = "Job id", example = "AFR_OTA-rel-1")),
    responses(
        (status = 200, description = "The job", body = DescribeJobResponse),
        (status = 404, description = "`ResourceNotFoundException`: no such job", body = ApiError),
    ))]
async fn describe_job(State(s): State<AppState>, Path(id): Path<String>) -> Res {
    ok(s.admin.describe_job(&id).await?)
}

/// AWS GetJobDocument: the job document as stored, whole (devices get it tailored).
#[utoipa::path(get, path = "/api/jobs/{id}/job-document", tag = "ota updates",
    params(("id" = String, Path, description = "Job id", example = "AFR_OTA-rel-1")),
    responses(
        (status = 200, description = "The job document", body = GetJobDocumentResponse),
        (status = 404, description = "`ResourceNotFoundException`: no such job", body = ApiError),
    ))]
async fn get_job_document(State(s): State<AppState>, Path(id): Path<String>) -> Res {
    ok(s.admin.job_document(&id).await?)
}

/// The rollout of OTA update `id`: status, reason, waves with their counts, rate, next
/// release.
#[utoipa::path(get, path = "/api/rollouts/{id}", tag = "rollouts",
    params(("id" = String, Path, description = "OTA update id", example = "rel-1")),
    responses(
        (status = 200, description = "The rollout", body = RolloutDescription),
        (status = 404, description = "`ResourceNotFoundException`: no such update", body = ApiError),
    ))]
async fn describe_rollout(State(s): State<AppState>, Path(id): Path<String>) -> Res {
    ok(s.admin.describe_rollout(&id).await?)
}

/// Steers a rollout; no body. An action its state does not allow is a 400 that changes
/// nothing.
#[utoipa::path(post, path = "/api/rollouts/{id}/{action}", tag = "rollouts",
    params(
        ("id" = String, Path, description = "OTA update id", example = "rel-1"),
        ("action" = inline(RolloutActionName), Path, description = "pause, resume, approve or cancel"),
        Force,
    ),
    responses(
        (status = 200, description = "The rollout after the action", body = RolloutDescription),
        (status = 400, description = "`InvalidRequestException`: not allowed in its state, force on another action than cancel, a body field", body = ApiError),
        (status = 404, description = "`ResourceNotFoundException`: no such update or action", body = ApiError),
    ))]
async fn rollout_action(
    State(s): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    f: Result<Query<Force>, QueryRejection>,
    body: Bytes,
) -> Res {
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
}

/// The operator tokens (never their secrets).
#[utoipa::path(get, path = "/api/tokens", tag = "tokens",
    responses((status = 200, description = "The tokens", body = TokenList)))]
async fn list_tokens(State(s): State<AppState>) -> Res {
    let tokens = s.admin.services.store.tokens().await?;
    ok(TokenList {
        tokens: tokens.into_iter().map(|t| t.description).collect(),
    })
}

/// Creates an operator token: the secret is in this answer only.
#[utoipa::path(post, path = "/api/tokens", tag = "tokens", request_body = CreateToken,
    responses(
        (status = 200, description = "The secret, this once, and the token's description", body = CreatedToken),
        (status = 400, description = "`InvalidRequestException`: a bad name or role", body = ApiError),
    ))]
async fn create_token(State(s): State<AppState>, body: Bytes) -> Res {
    let req: CreateToken = strict(&body)?;
    ok(operators::create_token(&s.admin.services, &req).await?)
}

/// Revokes a token: its next request is refused.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 200, description = "The token, revoked", body = TokenDescription),
        (status = 404, description = "`ResourceNotFoundException`: no such token", body = ApiError),
    ))]
async fn revoke_token(State(s): State<AppState>, Path(id): Path<String>) -> Res {
    ok(operators::revoke_token(&s.admin.services, &id).await?)
}

/// One page of the hash-chained audit log, oldest first.
#[utoipa::path(get, path = "/api/audit", tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, description = "One page of records", body = AuditPage),
        (status = 400, description = "`InvalidRequestException`: a bad maxResults or nextToken, an unknown parameter", body = ApiError),
    ))]
async fn audit(State(s): State<AppState>, q: Result<Query<AuditQuery>, QueryRejection>) -> Res {
    audit_page(&s.admin, query(q)?).await
}

/// Prometheus metrics in the OpenMetrics text format (`ferrota_server::metrics`).
#[utoipa::path(get, path = "/metrics", tag = "server",
    responses((status = 200, description = "OpenMetrics text",
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String)))]
async fn metrics(State(s): State<AppState>) -> Response {
    metrics_text(&s.admin).await
}

/// The API router: the routes of [`public_routes`] and, behind the token and role check,
/// [`api_routes`] (the same the document is generated from).
pub fn router(admin: Arc<Admin>, token: String) -> Router {
    let state = AppState {
        admin,
        token: token.into(),
    };
    let protected = api_routes()
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(DefaultBodyLimit::max(17 * 1024 * 1024));
    let (router, _) = public_routes().merge(protected).split_for_parts();
    router
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
/// path does not have, 413 for a body over the limit, 400 for a path parameter it cannot
/// decode (`/api/things/%FF`: not UTF-8). A client that reads AWS error JSON
/// (`ferrota_api::Client`, an AWS SDK) would see an undecodable body, so they are rewritten
/// with the codes AWS IoT uses for the same statuses (`MethodNotAllowedException`,
/// `RequestEntityTooLargeException`, `InvalidRequestException` with axum's words); the 405's
/// `Allow` header is kept. Every other answer, JSON already, passes unchanged.
async fn framework_errors_as_aws_json(resp: Response) -> Response {
    let status = resp.status();
    if !matches!(
        status,
        StatusCode::METHOD_NOT_ALLOWED | StatusCode::PAYLOAD_TOO_LARGE | StatusCode::BAD_REQUEST
    ) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return resp;
    }
    let allow = resp.headers().get(axum::http::header::ALLOW).cloned();
    let mut out = match status {
        StatusCode::METHOD_NOT_ALLOWED => aws_error(
            status,
            "MethodNotAllowedException",
            "this path does not take that method (see the table in `ferrota_server::api`)",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => aws_error(
            status,
            "RequestEntityTooLargeException",
            "the request body is over the API's limit (GET /api/limits gives maxFileBytes); \
             nothing was stored",
        ),
        _ => {
            // axum's rejection text is one short line.
            let text = axum::body::to_bytes(resp.into_body(), 4096)
                .await
                .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                .unwrap_or_default();
            aws_error(
                status,
                "InvalidRequestException",
                &format!("{text}; nothing was changed"),
            )
        }
    };
    if let Some(a) = allow {
        out.headers_mut().insert(axum::http::header::ALLOW, a);
    }
    out
}
