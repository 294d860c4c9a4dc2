//! The device side of AWS IoT Jobs over MQTT (spec §1.3, §1.4, §9): GetPendingJobExecutions,
//! StartNextPendingJobExecution, DescribeJobExecution (`$next` included), UpdateJobExecution,
//! and the `notify` and `notify-next` pushes.
//!
//! * Responses (`…/accepted`, `…/rejected`) go to the requesting session only, subscribed or
//!   not, exactly as AWS delivers them (§1.3).
//! * `$next` = the oldest IN_PROGRESS execution, else the oldest QUEUED one.
//! * `notify-next` is published (to subscribers) only when the identity of the next pending
//!   execution changes (§1.4, §4.9 hazard 3), with no `execution` when nothing is pending.
//! * An update is committed (compare-and-set on the version) before `/accepted` is queued and
//!   before the PUBACK.
//! * Decisions: a device may set IN_PROGRESS, SUCCEEDED, FAILED, REJECTED (others:
//!   `InvalidRequest`; QUEUED: `InvalidStateTransition`); any update of a terminal execution is
//!   `InvalidStateTransition`; `statusDetails`, when given, replaces the map; a mismatching
//!   `executionNumber` is `ResourceNotFound`; `includeJobDocument: false` on a describe is
//!   ignored (the document is always included).
//! * `notify` (JobExecutionsChanged, `{"timestamp","jobs":{"QUEUED":[…],"IN_PROGRESS":[…]}}`,
//!   empty lists left out) is published when an execution is added to or removed from the
//!   thing's pending list (AWS's wording): a job created or canceled, an execution reaching a
//!   terminal state. QUEUED → IN_PROGRESS changes no membership and publishes nothing.
//! * Timers (see [`crate::timeouts`]): the job's `inProgressTimeoutInMinutes` starts when the
//!   execution becomes IN_PROGRESS; `stepTimeoutInMinutes` (1–10080) on start-next or on an
//!   update to IN_PROGRESS (re)starts the step timer, `-1` on an update clears it, other values
//!   are `InvalidRequest`; the first timer to expire makes the execution TIMED_OUT. A request
//!   about a thing first expires its due executions, so no answer shows a timer past expiry.
//! * Every reply is encoded by ferrota-proto (`alloc` feature for the `Vec`s): GetPendingJobExecutions'
//!   and `notify`'s summaries too ([`PendingJobsOut`], [`JobExecutionsChangedOut`]), byte for
//!   byte what serde_json wrote here before.

use std::collections::BTreeMap;

use bytes::Bytes;
use ferrota_proto::job::{EncodeError, ExecutionOut, JobDocumentOut, JobMessageOut};
use ferrota_proto::jobs_api::{
    ExecutionStateOut, JobExecutionSummaryOut, JobExecutionsChangedOut, JobsErrorCode,
    JobsRejectionOut, JobsRequest, PendingJobsOut, UpdateAcceptedOut,
};
use ferrota_proto::json::{JsonObject, JsonStr, Value};
use ferrota_proto::limits::{
    CLIENT_TOKEN_MAX, JOBS_REQUEST_BYTES_MAX, STATUS_DETAILS_BYTES_MAX, STATUS_DETAILS_ENTRIES_MAX,
    STATUS_DETAILS_KEY_MAX, STATUS_DETAILS_VALUE_MAX,
};
use ferrota_proto::topic::{JobRef, JobsTopic, Reply, Topic};
use ferrota_proto::{JobError, JobStatus, UpdateRequest};
use rumqttc::QoS;

use crate::context::Services;
use crate::store::{Execution, JobState, StoreResult};

