//! [`TimedStore`]: the one seam where store latency is measured.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use ferrota_proto::JobStatus;

use ferrota_api::access::{AuditEntry, AuditRecord};

use super::Metrics;
use crate::store::{
    AccessStore, CancelInfo, CertRecord, DynamicGroup, ErrorInfo, Execution, HistoryEntry, Job,
    JobState, OtaRecord, RolloutProgress, RolloutRecord, RolloutStore, ShadowRecord, ShadowStore,
    SharedStore, Store, StoreResult, StreamRecord, Thing, ThingIndexStore, TokenRecord, WaveCounts,
};

/// A [`Store`] that forwards every call to another and records its duration in
/// `ferrota_store_operation_duration_seconds{op="<method>"}`.
///
/// Decision: a wrapper around the whole store rather than timers at the call sites, so no
/// call of the services is missed and none counted twice; the `op` label is the trait
/// method's name, a fixed set. Every method, defaults included, is forwarded, so the inner
/// store's own implementations (one counting query instead of reading a job's executions)
/// stay in use. A call that fails is timed too (a timeout is latency as well).
pub struct TimedStore {
    inner: SharedStore,
    metrics: Arc<Metrics>,
}

impl TimedStore {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: SharedStore, metrics: Arc<Metrics>) -> TimedStore {
        TimedStore { inner, metrics }
    }

    async fn time<T>(&self, op: &'static str, f: impl Future<Output = T>) -> T {
        let t0 = Instant::now();
        let r = f.await;
        self.metrics.store_op(op, t0.elapsed());
        r
    }
}

