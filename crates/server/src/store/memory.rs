//! An in-memory [`Store`]: the same contract as [`super::SqliteStore`] (orderings, `Exists`
//! on a duplicate key, all-or-nothing multi-record writes) held in one mutex, for tests,
//! benches and simulations that want the services without SQLite or a file system.
//!
//! Nothing survives the process. Every method takes the one lock, changes the state and
//! returns, so each call is atomic and a multi-record write ([`Store::create_job`],
//! [`Store::create_things_with_certificates`], [`Store::create_ota_update`]) checks all its
//! keys before it writes anything.
//!
//! A fault hook, [`MemoryStore::fail_next`], makes the next call of a named write fail before
//! it changes anything, so a test can prove what a caller leaves behind when the store fails.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use ferrota_proto::JobStatus;

use super::*;

mod rollout;

#[derive(Default)]
struct State {
    things: BTreeMap<String, (u64, BTreeSet<String>)>,
    certs: Vec<CertRecord>,
    jobs: HashMap<String, Job>,
    /// Executions by `seq` (creation order).
    executions: BTreeMap<i64, Execution>,
    by_key: HashMap<(String, String), i64>,
    history: HashMap<(String, String), Vec<HistoryEntry>>,
    next_seq: i64,
    streams: HashMap<String, StreamRecord>,
    otas: HashMap<String, OtaRecord>,
    /// Write operations whose next call fails ([`MemoryStore::fail_next`]).
    faults: Vec<&'static str>,
    /// Rollouts by job ([`rollout`]).
    rollouts: HashMap<String, RolloutRecord>,
    /// Rollout targets by job, in the order added.
    targets: HashMap<String, Vec<rollout::Target>>,
    /// How jobs were canceled.
    cancels: HashMap<String, CancelInfo>,
    /// Thing attributes, by thing ([`ThingIndexStore`]).
    attributes: BTreeMap<String, BTreeMap<String, String>>,
    /// Dynamic thing groups, by name.
    dynamic_groups: BTreeMap<String, DynamicGroup>,
}

impl State {
    fn fault(&mut self, op: &'static str) -> StoreResult<()> {
        if let Some(i) = self.faults.iter().position(|f| *f == op) {
            self.faults.remove(i);
            return Err(StoreError::Io(std::io::Error::other(format!(
                "injected failure of {op}"
            ))));
        }
        Ok(())
    }

    fn thing_of(&self, name: &str) -> Option<Thing> {
        self.things.get(name).map(|(at, groups)| Thing {
            name: name.to_string(),
            groups: groups.iter().cloned().collect(),
            created_at: *at,
        })
    }

    fn check_job(&self, job: &Job, things: &[String]) -> StoreResult<()> {
        if self.jobs.contains_key(&job.job_id) {
            return Err(StoreError::Exists(format!("job {}", job.job_id)));
        }
        let mut seen = BTreeSet::new();
        if let Some(t) = things.iter().find(|t| !seen.insert(t.as_str())) {
            return Err(StoreError::Exists(format!(
                "execution of job {} on {t}",
                job.job_id
            )));
        }
        Ok(())
    }

    fn insert_job(&mut self, job: &Job, things: &[String]) {
        self.jobs.insert(job.job_id.clone(), job.clone());
        for t in things {
            self.insert_execution(&job.job_id, t, job.created_at);
        }
    }

    /// A new QUEUED execution (number 1, version 1) queued `at`, with its first history entry:
    /// what creating a job and a rollout's release both write.
    fn insert_execution(&mut self, job_id: &str, thing: &str, at: u64) {
        self.next_seq += 1;
        let seq = self.next_seq;
        let e = Execution {
            job_id: job_id.to_string(),
            thing: thing.to_string(),
            status: JobStatus::Queued,
            status_details: BTreeMap::new(),
            queued_at: at,
            started_at: None,
            last_updated_at: at,
            version_number: 1,
            execution_number: 1,
            seq,
            in_progress_deadline: None,
            step_deadline: None,
        };
        let key = (job_id.to_string(), thing.to_string());
        self.history.insert(
            key.clone(),
            vec![HistoryEntry {
                status: JobStatus::Queued,
                status_details: BTreeMap::new(),
                version_number: 1,
                at,
            }],
        );
        self.by_key.insert(key, seq);
        self.executions.insert(seq, e);
    }

    /// Appends a history entry, keeping the newest [`HISTORY_MAX`].
    fn push_history(&mut self, key: (String, String), entry: HistoryEntry) {
        let h = self.history.entry(key).or_default();
        h.push(entry);
        if h.len() > HISTORY_MAX {
            let extra = h.len() - HISTORY_MAX;
            h.drain(..extra);
        }
    }

