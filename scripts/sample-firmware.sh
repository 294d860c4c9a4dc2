#!/usr/bin/env bash
# Builds the two tiny sample programs of examples/sample-firmware/ with arm-none-eabi-gcc:
# cm0p.elf (Cortex-M0+, linked at 0x10000000) and cm7_0.elf (Cortex-M7, linked at 0x10010000),
# laid out as a TRAVEO T2G CYT4BF ModusToolbox build lays them out, ready for
# `ferrota image pack --cm0p cm0p.elf --cm7-0 cm7_0.elf ...`.
#
#   scripts/sample-firmware.sh                       # ./cm0p.elf, ./cm7_0.elf, version 1.0.0
#   scripts/sample-firmware.sh --version 1.1.0 -o out/v1.1.0
#
# --version X.Y.Z is compiled into both programs (their CySAF appIds and a version string), so
# two versions differ in content as real releases do; `ferrota image pack --version` sets the
# version the boot chain and the OTA agent read.
#
# The compiler: `arm-none-eabi-gcc` on the PATH (Debian/Ubuntu: apt-get install
# gcc-arm-none-eabi; or Arm's GNU toolchain), else the project's unpacked toolchain when
# scripts/cross-toolchain.sh has set it up (target/cross-toolchain, or $FERROTA_CROSS_DIR).
set -euo pipefail
SRC_DIR="$(cd "$(dirname "$0")/.." && pwd)"
EXAMPLE="$SRC_DIR/examples/sample-firmware"

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
    exit 2
}

version=1.0.0
out=.
while (($#)); do
    case "$1" in
    --version) version="${2:?--version needs X.Y.Z}"; shift 2 ;;
    -o | --output) out="${2:?-o needs a directory}"; shift 2 ;;
    -h | --help) usage ;;
    *) echo "sample-firmware: unknown argument '$1'" >&2; usage ;;
    esac
done
if ! [[ "$version" =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]]; then
    echo "sample-firmware: --version must be major.minor.build (e.g. 1.1.0), not '$version'" >&2
    exit 2
fi
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]} build=${BASH_REMATCH[3]}

if ! command -v arm-none-eabi-gcc >/dev/null; then
    cross="${FERROTA_CROSS_DIR:-$SRC_DIR/target/cross-toolchain}/root"
    if [ -x "$cross/usr/bin/arm-none-eabi-gcc" ]; then
        export PATH="$cross/usr/bin:$PATH"
        export LD_LIBRARY_PATH="$cross/usr/lib/x86_64-linux-gnu:$cross/usr/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    else
        cat >&2 <<EOF
sample-firmware: arm-none-eabi-gcc not found. Install it (Debian/Ubuntu:
  sudo apt-get install gcc-arm-none-eabi) or let the project unpack its own
  (scripts/cross-toolchain.sh, cached in target/cross-toolchain), then run this again.
EOF
        exit 1
    fi
fi

mkdir -p "$out"
# Freestanding: no C library, no start files; each program brings its vector table and reset
# handler. --build-id=none keeps a .note section from landing at an address of its own.
# shellcheck disable=SC2054 # -Wl,a,b is one argument
common=(-Os -g -ffreestanding -nostdlib -fno-common
    -Wall -Wextra -Werror -DFW_VERSION_MAJOR="$major" -DFW_VERSION_MINOR="$minor"
    -DFW_VERSION_BUILD="$build" -Wl,--build-id=none -Wl,--no-warn-rwx-segments)
arm-none-eabi-gcc -mcpu=cortex-m0plus -mthumb "${common[@]}" \
    -T "$EXAMPLE/cm0p/cm0p.ld" "$EXAMPLE/cm0p/main.c" -o "$out/cm0p.elf"
arm-none-eabi-gcc -mcpu=cortex-m7 -mthumb -mfpu=fpv5-d16 -mfloat-abi=hard "${common[@]}" \
    -T "$EXAMPLE/cm7_0/cm7_0.ld" "$EXAMPLE/cm7_0/main.c" -o "$out/cm7_0.elf"
echo "sample-firmware: version $version: $out/cm0p.elf (CM0+, 0x10000000), $out/cm7_0.elf (CM7_0, 0x10010000)"
