//! [`Store`] (the base trait) for [`PostgresStore`]: the SQL of [`super::super::sqlite`] in
//! PostgreSQL's dialect, rows read through [`super::super::rows`].
//!
//! Orderings by name (`list_things`, `group_members`, `executions_of_job`) use
//! `COLLATE "C"`: byte order, as SQLite and the memory store sort, whatever collation the
//! operator's database was created with (`en_US.UTF-8` would put `B` after `a`).

use async_trait::async_trait;
use ferrota_proto::JobStatus;
use sqlx::{Row, query};

use super::super::rows::*;
use super::super::*;
use super::*;

impl PostgresStore {
    async fn groups_of(&self, thing: &str) -> StoreResult<Vec<String>> {
        let rows =
            query("SELECT grp FROM thing_groups WHERE thing = $1 ORDER BY grp COLLATE \"C\"")
                .bind(thing)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("grp"))
            .collect::<Result<_, _>>()?)
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_thing(&self, thing: &Thing) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        insert_thing(&mut tx, thing).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_things_with_certificates(
        &self,
        items: &[(Thing, CertRecord)],
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for (thing, c) in items {
            insert_thing(&mut tx, thing).await?;
            insert_certificate(&mut *tx, c).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn job_has_pending(&self, job_id: &str) -> StoreResult<bool> {
        let r = query(
            "SELECT EXISTS(SELECT 1 FROM executions WHERE job_id = $1 \
             AND status IN ('QUEUED', 'IN_PROGRESS')) AS p",
        )
        .bind(job_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(r.try_get::<bool, _>("p")?)
    }

    async fn job_status_counts(&self, job_id: &str) -> StoreResult<Vec<(JobStatus, u64)>> {
        let rows =
            query("SELECT status, COUNT(*) AS n FROM executions WHERE job_id = $1 GROUP BY status")
                .bind(job_id)
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let st: String = r.try_get("status")?;
            let status = JobStatus::from_wire(&st).ok_or_else(|| corrupt("execution status"))?;
            out.push((status, r.u64("n")?));
        }
        Ok(out)
    }

    async fn thing(&self, name: &str) -> StoreResult<Option<Thing>> {
        let Some(r) = query("SELECT name, created_at FROM things WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(Thing {
            name: r.try_get("name")?,
            created_at: r.u64("created_at")?,
            groups: self.groups_of(name).await?,
        }))
    }

    async fn execution_status_totals(&self) -> StoreResult<Vec<(JobStatus, u64)>> {
        query(crate::store::rows::STATUS_TOTALS_SQL)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(crate::store::rows::status_total_of)
            .collect()
    }

    async fn list_things(&self) -> StoreResult<Vec<Thing>> {
        // Two reads instead of one per thing: a round trip to a server costs more than one
        // to SQLite's file.
        let rows = query("SELECT name, created_at FROM things ORDER BY name COLLATE \"C\"")
            .fetch_all(&self.pool)
            .await?;
        let mut groups = BTreeMap::<String, Vec<String>>::new();
        for r in query("SELECT thing, grp FROM thing_groups ORDER BY grp COLLATE \"C\"")
            .fetch_all(&self.pool)
            .await?
        {
            groups
                .entry(r.try_get("thing")?)
                .or_default()
                .push(r.try_get("grp")?);
        }
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let name: String = r.try_get("name")?;
            out.push(Thing {
                groups: groups.remove(&name).unwrap_or_default(),
                created_at: r.u64("created_at")?,
                name,
            });
        }
        Ok(out)
    }

    async fn group_members(&self, group: &str) -> StoreResult<Vec<String>> {
        let rows =
            query("SELECT thing FROM thing_groups WHERE grp = $1 ORDER BY thing COLLATE \"C\"")
                .bind(group)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("thing"))
            .collect::<Result<_, _>>()?)
    }

    async fn add_certificate(&self, c: &CertRecord) -> StoreResult<()> {
        insert_certificate(&self.pool, c).await
    }

    async fn certificate(&self, id: &str) -> StoreResult<Option<CertRecord>> {
        query(concat!(
            "SELECT ",
            cert_cols!(),
            " FROM certificates WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| cert_of(&r))
        .transpose()
    }

    async fn certificates_of(&self, thing: &str) -> StoreResult<Vec<CertRecord>> {
        query(concat!(
            "SELECT ",
            cert_cols!(),
            " FROM certificates WHERE thing = $1 ORDER BY created_at"
        ))
        .bind(thing)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(cert_of)
        .collect()
    }

    async fn revoked_certificates(&self) -> StoreResult<Vec<CertRecord>> {
        query(concat!(
            "SELECT ",
            cert_cols!(),
            " FROM certificates WHERE status = 'REVOKED' ORDER BY revoked_at"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(cert_of)
        .collect()
    }

    async fn revoke_thing(&self, thing: &str, now: u64) -> StoreResult<u64> {
        let r = query("UPDATE certificates SET status = 'REVOKED', revoked_at = $1 WHERE thing = $2 AND status = 'ACTIVE'")
            .bind(to_i64(now))
            .bind(thing)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    async fn create_job(&self, job: &Job, things: &[String]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        insert_job(&mut tx, job, things).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn job(&self, job_id: &str) -> StoreResult<Option<Job>> {
        query(concat!(
            "SELECT ",
            job_cols!(),
            " FROM jobs WHERE job_id = $1"
        ))
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| job_of(&r))
        .transpose()
    }

    async fn set_job_state(&self, job_id: &str, state: JobState) -> StoreResult<()> {
        query("UPDATE jobs SET state = $1 WHERE job_id = $2")
            .bind(job_state_str(state))
            .bind(job_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn executions_of_thing(&self, thing: &str) -> StoreResult<Vec<Execution>> {
        query(concat!(
            "SELECT ",
            execution_cols!(),
            " FROM executions WHERE thing = $1 ORDER BY seq"
        ))
        .bind(thing)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(execution_of)
        .collect()
    }

    async fn executions_of_job(&self, job_id: &str) -> StoreResult<Vec<Execution>> {
        query(concat!(
            "SELECT ",
            execution_cols!(),
            " FROM executions WHERE job_id = $1 ORDER BY thing COLLATE \"C\""
        ))
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(execution_of)
        .collect()
    }

    async fn executions_of_job_page(
        &self,
        job_id: &str,
        after: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<Execution>> {
        query(concat!(
            "SELECT ",
            execution_cols!(),
            " FROM executions WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        ))
        .bind(job_id)
        .bind(after.unwrap_or(i64::MIN))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(execution_of)
        .collect()
    }

    async fn execution(&self, job_id: &str, thing: &str) -> StoreResult<Option<Execution>> {
        query(concat!(
            "SELECT ",
            execution_cols!(),
            " FROM executions WHERE job_id = $1 AND thing = $2"
        ))
        .bind(job_id)
        .bind(thing)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| execution_of(&r))
        .transpose()
    }

    /// One conditional `UPDATE` checks and writes: under READ COMMITTED a second worker's
    /// `UPDATE` of the same row waits for the first one's commit, then re-checks its `WHERE`
    /// on the new row, finds the version changed and updates nothing. So `expectedVersion`
    /// holds across workers, and the history entry is written only by the winner, in its
    /// transaction.
    async fn update_execution(&self, e: &Execution, expected_version: u64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let details = details_json(&e.status_details);
        let running = e.status == JobStatus::InProgress;
        let r = query("UPDATE executions SET status = $1, status_details = $2, started_at = $3, last_updated_at = $4, version_number = $5, in_progress_deadline = $6, step_deadline = $7, deadline = $8 WHERE job_id = $9 AND thing = $10 AND version_number = $11")
            .bind(e.status.as_str())
            .bind(&details)
            .bind(e.started_at.map(to_i64))
            .bind(to_i64(e.last_updated_at))
            .bind(to_i64(e.version_number))
            .bind(e.in_progress_deadline.filter(|_| running).map(to_i64))
            .bind(e.step_deadline.filter(|_| running).map(to_i64))
            .bind(e.deadline().map(to_i64))
            .bind(&e.job_id)
            .bind(&e.thing)
            .bind(to_i64(expected_version))
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        query("INSERT INTO execution_history (job_id, thing, status, status_details, version_number, at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&e.job_id)
            .bind(&e.thing)
            .bind(e.status.as_str())
            .bind(&details)
            .bind(to_i64(e.version_number))
            .bind(to_i64(e.last_updated_at))
            .execute(&mut *tx)
            .await?;
        trim_history(&mut tx, &e.job_id, &e.thing).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn history(&self, job_id: &str, thing: &str) -> StoreResult<Vec<HistoryEntry>> {
        let rows = query(concat!(
            "SELECT ",
            history_cols!(),
            " FROM (SELECT ",
            history_cols!(),
            " FROM execution_history WHERE job_id = $1 AND thing = $2 ORDER BY id DESC LIMIT $3) AS h ORDER BY id"
        ))
        .bind(job_id)
        .bind(thing)
        .bind(HISTORY_MAX as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(history_of).collect()
    }

    async fn due_executions(&self, now: u64) -> StoreResult<Vec<Execution>> {
        query(concat!("SELECT ", execution_cols!(), " FROM executions WHERE deadline IS NOT NULL AND deadline <= $1 AND status = 'IN_PROGRESS' ORDER BY deadline, seq"))
            .bind(to_i64(now))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(execution_of)
            .collect()
    }

    async fn next_deadline(&self) -> StoreResult<Option<u64>> {
        let r = query("SELECT MIN(deadline) AS d FROM executions WHERE deadline IS NOT NULL AND status = 'IN_PROGRESS'")
            .fetch_one(&self.pool)
            .await?;
        Ok(r.opt_u64("d")?)
    }

    async fn create_stream(&self, s: &StreamRecord) -> StoreResult<()> {
        insert_stream(&self.pool, s).await
    }

    async fn stream(&self, stream_id: &str) -> StoreResult<Option<StreamRecord>> {
        query(concat!(
            "SELECT ",
            stream_cols!(),
            " FROM streams WHERE stream_id = $1"
        ))
        .bind(stream_id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| stream_of(&r))
        .transpose()
    }

    async fn create_ota(&self, o: &OtaRecord) -> StoreResult<()> {
        insert_ota(&self.pool, o).await
    }

    async fn create_ota_update(
        &self,
        stream: &StreamRecord,
        job: &Job,
        things: &[String],
        ota: &OtaRecord,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        insert_stream(&mut *tx, stream).await?;
        insert_job(&mut tx, job, things).await?;
        insert_ota(&mut *tx, ota).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn ota(&self, id: &str) -> StoreResult<Option<OtaRecord>> {
        query(concat!(
            "SELECT ",
            ota_cols!(),
            " FROM ota_updates WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| ota_of(&r))
        .transpose()
    }

    async fn list_ota(&self) -> StoreResult<Vec<OtaRecord>> {
        query(concat!(
            "SELECT ",
            ota_cols!(),
            " FROM ota_updates ORDER BY created_at DESC, id COLLATE \"C\""
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(ota_of)
        .collect()
    }

    async fn set_ota_status(&self, id: &str, status: &str) -> StoreResult<()> {
        query("UPDATE ota_updates SET status = $1 WHERE id = $2")
            .bind(status)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_ota_error(&self, id: &str, error: &ErrorInfo) -> StoreResult<()> {
        let text = serde_json::to_string(error).map_err(|_| corrupt("OTA update errorInfo"))?;
        query("UPDATE ota_updates SET error_info = $1 WHERE id = $2")
            .bind(text)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
