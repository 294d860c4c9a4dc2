//! A strict reader of the deterministic CBOR subset the documents use, over `minicbor::Decoder`.
//!
//! minicbor decodes any well-formed CBOR; this wrapper adds the rules of RFC 8949 §4.2.1 that
//! make one meaning have one encoding: shortest-form heads, definite lengths only, and map keys
//! in strictly ascending bytewise order (which also refuses duplicate keys). Every read names
//! the document kind, so an error maps to the right FAILED sub-code.

use minicbor::Decoder;
use minicbor::data::{Tag, Type};

use crate::error::{Doc, TrustError};

pub(crate) type R<T> = Result<T, TrustError>;

/// A map key: this subset uses integer keys, and text keys only for integrated payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key<'b> {
    Int(i64),
    Text(&'b str),
}

pub(crate) struct Reader<'b> {
    d: Decoder<'b>,
    doc: Doc,
    /// Encoded span of the previous key of each open map, innermost last.
    prev_key: Option<(usize, usize)>,
}

fn head_len(arg: u64) -> usize {
    match arg {
        0..=23 => 1,
        24..=0xFF => 2,
        0x100..=0xFFFF => 3,
        0x1_0000..=0xFFFF_FFFF => 5,
        _ => 9,
    }
}

impl<'b> Reader<'b> {
    pub(crate) fn new(bytes: &'b [u8], doc: Doc) -> Self {
        Reader {
            d: Decoder::new(bytes),
            doc,
            prev_key: None,
        }
    }

    pub(crate) fn at(&self) -> u32 {
        u32::try_from(self.d.position()).unwrap_or(u32::MAX)
    }

    pub(crate) fn malformed(&self, at: usize) -> TrustError {
        TrustError::Malformed {
            doc: self.doc,
            at: u32::try_from(at).unwrap_or(u32::MAX),
        }
    }

    pub(crate) fn unsupported(&self, at: usize) -> TrustError {
        TrustError::Unsupported {
            doc: self.doc,
            at: u32::try_from(at).unwrap_or(u32::MAX),
        }
    }

    fn not_canonical(&self, at: usize) -> TrustError {
        TrustError::NotCanonical {
            doc: self.doc,
            at: u32::try_from(at).unwrap_or(u32::MAX),
        }
    }

    fn decode_err(&self, e: minicbor::decode::Error, at: usize) -> TrustError {
        if e.is_end_of_input() {
            TrustError::Truncated(self.doc)
        } else {
            self.malformed(at)
        }
    }

    fn ty(&self) -> R<Type> {
        let at = self.d.position();
        self.d.datatype().map_err(|e| self.decode_err(e, at))
    }

    /// Checks that the head just read from `start` (followed by `extra` content bytes) is the
    /// shortest encoding of `arg`.
    fn shortest(&self, start: usize, arg: u64, extra: usize) -> R<()> {
        let used = self.d.position() - start - extra;
        if used == head_len(arg) {
            Ok(())
        } else {
            Err(self.not_canonical(start))
        }
    }

    /// An unsigned integer.
    pub(crate) fn uint(&mut self) -> R<u64> {
        let at = self.d.position();
        match self.ty()? {
            Type::U8 | Type::U16 | Type::U32 | Type::U64 => {}
            _ => return Err(self.malformed(at)),
        }
        let v = self.d.u64().map_err(|e| self.decode_err(e, at))?;
        self.shortest(at, v, 0)?;
        Ok(v)
    }

    /// An unsigned integer that fits a `u32`.
    pub(crate) fn u32(&mut self) -> R<u32> {
        let at = self.d.position();
        u32::try_from(self.uint()?).map_err(|_| self.unsupported(at))
    }

    /// A signed integer (major type 0 or 1) that fits an `i64`.
    pub(crate) fn int(&mut self) -> R<i64> {
        let at = self.d.position();
        match self.ty()? {
            Type::U8 | Type::U16 | Type::U32 | Type::U64 => {}
            Type::I8 | Type::I16 | Type::I32 | Type::I64 => {}
            _ => return Err(self.malformed(at)),
        }
        let v = self.d.i64().map_err(|e| self.decode_err(e, at))?;
        let arg = if v < 0 { (-1 - v) as u64 } else { v as u64 };
        self.shortest(at, arg, 0)?;
        Ok(v)
    }

