//! The command line: clap definitions only.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use ferrota_boot::Bank;
use ferrota_image::{FirmwareVersion, HardwareId};

/// Secure firmware OTA for the Infineon TRAVEO T2G CYT4BF: keys and signed bank images, a
/// simulated board with its Dual Bank Manager, and an AWS IoT-compatible OTA server.
/// Start with `ferrota demo`.
#[derive(Debug, Parser)]
#[command(name = "ferrota", version)]
#[command(after_help = "\
Typical release flow:
  ferrota key generate -o boot.pem                        # boot key (public half goes to SFlash)
  ferrota key public boot.pem --format c-array -o key.c   # SFlash key object for the firmware build
  ferrota key generate -o signer.pem                      # OTA code-signing key
  ferrota cert code-signing --key signer.pem -o signer.crt
  ferrota image pack --cm0p cm0p.elf --cm7-0 cm7_0.elf --version 1.2.0 --boot-key boot.pem -o bank.bin
  ferrota image sign-ota bank.bin --key signer.pem
  ferrota image verify bank.bin --boot-key boot.pem --ota-signature bank.bin.sig --cert signer.crt

Errors print `error: ...` and exit with status 1; usage errors exit with status 2.")]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate keys and export public keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Create certificates.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Sign and verify release manifests (signed update metadata, issue #20).
    #[command(subcommand)]
    Release(ReleaseCommand),
    /// Build, sign, verify and inspect bank images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// A simulated CYT4BF board in a file: provision, program, boot, update, inspect.
    #[command(subcommand)]
    T2g(crate::t2gargs::T2gCommand),
    /// Run the OTA server: MQTT over mutual TLS, AWS IoT Jobs and Streams, HTTP API.
    Serve(crate::serverargs::ServeArgs),
    /// The distributed deployment on this machine: PostgreSQL, a RabbitMQ cluster and
    /// several workers (up, down, status); docs/DEPLOY.md maps it onto real machines.
    #[command(subcommand)]
    Cluster(crate::clustercmd::ClusterCommand),
    /// The server's fleet CA.
    #[command(subcommand)]
    Ca(crate::serverargs::CaCommand),
    /// Things (devices) of the server: create (certificate + device bundle), list, revoke.
    #[command(subcommand)]
    Thing(crate::serverargs::ThingCommand),
    /// OTA updates on a running server: create, list, describe, cancel.
    #[command(subcommand)]
    Ota(crate::serverargs::OtaCommand),
    /// A rollout on a running server: status per wave (live with --watch), pause, resume,
    /// approve the next wave, cancel.
    #[command(subcommand)]
    Rollout(crate::rolloutcmd::RolloutCommand),
    /// Thing groups on a running server: dynamic groups chosen by a fleet-index query.
    #[command(subcommand)]
    Group(crate::groupcmd::GroupCommand),
    /// Operator tokens on a running server: create one per person or system, with a role
    /// (viewer, release-manager, admin); list; revoke.
    #[command(subcommand)]
    Token(crate::accesscmd::TokenCommand),
    /// The audit log of a running server (every operator change, every device outcome,
    /// hash-chained): export it, verify it.
    #[command(subcommand)]
    Audit(crate::accesscmd::AuditCommand),
    /// Run a simulated board: boot chain, then the OTA agent over MQTT/TLS.
    #[command(subcommand)]
    Device(crate::devicecmd::DeviceCommand),
    /// The whole system in one command: server, board, seven OTA scenarios, a table.
    Demo(crate::democmd::DemoArgs),
    /// Measure: update goodput on a shaped link, a simulated fleet, activation, verification.
    Bench(crate::benchcmd::BenchArgs),
}

/// `ferrota key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a private key (ECDSA P-256 by default) as PKCS#8 PEM.
    #[command(after_help = "\
Examples:
  ferrota key generate -o boot.pem              # ECDSA P-256 boot or code-signing key
  ferrota key generate --rsa2048 -o boot.pem    # RSA-2048, the T2G ROM's boot scheme
  ferrota key generate -o boot.pem --force      # replace an existing key

The file is created with mode 0600. An existing file is never replaced without --force.")]
    Generate(KeyGenerateArgs),
    /// Export the public key of a private key, public key, certificate or SFlash key object.
    #[command(after_help = "\
