//! Job execution messages and the `afr_ota` job document (spec §2), both directions.
//!
//! Device side: [`JobMessage::parse`] reads what arrives on `$next/get/accepted`, `notify-next`
//! or `start-next/accepted`; [`JobExecution::document`] turns its `jobDocument` into a typed
//! [`JobDocument`] — an [`OtaJob`] when it has an `afr_ota` object, else a custom job. The
//! split lets the agent report a malformed `afr_ota` document against the job id it already has.
//!
//! Server side: [`JobMessageOut::encode`] writes those messages exactly as AWS does (key order
//! of the captured documents in §2.3, compact).
//!
//! Required (spec §2.2): `execution.jobId`, `execution.jobDocument`; in `afr_ota`: `protocols`,
//! `files` (≥ 1 entry) and per file `filesize` (> 0) and `fileid`. Everything else is optional;
//! unknown keys are ignored at every level.

use core::fmt;

use crate::json::{self, JsonArray, JsonError, JsonObject, JsonStr, Value};
use crate::limits::{
    FILE_ID_MAX, NameLimits, OTA_JOB_ID_MAX, OTA_STREAM_NAME_MAX, PROTOCOLS_TEXT_MAX,
    SIGNATURE_TEXT_MAX,
};
use crate::topic::{NameKind, validate_name};
use crate::write::{BufferTooSmall, SliceWriter};

/// The key paths of the job messages, for errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Field {
    Message,
    ClientToken,
    Execution,
    JobId,
    ThingName,
    Status,
    StatusDetails,
    UpdatedBy,
    QueuedAt,
    StartedAt,
    LastUpdatedAt,
    VersionNumber,
    ExecutionNumber,
    JobDocument,
    AfrOta,
    Protocols,
    StreamName,
    Files,
    FilePath,
    FileSize,
    FileId,
    CertFile,
    UpdateDataUrl,
    AuthScheme,
    Signature,
    Attr,
    FileType,
    ExpectedVersion,
    IncludeJobExecutionState,
    IncludeJobDocument,
    StepTimeoutInMinutes,
    Code,
    ErrorMessage,
    Timestamp,
}

/// Why a Jobs message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobError {
    /// Not valid JSON.
    Json(JsonError),
    /// A required key is missing.
    Missing(Field),
    /// A key has a value of the wrong JSON type.
    WrongType(Field),
    /// A value is longer than its limit (§2.4).
    TooLong(Field),
    /// A value is out of range or malformed (zero file size, bad job id characters, …).
    Invalid(Field),
}

impl From<JsonError> for JobError {
    fn from(e: JsonError) -> Self {
        JobError::Json(e)
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Json(e) => e.fmt(f),
            JobError::Missing(k) => write!(f, "missing {k:?}"),
            JobError::WrongType(k) => write!(f, "wrong JSON type for {k:?}"),
            JobError::TooLong(k) => write!(f, "{k:?} too long"),
            JobError::Invalid(k) => write!(f, "invalid {k:?}"),
        }
    }
}

impl core::error::Error for JobError {}

/// A job execution status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum JobStatus {
    Queued,
    InProgress,
    Failed,
    Succeeded,
    Canceled,
    TimedOut,
    Rejected,
    Removed,
}

impl JobStatus {
    const ALL: [JobStatus; 8] = [
        JobStatus::Queued,
        JobStatus::InProgress,
        JobStatus::Failed,
        JobStatus::Succeeded,
        JobStatus::Canceled,
        JobStatus::TimedOut,
        JobStatus::Rejected,
        JobStatus::Removed,
    ];

    /// The wire string (`QUEUED`, `IN_PROGRESS`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "QUEUED",
            JobStatus::InProgress => "IN_PROGRESS",
            JobStatus::Failed => "FAILED",
            JobStatus::Succeeded => "SUCCEEDED",
            JobStatus::Canceled => "CANCELED",
            JobStatus::TimedOut => "TIMED_OUT",
            JobStatus::Rejected => "REJECTED",
            JobStatus::Removed => "REMOVED",
        }
    }

    /// Parses the wire string.
    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether no further update is allowed (AWS: `TerminalStateReached`).
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::InProgress)
    }
}

