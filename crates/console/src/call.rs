//! Requests to the API's router, in-process (no socket): the console's only way to read or
//! change anything, so the API's role checks, validation and audit apply to every page.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, header};
use ferrota_api::ApiError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt as _;

/// The largest API answer read (as the API's own client: a thing list of a large fleet).
const ANSWER_MAX: usize = ferrota_api::ANSWER_MAX as usize;

/// The API router the console calls; cloned per request (a router clone is a reference count).
#[derive(Clone)]
pub struct Caller {
    api: Router,
}

/// A call's failure: the API's own error (status, AWS code, message), or one made here in the
/// same shape when the answer could not be read.
pub type Failure = ApiError;

fn failure(status: u16, code: &str, message: impl Into<String>) -> Failure {
    ApiError {
        status,
        code: code.into(),
        message: message.into(),
    }
}

impl Caller {
    /// A caller of `api`.
    pub fn new(api: Router) -> Self {
        Caller { api }
    }

    /// Sends one request with `token` and returns the answer's body, or the API's error.
    pub async fn send(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<Vec<u8>, Failure> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .map_err(|e| failure(400, "InvalidRequestException", e.to_string()))?;
        let resp = match self.api.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = resp.status();
        let bytes = to_bytes(resp.into_body(), ANSWER_MAX)
            .await
            .map_err(|e| failure(500, "InternalFailureException", format!("{path}: {e}")))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        #[derive(serde::Deserialize)]
        struct Json {
            code: String,
            message: String,
        }
        Err(match serde_json::from_slice::<Json>(&bytes) {
            Ok(j) => failure(status.as_u16(), &j.code, j.message),
            Err(_) => failure(
                status.as_u16(),
                "InternalFailureException",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(200)
                    .collect::<String>(),
            ),
        })
    }

    /// `GET path`, the answer read as `T`.
    pub async fn get<T: DeserializeOwned>(&self, token: &str, path: &str) -> Result<T, Failure> {
        let body = self.send(token, Method::GET, path, Vec::new()).await?;
        decode(path, &body)
    }

    /// `POST path` with `body` as JSON, the answer read as `T`.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
        body: &B,
    ) -> Result<T, Failure> {
        let json = serde_json::to_vec(body)
            .map_err(|e| failure(400, "InvalidRequestException", e.to_string()))?;
        let body = self.send(token, Method::POST, path, json).await?;
        decode(path, &body)
    }
}

fn decode<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(body).map_err(|e| {
        failure(
            500,
            "InternalFailureException",
            format!("{path}: the API's answer did not parse: {e}"),
        )
    })
}
