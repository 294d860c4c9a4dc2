#!/usr/bin/env bash
# The C API end to end on Linux (issue #22, item 3): builds examples/c-agent (a C program, the
# reference code of docs/C-API.md) with the system's C compiler against the static library
# libferrota_agent_ffi.a and Debian's libmosquitto, then, as a user would with the `ferrota`
# CLI only, in a temporary directory on free loopback ports:
#
#   1. keys, a code-signing certificate, four bank images packed from raw stand-in builds
#      (`ferrota image pack` takes file.bin@ADDR: nothing needs arm-none-eabi-gcc, the CM0+/CM7
#      code is never executed on Linux): v1.0.0, v1.1.0, v1.2.0 altered after signing, and
#      v1.3.0 altered between the boot signing and the OTA signing;
#   2. `ferrota serve`, `ferrota thing create` (mutual TLS: CA, certificate, key);
#   3. v1.0.0 "flashed" into the board's lower-bank file; the boot manager (through the C API)
#      boots it; the program given another CA than the server's must refuse the server (TLS)
#      and end with status 1, never connected;
#   4. the C program connects; `ferrota ota create` v1.1.0; the program downloads, activates,
#      waits for its PUBACKs, "reboots" through the boot manager into v1.1.0 on trial,
#      self-tests, confirms and exits 0 once the job SUCCEEDED; the server must say SUCCEEDED
#      and its inventory must show 1.1.0 from bank B;
#   5. the tampered v1.2.0: the program must report the job FAILED (exit 3), the server must
#      say FAILED, and the board's files must still boot v1.1.0;
#   6. v1.3.0 whose CM7_0 code was altered before the OTA signing (the agent's checks pass: the
#      file's signature and the CM0+ region): the program activates it and reboots into it on
#      trial; the CM0+ stage (ferrota_cm0p_check in its boot path) refuses CM7_0 and reverts the
#      trial; v1.1.0 boots again and the job ends FAILED (exit 3), on the server too.
#
# Every step is bounded (timeouts); the server and the program are killed at the end and the
# directory removed. A passing run takes a few seconds (the time is printed last).
#
#   scripts/c-agent-check.sh                          # by hand: builds the library alone
#   scripts/c-agent-check.sh --from-workspace-tests   # test.sh, after `cargo test --workspace`:
#                                                     # the library and ferrota it built (CI
#                                                     # compiles nothing twice)
#
# ferrota is $FERROTA or $CARGO_TARGET_DIR (default target/)/debug/ferrota (built if missing).
# Needs cc ($CC), pkg-config and libmosquitto-dev; without them it skips with a note, unless
# FERROTA_REQUIRE_INFRA=1 (CI), where it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
CC=${CC:-cc}
THING=dev-c
HW=c-agent-linux

case "${1:-}" in
"" | --from-workspace-tests) ;;
*) echo "usage: scripts/c-agent-check.sh [--from-workspace-tests]" >&2; exit 2 ;;
esac

missing=()
command -v "$CC" >/dev/null || missing+=("a C compiler ($CC)")
command -v pkg-config >/dev/null || missing+=("pkg-config (apt-get install pkg-config)")
pkg-config --exists libmosquitto 2>/dev/null ||
    missing+=("libmosquitto (apt-get install libmosquitto-dev)")
