//! Status updates the device publishes on `…/jobs/<jobId>/update` (spec §4.4), with the exact
//! strings of the official library, and the server's decoder of any UpdateJobExecution
//! request.
//!
//! The official device writes compact JSON of at most 128 bytes, no `clientToken`, no
//! `expectedVersion`; progress messages go out with QoS 0, everything else QoS 1
//! ([`OtaStatus::qos`]).

use core::fmt;

use crate::job::{Field, JobError, JobStatus, opt_bool, opt_obj, opt_str, opt_u64, write_details};
use crate::json::{self, JsonObject, JsonStr, Value};
use crate::write::{BufferTooSmall, SliceWriter};

/// An application version as the OTA library packs it: `major << 24 | minor << 16 | build`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct AppVersion {
    /// 8-bit major.
    pub major: u8,
    /// 8-bit minor.
    pub minor: u8,
    /// 16-bit build.
    pub build: u16,
}

impl AppVersion {
    /// A version from its parts.
    pub const fn new(major: u8, minor: u8, build: u16) -> Self {
        AppVersion {
            major,
            minor,
            build,
        }
    }
    /// Unpacks `major << 24 | minor << 16 | build`.
    pub const fn from_u32(v: u32) -> Self {
        AppVersion {
            major: (v >> 24) as u8,
            minor: (v >> 16) as u8,
            build: v as u16,
        }
    }
    /// Packs to `major << 24 | minor << 16 | build`.
    pub const fn to_u32(self) -> u32 {
        (self.major as u32) << 24 | (self.minor as u32) << 16 | self.build as u32
    }
}

macro_rules! codes {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $n:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vm])* $v = $n),* }
        impl $name {
            /// The numeric code.
            pub const fn code(self) -> u32 { self as u32 }
            /// The variant with this code.
            pub fn from_code(c: u32) -> Option<Self> {
                match c { $($n => Some(Self::$v),)* _ => None }
            }
        }
    };
}

codes! {
    /// `OtaErr_t`: sub-reasons of `rejected:` / `aborted:` and the main code of job failures.
    #[allow(missing_docs)]
    OtaErr {
        None = 0, Uninitialized = 1, Panic = 2, InvalidArg = 3, AgentStopped = 4,
        SignalEventFailed = 5, RequestJobFailed = 6, InitFileTransferFailed = 7,
        RequestFileBlockFailed = 8, CleanupControlFailed = 9, CleanupDataFailed = 10,
        UpdateJobStatusFailed = 11, JobParserError = 12, InvalidDataProtocol = 13,
        MomentumAbort = 14, DowngradeNotAllowed = 15, SameFirmwareVersion = 16,
        ImageStateMismatch = 17, NoActiveJob = 18, UserAbort = 19, FailedToEncodeCbor = 20,
        FailedToDecodeCbor = 21, ActivateFailed = 22, FileSizeOverflow = 23,
        EmptyJobDocument = 24,
    }
}

codes! {
    /// PAL main codes (`0x000000eN` in a `"0x… : 0x…"` reason).
    #[allow(missing_docs)]
    PalErr {
        Uninitialized = 0xe0, OutOfMemory = 0xe1, NullFileContext = 0xe2,
        SignatureCheckFailed = 0xe3, RxFileCreateFailed = 0xe4, RxFileTooLarge = 0xe5,
        BootInfoCreateFailed = 0xe6, BadSignerCert = 0xe7, BadImageState = 0xe8,
        AbortFailed = 0xe9, RejectFailed = 0xea, CommitFailed = 0xeb, ActivateFailed = 0xec,
        FileAbort = 0xed, FileClose = 0xee,
    }
}

codes! {
    /// `OtaJobParseErr_t`: sub-reasons of job parser failures (`0x0000000c: 0x0000000N`).
    #[allow(missing_docs)]
    JobParseErr {
        NullJob = 1, UpdateCurrentJob = 2, ZeroFileSize = 3, NonConformingJobDoc = 4,
        BadModelInitParams = 5, NoContextAvailable = 6, NoActiveJobs = 7,
    }
}

/// The status updates the official device sends, with their exact JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtaStatus {
    /// `IN_PROGRESS`, `{"receive":"<received>/<total>"}` (QoS 0).
    Receiving {
        /// Blocks received.
        received: u32,
        /// Blocks of the file.
        total: u32,
    },
    /// `IN_PROGRESS`, `{"self_test":"ready","updatedBy":"0x%08x"}`: downloaded and verified;
    /// `updated_by` is the running (old) version.
    SelfTestReady {
        /// The running version.
        updated_by: AppVersion,
    },
    /// `IN_PROGRESS`, `{"self_test":"active","updatedBy":"0x%08x"}`: after the reboot, with
    /// the new running version.
    SelfTestActive {
        /// The new running version.
        updated_by: AppVersion,
    },
    /// `SUCCEEDED`, `{"reason":"accepted  v%u.%u.%u","updatedBy":"  v%u.%u.%u"}` (two spaces).
    Accepted {
        /// The new version (in `reason`).
        version: AppVersion,
        /// The version that did the download.
        updated_by: AppVersion,
    },
    /// `FAILED`, `{"reason":"rejected: 0x%08x"}`.
    Rejected {
        /// Sub-reason (an [`OtaErr`] code, or 0).
        sub_reason: u32,
    },
    /// `FAILED`, `{"reason":"aborted: 0x%08x"}`.
    Aborted {
        /// Sub-reason.
        sub_reason: u32,
    },
    /// `FAILED`, `{"reason":"0x%08x: 0x%08x"}`.
    Failed {
        /// Main code (a [`PalErr`] or [`OtaErr`] code).
        main: u32,
        /// Sub code (platform-specific).
        sub: u32,
    },
}

