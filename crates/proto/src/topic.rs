//! MQTT topics of AWS IoT Jobs and MQTT-based file delivery (spec §1).
//!
//! ```text
//! $aws/things/<thing>/jobs/notify | notify-next
//! $aws/things/<thing>/jobs/get[/accepted|/rejected]
//! $aws/things/<thing>/jobs/start-next[/accepted|/rejected]
//! $aws/things/<thing>/jobs/<jobId|$next>/get[/accepted|/rejected]
//! $aws/things/<thing>/jobs/<jobId>/update[/accepted|/rejected]
//! $aws/things/<thing>/streams/<stream>/get|data|rejected|describe|description/cbor|json
//! $aws/things/<thing>/shadow/update[/accepted|/rejected|/delta|/documents]
//! $aws/things/<thing>/shadow/get|delete[/accepted|/rejected]
//! ```
//!
//! Shadow topics are the classic (unnamed) Device Shadow's ([`ShadowOp`], [`ShadowReply`]).
//! Decision: a named shadow (`…/shadow/name/<name>/…`) is refused with
//! [`TopicError::NamedShadow`]: Ferrota keeps one shadow per thing (the device's reported
//! firmware state), and a parse error is what a server needs to answer it as unsupported
//! rather than silently routing it to subscribers.
//!
//! [`Topic::parse`] classifies an incoming topic and validates every name; [`Topic::write`]
//! (and [`core::fmt::Display`]) builds one. Names are borrowed from the topic.
//!
//! Name rules: thing names `[a-zA-Z0-9:_-]`, job ids and stream names `[a-zA-Z0-9_-]` (AWS's
//! rules), non-empty, lengths per [`NameLimits`]. `$next` is accepted only where AWS accepts it
//! (DescribeJobExecution). A topic with an empty name (`jobs//update`, which the official device
//! publishes in the §4.9 hazard, or `streams//data/cbor`, which it unsubscribes) is refused with
//! [`TopicError::EmptyName`]; AWS answers such requests with `InvalidTopic`.

use core::fmt;

use crate::limits::NameLimits;
use crate::write::{BufferTooSmall, SliceWriter};

/// The reserved prefix of every thing topic.
pub const THINGS_PREFIX: &str = "$aws/things/";
/// The job id that selects the next pending execution.
pub const NEXT_JOB: &str = "$next";

/// A classified topic under `$aws/things/<thing>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic<'a> {
    /// The thing name.
    pub thing: &'a str,
    /// What the topic is for.
    pub kind: TopicKind<'a>,
}

/// Jobs or streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind<'a> {
    /// `…/jobs/…`
    Jobs(JobsTopic<'a>),
    /// `…/streams/<stream>/<op>/<encoding>`
    Stream {
        /// The stream name (`afr_ota.streamname`).
        stream: &'a str,
        /// The operation.
        op: StreamOp,
        /// CBOR or JSON.
        encoding: Encoding,
    },
    /// `…/shadow/<op>[/<reply>]` (the classic, unnamed Device Shadow).
    Shadow {
        /// update, get or delete.
        op: ShadowOp,
        /// The request or one of its replies.
        reply: ShadowReply,
    },
}

/// The classic Device Shadow's operations (AWS's UpdateThingShadow, GetThingShadow,
/// DeleteThingShadow over MQTT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowOp {
    /// `shadow/update`
    Update,
    /// `shadow/get`
    Get,
    /// `shadow/delete`
    Delete,
}

impl ShadowOp {
    /// The topic segment.
    pub fn as_str(self) -> &'static str {
        match self {
            ShadowOp::Update => "update",
            ShadowOp::Get => "get",
            ShadowOp::Delete => "delete",
        }
    }
}

/// A shadow request or one of the service's messages about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowReply {
    /// The request (no suffix).
    Request,
    /// `…/accepted`
    Accepted,
    /// `…/rejected`
    Rejected,
    /// `update/delta`: desired differs from reported (update only).
    Delta,
    /// `update/documents`: the previous and current documents after an update (update only).
    Documents,
}

