//! What the agent asks of its caller: MQTT operations ([`Transmit`]) and application events
//! ([`AgentEvent`]).

use ferrota_image::FirmwareVersion;
use ferrota_proto::status::OtaStatus;
use ferrota_proto::stream::StreamErrorCode;

use crate::platform::FlashFault;
use crate::time::Instant;

/// Longest topic the agent produces (`$aws/things/<64>/streams/<44>/data/cbor` is 88 bytes).
pub const TOPIC_MAX: usize = 160;
/// A buffer of this many bytes holds every payload the agent writes (status updates are at most
/// 128 bytes, stream requests at most about 70, the Device Shadow report at most
/// [`ferrota_proto::shadow::REPORTED_BYTES_MAX`]).
pub const TRANSMIT_BUF_MIN: usize = ferrota_proto::shadow::REPORTED_BYTES_MAX;

/// A topic to subscribe, unsubscribe or publish.
pub type TopicBuf = heapless::String<TOPIC_MAX>;

/// What to do with a [`Transmit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransmitKind {
    /// SUBSCRIBE to the topic (filter) at the QoS.
    Subscribe,
    /// UNSUBSCRIBE from the topic.
    Unsubscribe,
    /// PUBLISH the payload (the first `len` bytes of the caller's buffer) at the QoS.
    Publish {
        /// Payload bytes written into the buffer.
        len: usize,
    },
}

/// One MQTT operation for the caller to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Subscribe, unsubscribe or publish.
    pub kind: TransmitKind,
    /// The topic.
    pub topic: TopicBuf,
    /// MQTT QoS (0 or 1).
    pub qos: u8,
}

/// Something the application must know or do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentEvent {
    /// A job for a file type that is not firmware: the application handles it (or declines)
    /// and calls [`crate::Agent::finish_app_job`]. It is never dropped silently (seed
    /// weakness #7). The job id is [`crate::Agent::job_id`].
    OtherFileJob {
        /// `fileType` (0 when absent).
        file_type: u8,
        /// `filesize`.
        file_size: u32,
        /// `fileid`.
        file_id: u8,
    },
    /// A job that is not an `afr_ota` document: the application handles it (or declines) and
    /// calls [`crate::Agent::finish_app_job`].
    CustomJob,
    /// Which file of the job the agent downloads: the bank image (`files[0]`), a packed full
    /// image or a delta from the running bank, and its size.
    FileChosen {
        /// The encoding.
        encoding: crate::FileEncoding,
        /// Bytes of the file that will cross the link (at most; less after a resume).
        file_bytes: u32,
    },
    /// A firmware download started (or resumed: `resumed` blocks were already in flash). For a
    /// packed file it comes once its header (block 0) is in, when the blocks kept are known.
    DownloadStarted {
        /// Blocks of the file.
        blocks: u32,
        /// Blocks kept from before a reset.
        resumed: u32,
    },
    /// The CM0+ region's version record passed the checks; the rest of the image follows.
    VersionAccepted {
        /// The version of the image being downloaded.
        version: FirmwareVersion,
    },
    /// The job ended FAILED (refused before or during the download, or after the reboot).
    JobFailed {
        /// The status published.
        status: OtaStatus,
    },
    /// The job ended SUCCEEDED.
    JobSucceeded,
    /// The job went away (the server sent "nothing pending" or another job): the download was
    /// abandoned without a status, as the official agent does.
    JobCancelled,
    /// The image was verified and activated (TRIAL written); `self_test: ready` is queued.
    Activated,
    /// Reset the device once the queued publishes are out (after activation, after a rejected
    /// self-test, or when the self-test job did not arrive in time).
    ResetRequested,
    /// Run the application self-test and call [`crate::Agent::self_test_result`] before
    /// `deadline` (afterwards it counts as failed).
    StartSelfTest {
        /// When the self-test times out.
        deadline: Instant,
    },
    /// The running image was confirmed; `floor` is the new anti-rollback floor (the
    /// application may raise the eFuse counter to it).
    Confirmed {
        /// The new floor.
        floor: u32,
    },
    /// The running trial image was rejected: the next boot runs the previous bank.
    Rejected,
    /// The service refused a stream request (`…/streams/<s>/rejected/cbor`).
    StreamRejected {
        /// AWS's error code, when recognised.
        code: Option<StreamErrorCode>,
    },
    /// A flash operation failed (the download stopped; on the simulator: a power cut).
    FlashFault(FlashFault),
    /// A signed timestamp (`ferrotaTimestamp` of a Jobs message) verified and was fresh.
    TimestampAccepted {
        /// Its server time, Unix seconds.
        time: u64,
    },
    /// A job's manifest passed every check (before any image block was asked for).
    ManifestAccepted {
        /// Its sequence number.
        sequence: u32,
        /// The firmware version it names.
        version: FirmwareVersion,
    },
    /// The trusted root moved to a newer version (walked from the manifest's root documents).
    RootUpdated {
        /// The new root version.
        version: u32,
    },
    /// The last accepted timestamp expired with no fresh one since (a freeze, or the server is
    /// unreachable): firmware jobs are refused until a fresh one arrives.
    FreshnessLost {
        /// When it expired, Unix seconds (the timestamp's `expires`).
        expired_at: u64,
    },
    /// An image was activated on the AWS code-signing signature alone, with no signed manifest
    /// ([`crate::TrustPolicy::AwsPlain`]).
    PlainSignatureAccepted,
    /// The trusted root revokes these boot-key slots (bit n = slot n): the board blows the
    /// missing eFuse bits after its own check (`boot_chain::revoke::apply` on the simulator).
    /// Emitted after a confirm and at every start while the mask is non-zero (idempotent).
    RevokeBootKeys {
        /// The root's cumulative revoked-slot mask.
        mask: u8,
    },
}

