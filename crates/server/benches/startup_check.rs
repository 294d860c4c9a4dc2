//! The cost of the database check `ferrota serve` runs at start (`PRAGMA integrity_check`,
//! which also checks every index against its table) beside SQLite's cheaper `quick_check`, in
//! the same run, on a served data directory of 10,000 things with their certificates.
//!
//! `cargo bench -p ferrota-server --bench startup_check` prints the median of each over
//! several runs and their ratio; `SqliteStore::open`'s docs quote the figures. Speed is
//! measured here, not in a test.

use std::time::{Duration, Instant};

use ferrota_server::config::Config;
use ferrota_server::server::Server;
use ferrota_server::store::SqliteStore;

const THINGS: usize = 10_000;
const RUNS: usize = 9;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    ferrota_server::tls::install_crypto_provider();
    let tmp = tempfile::tempdir().expect("temp dir");
    let cfg = Config {
        data_dir: tmp.path().join("data"),
        ..Default::default()
    };
    eprintln!("building a data directory of {THINGS} things ...");
    let server = Server::open(&cfg, 8883).await.expect("start");
    let names: Vec<String> = (0..THINGS).map(|i| format!("thing-{i:05}")).collect();
    server
        .admin
        .create_things(&names, &[])
        .await
        .expect("create things");
    drop(server);
    let store = SqliteStore::open(&cfg.db_path()).await.expect("open");
    let size = std::fs::metadata(cfg.db_path())
        .map(|m| m.len())
        .unwrap_or(0);

    let mut quick = Vec::new();
    let mut full = Vec::new();
    for _ in 0..RUNS {
        for (is_full, out) in [(false, &mut quick), (true, &mut full)] {
            let t = Instant::now();
            store.check_integrity(is_full).await.expect("check");
            out.push(t.elapsed());
        }
    }
    let (q, f) = (median(quick), median(full));
    println!("| check on {THINGS} things ({size} bytes), median of {RUNS} | time |");
    println!("|---|---:|");
    println!("| PRAGMA quick_check | {q:.1?} |");
    println!("| PRAGMA integrity_check (run at start) | {f:.1?} |");
    println!(
        "| integrity_check ÷ quick_check | {:.1}× |",
        f.as_secs_f64() / q.as_secs_f64().max(1e-9)
    );
}
