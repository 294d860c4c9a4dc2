//! The live board's provisioning block: what a factory writes into a board before it ever
//! connects (the thing's identity, its TLS credentials, the pinned keys, where the server is).
//!
//! On the T2G this lives in work flash or SFlash user rows, written by the production line; here
//! the host writes it into the PSRAM file at [`crate::live::PROVISION`] from a `ferrota thing
//! create` bundle. The firmware reads it in place (every field borrows the block).
//!
//! Layout (little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `FQLP` |
//! | 4 | 4 | total bytes, header included |
//! | 8 | 4 | server IPv4 address, as the guest reaches it |
//! | 12 | 2 | server TCP port, as the guest reaches it |
//! | 14 | 2 | MQTT keep-alive, seconds |
//! | 16 | 32 | entropy seed (the T2G's TRNG stands here; fresh per provisioning) |
//! | 48 | … | [`FIELDS`] variable fields, each `u16` length then bytes, in the order of [`Provision`] |
//!
//! Decoding checks every length against the block and every text field for UTF-8; a block that
//! fails any check is `None` (the firmware then halts with a clear line, never reads past it).

/// `FQLP`.
pub const MAGIC: u32 = u32::from_le_bytes(*b"FQLP");
/// Bytes before the variable fields.
pub const HEADER: usize = 48;
/// Variable fields.
pub const FIELDS: usize = 8;

/// One board's provisioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provision<'a> {
    /// Server address as the guest reaches it (QEMU's forwarding address).
    pub server_ip: [u8; 4],
    /// Server port as the guest reaches it.
    pub server_port: u16,
    /// MQTT keep-alive, seconds.
    pub keep_alive: u16,
    /// Seed of the TLS random generator.
    pub seed: [u8; 32],
    /// The thing name: MQTT client id and certificate CN.
    pub thing: &'a str,
    /// The name the server's certificate is checked against (the bundle's endpoint).
    pub server_name: &'a str,
    /// The thing's certificate, DER.
    pub client_cert: &'a [u8],
    /// The thing's P-256 private key: the 32-byte scalar.
    pub client_key: &'a [u8],
    /// The CA the server's certificate must chain to, DER.
    pub ca_cert: &'a [u8],
    /// The OTA code-signing public key, SEC1 uncompressed (65 bytes).
    pub code_signing_key: &'a [u8],
    /// The trust anchor (root-1.cbor) for `[trust] policy = "require"`; empty: AwsPlain.
    pub trust_anchor: &'a [u8],
    /// The board's hardware id; empty: none.
    pub hardware: &'a str,
}

fn word(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn half(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

impl<'a> Provision<'a> {
    /// Reads a block in place; `None` if anything is out of place.
    pub fn decode(b: &'a [u8]) -> Option<Self> {
        if word(b, 0)? != MAGIC {
            return None;
        }
        let total = usize::try_from(word(b, 4)?).ok()?;
        let b = b.get(..total)?;
        let mut at = HEADER;
        let mut fields: [&'a [u8]; FIELDS] = [&[]; FIELDS];
        for f in &mut fields {
            let len = usize::from(half(b, at)?);
            *f = b.get(at + 2..at + 2 + len)?;
            at += 2 + len;
        }
        if at != total {
            return None;
        }
        let text = |f: &'a [u8]| core::str::from_utf8(f).ok();
        let p = Provision {
            server_ip: b.get(8..12)?.try_into().ok()?,
            server_port: half(b, 12)?,
            keep_alive: half(b, 14)?,
            seed: b.get(16..48)?.try_into().ok()?,
            thing: text(fields[0])?,
            server_name: text(fields[1])?,
            client_cert: fields[2],
            client_key: fields[3],
            ca_cert: fields[4],
            code_signing_key: fields[5],
            trust_anchor: fields[6],
            hardware: text(fields[7])?,
        };
        (p.client_key.len() == 32 && p.code_signing_key.len() == 65 && !p.thing.is_empty())
            .then_some(p)
    }

    /// The block's bytes; `None` if a field is longer than 65,535 bytes or the whole exceeds
    /// [`crate::live::PROVISION_MAX`].
    #[cfg(feature = "std")]
    pub fn encode(&self) -> Option<Vec<u8>> {
        let mut b = Vec::with_capacity(4096);
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&self.server_ip);
        b.extend_from_slice(&self.server_port.to_le_bytes());
        b.extend_from_slice(&self.keep_alive.to_le_bytes());
        b.extend_from_slice(&self.seed);
        for f in [
            self.thing.as_bytes(),
            self.server_name.as_bytes(),
            self.client_cert,
            self.client_key,
            self.ca_cert,
            self.code_signing_key,
            self.trust_anchor,
            self.hardware.as_bytes(),
        ] {
            b.extend_from_slice(&u16::try_from(f.len()).ok()?.to_le_bytes());
            b.extend_from_slice(f);
        }
        let total = u32::try_from(b.len()).ok()?;
        if total > crate::live::PROVISION_MAX {
            return None;
        }
        b[4..8].copy_from_slice(&total.to_le_bytes());
        Some(b)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A block with every field set (shared with the PSRAM builder's tests).
    pub(crate) fn sample() -> Provision<'static> {
        Provision {
            server_ip: [192, 0, 2, 2],
            server_port: 8883,
            keep_alive: 60,
            seed: [7; 32],
            thing: "dev-1",
            server_name: "localhost",
            client_cert: b"cert-der",
            client_key: &[1; 32],
            ca_cert: b"ca-der",
            code_signing_key: &[4; 65],
            trust_anchor: b"",
            hardware: "",
        }
    }

    #[test]
    fn round_trips_and_refuses_every_truncation() {
        let p = sample();
        let b = p.encode().expect("fits");
        assert_eq!(Provision::decode(&b), Some(p));
        for n in 0..b.len() {
            assert_eq!(Provision::decode(&b[..n]), None, "truncated at {n}");
        }
        let mut bad = b.clone();
        bad[0] ^= 1;
        assert_eq!(Provision::decode(&bad), None, "magic");
        let mut bad = b.clone();
        bad[4] = bad[4].wrapping_add(1);
        assert_eq!(Provision::decode(&bad), None, "total");
        let short_key = Provision {
            client_key: &[1; 31],
            ..p
        };
        assert_eq!(Provision::decode(&short_key.encode().expect("fits")), None);
    }
}
