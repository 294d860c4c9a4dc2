//! [`ShadowStore`] on SQLite: one row per thing in `shadows`, the version compared in the
//! statement that writes (`UPDATE … WHERE version = ?`, `INSERT OR IGNORE`), so a concurrent
//! writer loses cleanly instead of overwriting.

use async_trait::async_trait;
use sqlx::query;

use super::super::shadow::{ShadowRecord, ShadowStore};
use super::{SqliteStore, to_i64};
use crate::store::StoreResult;
use crate::store::rows::{shadow_cols, shadow_of};

#[async_trait]
impl ShadowStore for SqliteStore {
    async fn shadow(&self, thing: &str) -> StoreResult<Option<ShadowRecord>> {
        let row = query(concat!(
            "SELECT ",
            shadow_cols!(),
            " FROM shadows WHERE thing = ?"
        ))
        .bind(thing)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| shadow_of(&r)).transpose()
    }

    async fn put_shadow(&self, rec: &ShadowRecord, expected: Option<u64>) -> StoreResult<bool> {
        let done = match expected {
            None => query(concat!(
                "INSERT OR IGNORE INTO shadows (",
                shadow_cols!(),
                ") VALUES (?, ?, ?, ?, ?)"
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
                "UPDATE shadows SET state = ?, metadata = ?, version = ?, updated_at = ? \
                 WHERE thing = ? AND version = ?",
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
