//! [`AccessStore`] on PostgreSQL. An audit append holds a transaction-scoped advisory lock
//! (one key for the log) while it reads the last record and writes the next, so appends of
//! several workers form one chain; the lock ends with the transaction, also when a worker dies.

use async_trait::async_trait;
use ferrota_api::access::{AuditEntry, AuditRecord, chain};
use sqlx::query;

use super::PostgresStore;
use crate::store::StoreResult;
use crate::store::access::{AccessStore, TokenRecord, audit_cols, audit_of, token_cols, token_of};
use crate::store::rows::{exists_as, to_i64};

/// The advisory lock key of the audit log ("Ferrota" + 3): migrations hold + 1, the engine's
/// lease ([`crate::lease::PgLease::KEY`]) + 2 for as long as a worker leads, so sharing a key
/// would make every append wait for the lease holder to die.
pub(crate) const AUDIT_LOCK: i64 = 0x4665_7272_6f74_6103;

#[async_trait]
impl AccessStore for PostgresStore {
    async fn create_token(&self, t: &TokenRecord) -> StoreResult<()> {
        let d = &t.description;
        let r = query(concat!(
            "INSERT INTO operator_tokens (",
            token_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(&d.token_id)
        .bind(&t.hash)
        .bind(&d.name)
        .bind(d.role.as_str())
        .bind(to_i64(d.created_at))
        .bind(d.revoked_at.map(to_i64))
        .execute(self.pool())
        .await;
        exists_as(r, || format!("token {}", d.token_id))?;
        Ok(())
    }

    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>> {
        query(concat!(
            "SELECT ",
            token_cols!(),
            " FROM operator_tokens WHERE hash = $1"
        ))
        .bind(hash)
        .fetch_optional(self.pool())
        .await?
        .map(|r| token_of(&r))
        .transpose()
    }

    async fn tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        query(concat!(
            "SELECT ",
            token_cols!(),
            " FROM operator_tokens ORDER BY created_at, token_id"
        ))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(token_of)
        .collect()
    }

    async fn revoke_token(&self, token_id: &str, at: u64) -> StoreResult<bool> {
        let r = query(
            "UPDATE operator_tokens SET revoked_at = coalesce(revoked_at, $1) WHERE token_id = $2",
        )
        .bind(to_i64(at))
        .bind(token_id)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn append_audit_batch(&self, entries: &[AuditEntry]) -> StoreResult<Vec<AuditRecord>> {
        let mut tx = self.pool().begin().await?;
        query("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_LOCK)
            .execute(&mut *tx)
            .await?;
        let last = query(concat!(
            "SELECT ",
            audit_cols!(),
            " FROM audit_log ORDER BY id DESC LIMIT 1"
        ))
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| audit_of(&r))
        .transpose()?;
        let mut prev = last.map(|(_, r)| r);
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let rec = chain(prev.as_ref(), entry.clone());
            query("INSERT INTO audit_log (seq, at, actor, token_id, action, target, result, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(to_i64(rec.seq))
            .bind(to_i64(rec.entry.at))
            .bind(&rec.entry.actor)
            .bind(&rec.entry.token_id)
            .bind(&rec.entry.action)
            .bind(&rec.entry.target)
            .bind(&rec.entry.result)
            .bind(&rec.prev_hash)
            .bind(&rec.hash)
            .execute(&mut *tx)
            .await?;
            prev = Some(rec.clone());
            out.push(rec);
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn audit_records(&self, after: u64, limit: u32) -> StoreResult<Vec<(u64, AuditRecord)>> {
        query(concat!(
            "SELECT ",
            audit_cols!(),
            " FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(to_i64(after))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(audit_of)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_audit_lock_is_not_the_lease_or_the_migration_lock() {
        let keys = [
            super::AUDIT_LOCK,
            crate::lease::PgLease::KEY,
            super::super::MIGRATION_LOCK,
        ];
        for (i, a) in keys.iter().enumerate() {
            assert!(
                !keys[i + 1..].contains(a),
                "advisory lock key {a:#x} used twice"
            );
        }
    }
}
