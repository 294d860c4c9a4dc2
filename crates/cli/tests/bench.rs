//! `ferrota bench --short`: the CI smoke run of every scenario (small sizes, no timing
//! claims). It checks that each scenario runs end to end and reports its table and targets,
//! not how fast anything was: the machine is shared and noisy.

use std::process::Command;

fn ferrota(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferrota"))
        .args(args)
        .output()
        .expect("run ferrota")
}

#[test]
fn every_scenario_runs_short_and_reports_json() {
    let out = ferrota(&["bench", "--short", "--json", "--quiet"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    let reports = reports.as_array().expect("an array of reports");
    let names: Vec<&str> = reports
        .iter()
        .map(|r| r["scenario"].as_str().expect("scenario name"))
        .collect();
    assert_eq!(
        names,
        [
            "link",
            "loss",
            "fleet",
            "activation",
            "verify",
            "rollout",
            "delta"
        ]
    );
    for r in reports {
        assert_eq!(r["short"], true, "{r}");
        let rows = r["table"]["rows"].as_array().expect("rows");
        assert!(!rows.is_empty(), "{} printed no rows", r["scenario"]);
        let cols = r["table"]["columns"].as_array().expect("columns").len();
        assert!(
            rows.iter()
                .all(|row| row.as_array().map(Vec::len) == Some(cols))
        );
        assert!(!r["targets"].as_array().expect("targets").is_empty());
    }
    // Deterministic (simulated flash time): the short run states the activation result.
    let act = &reports[3];
    assert!(
        act["data"]["speedup_activation"]
            .as_f64()
            .expect("speed-up")
            >= 100.0
    );
    assert!(
        act["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .all(|t| t["met"] == true)
    );
    // Virtual time and a seed: the short rollout run's outcome is exact. With 1,000 devices
    // the first wave (10) happens to hold no failing device and passes; the bad release stops
    // in the second (10% in all: 100 devices) and reaches no device after; the good one all.
    let ro = &reports[5]["data"];
    assert_eq!(ro["bad"]["status"], "STOPPED", "{ro}");
    assert_eq!(ro["bad"]["reason_code"], "WAVE_ERROR_THRESHOLD", "{ro}");
    assert_eq!(ro["bad"]["notified_after_stop"], 0, "{ro}");
    assert!(
        ro["bad"]["notified"].as_u64().expect("notified") <= 100,
        "{ro}"
    );
    assert_eq!(ro["good"]["status"], "FINISHED", "{ro}");
    assert_eq!(ro["good"]["notified"], 1000, "{ro}");
    assert_eq!(ro["good_sqlite"]["status"], "FINISHED", "{ro}");
}

#[test]
fn one_scenario_prints_a_markdown_table() {
    let out = ferrota(&["bench", "activation", "--short"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.starts_with("## activation: "), "{stdout}");
    assert!(stdout.contains("| Ferrota activation (TRIAL + first trial boot) | 20 |"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bench: activation: done in"), "{stderr}");
}

#[test]
fn an_unknown_scenario_is_a_usage_error() {
    let out = ferrota(&["bench", "warp-speed"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid value 'warp-speed'"), "{stderr}");
    assert!(
        stderr.contains("link"),
        "the error lists the scenarios: {stderr}"
    );
}

/// `--faults` belongs to the cluster scenario: with another one it is refused before anything
/// runs, naming the right command.
#[test]
fn faults_without_the_cluster_scenario_is_refused() {
    let out = ferrota(&["bench", "verify", "--faults", "--short", "-q"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ferrota bench cluster --faults"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing ran: {:?}", out.stdout);
}
