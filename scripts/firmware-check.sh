#!/usr/bin/env bash
# Cross-builds the firmware (firmware/), runs the DBM decision matrix under QEMU on the
# Cortex-M0 (microbit) and the Cortex-M7 (mps2-an500) against the host's decision for the same
# ferrota-t2g device states, replays a recorded OTA update on the CM7 through ferrota-agent from
# Rust and through the C API from C (issue #22: firmware/c-agent), runs the live board (issue
# #21: the DBM and the application with ferrota-agent over Ethernet, TLS and MQTT against
# `ferrota serve`, through a whole update, a tampered image and a rollback), and prints the
# size / RAM / instruction report.
#
#   scripts/firmware-check.sh            # everything; exit 1 on any mismatch or failed live step
#
# Needs: scripts/cross-toolchain.sh (run here; cached under target/cross-toolchain), and the
# `ferrota` CLI for the live board: $FERROTA_BIN, else target/debug/ferrota (.ci/run passes
# the one its tests built).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT_DIR=$PWD
WORK="${FERROTA_FW_WORK:-$ROOT_DIR/target/firmware-check}"
rm -rf "$WORK"
mkdir -p "$WORK"

echo "== firmware: host harness (ferrota-qemu-harness)"
# Built with the rustup toolchain, before the cross environment is set.
if [ -n "${FERROTA_QEMU_HOST_BIN:-}" ]; then
    HOST_BIN=$FERROTA_QEMU_HOST_BIN
else
    cargo build -q -p ferrota-qemu-harness --bin ferrota-qemu
    HOST_BIN="$ROOT_DIR/target/debug/ferrota-qemu"
fi

echo "== firmware: verifier equivalence on the host (CompactKey and the DBM's TinyKey vs ferrota-image's BootKey)"
if ! (cd firmware && cargo test -q --locked --release -p ferrota-fw-verifier) >"$WORK/verifier-test.txt" 2>&1; then
    cat "$WORK/verifier-test.txt"
    echo "verifier equivalence test failed"
    exit 1
fi
grep "^test result: ok. [1-9]" "$WORK/verifier-test.txt"

echo "== firmware: the live board's network on the host (server-certificate check, MQTT framing, TLS record framing)"
if ! (cd firmware && cargo test -q --locked -p ferrota-fw-net) >"$WORK/net-test.txt" 2>&1; then
    cat "$WORK/net-test.txt"
    echo "ferrota-fw-net tests failed"
    exit 1
fi
grep "^test result: ok. [1-9]" "$WORK/net-test.txt"

echo "== firmware: cross toolchain"
eval "$(scripts/cross-toolchain.sh --env)"

echo "== firmware: verifier equivalence with micro-ecc too (UeccKey, feature uecc; C built for the host)"
if ! (cd firmware && cargo test -q --locked --release -p ferrota-fw-verifier --features uecc) >"$WORK/verifier-uecc-test.txt" 2>&1; then
    cat "$WORK/verifier-uecc-test.txt"
    echo "verifier equivalence test (uecc) failed"
    exit 1
fi
grep "^test result: ok. [1-9]" "$WORK/verifier-uecc-test.txt"

FW="$ROOT_DIR/firmware"
build() { # target features profile package
    (cd "$FW" && cargo build -q --locked -Zbuild-std=core --target "$1" --features "$2" \
        --profile "$3" -p "$4")
}
echo "== firmware: cross-build (thumbv6m-none-eabi: DBM; thumbv7em-none-eabihf: DBM, CM7 verify with the asm P-256, CM7 agent)"
build thumbv6m-none-eabi microbit release ferrota-fw-dbm
DBM_M0="$FW/target/thumbv6m-none-eabi/release/ferrota-dbm"
cp "$DBM_M0" "$WORK/ferrota-dbm-m0.elf"
# The DBM with micro-ecc (feature uecc-p256): bindgen parses uECC.h for the target with newlib's headers.
BINDGEN_EXTRA_CLANG_ARGS="-isystem $FERROTA_CROSS_ROOT/usr/include/newlib" \
    build thumbv6m-none-eabi microbit,uecc-p256 release ferrota-fw-dbm