pub(crate) fn opt_u64(
    obj: &JsonObject<'_>,
    key: &str,
    field: Field,
) -> Result<Option<u64>, JobError> {
    match obj.get(key) {
        None => Ok(None),
        Some(v @ Value::Number(_)) => v.as_u64().map(Some).ok_or(JobError::Invalid(field)),
        Some(_) => Err(JobError::WrongType(field)),
    }
}

pub(crate) fn opt_str<'a>(
    obj: &JsonObject<'a>,
    key: &str,
    field: Field,
) -> Result<Option<JsonStr<'a>>, JobError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JobError::WrongType(field)),
    }
}

pub(crate) fn opt_obj<'a>(
    obj: &JsonObject<'a>,
    key: &str,
    field: Field,
) -> Result<Option<JsonObject<'a>>, JobError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(JobError::WrongType(field)),
    }
}

pub(crate) fn opt_bool(
    obj: &JsonObject<'_>,
    key: &str,
    field: Field,
) -> Result<Option<bool>, JobError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(_) => Err(JobError::WrongType(field)),
    }
}

/// A name used in a topic: plain (no escapes), AWS characters, within `max`.
fn topic_name<'a>(
    s: JsonStr<'a>,
    kind: NameKind,
    max: usize,
    field: Field,
) -> Result<&'a str, JobError> {
    let plain = s.as_plain().ok_or(JobError::Invalid(field))?;
    let limits = NameLimits {
        thing: max,
        job_id: max,
        stream: max,
    };
    validate_name(plain, kind, &limits).map_err(|e| match e {
        crate::topic::TopicError::NameTooLong(_) => JobError::TooLong(field),
        _ => JobError::Invalid(field),
    })?;
    Ok(plain)
}

/// A number or a string of digits, as the official parser's `strtoul` takes them. Strings in
/// `prefixed` mode follow C's base-0 rules (`0x…` hex, leading `0` octal, else decimal);
/// otherwise they must be decimal. No sign, no whitespace; the whole value must be consumed.
fn uint_or_string(v: Value<'_>, prefixed: bool, field: Field) -> Result<u64, JobError> {
    match v {
        Value::Number(n) => json::parse_decimal(n).ok_or(JobError::Invalid(field)),
        Value::String(s) => {
            let s = s.as_plain().ok_or(JobError::Invalid(field))?;
            let (digits, radix) = if !prefixed {
                (s, 10)
            } else if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
                (h, 16)
            } else if s.len() > 1 && s.starts_with('0') {
                (&s[1..], 8)
            } else {
                (s, 10)
            };
            if digits.is_empty() || !digits.bytes().all(|b| (b as char).is_digit(radix)) {
                return Err(JobError::Invalid(field));
            }
            u64::from_str_radix(digits, radix).map_err(|_| JobError::Invalid(field))
        }
        _ => Err(JobError::WrongType(field)),
    }
}

/// A message carrying a job execution: `$next/get/accepted`, `notify-next`,
/// `start-next/accepted`, `<jobId>/get/accepted` (spec §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobMessage<'a> {
    /// `clientToken`, when it is a string (the device does not use it).
    pub client_token: Option<JsonStr<'a>>,
    /// `timestamp`, when it is an unsigned integer (never needed; tolerated in any form).
    pub timestamp: Option<u64>,
    /// `execution`; `None` means "no job pending" (an empty job document, ignored by the
    /// official device without a status).
    pub execution: Option<JobExecution<'a>>,
    /// `ferrotaTimestamp` (#20, design §3.2): the Ferrota server's signed timestamp for this
    /// thing, base64url without padding, on every Jobs reply, with or without a job. AWS never
    /// sends it. It is a top-level key so an AWS device ignores it like any unknown key, and it
    /// is read here unverified and undecoded (`ferrota_manifest::verify_timestamp` judges it).
    ///
    /// Tolerated in any form, like `timestamp`: only a string without JSON escapes is kept
    /// (base64url needs none); any other value reads as absent, so a damaged timestamp never
    /// makes the message, and the job in it, unreadable. A device that requires a timestamp
    /// refuses the job for its absence (`0x000000e3: 0x00000006`).
    pub ferrota_timestamp: Option<&'a str>,
}

