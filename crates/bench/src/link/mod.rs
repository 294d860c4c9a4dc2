//! Scenarios `link` and `loss`: a 4,161,536-byte OTA update over a shaped 100 Mbit/s link at
//! round trips of 2, 50 and 200 ms, Ferrota's agent beside the official library's schedule,
//! in the same run.
//!
//! The whole system runs, nothing is modelled but the link: `ferrota-server` in-process
//! ([`Lab`]), a provisioned board running the boot chain and the agent over MQTT and mutual
//! TLS, and between them the shaping proxy of [`shaper`] (rate with Ethernet/IP/TCP framing
//! counted, one-way delay, a router's queue). The official schedule is the same agent with
//! [`AgentTuning::official_library`]: 4 KB blocks, 8 a request, one request at a time, a fixed
//! 10 s re-request wait, no early loss detection.
//!
//! # Measures
//!
//! * **Goodput** = image bytes ÷ (arrival of the last new block − arrival of the first), as the
//!   device sees them. A whole-job time includes fixed round trips (job notification, describe,
//!   the first request) that no schedule can avoid; they are reported in their own column,
//!   **download time** = first stream request published → image verified and activated (the
//!   final hash and signature check of the 4 MB included), so nothing is hidden.
//! * **% of link** = goodput ÷ the link's TCP payload rate ([`LinkModel::payload_rate`],
//!   11.77 MB/s at 100 Mbit/s). MQTT, TLS and CBOR framing (≈ 110 bytes a 4 KB block, 2.7%)
//!   count against Ferrota.
//!
//! # Decision: losses are injected at the server, not in the proxy
//!
//! TLS hides MQTT from a proxy: it could only drop TCP bytes, which TCP retransmits (no
//! message is lost, only delayed) or which break the TLS session. Terminating TLS in the
//! proxy would work (the bench owns every key) but adds a second TLS hop that is not on the
//! real path and costs CPU on a shared 2-core machine. So the `loss` scenario turns on the
//! server's fault injection ([`Lab::set_stream_drop`]: an `Outbound` wrapper the lab installs,
//! never part of `ferrota serve`'s configuration): 1% of the stream data publishes (block
//! responses) are not sent, picked by a seeded generator. To the agent that is the same as a
//! TLS-terminating proxy dropping them, and it costs no link bytes.

//!
//! # What the profile showed, and what changed (agent and board)
//!
//! `perf stat` of `ferrota bench link --short` (two 4 MB updates through TLS and the proxy):
//! 164 ms of CPU in 1.47 s, 0.11 CPUs, half of it in the kernel (scheduling, loopback TCP),
//! the top user symbol SHA-256 (building and verifying images). The CPU never limits the
//! download; the time goes to *waiting*. So the profile that counts is a timeline of the
//! board's requests and new blocks (timestamps in the board's loop), which showed, in order:
//!
//! | what the timeline showed | change | 50 ms RTT, % of link (lossless / 1% loss) |
//! |---|---|---|
//! | before (4 requests in flight, region checked alone, loss found by timeout) | — | 59.7% / 33.0% |
//! | the link idled one round trip after the CM0+ region (the rest was only asked for once it was checked) | `precheck_lookahead`: ask ahead of the check by up to 1 MB | |
//! | 4 × 128 KB in flight < 588 KB bandwidth-delay product | up to 16 requests in flight | |
//! | every lost block waited a retransmission timeout (≥ 100 ms) | re-ask a block overtaken within its request at once (`gap_retransmit`) | 97.3% / 92.4% |
//! | a lost *last* block of a request still waited the timeout (seed 7: 25% of the goodput at 2 ms) | a started request overtaken by 3 blocks of later ones lost its tail; the newest request's tail after a pause of 8 burst spacings | |
//! | a block asked again queued behind 8 × 128 KB (85 ms at 2 ms RTT) | window adapts to min RTT ÷ block spacing + 2 requests | |
//! | the first request and every request at the end of a download waited 40 ms (Nagle on the device's socket + the peer's delayed ACK) | `TCP_NODELAY` on the board's MQTT socket | 97.0% / 92.6%; seed 7 at 2 ms: loss cost 25.5% → 4.0%, download 0.42 → 0.37 s |
//! | a block re-asked at once whose answer was dropped again waited for its request's timeout (seed 42 at 50 ms: block 171, re-asked at 0.93 s, timed out at 1.23 s and came last, 55 ms after the rest) | a request with no answer yet that a later request's full answer and 3 later blocks passed is given up `min_rto` after it was passed | seed 42 at 50 ms: 12.1% → 4.9% of the goodput lost, 1 → 0 timeouts; 5 seeds: median 11.7% → 11.4% |
//!
//! At 200 ms the window (2 MB) is below the bandwidth-delay product (2.35 MB) and a loss in
//! the last window costs a round trip whatever the schedule: see the notes of the report.
//!
//! # Seeds
//!
//! One drop pattern decides whether a loss hits the download's tail (or the CM0+ region the
//! rest waits for), so one seed made the 50 ms figure swing between release runs (4.5%, then
//! 10.0%). Ferrota's lossy download runs with [`SEEDS`] seeds per round trip ([`SHORT_SEEDS`]
//! in `--short`) against one lossless run; the target is judged on the median goodput lost
//! and the worst is reported beside it. The official schedule keeps one seed (its 10 s waits
//! make a run slow). `FERROTA_BENCH_LOSS_SEED` replaces the seeds (one, or a comma-separated
//! list), e.g. `FERROTA_BENCH_LOSS_SEED=42 ferrota bench loss`.

