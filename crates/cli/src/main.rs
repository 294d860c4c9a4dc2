//! `ferrota`: the command-line front end of Ferrota. It parses arguments, reads and writes files
//! (atomically), and calls `ferrota-keys` and `ferrota-image`; no logic of its own lives here.
//!
//! | module | commands |
//! |---|---|
//! | [`args`] | the clap definitions and `--help` texts |
//! | [`keycmd`] | `key generate`, `key public`, `cert code-signing` |
//! | [`trustcmd`] | `key trust-init`, `key trust-show`, `key rotate`, `key revoke`, `release sign`, `release verify` (signed update metadata) |
//! | [`imagecmd`] | `image pack`, `image from-merged-hex`, `image sign-ota`, `image verify` |
//! | [`show`] | `image show` (text and JSON) |
//! | [`t2gargs`], [`t2gcmd`] | `t2g new`, `program`, `boot`, `show`, `activate`, `confirm`, `reject` |
//! | [`serverargs`], [`servecmd`], [`thingcmd`], [`otacmd`] | `serve`, `ca init`, `thing create/list/update/describe/revoke`, `ota create/list/describe/cancel` |
//! | [`rolloutcmd`] | `ota create`'s rollout settings (`--rollout-json`, `--cli-input-json`, flags), `rollout status/pause/resume/approve/cancel` |
//! | [`groupcmd`] | `group create/list/describe/delete` (dynamic thing groups, through the API) |
//! | [`devicecmd`], [`democmd`] | `device run`, `demo` |
//! | [`benchcmd`] | `bench` (the performance scenarios of `ferrota-bench`) |
//! | [`settings`] | where every server command finds the server: config file, `FERROTA_*`, the API and MQTT addresses |
//! | [`fsio`] | reading with context, atomic writing |

#![forbid(unsafe_code)]

mod accesscmd;
mod args;
mod benchcmd;
mod clustercmd;
mod democmd;
mod devicecmd;
mod diffcmd;
mod fsio;
mod groupcmd;
mod imagecmd;
mod keycmd;
mod otacmd;
mod rolloutcmd;
mod servecmd;
mod serverargs;
mod settings;
mod show;
mod t2gargs;
mod t2gcmd;
mod thingcmd;
mod trustcmd;

use std::process::ExitCode;

use clap::Parser;

use args::{CertCommand, Cli, Command, ImageCommand, KeyCommand, ReleaseCommand};

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Key(KeyCommand::Generate(a)) => keycmd::generate(&a),
        Command::Key(KeyCommand::Public(a)) => keycmd::public(&a),
        Command::Key(KeyCommand::TrustInit(a)) => trustcmd::trust_init(&a),
        Command::Key(KeyCommand::TrustShow(a)) => trustcmd::trust_show(&a),
        Command::Key(KeyCommand::Rotate(a)) => trustcmd::rotate(&a),
        Command::Key(KeyCommand::Revoke(a)) => trustcmd::revoke(&a),
        Command::Release(ReleaseCommand::Sign(a)) => trustcmd::sign(&a),
        Command::Release(ReleaseCommand::Verify(a)) => trustcmd::verify(&a),
        Command::Cert(CertCommand::CodeSigning(a)) => keycmd::code_signing(&a),
        Command::Image(ImageCommand::Pack(a)) => imagecmd::pack(&a),
        Command::Image(ImageCommand::FromMergedHex(a)) => imagecmd::from_merged_hex(&a),
        Command::Image(ImageCommand::SignOta(a)) => imagecmd::sign_ota(&a),
        Command::Image(ImageCommand::Verify(a)) => imagecmd::verify(&a),
        Command::Image(ImageCommand::Show(a)) => show::show(&a),
        Command::Image(ImageCommand::Diff(a)) => diffcmd::diff(&a),
        Command::Image(ImageCommand::Compress(a)) => diffcmd::compress(&a),
        Command::T2g(c) => t2gcmd::run(c),
        Command::Serve(a) => servecmd::serve(&a),
        Command::Cluster(c) => clustercmd::run(&c),
        Command::Ca(serverargs::CaCommand::Init(a)) => servecmd::ca_init(&a),
        Command::Thing(c) => thingcmd::run(c),
        Command::Ota(c) => otacmd::run(c),
        Command::Rollout(c) => rolloutcmd::run(c),
        Command::Token(c) => accesscmd::token(c),
        Command::Audit(c) => accesscmd::audit(c),
        Command::Group(c) => groupcmd::run(c),
        Command::Device(c) => devicecmd::run(c),
        Command::Demo(a) => democmd::run(&a),
        Command::Bench(a) => benchcmd::run(&a),
    }
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    // Usage errors print clap's message and exit with status 2.
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// A reader that stops early (`ferrota ota list | head`) is not an error of ours: exit at once,
/// silently, with the status a shell reports for a writer stopped by SIGPIPE (128 + 13 = 141),
/// as `cat` and `ls` do, instead of the "failed printing to stdout: Broken pipe" panic Rust's
/// `println!` raises (the Rust runtime ignores SIGPIPE, so the write fails with EPIPE).
///
/// Why a panic hook and not SIGPIPE's default action: restoring the signal needs `unsafe` (this
/// crate forbids it), and every command prints through `println!`; the hook is the one place
/// that sees all of them. Only that one panic is taken; every other keeps the default hook.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to stdout") && text.contains("os error 32") {
            std::process::exit(141);
        }
        default(info)
    }));
}

/// The error and its causes joined by ": ", leaving out a cause whose text the message
/// already holds: sqlx, for one, wraps SQLite's error in one whose text repeats it, and
/// `{:#}` then printed "database disk image is malformed" three times.
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if s.is_empty() || out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out
}
