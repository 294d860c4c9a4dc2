//! Device states to QEMU memory images.
//!
//! [`export`] reads a `ferrota_t2g::Device` as the DBM sees it right after a reset (single-bank
//! mode, WORK_ERR_SILENT set so erased work flash reads 0xFF), writes one raw file per window of
//! [`crate::map`] plus the [`BoardInputs`] block, and returns the `-device loader` options that
//! put them at the board's addresses.

use std::path::{Path, PathBuf};

use ferrota_t2g::Device;

use crate::inputs::BoardInputs;
use crate::map::{
    Board, CM0P_WINDOW, LOG_SIZE, SFLASH_SIZE, T2G_CODE, T2G_LOG, T2G_SFLASH, UPPER_SBM_OFFSET,
};

/// One file for QEMU's generic loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    /// The raw file.
    pub file: PathBuf,
    /// Where it goes in the emulated machine.
    pub addr: u32,
}

impl Load {
    /// The QEMU option value: `loader,file=...,addr=...,force-raw=on`.
    pub fn qemu_device(&self) -> String {
        format!(
            "loader,file={},addr={:#x},force-raw=on",
            self.file.display(),
            self.addr
        )
    }
}

/// Errors while exporting.
#[derive(Debug)]
pub enum ExportError {
    /// The device refused a read.
    Device(ferrota_t2g::Error),
    /// A file could not be written.
    Io(std::io::Error),
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::Device(e) => write!(f, "reading the device: {e}"),
            ExportError::Io(e) => write!(f, "writing an image: {e}"),
        }
    }
}

impl std::error::Error for ExportError {}

impl From<ferrota_t2g::Error> for ExportError {
    fn from(e: ferrota_t2g::Error) -> Self {
        ExportError::Device(e)
    }
}

impl From<std::io::Error> for ExportError {
    fn from(e: std::io::Error) -> Self {
        ExportError::Io(e)
    }
}

/// A window's name, T2G address and bytes.
pub type Window = (&'static str, u32, Vec<u8>);

/// The bytes of each window as the DBM reads them.
pub fn windows(dev: &Device) -> Result<Vec<Window>, ferrota_t2g::Error> {
    let mut d = dev.clone();
    d.reset();
    d.set_work_err_silent(true)?;
    let mut out = Vec::new();
    for (name, addr, len) in [
        ("sflash", T2G_SFLASH, SFLASH_SIZE),
        ("cm0p-lower", T2G_CODE, CM0P_WINDOW),
        ("cm0p-upper", T2G_CODE + UPPER_SBM_OFFSET, CM0P_WINDOW),
        ("marker-log", T2G_LOG, LOG_SIZE),
    ] {
        let mut b = vec![0u8; len as usize];
        d.read(addr, &mut b)?;
        out.push((name, addr, b));
    }
    Ok(out)
}

/// Writes the images of `dev` and `inputs` for `board` into `dir`.
pub fn export(
    dev: &Device,
    inputs: &BoardInputs,
    board: &Board,
    dir: &Path,
) -> Result<Vec<Load>, ExportError> {
    std::fs::create_dir_all(dir)?;
    let mut loads = Vec::new();
    for (name, addr, bytes) in windows(dev)? {
        let file = dir.join(format!("{name}.bin"));
        std::fs::write(&file, bytes)?;
        let addr = board
            .translate(addr)
            .expect("every window has a place on every board");
        loads.push(Load { file, addr });
    }
    let file = dir.join("inputs.bin");
    std::fs::write(&file, inputs.encode())?;
    loads.push(Load {
        file,
        addr: board.inputs,
    });
    Ok(loads)
}