Examples:
  ferrota key public boot.pem                                  # SPKI PEM on stdout
  ferrota key public boot.pem --format sflash -o key.bin       # SFlash object for 0x17006400
  ferrota key public boot.pem --format c-array -o sflash_key.c # the same as a C array
  ferrota key public signer.crt -o signer.pub.pem              # public key of a certificate")]
    Public(KeyPublicArgs),
    /// Create the keys and the first root document of signed update metadata (issue #20).
    #[command(after_help = "\
Examples:
  ferrota key trust-init --dir trust                          # 3 root keys, threshold 2
  ferrota key trust-init --dir trust --root-keys 1 --threshold 1

Writes into DIR (created if missing): root-1.pem .. root-K.pem (the offline root keys),
release-1.pem (signs manifests: `ferrota release sign`), timestamp-1.pem (the server's online
key) and root-1.cbor, the root document signed by every root key. root-1.cbor is the device's
trust anchor: build it into the firmware. Private keys are PKCS#8 PEM with mode 0600. Nothing
is written if any of these files exists, unless --force.")]
    TrustInit(TrustInitArgs),
    /// Show the current root of a trust directory, verified from root-1.cbor through every
    /// root-N.cbor.
    #[command(after_help = "\
Examples:
  ferrota key trust-show --dir trust")]
    TrustShow(TrustDirArgs),
    /// Replace the key of one role with a new one and write the next root document.
    #[command(after_help = "\
Examples:
  ferrota key rotate --dir trust --role release     # writes release-2.pem and root-2.cbor
  ferrota key rotate --dir trust --role root        # replaces the oldest root key
  ferrota key rotate --dir trust --revoke-boot-keys 0x1   # root-(N+1) revokes boot-key slot 0

The new root-(N+1).cbor is signed by every root key of root N and of the new root, so it meets
both thresholds; a device on root 1 walks root-2, root-3, .. as `release sign` embeds them.
A rotated-out release key's manifests are refused from then on.")]
    Rotate(KeyRotateArgs),
    /// Remove one key from the trust: write the next root document without it.
    #[command(after_help = "\
Examples:
  ferrota key trust-show --dir trust                   # the key ids
  ferrota key revoke --dir trust --kid 0123456789abcdef

The new root-(N+1).cbor lists every key of root N but that one, and is signed by the root keys
here of root N and of root N+1 (both thresholds; the revoked key never signs). Every role must
keep a key and the root threshold must stay reachable: to replace the only key of a role, use
`key rotate`. Devices walk the new root with the next manifest (`release sign` embeds it); a
revoked release key's manifests are refused from then on, and the sequence floor it set is
dropped. Restart `ferrota serve --trust-dir` after revoking a timestamp key.")]
    Revoke(KeyRevokeArgs),
}

/// Arguments of `key revoke`.
#[derive(Debug, Args)]
pub struct KeyRevokeArgs {
    /// The trust directory (made by `key trust-init`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The key id to remove (16 hex digits, as `key trust-show` prints it).
    #[arg(long, value_name = "HEX")]
    pub kid: String,
}

/// Arguments of `key trust-init`.
#[derive(Debug, Args)]
pub struct TrustInitArgs {
    /// The trust directory to write into.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// How many root keys (1..=3: a root lists at most 5 keys, one release and one timestamp).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub root_keys: u8,
    /// How many root-key signatures a new root needs (1..=root keys).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub threshold: u8,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

/// A trust directory (`key trust-show`).
#[derive(Debug, Args)]
pub struct TrustDirArgs {
    /// The trust directory (made by `key trust-init`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

/// Key roles of a root document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TrustRole {
    /// An offline root key (signs root documents).
    Root,
    /// The release key (signs manifests).
    Release,
    /// The server's timestamp key.
    Timestamp,
}

/// Arguments of `key rotate`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("change").required(true).multiple(true).args(["role", "revoke_boot_keys"])))]
pub struct KeyRotateArgs {
    /// The trust directory (made by `key trust-init`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Which role gets a new key.
    #[arg(long, value_enum)]
    pub role: Option<TrustRole>,
    /// Also revoke boot-key slots: bit n revokes slot n (e.g. 0x1 = slot 0). Added to the
    /// slots the current root revokes; a revocation is never undone.
    #[arg(long, value_name = "MASK", value_parser = parse_mask)]
    pub revoke_boot_keys: Option<u8>,
}

/// Parses a boot-key slot mask, `0x..` hex or decimal, at least one bit.
pub fn parse_mask(s: &str) -> Result<u8, String> {
    let v = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u8::from_str_radix(h, 16),
        None => s.parse::<u8>(),
    }
    .map_err(|_| {
        format!("`{s}`: expected a slot mask such as 0x1 (slot 0) or 0x3 (slots 0 and 1)")
    })?;
    if v == 0 {
        return Err(format!("`{s}`: revokes no slot"));
    }
    Ok(v)
}

