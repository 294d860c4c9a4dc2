//! The server command lines (`serve`, `ca`, `thing`, `ota`): clap definitions only.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// Where the server's state is: a data directory, optionally through a config file. The
/// resolution (flag > `FERROTA_*` variable > config file > default) is [`crate::settings`].
#[derive(Debug, Args, Clone)]
pub struct DataArgs {
    /// Configuration file: the server's TOML (see `ferrota serve --help`). Default: the first
    /// of ./ferrota.toml and $XDG_CONFIG_HOME/ferrota/ferrota.toml (~/.config/ferrota/…) that
    /// exists, else the built-in defaults.
    #[arg(long, short = 'c', value_name = "FILE", env = "FERROTA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (over the config file's `data_dir`; default ./ferrota-data).
    #[arg(long, value_name = "DIR", env = "FERROTA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// The precedence note shown by every server command's `--help` (a macro, so that `concat!`
/// can join it to a command's own text).
macro_rules! settings_help {
    () => {
        "Settings: a flag wins over its FERROTA_* environment variable, which wins over the
config file (-c FILE, FERROTA_CONFIG, else ./ferrota.toml, else
$XDG_CONFIG_HOME/ferrota/ferrota.toml), which wins over the built-in default. Where the server
really listens is recorded by `ferrota serve` in <data>/listening.json; `thing create` and
`ota` use that before the config."
    };
}
pub(crate) use settings_help;

/// The `ota create --help` text about rollouts (a macro, for `concat!`).
macro_rules! create_help {
    () => {
        "\
Rollouts (AWS IoT Jobs' settings, with AWS's names and ranges; the server checks them and
answers AWS's validation error, storing nothing):
  ferrota ota create rel-2 --file bank.bin --group fleet --max-per-minute 50
  ferrota ota create rel-2 --file bank.bin --group fleet \\
      --abort-failed-percent 10 --abort-min-executed 20 --retries 2
  ferrota ota create rel-2 --file bank.bin --group fleet \\
      --start-time 2027-01-10T22:00 --end-time 2027-01-12T06:00 --end-behavior CANCEL \\
      --maintenance-window 'cron(0 22 ? * MON-FRI *)=240'
  ferrota ota create rel-2 --file bank.bin --group fleet --continuous \\
      --wave canary:1%:success=95:errors=5%:approve --wave early:10%:errors=5% --wave all:100%
  ferrota ota create rel-2 --file bank.bin --group fleet --rollout-json rollout.json
  ferrota ota create --cli-input-json request.json --file bank.bin

--wave SPEC is NAME:SIZE[:OPTION]…: SIZE is N% (the share of all targets covered by this wave
and the ones before it: 1%, 10%, 100%), N (this many more targets) or group=GROUP (the
targets in that thing group); OPTIONs: success=P (the next wave opens once P % of this one
succeeded; default 100), errors=P% or errors=N (the rollout stops when this share or count
of the wave failed), approve (the next wave also waits for `ferrota rollout approve`).

--rollout-json FILE holds CreateJob's keys, e.g.
  {\"jobExecutionsRolloutConfig\": {\"exponentialRate\": {\"baseRatePerMinute\": 5,
     \"incrementFactor\": 2.0, \"rateIncreaseCriteria\": {\"numberOfSucceededThings\": 10}}},
   \"abortConfig\": {\"criteriaList\": [{\"failureType\": \"FAILED\", \"action\": \"CANCEL\",
     \"thresholdPercentage\": 10, \"minNumberOfExecutedThings\": 20}]},
   \"rolloutWaves\": {\"waves\": [{\"name\": \"canary\", \"count\": 10}, {\"percentage\": 100}]}}
--cli-input-json FILE is a whole CreateOTAUpdate request (otaUpdateId, targets, files, the
settings above); the id, --file, --thing/--group, --description and every flag given win over
its fields. Both files are read, and refused with the key named, before anything is sent.

"
    };
}

/// `ferrota serve`
#[derive(Debug, Args)]
#[command(after_help = concat!(
    "\
Examples:
  ferrota serve --data-dir /var/lib/ferrota            # MQTT/TLS on 127.0.0.1:8883, API on 127.0.0.1:8080
  ferrota serve --mqtt-listen 0.0.0.0:8883             # devices on the network reach MQTT
  ferrota serve -c ferrota.toml --mqtt-listen 127.0.0.1:0 --http-listen 127.0.0.1:0

Both listeners are on loopback unless an address is given: pass --mqtt-listen 0.0.0.0:8883
(or a LAN address; mqtt_listen in the config file) for devices on other machines, and put
that host name in the config's `endpoint` (and --server-name at `ca init`).

On first start the fleet CA and the server certificate are created in <data>/ca, and the
operator token of the HTTP API in <data>/api-token (mode 0600). The listening addresses are
printed as `mqtt <addr>`, `http <addr>` (then `token-file`, `api <url>`) lines and recorded
in <data>/listening.json, where `thing create` and `ota` find them. Logs go to stderr
(RUST_LOG=debug for more), coloured only on a terminal. Stops on Ctrl-C or SIGTERM.

Config file keys: data_dir, database_url, database_wait, mqtt_listen, http_listen, http_tls,
http_cert, http_key, endpoint, server_names, client_cas, crls, max_connections, [policy]
publish/subscribe (MQTT filters; ${iot:Connection.Thing.ThingName} is the thing name),
[limits] max_packet_size, queue_messages, queue_bytes, max_inflight.

HTTPS for the operator API (needed for any --http-listen but loopback, which is refused in
clear): --http-tls serves it with a certificate from the fleet CA; the CLI trusts the CA of a
local data directory by itself, a remote client passes --ca <data>/ca/ca.crt.pem (or
FERROTA_CA). --http-cert/--http-key serve your own certificate instead. The fourth line
printed, `api <url>`, is the URL to give clients (--server).
  ferrota serve --http-listen 0.0.0.0:8443 --http-tls
  ferrota ota list --server https://ota.example.com:8443 --ca ca.crt.pem --token T

With --database-url (database_url) the registry, jobs and OTA updates are kept on PostgreSQL
instead of <data>/ferrota.db, so several servers can share them; the CA, the token and the
firmware files stay in the data directory. The start waits up to database_wait seconds
(default 30) for the database server, then fails naming the URL (password hidden).

",
    settings_help!()
))]
pub struct ServeArgs {
    /// Data and config.
    #[command(flatten)]
    pub data: DataArgs,
    /// MQTT/TLS address (over the config's mqtt_listen; default 127.0.0.1:8883, loopback
    /// only: 0.0.0.0:8883 for devices on the network).
    #[arg(long, value_name = "ADDR", env = "FERROTA_MQTT_LISTEN")]
    pub mqtt_listen: Option<String>,
    /// HTTP API address (over the config's http_listen; default 127.0.0.1:8080). Anything
    /// but loopback needs HTTPS (--http-tls or --http-cert/--http-key): refused otherwise.
    #[arg(long, value_name = "ADDR", env = "FERROTA_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// Serve the HTTP API over HTTPS with a certificate the fleet CA issues at each start
    /// (for localhost, 127.0.0.1, ::1, the endpoint, server_names and the http_listen host;
    /// the config's http_tls).
    #[arg(long, env = "FERROTA_HTTP_TLS")]
    pub http_tls: bool,
    /// Serve HTTPS with this certificate chain (PEM) instead of one from the fleet CA (the
    /// config's http_cert; with --http-key).
    #[arg(
        long,
        value_name = "FILE",
        env = "FERROTA_HTTP_CERT",
        requires = "http_key"
    )]
    pub http_cert: Option<PathBuf>,
    /// The private key (PEM) of --http-cert (the config's http_key).
    #[arg(
        long,
        value_name = "FILE",
        env = "FERROTA_HTTP_KEY",
        requires = "http_cert"
    )]
    pub http_key: Option<PathBuf>,
    /// The store on PostgreSQL, postgres://user[:password]@host[:port]/database (over the
    /// config's database_url; default: SQLite in <data>/ferrota.db). Its value is not shown
    /// in --help, as it may hold a password.
    #[arg(
        long,
        value_name = "URL",
        env = "FERROTA_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Signed update metadata (#20): the trust directory `ferrota key trust-init` wrote (its
    /// root-*.cbor and the timestamp key of the newest root; the root and release keys may
    /// stay offline). Every Jobs answer to a device then carries a timestamp, and `ota
    /// create` refuses a --manifest that does not verify (the config's [trust] dir).
    #[arg(long, value_name = "DIR", env = "FERROTA_TRUST_DIR")]
    pub trust_dir: Option<PathBuf>,
}

