//! The pages, one module each.

pub mod audit;
pub mod overview;
pub mod releases;
pub mod rollouts;
pub mod thing;

use ferrota_api::access::{AuditPage, AuditRecord};

use crate::call::{Caller, Failure};

/// The most audit records a page reads (100 pages of 1,000): the overview's failure chart and
/// the audit page read the log from its start, so a larger log shows its first records only
/// and the page says so.
pub const AUDIT_READ_MAX: usize = 100_000;

/// The audit log from its start, at most [`AUDIT_READ_MAX`] records; `true` when cut there.
pub async fn audit_log(api: &Caller, token: &str) -> Result<(Vec<AuditRecord>, bool), Failure> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            None => "/api/audit?maxResults=1000".to_string(),
            Some(t) => format!(
                "/api/audit?maxResults=1000&nextToken={}",
                crate::view::encode(t)
            ),
        };
        let page: AuditPage = api.get(token, &path).await?;
        out.extend(page.records);
        match page.next_token {
            Some(t) if out.len() < AUDIT_READ_MAX => next = Some(t),
            Some(_) => return Ok((out, true)),
            None => return Ok((out, false)),
        }
    }
}
