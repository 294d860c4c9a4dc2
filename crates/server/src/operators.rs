//! Operators: who holds which token with which role, what each API route needs, and the audit
//! log every operator action and every device outcome is appended to.
//!
//! - **Tokens.** `<data>/api-token` (written at the first start) stays the bootstrap token,
//!   role `admin`, holder `api-token`: it creates the others (`ferrota token create --name
//!   alice --role release-manager`). Created tokens are 256-bit random secrets, shown once and
//!   stored by SHA-256 only; a revoked one is refused at its next request.
//! - **Roles** ([`ferrota_api::access::Role`]) are checked per request by [`required_role`]:
//!   reads need `viewer`; releasing firmware and steering rollouts `release-manager`; every
//!   other change `admin`. A route not named there needs `admin`, so a new route is closed
//!   until it is placed.
//! - **Audit.** Every request that changes something (or was refused for its role) is
//!   appended after it ran, with the holder, the token id, AWS's operation name, the resource
//!   and the result (`200`, `403 AccessDeniedException`); every execution that reaches a
//!   terminal state is appended as `device:<thing>` (or `server` for a timeout). The record
//!   is written after the action's commit and before its answer: a crash between the two
//!   loses that record, never an answered action's. Reads are not logged (a viewer's polling
//!   would bury the changes).

use crate::context::Services;
use crate::store::{Execution, StoreError, StoreResult, TokenRecord};
use ferrota_api::access::{
    AuditEntry, CreateToken, CreatedToken, Role, TokenDescription, token_hash, token_id,
};

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's holder.
    pub name: String,
    /// The token's id.
    pub token_id: String,
    /// What the token may do.
    pub role: Role,
}

/// The holder name of the bootstrap token in `<data>/api-token`.
pub const BOOTSTRAP: &str = "api-token";

/// The principal a bearer token stands for: the bootstrap token (compared in constant time) or
/// a stored, unrevoked one; `None` for anything else.
pub async fn authenticate(
    b: &Services,
    bootstrap: &str,
    bearer: &str,
) -> StoreResult<Option<Principal>> {
    if constant_eq(bearer.as_bytes(), bootstrap.as_bytes()) {
        return Ok(Some(Principal {
            name: BOOTSTRAP.into(),
            token_id: token_id(bootstrap),
            role: Role::Admin,
        }));
    }
    let Some(t) = b.store.token_by_hash(&token_hash(bearer)).await? else {
        return Ok(None);
    };
    if t.description.revoked_at.is_some() {
        return Ok(None);
    }
    Ok(Some(Principal {
        name: t.description.name,
        token_id: t.description.token_id,
        role: t.description.role,
    }))
}

/// Byte strings equal, in time that does not depend on where they differ.
pub(crate) fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Why a token request was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The request is not acceptable (the message says why).
    #[error("{0}")]
    Invalid(String),
    /// No such token.
    #[error("token {0} not found")]
    NotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates a token for `req.name` with `req.role`: a 256-bit secret from the OS, returned once.
pub async fn create_token(b: &Services, req: &CreateToken) -> Result<CreatedToken, TokenError> {
    let name = req.name.as_str();
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "-_.@".contains(c);
    if name.is_empty() || name.len() > 64 || !name.chars().all(ok_char) {
        return Err(TokenError::Invalid(format!(
            "name '{name}': 1-64 characters of letters, digits, '-', '_', '.', '@'"
        )));
    }
    if name == BOOTSTRAP {
        return Err(TokenError::Invalid(format!(
            "name '{BOOTSTRAP}' is the bootstrap token's (<data>/api-token); choose another"
        )));
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|e| TokenError::Invalid(format!("no randomness from the OS: {e}")))?;
    let token = format!("fer_{}", hex::encode(secret));
    let description = TokenDescription {
        token_id: token_id(&token),
        name: name.to_string(),
        role: req.role,
        created_at: b.clock.now(),
        revoked_at: None,
    };
    b.store
        .create_token(&TokenRecord {
            description: description.clone(),
            hash: token_hash(&token),
        })
        .await?;
    Ok(CreatedToken { token, description })
}