if ((${#missing[@]})); then
    if [ "${FERROTA_REQUIRE_INFRA:-0}" = 1 ]; then
        printf 'error: the C agent check needs %s\n' "${missing[@]}" >&2
        exit 1
    fi
    echo "note: the C agent check skips: missing $(IFS=';'; echo "${missing[*]}")"
    exit 0
fi

started=$(date +%s%N)
# The static library. `cargo test --workspace` builds it (crate-type staticlib) but leaves it in
# target/debug/deps/ under a hash, not in target/debug/: --from-workspace-tests (test.sh, right
# after the tests) asks cargo where, a fingerprint check that compiles nothing. By hand, the
# library is built alone (`cargo build -p ferrota-agent-ffi`: target/debug/libferrota_agent_ffi.a);
# FERROTA_FFI_LIB names any other build.
LIB=${FERROTA_FFI_LIB:-}
if [ -z "$LIB" ] && [ "${1:-}" = --from-workspace-tests ]; then
    LIB=$(cargo test --workspace --no-run --message-format=json 2>/dev/null |
        grep -o '"[^"]*/libferrota_agent_ffi-[0-9a-f]*\.a"' | tr -d '"' | sort -u || true)
    if [ "$(wc -l <<<"$LIB")" != 1 ] || [ ! -f "$LIB" ]; then
        echo "note: the workspace tests' libferrota_agent_ffi.a was not found ($LIB); building it alone" >&2
        LIB=
    fi
fi
if [ -z "$LIB" ]; then
    cargo build -q -p ferrota-agent-ffi
    LIB=$TARGET/debug/libferrota_agent_ffi.a
fi
FERROTA=${FERROTA:-$TARGET/debug/ferrota}
[ -x "$FERROTA" ] || cargo build -q -p ferrota-cli

T=$(mktemp -d "${TMPDIR:-/tmp}/ferrota-c-agent.XXXXXX")
pids=()
cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "$rc" != 0 ]; then
        echo "--- setup.log (last 10 lines)"; tail -10 "$T/setup.log" 2>/dev/null || true
        for f in "$T"/agent-*.log; do [ -e "$f" ] && { echo "--- $f"; cat "$f"; }; done
        echo "--- server log (last 20 lines)"; tail -20 "$T/server.log" 2>/dev/null || true
    fi
    rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
say() { echo "c-agent-check: $*"; }
fail() { echo "c-agent-check: FAILED: $*" >&2; exit 1; }
# The CLI's reports ("wrote …") go to setup.log, shown if something fails.
ferrota() { "$FERROTA" "$@" 2>>setup.log; }

# --- the program, built as docs/C-API.md says -----------------------------------------------
# shellcheck disable=SC2046 # pkg-config's flags are words
"$CC" -std=c11 -O2 -Wall -Wextra -Werror -I "$REPO/crates/agent-ffi/include" \
    $(pkg-config --cflags libmosquitto) -o c-agent "$REPO/examples/c-agent/c-agent.c" \
    "$LIB" $(pkg-config --libs libmosquitto) -lpthread -ldl -lm
say "built c-agent with $CC against ${LIB#"$REPO/"}"

# --- keys and images ----------------------------------------------------------------------------
ferrota key generate -o boot.pem >/dev/null
ferrota key generate -o signer.pem >/dev/null
ferrota cert code-signing --key signer.pem --cn "Release signer" -o signer.crt >/dev/null
printf 'c-agent stand-in CM0+ code\n' >cm0p.bin
pack() { # VERSION COUNTER [cm7]: a bank image whose CM7_0 stand-in names its version
    printf 'c-agent stand-in CM7_0 code, version %s\n' "$1" >"cm7-$1.bin"
    ferrota image pack --cm0p cm0p.bin@0x10000100 --cm7-0 "cm7-$1.bin@0x10010100" \
        --version "$1" --security-counter "$2" --hardware "$HW" --boot-key boot.pem \
        -o "v$1.bin" >/dev/null
    # cm7: the first byte of its CM7_0 code (bank offset 0x10100) overwritten before the OTA
    # signing: the boot signature of CM7_0 no longer holds, the file's signature does.
    [ "${3:-}" != cm7 ] || printf '\xff' | dd of="v$1.bin" bs=1 seek=$((0x10100)) conv=notrunc status=none
    ferrota image sign-ota "v$1.bin" --key signer.pem >/dev/null
}
pack 1.0.0 1
pack 1.1.0 2
pack 1.2.0 3
pack 1.3.0 4 cm7
# Tampered after signing: the first byte of its CM7_0 code overwritten (bank offset 0x10100).
printf '\xff' | dd of=v1.2.0.bin bs=1 seek=$((0x10100)) conv=notrunc status=none
ferrota key public boot.pem --format sflash -o boot-key.sflash >/dev/null

# --- the server and the thing --------------------------------------------------------------------
timeout -k 5 600 "$FERROTA" serve --data-dir data --mqtt-listen 127.0.0.1:0 \
    --http-listen 127.0.0.1:0 >server.log 2>&1 &
pids+=($!)
for _ in $(seq 150); do grep -qs '^http ' server.log && break; sleep 0.1; done
PORT=$(awk '$1 == "mqtt" { n = split($2, a, ":"); print a[n] }' server.log)
[ -n "$PORT" ] || fail "ferrota serve did not start"
ferrota thing create "$THING" --data-dir data --code-signing-cert signer.crt -o bundle >/dev/null
B=bundle/$THING
ferrota key public "$B/code-signing.crt.pem" -o code-signing.pub.pem >/dev/null
# Where the device connects: the bundle's device.toml (the endpoint the server's certificate
# names, and the port it listens on).
HOST=$(sed -n 's/^endpoint = "\(.*\)"$/\1/p' "$B/device.toml")
[ "$(sed -n 's/^port = \([0-9]*\)$/\1/p' "$B/device.toml")" = "$PORT" ] ||
    fail "the bundle's device.toml does not name the server's MQTT port $PORT"
say "server on 127.0.0.1:$PORT (MQTT, mutual TLS); thing $THING, endpoint $HOST"

# --- the board --------------------------------------------------------------------------------
mkdir flash
cp v1.0.0.bin flash/lower.bin # as a debugger programs it
boot_only() { # the boot manager's decision line, without the program's prefix
    ./c-agent --flash flash --boot-key boot-key.sflash --hardware "$HW" --boot-only |
        sed -n 's/^c-agent: \(boot .*\)/\1/p'
}
line=$(boot_only) || fail "the boot manager refused the first boot: $line"
[[ $line == *"boot bank=lower reason=current version=1.0.0 "* ]] || fail "first boot: $line"
say "boot manager: $line"

# The server's certificate checked: with a CA that did not issue it the program must refuse
# the connection (exit 1, never "connected"), not fall back to an unverified one.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other-ca.key \
    -out other-ca.pem -days 1 -subj /CN=other-ca 2>>setup.log >/dev/null
st=0
timeout -k 5 30 ./c-agent --flash flash --boot-key boot-key.sflash --hardware "$HW" \
    --thing "$THING" --host "$HOST" --port "$PORT" --ca other-ca.pem \
    --cert "$B/$THING.crt.pem" --key "$B/$THING.key.pem" \
    --code-signing-key code-signing.pub.pem --timeout 10 >agent-0.log 2>&1 || st=$?
[ "$st" = 1 ] || fail "with another CA the program ended with status $st, not 1"
if grep -q 'mqtt connected' agent-0.log; then fail "the program connected to a server its CA did not certify"; fi
say "another CA: $(grep -m1 'error:' agent-0.log | sed 's/^c-agent: //'), exit 1"

# agent N: the program in the background (AGENT is its pid: timeout's, which passes a kill on);
# its output in agent-N.log.
agent() {
    timeout -k 5 90 ./c-agent --flash flash --boot-key boot-key.sflash --hardware "$HW" \
        --thing "$THING" --host "$HOST" --port "$PORT" --ca "$B/root-ca.pem" \
        --cert "$B/$THING.crt.pem" --key "$B/$THING.key.pem" \
        --code-signing-key code-signing.pub.pem --timeout 60 >"agent-$1.log" 2>&1 &
    AGENT=$!
    pids+=("$AGENT")
    for _ in $(seq 100); do
        grep -qs 'mqtt connected' "agent-$1.log" && return 0
        kill -0 "$AGENT" 2>/dev/null || break
        sleep 0.1
    done
    fail "agent $1 did not connect"
}
wait_agent() { # STATUS: the program's exit status (it ends within 90 s: timeout)
    STATUS=0
    wait "$AGENT" || STATUS=$?
}
expect() { # N PATTERN: a line of agent N's log
    grep -q -- "$2" "agent-$1.log" || fail "agent $1 never printed '$2'"
}
job_status() { # ID: the thing's execution status, as the server reports it
    ferrota ota describe "$1" --data-dir data | tr -d ' \n' |
        grep -o '"executions":\[{[^]]*' | grep -o '"status":"[A-Z_]*"' | head -1
}

# --- the update to v1.1.0 --------------------------------------------------------------------
agent 1
ferrota ota create rel-1-1 --file v1.1.0.bin --thing "$THING" --data-dir data >/dev/null
wait_agent
[ "$STATUS" = 0 ] || fail "the program ended with status $STATUS on the update to v1.1.0"
expect 1 'reset requested'
expect 1 'boot bank=upper reason=trial 1/3 version=1.1.0 '
expect 1 'self-test pass'
expect 1 'job SUCCEEDED'
[ "$(job_status rel-1-1)" = '"status":"SUCCEEDED"' ] ||
    fail "the server says $(job_status rel-1-1) for rel-1-1"
inv=$("$FERROTA" thing describe "$THING" --data-dir data 2>&1 >/dev/null) # its summary line
[[ $inv == *"runs 1.1.0 (bank B)"* ]] || fail "the inventory says: $inv"
say "update: the program exited 0 (job SUCCEEDED); server: SUCCEEDED; inventory: ${inv%%;*}"

# --- the tampered v1.2.0 -----------------------------------------------------------------------
agent 2
ferrota ota create rel-1-2 --file v1.2.0.bin --thing "$THING" --data-dir data >/dev/null
wait_agent
[ "$STATUS" = 3 ] || fail "the program ended with status $STATUS on the tampered image, not 3"
expect 2 'job FAILED'
if grep -q 'reset requested' agent-2.log; then fail "the program reset after the tampered image"; fi
[ "$(job_status rel-1-2)" = '"status":"FAILED"' ] ||
    fail "the server says $(job_status rel-1-2) for rel-1-2"
line=$(boot_only) || fail "the boot manager refused the boot after the tampered image: $line"
[[ $line == *"boot bank=upper reason=current version=1.1.0 "* ]] ||
    fail "after the tampered image the board boots: $line"
say "tampered: $(grep 'job FAILED' agent-2.log | sed 's/^c-agent: //'), exit 3; server: FAILED; boot manager: $line"

# --- v1.3.0, whose CM7_0 region the CM0+ stage refuses ------------------------------------------
agent 3
ferrota ota create rel-1-3 --file v1.3.0.bin --thing "$THING" --data-dir data >/dev/null
wait_agent
[ "$STATUS" = 3 ] || fail "the program ended with status $STATUS on v1.3.0, not 3"
expect 3 'reset requested'
expect 3 'boot bank=lower reason=trial 1/3 version=1.3.0 '
expect 3 'cm0p: CM7_0 region of the lower bank refused .*: its trial is reverted; reset'
expect 3 'job FAILED'
if grep -q 'self-test' agent-3.log; then fail "v1.3.0 ran its self-test"; fi
[ "$(job_status rel-1-3)" = '"status":"FAILED"' ] ||
    fail "the server says $(job_status rel-1-3) for rel-1-3"
line=$(boot_only) || fail "the boot manager refused the boot after v1.3.0: $line"
[[ $line == *"boot bank=upper "*"version=1.1.0 "* ]] || fail "after v1.3.0 the board boots: $line"
say "CM7_0 refused: $(grep 'cm0p: CM7_0' agent-3.log | sed 's/^c-agent: //'); $(grep 'job FAILED' agent-3.log | sed 's/^c-agent: //'), exit 3; server: FAILED; boot manager: $line"

ms=$((($(date +%s%N) - started) / 1000000))
say "ok ($((ms / 1000)).$(printf '%03d' $((ms % 1000))) s)"