/// Counters, for tests, benchmarks and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Stream requests sent.
    pub requests: u32,
    /// Blocks written.
    pub blocks_accepted: u32,
    /// Blocks that were already held.
    pub duplicates: u32,
    /// Data messages for another stream or file, or outside the file.
    pub ignored: u32,
    /// Data messages that do not decode or have the wrong length.
    pub malformed: u32,
    /// Requests that timed out.
    pub timeouts: u32,
    /// Blocks found lost before a timeout (overtaken by later blocks, or the answer of the
    /// newest request paused: see [`crate::download`]) and asked for again at once.
    pub gaps: u32,
    /// Chunk marks that could not be written (the chunk is refetched after a reset).
    pub mark_failures: u32,
    /// Transmits dropped because the output queue or the caller's buffer was too small.
    pub dropped_transmits: u32,
    /// Delta entries of a job document whose base is not the image in the active bank (the
    /// agent took another encoding).
    pub delta_base_mismatch: u32,
    /// Packed files refused: a header that disagrees with the job document, a frame that does
    /// not decode.
    pub packed_errors: u32,
    /// Blocks that arrived after they had been found lost (or timed out): late, not lost (the
    /// service answered out of order, or the link delivered in bursts). Each raised the
    /// download's reordering tolerance ([`crate::download`]); its copy asked for again
    /// arrives as a duplicate.
    pub late: u32,
}

impl Stats {
    /// The counters of two agent lifetimes added (saturating): a download spans resets and
    /// power cuts, each of which starts a new agent with zeroed counters.
    #[must_use]
    pub fn merged(self, o: Stats) -> Stats {
        Stats {
            requests: self.requests.saturating_add(o.requests),
            blocks_accepted: self.blocks_accepted.saturating_add(o.blocks_accepted),
            duplicates: self.duplicates.saturating_add(o.duplicates),
            ignored: self.ignored.saturating_add(o.ignored),
            malformed: self.malformed.saturating_add(o.malformed),
            timeouts: self.timeouts.saturating_add(o.timeouts),
            gaps: self.gaps.saturating_add(o.gaps),
            mark_failures: self.mark_failures.saturating_add(o.mark_failures),
            dropped_transmits: self.dropped_transmits.saturating_add(o.dropped_transmits),
            delta_base_mismatch: self
                .delta_base_mismatch
                .saturating_add(o.delta_base_mismatch),
            packed_errors: self.packed_errors.saturating_add(o.packed_errors),
            late: self.late.saturating_add(o.late),
        }
    }
}
