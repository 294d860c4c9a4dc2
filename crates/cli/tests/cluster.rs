//! `ferrota cluster up|status|down` (what `scripts/cluster.sh` runs): PostgreSQL, a three-node
//! RabbitMQ cluster and two workers come up on loopback and stay up after the command; both
//! workers serve one registry; exactly one holds the engine lease; `down` stops every process
//! it started. A second `up` on the same directory and a `down` where there is no cluster are
//! clear errors that change nothing.

use crate::common;

use std::time::Duration;

use common::Env;

fn alive(pid: u64) -> bool {
    u32::try_from(pid).is_ok_and(ferrota_infra::pid_alive)
}

#[test]
fn cluster_up_serves_one_registry_from_two_workers_and_down_stops_everything() {
    if ferrota_infra::skip_without("PostgreSQL", ferrota_infra::Postgres::available())
        || ferrota_infra::skip_without("RabbitMQ", ferrota_infra::RabbitCluster::available())
        || ferrota_infra::skip_without("SeaweedFS", ferrota_infra::Seaweed::available())
    {
        return;
    }
    let env = Env::new();
    // A failing assertion must not leave the cluster's processes running.
    struct DownOnDrop<'a>(&'a Env);
    impl Drop for DownOnDrop<'_> {
        fn drop(&mut self) {
            if self.0.exists("c/cluster.json") {
                let _ = self.0.run(&["cluster", "down", "--dir", "c"]);
            }
        }
    }
    let _down = DownOnDrop(&env);
    let out = env.ok(&["cluster", "up", "--dir", "c"]);
    assert!(out.contains("cluster up in"), "{out}");
    let state: serde_json::Value =
        serde_json::from_slice(&env.read("c/cluster.json")).expect("cluster.json");
    let mut pids = vec![state["postgres"]["pid"].as_u64().unwrap()];
    pids.extend(
        state["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["pid"].as_u64().unwrap()),
    );
    let workers: Vec<u64> = state["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["port"].as_u64().unwrap())
        .collect();
    pids.extend(
        state["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["pid"].as_u64().unwrap()),
    );
    pids.push(state["s3"]["pid"].as_u64().unwrap());
    assert_eq!(pids.len(), 1 + 3 + 2 + 1);
    assert!(pids.iter().all(|p| alive(*p)), "{pids:?}");
    let status = env.ok(&["cluster", "status", "--dir", "c"]);
    assert_eq!(status.matches("running").count(), 7, "{status}");

    // A thing created through worker 1 is seen by worker 2: one registry, on PostgreSQL.
    let token = String::from_utf8(env.read("c/data/api-token")).unwrap();
    let api = |port: u64| format!("http://127.0.0.1:{port}");
    let created = ureq::post(format!("{}/api/things", api(workers[0])))
        .header("Authorization", &format!("Bearer {}", token.trim()))
        .send_json(serde_json::json!({"thingName": "dev-1"}));
    assert!(created.is_ok(), "{created:?}");
    let seen: serde_json::Value = ureq::get(format!("{}/api/things/dev-1", api(workers[1])))
        .header("Authorization", &format!("Bearer {}", token.trim()))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    assert_eq!(seen["thingName"], "dev-1", "{seen}");
    // A file uploaded through worker 2 is in the bucket, so worker 1 can serve it.
    let up: serde_json::Value = ureq::post(format!("{}/api/files", api(workers[1])))
        .header("Authorization", &format!("Bearer {}", token.trim()))
        .send(&b"firmware bytes"[..])
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let sha = up["sha256"].as_str().expect("sha256").to_string();
    let objects = std::fs::read_dir(env.path("c/s3"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert!(objects > 0, "nothing in the S3 server's directory");
    assert!(
        !env.exists(&format!("c/data/firmware/{sha}")),
        "the file went to the data directory, not S3"
    );

    // A device bundle made with a worker's configuration names the broker nodes (the port
    // devices connect to), not the worker's own unused listener.
    // (The configuration's file store is S3: the credentials come from the environment.)
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrota"))
        .args([
            "thing",
            "create",
            "dev-2",
            "-c",
            "c/worker1.toml",
            "-o",
            "bundles",
        ])
        .env("AWS_ACCESS_KEY_ID", ferrota_infra::seaweed::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", ferrota_infra::seaweed::SECRET_KEY)
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let device = String::from_utf8(env.read("bundles/dev-2/device.toml")).unwrap();
    let node_port = state["nodes"][0]["mqtt"].as_u64().unwrap();
    assert!(device.contains(&node_port.to_string()), "{device}");

    // Exactly one worker runs the rollouts and timers.
    let mut holders = 0;
    for _ in 0..50 {
        holders = (1..=2)
            .filter(|i| {
                String::from_utf8_lossy(&env.read(&format!("c/worker{i}.log")))
                    .contains("took the engine lease")
            })
            .count();
        if holders > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(holders, 1);

    // Bad input: a second `up` on the same directory changes nothing.
    let err = env.fails(1, &["cluster", "up", "--dir", "c"]);
    assert!(err.contains("holds a cluster already"), "{err}");
    assert!(pids.iter().all(|p| alive(*p)));

    let out = env.ok(&["cluster", "down", "--dir", "c", "--purge"]);
    assert!(out.contains("cluster stopped"), "{out}");
    std::thread::sleep(Duration::from_millis(500));
    let left: Vec<_> = pids.iter().filter(|p| alive(**p)).collect();
    assert!(left.is_empty(), "still running after down: {left:?}");
    assert!(!env.exists("c"));
    let err = env.fails(1, &["cluster", "down", "--dir", "c"]);
    assert!(err.contains("no cluster here"), "{err}");
}
