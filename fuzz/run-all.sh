#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 60), JOBS targets at a time (default
# 1), then prints each target's exec count and whether it found anything.
#
#   fuzz/run-all.sh 600
#   JOBS=2 fuzz/run-all.sh 600
#
# Needs a nightly toolchain and cargo-fuzz (`rustup toolchain install nightly`,
# `cargo install cargo-fuzz`). New inputs go to fuzz/work/<target> (the committed seeds in
# fuzz/corpus/<target> are only read); crashes, leaks, timeouts and out-of-memory inputs go to
# fuzz/artifacts/<target>: commit each as a seed in fuzz/corpus/<target> with its fix.
#
# Bounds: -malloc_limit_mb: no single allocation over 128 MiB (a data block decodes to at most
# 64 MiB, and only from an input that really holds it); -rss_limit_mb: 2 GiB resident; -timeout:
# 10 s per input; -max_len: 64 KiB inputs.
set -euo pipefail
seconds="${1:-60}"
jobs="${JOBS:-1}"
cd "$(dirname "$0")"
export CARGO_INCREMENTAL=0
targets=$(cargo +nightly fuzz list)
cargo +nightly fuzz build -O --debug-assertions
mkdir -p work logs
run_one() {
    t="$1"
    mkdir -p "work/$t" "artifacts/$t"
    cargo +nightly fuzz run -O --debug-assertions "$t" "work/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=128 -max_len=65536 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"logs/$t.log" 2>&1
}
export -f run_one
export seconds
status=0
printf '%s\n' $targets | xargs -P "$jobs" -I{} bash -c 'run_one "$1"' _ {} || status=1
printf '%-18s %14s %10s  %s\n' target execs corpus result
for t in $targets; do
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' || echo '?')
    units=$(ls "work/$t" | wc -l)
    found=$(ls "artifacts/$t" 2>/dev/null | head -3 | tr '\n' ' ')
    printf '%-18s %14s %10s  %s\n' "$t" "$execs" "$units" "${found:-ok}"
done
exit $status
