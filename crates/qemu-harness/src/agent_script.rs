//! The CM7 agent run: a scripted exchange recorded on the host, replayed on the target.
//!
//! The host ([`crate::agent_run`], feature `std`) runs `ferrota-agent` on a `ferrota-t2g` device
//! against a small model of the AWS Jobs / Streams service and records every input the agent got
//! (connected, each MQTT message with its time, each timer that fired) into a script, a memory
//! image for QEMU. The firmware (`firmware/cm7-agent`) replays the same inputs at the same
//! instants into its own agent over RAM flash and prints one line per output
//! ([`transmit_line`], [`event_line`]) and the marker log's newest record; the host printed
//! the same lines from its own agent, and the two lists must be equal. `firmware/c-agent` (issue
//! #22) replays the same script from C through the C API, with its own parser of this layout
//! (`script.c`, offsets in `script.h`, checked against [`at`] by `tests/c_agent_board.rs`), and
//! prints the same lines ([`crate::agent_refusals`]: the bad scripts it must refuse).
//!
//! Script layout (little-endian), at [`SCRIPT`] on the mps2-an500:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `FQAS` |
//! | 4 | 4 | entries |
//! | 8 | 4 | total bytes |
//! | 12 | 8 | instant of `Agent::new` (µs) |
//! | 20 | 4 | running bank (0 lower, 1 upper) |
//! | 24 | 4 | block size |
//! | 28 | 4 | blocks per request |
//! | 32 | 4 | requests in flight |
//! | 36 | 65 | code-signing key (SEC1 uncompressed) |
//! | 101 | 64 | thing name (zero padded) |
//! | 165 | 32 | hardware id (zero padded; all zero: none) |
//! | 256 | 232 | running version record ([`ferrota_image::VersionRecord::encode`]) |
//! | 512 | … | entries: kind, time low, time high, topic bytes, payload bytes (5 words), topic, payload, zero padding to 4 |

use ferrota_agent::{AgentEvent, Transmit, TransmitKind};
use ferrota_image::version::RECORD_AREA;

use crate::report::Line;

/// Where the script is loaded on the mps2-an500 (PSRAM, after the board-inputs block).
pub const SCRIPT: u32 = 0x6090_0000;
/// Most bytes a script may take (to the end of the PSRAM).
pub const SCRIPT_MAX: u32 = 0x6100_0000 - SCRIPT;
/// The agent's inactive bank on the mps2-an500: the upper bank's single-bank place
/// (0x60000000 + 0x3F8000), a whole bank of RAM NOR with the code-flash rules.
pub const INACTIVE_BANK: u32 = 0x6000_0000 + crate::map::UPPER_SBM_OFFSET;
/// The agent's resume area (T2G 0x14013000, 2 KB) on the mps2-an500.
pub const RESUME: u32 = 0x6082_0000;
/// `FQAS`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"FQAS");
/// Bytes of the header.
pub const HEADER: usize = 512;
/// Header offsets.
pub mod at {
    /// Entries.
    pub const ENTRIES: usize = 4;
    /// Total bytes.
    pub const TOTAL: usize = 8;
    /// Start instant.
    pub const START: usize = 12;
    /// Running bank.
    pub const BANK: usize = 20;
    /// Block size.
    pub const BLOCK_SIZE: usize = 24;
    /// Blocks per request.
    pub const BLOCKS_PER_REQUEST: usize = 28;
    /// Requests in flight.
    pub const IN_FLIGHT: usize = 32;
    /// Code-signing key.
    pub const CODE_KEY: usize = 36;
    /// Thing name.
    pub const THING: usize = 101;
    /// Hardware id.
    pub const HARDWARE: usize = 165;
    /// Running version record.
    pub const RECORD: usize = 256;
}

/// What an entry gives the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    /// `handle_connected`.
    Connected = 1,
    /// `handle_message(topic, payload)`.
    Message = 2,
    /// `handle_timeout`.
    Timeout = 3,
}

/// One input.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// What.
    pub kind: Kind,
    /// When (µs).
    pub at: u64,
    /// Topic (messages).
    pub topic: &'a str,
    /// Payload (messages).
    pub payload: &'a [u8],
}

fn word(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn zstr(b: &[u8]) -> Option<&str> {
    let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    core::str::from_utf8(&b[..n]).ok()
}

/// A parsed script header over its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Script<'a> {
    bytes: &'a [u8],
}

impl<'a> Script<'a> {
    /// The script at the start of `mem` (checks the magic and the length).
    pub fn parse(mem: &'a [u8]) -> Option<Self> {
        if word(mem, 0)? != MAGIC {
            return None;
        }
        let total = word(mem, at::TOTAL)? as usize;
        if total < HEADER {
            return None;
        }
        Some(Script {
            bytes: mem.get(..total)?,
        })
    }
    /// Entries.
    pub fn len(&self) -> u32 {
        word(self.bytes, at::ENTRIES).unwrap_or(0)
    }
    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A header word.
    pub fn word(&self, at: usize) -> u32 {
        word(self.bytes, at).unwrap_or(0)
    }
    /// The instant of `Agent::new`.
    pub fn start(&self) -> u64 {
        u64::from(self.word(at::START)) | u64::from(self.word(at::START + 4)) << 32
    }
    /// The code-signing key bytes.
    pub fn code_key(&self) -> &'a [u8] {
        &self.bytes[at::CODE_KEY..at::CODE_KEY + 65]
    }
    /// The thing name.
    pub fn thing(&self) -> Option<&'a str> {
        zstr(&self.bytes[at::THING..at::THING + 64])
    }
    /// The hardware id (empty: none).
    pub fn hardware(&self) -> Option<&'a str> {
        zstr(&self.bytes[at::HARDWARE..at::HARDWARE + 32])
    }
    /// The running version record's area.
    pub fn record(&self) -> &'a [u8; RECORD_AREA] {
        self.bytes[at::RECORD..at::RECORD + RECORD_AREA]
            .try_into()
            .expect("fixed size")
    }
    /// The entries, in order (stops at the first malformed one).
    pub fn entries(&self) -> Entries<'a> {
        Entries {
            bytes: self.bytes,
            pos: HEADER,
            left: self.len(),
        }
    }
}