fn hex(v: u32) -> impl fmt::Display {
    struct H(u32);
    impl fmt::Display for H {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "0x{:08x}", self.0)
        }
    }
    H(v)
}

fn ver(v: AppVersion) -> impl fmt::Display {
    struct V(AppVersion);
    impl fmt::Display for V {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "  v{}.{}.{}", self.0.major, self.0.minor, self.0.build)
        }
    }
    V(v)
}

impl OtaStatus {
    /// The job status it reports.
    pub fn job_status(&self) -> JobStatus {
        match self {
            OtaStatus::Receiving { .. }
            | OtaStatus::SelfTestReady { .. }
            | OtaStatus::SelfTestActive { .. } => JobStatus::InProgress,
            OtaStatus::Accepted { .. } => JobStatus::Succeeded,
            _ => JobStatus::Failed,
        }
    }

    /// MQTT QoS the official device uses: 0 for progress, 1 otherwise.
    pub fn qos(&self) -> u8 {
        match self {
            OtaStatus::Receiving { .. } => 0,
            _ => 1,
        }
    }

    /// Encodes the exact JSON of §4.4.
    pub fn encode<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, BufferTooSmall> {
        let mut w = SliceWriter::new(buf);
        w.raw("{\"status\":\"")?;
        w.raw(self.job_status().as_str())?;
        w.raw("\",\"statusDetails\":{")?;
        match *self {
            OtaStatus::Receiving { received, total } => {
                w.fmt(format_args!("\"receive\":\"{received}/{total}\""))?
            }
            OtaStatus::SelfTestReady { updated_by } => w.fmt(format_args!(
                "\"self_test\":\"ready\",\"updatedBy\":\"{}\"",
                hex(updated_by.to_u32())
            ))?,
            OtaStatus::SelfTestActive { updated_by } => w.fmt(format_args!(
                "\"self_test\":\"active\",\"updatedBy\":\"{}\"",
                hex(updated_by.to_u32())
            ))?,
            OtaStatus::Accepted {
                version,
                updated_by,
            } => w.fmt(format_args!(
                "\"reason\":\"accepted{}\",\"updatedBy\":\"{}\"",
                ver(version),
                ver(updated_by)
            ))?,
            OtaStatus::Rejected { sub_reason } => {
                w.fmt(format_args!("\"reason\":\"rejected: {}\"", hex(sub_reason)))?
            }
            OtaStatus::Aborted { sub_reason } => {
                w.fmt(format_args!("\"reason\":\"aborted: {}\"", hex(sub_reason)))?
            }
            OtaStatus::Failed { main, sub } => {
                w.fmt(format_args!("\"reason\":\"{}: {}\"", hex(main), hex(sub)))?
            }
        }
        w.raw("}}")?;
        Ok(w.finish())
    }

    /// Recognises one of the official forms in a decoded update (status and the exact
    /// `statusDetails` keys and value formats); `None` for anything else.
    pub fn from_request(req: &UpdateRequest<'_>) -> Option<OtaStatus> {
        let d = req.status_details?;
        let get = |k: &str| d.get(k).and_then(|v| v.as_str()).and_then(|s| s.as_plain());
        let n = d.iter().count();
        match req.status {
            JobStatus::InProgress => {
                if let (Some(r), 1) = (get("receive"), n) {
                    let (a, b) = r.split_once('/')?;
                    return Some(OtaStatus::Receiving {
                        received: dec_u32(a)?,
                        total: dec_u32(b)?,
                    });
                }
                let v = AppVersion::from_u32(parse_hex(get("updatedBy")?)?);
                match (get("self_test")?, n) {
                    ("ready", 2) => Some(OtaStatus::SelfTestReady { updated_by: v }),
                    ("active", 2) => Some(OtaStatus::SelfTestActive { updated_by: v }),
                    _ => None,
                }
            }
            JobStatus::Succeeded if n == 2 => {
                let version = parse_ver(get("reason")?.strip_prefix("accepted")?)?;
                let updated_by = parse_ver(get("updatedBy")?)?;
                Some(OtaStatus::Accepted {
                    version,
                    updated_by,
                })
            }
            JobStatus::Failed if n == 1 => {
                let r = get("reason")?;
                if let Some(x) = r.strip_prefix("rejected: ") {
                    Some(OtaStatus::Rejected {
                        sub_reason: parse_hex(x)?,
                    })
                } else if let Some(x) = r.strip_prefix("aborted: ") {
                    Some(OtaStatus::Aborted {
                        sub_reason: parse_hex(x)?,
                    })
                } else {
                    let (a, b) = r.split_once(": ")?;
                    Some(OtaStatus::Failed {
                        main: parse_hex(a)?,
                        sub: parse_hex(b)?,
                    })
                }
            }
            _ => None,
        }
    }

