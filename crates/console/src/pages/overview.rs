//! `/ui/`: the fleet at a glance, from the fleet index (`POST /api/indices/search`) and the
//! audit log's device outcomes.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use ferrota_api::{ReportedState, SearchIndex, SearchIndexAnswer};
use serde::Deserialize;

use crate::call::Caller;
use crate::chart;
use crate::session::Operator;
use crate::view::{self, Problem};

/// Devices listed on the page (the counts and charts cover the whole fleet).
const LISTED: usize = 200;
/// Hours in the failure chart.
const HOURS: u64 = 24;

/// One device's row.
pub struct Row {
    name: String,
    href: String,
    online: bool,
    version: String,
    bank: String,
    trial: bool,
    hardware: String,
}

/// One hardware id's versions.
pub struct Hardware {
    id: String,
    chart: String,
    versions: Vec<(String, u64)>,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    title: &'static str,
    nav: &'static str,
    query: String,
    total: usize,
    online: usize,
    in_trial: usize,
    unreported: usize,
    hardware: Vec<Hardware>,
    rows: Vec<Row>,
    more: usize,
    failure_chart: String,
    failures: Vec<(String, u64)>,
    audit_cut: bool,
}

/// `?query=`: a fleet-index query that narrows the page (default: every device).
#[derive(Deserialize)]
pub struct OverviewQuery {
    query: Option<String>,
}

#[derive(Deserialize)]
struct ShadowDoc {
    reported: Option<ReportedState>,
}

/// `GET /ui/`.
pub async fn page(
    State(api): State<Caller>,
    op: Operator,
    Query(q): Query<OverviewQuery>,
) -> Result<Response, Problem> {
    let query = q
        .query
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "*".into());
    let mut things = Vec::new();
    let mut next = None;
    loop {
        let a: SearchIndexAnswer = api
            .post(
                &op.token,
                "/api/indices/search",
                &SearchIndex {
                    query_string: query.clone(),
                    max_results: Some(500),
                    next_token: next.take(),
                    index_name: None,
                    query_version: None,
                },
            )
            .await?;
        things.extend(a.things);
        match a.next_token {
            Some(t) => next = Some(t),
            None => break,
        }
    }
    let mut per_hw: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let (mut online, mut in_trial, mut unreported) = (0, 0, 0);
    let mut rows = Vec::new();
    for t in &things {
        let reported = t
            .shadow
            .as_deref()
            .and_then(|s| serde_json::from_str::<ShadowDoc>(s).ok())
            .and_then(|d| d.reported);
        let fw = reported.as_ref().and_then(|r| r.firmware.clone());
        let hw = reported
            .as_ref()
            .and_then(|r| r.hardware_id.clone())
            .unwrap_or_else(|| "(not reported)".into());
        online += usize::from(t.connectivity.connected);
        match &fw {
            Some(f) => {
                in_trial += usize::from(f.pending_trial);
                *per_hw
                    .entry(hw.clone())
                    .or_default()
                    .entry(f.version.clone())
                    .or_default() += 1;
            }
            None => unreported += 1,
        }
        if rows.len() < LISTED {
            rows.push(Row {
                href: format!("/ui/things/{}", view::segment(&t.thing_name)),
                name: t.thing_name.clone(),
                online: t.connectivity.connected,
                version: fw.as_ref().map_or("—".into(), |f| f.version.clone()),
                bank: fw.as_ref().map_or("—".into(), |f| f.bank.clone()),
                trial: fw.as_ref().is_some_and(|f| f.pending_trial),
                hardware: hw,
            });
        }
    }
    let hardware = per_hw
        .into_iter()
        .map(|(id, versions)| {
            let versions: Vec<(String, u64)> = versions.into_iter().collect();
            Hardware {
                chart: chart::bars(&format!("Versions running on {id}"), &versions),
                id,
                versions,
            }
        })
        .collect();
    let (records, audit_cut) = super::audit_log(&api, &op.token).await?;
    let (failure_chart, failures) = failures_by_hour(&records, now());
    Ok(view::html(&Overview {
        title: "Fleet",
        nav: "fleet",
        more: things.len().saturating_sub(LISTED),
        total: things.len(),
        query,
        online,
        in_trial,
        unreported,
        hardware,
        rows,
        failure_chart,
        failures,
        audit_cut,
    }))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Device outcomes that failed (FAILED, REJECTED, TIMED_OUT), by reason, per hour of the last
/// [`HOURS`] hours: the chart, and the totals by reason for its table.
fn failures_by_hour(
    records: &[ferrota_api::access::AuditRecord],
    now: u64,
) -> (String, Vec<(String, u64)>) {
    let start = (now / 3600).saturating_sub(HOURS - 1) * 3600;
    let mut by_reason: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in records {
        let e = &r.entry;
        if !matches!(
            e.action.as_str(),
            "UpdateJobExecution" | "TimeoutJobExecution"
        ) || e.at < start
        {
            continue;
        }
        let (status, reason) = e.result.split_once(' ').unwrap_or((&e.result, ""));
        if !matches!(status, "FAILED" | "REJECTED" | "TIMED_OUT") {
            continue;
        }
        let key = if reason.is_empty() {
            status.to_string()
        } else {
            format!("{status} {reason}")
        };
        let hour = ((e.at - start) / 3600).min(HOURS - 1) as usize;
        by_reason
            .entry(key)
            .or_insert_with(|| vec![0; HOURS as usize])[hour] += 1;
    }
    let totals: Vec<(String, u64)> = by_reason
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().sum()))
        .collect();
    let series: Vec<String> = by_reason.keys().cloned().collect();
    let buckets: Vec<(String, Vec<u64>)> = (0..HOURS)
        .map(|h| {
            let at = start + h * 3600;
            let label = view::when(at)[11..16].to_string();
            (label, by_reason.values().map(|v| v[h as usize]).collect())
        })
        .collect();
    let chart = chart::stacked(
        "Failed, rejected and timed-out updates per hour, by reason",
        &series,
        &buckets,
    );
    (chart, totals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrota_api::access::{AuditEntry, chain};

    #[test]
    fn failures_are_counted_by_reason_in_their_hour() {
        let now = 100 * 3600 + 1800;
        let mut prev = None;
        let mut log = Vec::new();
        for (at, action, result) in [
            (
                now - 10,
                "UpdateJobExecution",
                "FAILED 0x000000e3: 0x00000000",
            ),
            (
                now - 20,
                "UpdateJobExecution",
                "FAILED 0x000000e3: 0x00000000",
            ),
            (now - 3600, "TimeoutJobExecution", "TIMED_OUT"),
            (now - 30, "UpdateJobExecution", "SUCCEEDED"),
            (now - 30 * 3600, "UpdateJobExecution", "FAILED old"),
            (now - 5, "CreateOTAUpdate", "200"),
        ] {
            let r = chain(
                prev.as_ref(),
                AuditEntry {
                    at,
                    actor: "device:d".into(),
                    token_id: None,
                    action: action.into(),
                    target: "job/j/thing/d".into(),
                    result: result.into(),
                },
            );
            log.push(r.clone());
            prev = Some(r);
        }
        let (svg, totals) = failures_by_hour(&log, now);
        assert_eq!(
            totals,
            vec![
                ("FAILED 0x000000e3: 0x00000000".to_string(), 2),
                ("TIMED_OUT".to_string(), 1)
            ]
        );
        assert!(svg.contains("TIMED_OUT"), "{svg}");
    }
}