impl<'a> JobMessage<'a> {
    /// Parses the message. The job document inside is parsed by [`JobExecution::document`].
    pub fn parse(payload: &'a [u8]) -> Result<Self, JobError> {
        let top = json::parse_object(payload)?.ok_or(JobError::WrongType(Field::Message))?;
        let client_token = top.get("clientToken").and_then(|v| v.as_str());
        let timestamp = top.get("timestamp").and_then(|v| v.as_u64());
        let execution = match opt_obj(&top, "execution", Field::Execution)? {
            None => None,
            Some(e) => Some(JobExecution::from_object(e)?),
        };
        let ferrota_timestamp = top
            .get(FERROTA_TIMESTAMP_KEY)
            .and_then(|v| v.as_str())
            .and_then(|s| s.as_plain());
        Ok(JobMessage {
            client_token,
            timestamp,
            execution,
            ferrota_timestamp,
        })
    }
}

/// `execution` (AWS `JobExecution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobExecution<'a> {
    /// `jobId`: AWS characters, at most [`OTA_JOB_ID_MAX`] (the device puts it in a topic).
    pub job_id: &'a str,
    /// `thingName`, when present.
    pub thing_name: Option<JsonStr<'a>>,
    /// `status`; `None` when absent or not one of AWS's statuses (not needed by the device).
    pub status: Option<JobStatus>,
    /// `statusDetails` (empty when absent).
    pub status_details: StatusDetails<'a>,
    /// `queuedAt`
    pub queued_at: Option<u64>,
    /// `startedAt`
    pub started_at: Option<u64>,
    /// `lastUpdatedAt`
    pub last_updated_at: Option<u64>,
    /// `versionNumber`
    pub version_number: Option<u64>,
    /// `executionNumber`
    pub execution_number: Option<u64>,
    /// `jobDocument`, unparsed (see [`JobExecution::document`]).
    pub job_document: JsonObject<'a>,
}

impl<'a> JobExecution<'a> {
    fn from_object(e: JsonObject<'a>) -> Result<Self, JobError> {
        let job_id = opt_str(&e, "jobId", Field::JobId)?.ok_or(JobError::Missing(Field::JobId))?;
        let job_id = topic_name(job_id, NameKind::JobId, OTA_JOB_ID_MAX, Field::JobId)?;
        let status = match opt_str(&e, "status", Field::Status)? {
            Some(s) => s.as_plain().and_then(JobStatus::from_wire),
            None => None,
        };
        let status_details = match opt_obj(&e, "statusDetails", Field::StatusDetails)? {
            Some(o) => StatusDetails::from_object(o)?,
            None => StatusDetails::default(),
        };
        let job_document = opt_obj(&e, "jobDocument", Field::JobDocument)?
            .ok_or(JobError::Missing(Field::JobDocument))?;
        Ok(JobExecution {
            job_id,
            thing_name: opt_str(&e, "thingName", Field::ThingName)?,
            status,
            status_details,
            queued_at: opt_u64(&e, "queuedAt", Field::QueuedAt)?,
            started_at: opt_u64(&e, "startedAt", Field::StartedAt)?,
            last_updated_at: opt_u64(&e, "lastUpdatedAt", Field::LastUpdatedAt)?,
            version_number: opt_u64(&e, "versionNumber", Field::VersionNumber)?,
            execution_number: opt_u64(&e, "executionNumber", Field::ExecutionNumber)?,
            job_document,
        })
    }

    /// The typed job document.
    pub fn document(&self) -> Result<JobDocument<'a>, JobError> {
        match opt_obj(&self.job_document, "afr_ota", Field::AfrOta)? {
            Some(ota) => OtaJob::from_object(ota).map(JobDocument::Ota),
            None => Ok(JobDocument::Custom(self.job_document)),
        }
    }
}

/// `statusDetails`: a string → string map. The keys the OTA protocol uses have accessors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusDetails<'a> {
    obj: Option<JsonObject<'a>>,
    updated_by: Option<u32>,
}

impl<'a> StatusDetails<'a> {
    fn from_object(o: JsonObject<'a>) -> Result<Self, JobError> {
        let updated_by = match o.get("updatedBy") {
            None => None,
            Some(v) => {
                let n = uint_or_string(v, true, Field::UpdatedBy)?;
                Some(u32::try_from(n).map_err(|_| JobError::Invalid(Field::UpdatedBy))?)
            }
        };
        Ok(StatusDetails {
            obj: Some(o),
            updated_by,
        })
    }

