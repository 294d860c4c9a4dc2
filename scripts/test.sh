#!/usr/bin/env bash
# Every check a change must pass: formatting, lints, the no_std guarantee of the core crates,
# and the whole test suite. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Property tests are seeded, so a run is repeatable; set PROPTEST_RNG_SEED to explore others.
export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261125}"

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (workspace, all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "core crates are no_std: no std or alloc feature reaches their dependency graphs"
# (read in full before grep: `cmd | grep -q` under pipefail fails when grep's early exit SIGPIPEs cmd)
members=$(cargo metadata --format-version 1 --no-deps)
for crate in ferrota-image ferrota-boot ferrota-proto ferrota-agent ferrota-delta ferrota-manifest; do
    if grep -q "\"name\":\"$crate\"" <<<"$members"; then
        if cargo tree -p "$crate" --no-default-features -e normal,features --prefix none \
            | grep -E ' feature "(std|alloc)"' ; then
            echo "error: $crate pulls std/alloc into its no_std build (see above)" >&2
            exit 1
        fi
        # `check`, not `build`: it proves the crate compiles without std (no codegen: the
        # dependencies' no-default-features builds cost a minute of CI's CPU otherwise).
        cargo check -q -p "$crate" --no-default-features
        echo "$crate: no_std check ok"
    fi
done
# The C API (crates/agent-ffi) as an rlib: its staticlib needs a target with panic=abort (the MCU).
if cargo tree -p ferrota-agent-ffi --no-default-features -e normal,features --prefix none \
    | grep -E ' feature "(std|alloc)"' ; then
    echo "error: ferrota-agent-ffi pulls std/alloc into its no_std build (see above)" >&2
    exit 1
fi
cargo rustc -q -p ferrota-agent-ffi --no-default-features --lib --crate-type rlib --profile check
echo "ferrota-agent-ffi: no_std check ok"

step "tests"
# Engines some tests start privately; without them those tests skip (CI sets
# FERROTA_REQUIRE_INFRA=1, which makes a missing engine fail instead).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 ||
    echo "note: PostgreSQL is not installed: the PostgreSQL store and lease tests skip (apt-get install postgresql)"
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] ||
    echo "note: RabbitMQ is not installed: the broker cluster tests skip (apt-get install rabbitmq-server)"
# What `cargo test --workspace` runs, two test binaries at a time (scripts/test-binaries.py says
# why, and why not nextest): extra arguments after `--` go to every binary.
./scripts/test-binaries.py

step "the C API end to end: examples/c-agent against ferrota serve (scripts/c-agent-check.sh)"
# The C program built against the libferrota_agent_ffi.a and run with the ferrota that cargo test
# just built: an update to SUCCEEDED and a tampered image, a few seconds. Skips with a note
# without cc, pkg-config or libmosquitto-dev; fails then under FERROTA_REQUIRE_INFRA=1.
./scripts/c-agent-check.sh --from-workspace-tests

step "the operator's console in headless Chromium (scripts/browser-test.sh)"
# Uses the ferrota that cargo test just built; skips with a note without chromium or
# playwright-core (npm ci --prefix tests/browser), fails then under FERROTA_REQUIRE_INFRA=1.
./scripts/browser-test.sh

echo
echo "all checks passed"
