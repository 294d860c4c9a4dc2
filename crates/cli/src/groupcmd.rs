//! `ferrota group create|list|describe|delete`: thing groups through the HTTP API of a running
//! server (a dynamic group's members depend on who is connected, which only the server knows).
//! Its clap definitions live here too.

use anyhow::Result;
use clap::{Args, Subcommand};
use ferrota_api::{Client, CreateThingGroup, ThingGroupDescription};

use crate::otacmd::Api;
use crate::serverargs::ApiArgs;

/// The query syntax in short, for `--help` (`thing list --query`, `group create --query`).
macro_rules! query_help {
    () => {
        "Query syntax (a subset of AWS IoT fleet indexing's):
  field:value            equal; values case-insensitive, quote them with \"...\"
  field:val*  field:v?l  wildcards;  field:*  the field exists
  field < v  <=  >  >=   numbers numerically, dotted versions by version (1.10.0 > 1.9.3)
  field:[a TO b]  {a TO b}   ranges (inclusive / exclusive; * for an open end)
  a AND b, a b, a OR b, NOT a, ( ... )   (AND binds tighter than OR)
  dev-0*                 a term without a field matches thingName
Fields: thingName, thingGroupNames, attributes.<name>, connectivity.connected,
connectivity.timestamp (epoch ms), shadow.reported.<path>, firmware.version, firmware.bank,
firmware.pendingTrial, firmware.antiRollbackFloor, hardwareId, lastJob.status, lastJob.jobId.
At most 1000 characters and 12 terms. Errors name the character where the query went wrong.

"
    };
}
pub(crate) use query_help;

/// `ferrota group ...` (through the HTTP API of a running server).
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a dynamic thing group: its members are the things its query matches, at any
    /// moment (AWS CreateDynamicThingGroup).
    #[command(after_help = concat!("\
Examples:
  ferrota group create old-kits --query 'firmware.version < 1.2.0 AND attributes.model:KIT_T2G'
  ferrota group create bonn --query 'attributes.site:bonn'
  ferrota ota create rel-1-2-0 --file bank.bin --cert-name signer.crt --group old-kits

Static groups need no create: a thing names them (`thing create --group`). A dynamic group
cannot take the name of a static group that things are in.

", query_help!(), crate::serverargs::settings_help!()))]
    Create(GroupCreateArgs),
    /// List thing groups, static and dynamic.
    List(GroupListArgs),
    /// Show a group and its members now.
    Describe(GroupNameArgs),
    /// Delete a dynamic group (its things stay).
    Delete(GroupNameArgs),
}

/// `group create`
#[derive(Debug, Args)]
pub struct GroupCreateArgs {
    /// Group name, `[a-zA-Z0-9_-]`, at most 128.
    pub name: String,
    /// The fleet-index query that selects its members.
    #[arg(long, value_name = "QUERY")]
    pub query: String,
    /// Print the API's JSON answer.
    #[arg(long)]
    pub json: bool,
    /// The API.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `group list`
#[derive(Debug, Args)]
pub struct GroupListArgs {
    /// Print a JSON array of `{thingGroupName, queryString?, createdAt?}`.
    #[arg(long)]
    pub json: bool,
    /// The API.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `group describe|delete`
#[derive(Debug, Args)]
pub struct GroupNameArgs {
    /// Group name.
    pub name: String,
    /// Print the API's JSON answer.
    #[arg(long)]
    pub json: bool,
    /// The API.
    #[command(flatten)]
    pub api: ApiArgs,
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `name<TAB>dynamic|static<TAB>query` and, with members, one member per line indented.
fn print_group(g: &ThingGroupDescription) {
    let kind = if g.query_string.is_some() {
        "dynamic"
    } else {
        "static"
    };
    println!(
        "{}\t{kind}\t{}",
        g.thing_group_name,
        g.query_string.as_deref().unwrap_or("")
    );
    for m in g.members.iter().flatten() {
        println!("  {m}");
    }
}

/// Runs a `group` command.
pub fn run(c: GroupCommand) -> Result<()> {
    match c {
        GroupCommand::Create(a) => {
            let req = CreateThingGroup {
                thing_group_name: a.name.clone(),
                query_string: Some(a.query.clone()),
                ..Default::default()
            };
            let g = Api::new(&a.api)?.run(|c| c.create_thing_group(&req))?;
            if a.json {
                return print_json(&g);
            }
            eprintln!(
                "dynamic group {} created; {} member(s) now",
                g.thing_group_name,
                g.members.as_ref().map_or(0, Vec::len)
            );
            print_group(&g);
            Ok(())
        }
        GroupCommand::List(a) => {
            let gs = Api::new(&a.api)?.run(Client::list_thing_groups)?;
            if a.json {
                return print_json(&gs);
            }
            gs.iter().for_each(print_group);
            Ok(())
        }
        GroupCommand::Describe(a) => {
            let g = Api::new(&a.api)?.run(|c| c.describe_thing_group(&a.name))?;
            if a.json {
                return print_json(&g);
            }
            print_group(&g);
            Ok(())
        }
        GroupCommand::Delete(a) => {
            let d = Api::new(&a.api)?.run(|c| c.delete_thing_group(&a.name))?;
            if a.json {
                return print_json(&d);
            }
            println!("deleted thing group {}", d.deleted);
            Ok(())
        }
    }
}