impl ShadowReply {
    /// The topic suffix (`""` for the request).
    pub fn suffix(self) -> &'static str {
        match self {
            ShadowReply::Request => "",
            ShadowReply::Accepted => "/accepted",
            ShadowReply::Rejected => "/rejected",
            ShadowReply::Delta => "/delta",
            ShadowReply::Documents => "/documents",
        }
    }
}

/// The request topic itself, or its `/accepted` or `/rejected` response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// The request (no suffix).
    Request,
    /// `…/accepted`
    Accepted,
    /// `…/rejected`
    Rejected,
}

/// A job id in a topic: a concrete id or `$next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobRef<'a> {
    /// `$next`
    Next,
    /// A concrete job id.
    Id(&'a str),
}

impl<'a> JobRef<'a> {
    /// The topic segment.
    pub fn as_str(&self) -> &'a str {
        match self {
            JobRef::Next => NEXT_JOB,
            JobRef::Id(s) => s,
        }
    }
}

/// The Jobs topics (spec §1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobsTopic<'a> {
    /// `jobs/notify` (JobExecutionsChanged).
    Notify,
    /// `jobs/notify-next` (NextJobExecutionChanged).
    NotifyNext,
    /// `jobs/get` (GetPendingJobExecutions).
    GetPending(Reply),
    /// `jobs/start-next` (StartNextPendingJobExecution).
    StartNext(Reply),
    /// `jobs/<jobId|$next>/get` (DescribeJobExecution).
    Describe {
        /// Which execution.
        job: JobRef<'a>,
        /// Request or response.
        reply: Reply,
    },
    /// `jobs/<jobId>/update` (UpdateJobExecution).
    Update {
        /// The job id (never `$next`).
        job: &'a str,
        /// Request or response.
        reply: Reply,
    },
}

/// Stream operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOp {
    /// `get` — GetStream request (device → service).
    Get,
    /// `data` — one block (service → device).
    Data,
    /// `rejected` — GetStream/DescribeStream error (service → device).
    Rejected,
    /// `describe` — DescribeStream request.
    Describe,
    /// `description` — DescribeStream response.
    Description,
}

impl StreamOp {
    /// The topic segment.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamOp::Get => "get",
            StreamOp::Data => "data",
            StreamOp::Rejected => "rejected",
            StreamOp::Describe => "describe",
            StreamOp::Description => "description",
        }
    }
}

/// Payload encoding of a stream topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `cbor`
    Cbor,
    /// `json`
    Json,
}

impl Encoding {
    /// The topic segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Cbor => "cbor",
            Encoding::Json => "json",
        }
    }
}

/// Which name of a topic is at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// The thing name.
    Thing,
    /// The job id.
    JobId,
    /// The stream name.
    Stream,
}

/// Why a topic was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicError {
    /// The topic does not start with `$aws/things/`.
    NotThingTopic,
    /// The topic is under `$aws/things/<thing>/` but is not a Jobs or Streams topic.
    Unknown,
    /// A name segment is empty.
    EmptyName(NameKind),
    /// A name is longer than the limit in force.
    NameTooLong(NameKind),
    /// A name holds a character AWS does not allow (or `$next` where it is not allowed).
    InvalidName(NameKind),
    /// A named shadow (`…/shadow/name/<name>/…`): only the classic shadow is served.
    NamedShadow,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::NotThingTopic => f.write_str("not a $aws/things/ topic"),
            TopicError::Unknown => f.write_str("unknown jobs/streams topic"),
            TopicError::EmptyName(k) => write!(f, "empty {k:?} name"),
            TopicError::NameTooLong(k) => write!(f, "{k:?} name too long"),
            TopicError::InvalidName(k) => write!(f, "invalid character in {k:?} name"),
            TopicError::NamedShadow => f.write_str("named shadows are not supported"),
        }
    }
}

