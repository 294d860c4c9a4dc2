//! `ferrota-qemu`: the host side of the firmware checks.
//!
//! ```text
//! ferrota-qemu matrix <machine> <dbm.elf> <work-dir>   # decision matrix; exit 1 on a mismatch
//! ferrota-qemu bench-images <machine> <work-dir>       # full bank + key object for the CM7 bench; prints -device options
//! ferrota-qemu host-lines                              # the host's report line of every case
//! ferrota-qemu agent <cm7-agent.elf> <work-dir>        # scripted OTA update on the CM7 agent vs the host agent
//! ferrota-qemu agent-refusals <c-agent.elf> <work-dir> # the C replay on bad scripts (each must end in its error line) and on other stream tuning
//! ferrota-qemu live --ferrota BIN --dbm DBM.elf --app APP.bin --app-failing APP_FAIL.bin \
//!     --cm0p CM0P.elf --work DIR [--timeout-secs N] [--keep] [--no-icount]
//!                                                      # issue #21's live update scenario; exit 1 naming the failed step
//! ferrota-qemu relay 127.0.0.1:PORT                    # what QEMU's guestfwd runs per guest connection
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use ferrota_qemu_harness::agent_refusals::{self, is_figure};
use ferrota_qemu_harness::agent_run::host_run;
use ferrota_qemu_harness::export::Load;
use ferrota_qemu_harness::live_run;
use ferrota_qemu_harness::map::{Board, MPS2_AN500};
use ferrota_qemu_harness::matrix::{
    Flaw, bank_image, cases, host_line, key_object, run_case, run_qemu,
};

fn usage() -> ExitCode {
    eprintln!(
        "usage: ferrota-qemu matrix <machine> <dbm.elf> <dir> | bench-images <dir> | host-lines | agent <elf> <dir> | agent-refusals <elf> <dir> | relay <addr>\n       {}",
        live_run::USAGE
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("live") {
        return live(&args[1..]);
    }
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["matrix", machine, elf, dir] => {
            let Some(board) = Board::by_machine(machine) else {
                return usage();
            };
            let (mut pass, mut fail) = (0, 0);
            for case in cases() {
                let r = match run_case(&case, &board, &PathBuf::from(elf), &PathBuf::from(dir)) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("{}: {e}", case.name);
                        fail += 1;
                        continue;
                    }
                };
                let extra = r.extra.join(" | ");
                if r.passed() {
                    pass += 1;
                    println!("ok   {:<44} {}", r.name, short(&r.host));
                    if !extra.is_empty() {
                        println!("       {extra}");
                    }
                } else {
                    fail += 1;
                    println!(
                        "FAIL {}\n  host:   {}\n  target: {}\n  {extra}",
                        r.name, r.host, r.target
                    );
                }
            }
            println!("{}: {pass} passed, {fail} failed", board.machine);
            if fail == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        ["bench-images", dir] => {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).expect("dir");
            let bank = bank_image(1, Flaw::None, true);
            let bank_file = dir.join("full-bank.bin");
            std::fs::write(&bank_file, &bank).expect("write");
            let mut sflash = vec![0u8; 0x8000];
            let obj = key_object();
            sflash[0x6400..0x6400 + obj.len()].copy_from_slice(&obj);
            let sflash_file = dir.join("sflash.bin");
            std::fs::write(&sflash_file, &sflash).expect("write");
            let b = MPS2_AN500;
            for l in [
                Load {
                    file: bank_file,
                    addr: b.bank.expect("room for a bank"),
                },
                Load {
                    file: sflash_file,
                    addr: b.sflash,
                },
            ] {
                println!("-device {}", l.qemu_device());
            }
            ExitCode::SUCCESS
        }
        ["agent", elf, dir] => agent(&PathBuf::from(elf), &PathBuf::from(dir)),
        ["agent-refusals", elf, dir] => agent_refusals(&PathBuf::from(elf), &PathBuf::from(dir)),
        ["relay", addr] => live_run::relay(addr),
        ["host-lines"] => {
            for case in cases() {
                println!("{:<44} {}", case.name, host_line(&case));
            }
            ExitCode::SUCCESS
        }
        _ => usage(),
    }
}

