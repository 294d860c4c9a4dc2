//! Activation and rollback cost, beside copying the image into a fixed slot.
//!
//! Single-bank bootloaders (MCUboot's overwrite and swap modes, the seed's predecessors) make a
//! downloaded image run by *moving it*: overwrite erases the primary slot and programs every row
//! of the new image; swap exchanges the two slots sector by sector through a scratch area (three
//! erase-and-program passes), and rolls back by swapping again. Ferrota's dual-bank design makes
//! it run by *mapping it*: activation is one marker-log record (TRIAL) plus the BOOTED record of
//! the first trial boot, rollback one REVERTED record.
//!
//! Everything here runs on the same `ferrota-t2g` device and timing model ([`ferrota_t2g::Timing`],
//! whose defaults are documented assumptions), counting flash operations and simulated flash
//! time. Signature verification is not in the timing model; both designs verify the image before
//! it runs, so it is left out of both sides. The download into the other bank or slot is also
//! the same for both and left out.

use core::time::Duration;

use ferrota_boot::Bank;
use ferrota_t2g::geometry::{
    CODE_BASE, CODE_LARGE_PER_HALF, CODE_LARGE_SECTOR, CODE_ROW, CODE_SMALL_SECTOR,
    HALF_LARGE_SIZE, SBM_SMALL_BASE,
};
use ferrota_t2g::{Device, LifeCycle};

use ferrota_sim::boot_chain::{self, BootResult, Error, Provisioning};

/// Flash operations and simulated flash time of one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Flash operations (erases, row/word programs, eFuse blows).
    pub ops: u64,
    /// Simulated flash time.
    pub time: Duration,
}

impl Cost {
    fn since(dev: &Device, ops: u64, t: Duration) -> Cost {
        Cost {
            ops: dev.op_count() - ops,
            time: dev.now() - t,
        }
    }

    /// How many times `self` is slower than `other`.
    pub fn ratio(&self, other: &Cost) -> f64 {
        self.time.as_secs_f64() / other.time.as_secs_f64().max(1e-12)
    }
}

/// The measurements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// Ferrota: TRIAL record + the first trial boot (BOOTED record, mapping switch).
    pub activation: Cost,
    /// Ferrota: REVERTED record (the app rejects) + the next boot (runs the old bank).
    pub rollback: Cost,
    /// Ferrota: CONFIRMED record + the eFuse counter bits (for information).
    pub confirm: Cost,
    /// Copying the image into a fixed slot: erase 127 sectors, program every row.
    pub copy: Cost,
    /// Swapping the two slots through a 32 KB scratch area, sector by sector (3 passes).
    pub swap: Cost,
    /// Swapping back (a swap-mode rollback).
    pub swap_back: Cost,
    /// Bytes in the image.
    pub image_bytes: usize,
}

pub use ferrota_sim::images::large_bank_image as bank_image;
pub use ferrota_sim::keys::bench_boot_key as bench_key;

/// Runs every measurement on fresh provisioned devices.
pub fn compare() -> Result<Comparison, Error> {
    let sk = bench_key();
    let v1 = bank_image(&sk, 1).expect("image builds");
    let v2 = bank_image(&sk, 2).expect("image builds");
    let mut base = boot_chain::provision(&Provisioning {
        key: sk.boot_key().expect("public key"),
        life_cycle: LifeCycle::NormalProvisioned,
        hardware: None,
    })?;
    boot_chain::program_bank(&mut base, Bank::Lower, &v1)?;
    // v1 runs; the agent has written v2 into the other bank.
    started(boot_chain::boot(&mut base, false)?, Bank::Lower);
    boot_chain::program_bank(&mut base, Bank::Upper, &v2)?;

    // Ferrota: activation = TRIAL + first trial boot.
    let mut d = base.clone();
    let (ops, t) = (d.op_count(), d.now());
    boot_chain::activate(&mut d, ferrota_boot::log::DEFAULT_BUDGET, false)?;
    started(boot_chain::boot(&mut d, false)?, Bank::Upper);
    let activation = Cost::since(&d, ops, t);
    let trial = d.clone();

    // Rollback: the app rejects; the next boot runs v1 again.
    let (ops, t) = (d.op_count(), d.now());
    boot_chain::reject(&mut d)?;
    started(boot_chain::boot(&mut d, false)?, Bank::Lower);
    let rollback = Cost::since(&d, ops, t);

    // Confirm, for information.
    let mut d = trial;
    let (ops, t) = (d.op_count(), d.now());
    boot_chain::confirm(&mut d)?;
    let confirm = Cost::since(&d, ops, t);

    // Copy into a fixed slot (MCUboot overwrite): v2 over v1 in the lower half.
    let mut d = base.clone();
    d.reset();
    let (ops, t) = (d.op_count(), d.now());
    copy_into(&mut d, CODE_BASE, &v2)?;
    let copy = Cost::since(&d, ops, t);

    // Swap through scratch (MCUboot swap-scratch), and back.
    let mut d = base.clone();
    d.reset();
    let (ops, t) = (d.op_count(), d.now());
    swap_halves(&mut d)?;
    let swap = Cost::since(&d, ops, t);
    let (ops, t) = (d.op_count(), d.now());
    swap_halves(&mut d)?;
    let swap_back = Cost::since(&d, ops, t);

    Ok(Comparison {
        activation,
        rollback,
        confirm,
        copy,
        swap,
        swap_back,
        image_bytes: v2.len(),
    })
}

