//! What the application configures, and what it tells the agent about the running image.

use core::time::Duration;

use ferrota_boot::Bank;
use ferrota_image::p256::ecdsa::VerifyingKey;
use ferrota_image::{BootVerifier, HardwareId, VersionRecord};
use ferrota_proto::limits::{BLOCK_SIZE_MAX, BLOCK_SIZE_MIN, OTA_THING_NAME_MAX};

/// The file type Ferrota's server (and the seed system) gives firmware: the bank image.
pub const FIRMWARE_FILE_TYPE: u8 = 141;
/// Most request slots (requests in flight) the agent tracks: 40 × 128 KB = 5 MB, the
/// bandwidth-delay product of 100 Mbit/s Ethernet (11.77 MB/s of TCP payload) at 425 ms, so
/// the adaptive window (the bandwidth-delay product plus two requests, `crate::download`)
/// has no cap below it up to about 400 ms. Each slot costs 72 bytes of RAM (2,880 bytes in
/// all, on a 64-bit host; the agent's size is stated in `docs/PERFORMANCE.md`).
pub const MAX_REQUESTS: usize = 40;
/// Most blocks in flight at once (requested, not yet received nor given up), whatever the
/// block size: 1,280 blocks, 5 MB at 4 KB. What bounds it is the service: Ferrota's server
/// queues a request's blocks for the device at once, and a device that lets more than
/// 2,048 messages (or 8 MB) wait in its queue is disconnected as a slow consumer
/// (`ferrota_server::broker::Limits`), so the largest window, sent at once before anything is
/// measured, must fit that queue with room for Jobs replies. At 1 KB blocks it is 1.25 MB.
pub const MAX_WINDOW_BLOCKS: u32 = 1280;
/// Bytes of bitmap one request carries: a request spans at most `8 × 32 = 256` blocks.
pub const REQUEST_BITMAP_BYTES: usize = 32;

/// The agent's configuration. [`Config::new`] gives the defaults; adjust fields, then
/// [`crate::Agent::new`] checks them ([`ConfigError`]).
#[derive(Debug, Clone)]
pub struct Config<'a, V> {
    /// The thing name (the MQTT client id), AWS characters, at most 64.
    pub thing_name: &'a str,
    /// The boot key (the SFlash public key): verifies the CM0+ region and its version record
    /// before the rest of the image is fetched.
    pub boot_key: &'a V,
    /// The pinned code-signing public key (extracted from the certificate on the host; no X.509
    /// on the device).
    pub code_signing_key: VerifyingKey,
    /// The job-document key of the file signature (`sig-sha256-ecdsa`).
    pub signature_key: &'a str,
    /// File types that are firmware (a bank image); default `[141]`. A job for any other type
    /// (or without `fileType`, which reads as 0) is offered to the application.
    pub firmware_file_types: &'a [u8],
    /// This board's hardware id; an image for another board is refused before the download.
    /// `None` accepts any (as does an image with an empty id).
    pub hardware: Option<HardwareId>,
    /// Block size in bytes: a power of two, 256 B to 128 KB (AWS's range); default 4 KB.
    pub block_size: u32,
    /// Blocks asked for in one request (its `"n"`); default 32, capped at 128 KB of payload and
    /// 256 blocks.
    pub blocks_per_request: u32,
    /// Most requests in flight at once (the window is this × `blocks_per_request`, at most
    /// [`MAX_WINDOW_BLOCKS`]); 1 to [`MAX_REQUESTS`], default 40: 5 MB, the bandwidth-delay
    /// product of 100 Mbit/s Ethernet at 425 ms. Until the link is measured the agent uses
    /// all of them (the first window is sent before any answer, and at 400 ms a 4 MB image
    /// must be asked for at once to keep the link full); then the bandwidth-delay product
    /// plus two requests (a slot is only refilled when its last block arrives): 3 at 2 ms,
    /// 7 at 50 ms, 20 at 200 ms and 37 at 400 ms on 100 Mbit/s; more would only queue (see
    /// [`crate::download`]). At a fixed 16 (2 MB) the link idled at 200 ms (69% of it):
    /// `ferrota bench link`.
    pub requests_in_flight: usize,
    /// Blocks beyond the CM0+ region that may be asked for before the region's version check
    /// passes; default [`MAX_WINDOW_BLOCKS`] (1,280: the first window is never held below
    /// the largest the agent uses). Waiting for the check idles the link for the check's
    /// round trip less what the lookahead covers: with 256 blocks (1 MB, the default before
    /// issue #23) the link idled about 0.1 s at 200 ms and 0.3 s at 400 ms RTT, and a lost
    /// block of the region idled it a round trip at 50 ms too. The check itself still waits
    /// for the region only and runs as soon as it is in, so a refused image is refused as
    /// early as before and only the blocks that arrived before the check are written to
    /// flash; what the lookahead costs is the rest of the first window on the link, sent and
    /// discarded (up to 5 MB: about the image; the official library fetches the whole file
    /// before any check). 0: strict, the region alone.
    pub precheck_lookahead: u32,
    /// Ask again at once for a block that later blocks of the same request overtook (the
    /// service sends a request's blocks in order, so it was lost), instead of waiting for the
    /// request's timeout; default on. Off reproduces the official library's schedule.
    pub gap_retransmit: bool,
    /// Take a packed full image or a delta from the running bank when the job document offers
    /// one (`"encoding":"frpk1"` entries after `files[0]`; see [`crate::FileEncoding`]);
    /// default on. Off: always the bank image, as AWS's own device.
    pub packed: bool,
    /// Retransmission timeout before the first round-trip sample; default 1 s.
    pub initial_rto: Duration,
    /// Lower bound of the retransmission timeout; default 100 ms: above TCP's delayed ACK
    /// (40 ms on Linux), which an MQTT request occasionally waits for even on loopback, and
    /// still a fraction of the official library's fixed 10 s (RFC 6298's 1 s floor would make
    /// every lost block cost a second). Also how long a request with no answer yet may lag
    /// behind the answers of later ones before it counts as lost ([`crate::download`]).
    pub min_rto: Duration,
    /// Upper bound of the retransmission timeout (also after back-off); default 10 s, the
    /// official library's fixed wait.
    pub max_rto: Duration,
    /// Request timeouts in a row without a new block before the job fails
    /// (`aborted: 0x0000000e`); default 32, as the official library.
    pub momentum_limit: u32,
    /// Progress status (`receive: n/N`, QoS 0) every this many blocks; default 64.
    pub progress_every: u32,
    /// After booting an image under trial: how long to wait for the self-test job document
    /// before asking for a reset; default 16 s, as the official library.
    pub self_test_wait: Duration,
    /// How long the application's self-test may take before it counts as failed; default 60 s.
    pub self_test_deadline: Duration,
    /// Boots the trial image gets before the boot manager reverts it; default 3.
    pub trial_budget: u8,
    /// Signed update metadata (issue #20): whether a firmware job needs a signed timestamp and
    /// a SUIT manifest, the trust anchor, and the freshness and slow-retrieval parameters.
    /// Default [`TrustPolicy::AwsPlain`]: the AWS behaviour, unchanged.
    pub trust: TrustConfig<'a>,
}

