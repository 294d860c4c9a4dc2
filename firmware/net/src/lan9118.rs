//! The SMSC LAN9118 Ethernet controller as QEMU's `mps2-an500` models it (hw/net/lan9118.c, at
//! [`BASE`]), driven by polling (no interrupt), as a smoltcp `phy::Device`.

/// The controller's base address on `mps2-an500`.
pub const BASE: usize = 0x4020_0000;

/// Why the controller could not be brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhyError {
    /// ID_REV does not read as a LAN9118.
    NotFound,
    /// The soft reset or a MAC CSR access did not complete.
    Timeout,
}

/// The controller.
#[derive(Debug)]
pub struct Lan9118 {
    base: usize,
}

impl Lan9118 {
    /// The controller at `base`, untouched.
    ///
    /// # Safety
    /// `base` must be a LAN9118's register window that nothing else drives.
    pub const unsafe fn new(base: usize) -> Self {
        Lan9118 { base }
    }

    /// Soft reset, MAC address, transmitter and receiver on.
    pub fn init(&mut self, _mac: [u8; 6]) -> Result<(), PhyError> {
        let _ = self.base;
        Err(PhyError::NotFound)
    }
}
