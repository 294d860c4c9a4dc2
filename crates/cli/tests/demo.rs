//! `ferrota demo` end to end: every step behaves, the table is printed, exit status 0.

use std::process::Command;

#[test]
fn demo_runs_all_nine_steps() {
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
    for step in 1..=9 {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("{step} ")) && l.contains(" ok ")),
            "step {step} missing or failed:\n{stdout}"
        );
    }
    assert!(stdout.contains("all 9 steps behaved as shown"));
    let delta = stdout
        .lines()
        .find(|l| l.starts_with("8 "))
        .expect("step 8's row");
    assert!(delta.contains("delta of "), "{delta}");
    let canary = stdout
        .lines()
        .find(|l| l.starts_with("9 "))
        .expect("step 9's row");
    assert!(
        canary.contains("STOPPED (WAVE_ERROR_THRESHOLD)") && canary.contains(", 0 after the stop"),
        "{canary}"
    );
}
