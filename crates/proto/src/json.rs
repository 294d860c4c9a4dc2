//! A small, strict, allocation-free JSON reader (borrowed values) for the Jobs messages.
//!
//! Why not `serde-json-core`'s deserializer (the STACK.md choice) for decoding: it has no
//! `deserialize_any`, so the spec's "number *or* digit string" fields (`filesize`, `fileid`,
//! `updatedBy`, §2.2) and the platform-chosen `sig-…` key cannot be expressed with derives; its
//! `ignored_any` skips unknown scalars by scanning to the next delimiter (accepting invalid
//! JSON); and map keys of non-string type reach an `unreachable!()`. This reader validates the
//! whole document up front (RFC 8259 grammar, UTF-8, nesting ≤ [`JSON_DEPTH_MAX`]), then hands
//! out borrowed [`Value`]s. Strings stay escaped ([`JsonStr`]); unescaping uses
//! `serde-json-core`'s escaped-slice API ([`serde_json_core::str::EscapedStr`]) into a caller
//! buffer. Duplicate keys: the first occurrence wins (as coreJSON's search does).

use core::fmt;

use serde_json_core::str::{EscapedStr, EscapedStringFragment};

use crate::limits::JSON_DEPTH_MAX;

/// What is wrong with a JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonErrorKind {
    /// The payload is not UTF-8.
    NotUtf8,
    /// The text ended inside a value.
    UnexpectedEnd,
    /// A character that cannot appear here.
    UnexpectedChar,
    /// A malformed number.
    InvalidNumber,
    /// A malformed escape sequence in a string.
    InvalidEscape,
    /// An unescaped control character inside a string.
    ControlChar,
    /// Nesting deeper than [`JSON_DEPTH_MAX`].
    TooDeep,
    /// Non-whitespace after the value.
    TrailingCharacters,
    /// The escape is valid JSON but cannot be unescaped (a `\uD800`–`\uDFFF` surrogate).
    UnsupportedEscape,
    /// The unescape buffer is too small.
    BufferTooSmall,
}

/// A JSON error and the byte offset where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonError {
    /// What went wrong.
    pub kind: JsonErrorKind,
    /// Byte offset in the input.
    pub at: usize,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JSON error {:?} at byte {}", self.kind, self.at)
    }
}

impl core::error::Error for JsonError {}

/// A JSON string as it appears in the input, between the quotes, still escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonStr<'a>(&'a str);

impl<'a> JsonStr<'a> {
    /// The escaped text between the quotes.
    pub fn raw(&self) -> &'a str {
        self.0
    }

    /// The text itself when it holds no escape sequence.
    pub fn as_plain(&self) -> Option<&'a str> {
        (!self.0.contains('\\')).then_some(self.0)
    }

    /// Whether the string contains escape sequences.
    pub fn has_escapes(&self) -> bool {
        self.0.contains('\\')
    }

    /// Unescapes into `buf`, returning the text.
    pub fn unescape<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, JsonError> {
        let mut n = 0usize;
        for frag in EscapedStr(self.0).fragments() {
            let mut tmp = [0u8; 4];
            let bytes = match frag.map_err(|_| self.err(JsonErrorKind::UnsupportedEscape))? {
                EscapedStringFragment::NotEscaped(s) => s.as_bytes(),
                EscapedStringFragment::Escaped(c) => c.encode_utf8(&mut tmp).as_bytes(),
            };
            let dst = buf
                .get_mut(n..n + bytes.len())
                .ok_or(self.err(JsonErrorKind::BufferTooSmall))?;
            dst.copy_from_slice(bytes);
            n += bytes.len();
        }
        core::str::from_utf8(&buf[..n]).map_err(|_| self.err(JsonErrorKind::UnsupportedEscape))
    }

    /// Length of the unescaped text, `None` for an unsupported escape.
    pub fn unescaped_len(&self) -> Option<usize> {
        let mut n = 0;
        for frag in EscapedStr(self.0).fragments() {
            n += match frag.ok()? {
                EscapedStringFragment::NotEscaped(s) => s.len(),
                EscapedStringFragment::Escaped(c) => c.len_utf8(),
            };
        }
        Some(n)
    }

    /// Whether the unescaped text equals `other`.
    pub fn eq_str(&self, other: &str) -> bool {
        if let Some(p) = self.as_plain() {
            return p == other;
        }
        let mut rest = other.as_bytes();
        for frag in EscapedStr(self.0).fragments() {
            let mut tmp = [0u8; 4];
            let bytes = match frag {
                Ok(EscapedStringFragment::NotEscaped(s)) => s.as_bytes(),
                Ok(EscapedStringFragment::Escaped(c)) => c.encode_utf8(&mut tmp).as_bytes(),
                Err(_) => return false,
            };
            match rest.strip_prefix(bytes) {
                Some(r) => rest = r,
                None => return false,
            }
        }
        rest.is_empty()
    }

    fn err(&self, kind: JsonErrorKind) -> JsonError {
        JsonError { kind, at: 0 }
    }
}

