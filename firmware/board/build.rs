//! Puts the selected board's `memory.x` where cortex-m-rt's `link.x` finds it (unless the
//! binary brings its own: feature `own-memory-x`).
use std::path::PathBuf;

fn main() {
    let microbit = std::env::var_os("CARGO_FEATURE_MICROBIT").is_some();
    let mps2 = std::env::var_os("CARGO_FEATURE_MPS2_AN500").is_some();
    let memory = match (microbit, mps2) {
        (true, false) => include_str!("memory-microbit.x"),
        (false, true) => include_str!("memory-mps2-an500.x"),
        _ => panic!("enable exactly one board feature: microbit or mps2-an500"),
    };
    println!("cargo:rerun-if-changed=memory-microbit.x");
    println!("cargo:rerun-if-changed=memory-mps2-an500.x");
    if std::env::var_os("CARGO_FEATURE_OWN_MEMORY_X").is_some() {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    std::fs::write(out.join("memory.x"), memory).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
}