    /// A definite-length byte string.
    pub(crate) fn bytes(&mut self) -> R<&'b [u8]> {
        let at = self.d.position();
        match self.ty()? {
            Type::Bytes => {}
            Type::BytesIndef => return Err(self.not_canonical(at)),
            _ => return Err(self.malformed(at)),
        }
        let b = self.d.bytes().map_err(|e| self.decode_err(e, at))?;
        self.shortest(at, b.len() as u64, b.len())?;
        Ok(b)
    }

    /// A byte string of exactly `N` bytes.
    pub(crate) fn bytes_n<const N: usize>(&mut self) -> R<[u8; N]> {
        let at = self.d.position();
        let b = self.bytes()?;
        <[u8; N]>::try_from(b).map_err(|_| self.malformed(at))
    }

    /// A definite-length text string.
    pub(crate) fn text(&mut self) -> R<&'b str> {
        let at = self.d.position();
        match self.ty()? {
            Type::String => {}
            Type::StringIndef => return Err(self.not_canonical(at)),
            _ => return Err(self.malformed(at)),
        }
        let s = self.d.str().map_err(|e| self.decode_err(e, at))?;
        self.shortest(at, s.len() as u64, s.len())?;
        Ok(s)
    }

    /// The head of a definite-length array; returns its length.
    pub(crate) fn array(&mut self) -> R<u64> {
        let at = self.d.position();
        match self.ty()? {
            Type::Array => {}
            Type::ArrayIndef => return Err(self.not_canonical(at)),
            _ => return Err(self.malformed(at)),
        }
        let n = self
            .d
            .array()
            .map_err(|e| self.decode_err(e, at))?
            .ok_or(self.not_canonical(at))?;
        self.shortest(at, n, 0)?;
        Ok(n)
    }

    /// The head of an array of exactly `n` items.
    pub(crate) fn array_of(&mut self, n: u64) -> R<()> {
        let at = self.d.position();
        if self.array()? == n {
            Ok(())
        } else {
            Err(self.malformed(at))
        }
    }

    /// The head of a definite-length map; returns its number of entries and starts the key
    /// order check for it. Maps in this subset never nest inside a map being read (inner maps
    /// sit in byte strings or come after the outer map's last key), so one slot suffices.
    pub(crate) fn map(&mut self) -> R<u64> {
        let at = self.d.position();
        match self.ty()? {
            Type::Map => {}
            Type::MapIndef => return Err(self.not_canonical(at)),
            _ => return Err(self.malformed(at)),
        }
        let n = self
            .d
            .map()
            .map_err(|e| self.decode_err(e, at))?
            .ok_or(self.not_canonical(at))?;
        self.shortest(at, n, 0)?;
        self.prev_key = None;
        Ok(n)
    }

    /// The head of a map of exactly `n` entries.
    pub(crate) fn map_of(&mut self, n: u64) -> R<()> {
        let at = self.d.position();
        if self.map()? == n {
            Ok(())
        } else {
            Err(self.malformed(at))
        }
    }

    /// A map key, which must sort strictly after the previous key of the same map.
    pub(crate) fn key(&mut self) -> R<Key<'b>> {
        let at = self.d.position();
        let key = match self.ty()? {
            Type::String | Type::StringIndef => Key::Text(self.text()?),
            _ => Key::Int(self.int()?),
        };
        let span = (at, self.d.position());
        if let Some((s, e)) = self.prev_key {
            let input = self.d.input();
            if input[s..e] >= input[span.0..span.1] {
                return Err(self.not_canonical(at));
            }
        }
        self.prev_key = Some(span);
        Ok(key)
    }

    /// A map key that must be the integer `want` (fixed-shape maps: any other key is unknown or
    /// out of order, and both are refused).
    pub(crate) fn key_is(&mut self, want: i64) -> R<()> {
        let at = self.d.position();
        match self.key()? {
            Key::Int(k) if k == want => Ok(()),
            _ => Err(self.unsupported(at)),
        }
    }

    /// A tag, which must be `want`.
    pub(crate) fn tag(&mut self, want: u64) -> R<()> {
        let at = self.d.position();
        match self.ty()? {
            Type::Tag => {}
            _ => return Err(self.malformed(at)),
        }
        let t: Tag = self.d.tag().map_err(|e| self.decode_err(e, at))?;
        self.shortest(at, t.as_u64(), 0)?;
        if t.as_u64() == want {
            Ok(())
        } else {
            Err(self.malformed(at))
        }
    }

    /// Whether the next item is `null`.
    pub(crate) fn is_null(&self) -> R<bool> {
        Ok(self.ty()? == Type::Null)
    }

    /// Reads a `null`.
    pub(crate) fn null(&mut self) -> R<()> {
        let at = self.d.position();
        self.d.null().map_err(|e| self.decode_err(e, at))
    }

    /// Checks that nothing follows the document.
    pub(crate) fn end(&self) -> R<()> {
        if self.d.position() == self.d.input().len() {
            Ok(())
        } else {
            Err(TrustError::TrailingBytes(self.doc))
        }
    }
}
