//! MQTT file delivery ("streams") in CBOR: the GetStream request (spec §3.1), the data block
//! (§3.3) and the rejection (§3.4). Map codecs are written by hand on `minicbor`'s
//! [`Decoder`]/[`Encoder`], because AWS uses one-letter text keys.
//!
//! Decoding accepts definite and indefinite-length maps, keys in any order, and skips keys it
//! does not know (AWS may add some; the official device looks keys up by name). A key that
//! appears twice, a value of the wrong CBOR type, a missing required key, trailing bytes after
//! the map and truncated input are typed [`CborError`]s. The block payload is borrowed from the
//! message (zero copy); a chunked (indefinite-length) payload byte string cannot be borrowed and
//! is refused with [`CborError::ChunkedPayload`] (AWS sends definite byte strings).
//!
//! Encoding writes definite-length maps (tinycbor and every decoder here accept them), keys in
//! the order the official device and the local test server used.
//!
//! The server's replies have a JSON twin (`…/json` topics, spec §3): `encode_json` writes the
//! same fields with the keys in alphabetical order, byte for byte what the server wrote with
//! `serde_json` before these encoders existed (its map sorts keys), and with the JSON string
//! escapes serde_json uses. With the `alloc` feature, `to_vec(Encoding)` gives either encoding
//! as a `Vec` ([`crate::vec::encode`]).

use core::fmt;

use minicbor::data::Type;
use minicbor::{Decoder, Encoder};

use crate::bitmap::BitmapView;
use crate::limits::{
    BITMAP_BYTES_LIMIT, BLOCK_OFFSET_MAX, BLOCK_SIZE_MAX, BLOCK_SIZE_MIN, CLIENT_TOKEN_MAX,
    FILE_ID_MAX, NUM_BLOCKS_MAX, REQUEST_BYTES_MAX,
};
use crate::write::{BufferTooSmall, SliceWriter};

/// The constant clientToken of the official device's GetStream requests.
pub const OFFICIAL_CLIENT_TOKEN: &str = "rdy";

/// Why a CBOR stream message was refused. `key` names the map key at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CborError {
    /// The input ended inside the message.
    Truncated,
    /// Not well-formed CBOR, or an item this codec does not take (e.g. a non-text key),
    /// at the byte position given.
    Malformed {
        /// Byte offset of the offending item, when known.
        at: usize,
    },
    /// The message is not a CBOR map.
    NotAMap,
    /// Bytes follow the map.
    TrailingBytes,
    /// A required key is absent.
    MissingKey(&'static str),
    /// A key appears twice.
    DuplicateKey(&'static str),
    /// A value has the wrong CBOR type (e.g. a float or negative number, a text payload).
    WrongType(&'static str),
    /// An integer does not fit in 32 bits.
    IntegerTooLarge(&'static str),
    /// The payload is a chunked (indefinite-length) byte string.
    ChunkedPayload,
    /// `"l"` differs from the payload length.
    LengthMismatch {
        /// `"l"`
        declared: u32,
        /// Length of `"p"`.
        actual: usize,
    },
}

impl fmt::Display for CborError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CborError::Truncated => f.write_str("truncated CBOR"),
            CborError::Malformed { at } => write!(f, "malformed CBOR at byte {at}"),
            CborError::NotAMap => f.write_str("CBOR message is not a map"),
            CborError::TrailingBytes => f.write_str("bytes after the CBOR map"),
            CborError::MissingKey(k) => write!(f, "missing key {k:?}"),
            CborError::DuplicateKey(k) => write!(f, "duplicate key {k:?}"),
            CborError::WrongType(k) => write!(f, "wrong CBOR type for key {k:?}"),
            CborError::IntegerTooLarge(k) => write!(f, "integer too large for key {k:?}"),
            CborError::ChunkedPayload => f.write_str("chunked payload byte string"),
            CborError::LengthMismatch { declared, actual } => {
                write!(f, "\"l\" = {declared} but payload has {actual} bytes")
            }
        }
    }
}

