//! [`RolloutStore`] on PostgreSQL: tables `rollouts` and `rollout_targets`, and the
//! `cancel_info` column of `jobs`.
//!
//! Several workers run the rollout engine over one database, so two may step the same
//! rollout at once:
//!
//! - A rollout record changes only through [`RolloutStore::update_rollout`], one
//!   `UPDATE … WHERE version = $n`: of two workers that read version n, one writes n+1 and the
//!   other gets `false` and reads again.
//! - [`RolloutStore::release_targets`] claims the targets it releases with
//!   `SELECT … FOR UPDATE SKIP LOCKED` before it marks them and writes their executions, all
//!   in one transaction. Decision, over "insert and let `UNIQUE (job_id, thing)` on
//!   `executions` refuse the second with `ON CONFLICT DO NOTHING`": a worker never waits for
//!   another and two releases listing the same things in different orders cannot deadlock
//!   (a blocking `UPDATE` per thing could, and PostgreSQL would abort one of them); a target
//!   another worker is releasing is skipped, and if that worker rolls back instead, the
//!   target is still unreleased and the next step takes it. A target released and committed
//!   before the claim is not selected: the claim re-reads `released` on the row's newest
//!   version. `ON CONFLICT DO NOTHING` alone would instead make the losing worker wait for the
//!   winner's commit on every shared thing and, since the conflict is silent, a bug that
//!   created an execution without marking its target would pass unseen; here the unique key
//!   stays the last guard and such a bug is an error.
//! - [`RolloutStore::retry_execution`] is conditional on the execution's version like
//!   [`super::super::Store::update_execution`].

use std::collections::HashSet;

use async_trait::async_trait;
use ferrota_proto::JobStatus;
use sqlx::{Row, query};

use super::{
    PostgresStore, insert_job, insert_ota, insert_queued_execution, insert_stream, trim_history,
};
use crate::store::rollout::{CancelInfo, RolloutRecord, RolloutStore, WaveCounts, status_str};
use crate::store::rows::{Cols, corrupt, rollout_cols, rollout_of, to_i64};
use crate::store::{Execution, Job, OtaRecord, StoreError, StoreResult, StreamRecord};

