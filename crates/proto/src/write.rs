//! Writing into caller-owned buffers.

use core::fmt;

/// The caller's buffer cannot hold the encoded message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferTooSmall;

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("output buffer too small")
    }
}

impl core::error::Error for BufferTooSmall {}

/// A cursor over a caller buffer. Implements [`fmt::Write`] so numbers can be formatted in.
pub(crate) struct SliceWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> SliceWriter<'b> {
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        SliceWriter { buf, len: 0 }
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> Result<(), BufferTooSmall> {
        let end = self.len.checked_add(b.len()).ok_or(BufferTooSmall)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(BufferTooSmall)?;
        dst.copy_from_slice(b);
        self.len = end;
        Ok(())
    }

    pub(crate) fn raw(&mut self, s: &str) -> Result<(), BufferTooSmall> {
        self.bytes(s.as_bytes())
    }

    pub(crate) fn fmt(&mut self, args: fmt::Arguments<'_>) -> Result<(), BufferTooSmall> {
        fmt::Write::write_fmt(self, args).map_err(|_| BufferTooSmall)
    }

    pub(crate) fn u64(&mut self, v: u64) -> Result<(), BufferTooSmall> {
        self.fmt(format_args!("{v}"))
    }

    /// A JSON string: quotes, and escapes for `"`, `\` and control characters.
    pub(crate) fn json_str(&mut self, s: &str) -> Result<(), BufferTooSmall> {
        self.bytes(b"\"")?;
        let mut start = 0;
        for (i, c) in s.char_indices() {
            let esc: Option<&str> = match c {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '\n' => Some("\\n"),
                '\r' => Some("\\r"),
                '\t' => Some("\\t"),
                '\u{8}' => Some("\\b"),
                '\u{c}' => Some("\\f"),
                c if (c as u32) < 0x20 => None,
                _ => continue,
            };
            self.raw(&s[start..i])?;
            match esc {
                Some(e) => self.raw(e)?,
                None => self.fmt(format_args!("\\u{:04x}", c as u32))?,
            }
            start = i + c.len_utf8();
        }
        self.raw(&s[start..])?;
        self.bytes(b"\"")
    }

    #[cfg(feature = "alloc")]
    /// A JSON string of the standard base64 (with padding) of `data`: the `"p"` of a JSON
    /// stream block.
    pub(crate) fn json_base64(&mut self, data: &[u8]) -> Result<(), BufferTooSmall> {
        use base64::Engine as _;
        self.bytes(b"\"")?;
        let rest = self.buf.get_mut(self.len..).ok_or(BufferTooSmall)?;
        let n = base64::engine::general_purpose::STANDARD
            .encode_slice(data, rest)
            .map_err(|_| BufferTooSmall)?;
        self.len += n;
        self.bytes(b"\"")
    }

    /// `"key":` with the key escaped.
    pub(crate) fn key(&mut self, k: &str) -> Result<(), BufferTooSmall> {
        self.json_str(k)?;
        self.bytes(b":")
    }

    /// The bytes written so far, as text (everything written is UTF-8).
    pub(crate) fn finish(self) -> &'b str {
        let Self { buf, len } = self;
        let out: &'b [u8] = &buf[..len];
        // Every write above copies whole UTF-8 strings, so this cannot fail; the empty
        // fallback keeps the code panic-free without `unsafe`.
        core::str::from_utf8(out).unwrap_or("")
    }
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.raw(s).map_err(|_| fmt::Error)
    }
}
