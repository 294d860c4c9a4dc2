//! Test images: `ferrota_sim::images::ota` (signed bank images with an OTA signature, built
//! once per test binary and cached) and the fixed keys they are signed with.

pub use ferrota_sim::images::ota::*;
#[allow(unused_imports)]
pub use ferrota_sim::keys::{boot_key, code_verifying_key};