pub mod shaper;

use std::net::SocketAddr;
use std::time::Duration;

use ferrota_device::board::{AgentTuning, BoardEvent, Counters, Options as BoardOptions};
use ferrota_lab::images::{DemoImage, Tamper};
use ferrota_lab::lab::{self, Lab};
use serde_json::json;

use self::shaper::{LinkModel, Proxy};
use crate::report::{Report, Table, Target};
use crate::{BenchError, Options, Scenario};

/// Round trips measured (ms).
pub const RTTS_MS: [u64; 3] = [2, 50, 200];
/// Fraction of block responses dropped in the `loss` scenario.
pub const LOSS: f64 = 0.01;
/// Seed of the drop generator: it drops 10 of the first 1,016 blocks (1.0%; the seed
/// `0x5EEDF07A` dropped only 2, too few to show anything). The official schedule runs with
/// this one (its 10 s waits make each run slow).
pub const SEED: u64 = 42;
/// Drop patterns Ferrota's lossy download runs with at each round trip: [`SEED`] and the
/// seeds after it. One pattern decides whether a loss hits the download's tail (one release
/// run gave 10.0% at 50 ms, an earlier one 4.5%), so the targets are judged on the median
/// of these and the worst is shown beside it.
pub const SEEDS: usize = 5;
/// Seeds of the `--short` smoke run (2 ms, a fraction of a second each).
pub const SHORT_SEEDS: usize = 3;
/// Environment variable that replaces the seeds (one, or a comma-separated list), to see how
/// much the figures owe to which blocks were dropped; the first also drives the official
/// schedule.
pub const SEED_VAR: &str = "FERROTA_BENCH_LOSS_SEED";

/// The drop seeds: [`SEED_VAR`] if set, else [`SEED`] and the `n - 1` seeds after it.
fn seeds(n: usize) -> Result<Vec<u64>, String> {
    match std::env::var(SEED_VAR) {
        Err(std::env::VarError::NotPresent) => Ok((0..n as u64).map(|k| SEED + k).collect()),
        Ok(v) => {
            let list = v
                .split(',')
                .map(|x| x.trim().parse::<u64>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| format!("{SEED_VAR}={v:?}: not unsigned integers, comma-separated"))?;
            if list.is_empty() {
                return Err(format!("{SEED_VAR}: empty"));
            }
            Ok(list)
        }
        Err(e) => Err(format!("{SEED_VAR}: {e}")),
    }
}
/// Ferrota's goodput as a share of the link's payload rate the issue set (2 and 50 ms).
pub const TARGET_LINK_SHARE: f64 = 0.90;
/// Ferrota ÷ official at 50 ms.
pub const TARGET_RATIO: f64 = 10.0;
/// Most of its lossless goodput Ferrota may lose with 1% loss.
pub const TARGET_LOSS_COST: f64 = 0.10;
/// The official re-request wait in the `--short` smoke run (10 s per lost block would make it
/// minutes long; the code path is the same).
const SHORT_WAIT: Duration = Duration::from_millis(500);

