//! `/ui/audit`: the audit log, newest first, filtered by actor, action, target and result
//! (each a case-insensitive part of the field), 100 records a page.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use ferrota_api::access::AuditRecord;
use serde::Deserialize;

use crate::call::Caller;
use crate::session::Operator;
use crate::view::{self, Problem};

/// Records a page.
const PAGE: usize = 100;

/// The filter (`?actor=&action=&target=&result=&page=`).
#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    result: String,
    #[serde(default)]
    page: usize,
}

impl Filter {
    fn matches(&self, r: &AuditRecord) -> bool {
        let has = |field: &str, part: &str| {
            part.trim().is_empty() || field.to_lowercase().contains(&part.trim().to_lowercase())
        };
        let e = &r.entry;
        has(&e.actor, &self.actor)
            && has(&e.action, &self.action)
            && has(&e.target, &self.target)
            && has(&e.result, &self.result)
    }

    fn link(&self, page: usize) -> String {
        format!(
            "/ui/audit?actor={}&action={}&target={}&result={}&page={page}",
            view::encode(&self.actor),
            view::encode(&self.action),
            view::encode(&self.target),
            view::encode(&self.result)
        )
    }
}

/// One record's row.
pub struct Row {
    seq: u64,
    at: String,
    actor: String,
    token: String,
    action: String,
    target: String,
    result: String,
    hash: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    title: &'static str,
    nav: &'static str,
    actor: String,
    action: String,
    target: String,
    result: String,
    rows: Vec<Row>,
    matched: usize,
    total: usize,
    newer: Option<String>,
    older: Option<String>,
    cut: bool,
}

/// `GET /ui/audit`.
pub async fn page(
    State(api): State<Caller>,
    op: Operator,
    Query(f): Query<Filter>,
) -> Result<Response, Problem> {
    let (records, cut) = super::audit_log(&api, &op.token).await?;
    let total = records.len();
    let matched: Vec<&AuditRecord> = records.iter().rev().filter(|r| f.matches(r)).collect();
    let rows = matched
        .iter()
        .skip(f.page * PAGE)
        .take(PAGE)
        .map(|r| Row {
            seq: r.seq,
            at: view::when(r.entry.at),
            actor: r.entry.actor.clone(),
            token: r.entry.token_id.clone().unwrap_or_default(),
            action: r.entry.action.clone(),
            target: r.entry.target.clone(),
            result: r.entry.result.clone(),
            hash: r.hash.chars().take(12).collect(),
        })
        .collect();
    Ok(view::html(&AuditPage {
        title: "Audit log",
        nav: "audit",
        newer: (f.page > 0).then(|| f.link(f.page - 1)),
        older: ((f.page + 1) * PAGE < matched.len()).then(|| f.link(f.page + 1)),
        matched: matched.len(),
        total,
        actor: f.actor,
        action: f.action,
        target: f.target,
        result: f.result,
        rows,
        cut,
    }))
}
