//! Operator tokens and the audit log ([`AccessStore`]), for both SQL stores and memory.
//!
//! Tokens are stored by their SHA-256 only (a stolen database holds no usable token); the
//! audit log is append-only and hash-chained ([`ferrota_api::access`]): each append reads the
//! last record and writes the next one inside one transaction that holds the log's write lock
//! (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a transaction-scoped advisory lock), so records of
//! several workers form one chain with no gap and no fork.

use async_trait::async_trait;
use ferrota_api::access::{AuditEntry, AuditRecord, Role, TokenDescription};

use super::StoreResult;
use super::rows::{Cols, corrupt};

/// A stored operator token: what is listed, and the SHA-256 it is found by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// As listed.
    pub description: TokenDescription,
    /// SHA-256 of the secret, hex ([`ferrota_api::access::token_hash`]).
    pub hash: String,
}

/// Operator tokens and the audit log.
#[async_trait]
pub trait AccessStore: Send + Sync + 'static {
    /// Stores a new token ([`super::StoreError::Exists`] when its id or hash is taken).
    async fn create_token(&self, t: &TokenRecord) -> StoreResult<()>;
    /// The token with this SHA-256, revoked or not.
    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>>;
    /// Every token, oldest first.
    async fn tokens(&self) -> StoreResult<Vec<TokenRecord>>;
    /// Marks a token revoked at `at`; `false` when there is no such token. Revoking a revoked
    /// token keeps its first revocation time.
    async fn revoke_token(&self, token_id: &str, at: u64) -> StoreResult<bool>;
    /// Appends `entries` to the audit log in one transaction (one commit for all), chained in
    /// order after the last record; returns the records.
    async fn append_audit_batch(&self, entries: &[AuditEntry]) -> StoreResult<Vec<AuditRecord>>;
    /// Appends one entry ([`AccessStore::append_audit_batch`] of one).
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<AuditRecord> {
        let mut v = self.append_audit_batch(std::slice::from_ref(entry)).await?;
        v.pop()
            .ok_or_else(|| corrupt("an audit append returned no record"))
    }
    /// Up to `limit` records in stored order after the record stored at `after` (0: from the
    /// start), each with its storage position (the cursor of the next page).
    async fn audit_records(&self, after: u64, limit: u32) -> StoreResult<Vec<(u64, AuditRecord)>>;
}

/// The columns [`token_of`] reads.
macro_rules! token_cols {
    () => {
        "token_id, hash, name, role, created_at, revoked_at"
    };
}
pub(crate) use token_cols;

/// The columns [`audit_of`] reads.
macro_rules! audit_cols {
    () => {
        "id, seq, at, actor, token_id, action, target, result, prev_hash, hash"
    };
}
pub(crate) use audit_cols;

pub(crate) fn token_of(r: &impl Cols) -> StoreResult<TokenRecord> {
    let role: String = r.text("role")?;
    Ok(TokenRecord {
        description: TokenDescription {
            token_id: r.text("token_id")?,
            name: r.text("name")?,
            role: role
                .parse::<Role>()
                .map_err(|_| corrupt(&format!("token role '{role}'")))?,
            created_at: r.u64("created_at")?,
            revoked_at: r.opt_u64("revoked_at")?,
        },
        hash: r.text("hash")?,
    })
}

pub(crate) fn audit_of(r: &impl Cols) -> StoreResult<(u64, AuditRecord)> {
    Ok((
        r.u64("id")?,
        AuditRecord {
            seq: r.u64("seq")?,
            entry: AuditEntry {
                at: r.u64("at")?,
                actor: r.text("actor")?,
                token_id: r.opt_text("token_id")?,
                action: r.text("action")?,
                target: r.text("target")?,
                result: r.text("result")?,
            },
            prev_hash: r.text("prev_hash")?,
            hash: r.text("hash")?,
        },
    ))
}

/// Group commit for audit appends: callers that append while another caller's commit is in
/// flight are written together by the next commit, so a fleet's device outcomes cost one
/// commit (one fsync) per batch instead of one each. Every caller still returns only after
/// its own record is committed.
#[derive(Default)]
pub struct AuditBatcher {
    pending: std::sync::Mutex<Vec<(AuditEntry, Waiter)>>,
    leader: tokio::sync::Mutex<()>,
}

type Waiter = tokio::sync::oneshot::Sender<Result<AuditRecord, String>>;

/// Most entries one commit takes.
const BATCH_MAX: usize = 512;

impl AuditBatcher {
    /// Appends `entry` through `store`, batched with concurrent callers.
    pub async fn append(
        &self,
        store: &dyn AccessStore,
        entry: AuditEntry,
    ) -> Result<AuditRecord, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((entry, tx));
        {
            // One commit at a time; whoever holds the turn writes everything queued so far
            // (a later caller may find its entry already written by an earlier turn).
            let _turn = self.leader.lock().await;
            loop {
                let batch: Vec<(AuditEntry, Waiter)> = {
                    let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                    let n = p.len().min(BATCH_MAX);
                    p.drain(..n).collect()
                };
                if batch.is_empty() {
                    break;
                }
                let (entries, waiters): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                match store.append_audit_batch(&entries).await {
                    Ok(records) => {
                        for (w, r) in waiters.into_iter().zip(records) {
                            let _ = w.send(Ok(r));
                        }
                    }
                    Err(e) => {
                        let e = e.to_string();
                        for w in waiters {
                            let _ = w.send(Err(e.clone()));
                        }
                    }
                }
            }
        }
        rx.await
            .unwrap_or_else(|_| Err("the audit writer stopped".into()))
    }
}