/// Which schedule a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sched {
    Ferrota,
    Official,
}

impl Sched {
    fn name(self) -> &'static str {
        match self {
            Sched::Ferrota => "Ferrota (defaults)",
            Sched::Official => "official schedule",
        }
    }
    fn tuning(self, short: bool) -> Option<AgentTuning> {
        match self {
            Sched::Ferrota => None,
            Sched::Official if short => Some(AgentTuning {
                initial_rto: Some(SHORT_WAIT),
                min_rto: Some(SHORT_WAIT),
                max_rto: Some(SHORT_WAIT),
                ..AgentTuning::official_library()
            }),
            Sched::Official => Some(AgentTuning::official_library()),
        }
    }
}

/// One measured update.
#[derive(Debug, Clone)]
struct Run {
    sched: Sched,
    rtt_ms: u64,
    loss: f64,
    /// Seed of the drop generator (meaningless without loss).
    seed: u64,
    /// First new block → last new block.
    blocks_secs: f64,
    /// First stream request → activation.
    download_secs: f64,
    goodput: f64,
    dropped: u64,
    counters: Counters,
    bytes_down: u64,
}

impl Run {
    fn json(&self, rate: f64) -> serde_json::Value {
        let s = self.counters.download.unwrap_or_default();
        json!({
            "schedule": self.sched.name(),
            "rtt_ms": self.rtt_ms,
            "loss": self.loss,
            "seed": self.seed,
            "goodput_bytes_per_s": self.goodput,
            "share_of_link": self.goodput / rate,
            "first_to_last_block_secs": self.blocks_secs,
            "download_secs": self.download_secs,
            "blocks_dropped_by_server": self.dropped,
            "link_bytes_down": self.bytes_down,
            "requests": s.requests,
            "duplicates": s.duplicates,
            "timeouts": s.timeouts,
            "gap_rerequests": s.gaps,
        })
    }
}

struct Bench {
    lab: Lab,
    v1_0: DemoImage,
    v1_1: DemoImage,
    runs: usize,
    scenario: Scenario,
}

impl Bench {
    async fn start(scenario: Scenario) -> Result<Bench, String> {
        let lab = Lab::start().await.map_err(|e| e.to_string())?;
        let v1_0 = lab.image(0, 1, Tamper::None).map_err(|e| e.to_string())?;
        let v1_1 = lab.image(1, 2, Tamper::None).map_err(|e| e.to_string())?;
        Ok(Bench {
            lab,
            v1_0,
            v1_1,
            runs: 0,
            scenario,
        })
    }