/// Iterator over a script's entries.
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    bytes: &'a [u8],
    pos: usize,
    left: u32,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;
    fn next(&mut self) -> Option<Entry<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let b = self.bytes;
        let p = self.pos;
        let kind = match word(b, p)? {
            1 => Kind::Connected,
            2 => Kind::Message,
            3 => Kind::Timeout,
            _ => return None,
        };
        let at = u64::from(word(b, p + 4)?) | u64::from(word(b, p + 8)?) << 32;
        let tl = word(b, p + 12)? as usize;
        let pl = word(b, p + 16)? as usize;
        let t0 = p + 20;
        let topic = core::str::from_utf8(b.get(t0..t0 + tl)?).ok()?;
        let payload = b.get(t0 + tl..t0 + tl + pl)?;
        self.pos = (t0 + tl + pl).div_ceil(4) * 4;
        Some(Entry {
            kind,
            at,
            topic,
            payload,
        })
    }
}

/// Appends an entry to a script being built (`out` starts with a [`HEADER`]-byte header).
pub fn push_entry(out: &mut [u8], pos: &mut usize, e: &Entry<'_>) -> Option<()> {
    let put = |out: &mut [u8], at: usize, v: u32| -> Option<()> {
        out.get_mut(at..at + 4)?.copy_from_slice(&v.to_le_bytes());
        Some(())
    };
    let p = *pos;
    put(out, p, e.kind as u32)?;
    put(out, p + 4, e.at as u32)?;
    put(out, p + 8, (e.at >> 32) as u32)?;
    put(out, p + 12, e.topic.len() as u32)?;
    put(out, p + 16, e.payload.len() as u32)?;
    let t0 = p + 20;
    out.get_mut(t0..t0 + e.topic.len())?
        .copy_from_slice(e.topic.as_bytes());
    let p0 = t0 + e.topic.len();
    out.get_mut(p0..p0 + e.payload.len())?
        .copy_from_slice(e.payload);
    let end = (p0 + e.payload.len()).div_ceil(4) * 4;
    out.get_mut(p0 + e.payload.len()..end)?.fill(0);
    *pos = end;
    Some(())
}

/// The report line of one MQTT operation: `sub q1 <topic>`, `unsub <topic>`,
/// `pub q0 <topic> <payload>` (JSON as text, anything else as `hex:`).
pub fn transmit_line(t: &Transmit, buf: &[u8]) -> Line {
    let mut l = Line::new();
    match t.kind {
        TransmitKind::Subscribe => {
            l.push("sub q")
                .num(u32::from(t.qos))
                .push(" ")
                .push(&t.topic);
        }
        TransmitKind::Unsubscribe => {
            l.push("unsub ").push(&t.topic);
        }
        TransmitKind::Publish { len } => {
            let p = buf.get(..len).unwrap_or(&[]);
            l.push("pub q")
                .num(u32::from(t.qos))
                .push(" ")
                .push(&t.topic)
                .push(" ");
            match core::str::from_utf8(p) {
                Ok(s) if p.first() == Some(&b'{') => l.push(s),
                _ => l.push("hex:").hex_bytes(p),
            };
        }
    }
    l.finish();
    l
}

/// The report line of one application event: `event <name> [numbers]`.
pub fn event_line(e: &AgentEvent) -> Line {
    let mut l = Line::new();
    l.push("event ");
    match e {
        AgentEvent::OtherFileJob { file_type, .. } => {
            l.push("other-file-job ").num(u32::from(*file_type));
        }
        AgentEvent::CustomJob => {
            l.push("custom-job");
        }
        AgentEvent::DownloadStarted { blocks, resumed } => {
            l.push("download-started ")
                .num(*blocks)
                .push("/")
                .num(*resumed);
        }
        AgentEvent::VersionAccepted { version } => {
            l.push("version-accepted ").hex32(version.0);
        }
        AgentEvent::JobFailed { .. } => {
            l.push("job-failed");
        }
        AgentEvent::JobSucceeded => {
            l.push("job-succeeded");
        }
        AgentEvent::JobCancelled => {
            l.push("job-cancelled");
        }
        AgentEvent::Activated => {
            l.push("activated");
        }
        AgentEvent::ResetRequested => {
            l.push("reset-requested");
        }
        AgentEvent::StartSelfTest { .. } => {
            l.push("start-self-test");
        }
        AgentEvent::Confirmed { floor } => {
            l.push("confirmed ").num(*floor);
        }
        AgentEvent::Rejected => {
            l.push("rejected");
        }
        AgentEvent::StreamRejected { .. } => {
            l.push("stream-rejected");
        }
        AgentEvent::FlashFault(f) => {
            l.push("flash-fault ").num(f.op as u32);
        }
        _ => {
            l.push("other");
        }
    }
    l
}