    /// Whether `self_test` is present: the job is in self-test (its value is not examined,
    /// as in the official library).
    pub fn in_self_test(&self) -> bool {
        self.get_value("self_test").is_some()
    }

    /// The `self_test` value when it is a string (`ready`, `active`).
    pub fn self_test(&self) -> Option<JsonStr<'a>> {
        self.get("self_test")
    }

    /// `updatedBy` as the official parser reads it (number, or `strtoul(…, 0)` of the string:
    /// `"0x00090002"`): the version that did the download. `None` when absent.
    pub fn updated_by(&self) -> Option<u32> {
        self.updated_by
    }

    /// A string value.
    pub fn get(&self, key: &str) -> Option<JsonStr<'a>> {
        self.get_value(key).and_then(|v| v.as_str())
    }

    /// Any value.
    pub fn get_value(&self, key: &str) -> Option<Value<'a>> {
        self.obj.and_then(|o| o.get(key))
    }

    /// All members.
    pub fn iter(&self) -> impl Iterator<Item = (JsonStr<'a>, Value<'a>)> + 'a {
        self.obj.into_iter().flat_map(|o| o.iter())
    }

    /// Whether the map is absent or empty.
    pub fn is_empty(&self) -> bool {
        self.obj.is_none_or(|o| o.is_empty())
    }
}

/// What a job document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobDocument<'a> {
    /// An `afr_ota` OTA job.
    Ota(OtaJob<'a>),
    /// Any other job document (no `afr_ota` key): offered to the application.
    Custom(JsonObject<'a>),
}

/// Data protocols listed in `afr_ota.protocols`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Protocols {
    /// `"MQTT"` is listed.
    pub mqtt: bool,
    /// `"HTTP"` is listed.
    pub http: bool,
}

impl Protocols {
    /// MQTT only (`["MQTT"]`).
    pub const MQTT: Protocols = Protocols {
        mqtt: true,
        http: false,
    };
    /// HTTP only (`["HTTP"]`).
    pub const HTTP: Protocols = Protocols {
        mqtt: false,
        http: true,
    };
}

/// The `afr_ota` document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtaJob<'a> {
    /// `protocols`
    pub protocols: Protocols,
    /// `streamname`: optional (required for MQTT delivery), AWS characters, ≤ 44.
    pub stream_name: Option<&'a str>,
    /// The first entry of `files` (the only one the official device uses).
    pub file: FileEntry<'a>,
    files: JsonArray<'a>,
}

impl<'a> OtaJob<'a> {
    fn from_object(o: JsonObject<'a>) -> Result<Self, JobError> {
        let protocols = match o.get("protocols") {
            None => return Err(JobError::Missing(Field::Protocols)),
            Some(Value::Array(a)) => {
                if a.raw().len() > PROTOCOLS_TEXT_MAX {
                    return Err(JobError::TooLong(Field::Protocols));
                }
                let mut p = Protocols::default();
                for v in a.iter() {
                    let s = v.as_str().ok_or(JobError::WrongType(Field::Protocols))?;
                    p.mqtt |= s.eq_str("MQTT");
                    p.http |= s.eq_str("HTTP");
                }
                p
            }
            Some(_) => return Err(JobError::WrongType(Field::Protocols)),
        };
        let stream_name = match opt_str(&o, "streamname", Field::StreamName)? {
            Some(s) => Some(topic_name(
                s,
                NameKind::Stream,
                OTA_STREAM_NAME_MAX,
                Field::StreamName,
            )?),
            None => None,
        };
        let files = match o.get("files") {
            None => return Err(JobError::Missing(Field::Files)),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(JobError::WrongType(Field::Files)),
        };
        let mut first = None;
        for v in files.iter() {
            let f = FileEntry::from_value(v)?;
            first.get_or_insert(f);
        }
        let file = first.ok_or(JobError::Missing(Field::Files))?;
        Ok(OtaJob {
            protocols,
            stream_name,
            file,
            files,
        })
    }

    /// Every entry of `files` (each was validated when the document was parsed).
    pub fn files(&self) -> impl Iterator<Item = FileEntry<'a>> + 'a {
        self.files
            .iter()
            .filter_map(|v| FileEntry::from_value(v).ok())
    }

    /// Number of entries of `files`.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }
}