impl core::error::Error for CborError {}

fn malformed(e: minicbor::decode::Error) -> CborError {
    if e.is_end_of_input() {
        CborError::Truncated
    } else {
        CborError::Malformed {
            at: e.position().unwrap_or(0),
        }
    }
}

/// Walks the entries of a definite or indefinite-length map whose keys are text, then checks
/// that nothing follows it.
fn for_each_entry<'b>(
    input: &'b [u8],
    mut f: impl FnMut(&'b str, &mut Decoder<'b>) -> Result<(), CborError>,
) -> Result<(), CborError> {
    let mut d = Decoder::new(input);
    match d.datatype().map_err(malformed)? {
        Type::Map | Type::MapIndef => {}
        _ => return Err(CborError::NotAMap),
    }
    let len = d.map().map_err(malformed)?;
    let mut i = 0u64;
    loop {
        match len {
            Some(n) if i == n => break,
            Some(_) => {}
            None => {
                if d.datatype().map_err(malformed)? == Type::Break {
                    d.set_position(d.position() + 1);
                    break;
                }
            }
        }
        let at = d.position();
        let key = match d.datatype().map_err(malformed)? {
            Type::String => d.str().map_err(malformed)?,
            _ => return Err(CborError::Malformed { at }),
        };
        f(key, &mut d)?;
        i += 1;
    }
    if d.position() != input.len() {
        return Err(CborError::TrailingBytes);
    }
    Ok(())
}

fn skip(d: &mut Decoder<'_>) -> Result<(), CborError> {
    d.skip().map_err(malformed)
}

fn uint(d: &mut Decoder<'_>, key: &'static str) -> Result<u32, CborError> {
    match d.datatype().map_err(malformed)? {
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => {
            let v = d.u64().map_err(malformed)?;
            u32::try_from(v).map_err(|_| CborError::IntegerTooLarge(key))
        }
        _ => Err(CborError::WrongType(key)),
    }
}

fn text<'b>(d: &mut Decoder<'b>, key: &'static str) -> Result<&'b str, CborError> {
    match d.datatype().map_err(malformed)? {
        Type::String => d.str().map_err(malformed),
        _ => Err(CborError::WrongType(key)),
    }
}

fn bytes<'b>(d: &mut Decoder<'b>, key: &'static str) -> Result<&'b [u8], CborError> {
    match d.datatype().map_err(malformed)? {
        Type::Bytes => d.bytes().map_err(malformed),
        Type::BytesIndef => Err(CborError::ChunkedPayload),
        _ => Err(CborError::WrongType(key)),
    }
}

fn once<T>(slot: &mut Option<T>, key: &'static str, v: T) -> Result<(), CborError> {
    if slot.is_some() {
        return Err(CborError::DuplicateKey(key));
    }
    *slot = Some(v);
    Ok(())
}

type EncResult = Result<(), minicbor::encode::Error<minicbor::encode::write::EndOfSlice>>;

fn encode_into(
    buf: &mut [u8],
    f: impl FnOnce(&mut Encoder<minicbor::encode::write::Cursor<&mut [u8]>>) -> EncResult,
) -> Result<usize, BufferTooSmall> {
    let mut e = Encoder::new(minicbor::encode::write::Cursor::new(buf));
    f(&mut e).map_err(|_| BufferTooSmall)?;
    Ok(e.writer().position())
}

/// A GetStream request (`…/streams/<stream>/get/cbor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRequest<'a> {
    /// `"c"`: client token, echoed in the data blocks (the official device sends `"rdy"`).
    pub client_token: Option<&'a str>,
    /// `"s"`: expected stream version (never sent by the official device).
    pub stream_version: Option<u32>,
    /// `"f"`: file id within the stream.
    pub file_id: u32,
    /// `"l"`: block size in bytes.
    pub block_size: u32,
    /// `"o"`: block offset of bit 0 of the bitmap (or first block without a bitmap).
    pub offset: Option<u32>,
    /// `"b"`: bitmap of blocks wanted (§3.2).
    pub bitmap: Option<&'a [u8]>,
    /// `"n"`: number of blocks wanted (with `"b"`: a cap on the blocks returned).
    pub num_blocks: Option<u32>,
}

