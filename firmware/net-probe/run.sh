#!/usr/bin/env bash
# Runs the net probe against a fresh `ferrota serve` on 127.0.0.1 (development helper).
#
#   firmware/net-probe/run.sh PROBE.elf [BOOTS] [ICOUNT] [FWD]
#
# BOOTS: boots in one QEMU process (the probe resets itself in between; default 1).
# ICOUNT: extra QEMU options, e.g. "-icount shift=0" (default none).
# FWD: "tcp" (guestfwd to a tcp chardev, the default: one connection per QEMU process), "cmd"
# (guestfwd to a command per connection: socat) or "bash" (the same with bash's /dev/tcp).
# KEEP_ALIVE (environment): the MQTT keep-alive provisioned, seconds (1..5: the probe then idles
# for three of them and reports the pings).
# Needs FERROTA (the ferrota CLI), qemu-system-arm, openssl, python3 (and socat for "cmd").
set -euo pipefail
ELF=$(realpath "$1")
BOOTS=${2:-1}
ICOUNT=${3:-}
FWD=${4:-tcp}
FERROTA=${FERROTA:-ferrota}
HERE=$(cd "$(dirname "$0")" && pwd)
W=$(mktemp -d /tmp/ferrota-net-probe-XXXXXX)
cleanup() { [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
cd "$W"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MQTT=$(port)
HTTP=$(port)
printf 'data_dir = "data"\nmqtt_listen = "127.0.0.1:%s"\nhttp_listen = "127.0.0.1:%s"\n' "$MQTT" "$HTTP" > ferrota.toml
"$FERROTA" serve -c ferrota.toml > server.log 2>&1 &
SERVER=$!
for _ in $(seq 100); do grep -q '^http ' server.log && break; sleep 0.1; done
"$FERROTA" thing create dev-1 -c ferrota.toml -o bundle > /dev/null
python3 "$HERE/provision.py" bundle/dev-1 prov.bin 8883 "${KEEP_ALIVE:-60}" > /dev/null
case $FWD in
    tcp) GF="guestfwd=tcp:192.0.2.100:8883-tcp:127.0.0.1:$MQTT" ;;
    cmd) GF="guestfwd=tcp:192.0.2.100:8883-cmd:socat - TCP:127.0.0.1:$MQTT" ;;
    bash) GF="guestfwd=tcp:192.0.2.100:8883-cmd:bash -c 'exec 3<>/dev/tcp/127.0.0.1/$MQTT; cat <&3 & cat >&3'" ;;
esac
# shellcheck disable=SC2086
timeout 300 qemu-system-arm -machine mps2-an500 -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native $ICOUNT -kernel "$ELF" \
    -device loader,file=prov.bin,addr=0x60860000 \
    -device loader,addr=0x60870004,data="$BOOTS",data-len=4 \
    -nic "user,net=192.0.2.0/24,host=192.0.2.2,restrict=on,$GF"
status=$?
grep -E 'connected|disconnected|refused' server.log | sed 's/^/server: /' || true
exit $status
