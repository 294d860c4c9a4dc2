//! Activation and rollback in simulated flash time and operations, beside copying the same
//! 4,161,536-byte image into a fixed slot (MCUboot overwrite) and swapping through scratch.
//! Deterministic: simulated time, not host time.
//!
//! Run: `cargo bench -p ferrota-lab --bench activation`

fn main() {
    let c = ferrota_lab::cost::compare().expect("benchmark scenario runs");
    println!("{}", c.markdown());
    println!(
        "Minimum speed-up of activation and rollback over single-bank copying: {:.0}× (target ≥ 100×)",
        c.min_speedup()
    );
}
