//! The agent's RAM is fixed (no allocation) and stated: `size_of` of the agent as the
//! application holds it, against the 16,384 bytes the C API reserves for it
//! (`crates/agent-ffi`, `FERROTA_AGENT_SIZE`).

use ferrota_image::{BootKey, KeyRing};

#[test]
fn the_agent_fits_the_c_apis_block() {
    let plain = core::mem::size_of::<ferrota_agent::Agent<'static, BootKey>>();
    let ring = core::mem::size_of::<ferrota_agent::Agent<'static, KeyRing<BootKey>>>();
    println!("Agent<BootKey>: {plain} bytes, Agent<KeyRing<BootKey>>: {ring} bytes");
    // The C API holds an Agent<BootKey> with a few words of its own in 16,384 bytes.
    assert!(plain <= 16_384 - 256, "{plain} bytes");
}