/// Encodes with a growing buffer ([`ferrota_proto::vec::encode`]); a failure is logged.
pub(crate) fn encode_grow(
    f: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> Option<Vec<u8>> {
    ferrota_proto::vec::encode(f)
        .map_err(|e| tracing::error!(error = %e, "encoding a Jobs message failed"))
        .ok()
}

fn unescape(s: JsonStr<'_>) -> Option<String> {
    if let Some(p) = s.as_plain() {
        return Some(p.to_string());
    }
    let mut buf = vec![0u8; s.raw().len()];
    s.unescape(&mut buf).ok().map(str::to_string)
}

/// Reads a request's `statusDetails` within AWS's limits (all in [`ferrota_proto::limits`]):
/// at most [`STATUS_DETAILS_ENTRIES_MAX`] entries, keys of 1–[`STATUS_DETAILS_KEY_MAX`]
/// characters of `[a-zA-Z0-9:_-]`, string values of 1–[`STATUS_DETAILS_VALUE_MAX`] characters
/// with no control character (AWS's `[^\p{C}]+`; we check Unicode `Cc`, what a device can
/// actually send by mistake), and [`STATUS_DETAILS_BYTES_MAX`] bytes of keys and values
/// together. The error is the `InvalidRequest` message. Reading stops at the first entry over a
/// limit, so an oversize map costs no more than its parse.
fn details_of(o: JsonObject<'_>) -> Result<BTreeMap<String, String>, String> {
    let mut m = BTreeMap::new();
    let mut bytes = 0usize;
    for (i, (k, v)) in o.iter().enumerate() {
        if i >= STATUS_DETAILS_ENTRIES_MAX {
            return Err(format!(
                "statusDetails has more than {STATUS_DETAILS_ENTRIES_MAX} entries"
            ));
        }
        let Value::String(v) = v else {
            return Err("statusDetails values must be strings".into());
        };
        let k = unescape(k).ok_or("statusDetails: invalid key string")?;
        if k.is_empty()
            || k.chars().count() > STATUS_DETAILS_KEY_MAX
            || !k
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b':' | b'_' | b'-'))
        {
            return Err(format!(
                "statusDetails key must be 1-{STATUS_DETAILS_KEY_MAX} characters of [a-zA-Z0-9:_-]"
            ));
        }
        let v = unescape(v).ok_or("statusDetails: invalid value string")?;
        if v.is_empty() || v.chars().count() > STATUS_DETAILS_VALUE_MAX {
            return Err(format!(
                "statusDetails value of {k} must be 1-{STATUS_DETAILS_VALUE_MAX} characters"
            ));
        }
        if v.chars().any(char::is_control) {
            return Err(format!(
                "statusDetails value of {k} contains a control character"
            ));
        }
        bytes += k.len() + v.len();
        if bytes > STATUS_DETAILS_BYTES_MAX {
            return Err(format!(
                "statusDetails larger than {STATUS_DETAILS_BYTES_MAX} bytes"
            ));
        }
        m.insert(k, v);
    }
    Ok(m)
}

/// The `clientToken` of a request the Jobs parser refused (wrong type of a field, too large),
/// so that the rejection still carries it as AWS's does; `None` when even that cannot be read.
fn token_of_refused(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct T {
        #[serde(rename = "clientToken")]
        client_token: Option<String>,
    }
    serde_json::from_slice::<T>(payload)
        .ok()?
        .client_token
        .filter(|t| t.len() <= CLIENT_TOKEN_MAX)
}

/// Refuses a request over [`JOBS_REQUEST_BYTES_MAX`] (AWS IoT Core's message size) with
/// `InvalidRequest`; `true` when it did.
fn refuse_oversize(
    b: &Services,
    client: &str,
    thing: &str,
    kind: JobsTopic<'_>,
    payload: &[u8],
) -> bool {
    if payload.len() <= JOBS_REQUEST_BYTES_MAX {
        return false;
    }
    let msg = format!("request larger than {JOBS_REQUEST_BYTES_MAX} bytes");
    let token = token_of_refused(payload);
    reject(
        b,
        client,
        thing,
        kind,
        JobsErrorCode::InvalidRequest,
        &msg,
        token.as_deref(),
        None,
    );
    true
}

fn pairs(d: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    d.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// The next pending execution: oldest IN_PROGRESS, else oldest QUEUED.
pub fn next_pending(execs: &[Execution]) -> Option<&Execution> {
    execs
        .iter()
        .filter(|e| e.status == JobStatus::InProgress)
        .min_by_key(|e| e.seq)
        .or_else(|| {
            execs
                .iter()
                .filter(|e| e.status == JobStatus::Queued)
                .min_by_key(|e| e.seq)
        })
}

/// What the pushes of a thing depend on: its next pending execution and its pending list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pending {
    /// The id of the next pending execution.
    pub next: Option<String>,
    /// The ids of the pending (QUEUED, IN_PROGRESS) executions, in creation order.
    pub ids: Vec<String>,
}

impl Pending {
    /// The snapshot of these executions (of one thing).
    pub fn of(execs: &[Execution]) -> Self {
        Pending {
            next: next_pending(execs).map(|e| e.job_id.clone()),
            ids: execs
                .iter()
                .filter(|e| !e.status.is_terminal())
                .map(|e| e.job_id.clone())
                .collect(),
        }
    }
}

/// The pending snapshot of a thing, taken before a change.
pub async fn pending(b: &Services, thing: &str) -> StoreResult<Pending> {
    Ok(Pending::of(&b.store.executions_of_thing(thing).await?))
}