/// Revokes the token `id` (its next request is refused); the description after it.
pub async fn revoke_token(b: &Services, id: &str) -> Result<TokenDescription, TokenError> {
    if !b.store.revoke_token(id, b.clock.now()).await? {
        return Err(TokenError::NotFound(id.to_string()));
    }
    b.store
        .tokens()
        .await?
        .into_iter()
        .map(|t| t.description)
        .find(|d| d.token_id == id)
        .ok_or_else(|| TokenError::NotFound(id.to_string()))
}

/// The role a request needs: reads `viewer`; releases and rollout steering `release-manager`;
/// the rest `admin` (so is anything not named, and the token list, which names holders).
pub fn required_role(method: &str, path: &str) -> Role {
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, p.as_slice()) {
        ("GET" | "HEAD", ["api", "tokens", ..]) => Role::Admin,
        ("GET" | "HEAD", _) => Role::Viewer,
        ("POST", ["api", "indices", "search"]) => Role::Viewer,
        ("POST", ["api", "files"]) => Role::ReleaseManager,
        ("POST", ["api", "ota-updates"]) => Role::ReleaseManager,
        ("POST", ["api", "ota-updates", _, "cancel"]) => Role::ReleaseManager,
        ("POST", ["api", "rollouts", _, _]) => Role::ReleaseManager,
        _ => Role::Admin,
    }
}

/// Whether a request changes something (and so is audited): everything but reads.
pub fn is_change(method: &str, path: &str) -> bool {
    !(matches!(method, "GET" | "HEAD") || (method == "POST" && path == "/api/indices/search"))
}

/// AWS's operation name for a request where AWS has one, else Ferrota's, else
/// `"<METHOD> <path>"`.
pub fn operation(method: &str, path: &str) -> String {
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    let name = match (method, p.as_slice()) {
        ("POST", ["api", "things"]) => "CreateThing",
        ("PATCH", ["api", "things", _]) => "UpdateThing",
        ("POST", ["api", "things", _, "revoke"]) => "UpdateCertificate",
        ("POST", ["api", "thing-groups"]) => "CreateDynamicThingGroup",
        ("DELETE", ["api", "thing-groups", _]) => "DeleteDynamicThingGroup",
        ("POST", ["api", "files"]) => "PutObject",
        ("POST", ["api", "ota-updates"]) => "CreateOTAUpdate",
        ("POST", ["api", "ota-updates", _, "cancel"]) => "CancelJob",
        ("POST", ["api", "rollouts", _, "pause"]) => "PauseRollout",
        ("POST", ["api", "rollouts", _, "resume"]) => "ResumeRollout",
        ("POST", ["api", "rollouts", _, "approve"]) => "ApproveRolloutWave",
        ("POST", ["api", "rollouts", _, "cancel"]) => "CancelRollout",
        ("POST", ["api", "tokens"]) => "CreateToken",
        ("DELETE", ["api", "tokens", _]) => "RevokeToken",
        _ => return format!("{method} {path}"),
    };
    name.to_string()
}

/// The resource a request acts on, from its path, or from its answer for a create
/// (`otaUpdateId`, `thingName`, `thingGroupName`, `sha256`, the new token's id).
pub fn target(path: &str, answer: Option<&serde_json::Value>) -> String {
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    fn kind(k: &str) -> &str {
        match k {
            "things" => "thing",
            "thing-groups" => "thing-group",
            "ota-updates" => "ota",
            "rollouts" => "rollout",
            "tokens" => "token",
            "files" => "file",
            other => other,
        }
    }
    if let ["api", k, id, ..] = p.as_slice() {
        return format!("{}/{id}", kind(k));
    }
    let from_answer = answer.and_then(|a| {
        ["otaUpdateId", "thingName", "thingGroupName", "sha256"]
            .iter()
            .find_map(|k| a.get(*k).and_then(|v| v.as_str()))
            .or_else(|| a.pointer("/description/tokenId").and_then(|v| v.as_str()))
            .map(str::to_string)
    });
    match (p.as_slice(), from_answer) {
        (["api", k], Some(id)) => format!("{}/{id}", kind(k)),
        _ => path.to_string(),
    }
}

