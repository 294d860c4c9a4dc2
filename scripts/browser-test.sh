#!/usr/bin/env bash
# The operator's console in a real browser: Debian's headless Chromium driven by Playwright
# (npm playwright-core, which never downloads a browser of its own), against a real
# `ferrota serve` and three simulated boards (`ferrota device run`) on free loopback ports in a
# temporary directory. tests/browser/console.test.mjs signs in, uploads a release, starts a
# two-wave rollout, follows it live into the second wave, pauses, resumes, opens a device's
# history and the audit log, and checks that a viewer cannot start a rollout (page and API).
# Screenshots of the main pages go to target/browser-screenshots/ (not committed).
#
# Needs: chromium (apt-get install chromium), node, and `npm ci --prefix tests/browser`.
# Without them it skips with a note, unless FERROTA_REQUIRE_INFRA=1 (CI), where it fails.
# FERROTA names the ferrota binary (default: target/debug/ferrota, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
CHROMIUM=${FERROTA_CHROMIUM:-/usr/bin/chromium}

missing=()
[ -x "$CHROMIUM" ] || missing+=("Debian's chromium at $CHROMIUM (apt-get install chromium)")
command -v node >/dev/null || missing+=("node")
[ -d tests/browser/node_modules/playwright-core ] ||
    missing+=("playwright-core (npm ci --prefix tests/browser)")
if ((${#missing[@]})); then
    if [ "${FERROTA_REQUIRE_INFRA:-0}" = 1 ]; then
        printf 'error: the browser tests need %s\n' "${missing[@]}" >&2
        exit 1
    fi
    echo "note: the browser tests skip: missing $(IFS=';'; echo "${missing[*]}")"
    exit 0
fi

FERROTA=${FERROTA:-${CARGO_TARGET_DIR:-$REPO/target}/debug/ferrota}
[ -x "$FERROTA" ] || cargo build -q -p ferrota-cli
SHOTS=${FERROTA_SCREENSHOTS:-${CARGO_TARGET_DIR:-$REPO/target}/browser-screenshots}
mkdir -p "$SHOTS" && rm -f "$SHOTS"/*.png

T=$(mktemp -d "${TMPDIR:-/tmp}/ferrota-browser.XXXXXX")
pids=()
cleanup() {
    local rc=$?
    ((${#pids[@]})) && kill "${pids[@]}" 2>/dev/null
    wait 2>/dev/null
    if [ "$rc" != 0 ]; then
        echo "--- server log (last 30 lines)"; tail -30 "$T/server.log" 2>/dev/null || true
        for d in "$T"/dev-*.log; do [ -e "$d" ] && { echo "--- $d"; tail -5 "$d"; }; done
    fi
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
ferrota() { "$FERROTA" "$@"; }

# Background processes run the binary itself (not the shell function), so that $! is their
# own pid and the cleanup's kill reaches them.
"$FERROTA" serve --data-dir "$T/data" --mqtt-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
    > server.log 2>&1 &
pids+=($!)
for _ in $(seq 150); do grep -q '^http ' server.log && break; sleep 0.2; done
HTTP=$(awk '$1 == "http" {print $2}' server.log)
[ -n "$HTTP" ] || { echo "error: ferrota serve did not start" >&2; exit 1; }
export FERROTA_DATA_DIR=$T/data FERROTA_API=http://$HTTP

# Two releases of a tiny firmware (raw vector tables; the simulated board checks signatures
# and vectors, it does not execute the code).
python3 - <<'PY'
import struct
cm0 = bytearray(0x40); cm0[0:8] = struct.pack('<II', 0x08002000, 0x10000141)
open('cm0p.bin', 'wb').write(cm0)
cm7 = bytearray(0x40); cm7[0:8] = struct.pack('<II', 0x28008000, 0x10010201)
open('cm7_0.bin', 'wb').write(cm7)
PY
ferrota key generate -o boot.pem >/dev/null
ferrota key generate -o signer.pem >/dev/null
ferrota cert code-signing --key signer.pem --cn "Release signer" -o signer.crt >/dev/null
for v in 1.0.0 1.1.0; do
    ferrota image pack --cm0p cm0p.bin@0x10000100 --cm7-0 cm7_0.bin@0x10010100 --version "$v" \
        --security-counter 1 --hardware KIT_T2G --boot-key boot.pem -o "v$v.bin" >/dev/null
    ferrota image sign-ota "v$v.bin" --key signer.pem >/dev/null
done

for i in 1 2 3; do
    ferrota thing create "dev-$i" --group lab --code-signing-cert signer.crt -o bundle >/dev/null
    ferrota t2g new "dev-$i.t2g" --boot-key boot.pem >/dev/null
    ferrota t2g program "dev-$i.t2g" v1.0.0.bin --bank lower >/dev/null
    "$FERROTA" device run --config "bundle/dev-$i/device.toml" --flash "dev-$i.t2g" > "dev-$i.log" 2>&1 &
    pids+=($!)
done
VIEWER=$(ferrota token create --name vera --role viewer 2>/dev/null)

FERROTA_URL=http://$HTTP \
FERROTA_ADMIN_TOKEN=$(cat "$T/data/api-token") \
FERROTA_VIEWER_TOKEN=$VIEWER \
FERROTA_FILES=$T \
FERROTA_SCREENSHOTS=$SHOTS \
FERROTA_CHROMIUM=$CHROMIUM \
    node "$REPO/tests/browser/console.test.mjs"
echo "browser tests passed; screenshots in $SHOTS"