#[async_trait]
impl Store for TimedStore {
    async fn create_thing(&self, thing: &Thing) -> StoreResult<()> {
        self.time("create_thing", self.inner.create_thing(thing))
            .await
    }
    async fn create_things_with_certificates(
        &self,
        items: &[(Thing, CertRecord)],
    ) -> StoreResult<()> {
        self.time(
            "create_things_with_certificates",
            self.inner.create_things_with_certificates(items),
        )
        .await
    }
    async fn thing(&self, name: &str) -> StoreResult<Option<Thing>> {
        self.time("thing", self.inner.thing(name)).await
    }
    async fn job_has_pending(&self, job_id: &str) -> StoreResult<bool> {
        self.time("job_has_pending", self.inner.job_has_pending(job_id))
            .await
    }
    async fn job_status_counts(&self, job_id: &str) -> StoreResult<Vec<(JobStatus, u64)>> {
        self.time("job_status_counts", self.inner.job_status_counts(job_id))
            .await
    }
    async fn execution_status_totals(&self) -> StoreResult<Vec<(JobStatus, u64)>> {
        self.time(
            "execution_status_totals",
            self.inner.execution_status_totals(),
        )
        .await
    }
    async fn list_things(&self) -> StoreResult<Vec<Thing>> {
        self.time("list_things", self.inner.list_things()).await
    }
    async fn group_members(&self, group: &str) -> StoreResult<Vec<String>> {
        self.time("group_members", self.inner.group_members(group))
            .await
    }
    async fn add_certificate(&self, cert: &CertRecord) -> StoreResult<()> {
        self.time("add_certificate", self.inner.add_certificate(cert))
            .await
    }
    async fn certificate(&self, id: &str) -> StoreResult<Option<CertRecord>> {
        self.time("certificate", self.inner.certificate(id)).await
    }
    async fn certificates_of(&self, thing: &str) -> StoreResult<Vec<CertRecord>> {
        self.time("certificates_of", self.inner.certificates_of(thing))
            .await
    }
    async fn revoked_certificates(&self) -> StoreResult<Vec<CertRecord>> {
        self.time("revoked_certificates", self.inner.revoked_certificates())
            .await
    }
    async fn revoke_thing(&self, thing: &str, now: u64) -> StoreResult<u64> {
        self.time("revoke_thing", self.inner.revoke_thing(thing, now))
            .await
    }
    async fn create_job(&self, job: &Job, things: &[String]) -> StoreResult<()> {
        self.time("create_job", self.inner.create_job(job, things))
            .await
    }
    async fn job(&self, job_id: &str) -> StoreResult<Option<Job>> {
        self.time("job", self.inner.job(job_id)).await
    }
    async fn set_job_state(&self, job_id: &str, state: JobState) -> StoreResult<()> {
        self.time("set_job_state", self.inner.set_job_state(job_id, state))
            .await
    }
    async fn executions_of_thing(&self, thing: &str) -> StoreResult<Vec<Execution>> {
        self.time("executions_of_thing", self.inner.executions_of_thing(thing))
            .await
    }
    async fn executions_of_job(&self, job_id: &str) -> StoreResult<Vec<Execution>> {
        self.time("executions_of_job", self.inner.executions_of_job(job_id))
            .await
    }
    async fn executions_of_job_page(
        &self,
        job_id: &str,
        after: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<Execution>> {
        self.time(
            "executions_of_job_page",
            self.inner.executions_of_job_page(job_id, after, limit),
        )
        .await
    }
    async fn execution(&self, job_id: &str, thing: &str) -> StoreResult<Option<Execution>> {
        self.time("execution", self.inner.execution(job_id, thing))
            .await
    }
    async fn update_execution(&self, exec: &Execution, expected_version: u64) -> StoreResult<bool> {
        self.time(
            "update_execution",
            self.inner.update_execution(exec, expected_version),
        )
        .await
    }
    async fn history(&self, job_id: &str, thing: &str) -> StoreResult<Vec<HistoryEntry>> {
        self.time("history", self.inner.history(job_id, thing))
            .await
    }
    async fn due_executions(&self, now: u64) -> StoreResult<Vec<Execution>> {
        self.time("due_executions", self.inner.due_executions(now))
            .await
    }
    async fn next_deadline(&self) -> StoreResult<Option<u64>> {
        self.time("next_deadline", self.inner.next_deadline()).await
    }
    async fn create_stream(&self, stream: &StreamRecord) -> StoreResult<()> {
        self.time("create_stream", self.inner.create_stream(stream))
            .await
    }
    async fn stream(&self, stream_id: &str) -> StoreResult<Option<StreamRecord>> {
        self.time("stream", self.inner.stream(stream_id)).await
    }
    async fn create_ota(&self, ota: &OtaRecord) -> StoreResult<()> {
        self.time("create_ota", self.inner.create_ota(ota)).await
    }
    async fn create_ota_update(
        &self,
        stream: &StreamRecord,
        job: &Job,
        things: &[String],
        ota: &OtaRecord,
    ) -> StoreResult<()> {
        self.time(
            "create_ota_update",
            self.inner.create_ota_update(stream, job, things, ota),
        )
        .await
    }
    async fn ota(&self, id: &str) -> StoreResult<Option<OtaRecord>> {
        self.time("ota", self.inner.ota(id)).await
    }
    async fn list_ota(&self) -> StoreResult<Vec<OtaRecord>> {
        self.time("list_ota", self.inner.list_ota()).await
    }
    async fn set_ota_status(&self, id: &str, status: &str) -> StoreResult<()> {
        self.time("set_ota_status", self.inner.set_ota_status(id, status))
            .await
    }
    async fn set_ota_error(&self, id: &str, error: &ErrorInfo) -> StoreResult<()> {
        self.time("set_ota_error", self.inner.set_ota_error(id, error))
            .await
    }
}

#[async_trait]
impl RolloutStore for TimedStore {
    async fn create_ota_rollout(
        &self,
        stream: &StreamRecord,
        job: &Job,
        ota: &OtaRecord,
        rollout: &RolloutRecord,
        targets: &[(String, u32)],
    ) -> StoreResult<()> {
        self.time(
            "create_ota_rollout",
            self.inner
                .create_ota_rollout(stream, job, ota, rollout, targets),
        )
        .await
    }
    async fn rollout(&self, job_id: &str) -> StoreResult<Option<RolloutRecord>> {
        self.time("rollout", self.inner.rollout(job_id)).await
    }
    async fn update_rollout(&self, r: &RolloutRecord, expected_version: u64) -> StoreResult<bool> {
        self.time(
            "update_rollout",
            self.inner.update_rollout(r, expected_version),
        )
        .await
    }
    async fn active_rollouts(&self) -> StoreResult<Vec<RolloutRecord>> {
        self.time("active_rollouts", self.inner.active_rollouts())
            .await
    }
    async fn due_rollouts(&self, now: u64) -> StoreResult<Vec<String>> {
        self.time("due_rollouts", self.inner.due_rollouts(now))
            .await
    }
    async fn next_rollout_at(&self) -> StoreResult<Option<u64>> {
        self.time("next_rollout_at", self.inner.next_rollout_at())
            .await
    }
    async fn unreleased_targets(
        &self,
        job_id: &str,
        max_wave: u32,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        self.time(
            "unreleased_targets",
            self.inner.unreleased_targets(job_id, max_wave, limit),
        )
        .await
    }
    async fn release_targets(
        &self,
        job_id: &str,
        things: &[String],
        now: u64,
    ) -> StoreResult<usize> {
        self.time(
            "release_targets",
            self.inner.release_targets(job_id, things, now),
        )
        .await
    }
    async fn wave_counts(&self, job_id: &str) -> StoreResult<Vec<WaveCounts>> {
        self.time("wave_counts", self.inner.wave_counts(job_id))
            .await
    }
    async fn add_target(&self, job_id: &str, thing: &str, wave: u32) -> StoreResult<bool> {
        self.time("add_target", self.inner.add_target(job_id, thing, wave))
            .await
    }
    async fn retry_execution(&self, e: &Execution, now: u64) -> StoreResult<bool> {
        self.time("retry_execution", self.inner.retry_execution(e, now))
            .await
    }
    async fn set_cancel_info(&self, job_id: &str, info: &CancelInfo) -> StoreResult<()> {
        self.time("set_cancel_info", self.inner.set_cancel_info(job_id, info))
            .await
    }
    async fn cancel_info(&self, job_id: &str) -> StoreResult<Option<CancelInfo>> {
        self.time("cancel_info", self.inner.cancel_info(job_id))
            .await
    }
    async fn rollout_progress(&self) -> StoreResult<Vec<RolloutProgress>> {
        self.time("rollout_progress", self.inner.rollout_progress())
            .await
    }
}

#[async_trait]
impl ShadowStore for TimedStore {
    async fn shadow(&self, thing: &str) -> StoreResult<Option<ShadowRecord>> {
        self.time("shadow", self.inner.shadow(thing)).await
    }
    async fn put_shadow(&self, rec: &ShadowRecord, expected: Option<u64>) -> StoreResult<bool> {
        self.time("put_shadow", self.inner.put_shadow(rec, expected))
            .await
    }
}

#[async_trait]
impl ThingIndexStore for TimedStore {
    async fn create_thing_with_attributes(
        &self,
        thing: &Thing,
        cert: &CertRecord,
        attributes: &BTreeMap<String, String>,
    ) -> StoreResult<()> {
        self.time(
            "create_thing_with_attributes",
            self.inner
                .create_thing_with_attributes(thing, cert, attributes),
        )
        .await
    }
    async fn set_attributes(
        &self,
        thing: &str,
        attributes: &BTreeMap<String, String>,
    ) -> StoreResult<()> {
        self.time(
            "set_attributes",
            self.inner.set_attributes(thing, attributes),
        )
        .await
    }
    async fn update_attributes(
        &self,
        thing: &str,
        update: &crate::store::attrs::AttributesUpdate<'_>,
    ) -> StoreResult<Result<(), String>> {
        self.time(
            "update_attributes",
            self.inner.update_attributes(thing, update),
        )
        .await
    }
    async fn attributes(&self, thing: &str) -> StoreResult<BTreeMap<String, String>> {
        self.time("attributes", self.inner.attributes(thing)).await
    }
    async fn all_attributes(&self) -> StoreResult<BTreeMap<String, BTreeMap<String, String>>> {
        self.time("all_attributes", self.inner.all_attributes())
            .await
    }
    async fn create_dynamic_group(&self, group: &DynamicGroup) -> StoreResult<()> {
        self.time(
            "create_dynamic_group",
            self.inner.create_dynamic_group(group),
        )
        .await
    }
    async fn dynamic_group(&self, name: &str) -> StoreResult<Option<DynamicGroup>> {
        self.time("dynamic_group", self.inner.dynamic_group(name))
            .await
    }
    async fn list_dynamic_groups(&self) -> StoreResult<Vec<DynamicGroup>> {
        self.time("list_dynamic_groups", self.inner.list_dynamic_groups())
            .await
    }
    async fn delete_dynamic_group(&self, name: &str) -> StoreResult<()> {
        self.time(
            "delete_dynamic_group",
            self.inner.delete_dynamic_group(name),
        )
        .await
    }
}

#[async_trait]
impl AccessStore for TimedStore {
    async fn create_token(&self, t: &TokenRecord) -> StoreResult<()> {
        self.time("create_token", self.inner.create_token(t)).await
    }
    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>> {
        self.time("token_by_hash", self.inner.token_by_hash(hash))
            .await
    }
    async fn tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        self.time("tokens", self.inner.tokens()).await
    }
    async fn revoke_token(&self, token_id: &str, at: u64) -> StoreResult<bool> {
        self.time("revoke_token", self.inner.revoke_token(token_id, at))
            .await
    }
    async fn append_audit_batch(&self, entries: &[AuditEntry]) -> StoreResult<Vec<AuditRecord>> {
        self.time("append_audit_batch", self.inner.append_audit_batch(entries))
            .await
    }
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<AuditRecord> {
        self.time("append_audit", self.inner.append_audit(entry))
            .await
    }
    async fn audit_records(&self, after: u64, limit: u32) -> StoreResult<Vec<(u64, AuditRecord)>> {
        self.time("audit_records", self.inner.audit_records(after, limit))
            .await
    }
}
