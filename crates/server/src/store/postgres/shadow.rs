//! [`ShadowStore`] on PostgreSQL: one row per thing in `shadows`. Each put is one statement
//! that compares the version and writes (`UPDATE … WHERE version = $n`; the first record an
//! `INSERT … ON CONFLICT DO NOTHING`), so of two workers writing the same shadow at once
//! exactly one wins and the other sees `false` (AWS's 409 `Version conflict`), in one
//! process or across several.

use async_trait::async_trait;
use sqlx::query;

use super::PostgresStore;
use crate::store::StoreResult;
use crate::store::rows::{shadow_cols, shadow_of, to_i64};
use crate::store::shadow::{ShadowRecord, ShadowStore};

#[async_trait]
impl ShadowStore for PostgresStore {
    async fn shadow(&self, thing: &str) -> StoreResult<Option<ShadowRecord>> {
        query(concat!(
            "SELECT ",
            shadow_cols!(),
            " FROM shadows WHERE thing = $1"
        ))
        .bind(thing)
        .fetch_optional(self.pool())
        .await?
        .map(|r| shadow_of(&r))
        .transpose()
    }

    async fn put_shadow(&self, rec: &ShadowRecord, expected: Option<u64>) -> StoreResult<bool> {
        let done = match expected {
            None => query(concat!(
                "INSERT INTO shadows (",
                shadow_cols!(),
                ") VALUES ($1, $2, $3, $4, $5) ON CONFLICT (thing) DO NOTHING"
            ))
            .bind(&rec.thing)
            .bind(&rec.state)
            .bind(&rec.metadata)
            .bind(to_i64(rec.version))
            .bind(to_i64(rec.updated_at))
            .execute(self.pool())
            .await?
            .rows_affected(),
            Some(v) => query(
                "UPDATE shadows SET state = $1, metadata = $2, version = $3, updated_at = $4 \
                 WHERE thing = $5 AND version = $6",
            )
            .bind(&rec.state)
            .bind(&rec.metadata)
            .bind(to_i64(rec.version))
            .bind(to_i64(rec.updated_at))
            .bind(&rec.thing)
            .bind(to_i64(v))
            .execute(self.pool())
            .await?
            .rows_affected(),
        };
        Ok(done == 1)
    }
}
