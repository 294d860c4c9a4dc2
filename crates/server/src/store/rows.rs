//! What the SQL stores share: the column lists each reader takes and the readers that turn a
//! row into a record, written once for SQLite and PostgreSQL alike.
//!
//! Both schemas use the same table and column names and the same value forms (integers as
//! 64-bit, JSON as text, states as AWS's words), so a row of either reads the same way. Only
//! the SQL that writes differs (placeholders, upserts, locking), and that stays in each
//! backend's module.

use std::collections::BTreeMap;

use ferrota_proto::JobStatus;

use super::attrs::DynamicGroup;
use super::rollout::{RolloutProgress, RolloutRecord, status_of};
use super::shadow::ShadowRecord;
use super::{
    CertRecord, CertStatus, Execution, HistoryEntry, Job, JobState, OtaRecord, StoreError,
    StoreResult, StreamRecord,
};

/// Typed column access common to SQLite's and PostgreSQL's rows. sqlx's `Row::try_get` is
/// generic over the database with bounds that would have to be repeated on every reader; this
/// names the four column kinds the stores use.
pub(crate) trait Cols {
    /// A 64-bit integer column.
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    /// A nullable 64-bit integer column.
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    /// A text column.
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    /// A nullable text column.
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;

    /// A non-negative integer column (a stored negative reads as 0).
    fn u64(&self, col: &str) -> Result<u64, sqlx::Error> {
        Ok(self.int(col)?.max(0) as u64)
    }
    /// A nullable non-negative integer column.
    fn opt_u64(&self, col: &str) -> Result<Option<u64>, sqlx::Error> {
        Ok(self.opt_int(col)?.map(|v| v.max(0) as u64))
    }
}

macro_rules! impl_cols {
    ($row:ty) => {
        impl Cols for $row {
            fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
                sqlx::Row::try_get(self, col)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
                sqlx::Row::try_get(self, col)
            }
            fn text(&self, col: &str) -> Result<String, sqlx::Error> {
                sqlx::Row::try_get(self, col)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
                sqlx::Row::try_get(self, col)
            }
        }
    };
}
impl_cols!(sqlx::sqlite::SqliteRow);
impl_cols!(sqlx::postgres::PgRow);

// The columns each row reader takes, named: never a star select. sqlx caches a prepared
// statement's column list per connection, so a star prepared before a migration changed the
// table reads rows of another width afterwards (sqlx-sqlite then panics in its worker thread,
// `row.rs` index out of bounds); a named list also keeps a reader's columns in one place.
// Macros, not consts, so `concat!` makes each query one `&'static str` at compile time.
macro_rules! execution_cols {
    () => {
        "job_id, thing, status, status_details, queued_at, started_at, last_updated_at, \
         version_number, execution_number, seq, in_progress_deadline, step_deadline"
    };
}
macro_rules! cert_cols {
    () => {
        "id, thing, serial, pem, status, created_at, revoked_at"
    };
}
macro_rules! job_cols {
    () => {
        "job_id, document, state, ota_update_id, created_at, in_progress_timeout_minutes"
    };
}
macro_rules! ota_cols {
    () => {
        "id, status, request, job_id, stream_id, created_at, error_info"
    };
}
macro_rules! history_cols {
    () => {
        "id, status, status_details, version_number, at"
    };
}
macro_rules! stream_cols {
    () => {
        "stream_id, description, version, files"
    };
}
macro_rules! rollout_cols {
    () => {
        "job_id, plan, status, wave, state, reason_code, comment, next_at, version"
    };
}
macro_rules! shadow_cols {
    () => {
        "thing, state, metadata, version, updated_at"
    };
}
macro_rules! group_cols {
    () => {
        "name, query_string, created_at"
    };
}
pub(crate) use {
    cert_cols, execution_cols, group_cols, history_cols, job_cols, ota_cols, rollout_cols,
    shadow_cols, stream_cols,
};

/// An epoch-seconds or counter value as SQL's signed 64 bits (saturating).
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// statusDetails as the JSON text both schemas store.
pub(crate) fn details_json(d: &BTreeMap<String, String>) -> String {
    serde_json::to_string(d).unwrap_or_else(|_| "{}".into())
}

