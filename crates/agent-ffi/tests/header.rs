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
