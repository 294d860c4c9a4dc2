//! Puts this application's `memory.x` (linked at `live::APP_EXEC`) where cortex-m-rt's
//! `link.x` finds it; the board crate adds none (its feature `own-memory-x`). Also an empty
//! `device.x` (cortex-m-rt feature `device`).
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("memory.x"), include_str!("memory.x")).expect("OUT_DIR is writable");
    // cortex-m-rt's `device` feature includes a device.x naming the interrupt handlers; every
    // line of this board goes to DefaultHandler (main.rs `__INTERRUPTS`), so it names none.
    std::fs::write(out.join("device.x"), "/* no device interrupt handlers */\n")
        .expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
}
