//! Writing a bank image as Intel HEX, for initial programming with a debugger (J-Link,
//! OpenOCD, Infineon's programmer), which takes a HEX file with its own addresses where a raw
//! `.bin` would need the address typed in by hand.
//!
//! Decisions:
//! * **Every byte is written**, zeroes included. The bank's gaps are 0x00 (the seed's linkers use
//!   `FILL(0)`) and are inside the signed bytes, while erased flash reads 0xFF: leaving the zero
//!   runs out would make the programmed bank differ from the signed one.
//! * **16 data bytes per record**, as `objcopy -O ihex` and ModusToolbox write them; an extended
//!   linear address record (type 04) starts every 64 KB page, no record crosses a page, and the
//!   file ends with the end-of-file record (01). No start-address record: the boot ROM, not the
//!   debugger, decides where execution starts.
//! * The records are encoded by the `ihex` crate, the same one [`crate::input`] reads them with.

use core::fmt;

/// Data bytes per HEX record.
pub const HEX_RECORD_LEN: usize = 16;

/// Why [`to_intel_hex`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputError {
    /// The data would extend past the 4 GB address space (Intel HEX addresses are 32-bit).
    AddressOverflow {
        /// The start address.
        address: u32,
        /// The data length.
        len: usize,
    },
    /// The `ihex` crate could not encode a record.
    Encode(ihex::WriterError),
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputError::AddressOverflow { address, len } => write!(
                f,
                "{len:#x} bytes at {address:#010x} extend past the 4 GB address space of Intel HEX"
            ),
            OutputError::Encode(e) => write!(f, "cannot encode an Intel HEX record: {e}"),
        }
    }
}

impl std::error::Error for OutputError {}

/// `data` as Intel HEX text whose first byte is at `address`; see the module docs.
pub fn to_intel_hex(data: &[u8], address: u32) -> Result<String, OutputError> {
    if u64::from(address) + data.len() as u64 > 1 << 32 {
        return Err(OutputError::AddressOverflow {
            address,
            len: data.len(),
        });
    }
    // ":LLAAAATT" + 2 per byte + "CC\n" per record, plus the page records and EOF.
    let mut out = String::with_capacity(data.len() / HEX_RECORD_LEN * (12 + 2 * HEX_RECORD_LEN));
    let mut push = |record: ihex::Record| -> Result<(), OutputError> {
        out.push_str(&record.to_record_string().map_err(OutputError::Encode)?);
        out.push('\n');
        Ok(())
    };
    let mut page = None;
    let mut at = 0usize;
    while at < data.len() {
        let addr = address + at as u32;
        let left_in_page = 0x1_0000 - (addr & 0xFFFF) as usize;
        let len = HEX_RECORD_LEN.min(left_in_page).min(data.len() - at);
        let upper = (addr >> 16) as u16;
        if page != Some(upper) {
            push(ihex::Record::ExtendedLinearAddress(upper))?;
            page = Some(upper);
        }
        push(ihex::Record::Data {
            offset: addr as u16,
            value: data[at..at + len].to_vec(),
        })?;
        at += len;
    }
    push(ihex::Record::EndOfFile)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::Segment;
    use crate::input;

    #[test]
    fn reads_back_to_the_same_bytes_at_the_address() {
        // Unaligned start, a page boundary inside a record's span, zeroes kept.
        let mut data: Vec<u8> = (0..0x1_0040u32).map(|i| (i * 7) as u8).collect();
        data[0x20..0x40].fill(0);
        let text = to_intel_hex(&data, 0x1000_FFF8).unwrap();
        let segs = input::read(text.as_bytes(), None).unwrap();
        assert_eq!(
            segs,
            vec![Segment {
                address: 0x1000_FFF8,
                data: data.clone()
            }]
        );
        assert!(text.ends_with(":00000001FF\n"));
        assert!(text.lines().all(|l| l.len() <= 11 + 2 * HEX_RECORD_LEN));
        // One extended linear address record per 64 KB page touched (0x1000, 0x1001, 0x1002).
        assert_eq!(
            text.lines().filter(|l| l.starts_with(":02000004")).count(),
            3
        );
    }

    #[test]
    fn refuses_data_past_4_gb() {
        assert_eq!(
            to_intel_hex(&[1, 2], u32::MAX),
            Err(OutputError::AddressOverflow {
                address: u32::MAX,
                len: 2
            })
        );
        assert_eq!(
            to_intel_hex(&[], 0).unwrap(),
            ":00000001FF\n",
            "empty data is just the end-of-file record"
        );
    }
}