/// A write's result with a unique violation (the record is there already) turned into
/// [`StoreError::Exists`] naming `what`: the one mapping of both SQL stores.
pub(crate) fn exists_as<T>(
    r: Result<T, sqlx::Error>,
    what: impl FnOnce() -> String,
) -> StoreResult<T> {
    match r {
        Err(sqlx::Error::Database(ref d)) if d.is_unique_violation() => {
            Err(StoreError::Exists(what()))
        }
        r => Ok(r?),
    }
}

/// A stored value that does not decode.
pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.into())
}

/// A job state as stored.
pub(crate) fn job_state_str(s: JobState) -> &'static str {
    match s {
        JobState::InProgress => "IN_PROGRESS",
        JobState::Canceled => "CANCELED",
        JobState::Completed => "COMPLETED",
        JobState::Scheduled => "SCHEDULED",
    }
}

/// A certificate status as stored.
pub(crate) fn cert_status_str(s: CertStatus) -> &'static str {
    match s {
        CertStatus::Active => "ACTIVE",
        CertStatus::Revoked => "REVOKED",
    }
}

/// A row of [`execution_cols`].
pub(crate) fn execution_of(r: &impl Cols) -> StoreResult<Execution> {
    Ok(Execution {
        job_id: r.text("job_id")?,
        thing: r.text("thing")?,
        status: JobStatus::from_wire(&r.text("status")?)
            .ok_or_else(|| corrupt("execution status"))?,
        status_details: serde_json::from_str(&r.text("status_details")?)
            .map_err(|_| corrupt("execution details"))?,
        queued_at: r.u64("queued_at")?,
        started_at: r.opt_int("started_at")?.map(|v| v as u64),
        last_updated_at: r.u64("last_updated_at")?,
        version_number: r.u64("version_number")?,
        execution_number: r.u64("execution_number")?,
        seq: r.int("seq")?,
        in_progress_deadline: r.opt_u64("in_progress_deadline")?,
        step_deadline: r.opt_u64("step_deadline")?,
    })
}

/// A row of [`cert_cols`].
pub(crate) fn cert_of(r: &impl Cols) -> StoreResult<CertRecord> {
    Ok(CertRecord {
        id: r.text("id")?,
        thing: r.text("thing")?,
        serial: r.text("serial")?,
        pem: r.text("pem")?,
        status: if r.text("status")? == "REVOKED" {
            CertStatus::Revoked
        } else {
            CertStatus::Active
        },
        created_at: r.u64("created_at")?,
        revoked_at: r.opt_int("revoked_at")?.map(|v| v as u64),
    })
}

/// A row of [`job_cols`].
pub(crate) fn job_of(r: &impl Cols) -> StoreResult<Job> {
    Ok(Job {
        job_id: r.text("job_id")?,
        document: r.text("document")?,
        state: match r.text("state")?.as_str() {
            "CANCELED" => JobState::Canceled,
            "COMPLETED" => JobState::Completed,
            "SCHEDULED" => JobState::Scheduled,
            _ => JobState::InProgress,
        },
        ota_update_id: r.opt_text("ota_update_id")?,
        created_at: r.u64("created_at")?,
        in_progress_timeout_minutes: r.opt_u64("in_progress_timeout_minutes")?,
    })
}

/// A row of [`ota_cols`].
pub(crate) fn ota_of(r: &impl Cols) -> StoreResult<OtaRecord> {
    Ok(OtaRecord {
        ota_update_id: r.text("id")?,
        status: r.text("status")?,
        request: r.text("request")?,
        job_id: r.text("job_id")?,
        stream_id: r.text("stream_id")?,
        created_at: r.u64("created_at")?,
        error_info: r
            .opt_text("error_info")?
            .map(|t| serde_json::from_str(&t).map_err(|_| corrupt("OTA update errorInfo")))
            .transpose()?,
    })
}

/// A row of [`history_cols`].
pub(crate) fn history_of(r: &impl Cols) -> StoreResult<HistoryEntry> {
    Ok(HistoryEntry {
        status: JobStatus::from_wire(&r.text("status")?).ok_or_else(|| corrupt("history"))?,
        status_details: serde_json::from_str(&r.text("status_details")?)
            .map_err(|_| corrupt("history details"))?,
        version_number: r.u64("version_number")?,
        at: r.u64("at")?,
    })
}

