#!/usr/bin/env python3
"""Runs tests like `cargo test CARGO_ARGS`, but several test binaries at a time.

    scripts/run-tests.py [--jobs N] [--runner PROGRAM] [--doc] CARGO_ARGS...

    scripts/run-tests.py --doc --workspace          the test step: every native test
    scripts/run-tests.py --runner wasm-bindgen-test-runner -p strata-core \
        --target wasm32-unknown-unknown --lib --tests   the core's tests under Node

`cargo test` runs its test binaries one after another. Many of strata's wait more than they
compute (real etcd clusters, S3/Azure/WebDAV servers, fsyncs, child CLI processes, a
single-threaded Node), so on a 2-core CI machine one binary at a time leaves a core idle for
much of a step. This script builds every test binary (`cargo test CARGO_ARGS --no-run`), runs N
of them at once (default 3, or STRATA_TEST_JOBS), each in its package's directory as cargo would
(through PROGRAM, as cargo's target runner, if given), and prints each binary's whole output when
it ends, so outputs never interleave. With --doc it then runs the doc tests (`cargo test
CARGO_ARGS --doc`).

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

# Started first, so the longest binaries do not end the step alone (measured on a 2-core
# machine; a name missing here only starts later). The two that use the S3/Azure/WebDAV servers
# are apart: both wait on the same single-threaded S3 server (moto), so side by side each took
# as long as both one after the other.
SLOW_FIRST = [
    "storage_backups",
    "resume",
    "etcd",
    "etcd_workers",
    "lsm_store",
    "cli",
    "storage_servers",
    "kv_conformance",
    "strata_tests",
    "etcd_cli",
    # the core's tests on wasm32 (wasm-test-core)
    "integration",
    "strata_core",
]


def test_binaries(cargo_args):
    """Builds the test binaries; returns (name, src_path, executable, package dir) for each."""
    cmd = ["cargo", "test", *cargo_args, "--no-run", "--message-format=json-render-diagnostics"]
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
    parser.add_argument("--runner", help="runs each test binary (as cargo's target runner)")
    parser.add_argument("--doc", action="store_true", help="then run the doc tests")
    opts, cargo_args = parser.parse_known_args()
    runner = [opts.runner] if opts.runner else []

    binaries = order(test_binaries(cargo_args))
    print(f"running {len(binaries)} test binaries, {opts.jobs} at a time", flush=True)
    lock = threading.Lock()
    results = []

    def run(binary):
        name, src, exe, cwd = binary
        started = time.monotonic()
        proc = subprocess.Popen([*runner, exe], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        output = proc.stdout.read()
        # wait4: the binary's CPU time too (with the child processes it waited for).
        _, status, usage = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code  # reaped by wait4: Popen must not wait for it again
        seconds, cpu = time.monotonic() - started, usage.ru_utime + usage.ru_stime
        rel = os.path.relpath(src, cwd)
        with lock:
            sys.stdout.write(f"     Running {rel} ({os.path.relpath(exe)}) [{seconds:.1f}s, {cpu:.1f}s of CPU]\n")
            sys.stdout.write(output.decode(errors="replace"))
            if code != 0:
                sys.stdout.write(f"error: test binary {os.path.relpath(exe)} ({rel}) failed: exit status {code}\n")
            sys.stdout.flush()
            results.append((seconds, cpu, f"{os.path.basename(cwd)}: {rel}", code))

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
        list(pool.map(run, binaries))
    print(f"test binaries: {time.monotonic() - started:.1f}s of wall time", flush=True)

    doc = None
    if opts.doc:
        print(f"   Doc-tests (cargo test {' '.join(cargo_args)} --doc)", flush=True)
        doc = subprocess.run(["cargo", "test", *cargo_args, "--doc"], stdin=subprocess.DEVNULL)

    print("slowest test binaries (wall time, CPU time):")
    for seconds, cpu, what, _ in sorted(results, reverse=True)[:8]:
        print(f"  {seconds:6.1f}s {cpu:6.1f}s  {what}")
    print(f"CPU time of all test binaries: {sum(r[1] for r in results):.1f}s")
    failed = [what for _, _, what, code in results if code != 0]
    if doc is not None and doc.returncode != 0:
        failed.append("the doc tests")
    if failed:
        print("error: failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
