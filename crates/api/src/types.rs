//! The requests and answers of the HTTP API, with AWS IoT's camelCase names.
//!
//! Requests (`CreateOtaUpdate` and everything inside it, [`CreateThing`], [`PageRequest`]) are
//! read with `deny_unknown_fields`: nothing is accepted and ignored. Answers are not (a newer
//! server may add a field; an older client still reads the rest).

use std::collections::BTreeMap;

use ferrota_proto::JobStatus;
use serde::{Deserialize, Serialize};

use crate::jobconfig::{AbortConfig, RetryConfig, RolloutConfig, RolloutWaves, SchedulingConfig};

/// Status of a device certificate (AWS: ACTIVE, REVOKED).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CertStatus {
    /// May connect.
    Active,
    /// Refused at connect; listed in the CRL.
    Revoked,
}

/// Job status, AWS DescribeJob's `status`: IN_PROGRESS, CANCELED, COMPLETED, SCHEDULED.
///
/// Decision: `shared/spec/fleet-and-security.md` §1.1 lists "SUCCEEDED" as a job status; AWS's
/// API reference (`JobStatus`) says COMPLETED (SUCCEEDED is an execution status), and an AWS
/// client parses COMPLETED, so COMPLETED it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Waiting for `schedulingConfig.startTime`: nothing is notified yet.
    Scheduled,
    /// Executions may still run.
    InProgress,
    /// Canceled by the operator.
    Canceled,
    /// Every execution reached a terminal state.
    Completed,
}

/// AWS's `ErrorInfo` of an OTA update: a code and a message for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
pub struct ErrorInfo {
    /// A stable code (`FirmwareFileDamaged`, `FirmwareFileMissing`).
    pub code: String,
    /// What was found, naming the file.
    pub message: String,
}

/// What a device needs: `credentials_config.h` and `ota_config.h` of the seed, plus the PEMs.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThingBundle {
    /// Thing name = client id = certificate CN.
    pub thing_name: String,
    /// Certificate id.
    pub certificate_id: String,
    /// Certificate PEM.
    pub certificate_pem: String,
    /// Private key PEM.
    pub private_key_pem: String,
    /// Root CA of the server certificate, PEM.
    pub root_ca_pem: String,
    /// `credentials_config.h`.
    pub credentials_config_h: String,
    /// `ota_config.h`.
    pub ota_config_h: String,
}

/// A thing with its certificates and executions (`thing describe`, `GET /api/things/{name}`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThingDescription {
    /// Thing name (AWS's `thingName`).
    pub thing_name: String,
    /// Its thing groups.
    pub groups: Vec<String>,
    /// Registration time, epoch seconds (the type of every AWS IoT timestamp in JSON).
    pub created_at: u64,
    /// Certificates (without PEM).
    pub certificates: Vec<CertSummary>,
    /// Whether it is connected now.
    pub connected: bool,
    /// Its job executions, as AWS's `JobExecution`.
    pub executions: Vec<ThingExecution>,
    /// What it runs and where it stands (from its Device Shadow, connection and jobs); empty
    /// from a server before issue 16.
    #[serde(default)]
    pub inventory: crate::ThingInventory,
    /// Its attributes (AWS `DescribeThing`'s `attributes`).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// A thing in a list (`thing list --json`, `GET /api/things`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThingSummary {
    /// Thing name.
    pub thing_name: String,
    /// Its thing groups.
    pub groups: Vec<String>,
    /// Registration time, epoch seconds.
    pub created_at: u64,
    /// Its attributes (AWS `ListThings`' `attributes`).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// One job execution of a thing, with AWS `JobExecution`'s names (epoch-second timestamps as
