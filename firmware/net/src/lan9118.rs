//! The SMSC LAN9118 Ethernet controller as QEMU's `mps2-an500` models it (hw/net/lan9118.c, at
//! [`BASE`]), driven by polling (no interrupt), as a smoltcp [`phy::Device`].
//!
//! What the driver relies on (the datasheet's PIO interface, as QEMU 7.2 implements it):
//!
//! * `ID_REV` reads 0x0118_xxxx, `BYTE_TEST` 0x8765_4321; `HW_CFG.SRST` resets the chip (QEMU
//!   at once; the chip within microseconds: the driver polls it and `PMT_CTRL.READY`).
//! * The MAC's own registers sit behind `MAC_CSR_CMD`/`MAC_CSR_DATA` (busy bit 31, read bit
//!   30): `MAC_CR` (TXEN, RXEN, full duplex; promiscuous off, so only frames to our address and
//!   broadcasts come in), `ADDRH`/`ADDRL` (the address QEMU's filter compares with).
//! * Receive: `RX_FIFO_INF[23:16]` counts status words; a status gives the frame length with
//!   its CRC in bits 29:16 and an error summary in bit 15; the frame follows in the RX data FIFO
//!   as little-endian words (`RX_CFG` = 0: no offset, 4-byte end alignment).
//! * Transmit: command A (buffer size, first and last segment), command B (packet length, tag),
//!   then the frame as little-endian words; `TX_FIFO_INF[15:0]` is the free data space,
//!   `[23:16]` the status words, which the driver drains (`TX_CFG.TXSAO` set as well, so a full
//!   status FIFO never stops the transmitter).
//!
//! One frame buffer each way (1,536 bytes: a 1,514-byte frame and the CRC word, rounded to
//! words), borrowed by the driver, so smoltcp's tokens lend it instead of a heap.

use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// The controller's base address on `mps2-an500` (QEMU 7.2: `info mtree` shows `lan9118-mmio`
/// at 0xa0000000 on this board; 0x40200000 is its address on the AN385/AN386 images).
pub const BASE: usize = 0xA000_0000;

/// Bytes of a frame buffer: the largest Ethernet frame (1,514) and its CRC, rounded to words.
pub const FRAME: usize = 1536;

/// The largest frame handed to or taken from smoltcp (no CRC).
const MTU: usize = 1514;

const RX_DATA: usize = 0x00;
const TX_DATA: usize = 0x20;
const RX_STATUS: usize = 0x40;
const TX_STATUS: usize = 0x48;
const ID_REV: usize = 0x50;
const IRQ_CFG: usize = 0x54;
const INT_STS: usize = 0x58;
const INT_EN: usize = 0x5c;
const BYTE_TEST: usize = 0x64;
const RX_CFG: usize = 0x6c;
const TX_CFG: usize = 0x70;
const HW_CFG: usize = 0x74;
const RX_FIFO_INF: usize = 0x7c;
const TX_FIFO_INF: usize = 0x80;
const PMT_CTRL: usize = 0x84;
const FREE_RUN: usize = 0x9c;
const MAC_CSR_CMD: usize = 0xa4;
const MAC_CSR_DATA: usize = 0xa8;

const HW_CFG_SRST: u32 = 1;
const PMT_CTRL_READY: u32 = 1;
const TX_CFG_TX_ON: u32 = 1 << 1;
const TX_CFG_TXSAO: u32 = 1 << 2;
const CSR_BUSY: u32 = 1 << 31;
const CSR_READ: u32 = 1 << 30;
const MAC_CR: u32 = 1;
const MAC_ADDRH: u32 = 2;
const MAC_ADDRL: u32 = 3;
const MAC_CR_TXEN: u32 = 1 << 3;
const MAC_CR_RXEN: u32 = 1 << 2;
const MAC_CR_FDPX: u32 = 1 << 20;
const RX_STS_ES: u32 = 1 << 15;
const TX_CMD_A_FIRST: u32 = 1 << 13;
const TX_CMD_A_LAST: u32 = 1 << 12;

