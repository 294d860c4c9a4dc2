#!/usr/bin/env python3
"""Writes the probe's provisioning block (ferrota-qemu-harness `provision`) from a
`ferrota thing create` bundle, with openssl for the PEM conversions.

    provision.py BUNDLE_DIR OUT.bin [GUEST_PORT [KEEP_ALIVE]]

A development helper for the net probe only: the live run's provisioning is the host
harness's (`crates/qemu-harness/src/provision.rs`, `encode`)."""
import os
import re
import struct
import subprocess
import sys


def der(pem_path, kind):
    return subprocess.check_output(["openssl", kind, "-in", pem_path, "-outform", "DER"])


def main():
    bundle, out = sys.argv[1], sys.argv[2]
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 8883
    keep_alive = int(sys.argv[4]) if len(sys.argv) > 4 else 60
    toml = open(os.path.join(bundle, "device.toml")).read()
    field = lambda k: re.search(rf'^{k}\s*=\s*"([^"]*)"', toml, re.M).group(1)
    thing, endpoint = field("thing_name"), field("endpoint")
    key_pem = os.path.join(bundle, field("client_key"))
    text = subprocess.check_output(["openssl", "pkey", "-in", key_pem, "-noout", "-text"]).decode()
    priv = re.search(r"priv:\s*((?:[0-9a-f]{2}:?\s*)+)pub:", text).group(1)
    scalar = bytes.fromhex(re.sub(r"[^0-9a-f]", "", priv))[-32:].rjust(32, b"\0")
    # The probe never checks an OTA signature: any P-256 point stands for the code-signing key.
    spki = subprocess.check_output(["openssl", "pkey", "-in", key_pem, "-pubout", "-outform", "DER"])
    fields = [
        thing.encode(),
        endpoint.encode(),
        der(os.path.join(bundle, field("client_cert")), "x509"),
        scalar,
        der(os.path.join(bundle, field("root_ca")), "x509"),
        spki[-65:],
        b"",
        b"",
    ]
    body = bytes([192, 0, 2, 100]) + struct.pack("<HH", port, keep_alive) + os.urandom(32)
    for f in fields:
        body += struct.pack("<H", len(f)) + f
    block = b"FQLP" + struct.pack("<I", 8 + len(body)) + body
    open(out, "wb").write(block)
    print(f"{out}: {len(block)} bytes, thing {thing}, server name {endpoint}")


main()
