//! Every size limit of the wire formats, in one place.
//!
//! Two families: what AWS IoT accepts (a server that wants to be as permissive as AWS uses
//! these), and what the official OTA device library can hold (a server that wants to serve the
//! official device must stay within these; spec §2.4). The device-side parsers of this crate
//! enforce the device limits, because the agent must be able to put every name into a topic.

/// AWS IoT thing name, maximum length (AWS IoT quotas).
pub const AWS_THING_NAME_MAX: usize = 128;
/// Thing name limit of the OTA library as configured by its POSIX demo
/// (`otaconfigMAX_THINGNAME_LEN` = 64; the library default is 128).
pub const OTA_THING_NAME_MAX: usize = 64;
/// AWS IoT job id, maximum length (`[a-zA-Z0-9_-]+`, ≤ 64) [INFER in spec §2.4].
pub const AWS_JOB_ID_MAX: usize = 64;
/// Job id limit of the OTA device (`OTA_JOB_ID_MAX_SIZE` = 73 including NUL; `AFR_OTA-` prefix).
pub const OTA_JOB_ID_MAX: usize = 72;
/// AWS stream id, maximum length.
pub const AWS_STREAM_NAME_MAX: usize = 128;
/// Stream name limit of the OTA device topic buffers (AWS's own `AFR_OTA-<uuid>` is exactly 44).
pub const OTA_STREAM_NAME_MAX: usize = 44;
/// clientToken, maximum length in bytes (AWS Jobs and GetStream `"c"`).
pub const CLIENT_TOKEN_MAX: usize = 64;
/// Thing-name characters kept in the OTA library's clientToken `<counter>:<thing>`.
pub const CLIENT_TOKEN_THING_CHARS: usize = 53;
/// Maximum raw JSON text of `afr_ota.protocols` (20-byte buffer including NUL).
pub const PROTOCOLS_TEXT_MAX: usize = 19;
/// Maximum decoded size of the file signature (`sig-…`), room for RSA-3072.
pub const SIGNATURE_MAX: usize = 384;
/// Maximum base64 text length of the file signature (`4 * ceil(SIGNATURE_MAX / 3)`).
pub const SIGNATURE_TEXT_MAX: usize = SIGNATURE_MAX.div_ceil(3) * 4;
/// Maximum length of a status update the official device writes (§4.4).
pub const STATUS_UPDATE_MAX: usize = 128;
/// Maximum nesting depth the JSON reader accepts (arrays and objects). Deeper input is refused
/// with a typed error rather than risking the stack on an MCU.
pub const JSON_DEPTH_MAX: usize = 16;

/// Smallest block size the stream service accepts (`"l"`).
pub const BLOCK_SIZE_MIN: u32 = 256;
/// Largest block size the stream service accepts (`"l"`), also the per-request byte cap.
pub const BLOCK_SIZE_MAX: u32 = 128 * 1024;
/// Maximum bytes of block data returned for one GetStream request.
pub const REQUEST_BYTES_MAX: u32 = 128 * 1024;
/// Largest file id (`"f"`) of a stream.
pub const FILE_ID_MAX: u32 = 255;
/// Largest block offset (`"o"`) of a GetStream request.
pub const BLOCK_OFFSET_MAX: u32 = 98_304;
/// Largest number of blocks (`"n"`) of a GetStream request.
pub const NUM_BLOCKS_MAX: u32 = 98_304;
/// The GetStream bitmap (`"b"`) must be strictly shorter than this many bytes.
pub const BITMAP_BYTES_LIMIT: usize = 12_288;
/// Bitmap bytes of the official device (`otaconfigMAX_BLOCK_BITMAP_SIZE`): 1024 blocks.
pub const OTA_BITMAP_BYTES: usize = 128;

/// A set of limits for names that appear in topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameLimits {
    /// Maximum thing name length.
    pub thing: usize,
    /// Maximum job id length.
    pub job_id: usize,
    /// Maximum stream name length.
    pub stream: usize,
}

impl NameLimits {
    /// What AWS IoT accepts, widened to the OTA device's job-id allowance (the union of what
    /// either side can legitimately see; the default of [`crate::topic::Topic::parse`]).
    pub const PERMISSIVE: NameLimits = NameLimits {
        thing: AWS_THING_NAME_MAX,
        job_id: OTA_JOB_ID_MAX,
        stream: AWS_STREAM_NAME_MAX,
    };
    /// What AWS IoT itself allows.
    pub const AWS: NameLimits = NameLimits {
        thing: AWS_THING_NAME_MAX,
        job_id: AWS_JOB_ID_MAX,
        stream: AWS_STREAM_NAME_MAX,
    };
    /// What the official OTA device (POSIX demo configuration) can hold.
    pub const OTA_DEVICE: NameLimits = NameLimits {
        thing: OTA_THING_NAME_MAX,
        job_id: OTA_JOB_ID_MAX,
        stream: OTA_STREAM_NAME_MAX,
    };
}

/// AWS Jobs `statusDetails` key, maximum length (AWS API reference, `JobExecutionState` /
/// `JobExecutionStatusDetails`: "Key Length Constraints: Minimum length of 1. Maximum length of
/// 128", pattern `[a-zA-Z0-9:_-]+`).
pub const STATUS_DETAILS_KEY_MAX: usize = 128;
/// AWS Jobs `statusDetails` value, maximum length in characters (AWS API reference,
/// `JobExecutionState`: "The maximum length of the value in the name/value pair is 1,024
/// characters"; minimum 1, pattern `[^\p{C}]+`).
pub const STATUS_DETAILS_VALUE_MAX: usize = 1024;
/// Maximum number of `statusDetails` entries. AWS documents no count; Ferrota's decision: 10,
/// five times what the official device ever sends (two: `self_test`/`updatedBy` or
/// `reason`/`updatedBy`, spec §4), so one execution's details stay a few KB.
pub const STATUS_DETAILS_ENTRIES_MAX: usize = 10;
/// Maximum size of a `statusDetails` map: the UTF-8 bytes of all its keys and values together.
/// AWS documents no total; Ferrota's decision: 4 KiB, so a stored execution (and each of its
/// history entries) stays small however a device fills the map within the per-value limit.
pub const STATUS_DETAILS_BYTES_MAX: usize = 4 * 1024;
/// Maximum size of one Jobs request payload (AWS IoT Core quota "Message size": 128 KB per
/// publish; AWS refuses larger messages before Jobs sees them). Larger requests are rejected
/// with `InvalidRequest` without being parsed further.
pub const JOBS_REQUEST_BYTES_MAX: usize = 128 * 1024;
