//! `/ui/rollouts`: the OTA updates, the form that creates one, and a rollout's live page with
//! its steering (pause, resume, approve, cancel). The form builds AWS's CreateOTAUpdate
//! request and sends it to the API, which validates it as it validates any other client's: a
//! mistake comes back as the API's own message and nothing is created.

use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use ferrota_api::{
    AbortConfig, AbortCriteria, CreateOtaUpdate, JobProcessDetails, MaintenanceWindow,
    OtaDescription, OtaFile, OtaSummary, RetryConfig, RetryCriteria, RolloutConfig,
    RolloutDescription, RolloutStatus, RolloutWaves, SchedulingConfig, TimeoutConfig,
};
use futures_util::Stream;
use serde::Deserialize;

use super::releases::{Choice, earlier};
use crate::call::Caller;
use crate::session::Operator;
use crate::view::{self, Problem};

/// How often the live page asks the API for the rollout's state.
const POLL: Duration = Duration::from_secs(1);

/// A row of the list.
pub struct Row {
    id: String,
    href: String,
    status: String,
    created: String,
    error: String,
}

#[derive(Template)]
#[template(path = "rollouts.html")]
struct ListPage {
    title: &'static str,
    nav: &'static str,
    rows: Vec<Row>,
    earlier: Vec<Choice>,
    file_json: String,
    file_label: String,
}

/// `GET /ui/rollouts`.
pub async fn list(State(api): State<Caller>, op: Operator) -> Result<Response, Problem> {
    let mut list: Vec<OtaSummary> = api.get(&op.token, "/api/ota-updates").await?;
    list.sort_by_key(|o| std::cmp::Reverse(o.created_at));
    let rows = list
        .into_iter()
        .map(|o| Row {
            href: format!("/ui/rollouts/{}", view::segment(&o.ota_update_id)),
            status: o.status,
            created: view::when(o.created_at),
            error: o
                .error_info
                .map(|e| format!("{}: {}", e.code, e.message))
                .unwrap_or_default(),
            id: o.ota_update_id,
        })
        .collect();
    Ok(view::html(&ListPage {
        title: "Rollouts",
        nav: "rollouts",
        rows,
        earlier: earlier(&api, &op.token).await?,
        file_json: String::new(),
        file_label: String::new(),
    }))
}

/// The create form. Empty fields are left out of the request.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateForm {
    #[serde(default)]
    ota_update_id: String,
    #[serde(default)]
    description: String,
    /// The release: an [`OtaFile`] as JSON.
    #[serde(default)]
    file: String,
    /// Things, separated by spaces, commas or lines.
    #[serde(default)]
    things: String,
    /// Thing groups, the same.
    #[serde(default)]
    groups: String,
    /// One wave a line, `NAME:SIZE[:OPTION]…`.
    #[serde(default)]
    waves: String,
    #[serde(default)]
    max_per_minute: String,
    #[serde(default)]
    abort_failed_percent: String,
    #[serde(default)]
    abort_min_executed: String,
    #[serde(default)]
    retries: String,
    #[serde(default)]
    in_progress_timeout: String,
    /// One window a line, `cron(…)=MINUTES`.
    #[serde(default)]
    maintenance_windows: String,
    #[serde(default)]
    continuous: Option<String>,
}

fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
}

fn number<T: std::str::FromStr>(s: &str, what: &str) -> Result<Option<T>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| format!("{what}: {s:?} is not a number"))
}