/// AWS sends them) and the server's `reason_text` beside `statusDetails`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThingExecution {
    /// Job id.
    pub job_id: String,
    /// Status (`QUEUED`, `IN_PROGRESS`, `SUCCEEDED`, …).
    pub status: String,
    /// statusDetails as the device wrote them.
    pub status_details: BTreeMap<String, String>,
    /// `statusDetails.reason` in words (see the server's `reason_text`); absent when there is no reason
    /// or its code is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_text: Option<String>,
    /// Queued at, epoch seconds.
    pub queued_at: u64,
    /// First IN_PROGRESS at, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    /// Last change, epoch seconds.
    pub last_updated_at: u64,
    /// Version.
    pub version_number: u64,
    /// Execution number.
    pub execution_number: u64,
}

/// One entry of an execution's history (`ota describe --history`), named as the execution's
/// own fields are.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryDescription {
    /// Status after the change.
    pub status: String,
    /// statusDetails after the change.
    pub status_details: BTreeMap<String, String>,
    /// `statusDetails.reason` in words (see the server's `reason_text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_text: Option<String>,
    /// Version after the change.
    pub version_number: u64,
    /// When, epoch seconds.
    pub last_updated_at: u64,
}

/// An OTA update in a list (`ota list`, `GET /api/ota-updates`): objects, the request as JSON
/// (not as a string of JSON).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OtaSummary {
    /// The update.
    pub ota_update_id: String,
    /// Status (`CREATE_COMPLETE`, `CANCELED`).
    pub status: String,
    /// Job id.
    pub job_id: String,
    /// Stream id.
    pub stream_id: String,
    /// Created at, epoch seconds.
    pub created_at: u64,
    /// The request.
    pub request: serde_json::Value,
    /// AWS's `errorInfo`, when the update cannot be delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_info: Option<ErrorInfo>,
}

/// AWS DescribeJob's `jobProcessDetails`: how many of the job's executions are in each status,
/// over all of them (not only the page shown).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobProcessDetails {
    /// QUEUED.
    pub number_of_queued_things: u64,
    /// IN_PROGRESS.
    pub number_of_in_progress_things: u64,
    /// SUCCEEDED.
    pub number_of_succeeded_things: u64,
    /// FAILED.
    pub number_of_failed_things: u64,
    /// REJECTED.
    pub number_of_rejected_things: u64,
    /// CANCELED.
    pub number_of_canceled_things: u64,
    /// TIMED_OUT.
    pub number_of_timed_out_things: u64,
    /// REMOVED.
    pub number_of_removed_things: u64,
}

impl JobProcessDetails {
    /// From `(status, count)` pairs.
    pub fn from_counts(counts: &[(JobStatus, u64)]) -> Self {
        let mut d = JobProcessDetails::default();
        for &(st, n) in counts {
            let f = match st {
                JobStatus::Queued => &mut d.number_of_queued_things,
                JobStatus::InProgress => &mut d.number_of_in_progress_things,
                JobStatus::Succeeded => &mut d.number_of_succeeded_things,
                JobStatus::Failed => &mut d.number_of_failed_things,
                JobStatus::Rejected => &mut d.number_of_rejected_things,
                JobStatus::Canceled => &mut d.number_of_canceled_things,
                JobStatus::TimedOut => &mut d.number_of_timed_out_things,
                JobStatus::Removed => &mut d.number_of_removed_things,
            };
            *f += n;
        }
        d
    }
}

/// A certificate, briefly.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertSummary {
    /// Id (AWS's `certificateId`: SHA-256 of the DER, hex).
    #[serde(rename = "certificateId")]
    pub id: String,
    /// Serial.
    pub serial: String,
    /// Status.
    pub status: CertStatus,
}