cp "$DBM_M0" "$WORK/ferrota-dbm-m0-uecc.elf"
build thumbv7em-none-eabihf mps2-an500 release ferrota-fw-dbm
DBM_M7="$FW/target/thumbv7em-none-eabihf/release/ferrota-dbm"
cp "$DBM_M7" "$WORK/ferrota-dbm-m7.elf"
build thumbv7em-none-eabihf mps2-an500,asm-p256 cm7 ferrota-fw-cm7-verify
VERIFY_M7="$FW/target/thumbv7em-none-eabihf/cm7/ferrota-cm7-verify"
build thumbv7em-none-eabihf mps2-an500 cm7 ferrota-fw-cm7-agent
AGENT_M7="$FW/target/thumbv7em-none-eabihf/cm7/ferrota-cm7-agent"

# The C API (crates/agent-ffi, a host-workspace crate) as the static library a C firmware links:
# cross-built with the same toolchain and `-Zbuild-std=core` as the firmware, with the firmware's
# cm7 profile (opt-level s, fat LTO, panic=abort: firmware/c-agent/ffi-profile.toml), into its own
# target directory beside the firmware's (cached with it; its own because the two workspaces'
# builds of shared crates would otherwise invalidate each other). `cargo rustc --crate-type
# staticlib`: the crate is also an rlib, and cargo applies no LTO to a crate built as both.
# Then the C program (firmware/c-agent/Makefile: arm-none-eabi-gcc -Os, no C library).
echo "== firmware: the C API for the CM7 (crates/agent-ffi, thumbv7em, cm7 profile) and the C replay (firmware/c-agent, arm-none-eabi-gcc)"
now_ms() { date +%s%3N; }
c_t0=$(now_ms)
(cd "$ROOT_DIR" && cargo rustc -q --locked -Zbuild-std=core --target thumbv7em-none-eabihf \
    -p ferrota-agent-ffi --no-default-features --features panic-handler --profile cm7 \
    --config firmware/c-agent/ffi-profile.toml --target-dir "$FW/target/agent-ffi" \
    --crate-type staticlib)
c_t1=$(now_ms)
FFI_LIB="$FW/target/agent-ffi/thumbv7em-none-eabihf/cm7/libferrota_agent_ffi.a"
make -s -C "$FW/c-agent" FFI_LIB="$FFI_LIB" OUT="$WORK/c-agent"
C_AGENT="$WORK/c-agent/ferrota-c-agent.elf"
c_t2=$(now_ms)

echo "== firmware: cross-build of the live board (DBM with feature live; the application, and again with fail-self-test)"
build thumbv7em-none-eabihf mps2-an500,live release ferrota-fw-dbm
cp "$DBM_M7" "$WORK/ferrota-dbm-live.elf"
LIVE_APP="$FW/target/thumbv7em-none-eabihf/cm7/ferrota-live"
build thumbv7em-none-eabihf mps2-an500,fail-self-test cm7 ferrota-fw-live
cp "$LIVE_APP" "$WORK/live-app-fail.elf"
build thumbv7em-none-eabihf mps2-an500 cm7 ferrota-fw-live
cp "$LIVE_APP" "$WORK/live-app.elf"
for a in live-app live-app-fail; do
    llvm-objcopy -O binary "$WORK/$a.elf" "$WORK/$a.bin"
done
# The CM0+ program every live image carries (the DBM checks it; the M7 never runs it).
scripts/sample-firmware.sh -o "$WORK/live-cm0p" >/dev/null

# The host binary must not run with the cross toolchain's libraries first.
host() { env -u LD_LIBRARY_PATH "$HOST_BIN" "$@"; }