/// A row of [`stream_cols`].
pub(crate) fn stream_of(r: &impl Cols) -> StoreResult<StreamRecord> {
    Ok(StreamRecord {
        stream_id: r.text("stream_id")?,
        description: r.text("description")?,
        version: u32::try_from(r.int("version")?).map_err(|_| corrupt("stream version"))?,
        files: serde_json::from_str(&r.text("files")?).map_err(|_| corrupt("stream files"))?,
    })
}

/// A row of [`rollout_cols`] (`rollouts`).
pub(crate) fn rollout_of(r: &impl Cols) -> StoreResult<RolloutRecord> {
    Ok(RolloutRecord {
        job_id: r.text("job_id")?,
        plan: r.text("plan")?,
        status: status_of(&r.text("status")?).ok_or_else(|| corrupt("rollout status"))?,
        wave: u32::try_from(r.u64("wave")?).map_err(|_| corrupt("rollout wave"))?,
        state: r.text("state")?,
        reason_code: r.opt_text("reason_code")?,
        comment: r.opt_text("comment")?,
        next_at: r.opt_u64("next_at")?,
        version: r.u64("version")?,
    })
}

/// A row of [`shadow_cols`] (`shadows`; a NULL `state` is a tombstone).
pub(crate) fn shadow_of(r: &impl Cols) -> StoreResult<ShadowRecord> {
    Ok(ShadowRecord {
        thing: r.text("thing")?,
        state: r.opt_text("state")?,
        metadata: r.text("metadata")?,
        version: r.u64("version")?,
        updated_at: r.u64("updated_at")?,
    })
}

/// A row of [`group_cols`] (`dynamic_groups`).
pub(crate) fn group_of(r: &impl Cols) -> StoreResult<DynamicGroup> {
    Ok(DynamicGroup {
        name: r.text("name")?,
        query_string: r.text("query_string")?,
        created_at: r.u64("created_at")?,
    })
}

/// The query of [`super::Store::execution_status_totals`], the same on SQLite and PostgreSQL.
pub(crate) const STATUS_TOTALS_SQL: &str =
    "SELECT status, COUNT(*) AS n FROM executions GROUP BY status";

/// The query of [`super::RolloutStore::rollout_progress`] (no placeholders; the same on both):
/// the active rollouts as `active_rollouts` selects them, their targets by wave, and each
/// target's execution (none while not notified), counted in one pass.
pub(crate) const ROLLOUT_PROGRESS_SQL: &str = "SELECT COALESCE(j.ota_update_id, j.job_id) AS ota, t.wave AS wave, e.status AS status, COUNT(*) AS n \
     FROM rollouts r JOIN jobs j ON j.job_id = r.job_id \
     JOIN rollout_targets t ON t.job_id = r.job_id \
     LEFT JOIN executions e ON e.job_id = t.job_id AND e.thing = t.thing \
     WHERE r.status != 'STOPPED' AND j.state IN ('IN_PROGRESS', 'SCHEDULED') \
     GROUP BY COALESCE(j.ota_update_id, j.job_id), t.wave, e.status \
     ORDER BY 1, 2, 3";

/// One row of [`STATUS_TOTALS_SQL`].
pub(crate) fn status_total_of(r: &impl Cols) -> StoreResult<(JobStatus, u64)> {
    let st = r.text("status")?;
    let status = JobStatus::from_wire(&st).ok_or_else(|| corrupt("execution status"))?;
    Ok((status, r.u64("n")?))
}

/// One row of [`ROLLOUT_PROGRESS_SQL`].
pub(crate) fn progress_of(r: &impl Cols) -> StoreResult<RolloutProgress> {
    let status = match r.opt_text("status")? {
        Some(s) => Some(JobStatus::from_wire(&s).ok_or_else(|| corrupt("execution status"))?),
        None => None,
    };
    Ok(RolloutProgress {
        ota_update_id: r.text("ota")?,
        wave: u32::try_from(r.int("wave")?).map_err(|_| corrupt("rollout wave"))?,
        status,
        count: r.u64("n")?,
    })
}
