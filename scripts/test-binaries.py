#!/usr/bin/env python3
"""Runs the workspace's test binaries two at a time (what `cargo test --workspace` runs one
after another), then the doctests.

Why: on the 2-core CI machine about half of the test binaries' wall time is waiting (RabbitMQ
and PostgreSQL starting, servers answering, browsers), while `cargo test` runs one binary at a
time. Running two binaries at once fills that time: measured on this machine under the same
load, 409 s one at a time, 207 s two at a time (about 240 s of CPU either way).

Why not cargo-nextest: it runs every test in a process of its own, and the suites share their
expensive fixtures per process (one PostgreSQL and one SeaweedFS per binary in ferrota-infra,
keys and signed images in ferrota-sim, the lab's boot chains); per test, those would start
hundreds of times. Binary-level parallelism keeps them shared.

    scripts/test-binaries.py [--jobs N] [-- ARGS]   # ARGS go to every test binary

Each binary runs as `cargo test` runs it: in its package's directory, with CARGO_MANIFEST_DIR
and CARGO_PKG_NAME set, `-q` and ARGS. Its output is printed whole when it ends, so the log
reads one binary at a time. The slowest binaries start first (a fixed list of the known slow
ones, then the rest in cargo's order). Exit status 1 if any binary or the doctests failed.
"""

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

# Started first, longest first (wall seconds measured under load, 2026-12-07): the lab (121),
# the CLI (102), the server (49), RabbitMQ (34), the agent's trust sweep (27), the infra crate's
# unit tests (24), the bench crate's unit tests (16), the proto robustness tests (12).
SLOW_FIRST = [
    ("ferrota-lab", "lab"),
    ("ferrota-cli", "cli"),
    ("ferrota-server", "server"),
    ("ferrota-infra", "rabbitmq"),
    ("ferrota-agent", "trust"),
    ("ferrota-infra", "ferrota_infra"),
    ("ferrota-bench", "ferrota_bench"),
    ("ferrota-proto", "robustness"),
]


def test_binaries():
    """Builds every test target (as `cargo test --no-run`) and returns what cargo built."""
    out = subprocess.run(
        ["cargo", "test", "--workspace", "--no-run", "--quiet",
         "--message-format=json-render-diagnostics"],
        stdout=subprocess.PIPE, check=False, text=True,
    )
    if out.returncode != 0:
        sys.exit("error: the test targets did not build (cargo's messages above)")
    bins = []
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if not msg["profile"]["test"]:
            continue
        bins.append({
            "package": package_name(msg),
            "target": msg["target"]["name"],
            "kind": msg["target"]["kind"][0],
            "exe": msg["executable"],
            "dir": os.path.dirname(msg["manifest_path"]),
        })
    rank = {key: i for i, key in enumerate(SLOW_FIRST)}
    bins.sort(key=lambda b: rank.get((b["package"], b["target"]), len(rank)))
    return bins


def package_name(msg):
    """The package's name: the manifest's directory does not always carry it."""
    pid = msg["package_id"]
    # "path+file:///.../crates/server#ferrota-server@0.1.0" (cargo >= 1.77)
    if "#" in pid:
        tail = pid.rsplit("#", 1)[1]
        return tail.split("@", 1)[0]
    return pid.split(" ", 1)[0]


def main():
    args = sys.argv[1:]
    jobs = 2
    if args and args[0] == "--jobs":
        if len(args) < 2 or not args[1].isdigit() or int(args[1]) < 1:
            sys.exit("usage: scripts/test-binaries.py [--jobs N>=1] [-- ARGS]")
        jobs = int(args[1])
        args = args[2:]
    if args and args[0] == "--":
        args = args[1:]
    bins = test_binaries()
    lock = threading.Lock()
    failed = []

    def run(b):
        env = dict(os.environ, CARGO_MANIFEST_DIR=b["dir"], CARGO_PKG_NAME=b["package"])
        start = time.monotonic()
        p = subprocess.run([b["exe"], "-q", *args], cwd=b["dir"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           errors="replace", check=False)
        took = time.monotonic() - start
        with lock:
            print(f"\n-- {b['package']} {b['kind']} {b['target']} ({took:.1f} s)", flush=True)
            sys.stdout.write(p.stdout)
            sys.stdout.flush()
            if p.returncode != 0:
                failed.append(f"{b['package']} {b['kind']} {b['target']} (exit {p.returncode})")

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(run, bins))

    print("\n-- doctests (cargo test --workspace --doc)", flush=True)
    doc = subprocess.run(["cargo", "test", "--workspace", "--doc", "--quiet", "--", *args],
                         check=False)
    if doc.returncode != 0:
        failed.append("doctests")

    if failed:
        print("\nerror: failed: " + "; ".join(failed), file=sys.stderr)
        return 1
    print(f"\nevery test binary passed ({len(bins)} binaries, then the doctests)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
