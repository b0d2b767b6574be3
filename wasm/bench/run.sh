#!/usr/bin/env bash
# The wasm benchmark: the same full backup (plain and encrypted) of the same rows, natively and
# in Node (the release build of the npm package), and the ratio of their throughputs.
#
#   wasm/bench/run.sh [ROWS] [REPEATS]      (default 200000 rows, best of 3)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here/.."
rows="${1:-200000}"
repeats="${2:-3}"

"$here/build.sh" >/dev/null
native=$(cargo run --quiet --release -p strata-wasm --example bench -- "$rows" "$repeats")
wasm=$(cd "$here" && node bench/bench.js "$rows" "$repeats")
echo "$native"
echo "$wasm"
node -e '
const [n, w] = process.argv.slice(1).map(JSON.parse);
const pct = (a, b) => (100 * a / b).toFixed(0) + "%";
console.log(`wasm/native throughput: full backup ${w.full_mb_s} / ${n.full_mb_s} MB/s = ${pct(w.full_mb_s, n.full_mb_s)}; ` +
  `encrypted ${w.encrypted_mb_s} / ${n.encrypted_mb_s} MB/s = ${pct(w.encrypted_mb_s, n.encrypted_mb_s)}`);
' "$native" "$wasm"
