//! [`RolloutStore`] in memory: the same contract as the SQLite one, under the store's one lock.

use std::collections::BTreeMap;

use async_trait::async_trait;
use ferrota_proto::JobStatus;

use super::{MemoryStore, State};
use crate::store::rollout::{CancelInfo, RolloutRecord, RolloutStore, WaveCounts};
use crate::store::{
    Execution, HistoryEntry, Job, JobState, OtaRecord, StoreError, StoreResult, StreamRecord,
};

/// One target of a rollout.
#[derive(Debug, Clone)]
pub(super) struct Target {
    thing: String,
    wave: u32,
    released: bool,
}

impl State {
    fn release(&mut self, job_id: &str, thing: &str, now: u64) -> bool {
        let Some(t) = self
            .targets
            .get_mut(job_id)
            .and_then(|ts| ts.iter_mut().find(|t| t.thing == thing && !t.released))
        else {
            return false;
        };
        t.released = true;
        self.insert_execution(job_id, thing, now);
        true
    }
}

#[async_trait]
impl RolloutStore for MemoryStore {
    async fn create_ota_rollout(
        &self,
        stream: &StreamRecord,
        job: &Job,
        ota: &OtaRecord,
        rollout: &RolloutRecord,
        targets: &[(String, u32)],
    ) -> StoreResult<()> {
        let mut s = self.lock();
        s.fault("create_ota_rollout")?;
        s.check_stream(stream)?;
        s.check_job(job, &[])?;
        s.check_ota(ota)?;
        let mut seen = std::collections::BTreeSet::new();
        if let Some((t, _)) = targets.iter().find(|(t, _)| !seen.insert(t.as_str())) {
            return Err(StoreError::Exists(format!(
                "target {t} of job {}",
                job.job_id
            )));
        }
        s.streams.insert(stream.stream_id.clone(), stream.clone());
        s.insert_job(job, &[]);
        s.otas.insert(ota.ota_update_id.clone(), ota.clone());
        s.rollouts.insert(job.job_id.clone(), rollout.clone());
        s.targets.insert(
            job.job_id.clone(),
            targets
                .iter()
                .map(|(thing, wave)| Target {
                    thing: thing.clone(),
                    wave: *wave,
                    released: false,
                })
                .collect(),
        );
        Ok(())
    }

    async fn rollout(&self, job_id: &str) -> StoreResult<Option<RolloutRecord>> {
        Ok(self.lock().rollouts.get(job_id).cloned())
    }

