//! The rest of the Jobs MQTT API (spec §1.4, §1.5): request bodies, the clientToken, and the
//! `/accepted` and `/rejected` responses that are not job executions.

use core::fmt::Write as _;

use crate::job::{
    EncodeError, Field, JobError, JobStatus, opt_bool, opt_obj, opt_str, opt_u64, write_details,
};
use crate::json::{self, JsonObject, JsonStr};
use crate::limits::{CLIENT_TOKEN_MAX, CLIENT_TOKEN_THING_CHARS};
use crate::write::{BufferTooSmall, SliceWriter};

/// The clientToken the OTA library means to send: `<counter>:<thing name cut to 53 chars>`
/// (at most 64 bytes). The current library's off-by-one (`:thing` for counters 0–9, §1.5) is not
/// reproduced; servers must treat tokens as opaque anyway.
pub fn client_token(counter: u32, thing: &str) -> heapless::String<CLIENT_TOKEN_MAX> {
    let mut s = heapless::String::new();
    let cut = thing
        .char_indices()
        .nth(CLIENT_TOKEN_THING_CHARS)
        .map_or(thing.len(), |(i, _)| i);
    // 10 digits + ':' + 53 ASCII characters = 64: always fits for AWS thing names; a longer
    // (non-ASCII) remainder is dropped by the fallible write.
    let _ = write!(s, "{counter}:");
    for c in thing[..cut].chars() {
        if s.push(c).is_err() {
            break;
        }
    }
    s
}

/// Encodes `{"clientToken":"<token>"}`, the exact `$next/get` body of the official device.
pub fn encode_client_token_request<'b>(
    token: &str,
    buf: &'b mut [u8],
) -> Result<&'b str, BufferTooSmall> {
    let mut w = SliceWriter::new(buf);
    w.raw("{\"clientToken\":")?;
    w.json_str(token)?;
    w.raw("}")?;
    Ok(w.finish())
}

/// Any Jobs request body except update (GetPending, StartNext, DescribeJobExecution), as the
/// server receives it. All fields are optional; an empty payload is read as `{}` (our choice:
/// AWS's handling of an empty body is not documented).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobsRequest<'a> {
    /// `clientToken` (≤ 64 bytes, else `InvalidRequest`).
    pub client_token: Option<JsonStr<'a>>,
    /// `statusDetails` (StartNext).
    pub status_details: Option<JsonObject<'a>>,
    /// `stepTimeoutInMinutes` (StartNext).
    pub step_timeout_in_minutes: Option<u64>,
    /// `executionNumber` (Describe).
    pub execution_number: Option<u64>,
    /// `includeJobDocument` (Describe; AWS default true).
    pub include_job_document: Option<bool>,
}

impl<'a> JobsRequest<'a> {
    /// Parses a request body.
    pub fn parse(payload: &'a [u8]) -> Result<Self, JobError> {
        if payload.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(JobsRequest::default());
        }
        let o = json::parse_object(payload)?.ok_or(JobError::WrongType(Field::Message))?;
        let client_token = opt_str(&o, "clientToken", Field::ClientToken)?;
        if client_token.is_some_and(|t| t.raw().len() > CLIENT_TOKEN_MAX) {
            return Err(JobError::TooLong(Field::ClientToken));
        }
        Ok(JobsRequest {
            client_token,
            status_details: opt_obj(&o, "statusDetails", Field::StatusDetails)?,
            step_timeout_in_minutes: opt_u64(
                &o,
                "stepTimeoutInMinutes",
                Field::StepTimeoutInMinutes,
            )?,
            execution_number: opt_u64(&o, "executionNumber", Field::ExecutionNumber)?,
            include_job_document: opt_bool(&o, "includeJobDocument", Field::IncludeJobDocument)?,
        })
    }
}

/// Error codes of the Jobs `…/rejected` responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum JobsErrorCode {
    InvalidTopic,
    InvalidJson,
    InvalidRequest,
    InvalidStateTransition,
    ResourceNotFound,
    VersionMismatch,
    InternalError,
    RequestThrottled,
    TerminalStateReached,
}

impl JobsErrorCode {
    const ALL: [JobsErrorCode; 9] = [
        Self::InvalidTopic,
        Self::InvalidJson,
        Self::InvalidRequest,
        Self::InvalidStateTransition,
        Self::ResourceNotFound,
        Self::VersionMismatch,
        Self::InternalError,
        Self::RequestThrottled,
        Self::TerminalStateReached,
    ];

    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidTopic => "InvalidTopic",
            Self::InvalidJson => "InvalidJson",
            Self::InvalidRequest => "InvalidRequest",
            Self::InvalidStateTransition => "InvalidStateTransition",
            Self::ResourceNotFound => "ResourceNotFound",
            Self::VersionMismatch => "VersionMismatch",
            Self::InternalError => "InternalError",
            Self::RequestThrottled => "RequestThrottled",
            Self::TerminalStateReached => "TerminalStateReached",
        }
    }

    /// Parses the wire string.
    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// `executionState` of responses: `{"status","statusDetails"?,"versionNumber"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutionStateOut<'a> {
    /// `status`
    pub status: JobStatus,
    /// `statusDetails` (omitted when empty)
    pub status_details: &'a [(&'a str, &'a str)],
    /// `versionNumber`
    pub version_number: u64,
}

