#!/usr/bin/env bash
# Builds the release pairs `ferrota bench delta` measures: the project's own Cortex-M firmware
# (firmware/: the DBM on the CM0+, thumbv6m, and the CM7 OTA agent, thumbv7em) compiled at two
# versions that differ as real releases do, and the sample firmware's v1.0.0 → v1.1.0 (the
# demo's update, C built with arm-none-eabi-gcc).
#
#   scripts/delta-pairs.sh                      # into target/delta-pairs
#   scripts/delta-pairs.sh -o DIR               # elsewhere
#   ferrota bench delta --pairs DIR             # then measure (default: target/delta-pairs)
#
# Pairs (each DIR/<pair>/{old,new}/ holds cm0p.* and cm7_0.* builds, a `version` and the pair's
# one-line `about`; the bench packs them into bank images as `ferrota image pack` does):
#   fw-log-string   a small source change: one log string of the CM7 agent (firmware/cm7-agent)
#   fw-dbm-uecc     a feature bump: the DBM verifying with micro-ecc (feature uecc-p256)
#                   instead of its own compact P-256, a larger code change on the CM0+
#   fw-opt-z        a compiler option: the CM7 agent at opt-level "z" instead of "s"
#   sample-1.0.0-1.1.0  scripts/sample-firmware.sh at 1.0.0 and 1.1.0
#
# The firmware builds are raw binaries (objcopy -O binary) of ELFs linked for QEMU's boards
# (scripts/firmware-check.sh builds the same ones); the bench places them after each region's
# CySAF header. Absolute addresses inside them differ from a T2G link by the same offset in
# both versions, so what changes between versions is what the compiler changed.
#
# Needs the cross toolchain (scripts/cross-toolchain.sh, run here; cached in
# target/cross-toolchain). Each variant builds in a copy of firmware/ under DIR/.src (the
# checkout is never edited), all sharing DIR/.cargo-target: a first run took 8 minutes on a
# shared 2-core machine; later runs reuse the compiled dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT_DIR=$PWD

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 2
}

OUT=target/delta-pairs
while (($#)); do
    case "$1" in
    -o | --output) OUT="${2:?-o needs a directory}"; shift 2 ;;
    -h | --help) usage ;;
    *) echo "delta-pairs: unknown argument '$1'" >&2; usage ;;
    esac
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SRC="$OUT/.src"
export CARGO_TARGET_DIR="$OUT/.cargo-target"

log() { echo "delta-pairs: $*" >&2; }

log "cross toolchain (scripts/cross-toolchain.sh)"
eval "$(scripts/cross-toolchain.sh --env)"
OBJCOPY=arm-none-eabi-objcopy

# A copy of firmware/ whose path dependencies point at this checkout's crates.
prep() { # variant -> prints its directory
    local d="$SRC/$1"
    rm -rf "$d"
    mkdir -p "$d"
    tar -C firmware --exclude=./target -cf - . | tar -C "$d" -xf -
    sed -i -E "s#path = \"(\.\./)+crates/#path = \"$ROOT_DIR/crates/#" \
        "$d/Cargo.toml" "$d"/*/Cargo.toml
    echo "$d"
}

# Replaces exactly one occurrence of $2 by $3 in file $1, or fails (the firmware changed under
# the script: update the edit).
edit_once() {
    local n
    n=$(grep -cF -- "$2" "$1" || true)
    if [ "$n" != 1 ]; then
        log "expected one '$2' in $1, found $n: update scripts/delta-pairs.sh"
        exit 1
    fi
    python3 - "$1" "$2" "$3" <<'EOF'
import sys
path, old, new = sys.argv[1:]
text = open(path).read()
open(path, "w").write(text.replace(old, new, 1))
EOF
}

cbuild() { # dir target features profile package [VAR=value ...]
    local dir=$1 target=$2 features=$3 profile=$4 package=$5
    shift 5
    (cd "$dir" && env "$@" cargo build -q --locked -Zbuild-std=core --target "$target" \
        --features "$features" --profile "$profile" -p "$package")
}

raw() { # elf out.bin
    $OBJCOPY -O binary "$1" "$2"
}

# One variant: the DBM (CM0+) and the CM7 agent (CM7_0) into $OUT/.variants/<name>/.
variant() { # name dbm-features [agent env VAR=value ...]
    local name=$1 dbm_features=$2 dir
    shift 2
    dir=$(prep "$name")
    case "$name" in
    log-string) edit_once "$dir/cm7-agent/src/main.rs" 'report(b"new ok");' 'report(b"agent started");' ;;
    esac
    local v="$OUT/.variants/$name"
    rm -rf "$v"
    mkdir -p "$v"
    log "variant $name: DBM (thumbv6m, features $dbm_features)"
    BINDGEN_EXTRA_CLANG_ARGS="-isystem $FERROTA_CROSS_ROOT/usr/include/newlib" \
        cbuild "$dir" thumbv6m-none-eabi "$dbm_features" release ferrota-fw-dbm
    raw "$CARGO_TARGET_DIR/thumbv6m-none-eabi/release/ferrota-dbm" "$v/cm0p.bin"
    log "variant $name: CM7 agent (thumbv7em${*:+, $*})"
    cbuild "$dir" thumbv7em-none-eabihf mps2-an500 cm7 ferrota-fw-cm7-agent "$@"
    raw "$CARGO_TARGET_DIR/thumbv7em-none-eabihf/cm7/ferrota-cm7-agent" "$v/cm7_0.bin"
}

pair() { # name old-variant old-version new-variant new-version about
    local p="$OUT/$1"
    rm -rf "$p"
    mkdir -p "$p/old" "$p/new"
    cp "$OUT/.variants/$2"/* "$p/old/"
    cp "$OUT/.variants/$4"/* "$p/new/"
    echo "$3" >"$p/old/version"
    echo "$5" >"$p/new/version"
    echo "$6" >"$p/about"
    log "pair $1: $(wc -c <"$p/new/cm0p.bin") + $(wc -c <"$p/new/cm7_0.bin") bytes of code"
}

variant base microbit
variant log-string microbit
variant dbm-uecc microbit,uecc-p256
variant opt-z microbit CARGO_PROFILE_CM7_OPT_LEVEL=z

pair fw-log-string base 1.0.0 log-string 1.0.1 \
    "firmware: one log string of the CM7 agent changed"
pair fw-dbm-uecc base 1.0.0 dbm-uecc 1.1.0 \
    "firmware: DBM verifies with micro-ecc (feature uecc-p256)"
pair fw-opt-z base 1.0.0 opt-z 1.0.1 \
    "firmware: CM7 agent at opt-level z instead of s"

log "sample firmware 1.0.0 and 1.1.0 (scripts/sample-firmware.sh)"
p="$OUT/sample-1.0.0-1.1.0"
rm -rf "$p"
mkdir -p "$p"
scripts/sample-firmware.sh --version 1.0.0 -o "$p/old" >/dev/null
scripts/sample-firmware.sh --version 1.1.0 -o "$p/new" >/dev/null
echo 1.0.0 >"$p/old/version"
echo 1.1.0 >"$p/new/version"
echo "the demo's update: sample firmware 1.0.0 -> 1.1.0 (C, arm-none-eabi-gcc)" >"$p/about"

log "done: $OUT (measure with: ferrota bench delta --pairs $OUT)"