    fn check_stream(&self, s: &StreamRecord) -> StoreResult<()> {
        if self.streams.contains_key(&s.stream_id) {
            return Err(StoreError::Exists(format!("stream {}", s.stream_id)));
        }
        Ok(())
    }

    fn check_ota(&self, o: &OtaRecord) -> StoreResult<()> {
        if self.otas.contains_key(&o.ota_update_id) {
            return Err(StoreError::Exists(format!(
                "OTA update {}",
                o.ota_update_id
            )));
        }
        Ok(())
    }
}

/// The in-memory store (see the module docs).
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    /// Device Shadows by thing ([`ShadowStore`]).
    shadows: Mutex<HashMap<String, ShadowRecord>>,
    /// Operator tokens and the audit log ([`AccessStore`]).
    access: Mutex<Access>,
}

/// [`AccessStore`]'s state: tokens in creation order, the log in stored order.
#[derive(Default)]
struct Access {
    tokens: Vec<TokenRecord>,
    audit: Vec<ferrota_api::access::AuditRecord>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fault hook: the next call of the write operation named `op` (the [`Store`] method's
    /// name, e.g. `"create_ota_update"`) fails with [`StoreError::Io`] before it changes
    /// anything. Calls queue: naming an operation twice fails its next two calls.
    pub fn fail_next(&self, op: &'static str) {
        self.lock().faults.push(op);
    }
}

#[async_trait]
impl ShadowStore for MemoryStore {
    async fn shadow(&self, thing: &str) -> StoreResult<Option<ShadowRecord>> {
        let g = self.shadows.lock().unwrap_or_else(|e| e.into_inner());
        Ok(g.get(thing).cloned())
    }

    async fn put_shadow(&self, rec: &ShadowRecord, expected: Option<u64>) -> StoreResult<bool> {
        self.lock().fault("put_shadow")?;
        let mut g = self.shadows.lock().unwrap_or_else(|e| e.into_inner());
        if g.get(&rec.thing).map(|r| r.version) != expected {
            return Ok(false);
        }
        g.insert(rec.thing.clone(), rec.clone());
        Ok(true)
    }
}

#[async_trait]
impl AccessStore for MemoryStore {
    async fn create_token(&self, t: &TokenRecord) -> StoreResult<()> {
        let mut g = self.access.lock().unwrap_or_else(|e| e.into_inner());
        if g.tokens
            .iter()
            .any(|x| x.description.token_id == t.description.token_id || x.hash == t.hash)
        {
            return Err(StoreError::Exists(format!(
                "token {}",
                t.description.token_id
            )));
        }
        g.tokens.push(t.clone());
        Ok(())
    }

    async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>> {
        let g = self.access.lock().unwrap_or_else(|e| e.into_inner());
        Ok(g.tokens.iter().find(|t| t.hash == hash).cloned())
    }

    async fn tokens(&self) -> StoreResult<Vec<TokenRecord>> {
        let g = self.access.lock().unwrap_or_else(|e| e.into_inner());
        Ok(g.tokens.clone())
    }

    async fn revoke_token(&self, token_id: &str, at: u64) -> StoreResult<bool> {
        let mut g = self.access.lock().unwrap_or_else(|e| e.into_inner());
        let Some(t) = g
            .tokens
            .iter_mut()
            .find(|t| t.description.token_id == token_id)
        else {
            return Ok(false);
        };
        t.description.revoked_at.get_or_insert(at);
        Ok(true)
    }

    async fn append_audit_batch(
        &self,
        entries: &[ferrota_api::access::AuditEntry],
    ) -> StoreResult<Vec<ferrota_api::access::AuditRecord>> {
        self.lock().fault("append_audit")?;
        let mut g = self.access.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let rec = ferrota_api::access::chain(g.audit.last(), entry.clone());
            g.audit.push(rec.clone());
            out.push(rec);
        }
        Ok(out)
    }