/// `CreateOTAUpdate`, the subset we implement.
///
/// Nothing is accepted and ignored: an unknown field is refused when the JSON is read
/// (`deny_unknown_fields`, the HTTP API names the field), AWS fields Ferrota does not
/// implement are refused by name (the server's `api` module lists them with the reason), and the fields
/// below that AWS allows several values for take only the value Ferrota implements
/// (`targetSelection` SNAPSHOT, `protocols` MQTT), checked by the server's `Admin::create_ota`.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOtaUpdate {
    /// Id (`[a-zA-Z0-9_-]`, ≤ 64).
    pub ota_update_id: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// `thing/<name>`, `thinggroup/<name>`, or AWS ARNs ending so.
    pub targets: Vec<String>,
    /// Files (file ids are their positions).
    pub files: Vec<OtaFile>,
    /// AWS `awsJobTimeoutConfig` (also accepted as `timeoutConfig`, CreateJob's name).
    #[serde(
        default,
        alias = "timeoutConfig",
        skip_serializing_if = "Option::is_none"
    )]
    pub aws_job_timeout_config: Option<TimeoutConfig>,
    /// AWS `targetSelection`: only `SNAPSHOT` (AWS's default: targets resolved once, at
    /// create) is implemented; `CONTINUOUS` is refused, not downgraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_selection: Option<String>,
    /// AWS `protocols`: only `["MQTT"]` (AWS's default) is implemented; `HTTP` is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocols: Option<Vec<String>>,
    /// AWS `awsJobExecutionsRolloutConfig` (also CreateJob's `jobExecutionsRolloutConfig`).
    #[serde(
        default,
        alias = "jobExecutionsRolloutConfig",
        skip_serializing_if = "Option::is_none"
    )]
    pub aws_job_executions_rollout_config: Option<RolloutConfig>,
    /// AWS `awsJobAbortConfig` (also CreateJob's `abortConfig`).
    #[serde(
        default,
        alias = "abortConfig",
        skip_serializing_if = "Option::is_none"
    )]
    pub aws_job_abort_config: Option<AbortConfig>,
    /// AWS CreateJob's `jobExecutionsRetryConfig` (CreateOTAUpdate has none; accepted here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_executions_retry_config: Option<RetryConfig>,
    /// AWS CreateJob's `schedulingConfig` (accepted here too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_config: Option<SchedulingConfig>,
    /// Ferrota's gated waves (not an AWS field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_waves: Option<RolloutWaves>,
}

/// AWS's `timeoutConfig` of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeoutConfig {
    /// Minutes an execution may stay IN_PROGRESS before it becomes TIMED_OUT (1–10080).
    pub in_progress_timeout_in_minutes: u64,
}

/// A file of an OTA update.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OtaFile {
    /// Path on the device (`filepath`).
    pub file_name: String,
    /// `fileType`, written into the job document as given. Absent stays absent, as in AWS:
    /// the device then takes it as 0, which the official AWS OTA library treats as firmware
    /// (its `configOTA_FIRMWARE_UPDATE_FILE_TYPE_ID` is 0 by default). `ferrota ota create`
    /// sends 141 ([`FIRMWARE_FILE_TYPE`], the seed's T2G firmware type) unless told otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_type: Option<u8>,
    /// Where the content is: the SHA-256 of an uploaded file.
    pub file_location: FileLocation,
    /// Code signing.
    pub code_signing: CodeSigning,
    /// Ferrota's delta updates (issue #19; not an AWS field): earlier bank images, uploaded
    /// like any file and named by SHA-256, that devices may run now. For each the server packs
    /// a delta from it to this file and adds it to the update's stream, and a device that
    /// reports that base's version downloads the delta instead of the whole bank. Only on
    /// `files[0]`, only for firmware (`fileType` [`FIRMWARE_FILE_TYPE`]), at most
    /// [`DELTA_BASES_MAX`]; every firmware `files[0]` also gets a packed (sparse, compressed)
    /// copy, with or without bases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delta_from: Vec<FileLocation>,
}

/// Most delta bases of one OTA update ([`OtaFile::delta_from`]): each costs an encode of the
/// whole bank at create time and a file in the stream; a fleet runs a few releases at once.
pub const DELTA_BASES_MAX: usize = 8;

/// A stored file.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileLocation {
    /// SHA-256 hex of the uploaded content.
    pub sha256: String,
}

/// `codeSigning` with `customCodeSigning` (a signature made elsewhere).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CodeSigning {
    /// The custom signature.
    pub custom_code_signing: CustomCodeSigning,
}

