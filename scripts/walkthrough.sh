#!/usr/bin/env bash
# Runs the README's walkthrough ("The same by hand") exactly as written, the way a newcomer who
# copies it would, and fails (non-zero, naming the README line) when any of its commands fails.
#
#   scripts/walkthrough.sh                 # the README of this checkout
#   scripts/walkthrough.sh --readme FILE   # another copy of it (e.g. while editing)
#
# What it does:
# * extracts the shell block(s) between the `<!-- walkthrough:begin -->` and
#   `<!-- walkthrough:end -->` lines of the README, verbatim; each line keeps its README line
#   number, so the trace (`+ README.md:123: ...`) and a failure name the line;
# * puts `ferrota` built from this checkout (debug: `cargo build -p ferrota-cli`, or
#   $FERROTA_WALKTHROUGH_BIN) first on the PATH, and answers the block's
#   `cargo install [--locked] --path crates/cli` with that build instead of a release install
#   (minutes);
#   every other command runs as written;
# * first starts a SECOND `ferrota serve` of its own on the default ports (MQTT 8883, HTTP 8080;
#   $FERROTA_WALKTHROUGH_DECOY_MQTT / _HTTP to move it), so the walkthrough's server must listen
#   elsewhere, and every command that should reach it but falls back to a default address hits
#   the wrong server and fails; afterwards that server must have seen no thing and no OTA update;
# * runs the block with bash -e -o pipefail from the checkout's root, with a fresh TMPDIR (the
#   block's `mktemp -d`), an empty XDG_CONFIG_HOME and no FERROTA_* variables (a fresh machine's
#   environment; FERROTA_CROSS_DIR, the cross toolchain's cache, is kept), under a time limit
#   ($FERROTA_WALKTHROUGH_TIMEOUT seconds, default 900);
# * stops whatever the block left running in the background, checks that the checkout's
#   `git status` did not change, and removes its temporary directory unless something failed.
#
# Needs arm-none-eabi-gcc for the sample firmware (see scripts/sample-firmware.sh); `.ci/run`
# runs this after scripts/firmware-check.sh has set the project's cross toolchain up.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
README=$REPO/README.md

