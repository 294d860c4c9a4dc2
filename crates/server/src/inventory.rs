//! The device inventory: what each thing runs and where it stands ([`ThingInventory`]), kept
//! from what the device reports in its classic Device Shadow (`state.reported`, the
//! `ReportedState` that `ferrota-agent` publishes after every boot and every job), its
//! connection and its jobs. `thing describe` and `GET /api/things/{name}` show it; the fleet
//! index builds its documents from it.
//!
//! Decisions:
//! * **Reported state** is read field by field: a `firmware` object that lacks a field or has
//!   one of the wrong type is left out (`None`) rather than failing the thing's description,
//!   and keys Ferrota does not know are ignored (a device may keep other state in its shadow).
//!   `reportedAt` is the newest `metadata` timestamp under `reported`.
//! * **Last job** is the thing's newest execution (the last created), whatever its status.
//! * **Last seen** is the newest time the server heard from the device: its last shadow update
//!   or delete, the last change of an execution the device made (IN_PROGRESS, SUCCEEDED,
//!   FAILED, REJECTED; QUEUED, CANCELED, TIMED_OUT and REMOVED are the server's), and now
//!   while it is connected. The broker's connect and disconnect times are not recorded (no
//!   store write per connection); a device that connects and says nothing is "seen" only while
//!   connected — ferrota-agent reports its shadow on every connection, so for it the two agree.
//! * `connected` is the caller's (the broker's sessions, `admin::Sessions::is_connected`):
//!   taken as a `bool` so this module stays below [`crate::admin`], which calls it (no import
//!   circle, `tests/layers.rs`).

/// The inventory's types are `ferrota-api`'s (what the HTTP API and the CLI read).
pub use ferrota_api::{FirmwareState, LastJob, ReportedState, ThingInventory};
use ferrota_proto::JobStatus;
use serde_json::{Map, Value};

use crate::context::Services;
use crate::shadow;
use crate::store::StoreResult;

/// The firmware part of a reported state, if it holds every field with the right type.
fn firmware_of(v: Option<&Value>) -> Option<FirmwareState> {
    serde_json::from_value(v?.clone()).ok()
}

/// `ReportedState` from a shadow's `reported` section (see the module docs).
pub fn reported_state(reported: &Map<String, Value>) -> ReportedState {
    ReportedState {
        firmware: firmware_of(reported.get("firmware")),
        hardware_id: reported
            .get("hardwareId")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// Whether the device itself set this status (so its time is a time the device was heard).
fn set_by_device(s: JobStatus) -> bool {
    matches!(
        s,
        JobStatus::InProgress | JobStatus::Succeeded | JobStatus::Failed | JobStatus::Rejected
    )
}

/// The inventory of `thing` (see the module docs); `connected`: whether it has a live session
/// now (`admin::Sessions::is_connected`).
pub async fn inventory(b: &Services, connected: bool, thing: &str) -> StoreResult<ThingInventory> {
    let rec = b.store.shadow(thing).await?;
    let doc = rec.as_ref().and_then(shadow::Document::of);
    let execs = b.store.executions_of_thing(thing).await?;
    let last = execs.iter().max_by_key(|e| e.seq);
    let heard_in_jobs = execs
        .iter()
        .filter(|e| set_by_device(e.status))
        .map(|e| e.last_updated_at)
        .max();
    let now = connected.then(|| b.clock.now());
    let last_seen = [rec.as_ref().map(|r| r.updated_at), heard_in_jobs, now]
        .into_iter()
        .flatten()
        .max();
    Ok(ThingInventory {
        connected,
        last_seen,
        reported: doc.as_ref().and_then(|d| d.reported()).map(reported_state),
        reported_at: doc.as_ref().and_then(shadow::Document::reported_at),
        last_job: last.map(|e| LastJob {
            job_id: e.job_id.clone(),
            status: e.status.as_str().to_string(),
            last_updated_at: e.last_updated_at,
        }),
    })
}