    /// A fresh board on v1.0.0 behind a proxy of round trip `rtt_ms` updates to v1.1.0, the
    /// server dropping `loss` of the block responses as the generator seeded with `seed` picks.
    async fn run(
        &mut self,
        opts: &Options,
        sched: Sched,
        rtt_ms: u64,
        loss: f64,
        seed: u64,
    ) -> Result<Run, String> {
        self.runs += 1;
        let n = self.runs;
        opts.say(format!(
            "{}: {} at {rtt_ms} ms RTT{}",
            self.scenario.name(),
            sched.name(),
            if loss > 0.0 {
                format!(", {:.0}% of blocks dropped (seed {seed})", loss * 100.0)
            } else {
                String::new()
            }
        ));
        let model = LinkModel::ethernet_100m(Duration::from_millis(rtt_ms));
        let upstream = SocketAddr::from(([127, 0, 0, 1], self.lab.port));
        let proxy = Proxy::start(model, upstream)
            .await
            .map_err(|e| e.to_string())?;
        let thing = format!("bench-{n}");
        let (dev, cfg) = self
            .lab
            .add_device_on(&thing, &self.v1_0, proxy.port)
            .await
            .map_err(|e| e.to_string())?;
        let mut board = lab::board(
            dev,
            cfg,
            BoardOptions {
                quiet: true,
                agent: sched.tuning(opts.short),
                ..BoardOptions::default()
            },
        );
        let (_, up) = lab::drive(&mut board, Duration::from_secs(60), |e| {
            e.last() == Some(&BoardEvent::Connected)
        })
        .await
        .map_err(|e| e.to_string())?;
        if !up {
            return Err(format!("{thing} did not connect through the proxy"));
        }
        board.counters = Counters::default();
        self.lab
            .set_stream_drop(loss, seed)
            .map_err(|e| e.to_string())?;
        let dropped_before = self.lab.stream_blocks_dropped();
        let down_before = proxy.stats.down.load(std::sync::atomic::Ordering::Relaxed);
        let job = format!("bench-update-{n}");
        self.lab
            .update(&job, &[&thing], &self.v1_1)
            .await
            .map_err(|e| e.to_string())?;
        let (events, done) = lab::drive(&mut board, Duration::from_secs(900), |e| {
            matches!(
                e.last(),
                Some(BoardEvent::Activated | BoardEvent::JobFailed(_))
            )
        })
        .await
        .map_err(|e| e.to_string())?;
        self.lab
            .set_stream_drop(0.0, seed)
            .map_err(|e| e.to_string())?;
        if !done || !events.contains(&BoardEvent::Activated) {
            return Err(format!(
                "{} at {rtt_ms} ms: the update did not activate: {:?}",
                sched.name(),
                events.last()
            ));
        }
        let c = board.counters;
        let (Some(req), Some(first), Some(last), Some(act)) = (
            c.first_request_at,
            c.first_block_at,
            c.last_block_at,
            c.activated_at,
        ) else {
            return Err("the board recorded no download times".into());
        };
        let blocks_secs = last.duration_since(first).as_secs_f64();
        Ok(Run {
            sched,
            rtt_ms,
            loss,
            seed,
            blocks_secs,
            download_secs: act.duration_since(req).as_secs_f64(),
            goodput: self.v1_1.file.len() as f64 / blocks_secs.max(1e-9),
            dropped: self.lab.stream_blocks_dropped() - dropped_before,
            counters: c,
            bytes_down: proxy.stats.down.load(std::sync::atomic::Ordering::Relaxed) - down_before,
        })
    }
}

/// Runs the scenario (`loss`: 1% of block responses dropped).
pub fn run(opts: &Options, loss: bool) -> Result<Report, BenchError> {
    let scenario = if loss { Scenario::Loss } else { Scenario::Link };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| BenchError::new(scenario, format!("tokio runtime: {e}")))?;
    rt.block_on(async {
        let mut b = Bench::start(scenario)
            .await
            .map_err(|e| BenchError::new(scenario, e))?;
        let r = if loss {
            run_loss(opts, &mut b).await
        } else {
            run_link(opts, &mut b).await
        }
        .map_err(|e| BenchError::new(scenario, e));
        b.lab.shutdown().await;
        r
    })
}

fn rtts(short: bool) -> &'static [u64] {
    if short { &RTTS_MS[..1] } else { &RTTS_MS }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn mbs(x: f64) -> String {
    format!("{:.2}", x / 1e6)
}

fn common_notes(rate: f64, image: usize) -> Vec<String> {
    vec![
        format!(
            "Link model, per direction (crate ferrota-bench, link/shaper.rs): 100 Mbit/s; each \
             read forwarded leaves as ⌈n/1448⌉ TCP segments of MSS 1448 (MTU 1500, TCP \
             timestamps) plus 90 bytes of framing each (Ethernet preamble/SFD 8, header 14, \
             FCS 4, inter-frame gap 12, IPv4 20, TCP 32), so the TCP payload rate is \
             12.5 MB/s × 1448/1538 = {:.2} MB/s; one-way delay RTT/2; a queue of 100 full \
             frames (150 KB) in front of the wire, which when full stops the proxy reading \
             (the sender waits in its socket buffer; no bytes are lost on the wire).",
            rate / 1e6
        ),
        format!(
            "Goodput = image bytes ({image}) ÷ (arrival of the last new block − arrival of the \
             first new block) at the device; % of link = goodput ÷ {:.2} MB/s. MQTT, TLS and \
             CBOR framing count against it.",
            rate / 1e6
        ),
        "Download s = first stream request published → image verified (SHA-256 of 4 MB and \
         signatures) and activated; it includes the fixed round trips a goodput leaves out."
            .into(),
        "Official schedule = the same agent with the AWS OTA library's settings: 4 KB blocks, \
         8 blocks a request, 1 request at a time, fixed 10 s re-request wait (initial = min = \
         max RTO), no early loss detection (ferrota_device::board::AgentTuning::official_library)."
            .into(),
        "Real system: ferrota-server in-process, a provisioned simulated T2G board (boot chain, \
         agent, flash model) over MQTT 3.1.1 and mutual TLS 1.3, through the proxy on \
         loopback. One run per row, all rows in the same process one after another, so the \
         ratios hold on a busy machine; absolute figures move with the load."
            .into(),
    ]
}

