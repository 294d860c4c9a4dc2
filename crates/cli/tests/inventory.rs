//! Issue 16: `ferrota thing describe` shows the device inventory: in its JSON (`inventory`,
//! what `GET /api/things/{name}` answers) and in words on stderr. The device's report goes
//! through the real shadow service into the data directory's database, as a running server
//! stores it.

use crate::common;

use common::*;
use ferrota_server::config::Config;
use ferrota_server::server::open_admin;
use ferrota_server::services::{Outcome, on_publish};

const REPORT: &str = r#"{"state":{"reported":{"firmware":{"version":"1.2.0","bank":"B",
  "pendingTrial":true,"antiRollbackFloor":3},"hardwareId":"KIT_T2G-B-H_LITE"}},"clientToken":"1"}"#;

#[test]
fn thing_describe_shows_the_reported_firmware() {
    let env = Env::new();
    env.ok(&["ca", "init", "--data-dir", "data"]);
    thing_create(&env, "dev-1", "bundles", &[]);
    // Before any report: an inventory with nothing reported.
    let out = env.run(&["thing", "describe", "dev-1", "--data-dir", "data"]);
    assert!(out.status.success());
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t["inventory"], serde_json::json!({"connected": false}));
    let words = String::from_utf8_lossy(&out.stderr);
    assert!(words.contains("dev-1: firmware not reported"), "{words}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // The data directory's services, as `ferrota serve` opens them.
        let cfg = Config {
            data_dir: env.path("data"),
            ..Config::default()
        };
        let admin = open_admin(&cfg, 8883).await.unwrap();
        let topic = "$aws/things/dev-1/shadow/update";
        let r = on_publish(&admin.services, "dev-1", "dev-1", topic, REPORT.as_bytes()).await;
        assert_eq!(r, Outcome::Handled);
    });

    let out = env.run(&["thing", "describe", "dev-1", "--data-dir", "data"]);
    assert!(out.status.success());
    let t: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let inv = &t["inventory"];
    assert_eq!(
        inv["reported"],
        serde_json::json!({"firmware": {"version": "1.2.0", "bank": "B", "pendingTrial": true,
                           "antiRollbackFloor": 3}, "hardwareId": "KIT_T2G-B-H_LITE"})
    );
    assert!(inv["reportedAt"].is_u64());
    assert!(inv["lastSeen"].is_u64());
    assert!(camel_case_keys(&t));
    let words = String::from_utf8_lossy(&out.stderr);
    assert!(
        words.contains("dev-1: runs 1.2.0 (bank B, on trial), floor 3, hardware KIT_T2G-B-H_LITE"),
        "{words}"
    );
    assert!(words.contains("not connected, last seen 20"), "{words}");
}
