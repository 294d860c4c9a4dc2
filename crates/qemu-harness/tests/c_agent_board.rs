//! The C replay (`firmware/c-agent`, issue #22 item 4) copies the Rust replay's memory map and
//! the script layout into C `#define`s (`board.h`, `script.h`): C cannot read this crate's
//! constants. These tests fail when a copy drifts from its source, before QEMU would show it as
//! an unreadable script or a replay that writes elsewhere. Every `#define` of those two headers
//! must be checked here, so a new one cannot go unchecked.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ferrota_agent::RESUME_AREA_LEN;
use ferrota_image::sflash_key::{SFLASH_KEY_ADDRESS, SFLASH_KEY_AREA};
use ferrota_image::version::{RECORD_AREA, RECORD_OFFSET};
use ferrota_qemu_harness::agent_script::{self as script, Kind};
use ferrota_qemu_harness::map::{self, MPS2_AN500};

fn header(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../firmware/c-agent")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `#define NAME VALUE` lines with a numeric value (`0x…u` or decimal, `u` suffix optional),
/// and `NAME = VALUE,` enumerators.
fn defines(text: &str) -> BTreeMap<String, u64> {
    let number = |v: &str| -> Option<u64> {
        let v = v.trim_end_matches(',').trim_end_matches(['u', 'U']);
        match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
            Some(h) => u64::from_str_radix(h, 16).ok(),
            None => v.parse().ok(),
        }
    };
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (name, value) = match words.as_slice() {
            ["#define", name, value, ..] => (*name, *value),
            [name, "=", value, ..] => (*name, *value),
            _ => continue,
        };
        if let Some(v) = number(value) {
            assert!(
                out.insert(name.to_owned(), v).is_none(),
                "{name} defined twice"
            );
        }
    }
    out
}

/// Checks `expected` against the header's defines, and that the header has no other numeric
/// define.
fn check(file: &str, expected: &[(&str, u64)]) {
    let got = defines(&header(file));
    for (name, want) in expected {
        assert_eq!(
            got.get(*name),
            Some(want),
            "{file}: {name} must be {want:#x} (the Rust constant)"
        );
    }
    let unchecked: Vec<&String> = got
        .keys()
        .filter(|k| !expected.iter().any(|(n, _)| n == k))
        .collect();
    assert!(
        unchecked.is_empty(),
        "{file}: defines without a check here: {unchecked:?}"
    );
}

#[test]
fn board_h_is_the_rust_replays_memory_map() {
    check(
        "board.h",
        &[
            ("BOARD_SCRIPT", script::SCRIPT.into()),
            ("BOARD_SCRIPT_MAX", script::SCRIPT_MAX.into()),
            ("BOARD_INACTIVE_BANK", script::INACTIVE_BANK.into()),
            ("BOARD_RESUME", script::RESUME.into()),
            ("BOARD_SFLASH", MPS2_AN500.sflash.into()),
            ("BOARD_LOG", MPS2_AN500.log.into()),
            ("BOARD_BANK_SIZE", ferrota_image::BANK_SIZE.into()),
            ("BOARD_RESUME_SIZE", RESUME_AREA_LEN.into()),
            ("BOARD_LOG_SIZE", map::LOG_SIZE.into()),
            (
                "BOARD_SFLASH_KEY_OFFSET",
                (SFLASH_KEY_ADDRESS - map::T2G_SFLASH).into(),
            ),
            ("BOARD_SFLASH_KEY_AREA", SFLASH_KEY_AREA as u64),
            ("BOARD_RECORD_OFFSET", RECORD_OFFSET.into()),
        ],
    );
    // The log window the C replay maps is the one the boot manager's code knows.
    assert_eq!(map::LOG_SIZE, ferrota_boot::log::LOG_SIZE);
}

#[test]
fn script_h_is_agent_scripts_layout() {
    check(
        "script.h",
        &[
            ("SCRIPT_MAGIC", script::MAGIC.into()),
            ("SCRIPT_HEADER", script::HEADER as u64),
            ("SCRIPT_AT_ENTRIES", script::at::ENTRIES as u64),
            ("SCRIPT_AT_TOTAL", script::at::TOTAL as u64),
            ("SCRIPT_AT_START", script::at::START as u64),
            ("SCRIPT_AT_BANK", script::at::BANK as u64),
            ("SCRIPT_AT_BLOCK_SIZE", script::at::BLOCK_SIZE as u64),
            (
                "SCRIPT_AT_BLOCKS_PER_REQUEST",
                script::at::BLOCKS_PER_REQUEST as u64,
            ),
            ("SCRIPT_AT_IN_FLIGHT", script::at::IN_FLIGHT as u64),
            ("SCRIPT_AT_CODE_KEY", script::at::CODE_KEY as u64),
            (
                "SCRIPT_CODE_KEY_LEN",
                (script::at::THING - script::at::CODE_KEY) as u64,
            ),
            ("SCRIPT_AT_THING", script::at::THING as u64),
            (
                "SCRIPT_THING_LEN",
                (script::at::HARDWARE - script::at::THING) as u64,
            ),
            ("SCRIPT_AT_HARDWARE", script::at::HARDWARE as u64),
            ("SCRIPT_HARDWARE_LEN", 32),
            ("SCRIPT_AT_RECORD", script::at::RECORD as u64),
            ("SCRIPT_RECORD_LEN", RECORD_AREA as u64),
            ("SCRIPT_CONNECTED", Kind::Connected as u64),
            ("SCRIPT_MESSAGE", Kind::Message as u64),
            ("SCRIPT_TIMEOUT", Kind::Timeout as u64),
        ],
    );
    // The hardware id field (32 bytes in script.h) ends before the version record.
    const { assert!(script::at::HARDWARE + 32 <= script::at::RECORD) };
}

#[test]
fn the_define_reader_sees_every_form_the_headers_use() {
    let d = defines(
        "#define A 0x60900000u\n#define B 512u\n#define C 7\n    D = 2, /* x */\n#define E(x) x\n",
    );
    assert_eq!(d.get("A"), Some(&0x6090_0000));
    assert_eq!(d.get("B"), Some(&512));
    assert_eq!(d.get("C"), Some(&7));
    assert_eq!(d.get("D"), Some(&2));
    assert_eq!(d.len(), 4, "{d:?}");
}