/// Whether a firmware job must carry signed update metadata (design D-9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrustPolicy {
    /// Real AWS IoT (the default): a job is accepted on the pinned code-signing key alone, and
    /// the agent says so ([`crate::AgentEvent::PlainSignatureAccepted`], `"plain":n` in the
    /// shadow report). A metadata file (fileType 142) or a timestamp that *is* present is
    /// verified and enforced all the same.
    #[default]
    AwsPlain,
    /// Ferrota's server: every firmware job needs a fresh signed timestamp and a manifest signed
    /// by a release key of the trusted root; the checks run before any image block is asked for.
    Require,
}

/// The agent's signed-metadata settings ([`Config::trust`], design §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustConfig<'a> {
    /// [`TrustPolicy::AwsPlain`] (default) or [`TrustPolicy::Require`].
    pub policy: TrustPolicy,
    /// Root v1 as the firmware carries it (a COSE_Sign root document): trusted while the trust
    /// store is blank. Required by `Require` ([`ConfigError::TrustAnchor`]); without one in
    /// `AwsPlain` a metadata file cannot be verified and is refused (sub 3).
    pub anchor: Option<&'a [u8]>,
    /// Slowest accepted download, bytes per second of the signed image size; default 1024
    /// (slow-retrieval attack: `0x0000000e: 0x00000001` past the deadline).
    pub min_rate: u32,
    /// Time added to the slow-retrieval deadline; default 60 s.
    pub rate_grace: Duration,
    /// How often an idle agent asks for the next job (which refreshes the timestamp); default
    /// 15 min.
    pub poll_interval: Duration,
    /// How often the device's time estimate is persisted: an accepted timestamp newer than the
    /// last checkpoint by this much is written, and, once a timestamp was accepted, the estimate
    /// (that timestamp + uptime) is written every this much uptime, so that a reset does not
    /// turn the device's clock back to its last timestamp (design D-8). Default 15 min; 0 =
    /// every accepted timestamp is written and there is no uptime checkpoint (then a reset
    /// falls back to the newest timestamp's time).
    pub time_checkpoint: Duration,
}