/// Appends a record; a failure is logged, not returned: the action it records has been
/// committed and answered or is about to be, and must not be undone by its record.
pub async fn audit(b: &Services, entry: AuditEntry) {
    let (action, target) = (entry.action.clone(), entry.target.clone());
    if let Err(e) = b.audit.append(&*b.store, entry).await {
        tracing::error!(error = %e, action = %action, target = %target,
            "the audit log could not be written");
    }
}

/// Records a device's execution reaching a terminal state (`by_server`: a timeout the server
/// decided, not the device).
pub async fn execution_outcome(b: &Services, e: &Execution, by_server: bool) {
    if !e.status.is_terminal() {
        return;
    }
    let reason = e
        .status_details
        .get("reason")
        .map(|r| format!(" {r}"))
        .unwrap_or_default();
    let (actor, action) = if by_server {
        ("server".to_string(), "TimeoutJobExecution")
    } else {
        (format!("device:{}", e.thing), "UpdateJobExecution")
    };
    let status = e.status.as_str();
    audit(
        b,
        AuditEntry {
            at: b.clock.now(),
            actor,
            token_id: None,
            action: action.into(),
            target: format!("job/{}/thing/{}", e.job_id, e.thing),
            result: format!("{status}{reason}"),
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_need_the_role_their_action_asks() {
        let cases = [
            ("GET", "/api/things", Role::Viewer),
            ("GET", "/api/rollouts/r1", Role::Viewer),
            ("GET", "/api/audit", Role::Viewer),
            ("GET", "/metrics", Role::Viewer),
            ("POST", "/api/indices/search", Role::Viewer),
            ("POST", "/api/files", Role::ReleaseManager),
            ("POST", "/api/ota-updates", Role::ReleaseManager),
            ("POST", "/api/ota-updates/x/cancel", Role::ReleaseManager),
            ("POST", "/api/rollouts/x/pause", Role::ReleaseManager),
            ("POST", "/api/things", Role::Admin),
            ("PATCH", "/api/things/d", Role::Admin),
            ("POST", "/api/things/d/revoke", Role::Admin),
            ("POST", "/api/thing-groups", Role::Admin),
            ("DELETE", "/api/thing-groups/g", Role::Admin),
            ("GET", "/api/tokens", Role::Admin),
            ("POST", "/api/tokens", Role::Admin),
            ("DELETE", "/api/tokens/t", Role::Admin),
            ("PUT", "/api/anything-new", Role::Admin),
        ];
        for (m, p, want) in cases {
            assert_eq!(required_role(m, p), want, "{m} {p}");
        }
    }

    #[test]
    fn operations_and_targets_are_named_as_aws_names_them() {
        assert_eq!(operation("POST", "/api/ota-updates"), "CreateOTAUpdate");
        assert_eq!(
            operation("POST", "/api/things/d/revoke"),
            "UpdateCertificate"
        );
        assert_eq!(operation("PUT", "/api/x"), "PUT /api/x");
        assert_eq!(target("/api/things/d/revoke", None), "thing/d");
        let a = serde_json::json!({"otaUpdateId": "rel-1"});
        assert_eq!(target("/api/ota-updates", Some(&a)), "ota/rel-1");
        let t = serde_json::json!({"token": "s", "description": {"tokenId": "ab"}});
        assert_eq!(target("/api/tokens", Some(&t)), "token/ab");
        assert_eq!(target("/api/ota-updates", None), "/api/ota-updates");
    }
}