    async fn update_rollout(&self, r: &RolloutRecord, expected_version: u64) -> StoreResult<bool> {
        let mut s = self.lock();
        s.fault("update_rollout")?;
        match s.rollouts.get_mut(&r.job_id) {
            Some(stored) if stored.version == expected_version => {
                *stored = RolloutRecord {
                    plan: stored.plan.clone(),
                    ..r.clone()
                };
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn active_rollouts(&self) -> StoreResult<Vec<RolloutRecord>> {
        let s = self.lock();
        let mut v: Vec<(u64, RolloutRecord)> = s
            .rollouts
            .values()
            .filter(|r| r.status != crate::store::rollout::RolloutStatus::Stopped)
            .filter_map(|r| {
                let j = s.jobs.get(&r.job_id)?;
                matches!(j.state, JobState::InProgress | JobState::Scheduled)
                    .then(|| (j.created_at, r.clone()))
            })
            .collect();
        v.sort_by(|a, b| (a.0, &a.1.job_id).cmp(&(b.0, &b.1.job_id)));
        Ok(v.into_iter().map(|(_, r)| r).collect())
    }

    async fn due_rollouts(&self, now: u64) -> StoreResult<Vec<String>> {
        let s = self.lock();
        let mut v: Vec<(u64, String)> = s
            .rollouts
            .values()
            .filter_map(|r| {
                r.next_at
                    .filter(|t| *t <= now)
                    .map(|t| (t, r.job_id.clone()))
            })
            .collect();
        v.sort();
        Ok(v.into_iter().map(|(_, j)| j).collect())
    }

    async fn next_rollout_at(&self) -> StoreResult<Option<u64>> {
        Ok(self
            .lock()
            .rollouts
            .values()
            .filter_map(|r| r.next_at)
            .min())
    }

    async fn unreleased_targets(
        &self,
        job_id: &str,
        max_wave: u32,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let s = self.lock();
        let Some(ts) = s.targets.get(job_id) else {
            return Ok(vec![]);
        };
        let mut v: Vec<(u32, usize, &Target)> = ts
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.released && t.wave <= max_wave)
            .map(|(i, t)| (t.wave, i, t))
            .collect();
        v.sort_by_key(|(w, i, _)| (*w, *i));
        Ok(v.into_iter()
            .take(limit)
            .map(|(_, _, t)| t.thing.clone())
            .collect())
    }

    async fn release_targets(
        &self,
        job_id: &str,
        things: &[String],
        now: u64,
    ) -> StoreResult<usize> {
        let mut s = self.lock();
        s.fault("release_targets")?;
        Ok(things.iter().filter(|t| s.release(job_id, t, now)).count())
    }

    async fn wave_counts(&self, job_id: &str) -> StoreResult<Vec<WaveCounts>> {
        let s = self.lock();
        let mut out: Vec<WaveCounts> = Vec::new();
        let mut per: Vec<BTreeMap<&'static str, (JobStatus, u64)>> = Vec::new();
        for t in s.targets.get(job_id).into_iter().flatten() {
            let w = t.wave as usize;
            if out.len() <= w {
                out.resize(w + 1, WaveCounts::default());
                per.resize(w + 1, BTreeMap::new());
            }
            out[w].things += 1;
            if t.released {
                out[w].released += 1;
            }
            if let Some(e) = s
                .by_key
                .get(&(job_id.to_string(), t.thing.clone()))
                .and_then(|seq| s.executions.get(seq))
            {
                per[w].entry(e.status.as_str()).or_insert((e.status, 0)).1 += 1;
            }
        }
        for (w, m) in per.into_iter().enumerate() {
            out[w].statuses = m.into_values().collect();
        }
        Ok(out)
    }

    async fn add_target(&self, job_id: &str, thing: &str, wave: u32) -> StoreResult<bool> {
        let mut s = self.lock();
        s.fault("add_target")?;
        let ts = s.targets.entry(job_id.to_string()).or_default();
        if ts.iter().any(|t| t.thing == thing) {
            return Ok(false);
        }
        ts.push(Target {
            thing: thing.to_string(),
            wave,
            released: false,
        });
        Ok(true)
    }

    async fn retry_execution(&self, e: &Execution, now: u64) -> StoreResult<bool> {
        let mut s = self.lock();
        s.fault("retry_execution")?;
        let key = (e.job_id.clone(), e.thing.clone());
        let Some(&seq) = s.by_key.get(&key) else {
            return Ok(false);
        };
        let Some(stored) = s.executions.get_mut(&seq) else {
            return Ok(false);
        };
        if stored.version_number != e.version_number {
            return Ok(false);
        }
        stored.status = JobStatus::Queued;
        stored.status_details.clear();
        stored.queued_at = now;
        stored.started_at = None;
        stored.last_updated_at = now;
        stored.version_number += 1;
        stored.execution_number += 1;
        stored.in_progress_deadline = None;
        stored.step_deadline = None;
        let version = stored.version_number;
        s.push_history(
            key,
            HistoryEntry {
                status: JobStatus::Queued,
                status_details: BTreeMap::new(),
                version_number: version,
                at: now,
            },
        );
        Ok(true)
    }

    async fn set_cancel_info(&self, job_id: &str, info: &CancelInfo) -> StoreResult<()> {
        let mut s = self.lock();
        s.fault("set_cancel_info")?;
        s.cancels.insert(job_id.to_string(), info.clone());
        Ok(())
    }

    async fn cancel_info(&self, job_id: &str) -> StoreResult<Option<CancelInfo>> {
        Ok(self.lock().cancels.get(job_id).cloned())
    }

    async fn rollout_progress(&self) -> StoreResult<Vec<crate::store::RolloutProgress>> {
        let mut s = self.lock();
        s.fault("rollout_progress")?;
        let mut m: BTreeMap<(String, u32, Option<&'static str>), (Option<JobStatus>, u64)> =
            BTreeMap::new();
        for r in s.rollouts.values() {
            if r.status == crate::store::rollout::RolloutStatus::Stopped {
                continue;
            }
            let Some(j) = s.jobs.get(&r.job_id) else {
                continue;
            };
            if !matches!(j.state, JobState::InProgress | JobState::Scheduled) {
                continue;
            }
            let ota = j.ota_update_id.clone().unwrap_or_else(|| j.job_id.clone());
            for t in s.targets.get(&r.job_id).into_iter().flatten() {
                let status = s
                    .by_key
                    .get(&(r.job_id.clone(), t.thing.clone()))
                    .and_then(|seq| s.executions.get(seq))
                    .map(|e| e.status);
                m.entry((ota.clone(), t.wave, status.map(|x| x.as_str())))
                    .or_insert((status, 0))
                    .1 += 1;
            }
        }
        Ok(m.into_iter()
            .map(
                |((ota_update_id, wave, _), (status, count))| crate::store::RolloutProgress {
                    ota_update_id,
                    wave,
                    status,
                    count,
                },
            )
            .collect())
    }
}