/// Polls of a self-clearing bit before the driver gives up (the chip needs microseconds).
const SPINS: u32 = 100_000;

/// Why the controller could not be brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhyError {
    /// ID_REV / BYTE_TEST do not read as a LAN9118.
    NotFound,
    /// The soft reset or a MAC CSR access did not complete.
    Timeout,
}

/// The register window (a copyable handle; only [`Lan9118`] makes one).
#[derive(Debug, Clone, Copy)]
struct Regs {
    base: usize,
}

impl Regs {
    fn read(self, offset: usize) -> u32 {
        // SAFETY: `base` is the LAN9118's register window (`Lan9118::new`'s contract) and
        // `offset` one of its 32-bit registers; MMIO needs volatile accesses.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }

    fn write(self, offset: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }

    fn wait_clear(self, offset: usize, bit: u32) -> Result<(), PhyError> {
        for _ in 0..SPINS {
            if self.read(offset) & bit == 0 {
                return Ok(());
            }
        }
        Err(PhyError::Timeout)
    }

    fn mac_write(self, reg: u32, value: u32) -> Result<(), PhyError> {
        self.wait_clear(MAC_CSR_CMD, CSR_BUSY)?;
        self.write(MAC_CSR_DATA, value);
        self.write(MAC_CSR_CMD, CSR_BUSY | reg);
        self.wait_clear(MAC_CSR_CMD, CSR_BUSY)
    }

    fn mac_read(self, reg: u32) -> Result<u32, PhyError> {
        self.wait_clear(MAC_CSR_CMD, CSR_BUSY)?;
        self.write(MAC_CSR_CMD, CSR_BUSY | CSR_READ | reg);
        self.wait_clear(MAC_CSR_CMD, CSR_BUSY)?;
        Ok(self.read(MAC_CSR_DATA))
    }

    /// Sends `frame` (at most [`FRAME`] bytes) as one packet.
    fn send(self, frame: &[u8]) {
        let len = frame.len() as u32;
        self.write(TX_DATA, TX_CMD_A_FIRST | TX_CMD_A_LAST | len);
        // The tag (bits 31:16) comes back in the TX status; the length is the packet's.
        self.write(TX_DATA, (len << 16) | len);
        let mut words = frame.chunks_exact(4);
        for w in words.by_ref() {
            self.write(TX_DATA, u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 4];
            w[..rest.len()].copy_from_slice(rest);
            self.write(TX_DATA, u32::from_le_bytes(w));
        }
        // Nobody waits for the transmit statuses: drop them.
        while (self.read(TX_FIFO_INF) >> 16) & 0xff != 0 {
            let _ = self.read(TX_STATUS);
        }
    }

    /// Whether the TX data FIFO has room for a whole frame and its two command words.
    fn tx_room(self) -> bool {
        (self.read(TX_FIFO_INF) & 0xffff) as usize >= FRAME + 8
    }
}

/// One frame buffer (a word multiple, so the FIFO words fill it exactly).
pub type Frame = [u8; FRAME];

/// The controller and its two frame buffers (borrowed: the caller places them, e.g. in a
/// zero-initialised static, without copying 3 KB around).
#[derive(Debug)]
pub struct Lan9118<'b> {
    regs: Regs,
    rx: &'b mut Frame,
    tx: &'b mut Frame,
}

impl<'b> Lan9118<'b> {
    /// The controller at `base`, untouched, with its receive and transmit frame buffers.
    ///
    /// # Safety
    /// `base` must be a LAN9118's register window that nothing else drives while this value
    /// lives.
    pub unsafe fn new(base: usize, rx: &'b mut Frame, tx: &'b mut Frame) -> Self {
        Lan9118 {
            regs: Regs { base },
            rx,
            tx,
        }
    }