/// The id of the next pending execution of a thing.
pub async fn next_pending_id(b: &Services, thing: &str) -> StoreResult<Option<String>> {
    Ok(pending(b, thing).await?.next)
}

/// AWS's JobExecutionSummary of an execution (encoded by ferrota-proto).
fn summary(e: &Execution) -> JobExecutionSummaryOut<'_> {
    JobExecutionSummaryOut {
        job_id: &e.job_id,
        queued_at: e.queued_at,
        started_at: e.started_at,
        last_updated_at: e.last_updated_at,
        version_number: e.version_number,
        execution_number: e.execution_number,
    }
}

/// The summaries of the executions in status `s`, in the order given.
fn summaries(execs: &[Execution], s: JobStatus) -> Vec<JobExecutionSummaryOut<'_>> {
    execs
        .iter()
        .filter(|e| e.status == s)
        .map(summary)
        .collect()
}

/// The body of `…/jobs/notify`: `{"jobs":{"IN_PROGRESS":[…],"QUEUED":[…]},"timestamp"}`
/// ([`JobExecutionsChangedOut`]).
pub fn notify_body(execs: &[Execution], now: u64) -> Vec<u8> {
    let in_progress = summaries(execs, JobStatus::InProgress);
    let queued = summaries(execs, JobStatus::Queued);
    let out = JobExecutionsChangedOut {
        in_progress: &in_progress,
        queued: &queued,
        timestamp: now,
    };
    encode_grow(|buf| out.encode(buf).map(str::len)).unwrap_or_default()
}

/// Publishes `notify-next` and/or `notify` for a thing, for whichever of its next pending
/// execution and its pending list differ from `before`.
pub async fn notify_changes(b: &Services, thing: &str, before: &Pending) -> StoreResult<()> {
    let execs = b.store.executions_of_thing(thing).await?;
    let after = Pending::of(&execs);
    if after.next != before.next
        && let Some(body) = execution_message(b, thing, next_pending(&execs), None).await?
    {
        b.publish(
            &Topic::notify_next(thing).to_string(),
            Bytes::from(body),
            QoS::AtLeastOnce,
        );
    }
    if after.ids != before.ids {
        b.publish(
            &Topic::jobs(thing, JobsTopic::Notify).to_string(),
            Bytes::from(notify_body(&execs, b.clock.now())),
            QoS::AtLeastOnce,
        );
    }
    Ok(())
}

fn reply(b: &Services, client: &str, thing: &str, kind: JobsTopic<'_>, body: Vec<u8>) {
    let topic = Topic::jobs(thing, kind).to_string();
    b.deliver_to(client, topic, Bytes::from(body), QoS::AtLeastOnce);
}

