//! Console lines over semihosting, formatted with `core::fmt` into a fixed buffer (no heap).
//!
//! The lines the host matches are the shared contract's (`app ...`, `net up`, `mqtt connected`,
//! `job <id> received`, `download <n>/<total>`, `status <json>`, `self-test pass|FAIL`,
//! `reset`, `error <what>`, `fig <name>=<value>`); `event <name>` lines say what else the agent
//! reported, for a reader of the log.

use core::fmt;

/// One console line; text past its capacity is dropped and the line ends in `~`.
pub struct Con {
    buf: [u8; 640],
    len: usize,
    cut: bool,
}

impl Con {
    /// An empty line.
    pub const fn new() -> Self {
        Con {
            buf: [0; 640],
            len: 0,
            cut: false,
        }
    }

    /// Appends raw bytes (a JSON payload).
    pub fn bytes(&mut self, b: &[u8]) {
        let room = self.buf.len() - 1 - self.len;
        let n = b.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
        self.len += n;
        self.cut |= n < b.len();
    }

    /// Writes the line.
    pub fn send(mut self) {
        if self.cut {
            self.buf[self.len] = b'~';
            self.len += 1;
        }
        ferrota_fw_board::report(&self.buf[..self.len]);
    }
}

impl fmt::Write for Con {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}

/// Prints one formatted line.
macro_rules! say {
    ($($arg:tt)*) => {{
        let mut c = $crate::console::Con::new();
        let _ = core::fmt::Write::write_fmt(&mut c, format_args!($($arg)*));
        c.send();
    }};
}
pub(crate) use say;
