//! `ferrota token create|list|revoke` and `ferrota audit export|verify`: operator tokens with
//! roles, and the hash-chained audit log, through the HTTP API of a running server (see
//! `ferrota_server::operators`). Verification runs here, on the records the server sent or on
//! an exported file, with the chain code the server appends with.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use ferrota_api::access::{AuditRecord, CreateToken, Role, TokenDescription, verify_chain};

use crate::otacmd::Api;
use crate::serverargs::ApiArgs;

/// The largest exported audit file read by `audit verify --file` (256 MiB).
const AUDIT_FILE_MAX: u64 = 256 << 20;

/// `ferrota token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an operator token and print it (once: only its SHA-256 is kept).
    #[command(after_help = "\
Roles (each includes the ones before it):
  viewer           read everything: things, groups, OTA updates, rollouts, the audit log
  release-manager  upload firmware, create and cancel OTA updates, steer rollouts
  admin            things, groups, certificates and revocation, operator tokens

Examples:
  ferrota token create --name alice --role release-manager -c ferrota.toml
  FERROTA_TOKEN=fer_... ferrota ota list -c ferrota.toml     # as alice

The bootstrap token in <data>/api-token is an admin's (holder \"api-token\").")]
    Create(TokenCreateArgs),
    /// List operator tokens (ids, holders, roles; never the secrets).
    List(TokenListArgs),
    /// Revoke a token by its id: its next request is refused (401).
    Revoke(TokenRevokeArgs),
}

/// `token create`
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// Who holds it (1-64 of letters, digits, - _ . @); named in the audit log.
    #[arg(long)]
    pub name: String,
    /// viewer, release-manager or admin.
    #[arg(long, value_parser = parse_role)]
    pub role: Role,
    /// Print the API's JSON answer.
    #[arg(long)]
    pub json: bool,
    /// The API.
    #[command(flatten)]
    pub api: ApiArgs,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

/// `token list`
#[derive(Debug, Args)]
pub struct TokenListArgs {
    /// Print the API's JSON answer.
    #[arg(long)]
    pub json: bool,
    /// The API.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `token revoke`
#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// The token's id (16 hex digits, from `token list`).
    pub id: String,
    /// Print the API's JSON answer.
    #[arg(long)]
    pub json: bool,
    /// The API.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `ferrota audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the audit log: every operator change and refusal, every device outcome.
    Export(AuditExportArgs),
    /// Check the audit log's hash chain; names the first changed, removed or reordered record.
    #[command(after_help = "\
Examples:
  ferrota audit verify -c ferrota.toml                   # the server's log
  ferrota audit export --json -c ferrota.toml > audit.json
  ferrota audit verify --file audit.json --head 1234:9f2c...   # offline, against a noted head

Removing the newest records leaves a shorter chain that is intact: note the head this command
prints (SEQ:HASH) somewhere else, and pass it with --head later.")]
    Verify(AuditVerifyArgs),
}

/// `audit export`
#[derive(Debug, Args)]
pub struct AuditExportArgs {
    /// A JSON array of records (seq, at, actor, tokenId, action, target, result, prevHash,
    /// hash), for `audit verify --file`; otherwise one line per record.
    #[arg(long)]
    pub json: bool,
    /// The API.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `audit verify`
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// Verify an exported file (`audit export --json`) instead of the server's log.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// A head noted earlier (SEQ:HASH): fails unless that record is still in the chain.
    #[arg(long, value_name = "SEQ:HASH")]
    pub head: Option<String>,
    /// The API (without --file).
    #[command(flatten)]
    pub api: ApiArgs,
}

fn print_token(d: &TokenDescription) {
    let state = match d.revoked_at {
        Some(at) => format!("revoked {}", ferrota_server::admin::rfc3339(at)),
        None => "active".to_string(),
    };
    println!(
        "{}\t{}\t{}\t{}\t{state}",
        d.token_id,
        d.name,
        d.role,
        ferrota_server::admin::rfc3339(d.created_at)
    );
}

/// Runs a `token` command.
pub fn token(c: TokenCommand) -> Result<()> {
    match c {
        TokenCommand::Create(a) => {
            let req = CreateToken {
                name: a.name.clone(),
                role: a.role,
            };
            let t = Api::new(&a.api)?.run(|c| c.create_token(&req))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&t)?);
                return Ok(());
            }
            eprintln!(
                "token {} for {} ({}); shown once, keep it secret:",
                t.description.token_id, t.description.name, t.description.role
            );
            println!("{}", t.token);
            Ok(())
        }
        TokenCommand::List(a) => {
            let l = Api::new(&a.api)?.run(|c| c.list_tokens())?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&l)?);
                return Ok(());
            }
            l.tokens.iter().for_each(print_token);
            Ok(())
        }
        TokenCommand::Revoke(a) => {
            let d = Api::new(&a.api)?.run(|c| c.revoke_token(&a.id))?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&d)?);
                return Ok(());
            }
            print_token(&d);
            Ok(())
        }
    }
}

/// Runs an `audit` command.
pub fn audit(c: AuditCommand) -> Result<()> {
    match c {
        AuditCommand::Export(a) => {
            let log = Api::new(&a.api)?.run(|c| c.audit_log())?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&log)?);
                return Ok(());
            }
            for r in &log {
                let e = &r.entry;
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    r.seq,
                    ferrota_server::admin::rfc3339(e.at),
                    e.actor,
                    e.action,
                    e.target,
                    e.result
                );
            }
            Ok(())
        }
        AuditCommand::Verify(a) => {
            let (log, from): (Vec<AuditRecord>, String) = match &a.file {
                Some(p) => {
                    let bytes = crate::fsio::read(p, AUDIT_FILE_MAX)?;
                    let log = serde_json::from_slice(&bytes).with_context(|| {
                        format!(
                            "{}: not an audit export (a JSON array of records, \
                             `ferrota audit export --json`)",
                            p.display()
                        )
                    })?;
                    (log, p.display().to_string())
                }
                None => {
                    let api = Api::new(&a.api)?;
                    (api.run(|c| c.audit_log())?, "the server's audit log".into())
                }
            };
            let head = verify_chain(&log).map_err(|e| anyhow!("{from}: {e}"))?;
            if let Some(h) = &a.head {
                let (seq, hash) = h
                    .split_once(':')
                    .and_then(|(s, h)| Some((s.parse::<u64>().ok()?, h)))
                    .ok_or_else(|| anyhow!("--head {h}: expected SEQ:HASH, e.g. 12:9f2c…"))?;
                match log.iter().find(|r| r.seq == seq) {
                    Some(r) if r.hash == hash => {}
                    Some(_) => {
                        bail!("{from}: record {seq} is not the one noted (its hash differs)")
                    }
                    None => bail!(
                        "{from}: record {seq} is gone: the log ends at {} (records after it were removed)",
                        head.seq
                    ),
                }
            }
            println!(
                "{from}: intact, {} record(s); head {}:{}",
                head.records, head.seq, head.hash
            );
            Ok(())
        }
    }
}