async fn run_link(opts: &Options, b: &mut Bench) -> Result<Report, String> {
    let rate = LinkModel::ethernet_100m(Duration::ZERO).payload_rate();
    let image = b.v1_1.file.len();
    let mut runs = Vec::new();
    for &rtt in rtts(opts.short) {
        let f = b.run(opts, Sched::Ferrota, rtt, 0.0, SEED).await?;
        let o = b.run(opts, Sched::Official, rtt, 0.0, SEED).await?;
        runs.push((f, o));
    }
    let mut table = Table::new([
        "RTT",
        "schedule",
        "goodput MB/s",
        "% of link payload rate",
        "download s (request → activation)",
        "requests",
        "Ferrota ÷ official",
    ]);
    let mut targets = Vec::new();
    for (f, o) in &runs {
        let ratio = f.goodput / o.goodput;
        for (r, ratio_cell) in [(f, format!("{ratio:.1}×")), (o, "1.0×".to_string())] {
            table.row([
                format!("{} ms", r.rtt_ms),
                r.sched.name().to_string(),
                mbs(r.goodput),
                pct(r.goodput / rate),
                format!("{:.2}", r.download_secs),
                r.counters.download.unwrap_or_default().requests.to_string(),
                ratio_cell,
            ]);
        }
        if f.rtt_ms <= 50 {
            let share = f.goodput / rate;
            targets.push(Target::new(
                format!(
                    "Ferrota goodput at {} ms RTT, % of link payload rate",
                    f.rtt_ms
                ),
                format!("≥ {:.0}%", TARGET_LINK_SHARE * 100.0),
                pct(share),
                share >= TARGET_LINK_SHARE,
                opts.short,
            ));
        }
        if f.rtt_ms == 50 || opts.short {
            targets.push(Target::new(
                format!("Ferrota ÷ official schedule at {} ms RTT", f.rtt_ms),
                format!("≥ {TARGET_RATIO:.0}×"),
                format!("{ratio:.1}×"),
                ratio >= TARGET_RATIO,
                opts.short,
            ));
        }
    }
    let mut notes = common_notes(rate, image);
    if opts.short {
        notes.push(format!(
            "Short smoke run: {} ms RTT only; the official schedule's wait is {} ms instead of \
             10 s.",
            RTTS_MS[0],
            SHORT_WAIT.as_millis()
        ));
    }
    Ok(Report {
        scenario: Scenario::Link,
        title: "a 4 MB update over shaped 100 Mbit/s Ethernet, Ferrota beside the official \
                schedule"
            .into(),
        short: opts.short,
        table,
        targets,
        notes,
        data: json!({
            "image_bytes": image,
            "link_payload_rate_bytes_per_s": rate,
            "runs": runs.iter().flat_map(|(f, o)| [f.json(rate), o.json(rate)]).collect::<Vec<_>>(),
        }),
    })
}

/// Ferrota's lossy runs at one round trip, one per drop seed, with what they cost.
struct LossRuns {
    clean: Run,
    /// (run, goodput lost), sorted by the goodput lost, least first.
    lossy: Vec<(Run, f64)>,
}

impl LossRuns {
    /// The run of the median cost (the lower middle one of an even count).
    fn median(&self) -> &(Run, f64) {
        &self.lossy[(self.lossy.len() - 1) / 2]
    }
    fn worst(&self) -> &(Run, f64) {
        &self.lossy[self.lossy.len() - 1]
    }
}