/// `ferrota ca ...`
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create the fleet CA and the server certificate (done by `serve` on first start too).
    #[command(after_help = concat!(
        "\
Examples:
  ferrota ca init --data-dir /var/lib/ferrota --server-name ota.example.com

",
        settings_help!()
    ))]
    Init(CaInitArgs),
}

/// `ca init`
#[derive(Debug, Args)]
pub struct CaInitArgs {
    /// Data and config.
    #[command(flatten)]
    pub data: DataArgs,
    /// Extra DNS name or IP address of the server certificate (localhost and 127.0.0.1 are
    /// always in it).
    #[arg(long = "server-name", value_name = "NAME")]
    pub server_names: Vec<String>,
}

/// `ferrota thing ...`: on the data directory (a running server sees the changes), or through
/// a server's HTTP API when one is named (`--server URL`/`FERROTA_SERVER`, or `--token`).
#[derive(Debug, Subcommand)]
pub enum ThingCommand {
    /// Register a thing: key, certificate (CN = thing name) and the device bundle.
    #[command(after_help = concat!("\
Examples:
  ferrota thing create dev-001 --group fleet-a --data-dir /var/lib/ferrota -o bundles/
  ferrota thing create dev-002 -c ferrota.toml --code-signing-cert signer.crt -o bundles/
  ferrota thing create dev-003 --server https://ota.example.com:8443 --token \"$T\" -o bundles/
  ferrota thing create dev-004 --code-signing-cert signer.crt --trust-root trust/root-1.cbor -o bundles/

Writes <out>/<name>/: <name>.crt.pem, <name>.key.pem (0600), root-ca.pem,
credentials_config.h and ota_config.h (the seed's device configuration), bundle.json,
device.toml (for `ferrota device run`) and, with --code-signing-cert, code-signing.crt.pem.
With --trust-root (the anchor `ferrota key trust-init` writes), the bundle also holds that
root document as root-N.cbor and device.toml gets `[trust] policy = \"require\"`: the board
then accepts firmware only with a signed manifest and a fresh signed timestamp (a server run
with `ferrota serve --trust-dir`, jobs made with `ota create --manifest`). Without it the
board accepts AWS's plain code-signing signature, with a warning in its log.
The MQTT host and port in them are where the data directory's server listens (recorded by
`ferrota serve` in <data>/listening.json), else the config's endpoint and mqtt_listen; the
choice is printed on stderr.

Remote: every thing command goes through a server's HTTP API instead of the data directory
when a server or a token is given (--server URL, FERROTA_SERVER, --api, FERROTA_API,
--token, FERROTA_TOKEN); create, update and revoke need an admin token. The bundle then names
the MQTT endpoint that server writes (--mqtt-port applies to a data directory only).

",
    settings_help!()
))]
    Create(ThingCreateArgs),
    /// List things; with --query, the things a fleet-index query matches (asks the running
    /// server: AWS SearchIndex).
    #[command(after_help = concat!("\