/// AWS's `customCodeSigning`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomCodeSigning {
    /// `{"inlineDocument": base64 DER}`.
    pub signature: InlineSignature,
    /// `{"certificateName": "signer.crt", "inlineDocument"?: PEM}` (the `certfile` on the
    /// device, and optionally the certificate itself, which the server then checks the
    /// signature against).
    pub certificate_chain: CertificateChain,
    /// `SHA256` (the only hash the OTA signature uses; anything else is refused).
    #[serde(default = "sha256_name")]
    pub hash_algorithm: String,
    /// `ECDSA` (the only signature algorithm; anything else is refused).
    #[serde(default = "ecdsa")]
    pub signature_algorithm: String,
}

fn sha256_name() -> String {
    "SHA256".into()
}
fn ecdsa() -> String {
    "ECDSA".into()
}

/// The signature.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InlineSignature {
    /// Base64 of the DER signature.
    pub inline_document: String,
}

/// AWS's `certificateChain`: the signer certificate's name on the device and, optionally, the
/// certificate (AWS's `inlineDocument`; PEM or base64 DER here).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateChain {
    /// Name (`certfile` in the job document).
    pub certificate_name: String,
    /// The code-signing certificate. When given, the server (`Admin::create_ota`) verifies the file's
    /// signature with its public key and refuses a mismatch (a file signed with another key,
    /// or a signature of another file): every device holding that certificate would reject
    /// the file after downloading all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_document: Option<String>,
}

/// An OTA update with its executions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OtaDescription {
    /// The update.
    pub ota_update_id: String,
    /// Status (`CREATE_COMPLETE`, `CANCELED`).
    pub status: String,
    /// Job id.
    pub job_id: String,
    /// Job state.
    pub job_state: Option<JobState>,
    /// Stream id.
    pub stream_id: String,
    /// Created at, epoch seconds (AWS's `createdAt` of a job).
    pub created_at: u64,
    /// The request.
    pub request: serde_json::Value,
    /// AWS DescribeJob's `jobProcessDetails`: executions per status, over the whole job.
    pub job_process_details: JobProcessDetails,
    /// AWS DescribeJob's `forceCanceled`: the job was canceled with `force` (IN_PROGRESS
    /// executions canceled too).
    #[serde(default)]
    pub force_canceled: bool,
    /// AWS DescribeJob's `reasonCode` of a canceled job (`ABORTED_BY_CRITERIA`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// AWS DescribeJob's `comment`: why, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// AWS's `errorInfo`: why the update cannot be delivered (a damaged or missing firmware
    /// file found when serving it); absent while it can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_info: Option<ErrorInfo>,
    /// One page of the executions, in creation order (at most `maxResults`, default
    /// [`DESCRIBE_PAGE_DEFAULT`]). History is not embedded (see `Admin::execution_history`, [`crate::Client::execution_history`]):
    /// a page stays a few hundred KB however much the devices wrote.
    pub executions: Vec<ExecutionDescription>,
    /// AWS's `nextToken`: pass it back to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// Default page size of a describe (executions per page). AWS documents no default for
/// ListJobExecutionsForJob; 100 keeps a page under ~500 KB at the statusDetails limits.
pub const DESCRIBE_PAGE_DEFAULT: usize = 100;
/// Largest `maxResults` of a describe: AWS's ListJobExecutionsForJob range is 1–250.
pub const DESCRIBE_PAGE_MAX: usize = 250;

/// Which page of executions a describe returns (AWS's `maxResults` and `nextToken`).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema, utoipa::IntoParams, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageRequest {
    /// Executions per page, 1–[`DESCRIBE_PAGE_MAX`]; default [`DESCRIBE_PAGE_DEFAULT`].
    pub max_results: Option<usize>,
    /// The `nextToken` of the previous page (opaque to the caller: the position after the last
    /// execution of that page), or none for the first page.
    pub next_token: Option<String>,
}

