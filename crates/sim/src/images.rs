//! Bank images built from generated payloads, for tests and the cost model.

use ferrota_image::build::{BankBuilder, BuildError, sample_build};
use ferrota_image::sign::BootSigningKey;
use ferrota_image::{FirmwareVersion, HardwareId, Region, VersionRecord};

/// A signed bank image of a whole large-sector half (version 1.`counter`.0, no board id) with
/// pseudo-random code filling most of CM7_0, so a copy has real data to move.
pub fn large_bank_image(key: &BootSigningKey, counter: u32) -> Result<Vec<u8>, BuildError> {
    let record = VersionRecord {
        version: FirmwareVersion::new(1, counter as u8, 0),
        security_counter: counter,
        hardware: HardwareId::default(),
        flags: 0,
    };
    let seed = u64::from(counter);
    let code = |region: Region, len: usize| sample_build(region, len, seed);
    let mut b = BankBuilder::new(record);
    b.add(Region::Cm0p, &code(Region::Cm0p, 0x8000))?;
    b.add(Region::Cm7_0, &code(Region::Cm7_0, 0x3C_0000))?;
    b.add(Region::Cm7_1, &code(Region::Cm7_1, 0x8000))?;
    b.finish(key)
}
