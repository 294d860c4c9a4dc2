//! `ferrota ota create`'s rollout settings and `ferrota rollout`, without a Ferrota server:
//! every bad input ends in a clear error before anything is sent (a listener standing in
//! for the API sees no connection), and a good one is sent in AWS's shapes with the flags
//! winning over the JSON files.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use common::Env;
use serde_json::Value;

/// A stand-in API address that records whether anything connected.
struct Listener {
    l: TcpListener,
    url: String,
}

impl Listener {
    fn new() -> Listener {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        Listener { l, url }
    }

    fn nothing_sent(&self) -> bool {
        matches!(self.l.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

fn create(env: &Env, l: &Listener, extra: &[&str]) -> String {
    let mut args = vec![
        "ota", "create", "rel-2", "--file", "bank.bin", "--group", "fleet", "--api", &l.url,
        "--token", "t",
    ];
    args.extend_from_slice(extra);
    env.fails(1, &args)
}

#[test]
fn bad_rollout_inputs_are_refused_before_anything_is_sent() {
    let env = Env::new();
    env.write("bank.bin", b"not read");
    env.write("broken.json", b"{\"jobExecutionsRolloutConfig\": {");
    env.write("array.json", b"[1, 2]");
    env.write(
        "unknown.json",
        br#"{"jobExecutionsRolloutConfig": {"maximumPerMinute": 5}, "rolloutSpeed": 3}"#,
    );
    env.write(
        "nested.json",
        br#"{"abortConfig": {"criteriaList": [{"failureType": "ALL", "action": "CANCEL",
            "thresholdPercentage": 5, "minNumberOfExecutedThings": 1, "extra": true}]}}"#,
    );
    env.write(
        "range.json",
        br#"{"jobExecutionsRolloutConfig": {"maximumPerMinute": 2000}}"#,
    );
    let l = Listener::new();
    let cases: &[(&[&str], &[&str])] = &[
        (&["--rollout-json", "missing.json"], &["missing.json"]),
        (
            &["--rollout-json", "broken.json"],
            &["broken.json", "not JSON", "line 1"],
        ),
        (
            &["--rollout-json", "array.json"],
            &["array.json", "JSON object"],
        ),
        (
            &["--rollout-json", "unknown.json"],
            &["unknown.json", "unknown field `rolloutSpeed`"],
        ),
        (
            &["--rollout-json", "nested.json"],
            &["nested.json", "unknown field `extra`"],
        ),
        (
            &["--rollout-json", "range.json"],
            &[
                "1 validation error detected: Value '2000' at 'awsJobExecutionsRolloutConfig.maximumPerMinute' failed to satisfy constraint: Member must have value less than or equal to 1000",
            ],
        ),
        (
            &["--max-per-minute", "0"],
            &["maximumPerMinute", "greater than or equal to 1"],
        ),
        (
            &["--retries", "11"],
            &["numberOfRetries", "less than or equal to 10"],
        ),
        (
            &["--wave", "canary"],
            &["--wave \"canary\"", "no SIZE", "NAME:SIZE"],
        ),
        (&["--wave", "canary:ten%"], &["is not a number"]),
        (&["--wave", "canary:1%:wait"], &["unknown option \"wait\""]),
        (
            &["--wave", "a:10%", "--wave", "b:5%"],
            &[
                "rolloutWaves.waves.2.member.percentage",
                "greater than the previous",
            ],
        ),
        (
            &["--maintenance-window", "cron(0 2 * * ? *)"],
            &["=MINUTES"],
        ),
        (
            &["--maintenance-window", "cron(0 2 * * *)=60"],
            &["AWS cron takes 6"],
        ),
        (
            &["--maintenance-window", "cron(0 2 * * ? *)=2000"],
            &["durationInMinutes", "1430"],
        ),
        (
            &["--end-behavior", "STOP"],
            &["endBehavior", "STOP_ROLLOUT, CANCEL, FORCE_CANCEL"],
        ),
        (
            &["--start-time", "tomorrow"],
            &["schedulingConfig.startTime", "YYYY-MM-DDTHH:MM"],
        ),
        (
            &["--abort-failed-percent", "150", "--abort-min-executed", "5"],
            &["thresholdPercentage", "less than or equal to 100"],
        ),
    ];
    for (extra, wants) in cases {
        let err = create(&env, &l, extra);
        for w in *wants {
            assert!(err.contains(w), "{extra:?}: {err:?} lacks {w:?}");
        }
        assert!(l.nothing_sent(), "{extra:?}: something was sent");
    }
    // A flag that needs its partner is a usage error (clap's status 2).
    let err = env.fails(
        2,
        &[
            "ota",
            "create",
            "rel-2",
            "--file",
            "bank.bin",
            "--group",
            "g",
            "--abort-failed-percent",
            "5",
        ],
    );
    assert!(err.contains("--abort-min-executed"), "{err}");
}

#[test]
fn cli_input_json_is_read_and_refused_by_key() {
    let env = Env::new();
    let l = Listener::new();
    env.write(
        "aws.json",
        br#"{"otaUpdateId": "x", "targets": ["thinggroup/fleet"], "files": [],
             "roleArn": "arn:aws:iam::123456789012:role/ota"}"#,
    );
    let err = env.fails(
        1,
        &[
            "ota",
            "create",
            "--cli-input-json",
            "aws.json",
            "--api",
            &l.url,
            "--token",
            "t",
        ],
    );
    assert!(
        err.contains("aws.json: --cli-input-json") && err.contains("unknown field `roleArn`"),
        "{err}"
    );
    env.write("no-id.json", br#"{"targets": ["thing/a"]}"#);
    let err = env.fails(
        1,
        &[
            "ota",
            "create",
            "--cli-input-json",
            "no-id.json",
            "--api",
            &l.url,
            "--token",
            "t",
        ],
    );
    assert!(err.contains("otaUpdateId"), "{err}");
    env.write(
        "no-files.json",
        br#"{"otaUpdateId": "x", "targets": ["thing/a"]}"#,
    );
    let err = env.fails(
        1,
        &[
            "ota",
            "create",
            "--cli-input-json",
            "no-files.json",
            "--api",
            &l.url,
            "--token",
            "t",
        ],
    );
    assert!(err.contains("--file"), "{err}");
    assert!(l.nothing_sent());
    // Without --cli-input-json the id and --file stay required (usage error).
    env.fails(2, &["ota", "create", "--group", "g"]);
}

