//! Signing in with an operator token, the cookie that keeps it, and the check that a change
//! comes from the console's own pages (see the crate docs).

use axum::Form;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::call::Caller;
use crate::view::{self, Problem};

/// The cookie that holds the operator's token.
const COOKIE: &str = "ferrota_console";

/// A signed-in operator: the token the console sends to the API on their behalf.
pub struct Operator {
    /// The operator token.
    pub token: String,
}

/// The token in the request's cookie, if any.
fn token_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// Whether a state-changing request comes from another site: its `Origin` names a host other
/// than the one it was sent to. A request without `Origin` (an old browser, a script) is let
/// through: the `SameSite=Strict` cookie already keeps other sites' requests unsigned.
fn from_another_site(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
    origin == "null" || !origin_host.eq_ignore_ascii_case(host)
}

impl FromRequestParts<Caller> for Operator {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &Caller) -> Result<Self, Problem> {
        let safe = parts.method == Method::GET || parts.method == Method::HEAD;
        if !safe && from_another_site(&parts.headers) {
            return Err(Problem::Forbidden(
                "this request came from another site's page; nothing was changed".into(),
            ));
        }
        match token_of(&parts.headers) {
            Some(token) => Ok(Operator { token }),
            None => Err(Problem::SignIn(
                parts
                    .uri
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default(),
            )),
        }
    }
}

/// Where to go after signing in: a console page only (never another site).
fn next_page(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.starts_with("/ui//") && !n.contains('\\') => {
            n.to_string()
        }
        _ => "/ui/".into(),
    }
}

/// `?next=` of the sign-in page.
#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// `GET /ui/login`.
pub async fn login_form(Query(q): Query<LoginQuery>) -> Response {
    view::login(&next_page(q.next.as_deref()), None)
}

/// The sign-in form.
#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /ui/login`: the token is checked with the API (a cheap authenticated read) before
/// it is kept; a wrong or revoked one is said so on the form.
pub async fn login(
    State(api): State<Caller>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = next_page(f.next.as_deref());
    if from_another_site(&headers) {
        return Problem::Forbidden("this sign-in came from another site's page".into())
            .into_response();
    }
    let token = f.token.trim();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return view::login(&next, Some("give an operator token (ferrota token create)"));
    }
    match api.get::<serde_json::Value>(token, "/api/limits").await {
        Ok(_) => {}
        Err(e) if e.status == 401 => {
            return view::login(&next, Some("that token is wrong or revoked"));
        }
        Err(e) => return Problem::Api(e).into_response(),
    }
    let secure = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| o.starts_with("https://"));
    let cookie = format!(
        "{COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}

/// `POST /ui/logout`: the cookie is dropped (the token itself stays valid until revoked).
pub async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/ui/login")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_pages_are_gone_to_after_signing_in() {
        assert_eq!(next_page(Some("/ui/rollouts/r1")), "/ui/rollouts/r1");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/ui//evil",
            "/api/x",
            "/ui/\\x",
        ] {
            assert_eq!(next_page(Some(bad)), "/ui/", "{bad}");
        }
        assert_eq!(next_page(None), "/ui/");
    }

    #[test]
    fn a_change_from_another_site_is_recognised() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert!(!from_another_site(&h), "no Origin");
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(!from_another_site(&h));
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(from_another_site(&h));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(from_another_site(&h));
    }

    #[test]
    fn the_token_is_read_from_its_cookie_only() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=b; ferrota_console=tok123; c=d".parse().unwrap(),
        );
        assert_eq!(token_of(&h).as_deref(), Some("tok123"));
        h.insert(header::COOKIE, "ferrota_consolex=nope".parse().unwrap());
        assert_eq!(token_of(&h), None);
    }
}
