#!/usr/bin/env bash
# The whole Ferrota system in one command: builds the `ferrota` binary (release) and runs
# `ferrota demo` — a fleet CA and the OTA server in-process on loopback ports chosen at run
# time, a simulated TRAVEO T2G board (ROM -> DBM -> CM0+ -> CM7 with the OTA agent over
# MQTT/mutual TLS), seven OTA scenarios, and a table. No external service; a temporary
# directory. Exits non-zero if any step does not behave as shown.
set -euo pipefail
cd "$(dirname "$0")/.."
# The release build prints nothing while it compiles; say so first, so a silent terminal is not
# taken for a hang.
echo "demo: building ferrota (cargo build --release -p ferrota-cli): the first build takes a few minutes, later ones seconds" >&2
cargo build --release --quiet -p ferrota-cli
echo "demo: built; running ferrota demo" >&2
exec ./target/release/ferrota demo "$@"