/// A file signature: the platform-chosen key (`sig-sha256-ecdsa`, `sig-sha1-rsa`, …) and its
/// base64 value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signature<'a> {
    /// The key, e.g. `sig-sha256-ecdsa`.
    pub key: JsonStr<'a>,
    /// The base64 text (≤ [`SIGNATURE_TEXT_MAX`] characters).
    pub value: JsonStr<'a>,
}

/// One entry of `afr_ota.files`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileEntry<'a> {
    /// `filepath`
    pub file_path: Option<JsonStr<'a>>,
    /// `filesize`: number or digit string, > 0.
    pub file_size: u32,
    /// `fileid`: number or digit string, 0–255 (the stream's `"f"`).
    pub file_id: u8,
    /// `certfile`
    pub cert_file: Option<JsonStr<'a>>,
    /// `update_data_url` (HTTP delivery)
    pub update_data_url: Option<JsonStr<'a>>,
    /// `auth_scheme` (HTTP delivery)
    pub auth_scheme: Option<JsonStr<'a>>,
    /// The first `sig-…` key and its value.
    pub signature: Option<Signature<'a>>,
    /// `attr`
    pub attr: Option<u32>,
    /// `fileType` (0–255)
    pub file_type: Option<u8>,
    obj: JsonObject<'a>,
}

impl<'a> FileEntry<'a> {
    fn from_value(v: Value<'a>) -> Result<Self, JobError> {
        let o = v.as_object().ok_or(JobError::WrongType(Field::Files))?;
        let file_size = uint_or_string(
            o.get("filesize")
                .ok_or(JobError::Missing(Field::FileSize))?,
            false,
            Field::FileSize,
        )?;
        let file_size = u32::try_from(file_size).map_err(|_| JobError::Invalid(Field::FileSize))?;
        if file_size == 0 {
            return Err(JobError::Invalid(Field::FileSize));
        }
        let file_id = uint_or_string(
            o.get("fileid").ok_or(JobError::Missing(Field::FileId))?,
            false,
            Field::FileId,
        )?;
        if file_id > FILE_ID_MAX as u64 {
            return Err(JobError::Invalid(Field::FileId));
        }
        let mut signature = None;
        for (k, v) in o.iter() {
            if k.raw().starts_with("sig-") {
                let value = v.as_str().ok_or(JobError::WrongType(Field::Signature))?;
                if value.raw().len() > SIGNATURE_TEXT_MAX {
                    return Err(JobError::TooLong(Field::Signature));
                }
                signature.get_or_insert(Signature { key: k, value });
            }
        }
        let attr = match opt_u64(&o, "attr", Field::Attr)? {
            Some(a) => Some(u32::try_from(a).map_err(|_| JobError::Invalid(Field::Attr))?),
            None => None,
        };
        let file_type = match opt_u64(&o, "fileType", Field::FileType)? {
            Some(t) => Some(u8::try_from(t).map_err(|_| JobError::Invalid(Field::FileType))?),
            None => None,
        };
        Ok(FileEntry {
            file_path: opt_str(&o, "filepath", Field::FilePath)?,
            file_size,
            file_id: file_id as u8,
            cert_file: opt_str(&o, "certfile", Field::CertFile)?,
            update_data_url: opt_str(&o, "update_data_url", Field::UpdateDataUrl)?,
            auth_scheme: opt_str(&o, "auth_scheme", Field::AuthScheme)?,
            signature,
            attr,
            file_type,
            obj: o,
        })
    }

    /// The value of a specific signature key (e.g. the one the platform expects).
    pub fn signature_for(&self, key: &str) -> Option<JsonStr<'a>> {
        self.obj.get(key).and_then(|v| v.as_str())
    }

    /// The raw object, for keys this crate does not know.
    pub fn object(&self) -> JsonObject<'a> {
        self.obj
    }
}

// ---------------------------------------------------------------------------------------------
// Encoders (server side, and the device's `$next/get` request).

