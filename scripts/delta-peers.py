#!/usr/bin/env python3
"""The peers of `ferrota bench delta`: patch sizes of detools and bsdiff4 for one image pair.

    python3 scripts/delta-peers.py OLD NEW WORKDIR

Prints one JSON object: {"detools_lzma": bytes, "detools_heatshrink": bytes, "bsdiff4": bytes,
"versions": {...}}, each patch applied back to OLD and checked equal to NEW (a wrong patch is
an error, never a size). A missing module is reported as {"missing": "detools"} (exit 0) so the
bench can print a one-line note; install them with `python3 -m pip install detools bsdiff4`.

detools runs as `detools create_patch --compression lzma|heatshrink` does: a sequential patch,
the default bsdiff algorithm and divsufsort, default heatshrink window (8) and lookahead (7).
The bench embeds this file (include_str!) and runs it with `python3 -c`.
"""
import json
import os
import sys


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    old, new, work = sys.argv[1:]
    try:
        import detools
    except ImportError:
        print(json.dumps({"missing": "detools"}))
        return 0
    try:
        import bsdiff4
    except ImportError:
        print(json.dumps({"missing": "bsdiff4"}))
        return 0
    with open(new, "rb") as f:
        want = f.read()
    out = {
        "versions": {
            "detools": getattr(detools, "__version__", "?"),
            "bsdiff4": getattr(bsdiff4, "__version__", "?"),
        }
    }
    for compression in ("lzma", "heatshrink"):
        patch = os.path.join(work, "detools-" + compression + ".patch")
        with open(old, "rb") as fo, open(new, "rb") as fn, open(patch, "wb") as fp:
            detools.create_patch(fo, fn, fp, compression=compression)
        rebuilt = os.path.join(work, "detools-" + compression + ".out")
        with open(old, "rb") as fo, open(patch, "rb") as fp, open(rebuilt, "wb") as fr:
            detools.apply_patch(fo, fp, fr)
        with open(rebuilt, "rb") as f:
            if f.read() != want:
                raise SystemExit("detools " + compression + ": the patch does not rebuild NEW")
        out["detools_" + compression] = os.path.getsize(patch)
    patch = os.path.join(work, "bsdiff4.patch")
    bsdiff4.file_diff(old, new, patch)
    rebuilt = os.path.join(work, "bsdiff4.out")
    bsdiff4.file_patch(old, rebuilt, patch)
    with open(rebuilt, "rb") as f:
        if f.read() != want:
            raise SystemExit("bsdiff4: the patch does not rebuild NEW")
    out["bsdiff4"] = os.path.getsize(patch)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