/// AWS's GetStream/DescribeStream error codes (§3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum StreamErrorCode {
    InvalidTopic,
    InvalidJson,
    InvalidCbor,
    InvalidRequest,
    Unauthorized,
    BlockSizeOutOfBounds,
    OffsetOutOfBounds,
    BlockCountLimitExceeded,
    BlockBitmapLimitExceeded,
    ResourceNotFound,
    VersionMismatch,
    ETagMismatch,
    InternalError,
}

impl StreamErrorCode {
    const ALL: [StreamErrorCode; 13] = [
        Self::InvalidTopic,
        Self::InvalidJson,
        Self::InvalidCbor,
        Self::InvalidRequest,
        Self::Unauthorized,
        Self::BlockSizeOutOfBounds,
        Self::OffsetOutOfBounds,
        Self::BlockCountLimitExceeded,
        Self::BlockBitmapLimitExceeded,
        Self::ResourceNotFound,
        Self::VersionMismatch,
        Self::ETagMismatch,
        Self::InternalError,
    ];

    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidTopic => "InvalidTopic",
            Self::InvalidJson => "InvalidJson",
            Self::InvalidCbor => "InvalidCbor",
            Self::InvalidRequest => "InvalidRequest",
            Self::Unauthorized => "Unauthorized",
            Self::BlockSizeOutOfBounds => "BlockSizeOutOfBounds",
            Self::OffsetOutOfBounds => "OffsetOutOfBounds",
            Self::BlockCountLimitExceeded => "BlockCountLimitExceeded",
            Self::BlockBitmapLimitExceeded => "BlockBitmapLimitExceeded",
            Self::ResourceNotFound => "ResourceNotFound",
            Self::VersionMismatch => "VersionMismatch",
            Self::ETagMismatch => "ETagMismatch",
            Self::InternalError => "InternalError",
        }
    }

    /// Parses the wire string.
    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl<'a> StreamRequest<'a> {
    /// The request exactly as the official device builds it: `c = "rdy"`, `o = 0`, the whole
    /// still-needed bitmap, `n` = blocks per request, no `s`.
    pub fn official(file_id: u32, block_size: u32, bitmap: &'a [u8], num_blocks: u32) -> Self {
        StreamRequest {
            client_token: Some(OFFICIAL_CLIENT_TOKEN),
            stream_version: None,
            file_id,
            block_size,
            offset: Some(0),
            bitmap: Some(bitmap),
            num_blocks: Some(num_blocks),
        }
    }

    /// Encodes a definite-length map, keys in the order `c s f l o b n` (the official device's
    /// order; it never sends `s`, whose place is our choice), absent fields omitted.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let n = 2
            + self.client_token.is_some() as u64
            + self.stream_version.is_some() as u64
            + self.offset.is_some() as u64
            + self.bitmap.is_some() as u64
            + self.num_blocks.is_some() as u64;
        encode_into(buf, |e| {
            e.map(n)?;
            if let Some(c) = self.client_token {
                e.str("c")?.str(c)?;
            }
            if let Some(s) = self.stream_version {
                e.str("s")?.u32(s)?;
            }
            e.str("f")?.u32(self.file_id)?;
            e.str("l")?.u32(self.block_size)?;
            if let Some(o) = self.offset {
                e.str("o")?.u32(o)?;
            }
            if let Some(b) = self.bitmap {
                e.str("b")?.bytes(b)?;
            }
            if let Some(n) = self.num_blocks {
                e.str("n")?.u32(n)?;
            }
            Ok(())
        })
    }

    /// Decodes a request (`f` and `l` required). Range checks are separate: [`Self::validate`].
    pub fn decode(input: &'a [u8]) -> Result<Self, CborError> {
        let (mut c, mut s, mut f, mut l, mut o, mut b, mut n) =
            (None, None, None, None, None, None, None);
        for_each_entry(input, |key, d| match key {
            "c" => once(&mut c, "c", text(d, "c")?),
            "s" => once(&mut s, "s", uint(d, "s")?),
            "f" => once(&mut f, "f", uint(d, "f")?),
            "l" => once(&mut l, "l", uint(d, "l")?),
            "o" => once(&mut o, "o", uint(d, "o")?),
            "b" => once(&mut b, "b", bytes(d, "b")?),
            "n" => once(&mut n, "n", uint(d, "n")?),
            _ => skip(d),
        })?;
        Ok(StreamRequest {
            client_token: c,
            stream_version: s,
            file_id: f.ok_or(CborError::MissingKey("f"))?,
            block_size: l.ok_or(CborError::MissingKey("l"))?,
            offset: o,
            bitmap: b,
            num_blocks: n,
        })
    }

    /// AWS's range checks (§3.4), in the order listed there; the error is the code to answer on
    /// `…/rejected/cbor`. The stream version and the existence of the file are the server's.
    pub fn validate(&self) -> Result<(), StreamErrorCode> {
        if self
            .client_token
            .is_some_and(|c| c.len() > CLIENT_TOKEN_MAX)
        {
            return Err(StreamErrorCode::InvalidRequest);
        }
        if self.file_id > FILE_ID_MAX {
            return Err(StreamErrorCode::ResourceNotFound);
        }
        if !(BLOCK_SIZE_MIN..=BLOCK_SIZE_MAX).contains(&self.block_size) {
            return Err(StreamErrorCode::BlockSizeOutOfBounds);
        }
        if self.offset.unwrap_or(0) > BLOCK_OFFSET_MAX {
            return Err(StreamErrorCode::OffsetOutOfBounds);
        }
        if self.num_blocks.unwrap_or(0) > NUM_BLOCKS_MAX {
            return Err(StreamErrorCode::BlockCountLimitExceeded);
        }
        if self.bitmap.is_some_and(|b| b.len() >= BITMAP_BYTES_LIMIT) {
            return Err(StreamErrorCode::BlockBitmapLimitExceeded);
        }
        Ok(())
    }

    /// The most blocks one answer may carry: `"n"` (0 or absent: `131072 / l`), never more than
    /// 128 KB of payload.
    pub fn block_cap(&self) -> u32 {
        let by_bytes = (REQUEST_BYTES_MAX / self.block_size.max(1)).max(1);
        match self.num_blocks {
            Some(n) if n > 0 => n.min(by_bytes),
            _ => by_bytes,
        }
    }

    /// The blocks a server sends for this request, ascending, for a file of `file_size` bytes:
    /// with a bitmap, each set bit `k` with `o + k` inside the file; without, `o, o+1, …`;
    /// at most [`Self::block_cap`]. Call [`Self::validate`] first.
    pub fn blocks_to_send(&self, file_size: u32) -> impl Iterator<Item = u32> + 'a {
        let num_blocks = crate::bitmap::block_count(file_size, self.block_size);
        let offset = self.offset.unwrap_or(0);
        let cap = self.block_cap() as usize;
        let bitmap = self.bitmap;
        let from_bitmap = bitmap.map(move |bits| BitmapView { offset, bits }.requested(num_blocks));
        let plain = match bitmap {
            Some(_) => None,
            None => Some(offset..num_blocks.max(offset)),
        };
        from_bitmap
            .into_iter()
            .flatten()
            .chain(plain.into_iter().flatten())
            .take(cap)
    }
}

