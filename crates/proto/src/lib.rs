//! # ferrota-proto: the AWS IoT OTA wire formats, both directions
//!
//! What the device agent and the self-hosted server exchange over MQTT, byte for byte as in
//! `shared/spec/aws-iot-ota.md` (cited as §n below). `#![no_std]`, no allocation: decoders
//! borrow from the message, encoders write into a caller buffer.
//!
//! ```text
//!            device (agent)                                   server
//!  ─────────────────────────────────────────────────────────────────────────────────────
//!  topic::Topic::next_get ─ {"clientToken":…}  ──────────▶ Topic::parse, JobsRequest::parse
//!  job::JobMessage::parse ◀── {"timestamp",…,"execution"} ─ job::JobMessageOut::encode
//!    └ JobExecution::document → OtaJob / custom
//!  stream::StreamRequest::encode ─ CBOR {c f l o b n} ───▶ StreamRequest::decode/validate/
//!    (bitmap::BlockSet::as_bytes / request_window)           blocks_to_send
//!  stream::DataBlock::decode ◀──── CBOR {c f l i p} ────── DataBlock::encode
//!  (stream::StreamRejection::decode ◀ {o m c} ──────────── StreamRejection::encode)
//!  status::OtaStatus::encode ─ {"status","statusDetails"} ▶ status::UpdateRequest::parse,
//!                                                            OtaStatus::from_request
//!  (jobs_api::JobsRejection::parse ◀ …/rejected ───────── jobs_api::JobsRejectionOut / …)
//! ```
//!
//! Modules: [`limits`] (every size limit, one place), [`topic`], [`json`] (the borrowed JSON
//! reader), [`job`], [`jobs_api`], [`status`], [`stream`], [`bitmap`], [`shadow`] (the
//! classic Device Shadow report the device publishes, and AWS's shadow limits).
//!
//! ## The `alloc` feature (the server's side)
//!
//! The server's replies are encoded here too, so both ends of the wire are written in one
//! crate: the JSON twins of the stream replies (`encode_json`), the DescribeStream reply
//! ([`stream::StreamDescriptionOut`]), `notify` and GetPendingJobExecutions' summaries
//! ([`jobs_api::JobExecutionsChangedOut`], [`jobs_api::PendingJobsOut`]). They write into a
//! caller buffer like every other encoder; `alloc` (implied by `std`) adds `to_vec` outputs and
//! `vec::encode` (a growing buffer) for a server that cannot know a message's size first, and
//! the JSON data block (it needs base64, an optional dependency). The default build stays
//! `no_std` and allocation-free.
//!
//! ## Decisions where the spec is silent or uncertain
//!
//! Topics and names
//! * Name characters: thing `[a-zA-Z0-9:_-]`, job id and stream `[a-zA-Z0-9_-]` (AWS rules).
//!   Empty names (`jobs//update`, `streams//data/cbor`, both produced by the official device in
//!   corner cases, §1.1, §4.9) are parse errors, so a server answers `InvalidTopic` or ignores
//!   them. `$next` is only a job id for DescribeJobExecution (`$next/get`).
//! * [`Topic::parse`] uses [`limits::NameLimits::PERMISSIVE`] (thing 128, job id 72, stream
//!   128); the agent can parse with [`limits::NameLimits::OTA_DEVICE`] (64/72/44).
//!
//! Job documents (§2)
//! * JSON is read by our own strict reader, not `serde-json-core`'s deserializer (reasons in
//!   [`json`]); escaped strings are kept as escaped slices ([`json::JsonStr`]) and unescaped
//!   with `serde-json-core`'s escaped-slice API. A `\u` surrogate escape is valid JSON but
//!   cannot be unescaped by that API: it is refused only when that string is unescaped.
//! * Duplicate keys: the first wins (coreJSON's search order). Nesting deeper than 16 levels is
//!   refused (bounded stack on the MCU).
//! * `jobId` and `streamname` must be plain (no escape sequences) and use AWS's characters,
//!   since the agent puts them into topics; limits 72 and 44 (§2.4).
//! * `filesize` and `fileid`: JSON integer or *decimal* digit string. `updatedBy`: JSON
//!   integer, or string with C `strtoul(…, 0)` rules (`0x…` hex, leading `0` octal, else
//!   decimal), no sign or whitespace, whole value consumed, must fit 32 bits.
//! * `fileid` must be 0–255 (the stream API's range, §3.4) — the C library takes any 32-bit
//!   value and lets the service fail the request; refusing it up front is kinder.
//! * `fileType`: the spec's key is `fileType` (number 0–255); `type` is not a key of §2.2 and is
//!   ignored like any unknown key. `attr` is a number.
//! * `protocols` must be an array of strings, raw text ≤ 19 bytes (§2.2); `"MQTT"`/`"HTTP"`
//!   are recognised, other strings ignored.
//! * Signature: the first key starting with `sig-` is reported ([`job::FileEntry::signature`]);
//!   [`job::FileEntry::signature_for`] looks up a specific key. Its text must be ≤ 512 chars
//!   (base64 of the 384-byte buffer). Base64/DER decoding is the agent's (via `ferrota-image`).
//! * All entries of `files` are validated; [`job::OtaJob::file`] is the first (the only one the
//!   official device uses) and [`job::OtaJob::files`] iterates all.
//! * A document without `afr_ota` is [`job::JobDocument::Custom`]; an `afr_ota` that breaks a
//!   rule is a typed [`job::JobError`] (the agent reports it against the job id it already has,
//!   as the official library does with `0x0000000c: 0x00000004`).
//! * Optional execution numbers (`queuedAt`, `versionNumber`, …) must be unsigned integers when
//!   present; `timestamp` and `clientToken` are read leniently (the device never uses them);
//!   an unknown `status` string reads as `None`.
//! * Encoders write compact JSON in the key order of the captured documents (§2.3):
//!   `timestamp, clientToken, execution{jobId, thingName?, status, statusDetails?, queuedAt,
//!   startedAt?, lastUpdatedAt, versionNumber, executionNumber, jobDocument}`; file keys
//!   `filepath, filesize, fileid, certfile, fileType, attr, update_data_url, auth_scheme, sig-…`
//!   (the spot of `fileType`/`attr` is ours).
//!
//! Status updates (§4.4)
//! * [`status::OtaStatus`] writes exactly the official strings; decoding recognises them only in
//!   their exact form (lowercase 8-digit hex, two spaces before `v`), everything else is a
//!   generic [`status::UpdateRequest`].
//! * [`jobs_api::client_token`] produces the intended `<counter>:<thing≤53>` form, not the
//!   current library's off-by-one (§1.5).
//!
//! Streams (§3)
//! * Decoders accept definite and indefinite maps, any key order, unknown keys skipped; they
//!   refuse duplicate keys, floats or negative integers, integers above 32 bits, non-text keys
//!   and bytes after the map. `"l"` must equal the payload length. A chunked (indefinite) payload
//!   byte string is refused: zero-copy needs one slice (AWS sends definite ones).
//! * Encoders write definite maps: request `c s f l o b n` (the place of `s` is ours; the
//!   official device never sends it), block `c f l i p`, rejection `o m c`.
//! * `"n"` = 0 or absent means "no count given": the server sends up to `131072 / l` blocks.
//! * The rejection decoder also takes the older `code`/`message`/`clientToken` keys.
//! * JSON stream topics are classified by [`topic`], but their payloads (base64 `p`, hex `b`)
//!   and DescribeStream are not encoded here: no device of ours uses them.
//!
//! Bitmap (§3.2)
//! * [`bitmap::BlockSet`] stores exactly the wire encoding (LSB first, set = still needed), so
//!   the official request is a slice of it and it can be persisted as is.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod bitmap;
pub mod job;
pub mod jobs_api;
pub mod json;
pub mod limits;
pub mod reason;
pub mod shadow;
pub mod status;
pub mod stream;
pub mod topic;
#[cfg(feature = "alloc")]
pub mod vec;
mod write;

pub use bitmap::{BlockSet, Window};
pub use job::{JobDocument, JobError, JobExecution, JobMessage, JobStatus, OtaJob};
pub use status::{AppVersion, OtaStatus, UpdateRequest};
pub use stream::{CborError, DataBlock, StreamRejection, StreamRequest};
pub use topic::{Topic, TopicError};
pub use write::BufferTooSmall;