    /// Soft reset, interrupts off, our MAC address, transmitter and receiver on.
    pub fn init(&mut self, mac: [u8; 6]) -> Result<(), PhyError> {
        let r = self.regs;
        if r.read(ID_REV) >> 16 != 0x0118 || r.read(BYTE_TEST) != 0x8765_4321 {
            return Err(PhyError::NotFound);
        }
        r.write(HW_CFG, HW_CFG_SRST);
        r.wait_clear(HW_CFG, HW_CFG_SRST)?;
        if !(0..SPINS).any(|_| r.read(PMT_CTRL) & PMT_CTRL_READY != 0) {
            return Err(PhyError::Timeout);
        }
        r.write(INT_EN, 0);
        r.write(INT_STS, u32::MAX);
        r.write(IRQ_CFG, 0);
        r.write(RX_CFG, 0);
        r.write(TX_CFG, TX_CFG_TX_ON | TX_CFG_TXSAO);
        r.mac_write(
            MAC_ADDRL,
            u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]),
        )?;
        r.mac_write(MAC_ADDRH, u32::from_le_bytes([mac[4], mac[5], 0, 0]))?;
        r.mac_write(MAC_CR, MAC_CR_TXEN | MAC_CR_RXEN | MAC_CR_FDPX)?;
        if r.mac_read(MAC_ADDRL)? != u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]) {
            return Err(PhyError::NotFound);
        }
        Ok(())
    }

    /// The chip's free-running counter (25 MHz): emulated time, mixed into the random seed.
    pub fn free_run(&self) -> u32 {
        self.regs.read(FREE_RUN)
    }

    /// Takes the next good frame out of the RX FIFO into the buffer: its length without CRC.
    /// Frames with errors or of impossible sizes are read out and dropped.
    fn receive_frame(&mut self) -> Option<usize> {
        let r = self.regs;
        while (r.read(RX_FIFO_INF) >> 16) & 0xff != 0 {
            let status = r.read(RX_STATUS);
            let len = ((status >> 16) & 0x3fff) as usize;
            let words = len.div_ceil(4);
            let good = status & RX_STS_ES == 0 && (14 + 4..=FRAME).contains(&len);
            for i in 0..words {
                let w = r.read(RX_DATA);
                if good {
                    self.rx[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
                }
            }
            if good {
                return Some(len - 4);
            }
        }
        None
    }
}

/// A received frame, in the driver's RX buffer.
pub struct RxToken<'a>(&'a [u8]);

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.0)
    }
}

/// Room for one frame to send, in the driver's TX buffer.
pub struct TxToken<'a> {
    regs: Regs,
    buf: &'a mut [u8; FRAME],
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        // smoltcp never asks for more than the MTU it was given; clamp rather than trust it.
        let frame = &mut self.buf[..len.min(MTU)];
        let out = f(frame);
        self.regs.send(frame);
        out
    }
}

impl<'b> phy::Device for Lan9118<'b> {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a>
    where
        Self: 'a;

    fn receive(&mut self, _: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        // smoltcp may answer a received frame at once (an ACK) through the token handed out
        // with it: take a frame only when the TX FIFO has room for that answer.
        if !self.regs.tx_room() {
            return None;
        }
        let len = self.receive_frame()?;
        let regs = self.regs;
        Some((
            RxToken(&self.rx[..len]),
            TxToken {
                regs,
                buf: &mut *self.tx,
            },
        ))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxToken<'_>> {
        self.regs.tx_room().then_some(TxToken {
            regs: self.regs,
            buf: &mut *self.tx,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = Some(1);
        // The chip's checksum offload is not modelled by QEMU: smoltcp computes every sum.
        let mut sums = ChecksumCapabilities::default();
        sums.ipv4 = Checksum::Both;
        sums.tcp = Checksum::Both;
        caps.checksum = sums;
        caps
    }
}