impl core::error::Error for TopicError {}

/// Checks a name against AWS's character set and the length limit.
pub fn validate_name(name: &str, kind: NameKind, limits: &NameLimits) -> Result<(), TopicError> {
    let max = match kind {
        NameKind::Thing => limits.thing,
        NameKind::JobId => limits.job_id,
        NameKind::Stream => limits.stream,
    };
    if name.is_empty() {
        return Err(TopicError::EmptyName(kind));
    }
    if name.len() > max {
        return Err(TopicError::NameTooLong(kind));
    }
    let ok = name.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || b == b'_'
            || b == b'-'
            || (b == b':' && kind == NameKind::Thing)
    });
    if ok {
        Ok(())
    } else {
        Err(TopicError::InvalidName(kind))
    }
}

fn reply_of(seg: Option<&str>) -> Option<Reply> {
    match seg {
        None => Some(Reply::Request),
        Some("accepted") => Some(Reply::Accepted),
        Some("rejected") => Some(Reply::Rejected),
        Some(_) => None,
    }
}

impl TopicKind<'_> {
    /// The stream operation, `None` for a Jobs topic.
    pub fn stream_op(&self) -> Option<StreamOp> {
        match self {
            TopicKind::Stream { op, .. } => Some(*op),
            TopicKind::Jobs(_) | TopicKind::Shadow { .. } => None,
        }
    }
}

impl<'a> Topic<'a> {
    /// The stream operation of topic text, `None` for a Jobs topic or a topic that does not
    /// parse: how a device or a test harness tells stream traffic (`get`, `data`, …) from job
    /// traffic. By parsing, never by a substring: a thing may be named `streams`
    /// (`$aws/things/streams/jobs/notify`) and a job id may be `streams`
    /// (`…/jobs/streams/update`), and both topics contain `/streams/`.
    pub fn stream_op_of(topic: &str) -> Option<StreamOp> {
        Topic::parse(topic).ok()?.kind.stream_op()
    }