/// One thing's execution (its history: `Admin::execution_history`, [`crate::Client::execution_history`]).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionDescription {
    /// Thing.
    pub thing_name: String,
    /// Status.
    pub status: String,
    /// Details.
    pub status_details: BTreeMap<String, String>,
    /// `statusDetails.reason` in words (see the server's `reason_text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_text: Option<String>,
    /// Version.
    pub version_number: u64,
    /// Last change, epoch seconds.
    pub last_updated_at: u64,
}

/// `fileType` of T2G firmware (the AWS OTA library's `configOTA_FIRMWARE_UPDATE_FILE_TYPE_ID`
/// on this board): the server accepts a file of this type only if it is a Ferrota bank image.
pub const FIRMWARE_FILE_TYPE: u8 = 141;

/// The certificate name ([`CertificateChain::certificate_name`], the device's `certfile`) that
/// [`OtaFile::new`] starts with: the name `ferrota ota create --cert-name` defaults to, so a
/// request built in code and one built by the CLI name the same file unless told otherwise.
pub const DEFAULT_CERTIFICATE_NAME: &str = "signer.crt";

/// `CreateOtaUpdate` is its own builder, in the style of the AWS SDKs' fluent builders
/// (`targets`/`files` are lists a method appends to; every other method sets its field), but
/// without a separate `build()`: every field is public, and the request is checked in one
/// place, by the server, which refuses a bad one with a message naming the field. So a builder
/// here never fails, and a request built by hand is checked exactly as a built one.
///
/// ```
/// use ferrota_api::{CreateOtaUpdate, OtaFile};
/// let req = CreateOtaUpdate::new("v1-2-0")
///     .description("v1.2.0")
///     .thing("board-1")
///     .thing_group("lab")
///     .file(OtaFile::firmware("/ota/bank.bin", "ab12…", "MEUC…").certificate_name("signer.crt"))
///     .in_progress_timeout_minutes(30);
/// assert_eq!(req.targets, ["thing/board-1", "thinggroup/lab"]);
/// assert_eq!(req.files[0].file_type, Some(ferrota_api::FIRMWARE_FILE_TYPE));
/// ```
impl CreateOtaUpdate {
    /// A request for update `ota_update_id`, without targets or files yet (a request sent so
    /// is refused by the server: add at least one of each).
    pub fn new(ota_update_id: impl Into<String>) -> Self {
        CreateOtaUpdate {
            ota_update_id: ota_update_id.into(),
            ..Default::default()
        }
    }

    /// Sets `description`.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Adds a target as AWS writes it: `thing/<name>`, `thinggroup/<name>`, or an ARN ending
    /// so ([`CreateOtaUpdate::thing`] and [`CreateOtaUpdate::thing_group`] write the first two).
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.targets.push(target.into());
        self
    }

    /// Adds thing `name` as a target (`thing/<name>`).
    pub fn thing(self, name: &str) -> Self {
        self.target(format!("thing/{name}"))
    }

    /// Adds thing group `name` as a target (`thinggroup/<name>`; its members when the update
    /// is created: AWS's SNAPSHOT target selection).
    pub fn thing_group(self, name: &str) -> Self {
        self.target(format!("thinggroup/{name}"))
    }

    /// Adds a file (its file id in the job document is its position).
    pub fn file(mut self, file: OtaFile) -> Self {
        self.files.push(file);
        self
    }

    /// Sets AWS `awsJobTimeoutConfig.inProgressTimeoutInMinutes` (1–10080): an execution
    /// IN_PROGRESS this long becomes TIMED_OUT.
    pub fn in_progress_timeout_minutes(mut self, minutes: u64) -> Self {
        self.aws_job_timeout_config = Some(TimeoutConfig {
            in_progress_timeout_in_minutes: minutes,
        });
        self
    }
}