/// `ferrota release ...`
#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Sign a bank image's SUIT manifest (the fileType-142 file of an OTA update).
    #[command(after_help = "\
Examples:
  ferrota release sign --trust trust --image bank.bin --sequence 7 -o bank.suit
  ferrota release sign --trust trust --image bank.bin --sequence 8 --expires 30d --thing car-17 -o bank.suit

The manifest names the image's SHA-256, size, board (hardware id), version, security counter and
region digests, is signed by the current release key, and carries root-2.cbor .. root-N.cbor so
a device on root 1 can walk to the current root. Devices accept only a sequence above the last
one they took. --expires is Nd (days), Nh (hours) or `never`. Also prints the image's
sig-sha256-ecdsa value made with the release key (base64), as `image sign-ota` does, and writes
FILE.sig, the manifest's own sig-sha256-ecdsa (the release key's ECDSA over FILE), which
`ota create --file bank.bin --manifest FILE` sends as the fileType-142 file's signature.")]
    Sign(ReleaseSignArgs),
    /// Verify a SUIT manifest and its image as a device would.
    #[command(after_help = "\
Examples:
  ferrota release verify --anchor trust/root-1.cbor --image bank.bin bank.suit

Checks the anchor, walks the embedded roots, checks the release signature, the expiry, and the
image's SHA-256 and size against the signed ones.")]
    Verify(ReleaseVerifyArgs),
}

/// Arguments of `release sign`.
#[derive(Debug, Args)]
pub struct ReleaseSignArgs {
    /// The trust directory (made by `key trust-init`).
    #[arg(long, value_name = "DIR")]
    pub trust: PathBuf,
    /// The bank image (made by `image pack`; it must name a hardware id).
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,
    /// Sequence number, 1 or more, above every earlier release's.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub sequence: u32,
    /// How long the manifest stays valid: Nd, Nh or `never`.
    #[arg(long, default_value = "90d", value_parser = parse_expires)]
    pub expires: Expires,
    /// Bind the manifest to one thing (device) by name.
    #[arg(long, value_name = "THING")]
    pub thing: Option<String>,
    /// Where to write the manifest.
    #[arg(short, long, visible_alias = "out", value_name = "FILE")]
    pub output: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// A manifest lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expires {
    /// No expiry.
    Never,
    /// Seconds from now.
    After(u64),
}

/// Parses `90d`, `12h` or `never`.
pub fn parse_expires(s: &str) -> Result<Expires, String> {
    if s == "never" {
        return Ok(Expires::Never);
    }
    let bad = || format!("`{s}`: expected Nd (days), Nh (hours) or `never`, N at least 1");
    let (num, per) = if let Some(n) = s.strip_suffix('d') {
        (n, 86_400)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600)
    } else {
        return Err(bad());
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = num.parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(bad());
    }
    n.checked_mul(per).map(Expires::After).ok_or_else(bad)
}

/// Arguments of `release verify`.
#[derive(Debug, Args)]
pub struct ReleaseVerifyArgs {
    /// The device's trust anchor (root-1.cbor).
    #[arg(long, visible_alias = "root", value_name = "FILE")]
    pub anchor: PathBuf,
    /// The bank image the manifest is for.
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,
    /// The manifest (made by `release sign`).
    #[arg(value_name = "MANIFEST")]
    pub manifest: PathBuf,
}

