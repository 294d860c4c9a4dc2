#!/usr/bin/env bash
# The distributed deployment on this machine (docs/DEPLOY.md): PostgreSQL, a three-node RabbitMQ
# cluster and two Ferrota workers on loopback, in ./ferrota-cluster (or $FERROTA_CLUSTER_DIR).
#   scripts/cluster.sh up       start everything and leave it running; prints the addresses
#   scripts/cluster.sh status   which processes run
#   scripts/cluster.sh down     stop everything (add --purge to delete the directory)
# Needs Debian's postgresql and rabbitmq-server (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
cmd="${1:-}"
case "$cmd" in
    up|down|status) shift ;;
    *) echo "usage: scripts/cluster.sh up|down|status [ferrota cluster options]" >&2; exit 2 ;;
esac
cargo build --release -q -p ferrota-cli
exec target/release/ferrota cluster "$cmd" --dir "${FERROTA_CLUSTER_DIR:-ferrota-cluster}" "$@"
