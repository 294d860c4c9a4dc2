//! TEMPORARY — DELETE AT MERGE. Placeholder `RolloutStore`, `ShadowStore` and
//! `ThingIndexStore` impls so `PostgresStore` is a `Store` on branch h17-pga alone; the real
//! ones are helper pgb's (`postgres/{rollout,shadow,attrs}.rs`). Every method fails with
//! `StoreError::Corrupt("not yet")`; nothing on this branch calls them.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::super::*;
use super::PostgresStore;

fn not_yet<T>() -> StoreResult<T> {
    Err(StoreError::Corrupt("not yet".into()))
}

#[async_trait]
impl RolloutStore for PostgresStore {
    async fn create_ota_rollout(
        &self,
        _: &StreamRecord,
        _: &Job,
        _: &OtaRecord,
        _: &RolloutRecord,
        _: &[(String, u32)],
    ) -> StoreResult<()> {
        not_yet()
    }
    async fn rollout(&self, _: &str) -> StoreResult<Option<RolloutRecord>> {
        not_yet()
    }
    async fn update_rollout(&self, _: &RolloutRecord, _: u64) -> StoreResult<bool> {
        not_yet()
    }
    async fn active_rollouts(&self) -> StoreResult<Vec<RolloutRecord>> {
        not_yet()
    }
    async fn due_rollouts(&self, _: u64) -> StoreResult<Vec<String>> {
        not_yet()
    }
    async fn next_rollout_at(&self) -> StoreResult<Option<u64>> {
        not_yet()
    }
    async fn unreleased_targets(&self, _: &str, _: u32, _: usize) -> StoreResult<Vec<String>> {
        not_yet()
    }
    async fn release_targets(&self, _: &str, _: &[String], _: u64) -> StoreResult<usize> {
        not_yet()
    }
    async fn wave_counts(&self, _: &str) -> StoreResult<Vec<WaveCounts>> {
        not_yet()
    }
    async fn add_target(&self, _: &str, _: &str, _: u32) -> StoreResult<bool> {
        not_yet()
    }
    async fn retry_execution(&self, _: &Execution, _: u64) -> StoreResult<bool> {
        not_yet()
    }
    async fn set_cancel_info(&self, _: &str, _: &CancelInfo) -> StoreResult<()> {
        not_yet()
    }
    async fn cancel_info(&self, _: &str) -> StoreResult<Option<CancelInfo>> {
        not_yet()
    }
}

#[async_trait]
impl ShadowStore for PostgresStore {
    async fn shadow(&self, _: &str) -> StoreResult<Option<ShadowRecord>> {
        not_yet()
    }
    async fn put_shadow(&self, _: &ShadowRecord, _: Option<u64>) -> StoreResult<bool> {
        not_yet()
    }
}

#[async_trait]
impl ThingIndexStore for PostgresStore {
    async fn create_thing_with_attributes(
        &self,
        _: &Thing,
        _: &CertRecord,
        _: &BTreeMap<String, String>,
    ) -> StoreResult<()> {
        not_yet()
    }
    async fn set_attributes(&self, _: &str, _: &BTreeMap<String, String>) -> StoreResult<()> {
        not_yet()
    }
    async fn attributes(&self, _: &str) -> StoreResult<BTreeMap<String, String>> {
        not_yet()
    }
    async fn all_attributes(&self) -> StoreResult<BTreeMap<String, BTreeMap<String, String>>> {
        not_yet()
    }
    async fn create_dynamic_group(&self, _: &DynamicGroup) -> StoreResult<()> {
        not_yet()
    }
    async fn dynamic_group(&self, _: &str) -> StoreResult<Option<DynamicGroup>> {
        not_yet()
    }
    async fn list_dynamic_groups(&self) -> StoreResult<Vec<DynamicGroup>> {
        not_yet()
    }
    async fn delete_dynamic_group(&self, _: &str) -> StoreResult<()> {
        not_yet()
    }
}