/// A JSON value borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number, as written.
    Number(&'a str),
    /// A string.
    String(JsonStr<'a>),
    /// An array.
    Array(JsonArray<'a>),
    /// An object.
    Object(JsonObject<'a>),
}

impl<'a> Value<'a> {
    /// The number as an unsigned integer, if it is written as one (no sign, fraction or
    /// exponent) and fits.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => parse_decimal(n),
            _ => None,
        }
    }
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<JsonStr<'a>> {
        match self {
            Value::String(s) => Some(*s),
            _ => None,
        }
    }
    /// The object, if this is one.
    pub fn as_object(&self) -> Option<JsonObject<'a>> {
        match self {
            Value::Object(o) => Some(*o),
            _ => None,
        }
    }
    /// The array, if this is one.
    pub fn as_array(&self) -> Option<JsonArray<'a>> {
        match self {
            Value::Array(a) => Some(*a),
            _ => None,
        }
    }
    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

/// Parses a plain decimal unsigned integer (digits only, no leading zeros but `0`).
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    b.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add((d - b'0') as u64)
    })
}

/// A validated JSON object (the text including its braces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonObject<'a>(&'a str);

/// A validated JSON array (the text including its brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonArray<'a>(&'a str);

impl<'a> JsonObject<'a> {
    /// The JSON text of the object.
    pub fn raw(&self) -> &'a str {
        self.0
    }

    /// The members in document order.
    pub fn iter(&self) -> ObjectIter<'a> {
        ObjectIter {
            sc: Scanner::new(self.0, 1),
            first: true,
        }
    }

    /// The value of the first member whose (unescaped) key is `key`.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.iter().find(|(k, _)| k.eq_str(key)).map(|(_, v)| v)
    }

    /// Whether the object has no members.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

impl<'a> JsonArray<'a> {
    /// The JSON text of the array.
    pub fn raw(&self) -> &'a str {
        self.0
    }

    /// The elements in order.
    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter {
            sc: Scanner::new(self.0, 1),
            first: true,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether the array is empty.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// Iterator over an object's members. The object was validated when parsed, so iteration does
/// not fail.
pub struct ObjectIter<'a> {
    sc: Scanner<'a>,
    first: bool,
}

impl<'a> Iterator for ObjectIter<'a> {
    type Item = (JsonStr<'a>, Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let sc = &mut self.sc;
        sc.ws();
        match sc.peek()? {
            b'}' => return None,
            b',' if !self.first => sc.i += 1,
            _ if self.first => {}
            _ => return None,
        }
        self.first = false;
        sc.ws();
        let k = sc.string().ok()?;
        sc.ws();
        sc.expect(b':').ok()?;
        sc.ws();
        let v = sc.value(1).ok()?;
        Some((k, v))
    }
}

/// Iterator over an array's elements.
pub struct ArrayIter<'a> {
    sc: Scanner<'a>,
    first: bool,
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let sc = &mut self.sc;
        sc.ws();
        match sc.peek()? {
            b']' => return None,
            b',' if !self.first => sc.i += 1,
            _ if self.first => {}
            _ => return None,
        }
        self.first = false;
        sc.ws();
        sc.value(1).ok()
    }
}

/// Parses a whole JSON text (surrounding whitespace allowed).
pub fn parse(input: &[u8]) -> Result<Value<'_>, JsonError> {
    let s = core::str::from_utf8(input).map_err(|e| JsonError {
        kind: JsonErrorKind::NotUtf8,
        at: e.valid_up_to(),
    })?;
    let mut sc = Scanner::new(s, 0);
    sc.ws();
    let v = sc.value(0)?;
    sc.ws();
    if sc.i != s.len() {
        return Err(sc.err(JsonErrorKind::TrailingCharacters));
    }
    Ok(v)
}

