//! smoltcp over the LAN9118: the interface (static IPv4, default route), the one TCP socket,
//! and the byte stream TLS reads and writes ([`Io`], embedded-io's blocking traits).
//!
//! Blocking reads and writes poll the interface themselves and sleep ([`clock::idle`]) when
//! nothing moved. A read waits for data until one of two limits:
//!
//! * the caller's deadline, but only while the stream is between TLS records: then the TLS
//!   layer has consumed nothing of the next record and gets `ErrorKind::TimedOut`, which it
//!   passes up unchanged, so [`crate::Link::poll`] can stop waiting and the session goes on;
//! * [`STALL_MS`] without progress inside a record (or for a write): the connection is dead
//!   (`ErrorKind::BrokenPipe` / `TimedOut` on write), the session ends.
//!
//! The record boundary is found by following the TLS record headers in the bytes handed up
//! ([`Framing`]); embedded-tls reads a header, then exactly the record's body.

use core::cell::RefCell;

use embedded_io::{ErrorKind, ErrorType, Read, Write};
use smoltcp::iface::{Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};

use crate::clock;
use crate::lan9118::Lan9118;

/// How long a read inside a TLS record or a write may go without progress.
pub const STALL_MS: u64 = 20_000;

/// Where the inbound byte stream stands in TLS's record framing.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Framing {
    /// Header bytes of the current record seen so far (0 = at a boundary or in a body).
    header: u8,
    /// The length's high byte, once seen.
    len_hi: u8,
    /// Body bytes still to come.
    body: usize,
}

impl Framing {
    fn feed(&mut self, mut bytes: &[u8]) {
        while let Some((&b, rest)) = bytes.split_first() {
            if self.body > 0 {
                let take = self.body.min(bytes.len());
                self.body -= take;
                bytes = &bytes[take..];
                continue;
            }
            match self.header {
                3 => self.len_hi = b,
                4 => self.body = usize::from(u16::from_be_bytes([self.len_hi, b])),
                _ => {}
            }
            self.header = (self.header + 1) % 5;
            bytes = rest;
        }
    }

    fn at_boundary(&self) -> bool {
        self.header == 0 && self.body == 0
    }
}

/// The interface, the socket and the device, shared by the link and the TLS stream.
pub(crate) struct Core<'s> {
    pub dev: Lan9118<'s>,
    pub iface: Interface,
    pub sockets: SocketSet<'s>,
    pub tcp: SocketHandle,
    pub framing: Framing,
    /// Deadline (ms) of reads at a record boundary.
    pub deadline: u64,
}

/// smoltcp's clock: the board's milliseconds.
pub(crate) fn now() -> Instant {
    Instant::from_millis(i64::try_from(clock::now_ms()).unwrap_or(i64::MAX))
}

impl<'s> Core<'s> {
    /// Runs the interface once: frames in, frames out, timers.
    pub fn pump(&mut self) -> bool {
        self.iface.poll(now(), &mut self.dev, &mut self.sockets) == PollResult::SocketStateChanged
    }

    /// The TCP socket.
    pub fn socket(&mut self) -> &mut tcp::Socket<'s> {
        self.sockets.get_mut(self.tcp)
    }

    /// Sleeps until the next tick unless smoltcp has work due now.
    pub fn wait(&mut self) {
        if self.iface.poll_delay(now(), &self.sockets) != Some(Duration::ZERO) {
            clock::idle();
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        if buf.is_empty() {
            return Ok(0);
        }
        let start = clock::now_ms();
        loop {
            self.pump();
            let socket = self.socket();
            if socket.can_recv() {
                let n = socket
                    .recv_slice(buf)
                    .map_err(|_| ErrorKind::ConnectionReset)?;
                if n > 0 {
                    self.framing.feed(&buf[..n]);
                    return Ok(n);
                }
            }
            if !socket.may_recv() {
                // The peer closed (FIN) or the connection was reset: end of stream.
                return Ok(0);
            }
            let now = clock::now_ms();
            if self.framing.at_boundary() {
                if now >= self.deadline {
                    return Err(ErrorKind::TimedOut);
                }
            } else if now >= start + STALL_MS {
                return Err(ErrorKind::BrokenPipe);
            }
            self.wait();
        }
    }

    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        if buf.is_empty() {
            return Ok(0);
        }
        let start = clock::now_ms();
        loop {
            self.pump();
            let socket = self.socket();
            if !socket.may_send() {
                return Err(ErrorKind::ConnectionReset);
            }
            if socket.can_send() {
                let n = socket
                    .send_slice(buf)
                    .map_err(|_| ErrorKind::ConnectionReset)?;
                if n > 0 {
                    self.pump();
                    return Ok(n);
                }
            }
            if clock::now_ms() >= start + STALL_MS {
                return Err(ErrorKind::TimedOut);
            }
            self.wait();
        }
    }
}

/// The TCP byte stream as embedded-io sees it: a copyable handle on the shared [`Core`].
#[derive(Clone, Copy)]
pub(crate) struct Io<'s>(pub &'s RefCell<Core<'s>>);

impl Io<'_> {
    fn with<R>(
        &mut self,
        f: impl FnOnce(&mut Core<'_>) -> Result<R, ErrorKind>,
    ) -> Result<R, ErrorKind> {
        let mut core = self.0.try_borrow_mut().map_err(|_| ErrorKind::Other)?;
        f(&mut core)
    }
}

impl ErrorType for Io<'_> {
    type Error = ErrorKind;
}

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        self.with(|c| c.read(buf))
    }
}

impl Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        self.with(|c| c.write(buf))
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        // Segments leave as soon as they are written (`write` pumps); the TLS layer's flush
        // needs nothing more.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Framing;

    #[test]
    fn framing_follows_records() {
        let mut f = Framing::default();
        assert!(f.at_boundary());
        f.feed(&[23, 3, 3]);
        assert!(!f.at_boundary());
        f.feed(&[0, 2, 0xaa]);
        assert!(!f.at_boundary());
        f.feed(&[0xbb, 23, 3, 3, 0, 0]);
        assert!(f.at_boundary(), "empty record");
        f.feed(&[22, 3, 3, 1, 0]);
        f.feed(&[0; 255]);
        assert!(!f.at_boundary());
        f.feed(&[0]);
        assert!(f.at_boundary());
    }
}
