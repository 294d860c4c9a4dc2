//! The operator HTTP API (axum, JSON). Every request but `/api/health` needs
//! `Authorization: Bearer <token>` (the token is in `<data>/api-token`).
//!
//! | method | path | body → answer |
//! |---|---|---|
//! | GET | `/api/health` | `{"ok":true}` |
//! | GET | `/api/things` | things |
//! | POST | `/api/things` | `{"thingName","groups"?}` → device bundle |
//! | GET | `/api/things/{name}` | thing, certificates, executions |
//! | POST | `/api/things/{name}/revoke` | `{"revoked":n}` (disconnects it; the CRL is reloaded at once) |
//! | GET | `/api/limits` | `{"maxFileBytes"}`: the CLI asks before sending a file, so a wrong token or an oversized file is reported as such, not as a broken pipe |
//! | POST | `/api/files` | raw bytes → `{"sha256","size"}` |
//! | POST | `/api/ota-updates` | `CreateOTAUpdate` (with `awsJobTimeoutConfig.inProgressTimeoutInMinutes`, 1–10080) → description |
//! | GET | `/api/ota-updates` | list |
//! | GET | `/api/ota-updates/{id}?maxResults=&nextToken=` | description with one page of per-thing status (AWS paging: `maxResults` 1–250, default 100; `nextToken` in the answer while more follow) |
//! | GET | `/api/ota-updates/{id}/things/{thing}/history` | that execution's history (newest 50, oldest first) |
//! | POST | `/api/ota-updates/{id}/cancel?force=true` | description (first page) |

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::admin::{Admin, AdminError, CreateOtaUpdate, PageRequest};

#[derive(Clone)]
struct AppState {
    admin: Arc<Admin>,
    token: Arc<str>,
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let code = match &self {
            AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Exists(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (code, Json(json!({"error": self.to_string()}))).into_response()
    }
}

async fn auth(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let ok = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| constant_eq(t.as_bytes(), s.token.as_bytes()));
    if ok {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "missing or wrong operator token"})),
        )
            .into_response()
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewThing {
    thing_name: String,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize)]
struct Force {
    #[serde(default)]
    force: bool,
}

type Res = Result<Response, AdminError>;

fn ok<T: serde::Serialize>(v: T) -> Res {
    Ok(Json(v).into_response())
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
                |State(s): State<AppState>, Json(t): Json<NewThing>| async move {
                    ok(s.admin.create_thing(&t.thing_name, &t.groups).await?)
                },
            ),
        )
        .route(
            "/api/things/{name}",
            get(|State(s): State<AppState>, Path(n): Path<String>| async move {
                ok(s.admin.describe_thing(&n).await?)
            }),
        )
        .route(
            "/api/things/{name}/revoke",
            post(|State(s): State<AppState>, Path(n): Path<String>| async move {
                ok(json!({"revoked": s.admin.revoke_thing(&n).await?}))
            }),
        )
        // What a client checks before it sends a body: that its token is right (this is
        // behind the token check) and that the file fits (a refused body otherwise shows as
        // "Broken pipe" on the client, which is still sending when the server answers).
        .route(
            "/api/limits",
            get(|| async {
                ok(json!({"maxFileBytes": crate::admin::OTA_FILE_MAX}))
            }),
        )
        .route(
            "/api/files",
            post(|State(s): State<AppState>, body: axum::body::Bytes| async move {
                let h = s.admin.put_file(&body)?;
                ok(json!({"sha256": h, "size": body.len()}))
            }),
        )
        .route(
            "/api/ota-updates",
            get(|State(s): State<AppState>| async move { ok(s.admin.list_ota().await?) }).post(
                |State(s): State<AppState>, Json(r): Json<CreateOtaUpdate>| async move {
                    ok(s.admin.create_ota(&r).await?)
                },
            ),
        )
        .route(
            "/api/ota-updates/{id}",
            get(
                |State(s): State<AppState>, Path(id): Path<String>, Query(p): Query<PageRequest>| async move {
                    ok(s.admin.describe_ota_page(&id, &p).await?)
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
                |State(s): State<AppState>, Path(id): Path<String>, Query(f): Query<Force>| async move {
                    ok(s.admin.cancel_ota(&id, f.force).await?)
                },
            ),
        )
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(DefaultBodyLimit::max(17 * 1024 * 1024));
    Router::new()
        .route("/api/health", get(|| async { Json(json!({"ok": true})) }))
        .merge(protected)
        .with_state(state)
}