Examples:
  ferrota thing list --data-dir /var/lib/ferrota
  ferrota thing list --query 'attributes.model:KIT_T2G AND connectivity.connected:true'
  ferrota thing list --query 'firmware.version < 1.2.0' --json
  ferrota thing list --query 'lastJob.status:FAILED OR dev-0*'

Without --query the data directory is read (no server needed). With --query the running
server answers (it knows who is connected), through the HTTP API.

", crate::groupcmd::query_help!(), settings_help!()))]
    List(ThingListArgs),
    /// Set, change or remove a thing's attributes (AWS UpdateThing).
    #[command(after_help = concat!("\
Examples:
  ferrota thing update dev-001 --attribute model=KIT_T2G --attribute site=bonn
  ferrota thing update dev-001 --remove-attribute site
  ferrota thing update dev-001 --replace --attribute model=KIT_T2G   # drop every other one

Attributes are merged into the stored ones unless --replace. AWS's limits: at most 50 per
thing, names of 1-128 characters of [a-zA-Z0-9_.,@/:#-], values up to 800 of
[a-zA-Z0-9_.,@/:#=[]-]. Prints the thing's attributes (JSON).

", settings_help!()))]
    Update(ThingUpdateArgs),
    /// Show a thing, its certificates and job executions (JSON).
    #[command(after_help = settings_help!())]
    Describe(ThingNameArgs),
    /// Revoke every certificate of a thing (CRL rewritten; refused at its next connect).
    #[command(after_help = settings_help!())]
    Revoke(ThingNameArgs),
}

/// `thing create`
#[derive(Debug, Args)]
pub struct ThingCreateArgs {
    /// Thing name (= MQTT client id), `[a-zA-Z0-9:_-]`, at most 64.
    pub name: String,
    /// Thing group(s).
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// An attribute, NAME=VALUE (repeatable; AWS's attributePayload).
    #[arg(long = "attribute", value_name = "NAME=VALUE", value_parser = attribute)]
    pub attributes: Vec<(String, String)>,
    /// Output directory for the bundle.
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub output: PathBuf,
    /// The code-signing certificate (X.509, PEM or DER, ECDSA P-256) whose key the device
    /// pins; copied into the bundle as code-signing.crt.pem, the name device.toml gives.
    #[arg(long, value_name = "FILE")]
    pub code_signing_cert: Option<PathBuf>,
    /// The trust anchor (root-1.cbor of `ferrota key trust-init`): copied into the bundle, and
    /// device.toml requires signed update metadata (`[trust] policy = "require"`). Checked
    /// before anything is created.
    #[arg(long, value_name = "FILE")]
    pub trust_root: Option<PathBuf>,
    /// MQTT port written into the bundle, for a port forwarded elsewhere (default: where the
    /// server listens).
    #[arg(
        long,
        value_name = "PORT",
        env = "FERROTA_MQTT_PORT",
        value_parser = clap::value_parser!(u16).range(1..)
    )]
    pub mqtt_port: Option<u16>,
    /// A remote server (--server URL --token T, FERROTA_SERVER/FERROTA_TOKEN), else the data
    /// directory and config.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `thing list`
