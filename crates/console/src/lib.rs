//! # ferrota-console: the operator's web console of a Ferrota server
//!
//! Server-rendered pages (askama templates compiled into the binary, one small stylesheet and
//! one small script embedded with them: no JavaScript build step, nothing fetched from
//! elsewhere) that `ferrota serve` shows at its HTTP address, beside the API:
//!
//! | page | what it shows and does |
//! |---|---|
//! | `/ui/` | the fleet: devices online, versions in the field per hardware id (a chart), devices in trial, failures by reason per hour |
//! | `/ui/things/{name}` | a device: inventory (running version, bank, floor, pending trial), update history with the status details it reported |
//! | `/ui/releases` | upload a signed image: its regions and version record as `ferrota image show` prints them; its OTA signature checked against the code-signing certificate before anything is uploaded |
//! | `/ui/rollouts` | the OTA updates; a form to create one (targets, waves, rate, abort criteria, retries, maintenance windows) |
//! | `/ui/rollouts/{id}` | a rollout live (server-sent events): each wave's counts by state; pause, resume, approve, cancel |
//! | `/ui/audit` | the audit log, filtered by actor, action, target or result |
//!
//! ## Design: a client of the API, in-process
//! The console holds no state and no store of its own. Every page is made from the HTTP API's
//! answers, and every action is an API request, both sent in-process to the API's router
//! ([`router`] takes it) with the operator's own token. So each page and each action has
//! exactly the API's role checks, validation, error messages and audit records (a viewer who
//! presses "Start rollout" gets the API's 403 `AccessDeniedException`, recorded in the audit
//! log), and the console cannot drift from the API.
//!
//! ## Sign-in and requests from other sites
//! The operator signs in with an operator token (`ferrota token create`). The console checks
//! it against the API and keeps it in an `HttpOnly`, `SameSite=Strict` cookie scoped to `/ui`
//! (and `Secure` when the page came over HTTPS). A state-changing request (`POST`) whose
//! `Origin` names another host is refused before anything is sent to the API, so another site
//! cannot act with the operator's cookie even in a browser that ignores `SameSite`.
//!
//! ## Accessibility and screens
//! Landmarks (`header`, `nav`, `main`), a skip link, labels on every input, tables with
//! captions and header cells, charts with a text alternative (the same numbers as a table),
//! live regions (`aria-live`) for the rollout's progress, and one column on a narrow screen.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod assets;
mod call;
mod chart;
mod pages;
mod session;
mod view;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::Redirect;
use axum::routing::{get, post};

pub use call::Caller;

/// The largest upload the release form takes: the API's file limit plus room for the
/// signature, the certificate and the form's framing.
const UPLOAD_MAX: usize = 17 * 1024 * 1024;

/// The console's routes (`/`, `/ui/…`), answering by calling `api` in-process with the
/// signed-in operator's token. `api` is the server's API router (`/api/…`); merge the result
/// with it to serve both on one listener.
pub fn router(api: Router) -> Router {
    let state = Caller::new(api);
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(pages::overview::page))
        .route("/ui/login", get(session::login_form).post(session::login))
        .route("/ui/logout", post(session::logout))
        .route("/ui/things/{name}", get(pages::thing::page))
        .route(
            "/ui/releases",
            get(pages::releases::page).post(pages::releases::upload),
        )
        .route(
            "/ui/rollouts",
            get(pages::rollouts::list).post(pages::rollouts::create),
        )
        .route("/ui/rollouts/{id}", get(pages::rollouts::show))
        .route("/ui/rollouts/{id}/progress", get(pages::rollouts::progress))
        .route("/ui/rollouts/{id}/events", get(pages::rollouts::events))
        .route("/ui/rollouts/{id}/{action}", post(pages::rollouts::action))
        .route("/ui/audit", get(pages::audit::page))
        .route("/ui/assets/{file}", get(assets::asset))
        .layer(DefaultBodyLimit::max(UPLOAD_MAX))
        .with_state(state)
}