/// Arguments of `key generate`.
#[derive(Debug, Args)]
pub struct KeyGenerateArgs {
    /// Where to write the private key.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Make an RSA-2048 key (the T2G ROM's scheme) instead of ECDSA P-256.
    #[arg(long)]
    pub rsa2048: bool,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Output forms of `key public`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PublicFormat {
    /// SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----").
    Pem,
    /// The binary SFlash public-key object (76 bytes for P-256, 1096 for RSA-2048).
    Sflash,
    /// The SFlash object as a C array definition.
    CArray,
}

/// Arguments of `key public`.
#[derive(Debug, Args)]
pub struct KeyPublicArgs {
    /// Private key, public key, certificate (PEM or DER) or SFlash key object.
    #[arg(value_name = "KEY")]
    pub input: PathBuf,
    /// Output form.
    #[arg(long, value_enum, default_value_t = PublicFormat::Pem)]
    pub format: PublicFormat,
    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `ferrota cert ...`
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Create a self-signed code-signing certificate for an ECDSA P-256 key, as AWS's OpenSSL
    /// recipe for custom code signing does.
    #[command(after_help = "\
Examples:
  ferrota cert code-signing --key signer.pem -o signer.crt
  ferrota cert code-signing --key signer.pem --cn release@example.com --days 730 -o signer.crt

The certificate is X.509 v3, ECDSA P-256 with SHA-256, keyUsage digitalSignature (critical),
extendedKeyUsage codeSigning, subject and issuer CN=<NAME>. Devices check OTA signatures
against its public key; import it into AWS (ACM) for custom code signing.")]
    CodeSigning(CertCodeSigningArgs),
}

/// Arguments of `cert code-signing`.
#[derive(Debug, Args)]
pub struct CertCodeSigningArgs {
    /// The ECDSA P-256 private key to certify (and to sign the certificate with).
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// Common name of the subject and issuer.
    #[arg(long, value_name = "NAME", default_value = "Ferrota code signing")]
    pub cn: String,
    /// Validity in days from now.
    #[arg(long, value_name = "N", default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub days: u32,
    /// Where to write the certificate (PEM).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

/// `ferrota image ...`
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build a signed bank image from the cores' builds.
    #[command(after_help = "\
Examples:
  ferrota image pack --cm0p cm0p.elf --cm7-0 cm7_0.elf --version 1.2.0 --boot-key boot.pem -o bank.bin
  ferrota image pack --cm0p cm0p.hex --cm7-0 cm7_0.hex --cm7-1 cm7_1.bin@0x103E8000 \\
      --version 2.0.7 --security-counter 3 --hardware KIT_T2G-B-H_LITE --boot-key boot.pem -o bank.bin
  ferrota image pack --cm0p cm0p.elf --cm7-0 cm7_0.elf --version 1.2.0 --security-counter auto \
      --boot-key boot.pem -o bank.hex                 # Intel HEX at 0x10000000, for a debugger
  ferrota image pack ... --version 1.3.0 --security-counter 2 --previous v1.2.0.bin -o v1.3.0.bin

A BUILD is an ELF or Intel HEX file (recognised by content), or a raw binary with its load
address: file.bin@0x10010000. Prefix elf:, hex: or raw: to force a format.
Builds are linked at the active bank (0x10000000): CM0+ 0x10000000..0x1000FF00,
CM7_0 0x10010000..0x103E7F00, CM7_1 0x103E8000..0x103F7F00 (the last 256 bytes of each region
are its signature slot). Headers, the version record and every region's signature are written
by pack; a region without a build (CM7_1) is an empty, signed image.

Output: a raw .bin of exactly 0x3F8000 bytes (what OTA sends and `t2g program` writes), or, when
the name ends in .hex (or with --format ihex), Intel HEX at the bank's code-flash address for a
debugger: --bank lower (default) 0x10000000, --bank upper 0x103F8000, the single-bank view a
debugger sees after reset.

Security counter: what the board's anti-rollback floor compares. 0 (the default) means the
image can never be protected against rollback, so pack warns. `--security-counter auto` uses
the version word (major<<24 | minor<<16 | build), as MCUboot's imgtool does: every newer
version then revokes every older one, and the board's eFuse copy of the floor saturates at 128
at once, so switching back to small counters later is impossible. --previous names the bank
image of the release this one follows (the one on the devices now): pack warns when the new
counter is lower (the devices would refuse the image once that release is confirmed) or the
version is not newer.")]
    Pack(PackArgs),
    /// Convert ModusToolbox's merged app_combined.hex into a bank image, as the seed's mkbin.pl
    /// does, and optionally sign it.
    #[command(after_help = "\
Examples:
  ferrota image from-merged-hex build/app_combined.hex -o app_combined_s.bin
  ferrota image from-merged-hex app_combined.hex --boot-key rsa_private.pem -o app_combined_s.bin
  ferrota image from-merged-hex app_combined.hex --boot-key boot.pem --version 1.1.0 --resign -o bank.bin

Keeps the code-flash records of the bank (0x10000000..0x103F8000), drops the small sectors
(0x107F0000.., DBM_DEBUG builds), SFlash (0x17000000..), eFuse and anything else above, fills
gaps with 0x00 and writes exactly 0x3F8000 bytes. With --boot-key it signs the regions whose
signature slot is still zero (the seed's CM7_1). Writing a version record changes the CM0+
region's signed bytes, so if that region is already signed this needs --resign, which re-signs
every region.

A two-core build (no CM7_1 image) leaves the CM7_1 region all zero: with --boot-key it gets the
header pack writes for an absent CM7_1 and is signed, an empty, signed image as pack makes it;
without a key, a warning says the bank will not boot until it is signed.
The CySAF appIds follow the version record, as in pack: with --version every region's appId is
rewritten for that version (a signed region then needs --resign). The output format options are
pack's (.hex name or --format ihex: Intel HEX at the --bank address).")]
    FromMergedHex(FromMergedHexArgs),
    /// Sign a file for OTA (ECDSA P-256 over SHA-256, DER, base64: AWS's sig-sha256-ecdsa).
    #[command(after_help = "\
Examples:
  ferrota image sign-ota bank.bin --key signer.pem                # writes bank.bin.sig
  ferrota image sign-ota bank.bin --key signer.pem -o v1.2.0.sig

The base64 signature is printed on stdout and written to the file; it goes into the job
document (or CreateOTAUpdate's customCodeSigning) as sig-sha256-ecdsa.")]
    SignOta(SignOtaArgs),
    /// Check a bank image's boot signatures and/or an OTA signature.
    #[command(after_help = "\
Examples:
  ferrota image verify bank.bin --boot-key boot.pem
  ferrota image verify bank.bin --boot-key sflash_key.bin
  ferrota image verify bank.bin --ota-signature bank.bin.sig --cert signer.crt
  ferrota image verify bank.bin --ota-signature MEUCIQ... --key signer.pub.pem
  ferrota image verify bank.bin --boot-key boot.pem --ota-signature sig.der --cert signer.crt

--boot-key takes a private or public key (PEM or DER), a certificate or an SFlash key object.
--ota-signature takes the base64 text itself, or a file holding base64 text or DER bytes (as
`openssl dgst -sha256 -sign` writes them). Exits with status 1 and names the region and bank
offset at fault when a check fails.")]
    Verify(VerifyArgs),
    /// Describe a bank image: regions, headers, signatures, version record.
    #[command(after_help = "\
Examples:
  ferrota image show bank.bin
  ferrota image show bank.bin --json | jq '.regions[] | {name, signed}'

Shows a malformed bank image as it is and why it would be refused, and flags a CySAF appId that
disagrees with the version record. A file that is not a bank image at all (an ELF or HEX build,
an erased bank of 0xFF, random bytes) is an error (exit status 1) that says what it is instead.")]
    Show(ShowArgs),
    /// Write a delta: the bytes a device running OLD needs to rebuild NEW (what `ota create
    /// --delta-from` streams), checked by rebuilding NEW from it.
    #[command(after_help = "\
Examples:
  ferrota image diff v1.2.0.bin v1.3.0.bin -o v1.3.0.from-1.2.0.frpk
  ferrota image diff v1.2.0.bin v1.3.0.bin -o patch.frpk --json

OLD and NEW are bank images as OTA sends them (raw .bin of exactly 0x3F8000 bytes, valid
headers and version record). The patch is a packed \"FRPK\" file: a header block, then one
self-contained frame per 4096-byte stream block, so a device can rebuild its new bank from
its running one block by block, in any order, resuming after a reset. Before anything is
written the patch is applied to OLD in memory and must give NEW byte for byte; on any error
no output file is left.

Printed: the patch size, and it divided by NEW's code (its bytes outside runs of 256 or more
of one value: erased flash and region padding are not code) and by the whole bank, which is
what a device downloads without a delta.")]
    Diff(DiffArgs),
    /// Write a bank image packed (sparse and compressed, the \"FRPK\" format `ota create`
    /// streams beside the whole image), checked by unpacking it.
    #[command(after_help = "\
Examples:
  ferrota image compress v1.3.0.bin -o v1.3.0.frpk

Erased flash and padding cost next to nothing and the rest is compressed block by block.
Printed: the packed size, and it divided by the image's code (bytes outside runs of 256 or
more of one value) and by the whole bank.")]
    Compress(CompressArgs),
}

/// Arguments of `image diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The bank image devices run now.
    #[arg(value_name = "OLD")]
    pub old: PathBuf,
    /// The new bank image.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// Where to write the delta.
    #[arg(short, long, value_name = "PATCH")]
    pub output: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
    /// Print the sizes as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `image compress`.
#[derive(Debug, Args)]
pub struct CompressArgs {
    /// The bank image.
    #[arg(value_name = "IMAGE")]
    pub input: PathBuf,
    /// Where to write the packed file.
    #[arg(short, long, value_name = "PACKED")]
    pub output: PathBuf,
    /// Replace an existing output file.
    #[arg(long)]
    pub force: bool,
    /// Print the sizes as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The version record options of `from-merged-hex`.
#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Firmware version, major.minor.build (e.g. 1.2.3): writes a version record (needs --boot-key).
    #[arg(long, value_name = "X.Y.Z", value_parser = parse_version, requires = "boot_key")]
    pub version: Option<FirmwareVersion>,
    /// Anti-rollback security counter of the version record.
    #[arg(long, value_name = "N", requires = "version")]
    pub security_counter: Option<u32>,
    /// Hardware id of the version record (printable ASCII, at most 32 characters).
    #[arg(long, value_name = "ID", value_parser = parse_hardware, requires = "version")]
    pub hardware: Option<HardwareId>,
}

/// Arguments of `image pack`.
#[derive(Debug, Args)]
pub struct PackArgs {
    /// CM0+ build.
    #[arg(long, value_name = "BUILD")]
    pub cm0p: String,
    /// CM7_0 build.
    #[arg(long = "cm7-0", value_name = "BUILD")]
    pub cm7_0: String,
    /// CM7_1 build (optional: without it the region is an empty, signed image).
    #[arg(long = "cm7-1", value_name = "BUILD")]
    pub cm7_1: Option<String>,
    /// Firmware version, major.minor.build (e.g. 1.2.3).
    #[arg(long, value_name = "X.Y.Z", value_parser = parse_version)]
    pub version: FirmwareVersion,
    /// Anti-rollback security counter, or `auto`: the version word major<<24 | minor<<16 | build,
    /// as MCUboot's imgtool does [default: 0, with a warning].
    #[arg(long, value_name = "N|auto", value_parser = parse_security_counter)]
    pub security_counter: Option<SecurityCounter>,
    /// The bank image of the release this one follows (.bin, or a .hex written by pack): warns
    /// when this image's security counter is lower or its version not newer.
    #[arg(long, value_name = "BANK")]
    pub previous: Option<PathBuf>,
    /// Hardware id the image is for (printable ASCII, at most 32 characters; default: any board).
    #[arg(long, value_name = "ID", value_parser = parse_hardware)]
    pub hardware: Option<HardwareId>,
    /// Boot signing key (ECDSA P-256 or RSA-2048 private key, PEM).
    #[arg(long, value_name = "KEY")]
    pub boot_key: PathBuf,
    /// Where to write the bank image (a name ending in .hex gets Intel HEX).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Output format and flash address.
    #[command(flatten)]
    pub out: ImageOutputArgs,
    /// Print what was written as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `--security-counter`: a number, or derived from the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityCounter {
    /// This value.
    Value(u32),
    /// The version word (imgtool's `auto`).
    Auto,
}

/// The file format of a written bank image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageFormat {
    /// Raw bytes, exactly one bank (what OTA sends and `t2g program` writes).
    Bin,
    /// Intel HEX at the bank's code-flash address, for a debugger.
    Ihex,
}