/// The request the form describes; what is wrong in the form's own terms (the API checks the
/// rest and says so in its terms).
fn request(f: &CreateForm) -> Result<CreateOtaUpdate, String> {
    let id = f.ota_update_id.trim();
    if id.is_empty() {
        return Err("give the rollout an id (otaUpdateId)".into());
    }
    let file: OtaFile = serde_json::from_str(f.file.trim())
        .map_err(|_| "choose a release (upload one on the Releases page)".to_string())?;
    let mut r = CreateOtaUpdate::new(id)
        .description(f.description.trim())
        .file(file);
    for t in words(&f.things) {
        r = r.thing(t);
    }
    for g in words(&f.groups) {
        r = r.thing_group(g);
    }
    if r.targets.is_empty() {
        return Err("give at least one thing or thing group as a target".into());
    }
    let waves = f
        .waves
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| ferrota_api::wavespec::parse_wave(l).map_err(|e| format!("wave {l:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if !waves.is_empty() {
        r.rollout_waves = Some(RolloutWaves { waves });
    }
    if let Some(n) = number(&f.max_per_minute, "things a minute")? {
        r.aws_job_executions_rollout_config = Some(RolloutConfig {
            maximum_per_minute: Some(n),
            ..RolloutConfig::default()
        });
    }
    match (
        number::<f64>(&f.abort_failed_percent, "abort: failed %")?,
        number::<u64>(&f.abort_min_executed, "abort: after executions")?,
    ) {
        (Some(p), Some(n)) => {
            r.aws_job_abort_config = Some(AbortConfig {
                criteria_list: vec![AbortCriteria {
                    failure_type: "ALL".into(),
                    action: "CANCEL".into(),
                    threshold_percentage: p,
                    min_number_of_executed_things: n,
                }],
            });
        }
        (None, None) => {}
        _ => {
            return Err(
                "abort: give both the failed % and the executions it is judged after".into(),
            );
        }
    }
    if let Some(n) = number(&f.retries, "retries")? {
        r.job_executions_retry_config = Some(RetryConfig {
            criteria_list: vec![RetryCriteria {
                failure_type: "ALL".into(),
                number_of_retries: n,
            }],
        });
    }
    if let Some(m) = number(&f.in_progress_timeout, "in-progress timeout")? {
        r.aws_job_timeout_config = Some(TimeoutConfig {
            in_progress_timeout_in_minutes: m,
        });
    }
    let windows = f
        .maintenance_windows
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (cron, minutes) = l
                .rsplit_once('=')
                .ok_or_else(|| format!("maintenance window {l:?}: expected cron(…)=MINUTES"))?;
            Ok(MaintenanceWindow {
                start_time: cron.trim().to_string(),
                duration_in_minutes: minutes.trim().parse().map_err(|_| {
                    format!("maintenance window {l:?}: {minutes:?} is not a number of minutes")
                })?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    if !windows.is_empty() {
        r.scheduling_config = Some(SchedulingConfig {
            maintenance_windows: windows,
            ..SchedulingConfig::default()
        });
    }
    if f.continuous.is_some() {
        r.target_selection = Some("CONTINUOUS".into());
    }
    Ok(r)
}

/// `POST /ui/rollouts`: creates the OTA update, then shows its rollout.
pub async fn create(
    State(api): State<Caller>,
    op: Operator,
    Form(f): Form<CreateForm>,
) -> Result<Response, Problem> {
    let req = request(&f).map_err(|e| Problem::Invalid(format!("{e}; nothing was created")))?;
    let d: OtaDescription = api.post(&op.token, "/api/ota-updates", &req).await?;
    Ok(Redirect::to(&format!("/ui/rollouts/{}", view::segment(&d.ota_update_id))).into_response())
}

/// A wave's row in the progress fragment.
pub struct WaveRow {
    name: String,
    things: u64,
    notified: u64,
    succeeded: u64,
    failed: u64,
    open: bool,
    done_pct: u64,
    failed_pct: u64,
    running_pct: u64,
}

/// The live part of a rollout's page (sent again on every change).
#[derive(Template)]
#[template(path = "progress.html")]
struct Progress {
    id: String,
    status: String,
    reason: String,
    next_release: String,
    rate: String,
    waves: Vec<WaveRow>,
    counts: Vec<(&'static str, u64)>,
    can_pause: bool,
    can_resume: bool,
    can_approve: bool,
    can_cancel: bool,
}

/// One execution's row.
pub struct ExecRow {
    thing: String,
    href: String,
    status: String,
    details: String,
    updated: String,
}

#[derive(Template)]
#[template(path = "rollout.html")]
struct RolloutPage {
    title: String,
    nav: &'static str,
    id: String,
    events: String,
    progress: String,
    executions: Vec<ExecRow>,
    more: bool,
}

fn counts(p: &JobProcessDetails) -> Vec<(&'static str, u64)> {
    vec![
        ("QUEUED", p.number_of_queued_things),
        ("IN_PROGRESS", p.number_of_in_progress_things),
        ("SUCCEEDED", p.number_of_succeeded_things),
        ("FAILED", p.number_of_failed_things),
        ("REJECTED", p.number_of_rejected_things),
        ("TIMED_OUT", p.number_of_timed_out_things),
        ("CANCELED", p.number_of_canceled_things),
        ("REMOVED", p.number_of_removed_things),
    ]
}

fn pct(part: u64, whole: u64) -> u64 {
    (part * 100).checked_div(whole).unwrap_or(0).min(100)
}

fn progress_of(r: &RolloutDescription, d: &OtaDescription) -> Progress {
    let ended = matches!(r.status, RolloutStatus::Stopped)
        || matches!(d.status.as_str(), "CANCELED" | "DELETION_IN_PROGRESS");
    Progress {
        id: r.ota_update_id.clone(),
        status: r.status.as_str().into(),
        reason: match (&r.reason_code, &r.comment) {
            (Some(c), Some(w)) if w.starts_with(c.as_str()) => w.clone(),
            (Some(c), Some(w)) => format!("{c}: {w}"),
            (Some(c), None) => c.clone(),
            (None, Some(w)) => w.clone(),
            (None, None) => String::new(),
        },
        next_release: r.next_release_at.map(view::when).unwrap_or_default(),
        rate: r
            .rate_per_minute
            .map_or_else(|| "not limited".into(), |n| format!("{n} a minute")),
        waves: r
            .waves
            .iter()
            .map(|w| {
                let running = w
                    .number_of_notified_things
                    .saturating_sub(w.number_of_succeeded_things + w.number_of_failed_things);
                WaveRow {
                    name: w.name.clone(),
                    things: w.number_of_things,
                    notified: w.number_of_notified_things,
                    succeeded: w.number_of_succeeded_things,
                    failed: w.number_of_failed_things,
                    open: w.open,
                    done_pct: pct(w.number_of_succeeded_things, w.number_of_things),
                    failed_pct: pct(w.number_of_failed_things, w.number_of_things),
                    running_pct: pct(running, w.number_of_things),
                }
            })
            .collect(),
        counts: counts(&d.job_process_details),
        can_pause: matches!(
            r.status,
            RolloutStatus::Running
                | RolloutStatus::Scheduled
                | RolloutStatus::WaitingForApproval
                | RolloutStatus::Finished
        ) && !ended,
        can_resume: r.status == RolloutStatus::Paused && !ended,
        can_approve: r.status == RolloutStatus::WaitingForApproval && !ended,
        can_cancel: !ended,
    }
}

/// The rollout and its OTA update with the first `executions` executions (the counts by
/// state come with any page, so the live part asks for one).
async fn state(
    api: &Caller,
    token: &str,
    id: &str,
    executions: usize,
) -> Result<(RolloutDescription, OtaDescription), Problem> {
    let seg = view::segment(id);
    let r: RolloutDescription = api.get(token, &format!("/api/rollouts/{seg}")).await?;
    let d: OtaDescription = api
        .get(
            token,
            &format!("/api/ota-updates/{seg}?maxResults={executions}"),
        )
        .await?;
    Ok((r, d))
}

fn render_progress(r: &RolloutDescription, d: &OtaDescription) -> String {
    progress_of(r, d)
        .render()
        .unwrap_or_else(|e| format!("<p>the progress could not be rendered: {e}</p>"))
}

/// `GET /ui/rollouts/{id}`.
pub async fn show(
    State(api): State<Caller>,
    op: Operator,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let (r, d) = state(&api, &op.token, &id, 100).await?;
    let executions = d
        .executions
        .iter()
        .map(|e| ExecRow {
            href: format!("/ui/things/{}", view::segment(&e.thing_name)),
            thing: e.thing_name.clone(),
            status: e.status.clone(),
            details: view::details(&e.status_details, e.reason_text.as_deref()),
            updated: view::when(e.last_updated_at),
        })
        .collect();
    Ok(view::html(&RolloutPage {
        title: format!("Rollout {id}"),
        nav: "rollouts",
        events: format!("/ui/rollouts/{}/events", view::segment(&id)),
        progress: render_progress(&r, &d),
        executions,
        more: d.next_token.is_some(),
        id,
    }))
}

/// `GET /ui/rollouts/{id}/progress`: the live part alone (for a page without scripts, and
/// for tools).
pub async fn progress(
    State(api): State<Caller>,
    op: Operator,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let (r, d) = state(&api, &op.token, &id, 1).await?;
    Ok(axum::response::Html(render_progress(&r, &d)).into_response())
}

/// The state of one live page's event stream.
struct Live {
    api: Caller,
    token: String,
    id: String,
    last: String,
    started: bool,
    ended: bool,
}

/// `GET /ui/rollouts/{id}/events`: server-sent events, a `progress` event with the live
/// part's HTML whenever it changes (the API is asked every second), and one `problem` event,
/// ending the stream, when the API refuses (a token revoked meanwhile, the update deleted).
pub async fn events(
    State(api): State<Caller>,
    op: Operator,
    Path(id): Path<String>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let live = Live {
        api,
        token: op.token,
        id,
        last: String::new(),
        started: false,
        ended: false,
    };
    let stream = futures_util::stream::unfold(live, |mut s| async move {
        if s.ended {
            return None;
        }
        loop {
            if s.started {
                tokio::time::sleep(POLL).await;
            }
            s.started = true;
            match state(&s.api, &s.token, &s.id, 1).await {
                Ok((r, d)) => {
                    let html = render_progress(&r, &d).replace('\r', "");
                    if html != s.last {
                        s.last.clone_from(&html);
                        return Some((Ok(Event::default().event("progress").data(html)), s));
                    }
                }
                Err(p) => {
                    s.ended = true;
                    let text = match p {
                        Problem::Api(e) => format!("{} {}: {}", e.status, e.code, e.message),
                        _ => "the rollout could not be read".into(),
                    };
                    return Some((Ok(Event::default().event("problem").data(text)), s));
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// `POST /ui/rollouts/{id}/{action}`: pause, resume, approve or cancel (`force` from the
/// form), then back to the rollout's page; a refusal is shown with the API's words.
pub async fn action(
    State(api): State<Caller>,
    op: Operator,
    Path((id, action)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    if !matches!(action.as_str(), "pause" | "resume" | "approve" | "cancel") {
        return Err(Problem::Invalid(format!(
            "rollout action {action:?} (pause, resume, approve, cancel)"
        )));
    }
    // The form's one field, `force=on` (cancel only); a bodyless POST is no force.
    let force = action == "cancel"
        && body
            .split(|b| *b == b'&')
            .any(|kv| kv.starts_with(b"force="));
    let path = format!(
        "/api/rollouts/{}/{action}{}",
        view::segment(&id),
        if force { "?force=true" } else { "" }
    );
    api.send(&op.token, axum::http::Method::POST, &path, Vec::new())
        .await?;
    Ok(Redirect::to(&format!("/ui/rollouts/{}", view::segment(&id))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> String {
        serde_json::to_string(&OtaFile::new("fw.bin", "ab".repeat(32), "sig")).unwrap()
    }

    #[test]
    fn the_form_becomes_aws_create_ota_update() {
        let f = CreateForm {
            ota_update_id: "rel-2".into(),
            file: file(),
            things: "d1, d2\nd3".into(),
            groups: "lab".into(),
            waves: "canary:1:approve\n\nrest:100%".into(),
            max_per_minute: "60".into(),
            abort_failed_percent: "10".into(),
            abort_min_executed: "5".into(),
            retries: "2".into(),
            maintenance_windows: "cron(0 2 * * ? *)=60".into(),
            continuous: Some("on".into()),
            ..CreateForm::default()
        };
        let r = request(&f).unwrap();
        assert_eq!(
            r.targets,
            vec!["thing/d1", "thing/d2", "thing/d3", "thinggroup/lab"]
        );
        let waves = r.rollout_waves.unwrap().waves;
        assert_eq!(waves.len(), 2);
        assert!(waves[0].requires_approval);
        assert_eq!(
            r.aws_job_executions_rollout_config
                .unwrap()
                .maximum_per_minute,
            Some(60)
        );
        assert_eq!(
            r.aws_job_abort_config.unwrap().criteria_list[0].min_number_of_executed_things,
            5
        );
        assert_eq!(
            r.job_executions_retry_config.unwrap().criteria_list[0].number_of_retries,
            2
        );
        assert_eq!(
            r.scheduling_config.unwrap().maintenance_windows[0].duration_in_minutes,
            60
        );
        assert_eq!(r.target_selection.as_deref(), Some("CONTINUOUS"));
    }

    #[test]
    fn a_bad_form_is_refused_in_its_own_words() {
        let ok = CreateForm {
            ota_update_id: "r".into(),
            file: file(),
            things: "d1".into(),
            ..CreateForm::default()
        };
        assert!(request(&ok).is_ok());
        for (f, why) in [
            (
                CreateForm {
                    ota_update_id: " ".into(),
                    ..CreateForm {
                        file: file(),
                        things: "d".into(),
                        ..Default::default()
                    }
                },
                "give the rollout an id",
            ),
            (
                CreateForm {
                    file: String::new(),
                    ..CreateForm {
                        ota_update_id: "r".into(),
                        things: "d".into(),
                        ..Default::default()
                    }
                },
                "choose a release",
            ),
            (
                CreateForm {
                    things: String::new(),
                    ..CreateForm {
                        ota_update_id: "r".into(),
                        file: file(),
                        ..Default::default()
                    }
                },
                "at least one thing",
            ),
            (
                CreateForm {
                    waves: "x".into(),
                    ..CreateForm {
                        ota_update_id: "r".into(),
                        file: file(),
                        things: "d".into(),
                        ..Default::default()
                    }
                },
                "wave \"x\": no SIZE",
            ),
            (
                CreateForm {
                    max_per_minute: "lots".into(),
                    ..CreateForm {
                        ota_update_id: "r".into(),
                        file: file(),
                        things: "d".into(),
                        ..Default::default()
                    }
                },
                "is not a number",
            ),
            (
                CreateForm {
                    abort_failed_percent: "5".into(),
                    ..CreateForm {
                        ota_update_id: "r".into(),
                        file: file(),
                        things: "d".into(),
                        ..Default::default()
                    }
                },
                "give both",
            ),
            (
                CreateForm {
                    maintenance_windows: "cron(0 2 * * ? *)".into(),
                    ..CreateForm {
                        ota_update_id: "r".into(),
                        file: file(),
                        things: "d".into(),
                        ..Default::default()
                    }
                },
                "expected cron",
            ),
        ] {
            let e = request(&f).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }
}