#[derive(Debug, Args)]
pub struct ThingListArgs {
    /// Print JSON (the API's names) instead of lines: `[{thingName, groups, createdAt,
    /// attributes}]`, or with --query SearchIndex's `[{thingName, thingGroupNames,
    /// attributes, connectivity}]`.
    #[arg(long)]
    pub json: bool,
    /// A fleet-index query (AWS's syntax, see below): only the things it matches, as the
    /// running server sees them.
    #[arg(long, value_name = "QUERY")]
    pub query: Option<String>,
    /// The API (for --query) and the data directory.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `thing update`
#[derive(Debug, Args)]
pub struct ThingUpdateArgs {
    /// Thing name.
    pub name: String,
    /// Set an attribute, NAME=VALUE (repeatable).
    #[arg(long = "attribute", value_name = "NAME=VALUE", value_parser = attribute)]
    pub attributes: Vec<(String, String)>,
    /// Remove an attribute (repeatable).
    #[arg(long = "remove-attribute", value_name = "NAME")]
    pub remove: Vec<String>,
    /// Replace every stored attribute with the given ones (AWS's merge=false).
    #[arg(long)]
    pub replace: bool,
    /// A remote server (--server URL --token T, FERROTA_SERVER/FERROTA_TOKEN), else the data
    /// directory and config.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `NAME=VALUE` of `--attribute` (the server checks AWS's limits).
fn attribute(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?}: give NAME=VALUE")),
    }
}

/// `thing describe|revoke`
#[derive(Debug, Args)]
pub struct ThingNameArgs {
    /// Thing name.
    pub name: String,
    /// A remote server (--server URL --token T, FERROTA_SERVER/FERROTA_TOKEN), else the data
    /// directory and config.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// How to reach the HTTP API.
#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// API base URL of a local or remote server (also --server, FERROTA_SERVER; default:
    /// where the data directory's server listens, recorded in <data>/listening.json, else
    /// http://<the config's http_listen>, 127.0.0.1:8080).
    #[arg(
        long,
        visible_alias = "server",
        value_name = "URL",
        env = "FERROTA_API"
    )]
    pub api: Option<String>,
    /// The CA certificate(s) (PEM) that issued an https:// server's certificate. Default: the
    /// fleet CA of the data directory (<data>/ca/ca.crt.pem) when it has one, else the
    /// system's trusted roots.
    #[arg(long, value_name = "FILE", env = "FERROTA_CA")]
    pub ca: Option<PathBuf>,
    /// Operator token (default: read from <data>/api-token).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "FERROTA_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Data and config (for the token).
    #[command(flatten)]
    pub data: DataArgs,
}