#[async_trait]
impl RolloutStore for PostgresStore {
    async fn create_ota_rollout(
        &self,
        stream: &StreamRecord,
        job: &Job,
        ota: &OtaRecord,
        rollout: &RolloutRecord,
        targets: &[(String, u32)],
    ) -> StoreResult<()> {
        // A thing listed twice is the caller's error, named before anything is written (the
        // job is new, so no stored target can collide).
        let mut seen = HashSet::new();
        if let Some((thing, _)) = targets.iter().find(|(t, _)| !seen.insert(t.as_str())) {
            return Err(StoreError::Exists(format!(
                "target {thing} of job {}",
                job.job_id
            )));
        }
        let mut tx = self.pool().begin().await?;
        insert_stream(&mut *tx, stream).await?;
        insert_job(&mut tx, job, &[]).await?;
        insert_ota(&mut *tx, ota).await?;
        query(concat!(
            "INSERT INTO rollouts (",
            rollout_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
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
        if !targets.is_empty() {
            // One statement for all targets; WITH ORDINALITY keeps their notification order
            // in `seq`.
            let (things, waves): (Vec<&str>, Vec<i64>) = targets
                .iter()
                .map(|(t, w)| (t.as_str(), i64::from(*w)))
                .unzip();
            query(
                "INSERT INTO rollout_targets (job_id, thing, wave) \
                 SELECT $1, t.thing, t.wave \
                 FROM UNNEST($2::TEXT[], $3::BIGINT[]) WITH ORDINALITY AS t(thing, wave, n) \
                 ORDER BY t.n",
            )
            .bind(&job.job_id)
            .bind(things)
            .bind(waves)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn rollout(&self, job_id: &str) -> StoreResult<Option<RolloutRecord>> {
        query(concat!(
            "SELECT ",
            rollout_cols!(),
            " FROM rollouts WHERE job_id = $1"
        ))
        .bind(job_id)
        .fetch_optional(self.pool())
        .await?
        .map(|r| rollout_of(&r))
        .transpose()
    }

    async fn update_rollout(&self, r: &RolloutRecord, expected_version: u64) -> StoreResult<bool> {
        let done = query(
            "UPDATE rollouts SET status = $1, wave = $2, state = $3, reason_code = $4, \
             comment = $5, next_at = $6, version = $7 WHERE job_id = $8 AND version = $9",
        )
        .bind(status_str(r.status))
        .bind(i64::from(r.wave))
        .bind(&r.state)
        .bind(&r.reason_code)
        .bind(&r.comment)
        .bind(r.next_at.map(to_i64))
        .bind(to_i64(r.version))
        .bind(&r.job_id)
        .bind(to_i64(expected_version))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn active_rollouts(&self) -> StoreResult<Vec<RolloutRecord>> {
        query(
            "SELECT r.job_id, r.plan, r.status, r.wave, r.state, r.reason_code, r.comment, \
             r.next_at, r.version FROM rollouts r JOIN jobs j ON j.job_id = r.job_id \
             WHERE r.status <> 'STOPPED' AND j.state IN ('IN_PROGRESS', 'SCHEDULED') \
             ORDER BY j.created_at, r.job_id COLLATE \"C\"",
        )
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(rollout_of)
        .collect()
    }

    async fn due_rollouts(&self, now: u64) -> StoreResult<Vec<String>> {
        let rows = query(
            "SELECT job_id FROM rollouts WHERE next_at IS NOT NULL AND next_at <= $1 \
             ORDER BY next_at, job_id COLLATE \"C\"",
        )
        .bind(to_i64(now))
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("job_id"))
            .collect::<Result<_, _>>()?)
    }

    async fn next_rollout_at(&self) -> StoreResult<Option<u64>> {
        let r = query("SELECT MIN(next_at) AS m FROM rollouts WHERE next_at IS NOT NULL")
            .fetch_one(self.pool())
            .await?;
        Ok(r.opt_u64("m")?)
    }

    async fn unreleased_targets(
        &self,
        job_id: &str,
        max_wave: u32,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        let rows = query(
            "SELECT thing FROM rollout_targets WHERE job_id = $1 AND released = 0 \
             AND wave <= $2 ORDER BY wave, seq LIMIT $3",
        )
        .bind(job_id)
        .bind(i64::from(max_wave))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
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
        if things.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool().begin().await?;
        // Claim (see the module docs): rows another transaction holds are skipped, rows
        // released meanwhile no longer match.
        let claimed: HashSet<String> = query(
            "UPDATE rollout_targets SET released = 1 WHERE seq IN (\
               SELECT seq FROM rollout_targets \
               WHERE job_id = $1 AND thing = ANY($2) AND released = 0 \
               FOR UPDATE SKIP LOCKED) \
             RETURNING thing",
        )
        .bind(job_id)
        .bind(things)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("thing"))
        .collect::<Result<_, _>>()?;
        let mut n = 0;
        // In the caller's order (the executions' `seq` follow it, as on SQLite); a thing
        // listed twice is released once.
        let mut done = HashSet::new();
        for t in things {
            if claimed.contains(t) && done.insert(t) {
                insert_queued_execution(&mut tx, job_id, t, now).await?;
                n += 1;
            }
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
        // SUM of a BIGINT is NUMERIC in PostgreSQL: cast back.
        let rows = query(
            "SELECT wave, COUNT(*) AS n, SUM(released)::BIGINT AS r FROM rollout_targets \
             WHERE job_id = $1 GROUP BY wave",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await?;
        for r in &rows {
            let w = slot(&mut out, r.int("wave")?);
            out[w].things = r.u64("n")?;
            out[w].released = r.u64("r")?;
        }
        let rows = query(
            "SELECT t.wave AS wave, e.status AS status, COUNT(*) AS n FROM rollout_targets t \
             JOIN executions e ON e.job_id = t.job_id AND e.thing = t.thing \
             WHERE t.job_id = $1 GROUP BY t.wave, e.status",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await?;
        for r in &rows {
            let w = slot(&mut out, r.int("wave")?);
            let s = JobStatus::from_wire(&r.text("status")?)
                .ok_or_else(|| corrupt("execution status"))?;
            out[w].statuses.push((s, r.u64("n")?));
        }
        Ok(out)
    }

    async fn add_target(&self, job_id: &str, thing: &str, wave: u32) -> StoreResult<bool> {
        let r = query(
            "INSERT INTO rollout_targets (job_id, thing, wave) VALUES ($1, $2, $3) \
             ON CONFLICT (job_id, thing) DO NOTHING",
        )
        .bind(job_id)
        .bind(thing)
        .bind(i64::from(wave))
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn retry_execution(&self, e: &Execution, now: u64) -> StoreResult<bool> {
        let mut tx = self.pool().begin().await?;
        let now = to_i64(now);
        let version = to_i64(e.version_number.saturating_add(1));
        let r = query(
            "UPDATE executions SET status = 'QUEUED', status_details = '{}', queued_at = $1, \
             started_at = NULL, last_updated_at = $1, version_number = $2, \
             execution_number = execution_number + 1, in_progress_deadline = NULL, \
             step_deadline = NULL, deadline = NULL \
             WHERE job_id = $3 AND thing = $4 AND version_number = $5",
        )
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
        query(
            "INSERT INTO execution_history (job_id, thing, status, status_details, \
             version_number, at) VALUES ($1, $2, 'QUEUED', '{}', $3, $4)",
        )
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
        query("UPDATE jobs SET cancel_info = $1 WHERE job_id = $2")
            .bind(json)
            .bind(job_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn cancel_info(&self, job_id: &str) -> StoreResult<Option<CancelInfo>> {
        let Some(r) = query("SELECT cancel_info FROM jobs WHERE job_id = $1")
            .bind(job_id)
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        r.opt_text("cancel_info")?
            .map(|s| serde_json::from_str(&s).map_err(|_| corrupt("cancel info")))
            .transpose()
    }

    async fn rollout_progress(&self) -> StoreResult<Vec<crate::store::RolloutProgress>> {
        query(crate::store::rows::ROLLOUT_PROGRESS_SQL)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(crate::store::rows::progress_of)
            .collect()
    }
}