    /// Classifies `topic` with [`NameLimits::PERMISSIVE`].
    pub fn parse(topic: &'a str) -> Result<Topic<'a>, TopicError> {
        Self::parse_with(topic, &NameLimits::PERMISSIVE)
    }

    /// Classifies `topic`, checking names against `limits`.
    pub fn parse_with(topic: &'a str, limits: &NameLimits) -> Result<Topic<'a>, TopicError> {
        let rest = topic
            .strip_prefix(THINGS_PREFIX)
            .ok_or(TopicError::NotThingTopic)?;
        let (thing, rest) = rest.split_once('/').ok_or(TopicError::Unknown)?;
        validate_name(thing, NameKind::Thing, limits)?;
        let (area, rest) = rest.split_once('/').ok_or(TopicError::Unknown)?;
        // At most five segments follow the area; more is not a topic we know.
        let mut segs: [Option<&'a str>; 5] = [None; 5];
        let mut it = rest.split('/');
        for s in segs.iter_mut() {
            *s = it.next();
        }
        if it.next().is_some() {
            return Err(TopicError::Unknown);
        }
        let kind = match area {
            "jobs" => TopicKind::Jobs(Self::parse_jobs(segs, limits)?),
            "streams" => Self::parse_stream(segs, limits)?,
            "shadow" => Self::parse_shadow(segs)?,
            _ => return Err(TopicError::Unknown),
        };
        Ok(Topic { thing, kind })
    }

    fn parse_jobs(
        segs: [Option<&'a str>; 5],
        limits: &NameLimits,
    ) -> Result<JobsTopic<'a>, TopicError> {
        let [a, b, c, d, e] = segs;
        if e.is_some() {
            return Err(TopicError::Unknown);
        }
        let a = a.ok_or(TopicError::Unknown)?;
        // One segment after `jobs/`: the fixed topics.
        match (a, b) {
            ("notify", None) => return Ok(JobsTopic::Notify),
            ("notify-next", None) => return Ok(JobsTopic::NotifyNext),
            ("get", None) | ("get", Some("accepted" | "rejected")) if c.is_none() => {
                return Ok(JobsTopic::GetPending(
                    reply_of(b).ok_or(TopicError::Unknown)?,
                ));
            }
            ("start-next", None) | ("start-next", Some("accepted" | "rejected")) if c.is_none() => {
                return Ok(JobsTopic::StartNext(
                    reply_of(b).ok_or(TopicError::Unknown)?,
                ));
            }
            _ => {}
        }
        // `<jobId>/<op>[/<reply>]`
        let op = b.ok_or(TopicError::Unknown)?;
        if d.is_some() {
            return Err(TopicError::Unknown);
        }
        let reply = reply_of(c).ok_or(TopicError::Unknown)?;
        match op {
            "get" => {
                let job = if a == NEXT_JOB {
                    JobRef::Next
                } else {
                    validate_name(a, NameKind::JobId, limits)?;
                    JobRef::Id(a)
                };
                Ok(JobsTopic::Describe { job, reply })
            }
            "update" => {
                validate_name(a, NameKind::JobId, limits)?;
                Ok(JobsTopic::Update { job: a, reply })
            }
            _ => Err(TopicError::Unknown),
        }
    }

    fn parse_stream(
        segs: [Option<&'a str>; 5],
        limits: &NameLimits,
    ) -> Result<TopicKind<'a>, TopicError> {
        let [Some(stream), Some(op), Some(enc), None, None] = segs else {
            return Err(TopicError::Unknown);
        };
        let op = match op {
            "get" => StreamOp::Get,
            "data" => StreamOp::Data,
            "rejected" => StreamOp::Rejected,
            "describe" => StreamOp::Describe,
            "description" => StreamOp::Description,
            _ => return Err(TopicError::Unknown),
        };
        let encoding = match enc {
            "cbor" => Encoding::Cbor,
            "json" => Encoding::Json,
            _ => return Err(TopicError::Unknown),
        };
        validate_name(stream, NameKind::Stream, limits)?;
        Ok(TopicKind::Stream {
            stream,
            op,
            encoding,
        })
    }

    fn parse_shadow(segs: [Option<&'a str>; 5]) -> Result<TopicKind<'a>, TopicError> {
        let [a, b, c, _, _] = segs;
        if a == Some("name") {
            return Err(TopicError::NamedShadow);
        }
        if c.is_some() {
            return Err(TopicError::Unknown);
        }
        let op = match a {
            Some("update") => ShadowOp::Update,
            Some("get") => ShadowOp::Get,
            Some("delete") => ShadowOp::Delete,
            _ => return Err(TopicError::Unknown),
        };
        let reply = match (op, b) {
            (_, None) => ShadowReply::Request,
            (_, Some("accepted")) => ShadowReply::Accepted,
            (_, Some("rejected")) => ShadowReply::Rejected,
            (ShadowOp::Update, Some("delta")) => ShadowReply::Delta,
            (ShadowOp::Update, Some("documents")) => ShadowReply::Documents,
            _ => return Err(TopicError::Unknown),
        };
        Ok(TopicKind::Shadow { op, reply })
    }

    /// Checks every name of this topic against `limits` (for topics built by hand).
    pub fn validate(&self, limits: &NameLimits) -> Result<(), TopicError> {
        validate_name(self.thing, NameKind::Thing, limits)?;
        match self.kind {
            TopicKind::Jobs(JobsTopic::Describe {
                job: JobRef::Id(j), ..
            })
            | TopicKind::Jobs(JobsTopic::Update { job: j, .. }) => {
                validate_name(j, NameKind::JobId, limits)
            }
            TopicKind::Stream { stream, .. } => validate_name(stream, NameKind::Stream, limits),
            TopicKind::Jobs(_) | TopicKind::Shadow { .. } => Ok(()),
        }
    }

    /// Writes the topic into `buf`, returning the text. Names are written as given; call
    /// [`Topic::validate`] first for names that did not come from [`Topic::parse`].
    pub fn write<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, BufferTooSmall> {
        let mut w = SliceWriter::new(buf);
        w.fmt(format_args!("{self}"))?;
        Ok(w.finish())
    }

    /// The topic as a fixed-capacity string.
    pub fn to_heapless<const N: usize>(&self) -> Result<heapless::String<N>, BufferTooSmall> {
        let mut s = heapless::String::new();
        fmt::Write::write_fmt(&mut s, format_args!("{self}")).map_err(|_| BufferTooSmall)?;
        Ok(s)
    }

    /// `$aws/things/<thing>/jobs/notify-next` (T1).
    pub fn notify_next(thing: &'a str) -> Self {
        Self::jobs(thing, JobsTopic::NotifyNext)
    }
    /// `$aws/things/<thing>/jobs/$next/get` (T2).
    pub fn next_get(thing: &'a str) -> Self {
        Self::jobs(
            thing,
            JobsTopic::Describe {
                job: JobRef::Next,
                reply: Reply::Request,
            },
        )
    }
    /// `$aws/things/<thing>/jobs/$next/get/accepted` (T3).
    pub fn next_get_accepted(thing: &'a str) -> Self {
        Self::jobs(
            thing,
            JobsTopic::Describe {
                job: JobRef::Next,
                reply: Reply::Accepted,
            },
        )
    }
    /// `$aws/things/<thing>/jobs/<jobId>/update[/accepted|/rejected]` (T4).
    pub fn update(thing: &'a str, job: &'a str, reply: Reply) -> Self {
        Self::jobs(thing, JobsTopic::Update { job, reply })
    }
    /// Any Jobs topic.
    pub fn jobs(thing: &'a str, kind: JobsTopic<'a>) -> Self {
        Topic {
            thing,
            kind: TopicKind::Jobs(kind),
        }
    }
    /// A classic shadow topic, e.g. `shadow(t, ShadowOp::Update, ShadowReply::Request)`.
    pub fn shadow(thing: &'a str, op: ShadowOp, reply: ShadowReply) -> Self {
        Topic {
            thing,
            kind: TopicKind::Shadow { op, reply },
        }
    }
    /// Any stream topic, e.g. `stream(t, s, StreamOp::Data, Encoding::Cbor)` (T5).
    pub fn stream(thing: &'a str, stream: &'a str, op: StreamOp, encoding: Encoding) -> Self {
        Topic {
            thing,
            kind: TopicKind::Stream {
                stream,
                op,
                encoding,
            },
        }
    }
}

fn reply_suffix(r: Reply) -> &'static str {
    match r {
        Reply::Request => "",
        Reply::Accepted => "/accepted",
        Reply::Rejected => "/rejected",
    }
}

impl fmt::Display for Topic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{THINGS_PREFIX}{}/", self.thing)?;
        match self.kind {
            TopicKind::Jobs(j) => {
                f.write_str("jobs/")?;
                match j {
                    JobsTopic::Notify => f.write_str("notify"),
                    JobsTopic::NotifyNext => f.write_str("notify-next"),
                    JobsTopic::GetPending(r) => write!(f, "get{}", reply_suffix(r)),
                    JobsTopic::StartNext(r) => write!(f, "start-next{}", reply_suffix(r)),
                    JobsTopic::Describe { job, reply } => {
                        write!(f, "{}/get{}", job.as_str(), reply_suffix(reply))
                    }
                    JobsTopic::Update { job, reply } => {
                        write!(f, "{job}/update{}", reply_suffix(reply))
                    }
                }
            }
            TopicKind::Stream {
                stream,
                op,
                encoding,
            } => write!(f, "streams/{stream}/{}/{}", op.as_str(), encoding.as_str()),
            TopicKind::Shadow { op, reply } => {
                write!(f, "shadow/{}{}", op.as_str(), reply.suffix())
            }
        }
    }
}