status=0
for m in microbit:"$WORK/ferrota-dbm-m0.elf" mps2-an500:"$WORK/ferrota-dbm-m7.elf" \
    microbit-uecc:"$WORK/ferrota-dbm-m0-uecc.elf"; do
    run=${m%%:*}
    machine=${run%-uecc}
    elf=${m#*:}
    echo "== firmware: DBM decision matrix on qemu-system-arm -machine $machine ($(basename "$elf"))"
    if ! host matrix "$machine" "$elf" "$WORK/matrix-$run" | tee "$WORK/matrix-$run.txt"; then
        status=1
    fi
done

echo "== firmware: CM7 verification benchmark (mps2-an500, -icount shift=0)"
mapfile -t LOADS < <(host bench-images "$WORK/bench")
DEV_ARGS=()
for l in "${LOADS[@]}"; do DEV_ARGS+=(${l}); done
timeout 600 qemu-system-arm -machine mps2-an500 -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native -icount shift=0 \
    -kernel "$VERIFY_M7" "${DEV_ARGS[@]}" >"$WORK/bench.txt" || status=1
cat "$WORK/bench.txt"
grep -qx verified "$WORK/bench.txt" || { echo "CM7 verification failed"; status=1; }

echo "== firmware: OTA agent on the CM7 (mps2-an500): scripted update vs the host agent"
if ! host agent "$AGENT_M7" "$WORK/agent" | tee "$WORK/agent.txt"; then
    status=1
fi

echo "== firmware: OTA agent from C on the CM7 (firmware/c-agent through the C API): the same scripted update vs the host agent"
c_t3=$(now_ms)
if ! host agent "$C_AGENT" "$WORK/c-agent-run" | tee "$WORK/c-agent.txt"; then
    status=1
fi
c_t4=$(now_ms)
# The same program on bad scripts (header, entry framing, non-UTF-8 topic and thing name, code
# key, version record, stream tuning of zero or out of range): each run must end in its own error
# line and a failed exit; then on the script with other blocks per request, which it must use.
echo "== firmware: the C replay refuses bad scripts and uses the script's tuning"
if ! host agent-refusals "$C_AGENT" "$WORK/c-agent-refusals"; then
    status=1
fi
c_t5=$(now_ms)

echo "== firmware: the live board (issue #21): update, tampered image, rollback, restart, against ferrota serve"
FERROTA_BIN="${FERROTA_BIN:-$ROOT_DIR/target/debug/ferrota}"
LIVE_FAILED=""
: >"$WORK/live.txt"
if [ ! -x "$FERROTA_BIN" ]; then
    LIVE_FAILED="live: FAILED the ferrota CLI is missing ($FERROTA_BIN): build it (cargo build -p ferrota-cli) or set FERROTA_BIN"
    echo "$LIVE_FAILED"
    status=1
else
    # Each step is bounded by --timeout-secs; the whole run by the timeout around it, which is
    # longer than the last-resort limits `ferrota-qemu live` puts around QEMU and the server
    # (10 steps' worth + 2 minutes: 720 s at 60 s a step): those run in process groups of their
    # own, which this timeout's signal does not reach, so they must end first.
    if ! timeout 900 env -u LD_LIBRARY_PATH "$HOST_BIN" live --ferrota "$FERROTA_BIN" \
        --dbm "$WORK/ferrota-dbm-live.elf" --app "$WORK/live-app.bin" \
        --app-failing "$WORK/live-app-fail.bin" --cm0p "$WORK/live-cm0p/cm0p.elf" \
        --work "$WORK/live" --timeout-secs 60 | tee "$WORK/live.txt"; then
        LIVE_FAILED=$(grep '^live: FAILED' "$WORK/live.txt" | head -1)
        LIVE_FAILED=${LIVE_FAILED:-"live: FAILED (no step message: the run was killed after 900 s or crashed)"}
        status=1
    fi
fi

val() { sed -n "s/^$1=//p" "$2" | head -1; }
cal_i=$(val calibrate-instructions "$WORK/bench.txt")
cal_t=$(val calibrate-ticks "$WORK/bench.txt")
instr() { # ticks -> instructions, with the calibration loop's ratio
    awk -v t="$1" -v ci="$cal_i" -v ct="$cal_t" 'BEGIN { printf "%.2f M", t * ci / ct / 1e6 }'
}
size_of() { # elf -> "flash ram-static"
    llvm-size "$1" | awk 'NR == 2 { print $1 + $2, $2 + $3 }'
}
max_stack() {
    sed -n 's/^ *stack=\([0-9]*\).*/\1/p' "$1" | sort -n | tail -1
}
read -r m0_flash m0_static < <(size_of "$WORK/ferrota-dbm-m0.elf")
read -r m7_flash m7_static < <(size_of "$WORK/ferrota-dbm-m7.elf")
read -r mu_flash mu_static < <(size_of "$WORK/ferrota-dbm-m0-uecc.elf")
mu_stack=$(max_stack "$WORK/matrix-microbit-uecc.txt")
m0_stack=$(max_stack "$WORK/matrix-microbit.txt")
m7_stack=$(max_stack "$WORK/matrix-mps2-an500.txt")

echo
echo "== firmware report (sizes: llvm-size text+data; RAM: data+bss + stack high-water by stack painting over the matrix)"
printf '%-44s %12s %12s\n' "" "value" "target"
printf '%-44s %10s B %12s\n' "DBM flash, CM0+ (thumbv6m, opt z, TinyKey)" "$m0_flash" "<= 16384"
printf '%-44s %10s B %12s\n' "DBM RAM, CM0+ (static $m0_static + stack)" "$((m0_static + m0_stack))" "<= 8192"
printf '%-44s %10s B %12s\n' "DBM flash, CM0+, micro-ecc (feature uecc-p256)" "$mu_flash" "<= 16384"
printf '%-44s %10s B %12s\n' "DBM RAM, CM0+, micro-ecc (static $mu_static + stack)" "$((mu_static + mu_stack))" "<= 8192"
printf '%-44s %10s B %12s\n' "DBM flash, on the M7 (thumbv7em, opt z)" "$m7_flash" ""
printf '%-44s %10s B %12s\n' "DBM RAM, on the M7 (static $m7_static + stack)" "$((m7_static + m7_stack))" ""
printf '%-44s %12s %12s\n' "verify CM0+ region (64 KB), M7, RustCrypto" "$(instr "$(val cm0p-region-ticks "$WORK/bench.txt")")" "<= 2 M"
printf '%-44s %12s %12s\n' "verify CM0+ region (64 KB), M7, asm P-256" "$(instr "$(val asm-cm0p-region-ticks "$WORK/bench.txt")")" "<= 2 M"
printf '%-44s %12s\n' "  split: SHA-256, $(val sha-cm0p-region-bytes "$WORK/bench.txt") signed B (sha2)" "$(instr "$(val sha-cm0p-region-ticks "$WORK/bench.txt")")"
printf '%-44s %12s\n' "  split: same, verifier's ARMv7-M SHA-256" "$(instr "$(val fast-sha-cm0p-region-ticks "$WORK/bench.txt")")"
printf '%-44s %12s\n' "  split: of which flash reads (memcpy)" "$(instr "$(val read-cm0p-region-ticks "$WORK/bench.txt")")"
printf '%-44s %12s\n' "  split: P-256 verify alone, RustCrypto" "$(instr "$(val p256-verify-ticks "$WORK/bench.txt")")"
printf '%-44s %12s\n' "  split: P-256 verify alone, asm" "$(instr "$(val asm-p256-verify-ticks "$WORK/bench.txt")")"
printf '%-44s %12s %12s\n' "  asm P-256 + ARMv7-M SHA-256 (derived)" "$(instr "$(($(val asm-cm0p-region-ticks "$WORK/bench.txt") - $(val sha-cm0p-region-ticks "$WORK/bench.txt") + $(val fast-sha-cm0p-region-ticks "$WORK/bench.txt")))")" "<= 2 M (*)"
printf '%-44s %12s %12s\n' "verify full bank (4 MB), M7, RustCrypto" "$(instr "$(val full-bank-ticks "$WORK/bench.txt")")" ""
printf '%-44s %12s %12s\n' "verify full bank (4 MB), M7, asm P-256" "$(instr "$(val asm-full-bank-ticks "$WORK/bench.txt")")" ""
printf '%-44s %10s B\n' "verify harness flash (thumbv7em, opt s)" "$(size_of "$VERIFY_M7" | cut -d' ' -f1)"
read -r ag_flash ag_static < <(size_of "$AGENT_M7")
ag_stack=$(val stack "$WORK/agent.txt")
printf '%-44s %10s B\n' "agent (CM7) flash (thumbv7em, opt s)" "$ag_flash"
# Issue #20: the signed-metadata code is linked whatever the policy (a run-time setting), so
# the flash above includes it; the script's run itself is AwsPlain (no anchor, no manifest).
manifest_bytes=0
for h in $(llvm-nm -C --print-size --size-sort "$AGENT_M7" 2>/dev/null \
    | awk '/ferrota_manifest|minicbor/ { print $2 }'); do
    manifest_bytes=$((manifest_bytes + 16#$h))
done
printf '%-44s %10s B\n' "  of which ferrota_manifest+minicbor (nm)" "$manifest_bytes"
printf '%-44s %10s B\n' "agent (CM7) RAM (static $ag_static + stack)" "$((ag_static + ${ag_stack:-0}))"
printf '%-44s %10s B\n' "  of which the Agent value" "$(val agent-size "$WORK/agent.txt")"
printf '%-44s %12s\n' "agent: whole update of a 128 KB image, M7" "$(instr "$(val agent-ticks "$WORK/agent.txt")")"
printf '%-44s %12s\n' "  longest call (last block: hash + 2 sigs)" "$(instr "$(val longest-call-ticks "$WORK/agent.txt")")"
# The C replay beside the Rust one. Flash by the link map's input sections: the C program's own
# objects, the library (agent, C API, core, compiler_builtins), padding.
c_split() { # map -> "c lib pad"
    awk 'function hex(s,   i, v) { v = 0; s = tolower(substr(s, 3))
            for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
            return v }
        /^\.(isr_vector|text|rodata|data)([ \t]|$)/ { on = 1; next }
        /^[^ \t]/ { on = 0 }
        on && $1 == "*fill*" { pad += hex($3); next }
        on && NF >= 3 && $(NF-1) ~ /^0x/ && $(NF-2) ~ /^0x/ {
            if ($NF ~ /\.o$/ && $NF !~ /\.a\(/) c += hex($(NF-1)); else lib += hex($(NF-1)) }
        END { print c + 0, lib + 0, pad + 0 }' "$1"
}
read -r c_flash c_static < <(size_of "$C_AGENT")
read -r c_own c_lib c_pad < <(c_split "$WORK/c-agent/ferrota-c-agent.map")
c_stack=$(val stack "$WORK/c-agent.txt")
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f s", ms / 1000 }'; }
printf '%-44s %10s B   %s\n' "agent from C (CM7) flash (gcc -Os + lib opt s)" "$c_flash" "Rust replay: $ag_flash B"
printf '%-44s %10s B\n' "  the C program (startup, script, lines)" "$c_own"
printf '%-44s %10s B\n' "  the library (agent, C API, core; + pad $c_pad)" "$c_lib"
printf '%-44s %10s B   %s\n' "agent from C RAM (static $c_static + stack)" "$((c_static + ${c_stack:-0}))" "Rust replay: $((ag_static + ${ag_stack:-0})) B"
printf '%-44s %10s B\n' "  static: the agent's memory block" "$(val agent-mem "$WORK/c-agent.txt")"
printf '%-44s %10s B\n' "  stack: ferrota_agent_init (deepest)" "$(val stack-init "$WORK/c-agent.txt")"
printf '%-44s %10s B\n' "  stack: the update after the init" "$(val stack-run "$WORK/c-agent.txt")"
printf '%-44s %12s %s\n' "agent from C: whole update, M7" "$(instr "$(val agent-ticks "$WORK/c-agent.txt")")" "  Rust replay: $(instr "$(val agent-ticks "$WORK/agent.txt")")"
printf '%-44s %12s\n' "  longest call (last block: hash + 2 sigs)" "$(instr "$(val longest-call-ticks "$WORK/c-agent.txt")")"
printf '%-44s %12s\n' "agent from C: CI time, build library" "$(secs $((c_t1 - c_t0)))"
printf '%-44s %12s\n' "  build the C program" "$(secs $((c_t2 - c_t1)))"
printf '%-44s %12s\n' "  host recording + QEMU run + compare" "$(secs $((c_t4 - c_t3)))"
printf '%-44s %12s\n' "  bad scripts (one QEMU run each)" "$(secs $((c_t5 - c_t4)))"
# The live application by component: llvm-nm sizes of every symbol, each given to the crate its
# demangled name names first (`<aes::Aes128 as cipher::..>::encrypt` is aes: crypto;
# `embedded_tls::..<aes_gcm::..>` is embedded_tls: TLS; ferrota_fw_net's modules lan9118/tcp, tls
# and mqtt count as TCP/IP, TLS and MQTT). Flash: text, rodata, data; RAM: data, bss.
split_sizes() { # elf -> "component flash ram" per component
    llvm-nm -C --print-size --size-sort "$1" | awk '
    function hex(s,   i, v) { v = 0; s = tolower(s)
        for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
        return v }
    BEGIN {
        n = split("tcpip:smoltcp|lan9118|tcp tls:embedded_tls|tls mqtt:rust_mqtt|mqttrs|minimq|mqtt agent:ferrota_agent|ferrota_proto|ferrota_manifest|minicbor|ferrota_image|ferrota_boot crypto:p256|p256_cortex_m4|elliptic_curve|primeorder|ecdsa|sha2|aes|aes_gcm|ghash|polyval|chacha20|rand_chacha|rand_core|crypto_bigint|hmac|hkdf|digest|cipher|ctr|universal_hash|aead|subtle|ferrota_fw_verifier", spec, " ")
        for (i = 1; i <= n; i++) { split(spec[i], kv, ":"); cname[i] = kv[1]; pat[i] = "(^|[^a-z0-9_])(" kv[2] ")::" }
    }
    NF >= 4 {
        name = $4; for (i = 5; i <= NF; i++) name = name " " $i
        c = "other"; best = 0
        for (i = 1; i <= n; i++) if (match(name, pat[i]) && (best == 0 || RSTART < best)) { best = RSTART; c = cname[i] }
        size = hex($2); t = $3
        if (t ~ /[tTrR]/) flash[c] += size
        else if (t ~ /[dD]/) { flash[c] += size; ram[c] += size }
        else if (t ~ /[bB]/) ram[c] += size
    }
    END { split("tcpip tls mqtt agent crypto other", order, " ")
        for (i = 1; i <= 6; i++) printf "%s %d %d\n", order[i], flash[order[i]], ram[order[i]] }'
}
live_split=$(split_sizes "$WORK/live-app.elf")
part() { awk -v c="$1" -v f="$2" '$1 == c { print $f }' <<<"$live_split"; }
read -r live_flash live_static < <(size_of "$WORK/live-app.elf")
lfig() { sed -n "s/^live-fig $1=//p" "$WORK/live.txt" | head -1; }
live_stack=$(lfig stack)
instr_live() { [ -n "$1" ] && awk -v t="$1" 'BEGIN { printf "%.2f M", t * 40 / 1e6 }'; }
live_icount=$(lfig icount)
# The network's buffers live in its Storage (on the app's stack, as the Agent): their sizes are
# ferrota-fw-net's constants (lib.rs, lan9118.rs); the rest of Storage is protocol state.
netc() { # constant file -> its value (0 if ferrota-fw-net no longer has it)
    local v
    v=$(sed -n "s/^pub const $1: usize = \([0-9_]*\);.*/\1/p" "$FW/net/src/$2" | tr -d _ | head -1)
    echo "${v:-0}"
}
n_frame=$(netc FRAME lan9118.rs); n_tcp=$(($(netc TCP_RX lib.rs) + $(netc TCP_TX lib.rs)))
n_tls=$(($(netc TLS_RX lib.rs) + $(netc TLS_TX lib.rs))); n_mqtt=$(($(netc MQTT_RX lib.rs) + $(netc MQTT_TX lib.rs)))
n_storage=$(lfig storage-size); n_agent=$(lfig agent-size); dbm_live_stack=$(lfig dbm-stack)
read -r dbm_live_flash dbm_live_static < <(size_of "$WORK/ferrota-dbm-live.elf")
printf '%-44s %10s B\n' "live app flash (thumbv7em, opt s), nm split:" "$live_flash"
printf '%-44s %10s B\n' "  TCP/IP (smoltcp, LAN9118 driver)" "$(part tcpip 2)"
printf '%-44s %10s B\n' "  TLS 1.3 (embedded_tls, cert check)" "$(part tls 2)"
printf '%-44s %10s B   %s\n' "  MQTT 3.1.1 (mqttrs codec, packet framing)" "$(part mqtt 2)" "seed: coreMQTT 6.9 K (-Os) (*2)"
printf '%-44s %10s B   %s\n' "  agent (ferrota_agent/proto/image, cbor)" "$(part agent 2)" "seed: AWS IoT OTA 11.6 K (-Os) (*2)"
printf '%-44s %10s B\n' "  crypto (p256, sha2, aes-gcm, chacha, ...)" "$(part crypto 2)"
printf '%-44s %10s B\n' "  other (app, board, core, the link's session)" "$(part other 2)"
printf '%-44s %10s B\n' "live app RAM (static $live_static + stack ${live_stack:-?})" "$((live_static + ${live_stack:-0}))"
if [ -n "$n_storage" ] && [ "$n_frame" != 0 ]; then
    printf '%-44s %10s B\n' "  network Storage (on the stack), of which:" "$n_storage"
    printf '%-44s %10s B\n' "    TCP/IP: 2 Ethernet frames, TCP windows" "$((2 * n_frame + n_tcp))"
    printf '%-44s %10s B\n' "    TLS: record buffers" "$n_tls"
    printf '%-44s %10s B\n' "    MQTT: packet buffers" "$n_mqtt"
    printf '%-44s %10s B\n' "    state: smoltcp, TLS provider" "$((n_storage - 2 * n_frame - n_tcp - n_tls - n_mqtt))"
    printf '%-44s %10s B\n' "  the Agent value (on the stack)" "$n_agent"
    printf '%-44s %10s B\n' "  call frames (TLS handshake, P-256, ...)" "$((${live_stack:-0} - n_storage - ${n_agent:-0}))"
fi
printf '%-44s %10s B\n' "  heap" "0"
printf '%-44s %10s B\n' "DBM (live) flash (thumbv7em, opt z)" "$dbm_live_flash"
printf '%-44s %10s B\n' "DBM (live) RAM (static $dbm_live_static + stack)" "$((dbm_live_static + ${dbm_live_stack:-0}))"
if [ "$live_icount" = 0 ]; then unit="ticks x 40 (no icount)"; else unit="instructions"; fi
printf '%-44s %12s\n' "live: $unit per downloaded KB (v1.1.0)" "$(lfig per-kb)"
printf '%-44s %12s\n' "  receiving + writing the blocks alone" "$(lfig per-kb-stream)"
printf '%-44s %12s\n' "  last call: read-back hash + 2 signatures" "$(instr_live "$(lfig activate-busy-ticks)")"
printf '%-44s %12s\n' "live: TLS 1.3 handshake (mutual, P-256)" "$(instr_live "$(lfig handshake-busy-ticks)")"
printf '%-44s %10s ms\n' "live: v1.1.0 download, emulated time" "$(lfig download-ms)"
printf '%-44s %10s B\n' "  file downloaded (packed bank image)" "$(lfig bytes)"
printf '%-44s %10s B\n' "  block payloads on the wire" "$(lfig stream-bytes)"
printf '%-44s %10s ms\n' "live: whole scenario, wall time" "$(lfig wall-ms)"
echo "(instructions: SysTick under -icount shift=0, scaled by a calibration loop of $cal_i instructions = $cal_t ticks;"
echo " SHA-256: unrolled on the M7, compact on the CM0+; the harness holds both P-256s)"
echo "(*) <= 2 M for the CM0+ region is out of reach in software on the M7: SHA-256 of 1,020 blocks needs"
echo "    >= ~1,870 instructions per block even with the eight working variables in registers (per round:"
echo "    Sigma0, Sigma1 2 eor each with the outer rotation folded into an add, Ch 3, Maj 3, 7 adds, 1 K load;"
echo "    per scheduled word: sigma0, sigma1 3 each, 3 adds, 4 loads, 1 store), i.e. >= ~1.91 M before the"
echo "    asm P-256's 0.70 M: >= ~2.6 M. The target needs the T2G CRYPTO block's SHA-256 (hardware), which"
echo "    QEMU does not model."
echo "(live: the application's figures from its fig lines; instructions per KB = busy SysTick ticks x 40"
echo " under -icount shift=0 over the v1.1.0 download; RAM split by llvm-nm symbol sizes, the stack by painting)"
echo "(*2) the seed's libraries as AWS publishes them (GCC for Cortex-M, code only: coreMQTT's size table in the"
echo "    FreeRTOS user guide, aws/ota-for-aws-iot-embedded-sdk docs/doxygen/include/size_table.md); lwIP and"
echo "    mbedTLS publish no single figure (it depends on their configuration), so none is set beside ours"
if [ -n "$LIVE_FAILED" ]; then
    echo
    echo "$LIVE_FAILED"
fi
exit $status