/// Parses a JSON text that must be an object; `None` when it is another kind of value.
pub fn parse_object(input: &[u8]) -> Result<Option<JsonObject<'_>>, JsonError> {
    Ok(parse(input)?.as_object())
}

struct Scanner<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Scanner<'a> {
    /// A scanner positioned `skip` bytes into `s` (1 to step inside a container).
    fn new(s: &'a str, skip: usize) -> Self {
        Scanner { s, i: skip }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn err(&self, kind: JsonErrorKind) -> JsonError {
        JsonError { kind, at: self.i }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn next_byte(&mut self) -> Result<u8, JsonError> {
        let b = self.peek().ok_or(self.err(JsonErrorKind::UnexpectedEnd))?;
        self.i += 1;
        Ok(b)
    }

    fn expect(&mut self, b: u8) -> Result<(), JsonError> {
        match self.peek() {
            Some(c) if c == b => {
                self.i += 1;
                Ok(())
            }
            Some(_) => Err(self.err(JsonErrorKind::UnexpectedChar)),
            None => Err(self.err(JsonErrorKind::UnexpectedEnd)),
        }
    }

    fn literal(&mut self, lit: &str) -> Result<(), JsonError> {
        for &b in lit.as_bytes() {
            self.expect(b)?;
        }
        Ok(())
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, JsonError> {
        let start = self.i;
        match self.peek().ok_or(self.err(JsonErrorKind::UnexpectedEnd))? {
            b'{' => {
                self.container(depth + 1, b'{', b'}', true)?;
                Ok(Value::Object(JsonObject(&self.s[start..self.i])))
            }
            b'[' => {
                self.container(depth + 1, b'[', b']', false)?;
                Ok(Value::Array(JsonArray(&self.s[start..self.i])))
            }
            b'"' => Ok(Value::String(self.string()?)),
            b't' => self.literal("true").map(|_| Value::Bool(true)),
            b'f' => self.literal("false").map(|_| Value::Bool(false)),
            b'n' => self.literal("null").map(|_| Value::Null),
            b'-' | b'0'..=b'9' => {
                self.number()?;
                Ok(Value::Number(&self.s[start..self.i]))
            }
            _ => Err(self.err(JsonErrorKind::UnexpectedChar)),
        }
    }

    fn container(
        &mut self,
        depth: usize,
        open: u8,
        close: u8,
        object: bool,
    ) -> Result<(), JsonError> {
        if depth > JSON_DEPTH_MAX {
            return Err(self.err(JsonErrorKind::TooDeep));
        }
        self.expect(open)?;
        self.ws();
        if self.peek() == Some(close) {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if object {
                if self.peek() != Some(b'"') {
                    return Err(self.err_here());
                }
                self.string()?;
                self.ws();
                self.expect(b':')?;
                self.ws();
            }
            self.value(depth)?;
            self.ws();
            match self.next_byte()? {
                b',' => continue,
                c if c == close => return Ok(()),
                _ => {
                    self.i -= 1;
                    return Err(self.err(JsonErrorKind::UnexpectedChar));
                }
            }
        }
    }

    fn err_here(&self) -> JsonError {
        if self.peek().is_none() {
            self.err(JsonErrorKind::UnexpectedEnd)
        } else {
            self.err(JsonErrorKind::UnexpectedChar)
        }
    }

    fn string(&mut self) -> Result<JsonStr<'a>, JsonError> {
        self.expect(b'"')?;
        let start = self.i;
        loop {
            match self.next_byte()? {
                b'"' => return Ok(JsonStr(&self.s[start..self.i - 1])),
                b'\\' => match self.next_byte()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        for _ in 0..4 {
                            if !self.next_byte()?.is_ascii_hexdigit() {
                                self.i -= 1;
                                return Err(self.err(JsonErrorKind::InvalidEscape));
                            }
                        }
                    }
                    _ => {
                        self.i -= 1;
                        return Err(self.err(JsonErrorKind::InvalidEscape));
                    }
                },
                c if c < 0x20 => {
                    self.i -= 1;
                    return Err(self.err(JsonErrorKind::ControlChar));
                }
                _ => {}
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<(), JsonError> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err(JsonErrorKind::InvalidNumber)),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(self.err(JsonErrorKind::InvalidNumber));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.err(JsonErrorKind::InvalidNumber));
            }
        }
        Ok(())
    }
}
