#!/usr/bin/env bash
# The main job, on embedded defaults (no external service): build the `ferrota` tool and walk
# through the life of a signed bank image, from keys to a tampered image being refused.
# Everything is written under target/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "building the ferrota tool (release)"
cargo build --release --quiet -p ferrota-cli
ferrota="$PWD/target/release/ferrota"
ferrota() { "$ferrota" "$@"; }

work=target/demo
rm -rf "$work" && mkdir -p "$work" && cd "$work"

say "1. keys: a boot key (its public half is provisioned in SFlash) and an OTA code-signing key"
run ferrota key generate -o boot.pem
run ferrota key public boot.pem --format sflash -o sflash-key.bin
run ferrota key public boot.pem --format c-array | head -3
run ferrota key generate -o signer.pem
run ferrota cert code-signing --key signer.pem --cn "Ferrota demo code signing" -o signer.crt

say "2. three core builds (stand-ins for the ModusToolbox outputs: raw binaries at their load addresses)"
# A vector table (initial SP, reset handler) followed by seeded "code".
mkcore() { # file base-address bytes
    python3 - "$@" <<'PY'
import random, struct, sys
path, base, n = sys.argv[1], int(sys.argv[2], 16), int(sys.argv[3])
rng = random.Random(base)
body = struct.pack("<II", 0x28020000, base + 0x201) + bytes(rng.getrandbits(8) for _ in range(n - 8))
open(path, "wb").write(body)
PY
}
mkcore cm0p.bin 0x10000100 12288
mkcore cm7_0.bin 0x10010100 262144
mkcore cm7_1.bin 0x103E8100 2048
ls -l cm0p.bin cm7_0.bin cm7_1.bin

say "3. pack and sign a bank image (version 1.2.0, anti-rollback counter 3)"
run ferrota image pack --cm0p cm0p.bin@0x10000100 --cm7-0 cm7_0.bin@0x10010100 --cm7-1 cm7_1.bin@0x103E8100 \
    --version 1.2.0 --security-counter 3 --hardware KIT_T2G-B-H_LITE --boot-key boot.pem -o bank.bin
run ferrota image show bank.bin

say "4. sign the file for OTA, as AWS code signing does (ECDSA P-256, DER, base64)"
run ferrota image sign-ota bank.bin --key signer.pem
run ferrota image verify bank.bin --boot-key sflash-key.bin --ota-signature bank.bin.sig --cert signer.crt

if command -v openssl >/dev/null; then
    say "5. the same OTA signature checked by OpenSSL"
    openssl base64 -d -A -in bank.bin.sig -out bank.bin.sig.der
    openssl x509 -in signer.crt -pubkey -noout > signer.pub
    run openssl dgst -sha256 -verify signer.pub -signature bank.bin.sig.der bank.bin
fi

say "6. one flipped byte in CM7_0 is refused, naming the region and the offset"
cp bank.bin tampered.bin
printf '\x42' | dd of=tampered.bin bs=1 seek=$((0x20000)) conv=notrunc status=none
if ferrota image verify tampered.bin --boot-key sflash-key.bin; then
    echo "demo failed: a tampered image verified" >&2; exit 1
else
    echo "(refused, as it must be)"
fi

say "done: the files are in $(pwd)"
