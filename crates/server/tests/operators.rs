//! Issue 18, items 2 and 3: operator tokens with roles, checked on every route, and the
//! hash-chained audit log of every change, refusal and device outcome, through the HTTP API in
//! memory (the router called directly). Tampering with the stored log is detected and named.

use std::sync::Arc;

use crate::common;

use common::operator_token as token;
use common::*;
use ferrota_api::access::{AuditRecord, ChainBreak, verify_chain};
use ferrota_server::store::SqliteStore;
use serde_json::{Value, json};

/// Every audit record, read through the API page by page.
async fn audit(s: &Mem, token: &str) -> Vec<AuditRecord> {
    let mut out = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(t) => format!("/api/audit?maxResults=2&nextToken={t}"),
            None => "/api/audit?maxResults=2".to_string(),
        };
        let (st, v) = s.api_as(token, "GET", &path, None).await;
        assert_eq!(st, 200, "{v}");
        let page: ferrota_api::access::AuditPage = serde_json::from_value(v).unwrap();
        out.extend(page.records);
        match page.next_token {
            Some(t) => next = Some(t),
            None => return out,
        }
    }
}

async fn token_count(s: &Mem) -> usize {
    s.api("GET", "/api/tokens", None).await.1["tokens"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn each_role_may_do_what_it_is_for_and_no_more() {
    let s = Mem::new();
    let (viewer, _) = token(&s, "vera", "viewer").await;
    let (release, _) = token(&s, "rel-bot", "release-manager").await;

    // A viewer reads, and cannot release, create things or see the tokens.
    assert_eq!(s.api_as(&viewer, "GET", "/api/things", None).await.0, 200);
    assert_eq!(
        s.api_as(&viewer, "GET", "/api/ota-updates", None).await.0,
        200
    );
    for (m, p, body) in [
        ("POST", "/api/ota-updates", json!({"otaUpdateId": "x"})),
        ("POST", "/api/things", json!({"thingName": "d"})),
        ("POST", "/api/rollouts/x/pause", json!({})),
        ("GET", "/api/tokens", json!({})),
        (
            "POST",
            "/api/tokens",
            json!({"name": "me", "role": "admin"}),
        ),
    ] {
        let (st, v) = s.api_as(&viewer, m, p, Some(&body)).await;
        assert_eq!(st, 403, "{m} {p}: {v}");
        assert_eq!(v["code"], "AccessDeniedException");
        assert!(v["message"].as_str().unwrap().contains("viewer"), "{v}");
    }
    assert!(
        s.store.thing("d").await.unwrap().is_none(),
        "nothing created"
    );
    assert_eq!(token_count(&s).await, 2, "no token created by a viewer");

    // A release manager uploads firmware, and cannot create things or revoke them.
    let (st, v) = s.api_as(&release, "GET", "/api/limits", None).await;
    assert_eq!(st, 200, "{v}");
    let (st, _) = s
        .api_as(
            &release,
            "POST",
            "/api/things",
            Some(&json!({"thingName": "d"})),
        )
        .await;
    assert_eq!(st, 403);
    s.thing("dev-1").await;
    let (st, _) = s
        .api_as(&release, "POST", "/api/things/dev-1/revoke", None)
        .await;
    assert_eq!(st, 403);

    // Wrong, empty and revoked tokens: 401.
    for t in ["wrong", ""] {
        assert_eq!(s.api_as(t, "GET", "/api/things", None).await.0, 401);
    }
    let (gone, gone_id) = token(&s, "leaver", "admin").await;
    assert_eq!(s.api_as(&gone, "GET", "/api/things", None).await.0, 200);
    let (st, v) = s
        .api("DELETE", &format!("/api/tokens/{gone_id}"), None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["revokedAt"].is_number(), "{v}");
    let (st, v) = s.api_as(&gone, "GET", "/api/things", None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (401, Some("UnauthorizedException"))
    );
}

#[tokio::test]
async fn bad_token_requests_are_refused_and_store_nothing() {
    let s = Mem::new();
    for (body, says) in [
        (json!({"name": "alice", "role": "root"}), "unknown variant"),
        (json!({"name": "", "role": "viewer"}), "1-64 characters"),
        (json!({"name": "a b", "role": "viewer"}), "1-64 characters"),
        (
            json!({"name": "x".repeat(65), "role": "viewer"}),
            "1-64 characters",
        ),
        (json!({"name": "api-token", "role": "viewer"}), "bootstrap"),
        (
            json!({"name": "alice", "role": "viewer", "expires": 1}),
            "unknown field",
        ),
        (json!({"role": "viewer"}), "missing field"),
    ] {
        let (st, v) = s.api("POST", "/api/tokens", Some(&body)).await;
        assert_eq!(st, 400, "{body}: {v}");
        assert_eq!(v["code"], "InvalidRequestException");
        assert!(v["message"].as_str().unwrap().contains(says), "{body}: {v}");
    }
    assert_eq!(token_count(&s).await, 0);
    let (st, v) = s.api("DELETE", "/api/tokens/0000000000000000", None).await;
    assert_eq!(
        (st, v["code"].as_str()),
        (404, Some("ResourceNotFoundException"))
    );
    for q in [
        "maxResults=0",
        "maxResults=1001",
        "nextToken=abc",
        "since=1",
    ] {
        let (st, v) = s.api("GET", &format!("/api/audit?{q}"), None).await;
        assert_eq!(st, 400, "{q}: {v}");
    }
}

#[tokio::test]
async fn changes_refusals_and_device_outcomes_are_audited_in_one_chain() {
    let s = Mem::new();
    let (viewer, viewer_id) = token(&s, "vera", "viewer").await;
    s.thing("dev-1").await;
    let data: Vec<u8> = (0..4096usize).map(|i| (i * 7 % 251) as u8).collect();
    s.data_ota("up1", "thing/dev-1", &data).await;
    let mut c = s.device("dev-1");
    let topic = "$aws/things/dev-1/jobs/AFR_OTA-up1/update";
    for status in ["IN_PROGRESS", "SUCCEEDED"] {
        let p = c.ask(topic, json!({"status": status}).to_string()).await;
        assert_eq!(p.topic, format!("{topic}/accepted"));
    }
    let _ = s
        .api_as(&viewer, "POST", "/api/ota-updates/up1/cancel", None)
        .await;
    // Reads are not recorded.
    s.api_as(&viewer, "GET", "/api/things", None).await;

    let log = audit(&s, &viewer).await;
    let head = verify_chain(&log).expect("intact");
    assert_eq!(head.records as usize, log.len());
    let lines: Vec<(String, String, String, String)> = log
        .iter()
        .map(|r| {
            (
                r.entry.actor.clone(),
                r.entry.action.clone(),
                r.entry.target.clone(),
                r.entry.result.clone(),
            )
        })
        .collect();
    let has = |actor: &str, action: &str, target: &str, result: &str| {
        lines.iter().any(|l| {
            (l.0.as_str(), l.1.as_str(), l.2.as_str(), l.3.as_str())
                == (actor, action, target, result)
        })
    };
    assert!(
        has(
            "api-token",
            "CreateToken",
            &format!("token/{viewer_id}"),
            "200"
        ),
        "{lines:?}"
    );
    assert!(
        has(
            "device:dev-1",
            "UpdateJobExecution",
            "job/AFR_OTA-up1/thing/dev-1",
            "SUCCEEDED"
        ),
        "{lines:?}"
    );
    assert!(
        has("vera", "CancelJob", "ota/up1", "403 AccessDeniedException"),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.1.starts_with("GET")),
        "reads recorded: {lines:?}"
    );
    let refused = log.iter().find(|r| r.entry.actor == "vera").unwrap();
    assert_eq!(refused.entry.token_id.as_deref(), Some(viewer_id.as_str()));
}

/// What each kind of tampering with the stored log (SQL on the database file) is reported as.
#[tokio::test]
async fn tampering_with_any_stored_record_is_detected_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ferrota.db");
    let setup = || async {
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(path.with_extension("db-wal"));
        let _ = std::fs::remove_file(path.with_extension("db-shm"));
        let sqlite = Arc::new(SqliteStore::open(&path).await.unwrap());
        let s = Mem::over(sqlite.clone());
        for i in 0..5 {
            token(&s, &format!("op{i}"), "viewer").await;
        }
        (s, sqlite)
    };
    type Expect = fn(&ChainBreak) -> bool;
    let cases: [(&str, Expect); 4] = [
        (
            "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3",
            |e| *e == ChainBreak::Changed { seq: 3 },
        ),
        ("DELETE FROM audit_log WHERE seq = 2", |e| {
            matches!(
                e,
                ChainBreak::Removed {
                    seq: 3,
                    first: 2,
                    last: 2,
                    ..
                }
            )
        }),
        (
            // Swap the rows of records 2 and 4 (their storage positions).
            "UPDATE audit_log SET id = CASE seq WHEN 2 THEN 1004 WHEN 4 THEN 1002 END WHERE seq IN (2, 4); \
             UPDATE audit_log SET id = id - 1000 WHERE id > 1000",
            |e| matches!(e, ChainBreak::Reordered { seq: 4, before: 1 }),
        ),
        ("UPDATE audit_log SET result = '500' WHERE seq = 5", |e| {
            *e == ChainBreak::Changed { seq: 5 }
        }),
    ];
    for (sql, expected) in cases {
        let (s, sqlite) = setup().await;
        verify_chain(&audit(&s, "test-token").await).expect("intact before");
        sqlx::raw_sql(sql).execute(sqlite.pool()).await.unwrap();
        let log = audit(&s, "test-token").await;
        let err = verify_chain(&log).expect_err(sql);
        assert!(expected(&err), "{sql}: {err}");
        assert!(err.to_string().contains("record"), "{err}");
        sqlite.close().await;
    }
}

#[tokio::test]
async fn the_audit_answer_is_aws_shaped_json() {
    let s = Mem::new();
    token(&s, "alice", "admin").await;
    let (st, v) = s.api("GET", "/api/audit", None).await;
    assert_eq!(st, 200);
    let r: &Value = &v["records"][0];
    for k in [
        "seq", "at", "actor", "tokenId", "action", "target", "result", "prevHash", "hash",
    ] {
        assert!(r.get(k).is_some(), "{k} missing: {r}");
    }
    assert!(v.get("nextToken").is_none(), "one page: {v}");
}