/// A file entry to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileOut<'a> {
    /// `filepath`
    pub file_path: Option<&'a str>,
    /// `filesize`
    pub file_size: u32,
    /// `fileid`
    pub file_id: u8,
    /// `certfile`
    pub cert_file: Option<&'a str>,
    /// `fileType`
    pub file_type: Option<u8>,
    /// `attr`
    pub attr: Option<u32>,
    /// `update_data_url`
    pub update_data_url: Option<&'a str>,
    /// `auth_scheme`
    pub auth_scheme: Option<&'a str>,
    /// `(key, base64)`, e.g. `("sig-sha256-ecdsa", "MEUC…")`.
    pub signature: Option<(&'a str, &'a str)>,
    /// The keys of an alternative encoding of `files[0]` (issue #19): `None` for an ordinary
    /// file. Written after every key above, so an entry is `files[0]`'s keys plus these.
    pub packed: Option<PackedOut<'a>>,
}

/// What makes a `files` entry an alternative encoding of `files[0]` (a packed "FRPK" file,
/// design of issue #19): the device that knows the format fetches it instead of the full bank
/// image and rebuilds the same image (its `sig-…` is `files[0]`'s: it signs the rebuilt image).
/// A device that does not know `encoding` uses `files[0]` and never looks at the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PackedOut<'a> {
    /// `encoding`, e.g. `"frpk1"`.
    pub encoding: &'a str,
    /// `blockSize`: the wire block size the file was packed for (the device requests blocks
    /// of exactly this size).
    pub block_size: u32,
    /// For a delta: the image it is rebuilt from (`None` for a packed full image).
    pub base: Option<PackedBaseOut<'a>>,
}

/// The base image of a delta entry: the device uses the entry only when the SHA-256 of its
/// active bank's first `baseSize` bytes is `baseSha256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PackedBaseOut<'a> {
    /// `baseSha256`: 64 lowercase hex digits.
    pub sha256: &'a str,
    /// `baseSize`
    pub size: u32,
    /// `baseVersion` (`major.minor.build`): what the server matches against the version a
    /// device reports, to send each device only the deltas it may use.
    pub version: &'a str,
    /// `baseHardwareId`: the board of the base image (omitted when it names none).
    pub hardware_id: Option<&'a str>,
}

/// An `afr_ota` document to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtaJobOut<'a> {
    /// `protocols`
    pub protocols: Protocols,
    /// `streamname`
    pub stream_name: Option<&'a str>,
    /// `files` (the official device uses only the first).
    pub files: &'a [FileOut<'a>],
}

/// The `jobDocument` to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobDocumentOut<'a> {
    /// `{"afr_ota":{…}}`
    Ota(OtaJobOut<'a>),
    /// Any JSON object text, written as given (the caller guarantees it is valid JSON).
    Raw(&'a str),
}

/// An execution to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutionOut<'a> {
    /// `jobId`
    pub job_id: &'a str,
    /// `thingName` (AWS includes it in some responses; the captured documents do not).
    pub thing_name: Option<&'a str>,
    /// `status`
    pub status: JobStatus,
    /// `statusDetails` (omitted when empty).
    pub status_details: &'a [(&'a str, &'a str)],
    /// `queuedAt`
    pub queued_at: u64,
    /// `startedAt`
    pub started_at: Option<u64>,
    /// `lastUpdatedAt`
    pub last_updated_at: u64,
    /// `versionNumber`
    pub version_number: u64,
    /// `executionNumber`
    pub execution_number: u64,
    /// `jobDocument`
    pub job_document: JobDocumentOut<'a>,
}

/// The top-level key of the Ferrota server's signed timestamp in a Jobs reply (#20, design §3.2).
pub const FERROTA_TIMESTAMP_KEY: &str = "ferrotaTimestamp";

/// A message carrying an execution, to encode:
/// `{"timestamp","clientToken"?,"execution"?,"ferrotaTimestamp"?}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobMessageOut<'a> {
    /// `timestamp` (epoch seconds).
    pub timestamp: u64,
    /// `clientToken` (echo of the request; `None` on notify-next).
    pub client_token: Option<&'a str>,
    /// `execution` (`None`: nothing pending).
    pub execution: Option<ExecutionOut<'a>>,
    /// `ferrotaTimestamp`: the signed timestamp (base64url, no padding) the Ferrota server adds
    /// to every Jobs reply when trust is configured (#20, design §3.2). Written last, so a
    /// message without it (`None`) is byte for byte what AWS writes.
    pub ferrota_timestamp: Option<&'a str>,
}

