#!/usr/bin/env bash
# Schemathesis (PyPI `schemathesis`, 4.x) against the OpenAPI document of a real `ferrota serve`:
# every operation of GET /api/openapi.json is called with generated valid and invalid input,
# as the bootstrap admin, and must never answer a server error (5xx) and always answer what the
# document says (status, content type and JSON schema of the body).
#
# Usage: scripts/schemathesis.sh [extra schemathesis options]
#   FERROTA                  the ferrota binary (default: target/debug/ferrota, or
#                            $CARGO_TARGET_DIR/debug/ferrota)
#   FERROTA_SCHEMATHESIS_EXAMPLES   test cases per operation (default 25)
#   FERROTA_SCHEMATHESIS_TIME       time budget of the run, seconds (default 60)
#   FERROTA_SCHEMATHESIS_SEED       the generator's seed (default 18: a run is repeatable)
#   FERROTA_REQUIRE_INFRA=1  a missing schemathesis fails (CI); otherwise it is said and skipped
#
# The server runs on free loopback ports (the system picks them: port 0) in a temporary data
# directory, removed afterwards with the server stopped. The run is bounded: a fixed number of
# examples per operation and a time budget well under two minutes on two cores. A failure
# prints schemathesis's report (with a curl line reproducing each case) and the server's log.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FERROTA:-${CARGO_TARGET_DIR:-$REPO/target}/debug/ferrota}
EXAMPLES=${FERROTA_SCHEMATHESIS_EXAMPLES:-25}
BUDGET=${FERROTA_SCHEMATHESIS_TIME:-60}
SEED=${FERROTA_SCHEMATHESIS_SEED:-18}

say() { echo "schemathesis.sh: $*" >&2; }

if ! command -v schemathesis >/dev/null 2>&1; then
    if [ "${FERROTA_REQUIRE_INFRA:-}" = 1 ]; then
        say "schemathesis is not installed (pip install schemathesis) and FERROTA_REQUIRE_INFRA=1"
        exit 1
    fi
    say "schemathesis is not installed (pip install schemathesis); skipped"
    exit 0
fi
[ -x "$BIN" ] || {
    say "no ferrota binary at $BIN (cargo build -p ferrota-cli, or set FERROTA)"
    exit 1
}

T=$(mktemp -d)
SERVER=
stop() {
    if [ -n "$SERVER" ]; then
        kill "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
        SERVER=
    fi
    rm -rf "$T"
}
trap stop EXIT

# A clean environment for the server: no FERROTA_* of the caller's shell (its config, data
# directory or token) applies.
for v in $(compgen -e | grep '^FERROTA_' || true); do unset "$v"; done
export XDG_CONFIG_HOME=$T/xdg-config NO_COLOR=1

(cd "$T" && exec "$BIN" serve --data-dir "$T/data" --mqtt-listen 127.0.0.1:0 \
    --http-listen 127.0.0.1:0) >"$T/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 300); do
    grep -q '^http ' "$T/server.log" && break
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.1
done
HTTP=$(sed -n 's/^http //p' "$T/server.log" | head -1)
if [ -z "$HTTP" ]; then
    cat "$T/server.log" >&2
    say "ferrota serve did not start"
    exit 1
fi
TOKEN=$(cat "$T/data/api-token")

# Something to find: the document's path examples name these (thing dev-1, group old-kits, OTA
# update rel-1 and its job), so the generated requests reach real records, not only 404s. Made
# with the remote CLI, by URL and token.
seed() {
    "$BIN" "$@" --server "http://$HTTP" --token "$TOKEN" >>"$T/seed.log" 2>&1 || {
        cat "$T/seed.log" >&2
        say "seeding failed: ferrota $*"
        exit 1
    }
}
printf 'a data file, not firmware\n' >"$T/data.bin"
echo 'MAYCAQECAQE=' >"$T/data.bin.sig" # a well-formed DER ECDSA signature (r = s = 1)
seed thing create dev-1 --group lab --attribute model=KIT_T2G -o "$T/bundles"
seed group create old-kits --query 'attributes.model:KIT_T2G'
seed ota create rel-1 --file "$T/data.bin" --file-type 7 --thing dev-1
say "ferrota serve on http://$HTTP (data in $T); $EXAMPLES examples per operation, at most ${BUDGET}s, seed $SEED"

set +e
(cd "$T" && schemathesis --no-color run "http://$HTTP/api/openapi.json" \
    --header "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$EXAMPLES" \
    --max-time "$BUDGET" \
    --request-timeout 10 \
    --workers 2 \
    --seed "$SEED" \
    --suppress-health-check all \
    --generation-database none \
    "$@")
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
    say "schemathesis found failures (exit $rc); the server's log:"
    tail -50 "$T/server.log" >&2
    exit "$rc"
fi
kill -0 "$SERVER" 2>/dev/null || {
    cat "$T/server.log" >&2
    say "the server died during the run"
    exit 1
}
say "ok: no server error, every answer as the document says"
