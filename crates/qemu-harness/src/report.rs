//! The DBM's one-line decision report, written by the firmware over semihosting and by the host
//! from its own decision for the same state; the two lines must be equal.
//!
//! ```text
//! DBM boot bank=upper flash_ctl=0x00401100 reason=trial:1/3 version=0x01020000 counter=2 floor=1 recorded=1 log=3@0.2:<record hex>
//! DBM halt lower=image:signature-mismatch:cm0p+0x0000ff00 upper=below-floor:1<2 log=2@0.1:<record hex>
//! DBM rom-refused shash-mismatch
//! ```
//!
//! * `flash_ctl`: the value the switch routine writes (MAIN_BANK_MODE, MAIN_MAP, WORK_ERR_SILENT):
//!   the mapping the DBM chose.
//! * `log`: the newest marker-log record after the decision, as `seq@sector.slot:` and its 40
//!   encoded bytes (`-` for an empty log); it holds the whole boot state, so equal lines mean the
//!   same record was persisted at the same place.
//!
//! No `core::fmt`: the formatting machinery costs kilobytes of CM0+ flash.

use ferrota_boot::Bank;
use ferrota_boot::dbm::{BankFault, BootReason, Decision, RevertCause};
use ferrota_boot::log::{Fault, ImageFault, RECORD_SIZE, Snapshot, encode};
use ferrota_boot::rom::RomError;
use ferrota_image::Region;

/// FLASH_CTL.MAIN_MAP.
pub const MAIN_MAP: u32 = 1 << 8;
/// FLASH_CTL.MAIN_BANK_MODE (dual).
pub const MAIN_BANK_MODE: u32 = 1 << 12;
/// FLASH_CTL.WORK_ERR_SILENT.
pub const WORK_ERR_SILENT: u32 = 1 << 22;

/// A fixed-size line buffer; text past its capacity is dropped and the line ends in `~`.
#[derive(Clone)]
pub struct Line {
    buf: [u8; 320],
    len: usize,
    cut: bool,
}

impl Default for Line {
    fn default() -> Self {
        Line {
            buf: [0; 320],
            len: 0,
            cut: false,
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";
const POW10: [u32; 10] = [
    1_000_000_000,
    100_000_000,
    10_000_000,
    1_000_000,
    100_000,
    10_000,
    1_000,
    100,
    10,
    1,
];

impl Line {
    /// An empty line.
    pub fn new() -> Self {
        Line::default()
    }

    fn byte(&mut self, b: u8) {
        if self.len < self.buf.len() - 1 {
            self.buf[self.len] = b;
            self.len += 1;
        } else {
            self.cut = true;
        }
    }

    /// Appends text.
    pub fn push(&mut self, s: &str) -> &mut Self {
        for &b in s.as_bytes() {
            self.byte(b);
        }
        self
    }

    /// Appends a decimal number. By subtracting powers of ten: the Cortex-M0 has no divide
    /// instruction, and `v / 10` would link `__aeabi_uidiv` (~200 B of the DBM) for this alone.
    pub fn num(&mut self, v: u32) -> &mut Self {
        let mut rest = v;
        let mut started = false;
        for (i, &pow) in POW10.iter().enumerate() {
            let mut digit = b'0';
            while rest >= pow {
                rest -= pow;
                digit += 1;
            }
            started |= digit != b'0' || i == POW10.len() - 1;
            if started {
                self.byte(digit);
            }
        }
        self
    }

    /// Appends `0x` and eight hex digits.
    pub fn hex32(&mut self, v: u32) -> &mut Self {
        self.push("0x");
        for i in (0..8).rev() {
            self.byte(HEX[(v >> (i * 4)) as usize & 0xF]);
        }
        self
    }

    /// Appends bytes as hex.
    pub fn hex_bytes(&mut self, b: &[u8]) -> &mut Self {
        for &x in b {
            self.byte(HEX[usize::from(x >> 4)]);
            self.byte(HEX[usize::from(x & 0xF)]);
        }
        self
    }

    /// The line (with `~` at the end if it was cut and [`Line::finish`]ed).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The line as text (it is ASCII).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("<non-ascii>")
    }

    /// Marks a cut line with a final `~`.
    pub fn finish(&mut self) -> &mut Self {
        if self.cut {
            self.buf[self.len] = b'~';
            self.len += 1;
            self.cut = false;
        }
        self
    }
}

fn bank(b: Bank) -> &'static str {
    match b {
        Bank::Lower => "lower",
        Bank::Upper => "upper",
    }
}

fn region(r: Region) -> &'static str {
    match r {
        Region::Cm0p => "cm0p",
        Region::Cm7_0 => "cm7_0",
        Region::Cm7_1 => "cm7_1",
    }
}

fn image_fault(k: ImageFault) -> &'static str {
    match k {
        ImageFault::Truncated => "truncated",
        ImageFault::TooLong => "too-long",
        ImageFault::ObjSize => "obj-size",
        ImageFault::WrongCore => "wrong-core",
        ImageFault::WrongVectorOffset => "wrong-vector-offset",
        ImageFault::WrongCoreCount => "wrong-core-count",
        ImageFault::Unsigned => "unsigned",
        ImageFault::MalformedSignature => "malformed-signature",
        ImageFault::SignatureMismatch => "signature-mismatch",
        ImageFault::UnsupportedScheme => "unsupported-scheme",
        ImageFault::VersionRecord => "version-record",
        ImageFault::Flash => "flash",
        ImageFault::Other => "other",
    }
}