fn started(o: boot_chain::BootOutcome, bank: Bank) {
    match &o.result {
        BootResult::Started(s) if s.bank == bank => {}
        _ => panic!("benchmark scenario: expected the {bank} bank to start:\n{o}"),
    }
}

/// Erases the 127 large sectors at `base` (single-bank address) and programs every row of
/// `image` there.
fn copy_into(dev: &mut Device, base: u32, image: &[u8]) -> Result<(), Error> {
    for s in 0..CODE_LARGE_PER_HALF {
        dev.erase_sector(base + s * CODE_LARGE_SECTOR)?;
    }
    for (i, row) in image.chunks(CODE_ROW as usize).enumerate() {
        dev.program_code(base + i as u32 * CODE_ROW, row)?;
    }
    Ok(())
}

/// Copies one 32 KB sector's contents from `from` to the erased sector(s) at `to`.
fn copy_sector(dev: &mut Device, from: u32, to: u32) -> Result<(), Error> {
    let mut row = [0u8; CODE_ROW as usize];
    for r in 0..CODE_LARGE_SECTOR / CODE_ROW {
        dev.read(from + r * CODE_ROW, &mut row)?;
        dev.program_code(to + r * CODE_ROW, &row)?;
    }
    Ok(())
}

/// Exchanges the lower and upper halves sector by sector through a 32 KB scratch area (four
/// small sectors at 0x107F0000): scratch ← primary, primary ← secondary, secondary ← scratch.
fn swap_halves(dev: &mut Device) -> Result<(), Error> {
    let scratch = SBM_SMALL_BASE;
    for s in 0..CODE_LARGE_PER_HALF {
        let primary = CODE_BASE + s * CODE_LARGE_SECTOR;
        let secondary = CODE_BASE + HALF_LARGE_SIZE + s * CODE_LARGE_SECTOR;
        for k in 0..CODE_LARGE_SECTOR / CODE_SMALL_SECTOR {
            dev.erase_sector(scratch + k * CODE_SMALL_SECTOR)?;
        }
        copy_sector(dev, primary, scratch)?;
        dev.erase_sector(primary)?;
        copy_sector(dev, secondary, primary)?;
        dev.erase_sector(secondary)?;
        copy_sector(dev, scratch, secondary)?;
    }
    Ok(())
}

/// A simulated duration as the tables print it: seconds from 1 s up, milliseconds below.
pub fn fmt_time(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.3} s")
    } else {
        format!("{:.3} ms", s * 1e3)
    }
}

impl Comparison {
    /// The results as a markdown table.
    pub fn markdown(&self) -> String {
        let row = |name: &str, c: &Cost, vs: Option<&Cost>| {
            format!(
                "| {name} | {} | {} | {} |\n",
                c.ops,
                fmt_time(c.time),
                vs.map_or("1×".to_string(), |f| format!("{:.0}×", c.ratio(f)))
            )
        };
        let mut s = format!(
            "Image: {} bytes (0x{:X}), simulated flash time on the ferrota-t2g timing model.\n\n\
             | action | flash ops | simulated time | vs Ferrota |\n|---|---:|---:|---:|\n",
            self.image_bytes, self.image_bytes
        );
        s += &row(
            "Ferrota activation (TRIAL + first trial boot)",
            &self.activation,
            None,
        );
        s += &row(
            "copy into a fixed slot (erase 127 sectors + program 8128 rows)",
            &self.copy,
            Some(&self.activation),
        );
        s += &row(
            "swap through scratch (3 erase+program passes)",
            &self.swap,
            Some(&self.activation),
        );
        s += &row(
            "Ferrota rollback (REVERTED + next boot)",
            &self.rollback,
            None,
        );
        s += &row(
            "copy-based rollback (copy the old image back)",
            &self.copy,
            Some(&self.rollback),
        );
        s += &row(
            "swap-based rollback (swap back)",
            &self.swap_back,
            Some(&self.rollback),
        );
        s += &row(
            "Ferrota confirm (CONFIRMED + eFuse counter bits)",
            &self.confirm,
            None,
        );
        s
    }

    /// The smallest speed-up of activation and rollback over the cheapest single-bank way.
    pub fn min_speedup(&self) -> f64 {
        let act = self
            .copy
            .ratio(&self.activation)
            .min(self.swap.ratio(&self.activation));
        let rb = self
            .copy
            .ratio(&self.rollback)
            .min(self.swap_back.ratio(&self.rollback));
        act.min(rb)
    }
}