/// One block of a stream (`…/streams/<stream>/data/cbor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataBlock<'a> {
    /// `"c"`: the request's client token, when it had one.
    pub client_token: Option<&'a str>,
    /// `"f"`: file id.
    pub file_id: u32,
    /// `"l"`: payload size (equal to `payload.len()`, checked on decode).
    pub block_size: u32,
    /// `"i"`: block index, 0-based.
    pub block_id: u32,
    /// `"p"`: the block data, borrowed from the message.
    pub payload: &'a [u8],
}

impl<'a> DataBlock<'a> {
    /// A block with `"l"` set from the payload.
    pub fn new(
        client_token: Option<&'a str>,
        file_id: u32,
        block_id: u32,
        payload: &'a [u8],
    ) -> Self {
        DataBlock {
            client_token,
            file_id,
            block_size: payload.len() as u32,
            block_id,
            payload,
        }
    }

    /// Encodes a definite-length map, keys `c f l i p` (§9's reply order; the local test
    /// server's 4 KiB block 0 is 4119 bytes with `c = "rdy"`).
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        encode_into(buf, |e| {
            e.map(4 + self.client_token.is_some() as u64)?;
            self.entries(e)
        })
    }

    /// Encodes the JSON block (`…/data/json`): `{"c"?,"f","i","l","p"}`, `p` the standard
    /// base64 of the payload. `alloc` feature only (it needs base64, and devices read CBOR).
    #[cfg(feature = "alloc")]
    pub fn encode_json(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let mut w = SliceWriter::new(buf);
        w.raw("{")?;
        if let Some(c) = self.client_token {
            w.key("c")?;
            w.json_str(c)?;
            w.raw(",")?;
        }
        w.raw("\"f\":")?;
        w.u64(self.file_id.into())?;
        w.raw(",\"i\":")?;
        w.u64(self.block_id.into())?;
        w.raw(",\"l\":")?;
        w.u64(self.block_size.into())?;
        w.raw(",\"p\":")?;
        w.json_base64(self.payload)?;
        w.raw("}")?;
        Ok(w.finish().len())
    }

    /// The block in `encoding` (`alloc`).
    #[cfg(feature = "alloc")]
    pub fn to_vec(
        &self,
        encoding: crate::topic::Encoding,
    ) -> Result<alloc::vec::Vec<u8>, crate::job::EncodeError> {
        // Sized up front: a block is the server's hottest message (thousands a second), and
        // a 4 KiB block does not fit `vec::encode`'s first 4 KiB guess.
        match encoding {
            crate::topic::Encoding::Cbor => {
                crate::vec::encode_sized(self.encoded_len(), |b| self.encode(b))
            }
            // Base64 is 4/3 of the payload; the keys, numbers and token fit in the rest.
            crate::topic::Encoding::Json => crate::vec::encode_sized(
                self.encoded_len() / 3 * 4 + 64 + self.client_token.map_or(0, str::len) * 6,
                |b| self.encode_json(b),
            ),
        }
    }

    /// Encodes an indefinite-length map with the same keys — what AWS appears to send (§3.3,
    /// one byte longer). For tests of decoders.
    pub fn encode_indefinite(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        encode_into(buf, |e| {
            e.begin_map()?;
            self.entries(e)?;
            e.end()?;
            Ok(())
        })
    }

    fn entries(&self, e: &mut Encoder<minicbor::encode::write::Cursor<&mut [u8]>>) -> EncResult {
        if let Some(c) = self.client_token {
            e.str("c")?.str(c)?;
        }
        e.str("f")?.u32(self.file_id)?;
        e.str("l")?.u32(self.block_size)?;
        e.str("i")?.u32(self.block_id)?;
        e.str("p")?.bytes(self.payload)?;
        Ok(())
    }

    /// Decodes a block: `f`, `i`, `l` unsigned integers and `p` a definite byte string are
    /// required, `"l"` must equal the payload length; `c` optional; other keys skipped.
    pub fn decode(input: &'a [u8]) -> Result<Self, CborError> {
        let (mut c, mut f, mut l, mut i, mut p) = (None, None, None, None, None);
        for_each_entry(input, |key, d| match key {
            "c" => once(&mut c, "c", text(d, "c")?),
            "f" => once(&mut f, "f", uint(d, "f")?),
            "l" => once(&mut l, "l", uint(d, "l")?),
            "i" => once(&mut i, "i", uint(d, "i")?),
            "p" => once(&mut p, "p", bytes(d, "p")?),
            _ => skip(d),
        })?;
        let block = DataBlock {
            client_token: c,
            file_id: f.ok_or(CborError::MissingKey("f"))?,
            block_size: l.ok_or(CborError::MissingKey("l"))?,
            block_id: i.ok_or(CborError::MissingKey("i"))?,
            payload: p.ok_or(CborError::MissingKey("p"))?,
        };
        if block.block_size as usize != block.payload.len() {
            return Err(CborError::LengthMismatch {
                declared: block.block_size,
                actual: block.payload.len(),
            });
        }
        Ok(block)
    }

    /// Encoded size of a definite-length block with these field values, for a server that
    /// must keep PUBLISH packets inside the device's buffer (§4.8).
    pub fn encoded_len(&self) -> usize {
        fn head(v: u64) -> usize {
            match v {
                0..=23 => 1,
                24..=0xFF => 2,
                0x100..=0xFFFF => 3,
                0x1_0000..=0xFFFF_FFFF => 5,
                _ => 9,
            }
        }
        let mut n = 1 + 4 * 2; // map header, four one-letter keys
        if let Some(c) = self.client_token {
            n += 2 + head(c.len() as u64) + c.len();
        }
        n + head(self.file_id.into())
            + head(self.block_size.into())
            + head(self.block_id.into())
            + head(self.payload.len() as u64)
            + self.payload.len()
    }
}

