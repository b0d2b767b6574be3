#!/usr/bin/env python3
"""Runs the workspace's tests like `cargo test --workspace`, but several test binaries at a time.

    scripts/run-tests.py [--jobs N] [-- ARGS...]

`cargo test` runs its test binaries one after another. Many of strata's wait more than they
compute (real etcd clusters, S3/Azure/WebDAV servers, fsyncs, child CLI processes), so on a
2-core CI machine one binary at a time leaves a core idle for much of the step. This script
builds every test binary (`cargo test --workspace --no-run`), runs N of them at once (default 3),
each in its package's directory as cargo would, and prints each binary's whole output when it
ends, so outputs never interleave. Then it runs the doc tests (`cargo test --workspace --doc`).
ARGS go to every test binary (a name filter, `--nocapture`, ...).

Exits non-zero if a build, a binary or the doc tests failed, after running everything else,
and names what failed. The slowest binaries are listed at the end.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

# Started first, so the longest binaries do not end the step alone (measured on the 2-core CI
# machine; a name missing here only starts later).
SLOW_FIRST = [
    "storage_servers",
    "storage_backups",
    "resume",
    "etcd",
    "etcd_workers",
    "lsm_store",
    "cli",
    "kv_conformance",
    "strata_tests",
    "etcd_cli",
]


def test_binaries():
    """Builds the test binaries; returns (name, src_path, executable, package dir) for each."""
    cmd = ["cargo", "test", "--workspace", "--no-run", "--message-format=json-render-diagnostics"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    found = []
    for line in proc.stdout:
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("reason") != "compiler-artifact" or not msg.get("profile", {}).get("test"):
            continue
        exe = msg.get("executable")
        if not exe:
            continue
        target = msg["target"]
        found.append((target["name"], target["src_path"], exe, os.path.dirname(msg["manifest_path"])))
    if proc.wait() != 0:
        sys.exit(f"error: `{' '.join(cmd)}` failed")
    return found


def order(binaries):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    return sorted(binaries, key=lambda b: (rank.get(b[0], len(SLOW_FIRST)), b[2]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("STRATA_TEST_JOBS", "3")))
    parser.add_argument("args", nargs="*")
    opts = parser.parse_args()

    binaries = order(test_binaries())
    print(f"running {len(binaries)} test binaries, {opts.jobs} at a time", flush=True)
    lock = threading.Lock()
    results = []

    def run(binary):
        name, src, exe, cwd = binary
        started = time.monotonic()
        proc = subprocess.run([exe, *opts.args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)
        seconds = time.monotonic() - started
        rel = os.path.relpath(src, cwd)
        with lock:
            sys.stdout.write(f"     Running {rel} ({os.path.relpath(exe)}) [{seconds:.1f}s]\n")
            sys.stdout.write(proc.stdout.decode(errors="replace"))
            if proc.returncode != 0:
                sys.stdout.write(f"error: test binary {os.path.relpath(exe)} ({rel}) failed: exit status {proc.returncode}\n")
            sys.stdout.flush()
            results.append((seconds, f"{os.path.basename(cwd)}: {rel}", proc.returncode))

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
        list(pool.map(run, binaries))
    print(f"test binaries: {time.monotonic() - started:.1f}s of wall time", flush=True)

    print("   Doc-tests (cargo test --workspace --doc)", flush=True)
    doc = subprocess.run(["cargo", "test", "--workspace", "--doc"], stdin=subprocess.DEVNULL)

    print("slowest test binaries:")
    for seconds, what, _ in sorted(results, reverse=True)[:8]:
        print(f"  {seconds:6.1f}s  {what}")
    failed = [what for _, what, code in results if code != 0]
    if doc.returncode != 0:
        failed.append("the doc tests")
    if failed:
        print("error: failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