    /// Decodes an update payload that must be one of the official forms.
    pub fn decode(payload: &[u8]) -> Result<OtaStatus, JobError> {
        let req = UpdateRequest::parse(payload)?;
        Self::from_request(&req).ok_or(JobError::Invalid(Field::StatusDetails))
    }
}

fn dec_u32(s: &str) -> Option<u32> {
    json::parse_decimal(s).and_then(|v| u32::try_from(v).ok())
}

/// `0x` + exactly 8 lowercase hex digits, as `%08x` writes them.
fn parse_hex(s: &str) -> Option<u32> {
    let h = s.strip_prefix("0x")?;
    if h.len() != 8
        || !h
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(h, 16).ok()
}

/// `"  v<maj>.<min>.<build>"`
fn parse_ver(s: &str) -> Option<AppVersion> {
    let mut it = s.strip_prefix("  v")?.split('.');
    let major = u8::try_from(dec_u32(it.next()?)?).ok()?;
    let minor = u8::try_from(dec_u32(it.next()?)?).ok()?;
    let build = u16::try_from(dec_u32(it.next()?)?).ok()?;
    it.next()
        .is_none()
        .then_some(AppVersion::new(major, minor, build))
}

/// Encodes any update `{"status":…,"statusDetails":{…}}` (custom jobs; `statusDetails`
/// omitted when `details` is empty).
pub fn encode_update<'b>(
    status: JobStatus,
    details: &[(&str, &str)],
    buf: &'b mut [u8],
) -> Result<&'b str, BufferTooSmall> {
    let mut w = SliceWriter::new(buf);
    w.raw("{\"status\":")?;
    w.json_str(status.as_str())?;
    if !details.is_empty() {
        w.raw(",\"statusDetails\":")?;
        write_details(&mut w, details)?;
    }
    w.raw("}")?;
    Ok(w.finish())
}

/// An UpdateJobExecution request as the server receives it (§1.4). Only `status` is required;
/// `statusDetails` values must be strings (AWS: string → string map).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateRequest<'a> {
    /// `status`
    pub status: JobStatus,
    /// `statusDetails`
    pub status_details: Option<JsonObject<'a>>,
    /// `expectedVersion`
    pub expected_version: Option<u64>,
    /// `executionNumber`
    pub execution_number: Option<u64>,
    /// `includeJobExecutionState`
    pub include_job_execution_state: Option<bool>,
    /// `includeJobDocument`
    pub include_job_document: Option<bool>,
    /// `stepTimeoutInMinutes` (a number of minutes; `-1` is [`UpdateRequest::clear_step_timeout`]
    /// instead).
    pub step_timeout_in_minutes: Option<u64>,
    /// `"stepTimeoutInMinutes": -1`: AWS's value that clears the execution's step timer (the
    /// only negative value AWS accepts; any other is refused as invalid when parsed).
    pub clear_step_timeout: bool,
    /// `clientToken`
    pub client_token: Option<JsonStr<'a>>,
}

impl<'a> UpdateRequest<'a> {
    /// Parses the request.
    pub fn parse(payload: &'a [u8]) -> Result<Self, JobError> {
        let o = json::parse_object(payload)?.ok_or(JobError::WrongType(Field::Message))?;
        let status =
            opt_str(&o, "status", Field::Status)?.ok_or(JobError::Missing(Field::Status))?;
        let status = status
            .as_plain()
            .and_then(JobStatus::from_wire)
            .ok_or(JobError::Invalid(Field::Status))?;
        let status_details = opt_obj(&o, "statusDetails", Field::StatusDetails)?;
        if let Some(d) = status_details
            && d.iter().any(|(_, v)| !matches!(v, Value::String(_)))
        {
            return Err(JobError::WrongType(Field::StatusDetails));
        }
        let clear_step_timeout = matches!(o.get("stepTimeoutInMinutes"), Some(Value::Number("-1")));
        Ok(UpdateRequest {
            status,
            status_details,
            expected_version: opt_u64(&o, "expectedVersion", Field::ExpectedVersion)?,
            execution_number: opt_u64(&o, "executionNumber", Field::ExecutionNumber)?,
            include_job_execution_state: opt_bool(
                &o,
                "includeJobExecutionState",
                Field::IncludeJobExecutionState,
            )?,
            include_job_document: opt_bool(&o, "includeJobDocument", Field::IncludeJobDocument)?,
            step_timeout_in_minutes: if clear_step_timeout {
                None
            } else {
                opt_u64(&o, "stepTimeoutInMinutes", Field::StepTimeoutInMinutes)?
            },
            clear_step_timeout,
            client_token: opt_str(&o, "clientToken", Field::ClientToken)?,
        })
    }
}