/// A GetStream error (`…/streams/<stream>/rejected/cbor`): `{"o": code, "m": message, "c":
/// token?}`. Decoding also accepts the older keys `code`, `message`, `clientToken`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRejection<'a> {
    /// `"o"`: the error code as sent (see [`StreamErrorCode::from_wire`]).
    pub code: &'a str,
    /// `"m"`: human-readable message.
    pub message: Option<&'a str>,
    /// `"c"`: the request's client token.
    pub client_token: Option<&'a str>,
}

impl<'a> StreamRejection<'a> {
    /// A rejection with one of AWS's codes.
    pub fn new(code: StreamErrorCode, message: &'a str, client_token: Option<&'a str>) -> Self {
        StreamRejection {
            code: code.as_str(),
            message: Some(message),
            client_token,
        }
    }

    /// The code, when it is one of AWS's.
    pub fn error_code(&self) -> Option<StreamErrorCode> {
        StreamErrorCode::from_wire(self.code)
    }

    /// Encodes a definite-length map, keys `o m c` (order of the AWS docs).
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let n = 1 + self.message.is_some() as u64 + self.client_token.is_some() as u64;
        encode_into(buf, |e| {
            e.map(n)?;
            e.str("o")?.str(self.code)?;
            if let Some(m) = self.message {
                e.str("m")?.str(m)?;
            }
            if let Some(c) = self.client_token {
                e.str("c")?.str(c)?;
            }
            Ok(())
        })
    }

    /// Encodes the JSON rejection (`…/rejected/json`): `{"c"?,"m"?,"o"}`.
    pub fn encode_json(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let mut w = SliceWriter::new(buf);
        w.raw("{")?;
        if let Some(c) = self.client_token {
            w.key("c")?;
            w.json_str(c)?;
            w.raw(",")?;
        }
        if let Some(m) = self.message {
            w.key("m")?;
            w.json_str(m)?;
            w.raw(",")?;
        }
        w.key("o")?;
        w.json_str(self.code)?;
        w.raw("}")?;
        Ok(w.finish().len())
    }

    /// The rejection in `encoding` (`alloc`).
    #[cfg(feature = "alloc")]
    pub fn to_vec(
        &self,
        encoding: crate::topic::Encoding,
    ) -> Result<alloc::vec::Vec<u8>, crate::job::EncodeError> {
        match encoding {
            crate::topic::Encoding::Cbor => crate::vec::encode(|b| self.encode(b)),
            crate::topic::Encoding::Json => crate::vec::encode(|b| self.encode_json(b)),
        }
    }

    /// Decodes a rejection; the code is required.
    pub fn decode(input: &'a [u8]) -> Result<Self, CborError> {
        let (mut o, mut m, mut c) = (None, None, None);
        for_each_entry(input, |key, d| match key {
            "o" | "code" => once(&mut o, "o", text(d, "o")?),
            "m" | "message" => once(&mut m, "m", text(d, "m")?),
            "c" | "clientToken" => once(&mut c, "c", text(d, "c")?),
            _ => skip(d),
        })?;
        Ok(StreamRejection {
            code: o.ok_or(CborError::MissingKey("o"))?,
            message: m,
            client_token: c,
        })
    }
}

