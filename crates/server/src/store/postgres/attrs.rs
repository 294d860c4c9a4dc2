//! [`ThingIndexStore`] on PostgreSQL: tables `thing_attributes` and `dynamic_groups`.
//!
//! Replacing a thing's attributes is a delete and inserts in one transaction. Under READ
//! COMMITTED two workers doing that at once could interleave (the second's delete, planned
//! before the first committed, misses the first's new rows, and its inserts then collide with
//! them or leave a union of both maps), so the transaction first locks the thing's row
//! (`FOR NO KEY UPDATE`: writers of one thing's attributes queue behind each other, while
//! foreign-key checks of other rows naming the thing are not blocked). The last writer's map
//! wins whole, as on SQLite, whose writers are serialised by the database lock.

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::{Postgres, Row, Transaction, query};

use super::{PostgresStore, insert_certificate, insert_thing};
use crate::store::attrs::{AttributesUpdate, DynamicGroup, ThingIndexStore, group_not_found};
use crate::store::rows::exists_as;
use crate::store::rows::{group_cols, group_of, to_i64};
use crate::store::{CertRecord, StoreError, StoreResult, Thing};

async fn write_attributes(
    tx: &mut Transaction<'_, Postgres>,
    thing: &str,
    attributes: &BTreeMap<String, String>,
) -> StoreResult<()> {
    query("DELETE FROM thing_attributes WHERE thing = $1")
        .bind(thing)
        .execute(&mut **tx)
        .await?;
    if attributes.is_empty() {
        return Ok(());
    }
    // One statement for the whole map: two arrays zipped by UNNEST.
    let (names, values): (Vec<&str>, Vec<&str>) = attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .unzip();
    query(
        "INSERT INTO thing_attributes (thing, name, value) \
         SELECT $1, a.name, a.value FROM UNNEST($2::TEXT[], $3::TEXT[]) AS a(name, value)",
    )
    .bind(thing)
    .bind(names)
    .bind(values)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl ThingIndexStore for PostgresStore {
    async fn create_thing_with_attributes(
        &self,
        thing: &Thing,
        cert: &CertRecord,
        attributes: &BTreeMap<String, String>,
    ) -> StoreResult<()> {
        let mut tx = self.pool().begin().await?;
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
        let mut tx = self.pool().begin().await?;
        // The thing's row locked: a concurrent change of its attributes waits for this one.
        let exists = query("SELECT 1 FROM things WHERE name = $1 FOR NO KEY UPDATE")
            .bind(thing)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound(format!("thing {thing}")));
        }
        let rows = query("SELECT name, value FROM thing_attributes WHERE thing = $1")
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
        let rows = query("SELECT name, value FROM thing_attributes WHERE thing = $1")
            .bind(thing)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("value")?)))
            .collect()
    }

    async fn all_attributes(&self) -> StoreResult<BTreeMap<String, BTreeMap<String, String>>> {
        let rows = query("SELECT thing, name, value FROM thing_attributes")
            .fetch_all(self.pool())
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
        let r = query(concat!(
            "INSERT INTO dynamic_groups (",
            group_cols!(),
            ") VALUES ($1, $2, $3)"
        ))
        .bind(&g.name)
        .bind(&g.query_string)
        .bind(to_i64(g.created_at))
        .execute(self.pool())
        .await;
        exists_as(r, || format!("thing group {}", g.name))?;
        Ok(())
    }

    async fn dynamic_group(&self, name: &str) -> StoreResult<Option<DynamicGroup>> {
        query(concat!(
            "SELECT ",
            group_cols!(),
            " FROM dynamic_groups WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(self.pool())
        .await?
        .map(|r| group_of(&r))
        .transpose()
    }

    async fn list_dynamic_groups(&self) -> StoreResult<Vec<DynamicGroup>> {
        query(concat!(
            "SELECT ",
            group_cols!(),
            " FROM dynamic_groups ORDER BY name COLLATE \"C\""
        ))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(group_of)
        .collect()
    }

    async fn delete_dynamic_group(&self, name: &str) -> StoreResult<()> {
        let r = query("DELETE FROM dynamic_groups WHERE name = $1")
            .bind(name)
            .execute(self.pool())
            .await?;
        if r.rows_affected() == 0 {
            return Err(group_not_found(name));
        }
        Ok(())
    }
}