/// Builder methods of a file, as for [`CreateOtaUpdate`]: set what differs from
/// [`OtaFile::new`]'s start.
impl OtaFile {
    /// File `file_name` (its path on the device) with the uploaded content `sha256` and the
    /// OTA signature `signature` (base64 of the DER ECDSA P-256 signature, as `ferrota image
    /// sign-ota` writes it): SHA256/ECDSA, certificate name [`DEFAULT_CERTIFICATE_NAME`], no
    /// `fileType` (AWS's default: the device takes it as 0).
    pub fn new(
        file_name: impl Into<String>,
        sha256: impl Into<String>,
        signature: impl Into<String>,
    ) -> Self {
        OtaFile {
            file_name: file_name.into(),
            file_type: None,
            file_location: FileLocation {
                sha256: sha256.into(),
            },
            code_signing: CodeSigning {
                custom_code_signing: CustomCodeSigning {
                    signature: InlineSignature {
                        inline_document: signature.into(),
                    },
                    certificate_chain: CertificateChain {
                        certificate_name: DEFAULT_CERTIFICATE_NAME.into(),
                        inline_document: None,
                    },
                    hash_algorithm: sha256_name(),
                    signature_algorithm: ecdsa(),
                },
            },
            delta_from: Vec::new(),
        }
    }

    /// Adds a delta base: an uploaded earlier bank image ([`OtaFile::delta_from`]).
    pub fn delta_from(mut self, sha256: impl Into<String>) -> Self {
        self.delta_from.push(FileLocation {
            sha256: sha256.into(),
        });
        self
    }

    /// [`OtaFile::new`] with `fileType` [`FIRMWARE_FILE_TYPE`] (a Ferrota bank image).
    pub fn firmware(
        file_name: impl Into<String>,
        sha256: impl Into<String>,
        signature: impl Into<String>,
    ) -> Self {
        Self::new(file_name, sha256, signature).file_type(Some(FIRMWARE_FILE_TYPE))
    }

    /// Sets `fileType` (`None` leaves it out of the job document, as AWS does).
    pub fn file_type(mut self, file_type: Option<u8>) -> Self {
        self.file_type = file_type;
        self
    }

    /// Sets `certificateChain.certificateName` (the device's `certfile`).
    pub fn certificate_name(mut self, name: impl Into<String>) -> Self {
        self.code_signing
            .custom_code_signing
            .certificate_chain
            .certificate_name = name.into();
        self
    }

    /// Sets `certificateChain.inlineDocument`: the code-signing certificate (PEM, or base64
    /// of DER), which the server then checks the signature against before it creates anything.
    pub fn certificate(mut self, certificate: impl Into<String>) -> Self {
        self.code_signing
            .custom_code_signing
            .certificate_chain
            .inline_document = Some(certificate.into());
        self
    }
}

/// `POST /api/things`: a thing and its certificate (the answer is a [`ThingBundle`]).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateThing {
    /// Thing name (AWS's rules: `[a-zA-Z0-9:_-]`, 1–128).
    pub thing_name: String,
    /// Thing groups to put it in.
    #[serde(default)]
    pub groups: Vec<String>,
    /// AWS's `attributePayload` (its `merge` is meaningless on a create and refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_payload: Option<AttributePayload>,
}

/// AWS's `AttributePayload`: thing attributes, name → value (AWS's limits: at most 50, names
/// 1–128 of `[a-zA-Z0-9_.,@/:#-]`, values up to 800 of `[a-zA-Z0-9_.,@/:#=\[\]-]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttributePayload {
    /// The attributes. An empty value removes the attribute (AWS's rule for `UpdateThing`).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// `UpdateThing`: `true` merges into the stored attributes, `false` (default) replaces
    /// them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<bool>,
}

/// `PATCH /api/things/{name}`: AWS `UpdateThing` (attributes only).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateThing {
    /// The attributes to set (replace, or merge with `merge: true`).
    pub attribute_payload: AttributePayload,
}

