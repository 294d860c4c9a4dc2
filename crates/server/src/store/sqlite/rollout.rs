//! [`RolloutStore`] on SQLite: tables `rollouts` and `rollout_targets`, and the `cancel_info`
//! column of `jobs` (migration in [`super::MIGRATIONS`]).

use async_trait::async_trait;
use sqlx::{Row, query};

use super::*;
use crate::store::rollout::{CancelInfo, RolloutRecord, RolloutStore, WaveCounts, status_str};

#[async_trait]
impl RolloutStore for SqliteStore {
    async fn create_ota_rollout(
        &self,
        stream: &StreamRecord,
        job: &Job,
        ota: &OtaRecord,
        rollout: &RolloutRecord,
        targets: &[(String, u32)],
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        insert_stream(&mut *tx, stream).await?;
        insert_job(&mut tx, job, &[]).await?;
        insert_ota(&mut *tx, ota).await?;
        query(concat!(
            "INSERT INTO rollouts (",
            rollout_cols!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(&rollout.job_id)
        .bind(&rollout.plan)
        .bind(status_str(rollout.status))
        .bind(i64::from(rollout.wave))
        .bind(&rollout.state)
        .bind(&rollout.reason_code)
        .bind(&rollout.comment)
        .bind(rollout.next_at.map(to_i64))
        .bind(to_i64(rollout.version))
        .execute(&mut *tx)
        .await?;
        for (thing, wave) in targets {
            let r = query("INSERT INTO rollout_targets (job_id, thing, wave) VALUES (?, ?, ?)")
                .bind(&job.job_id)
                .bind(thing)
                .bind(i64::from(*wave))
                .execute(&mut *tx)
                .await;
            exists_as(r, || format!("target {thing} of job {}", job.job_id))?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn rollout(&self, job_id: &str) -> StoreResult<Option<RolloutRecord>> {
        query(concat!(
            "SELECT ",
            rollout_cols!(),
            " FROM rollouts WHERE job_id = ?"
        ))
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| rollout_of(&r))
        .transpose()
    }

    async fn update_rollout(&self, r: &RolloutRecord, expected_version: u64) -> StoreResult<bool> {
        let done = query("UPDATE rollouts SET status = ?, wave = ?, state = ?, reason_code = ?, comment = ?, next_at = ?, version = ? WHERE job_id = ? AND version = ?")
            .bind(status_str(r.status))
            .bind(i64::from(r.wave))
            .bind(&r.state)
            .bind(&r.reason_code)
            .bind(&r.comment)
            .bind(r.next_at.map(to_i64))
            .bind(to_i64(r.version))
            .bind(&r.job_id)
            .bind(to_i64(expected_version))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn active_rollouts(&self) -> StoreResult<Vec<RolloutRecord>> {
        query("SELECT r.job_id, r.plan, r.status, r.wave, r.state, r.reason_code, r.comment, r.next_at, r.version FROM rollouts r JOIN jobs j ON j.job_id = r.job_id WHERE r.status != 'STOPPED' AND j.state IN ('IN_PROGRESS', 'SCHEDULED') ORDER BY j.created_at, r.job_id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rollout_of)
            .collect()
    }

    async fn due_rollouts(&self, now: u64) -> StoreResult<Vec<String>> {
        let rows = query("SELECT job_id FROM rollouts WHERE next_at IS NOT NULL AND next_at <= ? ORDER BY next_at, job_id")
            .bind(to_i64(now))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("job_id"))
            .collect::<Result<_, _>>()?)
    }

    async fn next_rollout_at(&self) -> StoreResult<Option<u64>> {
        let r = query("SELECT MIN(next_at) AS m FROM rollouts WHERE next_at IS NOT NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(opt_u64(&r, "m")?)
    }

    async fn unreleased_targets(
        &self,
        job_id: &str,
        max_wave: u32,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let rows = query("SELECT thing FROM rollout_targets WHERE job_id = ? AND released = 0 AND wave <= ? ORDER BY wave, seq LIMIT ?")
            .bind(job_id)
            .bind(i64::from(max_wave))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("thing"))
            .collect::<Result<_, _>>()?)
    }

    async fn release_targets(
        &self,
        job_id: &str,
        things: &[String],
        now: u64,
    ) -> StoreResult<usize> {
        let mut tx = self.write_tx().await?;
        let mut n = 0;
        for t in things {
            let r = query("UPDATE rollout_targets SET released = 1 WHERE job_id = ? AND thing = ? AND released = 0")
                .bind(job_id)
                .bind(t)
                .execute(&mut *tx)
                .await?;
            if r.rows_affected() != 1 {
                continue;
            }
            insert_queued_execution(&mut tx, job_id, t, now).await?;
            n += 1;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn wave_counts(&self, job_id: &str) -> StoreResult<Vec<WaveCounts>> {
        let mut out: Vec<WaveCounts> = Vec::new();
        let slot = |out: &mut Vec<WaveCounts>, w: i64| -> usize {
            let w = w.max(0) as usize;
            if out.len() <= w {
                out.resize(w + 1, WaveCounts::default());
            }
            w
        };
        let rows = query("SELECT wave, COUNT(*) AS n, SUM(released) AS r FROM rollout_targets WHERE job_id = ? GROUP BY wave")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?;
        for r in &rows {
            let w = slot(&mut out, r.try_get("wave")?);
            out[w].things = get_u64(r, "n")?;
            out[w].released = get_u64(r, "r")?;
        }
        let rows = query("SELECT t.wave AS wave, e.status AS status, COUNT(*) AS n FROM rollout_targets t JOIN executions e ON e.job_id = t.job_id AND e.thing = t.thing WHERE t.job_id = ? GROUP BY t.wave, e.status")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?;
        for r in &rows {
            let w = slot(&mut out, r.try_get("wave")?);
            let s: String = r.try_get("status")?;
            let s = JobStatus::from_wire(&s).ok_or_else(|| corrupt("execution status"))?;
            out[w].statuses.push((s, get_u64(r, "n")?));
        }
        Ok(out)
    }

    async fn add_target(&self, job_id: &str, thing: &str, wave: u32) -> StoreResult<bool> {
        let r =
            query("INSERT OR IGNORE INTO rollout_targets (job_id, thing, wave) VALUES (?, ?, ?)")
                .bind(job_id)
                .bind(thing)
                .bind(i64::from(wave))
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn retry_execution(&self, e: &Execution, now: u64) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let now = to_i64(now);
        let version = to_i64(e.version_number.saturating_add(1));
        let r = query("UPDATE executions SET status = 'QUEUED', status_details = '{}', queued_at = ?, started_at = NULL, last_updated_at = ?, version_number = ?, execution_number = execution_number + 1, in_progress_deadline = NULL, step_deadline = NULL, deadline = NULL WHERE job_id = ? AND thing = ? AND version_number = ?")
            .bind(now)
            .bind(now)
            .bind(version)
            .bind(&e.job_id)
            .bind(&e.thing)
            .bind(to_i64(e.version_number))
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        query("INSERT INTO execution_history (job_id, thing, status, status_details, version_number, at) VALUES (?, ?, 'QUEUED', '{}', ?, ?)")
            .bind(&e.job_id)
            .bind(&e.thing)
            .bind(version)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        trim_history(&mut tx, &e.job_id, &e.thing).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_cancel_info(&self, job_id: &str, info: &CancelInfo) -> StoreResult<()> {
        let json = serde_json::to_string(info).map_err(|_| corrupt("cancel info"))?;
        query("UPDATE jobs SET cancel_info = ? WHERE job_id = ?")
            .bind(json)
            .bind(job_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn cancel_info(&self, job_id: &str) -> StoreResult<Option<CancelInfo>> {
        let Some(r) = query("SELECT cancel_info FROM jobs WHERE job_id = ?")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let s: Option<String> = r.try_get("cancel_info")?;
        s.map(|s| serde_json::from_str(&s).map_err(|_| corrupt("cancel info")))
            .transpose()
    }

    async fn rollout_progress(&self) -> StoreResult<Vec<crate::store::RolloutProgress>> {
        query(crate::store::rows::ROLLOUT_PROGRESS_SQL)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(crate::store::rows::progress_of)
            .collect()
    }
}