impl Default for TrustConfig<'_> {
    fn default() -> Self {
        TrustConfig {
            policy: TrustPolicy::AwsPlain,
            anchor: None,
            min_rate: 1024,
            rate_grace: Duration::from_secs(60),
            poll_interval: Duration::from_secs(15 * 60),
            time_checkpoint: Duration::from_secs(15 * 60),
        }
    }
}

impl<'a, V: BootVerifier> Config<'a, V> {
    /// The defaults for a thing, its boot key and its code-signing key.
    pub fn new(thing_name: &'a str, boot_key: &'a V, code_signing_key: VerifyingKey) -> Self {
        Config {
            thing_name,
            boot_key,
            code_signing_key,
            signature_key: ferrota_image::ota::SIGNATURE_KEY,
            firmware_file_types: &[FIRMWARE_FILE_TYPE],
            hardware: None,
            block_size: 4096,
            blocks_per_request: 32,
            requests_in_flight: MAX_REQUESTS,
            precheck_lookahead: MAX_WINDOW_BLOCKS,
            gap_retransmit: true,
            packed: true,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(100),
            max_rto: Duration::from_secs(10),
            momentum_limit: 32,
            progress_every: 64,
            self_test_wait: Duration::from_secs(16),
            self_test_deadline: Duration::from_secs(60),
            trial_budget: ferrota_boot::log::DEFAULT_BUDGET,
            trust: TrustConfig::default(),
        }
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        ferrota_proto::topic::validate_name(
            self.thing_name,
            ferrota_proto::topic::NameKind::Thing,
            &ferrota_proto::limits::NameLimits::OTA_DEVICE,
        )
        .map_err(|_| ConfigError::ThingName)?;
        debug_assert!(self.thing_name.len() <= OTA_THING_NAME_MAX);
        if !(BLOCK_SIZE_MIN..=BLOCK_SIZE_MAX).contains(&self.block_size)
            || !self.block_size.is_power_of_two()
        {
            return Err(ConfigError::BlockSize);
        }
        if self.blocks_per_request == 0 {
            return Err(ConfigError::BlocksPerRequest);
        }
        if self.requests_in_flight == 0 || self.requests_in_flight > MAX_REQUESTS {
            return Err(ConfigError::RequestsInFlight);
        }
        if self.trial_budget == 0 {
            return Err(ConfigError::TrialBudget);
        }
        if self.min_rto > self.max_rto || self.min_rto.is_zero() {
            return Err(ConfigError::Timeouts);
        }
        if self.trust.policy == TrustPolicy::Require {
            if self.trust.anchor.is_none() {
                return Err(ConfigError::TrustAnchor);
            }
            if self.hardware.is_none_or(|h| h.as_str().is_empty()) {
                return Err(ConfigError::TrustHardware);
            }
        }
        if self.trust.min_rate == 0 {
            return Err(ConfigError::TrustRate);
        }
        Ok(())
    }

    /// Blocks per request after the caps (128 KB of payload, the bitmap span).
    pub fn effective_blocks_per_request(&self) -> u32 {
        let by_bytes = (ferrota_proto::limits::REQUEST_BYTES_MAX / self.block_size).max(1);
        self.blocks_per_request
            .min(by_bytes)
            .min((REQUEST_BITMAP_BYTES * 8) as u32)
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The thing name is empty, too long or uses characters AWS does not allow.
    ThingName,
    /// The block size is not a power of two from 256 B to 128 KB.
    BlockSize,
    /// Zero blocks per request.
    BlocksPerRequest,
    /// Requests in flight not in 1..=[`MAX_REQUESTS`].
    RequestsInFlight,
    /// A trial budget of 0.
    TrialBudget,
    /// `min_rto` is zero or above `max_rto`.
    Timeouts,
    /// [`TrustPolicy::Require`] without [`TrustConfig::anchor`], or an anchor that is not a
    /// valid self-signed root document.
    TrustAnchor,
    /// [`TrustPolicy::Require`] without a (non-empty) [`Config::hardware`]: the manifest's class
    /// id is compared with it.
    TrustHardware,
    /// [`TrustConfig::min_rate`] of 0.
    TrustRate,
}

/// What the application knows about the image it runs: the bank (from FLASH_CTL.MAIN_MAP) and
/// the version record of the active bank (which the boot manager verified).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running {
    /// The bank the application runs from.
    pub bank: Bank,
    /// Its version record.
    pub record: VersionRecord,
}