fn with_reply(kind: JobsTopic<'_>, r: Reply) -> JobsTopic<'_> {
    match kind {
        JobsTopic::GetPending(_) => JobsTopic::GetPending(r),
        JobsTopic::StartNext(_) => JobsTopic::StartNext(r),
        JobsTopic::Describe { job, .. } => JobsTopic::Describe { job, reply: r },
        JobsTopic::Update { job, .. } => JobsTopic::Update { job, reply: r },
        other => other,
    }
}

#[allow(clippy::too_many_arguments)]
fn reject(
    b: &Services,
    client: &str,
    thing: &str,
    kind: JobsTopic<'_>,
    code: JobsErrorCode,
    message: &str,
    token: Option<&str>,
    state: Option<&Execution>,
) {
    let details = state.map(|e| pairs(&e.status_details)).unwrap_or_default();
    let out = JobsRejectionOut {
        code,
        message,
        client_token: token,
        timestamp: b.clock.now(),
        execution_state: state.map(|e| ExecutionStateOut {
            status: e.status,
            status_details: &details,
            version_number: e.version_number,
        }),
    };
    if let Some(body) = encode_grow(|buf| out.encode(buf).map(str::len)) {
        reply(b, client, thing, with_reply(kind, Reply::Rejected), body);
    }
}

/// Answers a request on a malformed `…/jobs/…` topic with `InvalidTopic` on `<topic>/rejected`.
pub fn invalid_topic(b: &Services, client: &str, topic: &str, payload: &[u8]) {
    let token = JobsRequest::parse(payload)
        .ok()
        .and_then(|r| r.client_token)
        .and_then(unescape)
        .filter(|t| t.len() <= CLIENT_TOKEN_MAX);
    let out = JobsRejectionOut {
        code: JobsErrorCode::InvalidTopic,
        message: "invalid topic",
        client_token: token.as_deref(),
        timestamp: b.clock.now(),
        execution_state: None,
    };
    if let Some(body) = encode_grow(|buf| out.encode(buf).map(str::len)) {
        b.deliver_to(
            client,
            format!("{topic}/rejected"),
            Bytes::from(body),
            QoS::AtLeastOnce,
        );
    }
}

fn request_error(e: &JobError) -> (JobsErrorCode, String) {
    match e {
        JobError::Json(_) => (JobsErrorCode::InvalidJson, format!("invalid JSON: {e}")),
        _ => (
            JobsErrorCode::InvalidRequest,
            format!("invalid request: {e}"),
        ),
    }
}

/// The SHA-256 of the fileType-142 file (the metadata file, #20) of a job document as served:
/// its entry's `fileid` in the stream `afr_ota.streamname`, whose file is stored under its
/// SHA-256 (the blob name). `None` when the document has no such entry (or is not an OTA
/// document, or names a file the stream does not hold: the device then finds no manifest and
/// refuses the job itself).
async fn metadata_digest(b: &Services, document: &str) -> StoreResult<Option<[u8; 32]>> {
    use ferrota_proto::json::parse_object;
    let Some(ota) = parse_object(document.as_bytes())
        .ok()
        .flatten()
        .and_then(|top| top.get("afr_ota"))
        .and_then(|v| v.as_object())
    else {
        return Ok(None);
    };
    let Some(stream) = ota
        .get("streamname")
        .and_then(|v| v.as_str())
        .and_then(unescape)
    else {
        return Ok(None);
    };
    let file_id = ota
        .get("files")
        .and_then(|v| v.as_array())
        .and_then(|files| {
            files.iter().filter_map(|f| f.as_object()).find(|f| {
                f.get("fileType").and_then(|t| t.as_u64())
                    == Some(u64::from(ferrota_manifest::MANIFEST_FILE_TYPE))
            })
        })
        .and_then(|f| f.get("fileid").and_then(|v| v.as_u64()));
    let Some(file_id) = file_id else {
        return Ok(None);
    };
    let Some(s) = b.stream(&stream).await? else {
        return Ok(None);
    };
    Ok(s.files
        .iter()
        .find(|f| u64::from(f.file_id) == file_id)
        .and_then(|f| hex::decode(&f.blob).ok())
        .and_then(|d| <[u8; 32]>::try_from(d).ok()))
}

/// Encodes `{"timestamp","clientToken"?,"execution"?,"ferrotaTimestamp"?}` for an execution of
/// this broker, sent to `thing`. With trust set ([`Services::set_trust`]) the message carries
/// the timestamp for `thing` at the services' clock, naming the metadata file of the
/// document sent (#20, design §3.2); without, it is byte for byte what AWS IoT sends.
pub(crate) async fn execution_message(
    b: &Services,
    thing: &str,
    exec: Option<&Execution>,
    token: Option<&str>,
) -> StoreResult<Option<Vec<u8>>> {
    // The document as this thing is to see it: only the deltas its reported firmware can
    // use ([`crate::device_doc`]).
    let doc = match exec {
        Some(e) => match b.store.job(&e.job_id).await? {
            Some(j) => Some(
                crate::device_doc::for_thing(b, &e.thing, &j.document)
                    .await?
                    .into_owned(),
            ),
            None => None,
        },
        None => None,
    };
    let details = exec.map(|e| pairs(&e.status_details)).unwrap_or_default();
    let execution = match (exec, &doc) {
        (Some(e), Some(d)) => Some(ExecutionOut {
            job_id: &e.job_id,
            thing_name: None,
            status: e.status,
            status_details: &details,
            queued_at: e.queued_at,
            started_at: e.started_at,
            last_updated_at: e.last_updated_at,
            version_number: e.version_number,
            execution_number: e.execution_number,
            job_document: JobDocumentOut::Raw(d),
        }),
        _ => None,
    };
    let now = b.clock.now();
    let stamp = match b.trust() {
        Some(t) => {
            let metadata = match &doc {
                Some(d) => metadata_digest(b, d).await?,
                None => None,
            };
            Some(t.timestamp(thing, now, metadata))
        }
        None => None,
    };
    let m = JobMessageOut {
        timestamp: now,
        client_token: token,
        execution,
        ferrota_timestamp: stamp.as_deref(),
    };
    Ok(encode_grow(|buf| m.encode(buf).map(str::len)))
}

/// Marks a job COMPLETED when none of its executions is pending any more. A job with a
/// rollout is left to the rollout engine ([`crate::rollout`]), which completes it after its
/// retry pass and once every target was notified: completed here, a job whose last execution
/// FAILED would lose the retry it is owed, and one waiting for its next minute, window or wave
/// would end early.
pub async fn maybe_complete(b: &Services, job_id: &str) -> StoreResult<()> {
    if b.store.rollout(job_id).await?.is_some() {
        return Ok(());
    }
    complete_if_done(b, job_id).await
}

/// Marks a job COMPLETED when none of its executions is pending any more (the rollout engine's
/// call, once it has decided nothing more is to come).
pub async fn complete_if_done(b: &Services, job_id: &str) -> StoreResult<()> {
    if !b.store.job_has_pending(job_id).await?
        && let Some(j) = b.store.job(job_id).await?
        && j.state == JobState::InProgress
    {
        b.store.set_job_state(job_id, JobState::Completed).await?;
    }
    Ok(())
}

/// Handles one Jobs request from `client` about `thing`.
pub async fn handle(
    b: &Services,
    client: &str,
    thing: &str,
    kind: JobsTopic<'_>,
    payload: &[u8],
) -> StoreResult<()> {
    expire_thing(b, thing).await?;
    if refuse_oversize(b, client, thing, kind, payload) {
        return Ok(());
    }
    if let JobsTopic::Update { job, .. } = kind {
        return update(b, client, thing, kind, job, payload).await;
    }
    let req = match JobsRequest::parse(payload) {
        Ok(r) => r,
        Err(e) => {
            let (code, msg) = request_error(&e);
            let token = token_of_refused(payload);
            reject(b, client, thing, kind, code, &msg, token.as_deref(), None);
            return Ok(());
        }
    };
    let token = req.client_token.and_then(unescape);
    let token = token.as_deref();
    let now = b.clock.now();
    match kind {
        JobsTopic::Describe { job, .. } => {
            let exec = match job {
                JobRef::Next => {
                    let execs = b.store.executions_of_thing(thing).await?;
                    next_pending(&execs).cloned()
                }
                JobRef::Id(id) => match b.store.execution(id, thing).await? {
                    Some(e) if req.execution_number.is_none_or(|n| n == e.execution_number) => {
                        Some(e)
                    }
                    _ => {
                        let msg = format!("job execution {id} not found for {thing}");
                        reject(
                            b,
                            client,
                            thing,
                            kind,
                            JobsErrorCode::ResourceNotFound,
                            &msg,
                            token,
                            None,
                        );
                        return Ok(());
                    }
                },
            };
            if let Some(body) = execution_message(b, thing, exec.as_ref(), token).await? {
                reply(b, client, thing, with_reply(kind, Reply::Accepted), body);
            }
        }
        JobsTopic::StartNext(_) => {
            let step = req.step_timeout_in_minutes;
            if step.is_some_and(|m| !valid_minutes(m)) {
                reject(
                    b,
                    client,
                    thing,
                    kind,
                    JobsErrorCode::InvalidRequest,
                    "stepTimeoutInMinutes must be 1-10080",
                    token,
                    None,
                );
                return Ok(());
            }
            let execs = b.store.executions_of_thing(thing).await?;
            let mut exec = next_pending(&execs).cloned();
            if let Some(e) = exec.as_mut().filter(|e| e.status == JobStatus::Queued) {
                let prev = e.version_number;
                e.status = JobStatus::InProgress;
                e.in_progress_deadline = job_deadline(b, &e.job_id, now).await?;
                e.step_deadline = step.map(|m| now.saturating_add(m * 60));
                if let Some(d) = req.status_details {
                    match details_of(d) {
                        Ok(d) => e.status_details = d,
                        Err(msg) => {
                            reject(
                                b,
                                client,
                                thing,
                                kind,
                                JobsErrorCode::InvalidRequest,
                                &msg,
                                token,
                                None,
                            );
                            return Ok(());
                        }
                    }
                }
                e.version_number += 1;
                e.started_at = Some(now);
                e.last_updated_at = now;
                if !b.store.update_execution(e, prev).await? {
                    reject(
                        b,
                        client,
                        thing,
                        kind,
                        JobsErrorCode::VersionMismatch,
                        "execution changed concurrently",
                        token,
                        None,
                    );
                    return Ok(());
                }
                if e.deadline().is_some() {
                    b.timers.notify_one();
                }
            }
            if let Some(body) = execution_message(b, thing, exec.as_ref(), token).await? {
                reply(b, client, thing, with_reply(kind, Reply::Accepted), body);
            }
        }
        JobsTopic::GetPending(_) => {
            let execs = b.store.executions_of_thing(thing).await?;
            let in_progress = summaries(&execs, JobStatus::InProgress);
            let queued = summaries(&execs, JobStatus::Queued);
            let out = PendingJobsOut {
                in_progress_jobs: &in_progress,
                queued_jobs: &queued,
                timestamp: now,
                client_token: token,
            };
            let Some(body) = encode_grow(|buf| out.encode(buf).map(str::len)) else {
                return Ok(());
            };
            reply(b, client, thing, with_reply(kind, Reply::Accepted), body);
        }
        _ => {}
    }
    Ok(())
}

/// Times an update without `expectedVersion` is tried again after losing a race to another
/// writer of the same execution, before it is refused with VersionMismatch.
pub const MAX_UPDATE_RACES: u32 = 8;

async fn update(
    b: &Services,
    client: &str,
    thing: &str,
    kind: JobsTopic<'_>,
    job: &str,
    payload: &[u8],
) -> StoreResult<()> {
    let req = match UpdateRequest::parse(payload) {
        Ok(r) => r,
        Err(e) => {
            let (code, msg) = request_error(&e);
            let token = token_of_refused(payload);
            reject(b, client, thing, kind, code, &msg, token.as_deref(), None);
            return Ok(());
        }
    };
    let step = req.step_timeout_in_minutes;
    let token = req.client_token.and_then(unescape);
    let token = token.as_deref();
    if token.is_some_and(|t| t.len() > CLIENT_TOKEN_MAX) {
        reject(
            b,
            client,
            thing,
            kind,
            JobsErrorCode::InvalidRequest,
            "clientToken longer than 64 bytes",
            None,
            None,
        );
        return Ok(());
    }
    // Without an expectedVersion, a write that lost a race (another worker changed the
    // execution between this read and the write: a redelivered request, a timer) is tried
    // again on what is there now, as AWS applies such an update whatever the version; only a
    // device that named a version gets VersionMismatch. The loop ends: each round either
    // writes, is refused, or saw the version move.
    let mut raced = 0u32;
    let (exec, before, now, new) = loop {
        let Some(exec) = b
            .store
            .execution(job, thing)
            .await?
            .filter(|e| req.execution_number.is_none_or(|n| n == e.execution_number))
        else {
            let msg = format!("job execution {job} not found for {thing}");
            reject(
                b,
                client,
                thing,
                kind,
                JobsErrorCode::ResourceNotFound,
                &msg,
                token,
                None,
            );
            return Ok(());
        };
        if let Some(v) = req.expected_version
            && v != exec.version_number
        {
            reject(
                b,
                client,
                thing,
                kind,
                JobsErrorCode::VersionMismatch,
                "expectedVersion does not match",
                token,
                Some(&exec),
            );
            return Ok(());
        }
        if exec.status.is_terminal() {
            reject(
                b,
                client,
                thing,
                kind,
                JobsErrorCode::InvalidStateTransition,
                "the execution is in a terminal state",
                token,
                Some(&exec),
            );
            return Ok(());
        }
        match req.status {
            JobStatus::InProgress
            | JobStatus::Succeeded
            | JobStatus::Failed
            | JobStatus::Rejected => {}
            JobStatus::Queued => {
                reject(
                    b,
                    client,
                    thing,
                    kind,
                    JobsErrorCode::InvalidStateTransition,
                    "cannot return to QUEUED",
                    token,
                    Some(&exec),
                );
                return Ok(());
            }
            _ => {
                reject(
                    b,
                    client,
                    thing,
                    kind,
                    JobsErrorCode::InvalidRequest,
                    "a device may set IN_PROGRESS, SUCCEEDED, FAILED or REJECTED",
                    token,
                    None,
                );
                return Ok(());
            }
        }
        if step.is_some_and(|m| !valid_minutes(m)) {
            reject(
                b,
                client,
                thing,
                kind,
                JobsErrorCode::InvalidRequest,
                "stepTimeoutInMinutes must be 1-10080 or -1",
                token,
                None,
            );
            return Ok(());
        }
        let before = pending(b, thing).await?;
        let now = b.clock.now();
        let mut new = exec.clone();
        new.status = req.status;
        if req.status == JobStatus::InProgress {
            if exec.status == JobStatus::Queued {
                new.in_progress_deadline = job_deadline(b, job, now).await?;
            }
            if let Some(m) = step {
                new.step_deadline = Some(now.saturating_add(m * 60));
            } else if req.clear_step_timeout {
                // `"stepTimeoutInMinutes": -1` (read by ferrota-proto).
                new.step_deadline = None;
            }
        } else {
            new.in_progress_deadline = None;
            new.step_deadline = None;
        }
        if let Some(d) = req.status_details {
            match details_of(d) {
                Ok(d) => new.status_details = d,
                Err(msg) => {
                    reject(
                        b,
                        client,
                        thing,
                        kind,
                        JobsErrorCode::InvalidRequest,
                        &msg,
                        token,
                        None,
                    );
                    return Ok(());
                }
            }
        }
        new.version_number += 1;
        new.last_updated_at = now;
        if new.started_at.is_none() && req.status == JobStatus::InProgress {
            new.started_at = Some(now);
        }
        if b.store.update_execution(&new, exec.version_number).await? {
            break (exec, before, now, new);
        }
        raced += 1;
        if req.expected_version.is_none() && raced < MAX_UPDATE_RACES {
            continue;
        }
        let cur = b.store.execution(job, thing).await?;
        reject(
            b,
            client,
            thing,
            kind,
            JobsErrorCode::VersionMismatch,
            "execution changed concurrently",
            token,
            cur.as_ref(),
        );
        return Ok(());
    };
    if new.deadline() != exec.deadline() {
        b.timers.notify_one();
    }
    // Committed: now answer.
    let stored = if req.include_job_document == Some(true) {
        b.store.job(job).await?.map(|j| j.document)
    } else {
        None
    };
    let doc = match &stored {
        Some(d) => Some(crate::device_doc::for_thing(b, thing, d).await?),
        None => None,
    };
    let details = pairs(&new.status_details);
    let out = UpdateAcceptedOut {
        execution_state: (req.include_job_execution_state == Some(true)).then_some(
            ExecutionStateOut {
                status: new.status,
                status_details: &details,
                version_number: new.version_number,
            },
        ),
        job_document: doc.as_deref(),
        timestamp: now,
        client_token: token,
    };
    if let Some(body) = encode_grow(|buf| out.encode(buf).map(str::len)) {
        reply(b, client, thing, with_reply(kind, Reply::Accepted), body);
    }
    if new.status.is_terminal() {
        crate::operators::execution_outcome(b, &new, false).await;
        b.execution_finished(job, thing);
        maybe_complete(b, job).await?;
    }
    notify_changes(b, thing, &before).await
}

/// When the job's in-progress timer of an execution starting at `now` expires.
async fn job_deadline(b: &Services, job_id: &str, now: u64) -> StoreResult<Option<u64>> {
    Ok(b.store
        .job(job_id)
        .await?
        .and_then(|j| j.in_progress_timeout_minutes)
        .map(|m| now.saturating_add(m * 60)))
}

// Timers (run by [`crate::timeouts`]): here, because a request about a thing expires its
// due executions first, and an expiry is a job change like any other.

/// Smallest timeout, minutes (AWS).
pub const TIMEOUT_MIN_MINUTES: u64 = 1;
/// Largest timeout, minutes (AWS: 7 days).
pub const TIMEOUT_MAX_MINUTES: u64 = 10080;

/// Whether AWS accepts this timeout (1–10080 minutes).
pub fn valid_minutes(m: u64) -> bool {
    (TIMEOUT_MIN_MINUTES..=TIMEOUT_MAX_MINUTES).contains(&m)
}

/// Moves one due execution to TIMED_OUT ([`crate::timeouts`]); `false` if it changed meanwhile (left as it is).
pub(crate) async fn expire(b: &Services, e: &Execution, now: u64) -> StoreResult<bool> {
    let before = pending(b, &e.thing).await?;
    let mut n = e.clone();
    n.status = JobStatus::TimedOut;
    n.version_number += 1;
    n.last_updated_at = now;
    n.in_progress_deadline = None;
    n.step_deadline = None;
    if !b.store.update_execution(&n, e.version_number).await? {
        return Ok(false);
    }
    tracing::info!(job = %e.job_id, thing = %e.thing, "job execution timed out");
    crate::operators::execution_outcome(b, &n, true).await;
    b.execution_finished(&e.job_id, &e.thing);
    maybe_complete(b, &e.job_id).await?;
    notify_changes(b, &e.thing, &before).await?;
    Ok(true)
}

/// Times out the due executions of one thing (before answering its requests).
pub async fn expire_thing(b: &Services, thing: &str) -> StoreResult<usize> {
    let now = b.clock.now();
    let mut n = 0;
    for e in b.store.executions_of_thing(thing).await? {
        if e.deadline().is_some_and(|d| d <= now) && expire(b, &e, now).await? {
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod wire {
    //! GetPendingJobExecutions' and `notify`'s bodies, now written by ferrota-proto, are the
    //! bytes this module wrote with serde_json before (issue 15): the old code, kept here as
    //! the reference.
    use super::*;

    fn old_summary(e: &Execution) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("jobId".into(), e.job_id.clone().into());
        m.insert("queuedAt".into(), e.queued_at.into());
        if let Some(s) = e.started_at {
            m.insert("startedAt".into(), s.into());
        }
        m.insert("lastUpdatedAt".into(), e.last_updated_at.into());
        m.insert("versionNumber".into(), e.version_number.into());
        m.insert("executionNumber".into(), e.execution_number.into());
        serde_json::Value::Object(m)
    }

    fn old_summaries(execs: &[Execution], s: JobStatus) -> Vec<serde_json::Value> {
        execs
            .iter()
            .filter(|e| e.status == s)
            .map(old_summary)
            .collect()
    }

    fn old_notify_body(execs: &[Execution], now: u64) -> Vec<u8> {
        let mut jobs = serde_json::Map::new();
        for s in [JobStatus::Queued, JobStatus::InProgress] {
            let l = old_summaries(execs, s);
            if !l.is_empty() {
                jobs.insert(s.as_str().into(), l.into());
            }
        }
        let body = serde_json::json!({"timestamp": now, "jobs": jobs});
        serde_json::to_vec(&body).unwrap()
    }

    fn old_pending(execs: &[Execution], now: u64, token: Option<&str>) -> Vec<u8> {
        let pick = |s: JobStatus| old_summaries(execs, s);
        let mut body = serde_json::Map::new();
        body.insert("inProgressJobs".into(), pick(JobStatus::InProgress).into());
        body.insert("queuedJobs".into(), pick(JobStatus::Queued).into());
        body.insert("timestamp".into(), now.into());
        if let Some(t) = token {
            body.insert("clientToken".into(), t.into());
        }
        serde_json::to_vec(&body).unwrap()
    }

    fn exec(job: &str, status: JobStatus, started: Option<u64>, n: u64) -> Execution {
        Execution {
            job_id: job.into(),
            thing: "t".into(),
            status,
            status_details: BTreeMap::new(),
            queued_at: n.wrapping_add(1_700_000_000),
            started_at: started,
            last_updated_at: n.wrapping_add(1_700_000_100),
            version_number: n,
            execution_number: n.wrapping_add(1),
            seq: n as i64,
            in_progress_deadline: None,
            step_deadline: None,
        }
    }

    /// Empty, one of each, several of each interleaved, terminal ones left out, large numbers.
    fn cases() -> Vec<Vec<Execution>> {
        use JobStatus::*;
        vec![
            vec![],
            vec![exec("AFR_OTA-a", Queued, None, 1)],
            vec![exec("AFR_OTA-a", InProgress, Some(1_700_000_050), 2)],
            vec![
                exec("j-1", Queued, None, 1),
                exec("j-2", InProgress, Some(5), 2),
                exec("j-3", Succeeded, Some(6), 3),
                exec("j_4", Queued, None, u64::MAX - 2),
                exec("j-5", InProgress, Some(u64::MAX), 0),
                exec("j-6", TimedOut, Some(7), 9),
            ],
        ]
    }

    #[test]
    fn notify_is_the_bytes_serde_json_wrote() {
        for execs in cases() {
            for now in [0, 1_765_000_000, u64::MAX] {
                assert_eq!(
                    String::from_utf8(notify_body(&execs, now)).unwrap(),
                    String::from_utf8(old_notify_body(&execs, now)).unwrap()
                );
            }
        }
    }

    #[test]
    fn pending_jobs_are_the_bytes_serde_json_wrote() {
        for execs in cases() {
            for token in [None, Some("1:dev"), Some("a\"b\\\n\u{1}é🙂")] {
                let in_progress = summaries(&execs, JobStatus::InProgress);
                let queued = summaries(&execs, JobStatus::Queued);
                let new = PendingJobsOut {
                    in_progress_jobs: &in_progress,
                    queued_jobs: &queued,
                    timestamp: 1_765_000_000,
                    client_token: token,
                }
                .to_vec()
                .unwrap();
                assert_eq!(
                    String::from_utf8(new).unwrap(),
                    String::from_utf8(old_pending(&execs, 1_765_000_000, token)).unwrap()
                );
            }
        }
    }
}
