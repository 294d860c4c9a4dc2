//! `cargo bench -p ferrota-lab --bench download`: request round trips and simulated time to
//! fetch the seed's 4,161,536-byte image at 4 KB blocks with a 50 ms round trip, for this agent
//! and for the official library's schedule, with 0 % and 1 % block loss. In memory (the real
//! server's services, `ferrota_lab::sim_service`), no network; simulated time is deterministic
//! (means over 5 seeds for 1 % loss).

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    let (table, up0, up1) = common::official::table();
    println!("Fetching 4,161,536 bytes (1016 blocks of 4 KB), 50 ms round trip:\n");
    println!("{table}");
    println!(
        "speed-up: {up0:.1}× without loss (target ≥ 10×), {up1:.1}× with 1 % loss (target ≥ 50×)"
    );
}