/// Appends a refusal: `image:<kind>:<region>+<offset>`, `below-floor:<counter><<floor>`,
/// `wrong-hardware`, `marked-bad`.
pub fn bank_fault(l: &mut Line, f: &BankFault) {
    match (f, f.logged()) {
        (BankFault::BelowFloor { counter, floor }, _) => {
            l.push("below-floor:").num(*counter).push("<").num(*floor);
        }
        (
            _,
            Fault::Image {
                region: r,
                offset,
                kind,
            },
        ) => {
            l.push("image:").push(image_fault(kind)).push(":");
            l.push(r.map_or("bank", region)).push("+").hex32(offset);
        }
        (_, Fault::WrongHardware) => {
            l.push("wrong-hardware");
        }
        (_, Fault::MarkedBad) | (_, Fault::BelowFloor { .. }) => {
            l.push("marked-bad");
        }
        (_, Fault::Locked) => {
            l.push("locked");
        }
    }
}

fn reason(l: &mut Line, r: &BootReason) {
    match r {
        BootReason::Current => {
            l.push("current");
        }
        BootReason::Trial { attempt, budget } => {
            l.push("trial:")
                .num((*attempt).into())
                .push("/")
                .num((*budget).into());
        }
        BootReason::Reverted { from, cause } => {
            l.push("reverted:").push(bank(*from)).push(":");
            match cause {
                RevertCause::BudgetExhausted { budget } => {
                    l.push("budget-exhausted:").num((*budget).into());
                }
                RevertCause::TrialInvalid(f) => {
                    l.push("trial-invalid:");
                    bank_fault(l, f);
                }
            }
        }
        BootReason::FellBack { from, fault } => {
            l.push("fell-back:").push(bank(*from)).push(":");
            bank_fault(l, fault);
        }
        BootReason::User1 { lower_fault } => {
            l.push("user1");
            if let Some(f) = lower_fault {
                l.push(":lower=");
                bank_fault(l, f);
            }
        }
    }
}

/// The FLASH_CTL value the switch routine writes to map `b`.
pub fn flash_ctl(b: Bank) -> u32 {
    WORK_ERR_SILENT | MAIN_BANK_MODE | if b.main_map() { MAIN_MAP } else { 0 }
}

/// Appends the marker log's newest record: `log=<seq>@<sector>.<slot>:<hex>` or `log=-`.
pub fn log(l: &mut Line, snap: &Snapshot) {
    l.push(" log=");
    match snap.at {
        None => {
            l.push("-");
        }
        Some(at) => {
            let rec: [u8; RECORD_SIZE] = encode(snap.seq, &snap.state);
            l.num(snap.seq)
                .push("@")
                .num(at.sector as u32)
                .push(".")
                .num(at.slot as u32);
            l.push(":").hex_bytes(&rec);
        }
    }
}

/// The report of a decision followed by the log as it is after it.
pub fn decision(l: &mut Line, d: &Decision, after: &Snapshot) {
    match d {
        Decision::Boot(b) => {
            l.push("DBM boot bank=").push(bank(b.bank));
            l.push(" flash_ctl=").hex32(flash_ctl(b.bank));
            l.push(" reason=");
            reason(l, &b.reason);
            l.push(" version=").hex32(b.record.version.0);
            l.push(" counter=").num(b.record.security_counter);
            l.push(" floor=").num(b.floor);
            l.push(" recorded=").num(u32::from(b.recorded));
        }
        Decision::Halt(h) => {
            l.push("DBM halt lower=");
            bank_fault(l, &h.lower);
            l.push(" upper=");
            bank_fault(l, &h.upper);
        }
    }
    log(l, after);
    l.finish();
}

/// The report of a ROM refusal.
pub fn rom_refused(l: &mut Line, e: &RomError) {
    l.push("DBM rom-refused ").push(match e {
        RomError::ShashMismatch { .. } => "shash-mismatch",
        RomError::Corrupted => "corrupted",
        RomError::Flash(_) => "flash",
    });
    l.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_cut() {
        let mut l = Line::new();
        l.num(0)
            .push(" ")
            .num(4_294_967_295)
            .push(" ")
            .hex32(0xDEAD_BEEF);
        assert_eq!(l.as_str(), "0 4294967295 0xdeadbeef");
        for v in [
            1,
            7,
            10,
            99,
            100,
            1_000_000_000,
            3_000_000_001,
            12_345,
            6_388,
        ] {
            let mut l = Line::new();
            l.num(v);
            assert_eq!(l.as_str(), v.to_string());
        }
        let mut l = Line::new();
        for _ in 0..400 {
            l.push("x");
        }
        l.finish();
        assert_eq!(l.as_bytes().len(), 320);
        assert!(l.as_str().ends_with("x~"));
    }
}
