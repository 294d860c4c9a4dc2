//! `ferrota demo` end to end: every step behaves, the table is printed, exit status 0.

use std::process::Command;

#[test]
fn demo_runs_all_seven_steps() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrota"))
        .args(["demo", "--quiet"])
        .output()
        .expect("run ferrota demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in 1..=7 {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("{step} ")) && l.contains(" ok ")),
            "step {step} missing or failed:\n{stdout}"
        );
    }
    assert!(stdout.contains("all 7 steps behaved as shown"));
}
