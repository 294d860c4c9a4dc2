//! [`ThingIndexStore`] on SQLite: tables `thing_attributes` and `dynamic_groups` (one
//! migration in [`super::MIGRATIONS`]).

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::{Row, query};

use super::super::attrs::{AttributesUpdate, DynamicGroup, ThingIndexStore, group_not_found};
use super::{
    CertRecord, SqliteStore, StoreError, StoreResult, Thing, insert_certificate, insert_thing,
    to_i64,
};
use crate::store::rows::exists_as;
use crate::store::rows::{group_cols, group_of};

/// The migration this file's tables need (appended to [`super::MIGRATIONS`]).
pub(super) const MIGRATION: &str = r#"
CREATE TABLE thing_attributes (thing TEXT NOT NULL REFERENCES things(name), name TEXT NOT NULL,
  value TEXT NOT NULL, PRIMARY KEY (thing, name));
CREATE TABLE dynamic_groups (name TEXT PRIMARY KEY, query_string TEXT NOT NULL,
  created_at INTEGER NOT NULL);
"#;

async fn write_attributes(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    thing: &str,
    attributes: &BTreeMap<String, String>,
) -> StoreResult<()> {
    query("DELETE FROM thing_attributes WHERE thing = ?")
        .bind(thing)
        .execute(&mut **tx)
        .await?;
    for (k, v) in attributes {
        query("INSERT INTO thing_attributes (thing, name, value) VALUES (?, ?, ?)")
            .bind(thing)
            .bind(k)
            .bind(v)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl ThingIndexStore for SqliteStore {
    async fn create_thing_with_attributes(
        &self,
        thing: &Thing,
        cert: &CertRecord,
        attributes: &BTreeMap<String, String>,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        insert_thing(&mut tx, thing).await?;
        insert_certificate(&mut *tx, cert).await?;
        write_attributes(&mut tx, &thing.name, attributes).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_attributes(
        &self,
        thing: &str,
        attributes: &BTreeMap<String, String>,
    ) -> StoreResult<()> {
        // A replacement is an update that ignores what is stored (and cannot be refused).
        let replace = |_| Ok(attributes.clone());
        self.update_attributes(thing, &replace)
            .await?
            .map_err(StoreError::Corrupt)
    }

    async fn update_attributes(
        &self,
        thing: &str,
        update: &AttributesUpdate<'_>,
    ) -> StoreResult<Result<(), String>> {
        // IMMEDIATE: the write lock is taken before the read, so no merge interleaves.
        let mut tx = self.write_tx().await?;
        let exists = query("SELECT 1 FROM things WHERE name = ?")
            .bind(thing)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound(format!("thing {thing}")));
        }
        let rows = query("SELECT name, value FROM thing_attributes WHERE thing = ?")
            .bind(thing)
            .fetch_all(&mut *tx)
            .await?;
        let stored = rows
            .iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("value")?)))
            .collect::<StoreResult<BTreeMap<String, String>>>()?;
        let new = match update(stored) {
            Ok(n) => n,
            Err(why) => return Ok(Err(why)),
        };
        write_attributes(&mut tx, thing, &new).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    async fn attributes(&self, thing: &str) -> StoreResult<BTreeMap<String, String>> {
        let rows = query("SELECT name, value FROM thing_attributes WHERE thing = ?")
            .bind(thing)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("value")?)))
            .collect()
    }

    async fn all_attributes(&self) -> StoreResult<BTreeMap<String, BTreeMap<String, String>>> {
        let rows = query("SELECT thing, name, value FROM thing_attributes")
            .fetch_all(&self.pool)
            .await?;
        let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for r in rows {
            out.entry(r.try_get("thing")?)
                .or_default()
                .insert(r.try_get("name")?, r.try_get("value")?);
        }
        Ok(out)
    }

    async fn create_dynamic_group(&self, g: &DynamicGroup) -> StoreResult<()> {
        let r =
            query("INSERT INTO dynamic_groups (name, query_string, created_at) VALUES (?, ?, ?)")
                .bind(&g.name)
                .bind(&g.query_string)
                .bind(to_i64(g.created_at))
                .execute(&self.pool)
                .await;
        exists_as(r, || format!("thing group {}", g.name))?;
        Ok(())
    }

    async fn dynamic_group(&self, name: &str) -> StoreResult<Option<DynamicGroup>> {
        query(concat!(
            "SELECT ",
            group_cols!(),
            " FROM dynamic_groups WHERE name = ?"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| group_of(&r))
        .transpose()
    }

    async fn list_dynamic_groups(&self) -> StoreResult<Vec<DynamicGroup>> {
        query(concat!(
            "SELECT ",
            group_cols!(),
            " FROM dynamic_groups ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(group_of)
        .collect()
    }

    async fn delete_dynamic_group(&self, name: &str) -> StoreResult<()> {
        let r = query("DELETE FROM dynamic_groups WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        if r.rows_affected() == 0 {
            return Err(group_not_found(name));
        }
        Ok(())
    }
}