async fn run_loss(opts: &Options, b: &mut Bench) -> Result<Report, String> {
    let rate = LinkModel::ethernet_100m(Duration::ZERO).payload_rate();
    let image = b.v1_1.file.len();
    let seeds = seeds(if opts.short { SHORT_SEEDS } else { SEEDS })?;
    // The official schedule waits 10 s per lost request: one RTT only (50 ms, the targets'
    // RTT; the shortest in the smoke run) and one seed, to keep the run within minutes.
    let official_rtt = if opts.short { RTTS_MS[0] } else { 50 };
    let mut all: Vec<LossRuns> = Vec::new();
    let mut official = None;
    for &rtt in rtts(opts.short) {
        let clean = b.run(opts, Sched::Ferrota, rtt, 0.0, seeds[0]).await?;
        let mut lossy = Vec::new();
        for &seed in &seeds {
            let r = b.run(opts, Sched::Ferrota, rtt, LOSS, seed).await?;
            let cost = 1.0 - r.goodput / clean.goodput;
            lossy.push((r, cost));
        }
        lossy.sort_by(|a, b| a.1.total_cmp(&b.1));
        if rtt == official_rtt {
            official = Some(b.run(opts, Sched::Official, rtt, LOSS, seeds[0]).await?);
        }
        all.push(LossRuns { clean, lossy });
    }
    let n = seeds.len();
    let mut table = Table::new([
        "RTT",
        "schedule",
        "blocks dropped",
        "goodput MB/s",
        "% of link payload rate",
        "goodput lost to loss",
        "download s (request → activation)",
        "re-asked at once / after timeout",
    ]);
    let row = |table: &mut Table, r: &Run, what: String, cost: String| {
        let s = r.counters.download.unwrap_or_default();
        table.row([
            format!("{} ms", r.rtt_ms),
            what,
            r.dropped.to_string(),
            mbs(r.goodput),
            pct(r.goodput / rate),
            cost,
            format!("{:.2}", r.download_secs),
            format!("{} / {}", s.gaps, s.timeouts),
        ]);
    };
    let mut targets = Vec::new();
    let mut data = Vec::new();
    let mut summary = Vec::new();
    for l in &all {
        let (med, med_cost) = l.median();
        let (worst, worst_cost) = l.worst();
        row(
            &mut table,
            &l.clean,
            Sched::Ferrota.name().to_string(),
            "—".into(),
        );
        row(
            &mut table,
            med,
            format!(
                "{}, 1% loss: median of {n} seeds (seed {})",
                Sched::Ferrota.name(),
                med.seed
            ),
            pct(*med_cost),
        );
        if n > 1 {
            row(
                &mut table,
                worst,
                format!(
                    "{}, 1% loss: worst of {n} seeds (seed {})",
                    Sched::Ferrota.name(),
                    worst.seed
                ),
                pct(*worst_cost),
            );
        }
        data.push(l.clean.json(rate));
        for (r, cost) in &l.lossy {
            let mut j = r.json(rate);
            j["goodput_lost"] = json!(cost);
            data.push(j);
        }
        summary.push(json!({
            "rtt_ms": med.rtt_ms,
            "seeds": seeds,
            "goodput_lost_median": med_cost,
            "goodput_lost_worst": worst_cost,
            "worst_seed": worst.seed,
            "goodput_lost_by_seed": l.lossy.iter().map(|(r, c)| json!({"seed": r.seed, "goodput_lost": c})).collect::<Vec<_>>(),
        }));
        targets.push(Target::new(
            format!(
                "Ferrota goodput lost to 1% block loss at {} ms RTT (median of {n} seeds; worst {})",
                med.rtt_ms,
                pct(*worst_cost)
            ),
            format!("< {:.0}%", TARGET_LOSS_COST * 100.0),
            pct(*med_cost),
            *med_cost < TARGET_LOSS_COST,
            opts.short,
        ));
        if let Some(o) = official.as_ref().filter(|o| o.rtt_ms == med.rtt_ms) {
            row(
                &mut table,
                o,
                format!("{}, 1% loss (seed {})", o.sched.name(), o.seed),
                "n/a".into(),
            );
            data.push(o.json(rate));
        }
    }
    let mut notes = common_notes(rate, image);
    notes.push(format!(
        "Loss: {:.0}% of block responses dropped where they are produced, in ferrota-server \
         (an `Outbound` wrapper the bench installs, a seeded generator; the same seed drops the same blocks): the \
         same to the agent as a TLS-terminating proxy dropping them, and it costs no link bytes \
         (TLS hides MQTT from a proxy on the wire). Goodput lost = 1 − lossy ÷ lossless goodput \
         of Ferrota at the same RTT, both measured in this run.",
        LOSS * 100.0,
    ));
    notes.push(format!(
        "Seeds: one drop pattern decides whether a loss hits the download's tail, so Ferrota's \
         lossy download runs once per seed ({}) at each RTT, against one lossless run. The \
         target is judged on the median goodput lost; the worst seed is shown beside it (row \
         and target line), not hidden. {SEED_VAR} replaces the seeds (one, or a \
         comma-separated list).",
        seeds
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    notes.push(
        "A lost block is found as soon as a later block overtakes it and is asked for at once, \
         but its answer still needs a round trip: a loss in the last window of the download \
         ends it about one RTT later whatever the schedule, so the cost floor is about RTT ÷ \
         transfer time (0.2 s of ~0.7 s at 200 ms; 50 ms of ~0.4 s at 50 ms). Beating it \
         would need redundancy (sending blocks twice or forward error correction)."
            .into(),
    );
    notes.push(
        "A loss in the CM0+ region (the first 16 blocks, checked before the rest of the image \
         is asked for beyond the 1 MB lookahead) costs about a round trip too: its re-request \
         waits behind the lookahead, then the rest of the image is asked for (seed 43 at \
         50 ms: the link idled 56 ms after the first 1 MB)."
            .into(),
    );
    notes.push(format!(
        "The official schedule waits a fixed 10 s for each request that lost a block, so it \
         runs with loss at {official_rtt} ms and with the first seed ({}) only, to keep the \
         whole scenario within minutes.",
        seeds[0]
    ));
    if opts.short {
        notes.push(format!(
            "Short smoke run: {} ms RTT only, {n} seeds; the official schedule's wait is {} ms \
             instead of 10 s.",
            RTTS_MS[0],
            SHORT_WAIT.as_millis()
        ));
    }
    Ok(Report {
        scenario: Scenario::Loss,
        title: "the same update with 1% of block responses dropped".into(),
        short: opts.short,
        table,
        targets,
        notes,
        data: json!({
            "image_bytes": image,
            "link_payload_rate_bytes_per_s": rate,
            "loss": LOSS,
            "seeds": seeds,
            "by_rtt": summary,
            "runs": data,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> Options {
        Options {
            short: true,
            ferrota_exe: std::path::PathBuf::new(),
            progress: false,
            faults: false,
            delta_pairs: None,
        }
    }

    /// The real board and server through the proxy, with 5% of the blocks dropped: the update
    /// still completes, every block once, and the official tuning reaches the agent.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn updates_complete_through_the_proxy_with_drops() {
        let mut b = Bench::start(Scenario::Loss).await.expect("lab");
        let opts = quiet();
        let f = b
            .run(&opts, Sched::Ferrota, 2, 0.05, SEED)
            .await
            .expect("Ferrota's update");
        let s = f.counters.download.expect("stats at activation");
        assert!(f.dropped > 0, "the knob dropped nothing");
        assert_eq!(s.blocks_accepted, 1016);
        assert!(s.gaps + s.timeouts > 0, "{s:?}");
        assert!(f.bytes_down > 4_161_536, "everything crossed the proxy");
        assert!(f.goodput > 0.0 && f.download_secs >= f.blocks_secs);
        let o = b
            .run(&opts, Sched::Official, 0, 0.0, SEED)
            .await
            .expect("the official schedule's update");
        let s = o.counters.download.expect("stats at activation");
        assert_eq!(o.dropped, 0, "the knob is off again");
        assert_eq!(s.requests, 127, "8 blocks a request: {s:?}");
        b.lab.shutdown().await;
    }
}
