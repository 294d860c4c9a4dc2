//! The `ferrota t2g ...` command line: clap definitions only.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use ferrota_boot::Bank;
use ferrota_image::HardwareId;

/// `ferrota t2g ...`: a simulated CYT4BF in a file.
#[derive(Debug, Subcommand)]
pub enum T2gCommand {
    /// Make a blank device with SFlash provisioned for a boot key.
    #[command(after_help = "\
Examples:
  ferrota t2g new board.t2g --boot-key boot.pem                       # NORMAL_PROVISIONED
  ferrota t2g new board.t2g --boot-key sflash_key.bin --life-cycle secure
  ferrota t2g new board.t2g --boot-key boot.pub.pem --hardware KIT_T2G-B-H_LITE --force

Writes the DBM stand-in (0x17000800), the public-key object (0x17006400) and TOC2
(0x17007C00) by SFlash row writes, blows the S-HASH of those objects into eFuse, then moves the
life cycle forward (SECURE write-protects SFlash). Both code-flash banks are left erased.
An existing file is never replaced without --force.")]
    New(NewArgs),
    /// Write a bank image into a physical bank, as a debugger does.
    #[command(after_help = "\
Examples:
  ferrota t2g program board.t2g v1.bin --bank lower
  ferrota t2g program board.t2g v2.bin --bank 1          # 1 = upper, 0 = lower

The image must be exactly 0x3F8000 (4161536) bytes, as `ferrota image pack` writes it. The
bank's 127 sectors are erased and every non-blank row is programmed through single-bank
addresses (lower 0x10000000, upper 0x103F8000). An image that does not verify with the
provisioned key is written anyway, with a warning: a debugger can write anything, the boot
chain refuses it.")]
    Program(ProgramArgs),
    /// Boot the device: ROM → Dual Bank Manager → mapping switch → CM0+ stage.
    #[command(after_help = "\
Examples:
  ferrota t2g boot board.t2g
  ferrota t2g boot board.t2g --user1      # hold USER1: prefer the lower bank

Prints every step and the decision with its reason. The boot may write marker-log records
(trial attempts, fallbacks, reverts), so the device file is saved. Exits with status 0 when an
image starts, 1 with the halt reason otherwise.")]
    Boot(BootArgs),
    /// Describe a device: mapping, marker log, both banks, floor, life cycle, wear.
    #[command(after_help = "\
Examples:
  ferrota t2g show board.t2g
  ferrota t2g show board.t2g --json | jq '.banks[] | {bank, status, version}'

Reads only: the device file is not changed.")]
    Show(ShowArgs),
    /// App side: activate the inactive bank (TRIAL), as the agent does after a download.
    #[command(after_help = "\
Examples:
  ferrota t2g activate board.t2g
  ferrota t2g activate board.t2g --budget 1
  ferrota t2g activate board.t2g --force   # even an image the agent would refuse

The running bank is the one the last boot started (from the marker log); the other bank is put
on trial: the next boot runs it, and reverts after --budget boots without a confirm. Like the
agent, it refuses an image that does not verify or is below the anti-rollback floor, unless
--force (then the DBM refuses it at boot).")]
    Activate(ActivateArgs),
    /// App side: confirm the running trial image (self-test passed), raising the floor.
    #[command(after_help = "\
Examples:
  ferrota t2g boot board.t2g && ferrota t2g confirm board.t2g

Appends CONFIRMED with the image's security counter as the new anti-rollback floor, then
raises the eFuse counter to it.")]
    Confirm(DeviceArgs),
    /// App side: reject the running trial image (self-test failed): the next boot reverts.
    #[command(after_help = "\
Examples:
  ferrota t2g boot board.t2g && ferrota t2g reject board.t2g && ferrota t2g boot board.t2g")]
    Reject(DeviceArgs),
}

/// Life-cycle stages `t2g new` can leave a device in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LifeCycleArg {
    /// No fuse blown.
    Virgin,
    /// NORMAL.
    Normal,
    /// NORMAL_PROVISIONED: what boards ship in and the seed assumes.
    NormalProvisioned,
    /// SECURE_WITH_DEBUG: the ROM checks the S-HASH; SFlash write-protected.
    SecureWithDebug,
    /// SECURE: the ROM checks the S-HASH; SFlash write-protected.
    Secure,
}

/// Arguments of `t2g new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The device file to create.
    #[arg(value_name = "DEVICE")]
    pub device: PathBuf,
    /// The boot key: private or public key (PEM/DER), certificate, or SFlash key object.
    #[arg(long, value_name = "KEY")]
    pub boot_key: PathBuf,
    /// Life-cycle stage.
    #[arg(long, value_enum, default_value_t = LifeCycleArg::NormalProvisioned)]
    pub life_cycle: LifeCycleArg,
    /// The board's hardware id, enforced by the DBM (default: accept any image's id).
    #[arg(long, value_name = "ID", value_parser = parse_hardware)]
    pub hardware: Option<HardwareId>,
    /// Replace an existing device file.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `t2g program`.
#[derive(Debug, Args)]
pub struct ProgramArgs {
    /// The device file.
    #[arg(value_name = "DEVICE")]
    pub device: PathBuf,
    /// The bank image (0x3F8000 bytes).
    #[arg(value_name = "BANK.bin")]
    pub image: PathBuf,
    /// The physical bank: lower (0) or upper (1).
    #[arg(long, value_name = "BANK", value_parser = parse_bank)]
    pub bank: Bank,
}

/// Arguments of `t2g boot`.
#[derive(Debug, Args)]
pub struct BootArgs {
    /// The device file.
    #[arg(value_name = "DEVICE")]
    pub device: PathBuf,
    /// Hold the USER1 button (P5.3) during reset.
    #[arg(long)]
    pub user1: bool,
}

/// Arguments of `t2g show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The device file.
    #[arg(value_name = "DEVICE")]
    pub device: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `t2g activate`.
#[derive(Debug, Args)]
pub struct ActivateArgs {
    /// The device file.
    #[arg(value_name = "DEVICE")]
    pub device: PathBuf,
    /// Boot attempts the trial gets before the DBM reverts.
    #[arg(long, value_name = "N", default_value_t = ferrota_boot::log::DEFAULT_BUDGET,
          value_parser = clap::value_parser!(u8).range(1..))]
    pub budget: u8,
    /// Activate even an image that does not verify or is below the floor.
    #[arg(long)]
    pub force: bool,
}

/// A command that takes only the device.
#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// The device file.
    #[arg(value_name = "DEVICE")]
    pub device: PathBuf,
}

fn parse_bank(s: &str) -> Result<Bank, String> {
    match s {
        "lower" | "0" => Ok(Bank::Lower),
        "upper" | "1" => Ok(Bank::Upper),
        _ => Err(format!("'{s}' is not a bank: lower, upper, 0 or 1")),
    }
}

fn parse_hardware(s: &str) -> Result<HardwareId, String> {
    HardwareId::new(s).ok_or_else(|| {
        format!(
            "'{s}' is not a hardware id (printable ASCII without spaces, at most 32 characters)"
        )
    })
}