/// Why an encoder refused its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is too small.
    BufferTooSmall,
    /// A value breaks a device limit (§2.4) or AWS's rules.
    Invalid(Field),
}

impl From<BufferTooSmall> for EncodeError {
    fn from(_: BufferTooSmall) -> Self {
        EncodeError::BufferTooSmall
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BufferTooSmall => f.write_str("output buffer too small"),
            EncodeError::Invalid(k) => write!(f, "invalid value for {k:?}"),
        }
    }
}

impl core::error::Error for EncodeError {}

pub(crate) fn write_details(
    w: &mut SliceWriter<'_>,
    details: &[(&str, &str)],
) -> Result<(), BufferTooSmall> {
    w.raw("{")?;
    for (i, (k, v)) in details.iter().enumerate() {
        if i > 0 {
            w.raw(",")?;
        }
        w.key(k)?;
        w.json_str(v)?;
    }
    w.raw("}")
}

impl OtaJobOut<'_> {
    /// Checks the document against what the official device can take (§2.4): stream name
    /// ≤ 44 AWS characters, protocols text ≤ 19, at least one file, sizes > 0, signature text
    /// ≤ 512.
    pub fn validate(&self) -> Result<(), EncodeError> {
        if let Some(s) = self.stream_name {
            let l = NameLimits {
                stream: OTA_STREAM_NAME_MAX,
                ..NameLimits::OTA_DEVICE
            };
            validate_name(s, NameKind::Stream, &l)
                .map_err(|_| EncodeError::Invalid(Field::StreamName))?;
        }
        if self.files.is_empty() {
            return Err(EncodeError::Invalid(Field::Files));
        }
        for f in self.files {
            if f.file_size == 0 {
                return Err(EncodeError::Invalid(Field::FileSize));
            }
            if let Some((k, v)) = f.signature
                && (!k.starts_with("sig-") || v.len() > SIGNATURE_TEXT_MAX)
            {
                return Err(EncodeError::Invalid(Field::Signature));
            }
            if let Some(p) = &f.packed
                && (p.encoding.is_empty()
                    || p.block_size == 0
                    || p.base.is_some_and(|b| {
                        b.size == 0
                            || b.sha256.len() != 64
                            || !b
                                .sha256
                                .bytes()
                                .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
                    }))
            {
                return Err(EncodeError::Invalid(Field::Files));
            }
        }
        Ok(())
    }

    fn write(&self, w: &mut SliceWriter<'_>) -> Result<(), BufferTooSmall> {
        w.raw("{\"afr_ota\":{\"protocols\":")?;
        w.raw(match (self.protocols.mqtt, self.protocols.http) {
            (true, true) => "[\"MQTT\",\"HTTP\"]",
            (true, false) => "[\"MQTT\"]",
            (false, true) => "[\"HTTP\"]",
            (false, false) => "[]",
        })?;
        if let Some(s) = self.stream_name {
            w.raw(",\"streamname\":")?;
            w.json_str(s)?;
        }
        w.raw(",\"files\":[")?;
        for (i, f) in self.files.iter().enumerate() {
            if i > 0 {
                w.raw(",")?;
            }
            f.write(w)?;
        }
        w.raw("]}}")
    }

    /// Encodes `{"afr_ota":{…}}` (the `jobDocument`, e.g. for CreateJob).
    pub fn encode<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, EncodeError> {
        self.validate()?;
        let mut w = SliceWriter::new(buf);
        self.write(&mut w)?;
        Ok(w.finish())
    }
}