/// Output format options of `image pack` and `image from-merged-hex`.
#[derive(Debug, Args)]
pub struct ImageOutputArgs {
    /// Output format [default: ihex when the output name ends in .hex, else bin].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<ImageFormat>,
    /// Physical bank whose code-flash address the Intel HEX carries, as a debugger sees it after
    /// reset (single-bank view): lower 0x10000000, upper 0x103F8000 [default: lower].
    #[arg(long, value_name = "BANK", value_parser = parse_image_bank)]
    pub bank: Option<Bank>,
}

/// Arguments of `image from-merged-hex`.
#[derive(Debug, Args)]
pub struct FromMergedHexArgs {
    /// The merged Intel HEX (app_combined.hex).
    #[arg(value_name = "HEX")]
    pub input: PathBuf,
    /// Where to write the bank image (a name ending in .hex gets Intel HEX).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// Output format and flash address.
    #[command(flatten)]
    pub out: ImageOutputArgs,
    /// Boot signing key: signs the regions that are not signed yet.
    #[arg(long, value_name = "KEY")]
    pub boot_key: Option<PathBuf>,
    /// Version record to write into the CM0+ region.
    #[command(flatten)]
    pub record: VersionArgs,
    /// Re-sign every region, replacing existing signatures (needs --boot-key).
    #[arg(long, requires = "boot_key")]
    pub resign: bool,
}