impl ExecutionStateOut<'_> {
    fn write(&self, w: &mut SliceWriter<'_>) -> Result<(), BufferTooSmall> {
        w.raw("{\"status\":")?;
        w.json_str(self.status.as_str())?;
        if !self.status_details.is_empty() {
            w.raw(",\"statusDetails\":")?;
            write_details(w, self.status_details)?;
        }
        w.raw(",\"versionNumber\":")?;
        w.u64(self.version_number)?;
        w.raw("}")
    }
}

/// A Jobs `…/rejected` response to encode: `{"code","message","clientToken"?,"timestamp",
/// "executionState"?}` (key order of the AWS docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobsRejectionOut<'a> {
    /// `code`
    pub code: JobsErrorCode,
    /// `message`
    pub message: &'a str,
    /// `clientToken` (echo)
    pub client_token: Option<&'a str>,
    /// `timestamp`
    pub timestamp: u64,
    /// `executionState` (InvalidStateTransition, VersionMismatch)
    pub execution_state: Option<ExecutionStateOut<'a>>,
}

impl JobsRejectionOut<'_> {
    /// Encodes the response.
    pub fn encode<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, EncodeError> {
        let mut w = SliceWriter::new(buf);
        w.raw("{\"code\":")?;
        w.json_str(self.code.as_str())?;
        w.raw(",\"message\":")?;
        w.json_str(self.message)?;
        if let Some(c) = self.client_token {
            w.raw(",\"clientToken\":")?;
            w.json_str(c)?;
        }
        w.raw(",\"timestamp\":")?;
        w.u64(self.timestamp)?;
        if let Some(s) = &self.execution_state {
            w.raw(",\"executionState\":")?;
            s.write(&mut w)?;
        }
        w.raw("}")?;
        Ok(w.finish())
    }
}

/// A Jobs `…/rejected` response as the device receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobsRejection<'a> {
    /// `code` as sent.
    pub code: JsonStr<'a>,
    /// `message`
    pub message: Option<JsonStr<'a>>,
    /// `clientToken`
    pub client_token: Option<JsonStr<'a>>,
    /// `timestamp`
    pub timestamp: Option<u64>,
    /// `executionState`, unparsed.
    pub execution_state: Option<JsonObject<'a>>,
}

impl<'a> JobsRejection<'a> {
    /// Parses the response (`code` required).
    pub fn parse(payload: &'a [u8]) -> Result<Self, JobError> {
        let o = json::parse_object(payload)?.ok_or(JobError::WrongType(Field::Message))?;
        Ok(JobsRejection {
            code: opt_str(&o, "code", Field::Code)?.ok_or(JobError::Missing(Field::Code))?,
            message: opt_str(&o, "message", Field::ErrorMessage)?,
            client_token: opt_str(&o, "clientToken", Field::ClientToken)?,
            timestamp: o.get("timestamp").and_then(|v| v.as_u64()),
            execution_state: opt_obj(&o, "executionState", Field::Execution)?,
        })
    }

    /// The code, when it is one of AWS's.
    pub fn error_code(&self) -> Option<JobsErrorCode> {
        self.code.as_plain().and_then(JobsErrorCode::from_wire)
    }
}

/// An `…/update/accepted` response to encode: `{"executionState"?,"jobDocument"?,"timestamp",
/// "clientToken"?}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateAcceptedOut<'a> {
    /// `executionState` (when the request asked `includeJobExecutionState`).
    pub execution_state: Option<ExecutionStateOut<'a>>,
    /// `jobDocument` as JSON object text (when the request asked `includeJobDocument`).
    pub job_document: Option<&'a str>,
    /// `timestamp`
    pub timestamp: u64,
    /// `clientToken` (echo)
    pub client_token: Option<&'a str>,
}

impl UpdateAcceptedOut<'_> {
    /// Encodes the response.
    pub fn encode<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, EncodeError> {
        let mut w = SliceWriter::new(buf);
        w.raw("{")?;
        if let Some(s) = &self.execution_state {
            w.raw("\"executionState\":")?;
            s.write(&mut w)?;
            w.raw(",")?;
        }
        if let Some(d) = self.job_document {
            w.raw("\"jobDocument\":")?;
            w.raw(d)?;
            w.raw(",")?;
        }
        w.raw("\"timestamp\":")?;
        w.u64(self.timestamp)?;
        if let Some(c) = self.client_token {
            w.raw(",\"clientToken\":")?;
            w.json_str(c)?;
        }
        w.raw("}")?;
        Ok(w.finish())
    }
}