/// Answers one HTTP request with a 400 and returns its body.
fn one_request(l: TcpListener) -> std::thread::JoinHandle<String> {
    l.set_nonblocking(false).unwrap();
    std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        let answer = r#"{"message":"stand-in"}"#;
        let mut w = s;
        write!(
            w,
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        )
        .unwrap();
        String::from_utf8(body).unwrap()
    })
}

#[test]
fn flags_win_over_rollout_json_which_wins_over_cli_input_json() {
    let env = Env::new();
    let sha = "ab".repeat(32);
    env.write(
        "req.json",
        format!(
            r#"{{"otaUpdateId": "from-file", "description": "from file",
                "targets": ["thinggroup/fleet"],
                "files": [{{"fileName": "/ota/bank.bin", "fileLocation": {{"sha256": "{sha}"}},
                  "codeSigning": {{"customCodeSigning": {{"signature": {{"inlineDocument": "c2ln"}},
                    "certificateChain": {{"certificateName": "signer.crt"}}}}}}}}],
                "awsJobExecutionsRolloutConfig": {{"maximumPerMinute": 7}},
                "awsJobAbortConfig": {{"abortCriteriaList": [{{"failureType": "FAILED",
                  "action": "CANCEL", "thresholdPercentage": 5, "minNumberOfExecutedThings": 3}}]}}}}"#
        ),
    );
    env.write(
        "rollout.json",
        br#"{"jobExecutionsRolloutConfig": {"maximumPerMinute": 8},
             "timeoutConfig": {"inProgressTimeoutInMinutes": 30},
             "jobExecutionsRetryConfig": {"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 1}]},
             "targetSelection": "SNAPSHOT"}"#,
    );
    let l = Listener::new();
    let url = l.url.clone();
    let server = one_request(l.l);
    let out = env.run(&[
        "ota",
        "create",
        "rel-9",
        "--cli-input-json",
        "req.json",
        "--rollout-json",
        "rollout.json",
        "--max-per-minute",
        "9",
        "--continuous",
        "--wave",
        "canary:2:errors=1:approve",
        "--wave",
        "rest:100%",
        "--maintenance-window",
        "cron(0 22 ? * MON-FRI *)=240",
        "--api",
        &url,
        "--token",
        "t",
    ]);
    assert!(!out.status.success());
    let body: Value = serde_json::from_str(&server.join().unwrap()).unwrap();
    assert_eq!(body["otaUpdateId"], "rel-9");
    assert_eq!(body["description"], "from file");
    assert_eq!(body["files"][0]["fileLocation"]["sha256"], sha.as_str());
    assert_eq!(body["awsJobExecutionsRolloutConfig"]["maximumPerMinute"], 9);
    assert_eq!(
        body["awsJobAbortConfig"]["abortCriteriaList"][0]["failureType"],
        "FAILED"
    );
    assert_eq!(
        body["awsJobTimeoutConfig"]["inProgressTimeoutInMinutes"],
        30
    );
    assert_eq!(
        body["jobExecutionsRetryConfig"]["criteriaList"][0]["numberOfRetries"],
        1
    );
    assert_eq!(body["targetSelection"], "CONTINUOUS");
    assert_eq!(body["rolloutWaves"]["waves"][0]["name"], "canary");
    assert_eq!(body["rolloutWaves"]["waves"][0]["count"], 2);
    assert_eq!(body["rolloutWaves"]["waves"][0]["requiresApproval"], true);
    assert_eq!(
        body["schedulingConfig"]["maintenanceWindows"][0]["durationInMinutes"],
        240
    );
}

#[test]
fn help_teaches_each_setting_with_an_example() {
    let env = Env::new();
    let help = env.ok(&["ota", "create", "--help"]);
    for w in [
        "--max-per-minute 50",
        "--abort-failed-percent 10 --abort-min-executed 20 --retries 2",
        "--start-time 2027-01-10T22:00",
        "--maintenance-window 'cron(0 22 ? * MON-FRI *)=240'",
        "--wave canary:1%:success=95:errors=5%:approve",
        "--rollout-json rollout.json",
        "--cli-input-json request.json",
        "--continuous",
    ] {
        assert!(help.contains(w), "ota create --help lacks {w:?}");
    }
    let help = env.ok(&["rollout", "--help"]);
    for w in ["status", "pause", "resume", "approve", "cancel"] {
        assert!(help.contains(w), "rollout --help lacks {w}");
    }
    let help = env.ok(&["rollout", "status", "--help"]);
    assert!(
        help.contains("ferrota rollout status rel-2 --watch"),
        "{help}"
    );
}

#[test]
fn rollout_commands_report_an_unreachable_server() {
    let env = Env::new();
    // Nothing listens on a port that was just freed.
    let url = Listener::new().url;
    let err = env.fails(
        1,
        &["rollout", "pause", "rel-2", "--api", &url, "--token", "t"],
    );
    assert!(err.contains(&url), "{err}");
}
