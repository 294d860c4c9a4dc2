//! What every page shares: rendering a template into an answer, the error page, the sign-in
//! page, and the formatting of times and reasons.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use ferrota_api::ApiError;

/// Renders `t`; a template that fails to render (a bug, not an input) is a 500 page in words.
pub fn html<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(body) => Html(body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the page could not be rendered: {e}"),
        )
            .into_response(),
    }
}

/// Why a page is not shown.
pub enum Problem {
    /// Not signed in: to the sign-in page, then back to this path.
    SignIn(String),
    /// Refused before the API was asked (a change from another site).
    Forbidden(String),
    /// Bad form input, said before the API was asked.
    Invalid(String),
    /// The API's answer.
    Api(ApiError),
}

impl From<ApiError> for Problem {
    fn from(e: ApiError) -> Self {
        Problem::Api(e)
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    nav: &'a str,
    status: u16,
    code: &'a str,
    message: &'a str,
}

fn error_page(status: u16, code: &str, message: &str) -> Response {
    let mut r = html(&ErrorPage {
        title: "Error",
        nav: "",
        status,
        code,
        message,
    });
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        match self {
            Problem::SignIn(next) => {
                Redirect::to(&format!("/ui/login?next={}", encode(&next))).into_response()
            }
            Problem::Forbidden(m) => error_page(403, "AccessDeniedException", &m),
            Problem::Invalid(m) => error_page(400, "InvalidRequestException", &m),
            // A token revoked since sign-in: to the sign-in page again.
            Problem::Api(e) if e.status == 401 => Redirect::to("/ui/login").into_response(),
            Problem::Api(e) => error_page(e.status, &e.code, &e.message),
        }
    }
}

/// The sign-in page.
#[derive(Template)]
#[template(path = "login.html")]
struct Login<'a> {
    title: &'a str,
    nav: &'a str,
    next: &'a str,
    error: Option<&'a str>,
}

/// The sign-in page, with an error said above the form (and a 401 status) when given.
pub fn login(next: &str, error: Option<&str>) -> Response {
    let mut r = html(&Login {
        title: "Sign in",
        nav: "",
        next,
        error,
    });
    if error.is_some() {
        *r.status_mut() = StatusCode::UNAUTHORIZED;
    }
    r
}

/// Percent-encoding of a path segment or query value (everything but unreserved characters).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encoding for one path segment (a `/` in a name is encoded too).
pub fn segment(s: &str) -> String {
    encode(s).replace('/', "%2F")
}

/// Epoch seconds as `2026-12-06 14:05:09 UTC`.
pub fn when(epoch: u64) -> String {
    let fmt =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(epoch as i64)
        .ok()
        .and_then(|t| t.format(fmt).ok())
        .unwrap_or_else(|| epoch.to_string())
}

/// A reason with its words (`0x000000e3: 0x00000000 (signature check failed …)`), or as is.
pub fn reason(raw: &str, words: Option<&str>) -> String {
    match words {
        Some(w) if !w.is_empty() => format!("{raw} ({w})"),
        _ => raw.to_string(),
    }
}

/// `statusDetails` as `key=value` pairs, the reason with its words.
pub fn details(d: &std::collections::BTreeMap<String, String>, words: Option<&str>) -> String {
    d.iter()
        .map(|(k, v)| {
            if k == "reason" {
                format!("reason={}", reason(v, words))
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_for_paths_and_queries() {
        assert_eq!(encode("/ui/rollouts/a b"), "/ui/rollouts/a%20b");
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
        assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
    }
}