impl FileOut<'_> {
    /// Key order: `filepath, filesize, fileid, certfile, fileType, attr, update_data_url,
    /// auth_scheme, sig-…` (the captured documents, §2.3; where `fileType`/`attr` go is our
    /// choice — order does not matter to any parser).
    fn write(&self, w: &mut SliceWriter<'_>) -> Result<(), BufferTooSmall> {
        w.raw("{")?;
        let mut first = true;
        let mut sep = |w: &mut SliceWriter<'_>| {
            let r = if first { Ok(()) } else { w.raw(",") };
            first = false;
            r
        };
        if let Some(p) = self.file_path {
            sep(w)?;
            w.key("filepath")?;
            w.json_str(p)?;
        }
        sep(w)?;
        w.key("filesize")?;
        w.u64(self.file_size.into())?;
        sep(w)?;
        w.key("fileid")?;
        w.u64(self.file_id.into())?;
        if let Some(c) = self.cert_file {
            sep(w)?;
            w.key("certfile")?;
            w.json_str(c)?;
        }
        if let Some(t) = self.file_type {
            sep(w)?;
            w.key("fileType")?;
            w.u64(t.into())?;
        }
        if let Some(a) = self.attr {
            sep(w)?;
            w.key("attr")?;
            w.u64(a.into())?;
        }
        if let Some(u) = self.update_data_url {
            sep(w)?;
            w.key("update_data_url")?;
            w.json_str(u)?;
        }
        if let Some(a) = self.auth_scheme {
            sep(w)?;
            w.key("auth_scheme")?;
            w.json_str(a)?;
        }
        if let Some((k, v)) = self.signature {
            sep(w)?;
            w.key(k)?;
            w.json_str(v)?;
        }
        if let Some(p) = &self.packed {
            sep(w)?;
            w.key("encoding")?;
            w.json_str(p.encoding)?;
            w.raw(",")?;
            w.key("blockSize")?;
            w.u64(p.block_size.into())?;
            if let Some(b) = &p.base {
                w.raw(",")?;
                w.key("baseSha256")?;
                w.json_str(b.sha256)?;
                w.raw(",")?;
                w.key("baseSize")?;
                w.u64(b.size.into())?;
                w.raw(",")?;
                w.key("baseVersion")?;
                w.json_str(b.version)?;
                if let Some(h) = b.hardware_id {
                    w.raw(",")?;
                    w.key("baseHardwareId")?;
                    w.json_str(h)?;
                }
            }
        }
        w.raw("}")
    }
}

impl ExecutionOut<'_> {
    /// Key order of the captured documents (§2.3): `jobId, thingName?, status, statusDetails?,
    /// queuedAt, startedAt?, lastUpdatedAt, versionNumber, executionNumber, jobDocument`.
    fn write(&self, w: &mut SliceWriter<'_>) -> Result<(), EncodeError> {
        let l = NameLimits::PERMISSIVE;
        validate_name(self.job_id, NameKind::JobId, &l)
            .map_err(|_| EncodeError::Invalid(Field::JobId))?;
        w.raw("{\"jobId\":")?;
        w.json_str(self.job_id)?;
        if let Some(t) = self.thing_name {
            w.raw(",\"thingName\":")?;
            w.json_str(t)?;
        }
        w.raw(",\"status\":")?;
        w.json_str(self.status.as_str())?;
        if !self.status_details.is_empty() {
            w.raw(",\"statusDetails\":")?;
            write_details(w, self.status_details)?;
        }
        w.raw(",\"queuedAt\":")?;
        w.u64(self.queued_at)?;
        if let Some(s) = self.started_at {
            w.raw(",\"startedAt\":")?;
            w.u64(s)?;
        }
        w.raw(",\"lastUpdatedAt\":")?;
        w.u64(self.last_updated_at)?;
        w.raw(",\"versionNumber\":")?;
        w.u64(self.version_number)?;
        w.raw(",\"executionNumber\":")?;
        w.u64(self.execution_number)?;
        w.raw(",\"jobDocument\":")?;
        match self.job_document {
            JobDocumentOut::Ota(o) => {
                o.validate()?;
                o.write(w)?;
            }
            JobDocumentOut::Raw(r) => w.raw(r)?,
        }
        w.raw("}")?;
        Ok(())
    }
}

impl JobMessageOut<'_> {
    /// Encodes `{"timestamp":…,"clientToken":…,"execution":{…}}` compactly, as in §2.3, then
    /// `"ferrotaTimestamp":"…"` when set.
    pub fn encode<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, EncodeError> {
        let mut w = SliceWriter::new(buf);
        w.raw("{\"timestamp\":")?;
        w.u64(self.timestamp)?;
        if let Some(c) = self.client_token {
            w.raw(",\"clientToken\":")?;
            w.json_str(c)?;
        }
        if let Some(e) = &self.execution {
            w.raw(",\"execution\":")?;
            e.write(&mut w)?;
        }
        if let Some(t) = self.ferrota_timestamp {
            w.raw(",\"ferrotaTimestamp\":")?;
            w.json_str(t)?;
        }
        w.raw("}")?;
        Ok(w.finish())
    }
}