/// Arguments of `image sign-ota`.
#[derive(Debug, Args)]
pub struct SignOtaArgs {
    /// The file to sign (the bank image as it will be streamed).
    #[arg(value_name = "FILE")]
    pub input: PathBuf,
    /// Code-signing private key (ECDSA P-256, PEM).
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// Where to write the base64 signature [default: <FILE>.sig].
    #[arg(short, long, value_name = "SIG")]
    pub output: Option<PathBuf>,
    /// Replace an existing signature file.
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `image verify`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("checks").required(true).multiple(true).args(["boot_key", "ota_signature"])))]
#[command(group(ArgGroup::new("ota_key").args(["cert", "key"])))]
pub struct VerifyArgs {
    /// The bank image.
    #[arg(value_name = "BANK")]
    pub input: PathBuf,
    /// Check every region's boot signature and the version record with this key.
    #[arg(long, value_name = "KEY")]
    pub boot_key: Option<PathBuf>,
    /// Check this OTA signature (base64 text, or a file with base64 text or DER bytes).
    #[arg(long, value_name = "SIG", requires = "ota_key")]
    pub ota_signature: Option<String>,
    /// Code-signing certificate whose key checks the OTA signature.
    #[arg(long, value_name = "CERT", requires = "ota_signature")]
    pub cert: Option<PathBuf>,
    /// Public (or private) key that checks the OTA signature.
    #[arg(long, value_name = "KEY", requires = "ota_signature")]
    pub key: Option<PathBuf>,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `image show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The bank image.
    #[arg(value_name = "BANK")]
    pub input: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

fn parse_version(s: &str) -> Result<FirmwareVersion, String> {
    FirmwareVersion::parse(s).ok_or_else(|| {
        format!("'{s}' is not major.minor.build (major and minor 0..=255, build 0..=65535)")
    })
}

fn parse_security_counter(s: &str) -> Result<SecurityCounter, String> {
    if s == "auto" {
        return Ok(SecurityCounter::Auto);
    }
    s.parse()
        .map(SecurityCounter::Value)
        .map_err(|_| format!("'{s}' is not a security counter: a number 0..=4294967295, or auto"))
}

fn parse_image_bank(s: &str) -> Result<Bank, String> {
    match s {
        "lower" | "0" => Ok(Bank::Lower),
        "upper" | "1" => Ok(Bank::Upper),
        _ => Err(format!("'{s}' is not a bank: lower, upper, 0 or 1")),
    }
}

fn parse_hardware(s: &str) -> Result<HardwareId, String> {
    HardwareId::new(s).ok_or_else(|| {
        format!(
            "'{s}' is not a hardware id (printable ASCII without spaces, at most 32 characters)"
        )
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