/// `ferrota ota ...` (through the HTTP API of a running server).
#[derive(Debug, Subcommand)]
pub enum OtaCommand {
    /// Create an OTA update: upload the file, then a stream and a job for the targets.
    #[command(after_help = concat!(
        "\
Examples:
  ferrota image sign-ota bank.bin --key signer.pem                 # writes bank.bin.sig
  ferrota ota create rel-1-2-0 --file bank.bin --cert-name signer.crt --group fleet-a
  ferrota ota create rel-1-2-1 --file bank.bin --code-signing-cert signer.crt --group fleet-a
  ferrota ota create aws-fw --file app.bin --file-type none --thing stock-aws-device
  ferrota ota create hotfix --file bank.bin --signature bank.bin.sig --thing dev-001 --thing dev-002
  ferrota ota create rel-1-3-0 --file v1.3.0.bin --delta-from v1.2.0.bin v1.2.1.bin --group fleet-a

The job document is AWS's afr_ota document: protocols [\"MQTT\"], streamname AFR_OTA-<uuid>,
filepath (--file-name), filesize, fileid 0, certfile (--cert-name), fileType (141 by default)
and sig-sha256-ecdsa (the base64 signature). The file is sent only after the API answered a
cheap authenticated request (GET /api/limits): a wrong address or token fails at once.

With --code-signing-cert the signature is checked against that certificate's public key before
anything is uploaded (a file signed with the boot key, or the signature of another file, is
refused), and the certificate goes to the server, which checks it again.

fileType and stock AWS devices: 141 is the seed's T2G firmware type (Ferrota devices and the
seed's ota_config.h use it). The official AWS OTA library treats every file type other than its
configured firmware type (configOTA_FIRMWARE_UPDATE_FILE_TYPE_ID, 0 by default) as a
non-firmware file: it hands the file to the application and reports SUCCEEDED without
activating anything. For a stock AWS device pass --file-type none (no fileType in the job
document, as AWS does when none is given: the device reads 0) or its configured type. Only
fileType 141 is checked as a Ferrota bank image.

Fewer bytes on the wire: for a firmware file (fileType 141) the server also streams the bank
image packed (sparse and compressed: a 4 MB bank holding 200 KB of code costs about that), and
with --delta-from OLD... a delta from each OLD bank image (the releases your devices run now)
to the new one: usually a few KB for a small change. Each OLD is checked (a Ferrota bank image,
not the new file) and uploaded; the server makes the files (a few seconds each) and lists them
in the job document after files[0], the whole image, which stock AWS devices keep using. A
device is offered only the deltas whose base version (and board) it reports in its shadow,
checks the base's SHA-256 against its running bank, and falls back to the packed file, then to
the whole image. At most 8 bases; `ferrota image diff OLD NEW -o PATCH` shows a delta's size
first.

Signed update metadata (issue #20): with --manifest app.suit (from `ferrota release sign`) the
update carries the manifest as one more file, fileType 142, with its own sig-sha256-ecdsa (the
release key's ECDSA P-256 over the manifest file, app.suit.sig). AWS devices ignore it; Ferrota
devices fetch and verify it before any image block. A server started with --trust-dir checks it
against --file (digest, size, release key of the current root) and refuses a bad one, storing
nothing. Sign --file with the release key too (`release sign` prints that signature):
  ferrota release sign --trust trust --image app.bin --sequence 7 -o app.suit > sign.txt
  grep sig-sha256-ecdsa sign.txt | cut -d' ' -f2 > app.bin.sig
  ferrota ota create rel-7 --file app.bin --manifest app.suit --group fleet

",
        create_help!(),
        settings_help!()
    ))]
    Create(Box<OtaCreateArgs>),
    /// List OTA updates.
    #[command(after_help = settings_help!())]
    List(ApiArgs),
    /// Show an OTA update with each thing's status (JSON; every page unless --max-results or
    /// --next-token; --history THING for one thing's status history).
    #[command(after_help = settings_help!())]
    Describe(OtaIdArgs),
    /// Cancel an OTA update (queued executions; in-progress ones too with --force).
    #[command(after_help = settings_help!())]
    Cancel(OtaCancelArgs),
}