while (($#)); do
    case "$1" in
    --readme) README="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift 2 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "walkthrough: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
NAME=$(basename "$README")
say() { echo "walkthrough: $*" >&2; }

# --- the block, verbatim, at its README line numbers --------------------------------------
begin=$(grep -n -x '<!-- walkthrough:begin -->' "$README" | cut -d: -f1 || true)
end=$(grep -n -x '<!-- walkthrough:end -->' "$README" | cut -d: -f1 || true)
if [ "$(wc -w <<<"$begin")" != 1 ] || [ "$(wc -w <<<"$end")" != 1 ] || ((end <= begin)); then
    say "$NAME needs exactly one '<!-- walkthrough:begin -->' line and one '<!-- walkthrough:end -->' line after it"
    exit 1
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/ferrota-walkthrough.XXXXXX")
KEEP=
DECOY=
stop_decoy() {
    if [ -n "$DECOY" ] && kill -0 "$DECOY" 2>/dev/null; then
        kill "$DECOY"
        wait "$DECOY" || true
    fi
    DECOY=
}
trap 'stop_decoy; [ -n "$KEEP" ] || rm -rf "$T"' EXIT
SCRIPT=$T/walkthrough.sh
# Line 1: the prologue. Lines 2..: blank, except the lines of the fenced ```sh blocks between
# the markers, copied as they are, so that $LINENO in the script is the README's line number.
{
    # shellcheck disable=SC2016 # expanded by the walkthrough's shell, not here
    printf '%s\n' 'set -eE -o pipefail; trap '\''{ set +x; } 2>/dev/null; if [ -n "${FUNCNAME[0]:-}" ]; then echo "${BASH_LINENO[0]}"; else echo "$LINENO"; fi >"$WALKTHROUGH_FAILED"'\'' ERR; trap '\''{ set +x; } 2>/dev/null; j=$(jobs -p); [ -z "$j" ] || kill $j 2>/dev/null || true'\'' EXIT; cargo() { { set +x; } 2>/dev/null; if [ "$*" = "install --locked --path crates/cli" ] || [ "$*" = "install --path crates/cli" ]; then echo "(walkthrough: not installing; ferrota is this checkout'\''s build: $(command -v ferrota))"; set -x; else set -x; command cargo "$@"; fi; }; PS4="+ $WALKTHROUGH_README:\${LINENO}: "; set -x'
    awk -v b="$begin" -v e="$end" '
        NR == 1 { next }
        NR <= b || NR >= e { print ""; next }
        /^```/ { inblock = !inblock; blocks += inblock; print ""; next }
        inblock { print; lines++; next }
        { print "" }
        END { if (blocks == 0 || lines == 0 || inblock) exit 1 }
    ' "$README"
} >"$SCRIPT" || {
    say "$NAME: no complete \`\`\`sh block between the walkthrough markers (lines $begin..$end)"
    exit 1
}

# --- ferrota from this checkout --------------------------------------------------------------
if [ -n "${FERROTA_WALKTHROUGH_BIN:-}" ]; then
    BIN=$FERROTA_WALKTHROUGH_BIN
else
    say "building ferrota (cargo build -p ferrota-cli)"
    cargo build -q -p ferrota-cli
    BIN=${CARGO_TARGET_DIR:-$REPO/target}/debug/ferrota
fi
[ -x "$BIN" ] || { say "no ferrota binary at $BIN"; exit 1; }
mkdir -p "$T/bin"
ln -s "$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")" "$T/bin/ferrota"

# --- a fresh machine's environment ------------------------------------------------------------
for v in $(compgen -e | grep '^FERROTA_' || true); do
    case "$v" in
    FERROTA_CROSS_DIR | FERROTA_WALKTHROUGH_*) ;;
    *) unset "$v" ;;
    esac
done
mkdir -p "$T/tmp" "$T/xdg-config" "$T/decoy"
export XDG_CONFIG_HOME=$T/xdg-config
export NO_COLOR=1
export PATH="$T/bin:$PATH"

# --- the second server -------------------------------------------------------------------------
DECOY_MQTT=${FERROTA_WALKTHROUGH_DECOY_MQTT:-127.0.0.1:8883}
DECOY_HTTP=${FERROTA_WALKTHROUGH_DECOY_HTTP:-127.0.0.1:8080}
(cd "$T/decoy" && exec ferrota serve --data-dir "$T/decoy/data" --mqtt-listen "$DECOY_MQTT" \
    --http-listen "$DECOY_HTTP") >"$T/decoy/server.log" 2>&1 &
DECOY=$!
for _ in $(seq 100); do
    grep -q '^http ' "$T/decoy/server.log" && break
    kill -0 "$DECOY" 2>/dev/null || break
    sleep 0.1
done
if ! grep -q '^http ' "$T/decoy/server.log"; then
    cat "$T/decoy/server.log" >&2
    say "the second server (MQTT $DECOY_MQTT, HTTP $DECOY_HTTP) did not start; set FERROTA_WALKTHROUGH_DECOY_MQTT/_HTTP to free addresses"
    exit 1
fi
say "second server running: MQTT $DECOY_MQTT, HTTP $DECOY_HTTP (data in $T/decoy)"

# --- the walkthrough ---------------------------------------------------------------------------
status_before=$(git -C "$REPO" status --porcelain 2>/dev/null || true)
say "running $NAME lines $begin..$end in $REPO (TMPDIR=$T/tmp)"
set +e
WALKTHROUGH_FAILED=$T/failed WALKTHROUGH_README=$NAME TMPDIR=$T/tmp \
    timeout --kill-after=10 "${FERROTA_WALKTHROUGH_TIMEOUT:-900}" bash "$SCRIPT"
rc=$?
set -e

fail() {
    # The logs the block wrote (a background server's, say) often hold the reason.
    while IFS= read -r log; do
        say "${log#"$T/tmp/"} (last lines):"
        tail -n 15 "$log" | sed 's/^/    /' >&2
    done < <(find "$T/tmp" -maxdepth 3 -name '*.log' -type f 2>/dev/null | sort)
    if [ -n "${status_before+x}" ] && [ "$status_before" != "$(git -C "$REPO" status --porcelain 2>/dev/null || true)" ]; then
        say "note: the walkthrough also changed the checkout (git status --porcelain):"
        { diff <(echo "$status_before") <(git -C "$REPO" status --porcelain 2>/dev/null) || true; } | sed -n 's/^> /    /p' >&2
    fi
    say "FAILED: $*"
    say "files kept in $T"
    KEEP=1
    exit 1
}
if ((rc != 0)); then
    if [ -s "$T/failed" ]; then
        line=$(cat "$T/failed")
        # A command continued over several lines with '\' is reported at its last line: name its first.
        while ((line > begin + 1)) && sed -n "$((line - 1))p" "$README" | grep -q '\\$'; do
            line=$((line - 1))
        done
        fail "$NAME line $line (exit $rc): $(sed -n "${line}p" "$README")"
    elif ((rc == 124 || rc == 137)); then
        fail "time limit of ${FERROTA_WALKTHROUGH_TIMEOUT:-900} s reached (see the trace above for the last command)"
    else
        fail "exit $rc (see the trace above)"
    fi
fi

# --- the second server saw nothing; the checkout is as it was --------------------------------
things=$(ferrota thing list --data-dir "$T/decoy/data" 2>&1) || fail "thing list on the second server: $things"
[ -z "$things" ] || fail "the walkthrough created things on the second server (default ports): $things"
token=$(cat "$T/decoy/data/api-token")
updates=$(ferrota ota list --api "http://$DECOY_HTTP" --token "$token" --data-dir "$T/decoy/data" 2>&1) ||
    fail "ota list on the second server: $updates"
if grep -q '"otaUpdateId"' <<<"$updates"; then
    fail "the walkthrough created OTA updates on the second server (default ports): $updates"
fi
stop_decoy
if [ "$status_before" != "$(git -C "$REPO" status --porcelain 2>/dev/null || true)" ]; then
    fail "the walkthrough wrote into the checkout; its files belong in the directory it makes"
fi
say "ok: every command of $NAME lines $begin..$end ran, beside a second server on $DECOY_MQTT / $DECOY_HTTP"