/// `ferrota-qemu live ...`: the scenario; on failure one `live: FAILED ...` message naming the
/// step (CI prints it as is).
fn live(args: &[String]) -> ExitCode {
    let relay = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("live: cannot find this program for the relay: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = match live_run::Options::parse(args, relay) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("live: {e}");
            return ExitCode::from(2);
        }
    };
    match live_run::run(&opts) {
        Ok(report) => {
            report.print();
            println!("live: passed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("live: FAILED {e}");
            println!(
                "live: logs in {} (console.log, server.log, qemu-*.stderr)",
                opts.work.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// The line without the log record's bytes, for the summary.
fn short(line: &str) -> &str {
    line.split(" log=").next().unwrap_or(line)
}

/// The C replay on bad scripts (`agent_refusals`): each run must end in the expected error
/// line, with a failed exit and nothing the host's agent did not print before it; then on the
/// good script with other stream tuning, which it must pass on and use.
fn agent_refusals(elf: &std::path::Path, dir: &std::path::Path) -> ExitCode {
    let host = match host_run(dir) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("agent-refusals: host run: {e}");
            return ExitCode::FAILURE;
        }
    };
    let script = ferrota_qemu_harness::agent_script::SCRIPT;
    let good = match host.loads.iter().find(|l| l.addr == script) {
        Some(l) => match std::fs::read(&l.file) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("agent-refusals: {}: {e}", l.file.display());
                return ExitCode::FAILURE;
            }
        },
        None => {
            eprintln!("agent-refusals: the host run loads no script");
            return ExitCode::FAILURE;
        }
    };
    // The host run's loads with another script file.
    let with_script = |file: &std::path::Path| -> Vec<Load> {
        host.loads
            .iter()
            .map(|l| Load {
                file: if l.addr == script {
                    file.to_path_buf()
                } else {
                    l.file.clone()
                },
                addr: l.addr,
            })
            .collect()
    };
    let (mut pass, mut fail) = (0, 0);
    for r in agent_refusals::refusals(&good) {
        let file = dir.join(format!("script-{}.bin", r.name));
        if let Err(e) = std::fs::write(&file, &r.script) {
            eprintln!("agent-refusals: {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
        let loads = with_script(&file);
        let verdict =
            match run_qemu(&MPS2_AN500, elf, &loads, false) {
                Ok(run) => agent_refusals::judge(&r, &run.stdout, run.success, &host.lines)
                    .map_err(|e| match run.stderr.trim() {
                        "" => e,
                        err => format!("{e}; qemu: {err}"),
                    }),
                Err(e) => Err(format!("qemu: {e}")),
            };
        match verdict {
            Ok(line) => {
                pass += 1;
                println!("ok   {:<18} {line}", r.name);
            }
            Err(e) => {
                fail += 1;
                println!("FAIL {:<18} {e}", r.name);
            }
        }
    }
    // Not a refusal: other stream tuning must be passed on (FerrotaConfig) and used.
    let file = dir.join("script-tuned.bin");
    if let Err(e) = std::fs::write(&file, agent_refusals::tuned(&good)) {
        eprintln!("agent-refusals: {}: {e}", file.display());
        return ExitCode::FAILURE;
    }
    let loads = with_script(&file);
    let verdict = match run_qemu(&MPS2_AN500, elf, &loads, false) {
        Ok(run) => agent_refusals::judge_tuned(&run.stdout, run.success, &host.lines),
        Err(e) => Err(format!("qemu: {e}")),
    };
    match verdict {
        Ok(line) => {
            pass += 1;
            println!("ok   {:<18} {line}", "tuned");
        }
        Err(e) => {
            fail += 1;
            println!("FAIL {:<18} {e}", "tuned");
        }
    }
    println!("agent-refusals: {pass} passed, {fail} failed");
    if fail == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The scripted update: the host agent's lines against the CM7 agent's under QEMU.
fn agent(elf: &std::path::Path, dir: &std::path::Path) -> ExitCode {
    let host = match host_run(dir) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("agent: host run: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "host: {} script entries ({} bytes), {} output lines, {} status updates",
        host.entries,
        host.script_bytes,
        host.lines.len(),
        host.updates.len()
    );
    for u in &host.updates {
        println!("  status {} {}", u.job, u.payload);
    }
    let run = match run_qemu(&MPS2_AN500, elf, &host.loads, true) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agent: qemu: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _ = std::fs::write(dir.join("target.txt"), &run.stdout);
    let (figures, lines): (Vec<&str>, Vec<&str>) = run.stdout.lines().partition(|l| is_figure(l));
    for f in &figures {
        println!("{f}");
    }
    let mut ok = run.success;
    if !run.success {
        println!(
            "FAIL the firmware did not exit cleanly: {}",
            run.stderr.trim()
        );
    }
    let n = lines.len().max(host.lines.len());
    let mut diffs = 0;
    for i in 0..n {
        let (h, t) = (host.lines.get(i).map(String::as_str), lines.get(i).copied());
        if h != t {
            diffs += 1;
            if diffs <= 5 {
                println!("FAIL line {i}\n  host:   {h:?}\n  target: {t:?}");
            }
        }
    }
    ok &= diffs == 0;
    let last = host.lines.last().map(String::as_str).unwrap_or("");
    println!("agent: {} of {n} lines equal; {last}", n - diffs);
    println!(
        "agent: {} passed, {} failed",
        usize::from(ok),
        usize::from(!ok)
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
