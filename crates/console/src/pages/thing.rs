//! `/ui/things/{name}`: one device: its inventory, and its update history (every execution,
//! newest first, with the status details it reported and each step of the newest ones).

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use ferrota_api::{HistoryDescription, ThingDescription};

use crate::call::Caller;
use crate::session::Operator;
use crate::view::{self, Problem};

/// Executions whose step-by-step history is shown (the rest show their final state).
const WITH_STEPS: usize = 5;

/// One step of an execution.
pub struct Step {
    at: String,
    status: String,
    details: String,
}

/// One execution.
pub struct Execution {
    job_id: String,
    rollout_href: Option<String>,
    status: String,
    details: String,
    queued_at: String,
    updated_at: String,
    steps: Vec<Step>,
}

#[derive(Template)]
#[template(path = "thing.html")]
struct ThingPage {
    title: String,
    nav: &'static str,
    name: String,
    groups: String,
    connected: bool,
    last_seen: String,
    version: String,
    bank: String,
    trial: String,
    floor: String,
    hardware: String,
    reported_at: String,
    attributes: Vec<(String, String)>,
    executions: Vec<Execution>,
}

/// `GET /ui/things/{name}`.
pub async fn page(
    State(api): State<Caller>,
    op: Operator,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    let t: ThingDescription = api
        .get(&op.token, &format!("/api/things/{}", view::segment(&name)))
        .await?;
    let inv = &t.inventory;
    let fw = inv.reported.as_ref().and_then(|r| r.firmware.as_ref());
    let mut execs = t.executions.clone();
    execs.sort_by_key(|e| std::cmp::Reverse(e.queued_at));
    let mut executions = Vec::new();
    for (i, e) in execs.iter().enumerate() {
        let ota = e.job_id.strip_prefix("AFR_OTA-");
        let steps = match ota {
            Some(id) if i < WITH_STEPS => {
                let path = format!(
                    "/api/ota-updates/{}/things/{}/history",
                    view::segment(id),
                    view::segment(&t.thing_name)
                );
                let h: Vec<HistoryDescription> =
                    api.get(&op.token, &path).await.unwrap_or_default();
                h.iter()
                    .map(|s| Step {
                        at: view::when(s.last_updated_at),
                        status: s.status.clone(),
                        details: view::details(&s.status_details, s.reason_text.as_deref()),
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        executions.push(Execution {
            rollout_href: ota.map(|id| format!("/ui/rollouts/{}", view::segment(id))),
            job_id: e.job_id.clone(),
            status: e.status.clone(),
            details: view::details(&e.status_details, e.reason_text.as_deref()),
            queued_at: view::when(e.queued_at),
            updated_at: view::when(e.last_updated_at),
            steps,
        });
    }
    let dash = || "—".to_string();
    Ok(view::html(&ThingPage {
        title: format!("Device {}", t.thing_name),
        nav: "fleet",
        name: t.thing_name.clone(),
        groups: if t.groups.is_empty() {
            dash()
        } else {
            t.groups.join(", ")
        },
        connected: inv.connected,
        last_seen: inv.last_seen.map_or_else(dash, view::when),
        version: fw.map_or_else(dash, |f| f.version.clone()),
        bank: fw.map_or_else(dash, |f| f.bank.clone()),
        trial: fw.map_or_else(dash, |f| {
            if f.pending_trial {
                "pending: runs on trial until its self-test confirms it".into()
            } else {
                "none (confirmed)".into()
            }
        }),
        floor: fw.map_or_else(dash, |f| f.anti_rollback_floor.to_string()),
        hardware: inv
            .reported
            .as_ref()
            .and_then(|r| r.hardware_id.clone())
            .unwrap_or_else(dash),
        reported_at: inv.reported_at.map_or_else(dash, view::when),
        attributes: t.attributes.clone().into_iter().collect(),
        executions,
    }))
}
