#!/usr/bin/env bash
# Sets up the Cortex-M cross toolchain inside the project, idempotently, and prints the
# environment that uses it.
#
#   scripts/cross-toolchain.sh            # set up (cached), print nothing but progress
#   eval "$(scripts/cross-toolchain.sh --env)"   # set up, then export PATH, RUSTC, ...
#
# Why this way: rustup on these machines has only the x86_64 target and cannot be relied on to
# fetch thumbv6m/thumbv7em std. Debian ships a rustc 1.96 (`rustc-web`) with the library sources
# (`rust-web-src`), LLVM 22 and lld 22: with those unpacked (never installed: they would shadow
# the rustup toolchain) the rustup cargo builds `-Zbuild-std=core` for both Cortex-M targets and
# links with rust-lld. `binutils-arm-none-eabi` adds arm-none-eabi-size/objdump;
# `gcc-arm-none-eabi` + `libnewlib-dev` compile the C/asm of `p256-cortex-m4-sys` (the asm P-256
# of the CM7 verify benchmark, feature `asm-p256`). QEMU is
# `qemu-system-arm`, installed with apt-get (it has many shared-library dependencies).
#
# Cache: target/cross-toolchain/{debs,root} plus a stamp naming the package versions; a second
# run with the stamp present touches nothing and needs no network.
set -euo pipefail
cd "$(dirname "$0")/.."

TC="${FERROTA_CROSS_DIR:-$PWD/target/cross-toolchain}"
ROOT="$TC/root"
STAMP="$TC/stamp"
PKGS=(rustc-web rust-web-src libstd-rust-web-dev libstd-rust-web-1.96 rust-web-llvm
    lld-22 libllvm22 llvm-22 binutils-arm-none-eabi gcc-arm-none-eabi libnewlib-dev
    libclang1-22)
# Bump when the package set or the layout of this directory changes.
LAYOUT=3

log() { echo "cross-toolchain: $*" >&2; }

setup_root() {
    if [ -f "$STAMP" ] && [ -x "$ROOT/usr/bin/rustc" ] && grep -qx "layout=$LAYOUT" "$STAMP"; then
        return
    fi
    log "fetching ${PKGS[*]} (apt-get download) into $TC/debs"
    rm -rf "$TC/debs" "$ROOT.tmp"
    mkdir -p "$TC/debs" "$ROOT.tmp"
    # apt-get download runs as _apt when it can; give it a directory it may write.
    chmod 0777 "$TC/debs"
    if ! (cd "$TC/debs" && apt-get download -q "${PKGS[@]}" >/dev/null 2>"$TC/apt.log"); then
        log "apt-get download failed; running apt-get update once and retrying"
        apt-get update -q >/dev/null
        (cd "$TC/debs" && apt-get download -q "${PKGS[@]}" >/dev/null 2>"$TC/apt.log")
    fi
    for deb in "$TC"/debs/*.deb; do
        dpkg -x "$deb" "$ROOT.tmp"
    done
    # bindgen (micro-ecc-sys's build script, feature uecc) looks for an unversioned libclang.so.
    ln -sf libclang-22.so.1 "$ROOT.tmp/usr/lib/llvm-22/lib/libclang.so"
    rm -rf "$ROOT"
    mv "$ROOT.tmp" "$ROOT"
    {
        echo "layout=$LAYOUT"
        for deb in "$TC"/debs/*.deb; do basename "$deb"; done
    } >"$STAMP"
    # The .debs are not needed once unpacked.
    rm -rf "$TC/debs"
    log "unpacked into $ROOT"
}

setup_qemu() {
    if command -v qemu-system-arm >/dev/null; then
        return
    fi
    log "installing qemu-system-arm (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends qemu-system-arm >/dev/null 2>&1 || {
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends qemu-system-arm >/dev/null
    }
}

env_lines() {
    local lib="$ROOT/usr/lib/x86_64-linux-gnu:$ROOT/usr/lib/llvm-22/lib:$ROOT/usr/lib"
    echo "export FERROTA_CROSS_ROOT='$ROOT'"
    echo "export PATH='$ROOT/usr/bin:$ROOT/usr/lib/llvm-22/bin':\"\$PATH\""
    echo "export LD_LIBRARY_PATH='$lib'\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
    echo "export RUSTC='$ROOT/usr/bin/rustc'"
    echo "export RUSTC_BOOTSTRAP=1"
    # The unpacked arm-none-eabi-gcc looks for newlib's headers at the absolute /usr/include/newlib.
    echo "export CFLAGS_thumbv7em_none_eabihf='-isystem $ROOT/usr/include/newlib'"
    echo "export CFLAGS_thumbv6m_none_eabi='-isystem $ROOT/usr/include/newlib'"
    echo "export LIBCLANG_PATH='$ROOT/usr/lib/llvm-22/lib'"
    # The rustup proxies must not pick a toolchain of their own for rustc/rustdoc.
    echo "unset RUSTC_WRAPPER RUSTUP_TOOLCHAIN"
}

setup_root
setup_qemu
if [ "${1:-}" = "--env" ]; then
    env_lines
fi