    async fn audit_records(
        &self,
        after: u64,
        limit: u32,
    ) -> StoreResult<Vec<(u64, ferrota_api::access::AuditRecord)>> {
        let g = self.access.lock().unwrap_or_else(|e| e.into_inner());
        Ok(g.audit
            .iter()
            .enumerate()
            .map(|(i, r)| (i as u64 + 1, r.clone()))
            .skip(usize::try_from(after).unwrap_or(usize::MAX))
            .take(limit as usize)
            .collect())
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_thing(&self, thing: &Thing) -> StoreResult<()> {
        let mut s = self.lock();
        s.fault("create_thing")?;
        if s.things.contains_key(&thing.name) {
            return Err(StoreError::Exists(format!("thing {}", thing.name)));
        }
        s.things.insert(
            thing.name.clone(),
            (thing.created_at, thing.groups.iter().cloned().collect()),
        );
        Ok(())
    }

    async fn create_things_with_certificates(
        &self,
        items: &[(Thing, CertRecord)],
    ) -> StoreResult<()> {
        let mut s = self.lock();
        s.fault("create_things_with_certificates")?;
        let mut names = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for (t, c) in items {
            if s.things.contains_key(&t.name) || !names.insert(t.name.as_str()) {
                return Err(StoreError::Exists(format!("thing {}", t.name)));
            }
            if s.certs.iter().any(|x| x.id == c.id) || !ids.insert(c.id.as_str()) {
                return Err(StoreError::Exists(format!("certificate {}", c.id)));
            }
            if c.thing != t.name && !s.things.contains_key(&c.thing) {
                return Err(StoreError::NotFound(format!("thing {}", c.thing)));
            }
        }
        for (t, c) in items {
            s.things.insert(
                t.name.clone(),
                (t.created_at, t.groups.iter().cloned().collect()),
            );
            s.certs.push(c.clone());
        }
        Ok(())
    }

    async fn thing(&self, name: &str) -> StoreResult<Option<Thing>> {
        Ok(self.lock().thing_of(name))
    }

    async fn job_has_pending(&self, job_id: &str) -> StoreResult<bool> {
        Ok(self
            .lock()
            .executions
            .values()
            .any(|e| e.job_id == job_id && !e.status.is_terminal()))
    }

    async fn execution_status_totals(&self) -> StoreResult<Vec<(JobStatus, u64)>> {
        let mut s = self.lock();
        s.fault("execution_status_totals")?;
        let mut m = BTreeMap::<&'static str, (JobStatus, u64)>::new();
        for e in s.executions.values() {
            m.entry(e.status.as_str()).or_insert((e.status, 0)).1 += 1;
        }
        Ok(m.into_values().collect())
    }

    async fn list_things(&self) -> StoreResult<Vec<Thing>> {
        let s = self.lock();
        Ok(s.things.keys().filter_map(|n| s.thing_of(n)).collect())
    }

    async fn group_members(&self, group: &str) -> StoreResult<Vec<String>> {
        Ok(self
            .lock()
            .things
            .iter()
            .filter(|(_, (_, g))| g.contains(group))
            .map(|(n, _)| n.clone())
            .collect())
    }

    async fn add_certificate(&self, cert: &CertRecord) -> StoreResult<()> {
        let mut s = self.lock();
        s.fault("add_certificate")?;
        if !s.things.contains_key(&cert.thing) {
            return Err(StoreError::NotFound(format!("thing {}", cert.thing)));
        }
        if s.certs.iter().any(|c| c.id == cert.id) {
            return Err(StoreError::Exists(format!("certificate {}", cert.id)));
        }
        s.certs.push(cert.clone());
        Ok(())
    }

    async fn certificate(&self, id: &str) -> StoreResult<Option<CertRecord>> {
        Ok(self.lock().certs.iter().find(|c| c.id == id).cloned())
    }

    async fn certificates_of(&self, thing: &str) -> StoreResult<Vec<CertRecord>> {
        let mut v: Vec<CertRecord> = (self.lock().certs.iter())
            .filter(|c| c.thing == thing)
            .cloned()
            .collect();
        v.sort_by_key(|c| c.created_at);
        Ok(v)
    }

    async fn revoked_certificates(&self) -> StoreResult<Vec<CertRecord>> {
        let mut v: Vec<CertRecord> = (self.lock().certs.iter())
            .filter(|c| c.status == CertStatus::Revoked)
            .cloned()
            .collect();
        v.sort_by_key(|c| c.revoked_at);
        Ok(v)
    }

    async fn revoke_thing(&self, thing: &str, now: u64) -> StoreResult<u64> {
        let mut s = self.lock();
        s.fault("revoke_thing")?;
        let mut n = 0;
        for c in s.certs.iter_mut() {
            if c.thing == thing && c.status == CertStatus::Active {
                c.status = CertStatus::Revoked;
                c.revoked_at = Some(now);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn create_job(&self, job: &Job, things: &[String]) -> StoreResult<()> {
        let mut s = self.lock();
        s.fault("create_job")?;
        s.check_job(job, things)?;
        s.insert_job(job, things);
        Ok(())
    }

    async fn job(&self, job_id: &str) -> StoreResult<Option<Job>> {
        Ok(self.lock().jobs.get(job_id).cloned())
    }

    async fn set_job_state(&self, job_id: &str, state: JobState) -> StoreResult<()> {
        let mut s = self.lock();
        s.fault("set_job_state")?;
        if let Some(j) = s.jobs.get_mut(job_id) {
            j.state = state;
        }
        Ok(())
    }

    async fn executions_of_thing(&self, thing: &str) -> StoreResult<Vec<Execution>> {
        Ok((self.lock().executions.values())
            .filter(|e| e.thing == thing)
            .cloned()
            .collect())
    }

    async fn executions_of_job(&self, job_id: &str) -> StoreResult<Vec<Execution>> {
        let mut v: Vec<Execution> = (self.lock().executions.values())
            .filter(|e| e.job_id == job_id)
            .cloned()
            .collect();
        v.sort_by(|a, b| a.thing.cmp(&b.thing));
        Ok(v)
    }

    async fn execution(&self, job_id: &str, thing: &str) -> StoreResult<Option<Execution>> {
        let s = self.lock();
        Ok(s.by_key
            .get(&(job_id.to_string(), thing.to_string()))
            .and_then(|seq| s.executions.get(seq))
            .cloned())
    }

    async fn update_execution(&self, exec: &Execution, expected_version: u64) -> StoreResult<bool> {
        let mut s = self.lock();
        s.fault("update_execution")?;
        let key = (exec.job_id.clone(), exec.thing.clone());
        let Some(&seq) = s.by_key.get(&key) else {
            return Ok(false);
        };
        let Some(stored) = s.executions.get_mut(&seq) else {
            return Ok(false);
        };
        if stored.version_number != expected_version {
            return Ok(false);
        }
        let running = exec.status == JobStatus::InProgress;
        *stored = Execution {
            seq,
            queued_at: stored.queued_at,
            execution_number: stored.execution_number,
            in_progress_deadline: exec.in_progress_deadline.filter(|_| running),
            step_deadline: exec.step_deadline.filter(|_| running),
            ..exec.clone()
        };
        s.push_history(
            key,
            HistoryEntry {
                status: exec.status,
                status_details: exec.status_details.clone(),
                version_number: exec.version_number,
                at: exec.last_updated_at,
            },
        );
        Ok(true)
    }

    async fn history(&self, job_id: &str, thing: &str) -> StoreResult<Vec<HistoryEntry>> {
        Ok(self
            .lock()
            .history
            .get(&(job_id.to_string(), thing.to_string()))
            .cloned()
            .unwrap_or_default())
    }

    async fn due_executions(&self, now: u64) -> StoreResult<Vec<Execution>> {
        let mut v: Vec<Execution> = (self.lock().executions.values())
            .filter(|e| e.deadline().is_some_and(|d| d <= now))
            .cloned()
            .collect();
        v.sort_by_key(|e| (e.deadline(), e.seq));
        Ok(v)
    }

    async fn next_deadline(&self) -> StoreResult<Option<u64>> {
        Ok((self.lock().executions.values())
            .filter_map(Execution::deadline)
            .min())
    }

    async fn create_stream(&self, stream: &StreamRecord) -> StoreResult<()> {
        let mut s = self.lock();
        s.fault("create_stream")?;
        s.check_stream(stream)?;
        s.streams.insert(stream.stream_id.clone(), stream.clone());
        Ok(())
    }

    async fn stream(&self, stream_id: &str) -> StoreResult<Option<StreamRecord>> {
        Ok(self.lock().streams.get(stream_id).cloned())
    }

    async fn create_ota(&self, ota: &OtaRecord) -> StoreResult<()> {
        let mut s = self.lock();
        s.fault("create_ota")?;
        s.check_ota(ota)?;
        s.otas.insert(ota.ota_update_id.clone(), ota.clone());
        Ok(())
    }

    async fn create_ota_update(
        &self,
        stream: &StreamRecord,
        job: &Job,
        things: &[String],
        ota: &OtaRecord,
    ) -> StoreResult<()> {
        let mut s = self.lock();
        s.fault("create_ota_update")?;
        s.check_stream(stream)?;
        s.check_job(job, things)?;
        s.check_ota(ota)?;
        s.streams.insert(stream.stream_id.clone(), stream.clone());
        s.insert_job(job, things);
        s.otas.insert(ota.ota_update_id.clone(), ota.clone());
        Ok(())
    }

    async fn ota(&self, id: &str) -> StoreResult<Option<OtaRecord>> {
        Ok(self.lock().otas.get(id).cloned())
    }

    async fn list_ota(&self) -> StoreResult<Vec<OtaRecord>> {
        let mut v: Vec<OtaRecord> = self.lock().otas.values().cloned().collect();
        v.sort_by(|a, b| {
            (b.created_at.cmp(&a.created_at)).then_with(|| a.ota_update_id.cmp(&b.ota_update_id))
        });
        Ok(v)
    }

    async fn set_ota_status(&self, id: &str, status: &str) -> StoreResult<()> {
        let mut s = self.lock();
        s.fault("set_ota_status")?;
        if let Some(o) = s.otas.get_mut(id) {
            o.status = status.to_string();
        }
        Ok(())
    }

    async fn set_ota_error(&self, id: &str, error: &ErrorInfo) -> StoreResult<()> {
        let mut s = self.lock();
        s.fault("set_ota_error")?;
        if let Some(o) = s.otas.get_mut(id) {
            o.error_info = Some(error.clone());
        }
        Ok(())
    }
}

#[async_trait]
impl ThingIndexStore for MemoryStore {
    async fn create_thing_with_attributes(
        &self,
        thing: &Thing,
        cert: &CertRecord,
        attributes: &BTreeMap<String, String>,
    ) -> StoreResult<()> {
        let mut s = self.lock();
        s.fault("create_thing_with_attributes")?;
        if s.things.contains_key(&thing.name) {
            return Err(StoreError::Exists(format!("thing {}", thing.name)));
        }
        if s.certs.iter().any(|x| x.id == cert.id) {
            return Err(StoreError::Exists(format!("certificate {}", cert.id)));
        }
        s.things.insert(
            thing.name.clone(),
            (thing.created_at, thing.groups.iter().cloned().collect()),
        );
        s.certs.push(cert.clone());
        if !attributes.is_empty() {
            s.attributes.insert(thing.name.clone(), attributes.clone());
        }
        Ok(())
    }

    async fn set_attributes(
        &self,
        thing: &str,
        attributes: &BTreeMap<String, String>,
    ) -> StoreResult<()> {
        let mut s = self.lock();
        s.fault("set_attributes")?;
        if !s.things.contains_key(thing) {
            return Err(StoreError::NotFound(format!("thing {thing}")));
        }
        if attributes.is_empty() {
            s.attributes.remove(thing);
        } else {
            s.attributes.insert(thing.to_string(), attributes.clone());
        }
        Ok(())
    }

    async fn update_attributes(
        &self,
        thing: &str,
        update: &crate::store::attrs::AttributesUpdate<'_>,
    ) -> StoreResult<Result<(), String>> {
        let mut s = self.lock();
        s.fault("update_attributes")?;
        if !s.things.contains_key(thing) {
            return Err(StoreError::NotFound(format!("thing {thing}")));
        }
        let stored = s.attributes.get(thing).cloned().unwrap_or_default();
        let new = match update(stored) {
            Ok(n) => n,
            Err(why) => return Ok(Err(why)),
        };
        if new.is_empty() {
            s.attributes.remove(thing);
        } else {
            s.attributes.insert(thing.to_string(), new);
        }
        Ok(Ok(()))
    }

    async fn attributes(&self, thing: &str) -> StoreResult<BTreeMap<String, String>> {
        Ok(self
            .lock()
            .attributes
            .get(thing)
            .cloned()
            .unwrap_or_default())
    }

    async fn all_attributes(&self) -> StoreResult<BTreeMap<String, BTreeMap<String, String>>> {
        Ok(self.lock().attributes.clone())
    }

    async fn create_dynamic_group(&self, g: &DynamicGroup) -> StoreResult<()> {
        let mut s = self.lock();
        s.fault("create_dynamic_group")?;
        if s.dynamic_groups.contains_key(&g.name) {
            return Err(StoreError::Exists(format!("thing group {}", g.name)));
        }
        s.dynamic_groups.insert(g.name.clone(), g.clone());
        Ok(())
    }

    async fn dynamic_group(&self, name: &str) -> StoreResult<Option<DynamicGroup>> {
        Ok(self.lock().dynamic_groups.get(name).cloned())
    }

    async fn list_dynamic_groups(&self) -> StoreResult<Vec<DynamicGroup>> {
        Ok(self.lock().dynamic_groups.values().cloned().collect())
    }

    async fn delete_dynamic_group(&self, name: &str) -> StoreResult<()> {
        let mut s = self.lock();
        s.fault("delete_dynamic_group")?;
        s.dynamic_groups
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| attrs::group_not_found(name))
    }
}
