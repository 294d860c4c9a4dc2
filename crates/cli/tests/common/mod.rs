//! Helpers for the CLI tests: a temp dir to run `ferrota` in, and tiny ELF / Intel HEX builds.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

pub const BANK_SIZE: usize = 0x3F_8000;

/// A temporary directory in which `ferrota` runs.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Env {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) {
        std::fs::write(self.path(name), bytes).expect("write fixture");
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path(name).exists()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ferrota"))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run ferrota")
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "ferrota {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and asserts failure with `code`; returns stderr.
    pub fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "ferrota {args:?} should exit {code}:\nstdout: {}\nstderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
        if code == 1 {
            assert!(stderr.starts_with("error: "), "{stderr}");
        }
        stderr
    }
}

pub const PT_LOAD: u32 = 1;

/// A minimal little-endian ARM ELF32 executable with the given program headers
/// `(p_type, p_vaddr, p_paddr, bytes, p_memsz)`.
pub fn elf32(phdrs: &[(u32, u32, u32, &[u8], u32)]) -> Vec<u8> {
    let ehsize = 52usize;
    let phsize = 32usize;
    let mut data_off = ehsize + phsize * phdrs.len();
    let mut out = Vec::new();
    out.extend_from_slice(b"\x7fELF\x01\x01\x01\0\0\0\0\0\0\0\0\0");
    for v in [2u16, 40] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in [1u32, 0x1000_0101, ehsize as u32, 0, 0x0500_0400] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in [ehsize as u16, phsize as u16, phdrs.len() as u16, 40, 0, 0] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let mut blobs = Vec::new();
    for &(ty, vaddr, paddr, bytes, memsz) in phdrs {
        for v in [
            ty,
            data_off as u32,
            vaddr,
            paddr,
            bytes.len() as u32,
            memsz,
            5,
            4,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        data_off += bytes.len();
        blobs.extend_from_slice(bytes);
    }
    out.extend_from_slice(&blobs);
    out
}

/// One Intel HEX record line.
pub fn hex_record(kind: u8, offset: u16, data: &[u8]) -> String {
    let mut bytes = vec![data.len() as u8, (offset >> 8) as u8, offset as u8, kind];
    bytes.extend_from_slice(data);
    let sum = bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    bytes.push(sum.wrapping_neg());
    let mut s = String::from(":");
    for b in bytes {
        s.push_str(&format!("{b:02X}"));
    }
    s.push('\n');
    s
}

/// Intel HEX data records (with extended linear address records) for `data` at `address`,
/// 16 bytes per record; no EOF record.
pub fn hex_data(address: u32, data: &[u8]) -> String {
    let mut out = String::new();
    let mut upper = None;
    for (i, chunk) in data.chunks(16).enumerate() {
        let a = address + (i * 16) as u32;
        // Keep records inside one 64 KB page.
        let split = (0x1_0000 - (a & 0xFFFF) as usize).min(chunk.len());
        for (a, part) in [(a, &chunk[..split]), (a + split as u32, &chunk[split..])] {
            if part.is_empty() {
                continue;
            }
            if upper != Some(a >> 16) {
                upper = Some(a >> 16);
                out.push_str(&hex_record(4, 0, &((a >> 16) as u16).to_be_bytes()));
            }
            out.push_str(&hex_record(0, a as u16, part));
        }
    }
    out
}

pub const HEX_EOF: &str = ":00000001FF\n";

/// The three builds used by the tests: CM0+ as ELF, CM7_0 as HEX, CM7_1 as raw binary.
/// Returns the `--cm0p`, `--cm7-0`, `--cm7-1` arguments.
pub fn write_builds(env: &Env) -> [String; 3] {
    // CM0+: vectors and code at 0x10000100; `.data` runs at 0x08000000 but is stored (paddr)
    // at 0x10000400; `.bss` has no file bytes.
    let mut code = vec![0u8; 0x40];
    code[0..4].copy_from_slice(&0x0800_2000u32.to_le_bytes());
    code[4..8].copy_from_slice(&0x1000_0141u32.to_le_bytes());
    code[0x40 - 4..].copy_from_slice(&[0xDE, 0xAD, 0xBE, 0xEF]);
    let data = [0xDA; 8];
    env.write(
        "cm0p.elf",
        elf32(&[
            (PT_LOAD, 0x1000_0100, 0x1000_0100, &code, code.len() as u32),
            (PT_LOAD, 0x0800_0000, 0x1000_0400, &data, 0x100),
            (PT_LOAD, 0x0800_0100, 0x0800_0100, &[], 0x400),
        ]),
    );
    // CM7_0: vectors at 0x10010100, a little code at 0x10010200.
    let mut vt = vec![0u8; 16];
    vt[0..4].copy_from_slice(&0x2800_8000u32.to_le_bytes());
    vt[4..8].copy_from_slice(&0x1001_0201u32.to_le_bytes());
    let text = [
        hex_data(0x1001_0100, &vt),
        hex_data(0x1001_0200, &[0x7E; 40]),
        HEX_EOF.into(),
    ]
    .concat();
    env.write("cm7_0.hex", text);
    // CM7_1: raw vectors at 0x103E8100.
    let mut raw = vec![0u8; 32];
    raw[0..4].copy_from_slice(&0x2801_0000u32.to_le_bytes());
    raw[4..8].copy_from_slice(&0x103E_8121u32.to_le_bytes());
    raw[16..].fill(0x71);
    env.write("cm7_1.bin", raw);
    [
        "cm0p.elf".into(),
        "cm7_0.hex".into(),
        "cm7_1.bin@0x103E8100".into(),
    ]
}

/// Packs the builds with `key` into `out` (version 1.2.3, counter 4, hardware KIT_T2G).
pub fn pack(env: &Env, key: &str, out: &str) {
    let o = pack_with(env, key, out, &[]);
    assert!(
        o.status.success(),
        "pack {out} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// [`pack`] with `extra` arguments after the usual ones (`--bank upper`, `--format ihex`, …);
/// returns the run for the caller to judge.
pub fn pack_with(env: &Env, key: &str, out: &str, extra: &[&str]) -> Output {
    pack_run(env, key, "1.2.3", true, out, extra)
}

/// `image pack` of the test builds as `version` (counter 4, board KIT_T2G, `boot.pem`), without
/// --cm7-1 when `two_core`: the two sides of a delta.
pub fn pack_version(env: &Env, version: &str, two_core: bool, out: &str) {
    let o = pack_run(env, "boot.pem", version, !two_core, out, &[]);
    assert!(
        o.status.success(),
        "pack {out} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The one `image pack` command line of the test builds (counter 4, board KIT_T2G).
fn pack_run(env: &Env, key: &str, version: &str, cm7_1: bool, out: &str, extra: &[&str]) -> Output {
    let [cm0p, cm7_0, cm7_1_path] = write_builds(env);
    let mut args = vec!["image", "pack", "--cm0p", &cm0p, "--cm7-0", &cm7_0];
    if cm7_1 {
        args.extend(["--cm7-1", &cm7_1_path]);
    }
    args.extend([
        "--version",
        version,
        "--security-counter",
        "4",
        "--hardware",
        "KIT_T2G",
        "--boot-key",
        key,
        "-o",
        out,
    ]);
    args.extend(extra);
    env.run(&args)
}

/// Whether no object key of `v` has an underscore (AWS's camelCase throughout).
pub fn camel_case_keys(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(m) => m
            .iter()
            .all(|(k, v)| !k.contains('_') && (k == "statusDetails" || camel_case_keys(v))),
        serde_json::Value::Array(a) => a.iter().all(camel_case_keys),
        _ => true,
    }
}

/// A running `ferrota serve`, killed on drop.
pub struct Serve {
    pub child: Child,
    /// `http://<address>` of the HTTP API, as the server printed it.
    pub http: String,
    /// The MQTT port it bound.
    pub mqtt_port: u16,
    /// The API's URL as the server printed it (`api <url>`: `https://` with `--http-tls`).
    pub api: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd` (a `ferrota serve` command line; stderr as the caller set it) and reads the
/// addresses it prints first (`mqtt <addr>`, `http <addr>`).
pub fn spawn_serve(mut cmd: Command) -> Serve {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn ferrota serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut http, mut mqtt_port, mut api) = (String::new(), 0, String::new());
    for _ in 0..4 {
        let l = lines.next().expect("serve output").unwrap();
        if let Some(a) = l.strip_prefix("api ") {
            api = a.to_string();
        } else if let Some(a) = l.strip_prefix("http ") {
            http = format!("http://{a}");
        } else if let Some(a) = l.strip_prefix("mqtt ") {
            mqtt_port = a.rsplit(':').next().unwrap().parse().unwrap();
        }
    }
    assert!(
        !http.is_empty() && mqtt_port != 0,
        "serve printed no addresses"
    );
    Serve {
        child,
        http,
        mqtt_port,
        api,
    }
}

/// The command line of [`serve`]: `ferrota serve --data-dir data` on loopback port 0 (MQTT
/// and HTTP; `--http-listen` last).
pub const SERVE: [&str; 7] = [
    "serve",
    "--data-dir",
    "data",
    "--mqtt-listen",
    "127.0.0.1:0",
    "--http-listen",
    "127.0.0.1:0",
];

/// `ferrota serve --data-dir data` in `env` on loopback port 0 (MQTT and HTTP).
pub fn serve(env: &Env) -> Serve {
    serve_with(env, &[])
}

/// [`serve`] with `extra` arguments (`--http-tls`).
pub fn serve_with(env: &Env, extra: &[&str]) -> Serve {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferrota"));
    c.args(SERVE)
        .args(extra)
        .current_dir(env.dir.path())
        .stderr(Stdio::null());
    spawn_serve(c)
}

/// A code-signing key `signer.pem` and its certificate at `out` (`ferrota cert code-signing`,
/// with `extra` arguments such as `--cn`, `--days`), as the OTA tests need them.
pub fn signer_cert(env: &Env, out: &str, extra: &[&str]) {
    env.ok(&["key", "generate", "-o", "signer.pem"]);
    let mut args = vec!["cert", "code-signing", "--key", "signer.pem", "-o", out];
    args.extend_from_slice(extra);
    env.ok(&args);
}

/// `ferrota thing create <name> --data-dir data -o <out>` plus `extra` (`--group …`): the
/// thing and its device bundle in `<out>/<name>/`.
pub fn thing_create(env: &Env, name: &str, out: &str, extra: &[&str]) {
    let mut args = vec!["thing", "create", name, "--data-dir", "data", "-o", out];
    args.extend_from_slice(extra);
    env.ok(&args);
}

/// Every file name under `data/firmware`: what the server of `data` stored from
/// `POST /api/files` (the "nothing stored" checks).
pub fn uploads(env: &Env) -> Vec<String> {
    match std::fs::read_dir(env.path("data/firmware")) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}