/// `POST /api/thing-groups`: AWS `CreateDynamicThingGroup` (the name in the body rather than
/// the path).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateThingGroup {
    /// Group name (`[a-zA-Z0-9_-]`, 1–128).
    pub thing_group_name: String,
    /// The fleet-index query selecting its members (`firmware.version < 1.2.0 AND
    /// attributes.model:KIT_T2G`); required (static groups are made by naming them in a
    /// thing's `groups`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_string: Option<String>,
    /// AWS's index name; only `AWS_Things` exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_name: Option<String>,
    /// AWS's query version; only `2017-09-30` exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_version: Option<String>,
}

/// A thing group (`GET /api/thing-groups`, and with its members `GET /api/thing-groups/{name}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThingGroupDescription {
    /// Group name.
    pub thing_group_name: String,
    /// The query of a dynamic group; absent for a static one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_string: Option<String>,
    /// Creation time of a dynamic group, epoch seconds (static groups exist while things
    /// name them and have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
    /// Its members now, by name (describe only: a dynamic group's are computed at the call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<String>>,
}

/// `POST /api/indices/search`: AWS `SearchIndex`.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SearchIndex {
    /// The query ([fleet-index syntax](https://docs.aws.amazon.com/iot/latest/developerguide/query-syntax.html), Ferrota's subset).
    pub query_string: String,
    /// At most this many things (1–500, default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<usize>,
    /// From a previous answer, for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    /// AWS's index name; only `AWS_Things` exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_name: Option<String>,
    /// AWS's query version; only `2017-09-30` exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_version: Option<String>,
}

/// AWS `SearchIndex`'s answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchIndexAnswer {
    /// The matching things, by name.
    pub things: Vec<ThingDocument>,
    /// Present while more follow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// AWS's `ThingDocument`: one thing as the fleet index sees it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThingDocument {
    /// Thing name.
    pub thing_name: String,
    /// Its static thing groups.
    #[serde(default)]
    pub thing_group_names: Vec<String>,
    /// Its attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Connected now, and when last heard from (epoch milliseconds, as AWS).
    pub connectivity: Connectivity,
    /// Its shadow's reported state as JSON text (AWS sends the shadow as a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<String>,
}

/// AWS's `ThingConnectivity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connectivity {
    /// Connected now.
    pub connected: bool,
    /// Last heard from, epoch milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
}

/// `DELETE /api/thing-groups/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    /// What was deleted.
    pub deleted: String,
}

/// `GET /api/limits`: what a client checks before it sends a body (a refused body otherwise
/// shows as "Broken pipe" on the client, still sending when the server answers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Largest file `POST /api/files` accepts, bytes.
    pub max_file_bytes: u64,
}

/// `POST /api/files`: the stored file (content-addressed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadedFile {
    /// SHA-256 of the content, hex: its [`FileLocation::sha256`] in a create request.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// `POST /api/things/{name}/revoke`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revoked {
    /// Certificates revoked.
    pub revoked: u64,
}

/// AWS's error answer, `{"code":"InvalidRequestException","message":"…"}`, with the HTTP
/// status it came with.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema, Deserialize, thiserror::Error,
)]
pub struct ApiError {
    /// HTTP status (not in the JSON).
    #[serde(skip)]
    pub status: u16,
    /// AWS's code (`InvalidRequestException`, `UnauthorizedException`,
    /// `ResourceNotFoundException`, `ResourceAlreadyExistsException`,
    /// `InternalFailureException`). Empty when the answer was not AWS's error JSON (a proxy,
    /// another HTTP service): then [`ApiError::message`] holds the start of the body.
    /// (Required in the OpenAPI document: the server always sends it.)
    #[serde(default)]
    #[schema(required = true)]
    pub code: String,
    /// What went wrong, for a person.
    #[serde(default)]
    #[schema(required = true)]
    pub message: String,
}

/// `HTTP 404 ResourceNotFoundException: OTA update x not found` (the code left out when there
/// is none).
impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.code.is_empty() {
            write!(f, "HTTP {}: {}", self.status, self.message)
        } else {
            write!(f, "HTTP {} {}: {}", self.status, self.code, self.message)
        }
    }
}
