//! CI fails when `include/ferrota.h` is stale: the header is generated in memory from the crate
//! and compared with the checked-in file.

use std::path::Path;

#[test]
fn header_is_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let path = dir.join("include/ferrota.h");
    if std::env::var_os("FERROTA_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write include/ferrota.h");
        return;
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "include/ferrota.h is stale: regenerate it with \
         `FERROTA_BLESS=1 cargo test -p ferrota-agent-ffi --test header` and commit it"
    );
}

/// The checked-in header compiles as C11 and as C++ without warnings, where a compiler is
/// installed (`cc`, `c++`); skipped otherwise.
#[test]
fn header_compiles_as_c_and_cpp() {
    let header = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/ferrota.h");
    for (cc, lang, std) in [("cc", "c", "-std=c11"), ("c++", "c++", "-std=c++17")] {
        let out = match std::process::Command::new(cc)
            .args([
                "-fsyntax-only",
                "-Wall",
                "-Wextra",
                "-Werror",
                std,
                "-x",
                lang,
            ])
            .arg(&header)
            .output()
        {
            Ok(o) => o,
            Err(e) => {
                eprintln!("skipped: no `{cc}` ({e})");
                continue;
            }
        };
        assert!(
            out.status.success(),
            "{cc} refuses include/ferrota.h:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The C compiler lays every struct and enum of the header out as Rust does: size, alignment and
/// every field's offset are asserted in C (`_Static_assert`) from Rust's `size_of`/`offset_of!`,
/// both with `-fshort-enums` (arm-none-eabi-gcc's default) and with `-fno-short-enums` (the
/// enums are `uint8_t`/`int32_t` in the header, so neither flag changes the layout). Skipped
/// without `cc`.
#[test]
fn c_layout_equals_rust_layout() {
    use ferrota_agent_ffi::*;
    use std::fmt::Write as _;
    use std::mem::{align_of, offset_of, size_of};
    let mut c = String::from("#include \"ferrota.h\"\n");
    macro_rules! layout {
        ($t:ident $(; $($f:ident),*)?) => {{
            let t = stringify!($t);
            writeln!(c, "_Static_assert(sizeof({t}) == {}, \"sizeof {t}\");", size_of::<$t>()).unwrap();
            writeln!(c, "_Static_assert(_Alignof({t}) == {}, \"alignof {t}\");", align_of::<$t>()).unwrap();
            $($(
                let f = stringify!($f);
                writeln!(c, "_Static_assert(offsetof({t}, {f}) == {}, \"{t}.{f}\");", offset_of!($t, $f)).unwrap();
            )*)?
        }};
    }
    macro_rules! enums {
        ($($t:ident),*) => {{ $(
            let t = stringify!($t);
            writeln!(c, "_Static_assert(sizeof({t}) == {}, \"sizeof {t}\");", size_of::<$t>()).unwrap();
        )* }};
    }
    {
        layout!(FerrotaPlatform; user, read, write, erase, area_size);
        layout!(FerrotaConfig; thing_name, thing_name_len, boot_key, code_signing_key, code_signing_key_len, hardware_id, hardware_id_len, trust_anchor, trust_anchor_len, require_signed_metadata, running_bank, block_size, blocks_per_request, requests_in_flight);
        layout!(FerrotaTransmit; kind, qos, topic, topic_len, payload_len);
        layout!(FerrotaEvent; kind, a, b, c);
        layout!(FerrotaStats; requests, blocks_accepted, duplicates, ignored, malformed, timeouts, gaps, mark_failures, dropped_transmits, delta_base_mismatch, packed_errors, late);
        layout!(FerrotaLogSnapshot; present, seq, sector, slot, record);
        layout!(FerrotaDbmPlatform; user, read_bank, bank_size, read_log, write_log, erase_log);
        layout!(FerrotaDbmConfig; boot_key, hardware_id, hardware_id_len, efuse_floor, user1);
        layout!(FerrotaBankFault; kind, image_fault, region, value);
        layout!(FerrotaDbmDecision; reason, bank, trial, attempt, budget, from_bank, faults, record, floor, recorded);
        layout!(FerrotaCm0pOutcome; start, start_cm7_1, reverted, fault, record);
        layout!(FerrotaBootKey);
        layout!(FerrotaVersionRecord; version, major, minor, build, security_counter, flags, hardware_id, hardware_id_len);
    }
    enums!(
        FerrotaArea,
        FerrotaAppOutcome,
        FerrotaFailKind,
        FerrotaStreamError,
        FerrotaTransmitKind,
        FerrotaEventKind,
        FerrotaBootReason,
        FerrotaFaultKind,
        FerrotaImageFault,
        FerrotaRegion,
        FerrotaStatus
    );
    // Cargo's scratch directory for integration tests (under target/).
    let src = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ferrota-layout.c");
    std::fs::write(&src, &c).expect("write layout.c");
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    for enums in ["-fshort-enums", "-fno-short-enums"] {
        let out = match std::process::Command::new("cc")
            .args([
                "-fsyntax-only",
                "-std=c11",
                "-Wall",
                "-Werror",
                enums,
                "-include",
                "stddef.h",
            ])
            .arg("-I")
            .arg(&include)
            .arg(&src)
            .output()
        {
            Ok(o) => o,
            Err(e) => {
                eprintln!("skipped: no `cc` ({e})");
                return;
            }
        };
        assert!(
            out.status.success(),
            "C lays the header out differently from Rust ({enums}):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