/// One file of a DescribeStream reply: `{"f": file id, "z": size in bytes}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFileOut {
    /// `"f"`: file id.
    pub file_id: u8,
    /// `"z"`: size, bytes.
    pub size: u64,
}

/// A DescribeStream reply (`…/streams/<stream>/description/cbor|json`, spec §3): `{"c"?: token,
/// "s": stream version, "d": description, "r": files}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamDescriptionOut<'a> {
    /// `"c"`: the request's client token.
    pub client_token: Option<&'a str>,
    /// `"s"`: stream version.
    pub version: u32,
    /// `"d"`: description.
    pub description: &'a str,
    /// `"r"`: the files.
    pub files: &'a [StreamFileOut],
}

impl StreamDescriptionOut<'_> {
    /// Encodes a definite-length CBOR map, keys `c s d r` (AWS's order in §3), files `f z`.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        encode_into(buf, |e| {
            e.map(3 + u64::from(self.client_token.is_some()))?;
            if let Some(t) = self.client_token {
                e.str("c")?.str(t)?;
            }
            e.str("s")?.u32(self.version)?;
            e.str("d")?.str(self.description)?;
            e.str("r")?.array(self.files.len() as u64)?;
            for f in self.files {
                e.map(2)?.str("f")?.u8(f.file_id)?.str("z")?.u64(f.size)?;
            }
            Ok(())
        })
    }

    /// Encodes the JSON reply: `{"c"?,"d","r":[{"f","z"}…],"s"}`.
    pub fn encode_json(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        let mut w = SliceWriter::new(buf);
        w.raw("{")?;
        if let Some(c) = self.client_token {
            w.key("c")?;
            w.json_str(c)?;
            w.raw(",")?;
        }
        w.key("d")?;
        w.json_str(self.description)?;
        w.raw(",\"r\":[")?;
        for (i, f) in self.files.iter().enumerate() {
            if i > 0 {
                w.raw(",")?;
            }
            w.raw("{\"f\":")?;
            w.u64(f.file_id.into())?;
            w.raw(",\"z\":")?;
            w.u64(f.size)?;
            w.raw("}")?;
        }
        w.raw("],\"s\":")?;
        w.u64(self.version.into())?;
        w.raw("}")?;
        Ok(w.finish().len())
    }

    /// The reply in `encoding` (`alloc`).
    #[cfg(feature = "alloc")]
    pub fn to_vec(
        &self,
        encoding: crate::topic::Encoding,
    ) -> Result<alloc::vec::Vec<u8>, crate::job::EncodeError> {
        match encoding {
            crate::topic::Encoding::Cbor => crate::vec::encode(|b| self.encode(b)),
            crate::topic::Encoding::Json => crate::vec::encode(|b| self.encode_json(b)),
        }
    }
}