/// `ota create`
#[derive(Debug, Args)]
pub struct OtaCreateArgs {
    /// otaUpdateId (`[a-zA-Z0-9_-]`, ≤ 64); the job is `AFR_OTA-<id>`. May come from
    /// --cli-input-json instead.
    #[arg(required_unless_present = "cli_input_json")]
    pub id: Option<String>,
    /// The firmware file (uploaded; replaces the `files` of --cli-input-json).
    #[arg(long, value_name = "FILE", required_unless_present = "cli_input_json")]
    pub file: Option<PathBuf>,
    /// A whole CreateOTAUpdate request as `aws iot create-ota-update --cli-input-json` takes
    /// it (Ferrota's file shape); the id and the flags given win over its fields.
    #[arg(long, value_name = "FILE")]
    pub cli_input_json: Option<PathBuf>,
    /// Its OTA signature, base64 text (default: <file>.sig).
    #[arg(long, value_name = "FILE")]
    pub signature: Option<PathBuf>,
    /// The signed metadata of --file (a SUIT manifest from `ferrota release sign`), added as
    /// a fileType-142 file of the same update (issue #20). Its signature is <manifest>.sig
    /// (default), the release key's, which `release sign` writes beside it.
    #[arg(long, value_name = "FILE", requires = "file")]
    pub manifest: Option<PathBuf>,
    /// The OTA signature of --manifest, base64 text (default: <manifest>.sig).
    #[arg(long, value_name = "FILE", requires = "manifest")]
    pub manifest_signature: Option<PathBuf>,
    /// Earlier bank images the devices run now: the server also streams a delta from each to
    /// --file, and each device downloads the one for the version it reports (at most 8;
    /// firmware files only).
    #[arg(long, value_name = "OLD", num_args = 1.., requires = "file")]
    pub delta_from: Vec<PathBuf>,
    /// Name of the code-signing certificate on the device (`certfile`).
    #[arg(long, value_name = "NAME", default_value = "signer.crt")]
    pub cert_name: String,
    /// Path of the file on the device (`filepath`).
    #[arg(long, value_name = "PATH", default_value = "/ota/bank.bin")]
    pub file_name: String,
    /// `fileType`: 0-255, or `none` to leave it out of the job document (stock AWS devices;
    /// see below). 141 = T2G firmware, checked as a Ferrota bank image.
    #[arg(long, value_name = "TYPE|none", default_value = "141", value_parser = parse_file_type)]
    pub file_type: FileType,
    /// The code-signing certificate devices check the signature with (PEM or DER): the
    /// signature must verify over the file with its key, else nothing is uploaded.
    #[arg(long, value_name = "FILE")]
    pub code_signing_cert: Option<PathBuf>,
    /// Target thing(s).
    #[arg(long = "thing", value_name = "NAME")]
    pub things: Vec<String>,
    /// Target thing group(s).
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
    /// Minutes an execution may stay IN_PROGRESS before it becomes TIMED_OUT (1-10080;
    /// AWS `awsJobTimeoutConfig.inProgressTimeoutInMinutes`).
    #[arg(long, value_name = "MINUTES")]
    pub in_progress_timeout: Option<u64>,
    /// Rollout settings (rate, abort, retry, schedule, waves).
    #[command(flatten)]
    pub rollout: crate::rolloutcmd::RolloutFlags,
    /// API access.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `--file-type`: `Some(0..=255)`, or `None` for `none` (no `fileType` in the job document).
/// A newtype, because clap reads a bare `Option<u8>` field as "optional u8".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileType(pub Option<u8>);

/// `--file-type`: a number 0-255, or `none`.
fn parse_file_type(s: &str) -> Result<FileType, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(FileType(None));
    }
    s.parse::<u8>()
        .map(|t| FileType(Some(t)))
        .map_err(|_| format!("{s:?}: give 0-255, or none to leave fileType out"))
}

/// `ota describe`
#[derive(Debug, Args)]
pub struct OtaIdArgs {
    /// otaUpdateId.
    pub id: String,
    /// One page of at most this many executions (1–250, AWS's `maxResults`), printed with
    /// its `nextToken`. Without it and `--next-token`, every page is fetched and the
    /// executions printed together.
    #[arg(long, value_name = "N")]
    pub max_results: Option<u32>,
    /// The page after the one that returned this `nextToken`.
    #[arg(long, value_name = "TOKEN")]
    pub next_token: Option<String>,
    /// Print the history of this thing's execution instead (newest 50 entries, oldest first).
    #[arg(long, value_name = "THING", conflicts_with_all = ["max_results", "next_token"])]
    pub history: Option<String>,
    /// API access.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `ota cancel`
#[derive(Debug, Args)]
pub struct OtaCancelArgs {
    /// otaUpdateId.
    pub id: String,
    /// Also cancel IN_PROGRESS executions.
    #[arg(long)]
    pub force: bool,
    /// API access.
    #[command(flatten)]
    pub api: ApiArgs,
}