/// AWS's `JobExecutionSummary`, as the server writes it in `…/jobs/notify` and in
/// GetPendingJobExecutions' answer: `{"executionNumber","jobId","lastUpdatedAt","queuedAt",
/// "startedAt"?,"versionNumber"}` (keys in alphabetical order: byte for byte what the server
/// wrote with serde_json's sorted map before this encoder existed). Times are epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobExecutionSummaryOut<'a> {
    /// `jobId`
    pub job_id: &'a str,
    /// `queuedAt`
    pub queued_at: u64,
    /// `startedAt` (absent while QUEUED)
    pub started_at: Option<u64>,
    /// `lastUpdatedAt`
    pub last_updated_at: u64,
    /// `versionNumber`
    pub version_number: u64,
    /// `executionNumber`
    pub execution_number: u64,
}

impl JobExecutionSummaryOut<'_> {
    fn write(&self, w: &mut SliceWriter<'_>) -> Result<(), BufferTooSmall> {
        w.raw("{\"executionNumber\":")?;
        w.u64(self.execution_number)?;
        w.raw(",\"jobId\":")?;
        w.json_str(self.job_id)?;
        w.raw(",\"lastUpdatedAt\":")?;
        w.u64(self.last_updated_at)?;
        w.raw(",\"queuedAt\":")?;
        w.u64(self.queued_at)?;
        if let Some(s) = self.started_at {
            w.raw(",\"startedAt\":")?;
            w.u64(s)?;
        }
        w.raw(",\"versionNumber\":")?;
        w.u64(self.version_number)?;
        w.raw("}")
    }
}

fn write_summaries(
    w: &mut SliceWriter<'_>,
    list: &[JobExecutionSummaryOut<'_>],
) -> Result<(), BufferTooSmall> {
    w.raw("[")?;
    for (i, s) in list.iter().enumerate() {
        if i > 0 {
            w.raw(",")?;
        }
        s.write(w)?;
    }
    w.raw("]")
}

/// The `…/jobs/notify` message (JobExecutionsChanged, spec §1.4):
/// `{"jobs":{"IN_PROGRESS":[…],"QUEUED":[…]},"timestamp"}`, an empty list left out (so a thing
/// with nothing pending gets `"jobs":{}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobExecutionsChangedOut<'a> {
    /// Executions IN_PROGRESS, oldest first.
    pub in_progress: &'a [JobExecutionSummaryOut<'a>],
    /// Executions QUEUED, oldest first.
    pub queued: &'a [JobExecutionSummaryOut<'a>],
    /// `timestamp`, epoch seconds.
    pub timestamp: u64,
}

impl JobExecutionsChangedOut<'_> {
    /// Encodes the message.
    pub fn encode<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, EncodeError> {
        let mut w = SliceWriter::new(buf);
        w.raw("{\"jobs\":{")?;
        if !self.in_progress.is_empty() {
            w.raw("\"IN_PROGRESS\":")?;
            write_summaries(&mut w, self.in_progress)?;
        }
        if !self.queued.is_empty() {
            if !self.in_progress.is_empty() {
                w.raw(",")?;
            }
            w.raw("\"QUEUED\":")?;
            write_summaries(&mut w, self.queued)?;
        }
        w.raw("},\"timestamp\":")?;
        w.u64(self.timestamp)?;
        w.raw("}")?;
        Ok(w.finish())
    }

    /// The message as a `Vec` (`alloc`).
    #[cfg(feature = "alloc")]
    pub fn to_vec(&self) -> Result<alloc::vec::Vec<u8>, EncodeError> {
        crate::vec::encode(|b| self.encode(b).map(str::len))
    }
}

/// GetPendingJobExecutions' `…/jobs/get/accepted` (spec §1.4):
/// `{"clientToken"?,"inProgressJobs":[…],"queuedJobs":[…],"timestamp"}` (both lists always
/// present, as AWS sends them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingJobsOut<'a> {
    /// Executions IN_PROGRESS, oldest first.
    pub in_progress_jobs: &'a [JobExecutionSummaryOut<'a>],
    /// Executions QUEUED, oldest first.
    pub queued_jobs: &'a [JobExecutionSummaryOut<'a>],
    /// `timestamp`, epoch seconds.
    pub timestamp: u64,
    /// `clientToken` (echo).
    pub client_token: Option<&'a str>,
}

impl PendingJobsOut<'_> {
    /// Encodes the answer.
    pub fn encode<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, EncodeError> {
        let mut w = SliceWriter::new(buf);
        w.raw("{")?;
        if let Some(c) = self.client_token {
            w.raw("\"clientToken\":")?;
            w.json_str(c)?;
            w.raw(",")?;
        }
        w.raw("\"inProgressJobs\":")?;
        write_summaries(&mut w, self.in_progress_jobs)?;
        w.raw(",\"queuedJobs\":")?;
        write_summaries(&mut w, self.queued_jobs)?;
        w.raw(",\"timestamp\":")?;
        w.u64(self.timestamp)?;
        w.raw("}")?;
        Ok(w.finish())
    }

    /// The answer as a `Vec` (`alloc`).
    #[cfg(feature = "alloc")]
    pub fn to_vec(&self) -> Result<alloc::vec::Vec<u8>, EncodeError> {
        crate::vec::encode(|b| self.encode(b).map(str::len))
    }
}
