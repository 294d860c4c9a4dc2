//! # ferrota-agent: the OTA agent, sans-IO
//!
//! The device side of the seed system's OTA (the AWS OTA library and its T2G port on the CM7_0
//! core) as a `no_std` state machine with no allocation, no clock and no I/O of its own: it runs
//! unchanged on the MCU, in the simulator and against real AWS IoT. Wire formats are
//! `ferrota-proto`'s (`shared/spec/aws-iot-ota.md`, cited as §n); images are checked with
//! `ferrota-image`; activation, confirmation and rejection go through `ferrota-boot`'s app API.
//!
//! ```text
//!            MQTT client (runtime)                     ┌──────────────── Agent ───────────────┐
//!  connected / disconnected ─ handle_connected ──────▶ │ jobs: $next/get, notify-next,        │
//!  message(topic, payload)  ─ handle_message(now) ───▶ │   self-test handshake                │
//!  timer fired              ─ handle_timeout(now) ───▶ │ download: window, RTT, momentum      │
//!  app self-test result     ─ self_test_result(now) ─▶ │ resume record, precheck, verify      │
//!                           ◀─ poll_transmit(buf) ──── │   (subscribe / unsubscribe / publish) │
//!                           ◀─ poll_timeout() ──────── │   (one deadline: timer table)         │
//!  application              ◀─ poll_event() ────────── │   (self-test, reset, other files, …)  │
//!                                                      └──────┬────────────┬───────────┬──────┘
//!                                         Platform (lent per call): inactive bank   resume area   marker log
//!                                                                (NorFlash)        (work flash)  (ferrota-boot)
//! ```
//!
//! ## Signed update metadata (issue #20)
//! With [`TrustPolicy::Require`] (Ferrota's server) every Jobs message carries a signed
//! timestamp (`ferrotaTimestamp`) and every firmware job a SUIT manifest (fileType 142) signed by
//! a release key of the trusted root (`ferrota-manifest`). The agent fetches the manifest's one
//! block first ([`State::FetchingManifest`]) and checks it, before the bank is locked or any
//! image block asked for: root chain, signature, timestamp freshness and binding, class and
//! device id, expiry, sequence, size, version and counter. The CM0+ region is compared with it at
//! the precheck, the written bank is bound to it before activation ([`Trust`]), and the
//! download has a slow-retrieval deadline. [`TrustPolicy::AwsPlain`] (the default, real AWS)
//! accepts the pinned code-signing signature alone and says so
//! ([`AgentEvent::PlainSignatureAccepted`], `"trust":{"plain":n}` in the shadow report); a
//! manifest or timestamp that is present is enforced all the same. Not done: the idle poll
//! (`TrustConfig::poll_interval` is accepted but no `Timer::Poll` runs yet).
//!
//! ## Call order (STYLE §1)
//! After every `handle_*` call: drain [`Agent::poll_transmit`] until `None` (carry each
//! operation out, in order), then [`Agent::poll_event`] until `None`, then re-arm one timer at
//! [`Agent::poll_timeout`]. A spurious [`Agent::handle_timeout`] does nothing. Time is always an
//! argument ([`Instant`], microseconds from any epoch); the agent never reads a clock.
//! On [`AgentEvent::ResetRequested`] the runtime resets once the queued QoS 1 publishes are out.
//!
//! ## Decision: MQTT as events/actions, flash performed by the agent
//! MQTT stays sans-IO (events in, [`Transmit`] out). Flash is not turned into actions: the agent
//! is generic over the `embedded-storage` `NorFlash` of the inactive bank, of a work-flash resume
//! area and of the boot manager's marker log, lent through [`Platform`] on each call and never
//! kept. The T2G HAL programs and erases synchronously (one call, one finished operation), and
//! `ferrota-boot`'s app API and `ferrota-image`'s flash verifier are already generic over
//! `NorFlash`; a "write done" event round trip would add states without adding testability —
//! the t2g model injects power cuts at any operation through the same trait. The longest call is
//! the one that receives the last block: it hashes the file from flash (4 MB) and checks two
//! signatures.
//!
//! ## What happens to a job
//! 1. **Check before downloading** (no flash written): `protocols` must list MQTT and a stream
//!    must be named (else `aborted: 0x0000000d`); a `fileType` outside
//!    [`Config::firmware_file_types`] (default `[141]`; absent reads as 0) goes to the
//!    application as [`AgentEvent::OtherFileJob`] and waits for [`Agent::finish_app_job`] —
//!    never silently dropped (seed weakness #7); a non-`afr_ota` document is
//!    [`AgentEvent::CustomJob`]; the signature under `sig-sha256-ecdsa` must be present and a
//!    DER ECDSA signature (else `0x000000e3: 0x00000000`); the file must hold a CM0+ region and
//!    fit the bank (else `0x000000e5: 0x0000000{1,0}`).
//! 2. **CM0+ region first**: the first 64 KB are requested first and verified *from flash*
//!    with the boot key ([`ferrota_image::verify::verify_boot_in_flash`]) as soon as they are
//!    in; its version record must be newer than the running firmware (`rejected: 0x00000010`
//!    same, `0x0000000f` older), at or above the marker log's anti-rollback floor
//!    (`0x0000000f`), and for this board (`0x00000003`); a bad boot signature is
//!    `0x000000e3: 0x00000001`. Requests run ahead of the check by at most
//!    [`Config::precheck_lookahead`] blocks (default 1 MB) so the link does not idle for the
//!    check's round trip; a refused image is refused after its region, and what is in flight
//!    is discarded. A downgrade costs the region plus at most the lookahead, not 4 MB
//!    (16 blocks with a lookahead of 0).
//! 3. **Download**: [`download`] (a sliding window sized to the measured bandwidth-delay
//!    product; a lost block found as soon as later blocks overtake it, else after a timeout
//!    from the measured round trip; only missing blocks asked again; duplicates / reordering /
//!    other files and streams ignored; momentum limit → `aborted: 0x0000000e`). Progress
//!    `receive: n/N` at QoS 0.
//! 4. **Resume**: [`resume`] (one work-flash word per 32 KB chunk; after a reset only
//!    unfinished chunks are fetched — seed weakness #5).
//! 5. **Verify and activate**: SHA-256 of the bank as read back, ECDSA P-256 with the pinned
//!    code-signing key ([`Config::code_signing_key`]; `0x000000e3: 0x00000000` on mismatch),
//!    the CM0+ check again, both in one `ferrota_image::verify::verify_written_bank`, whose
//!    `BankVerified` proof `ferrota_boot::app::request_activation` (TRIAL) requires; then
//!    `self_test: ready` with the running version; [`AgentEvent::ResetRequested`].
//! 6. **After the reboot** (image state PendingCommit): wait [`Config::self_test_wait`] for the
//!    job; running version must be newer than `updatedBy` (else reject → revert, 16/15); publish
//!    `self_test: active`, [`AgentEvent::StartSelfTest`] with a deadline; pass → the running
//!    bank's CM0+ region verified ([`Platform::active_bank`]; its `VerifiedBoot` is what
//!    `ferrota_boot::app::confirm` requires, and its record must be [`Running`]'s, else the
//!    commit failure `0x000000eb`) and `SUCCEEDED` `accepted  vX.Y.Z` / `updatedBy  vA.B.C`;
//!    fail or deadline → `ferrota_boot::app::reject` (the previous bank boots next — seed
//!    weakness #2) and `rejected: 0x00000000`. All strings are `ferrota_proto::OtaStatus`'s, so
//!    AWS's console shows what it shows for the official library.
//!
//! ## Fewer bytes: packed files and deltas
//! A job document may offer, after `files[0]`, the same image as a packed file
//! (`"encoding":"frpk1"`, format `ferrota-delta`): sparse and compressed, or a delta from the
//! image the device runs. The agent takes a delta whose base hash is its active bank's (hashed
//! before anything is written), else the packed full image, else the bank image; the frames
//! rebuild the image in the inactive bank, which then passes exactly the checks of step 5. A
//! packed file that does not rebuild it is `0x000000e3: 0x00000002`. See [`FileEncoding`].
//!
//! ## Reporting to the Device Shadow
//! On every connection and after every job ends (SUCCEEDED, FAILED, a rejected trial), the agent
//! publishes (QoS 1) its state to its classic Device Shadow, `$aws/things/<thing>/shadow/update`:
//! `{"state":{"reported":{"firmware":{"version","bank","pendingTrial","antiRollbackFloor"},
//! "hardwareId"}},"clientToken"}` (`ferrota_proto::shadow::ReportedOut`; the names of
//! `ferrota-api`'s `ReportedState`), from what it already knows: [`Running`] (version, bank, the
//! image's hardware id unless [`Config::hardware`] names the board), the boot report's image
//! state (on trial while PendingCommit) and the marker log's floor (raised by a confirm). It
//! subscribes to nothing for it: the server's inventory reads the report; the shadow's replies
//! are not needed. The report is encoded when polled, so it says what holds then.
//!
//! ## Where this agent differs from the official library (on purpose)
//! * A late duplicate of the final block, or any block when no download runs, is ignored
//!   (§4.9 hazard 1); undecodable data, stream rejections and blocks of other files or streams
//!   are counted and ignored instead of failing the job (hazard 2) — except `ResourceNotFound`
//!   and `Unauthorized` for the job's own stream, which asking again cannot cure: the job fails
//!   at once with `0x00000008: 0x00000000` (RequestFileBlockFailed).
//! * A job document for the job being downloaded (notify-next after a status update, a
//!   reconnect) continues the download instead of restarting it (hazard 3); another job id or
//!   "nothing pending" abandons it without a status, as the official agent does.
//! * A job document that breaks the `afr_ota` rules is reported `0x0000000c: 0x0000000{3,4}`
//!   even when no job was active (the official agent stays silent and the job stays pending).
//! * Resets are survived: if the `self_test: ready` report was lost (reset between activation
//!   and the publish), or the reset came during the self-test (`self_test: active` now carries
//!   the *new* version), the resume record's "activating" word supplies the version that did
//!   the download; a reset between confirm and the `SUCCEEDED` report is reported `SUCCEEDED`
//!   from the marker log's CONFIRMED record. The official agent reports FAILED in these cases.
//! * Momentum abort is `aborted: 0x0000000e` (MomentumAbort) rather than `0x00000000`.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod agent;
pub mod config;
pub mod download;
pub mod output;
pub mod platform;
pub mod resume;
pub mod time;

pub use agent::{
    Agent, AppOutcome, FileEncoding, PACKED_CHUNK, PACKED_ENCODING, PlainAccepted,
    SUB_BOOT_SIGNATURE, SUB_PACKED_CORRUPT, SUB_TOO_SMALL, StartError, State, Trust,
};
pub use config::{Config, ConfigError, FIRMWARE_FILE_TYPE, Running, TrustConfig, TrustPolicy};
pub use output::{AgentEvent, Stats, TRANSMIT_BUF_MIN, TopicBuf, Transmit, TransmitKind};
pub use platform::{
    FlashFault, FlashOp, Platform, RESUME_AREA, RESUME_AREA_LEN, TRUST_AREA, TRUST_AREA_LEN,
};
pub use time::Instant;

/// Re-exported: the kind inside a [`FlashFault`], so a [`Platform`] needs no direct
/// `embedded-storage` dependency to report one.
pub use embedded_storage::nor_flash::NorFlashErrorKind;
