// The Node half of the wasm benchmark: the same full backup examples/bench.rs runs natively, of
// the same generated rows, through the package as users import it (js/node.js over pkg/, a release build),
// into memory://. Prints one JSON line like the native half's.
//
//   node bench/bench.js [ROWS] [REPEATS]        (after ./build.sh; or run bench/run.sh)
import { Strata } from "strata-wasm";

const M64 = (1n << 64n) - 1n;
/** SplitMix64's finalizer: the same generator as examples/bench.rs. */
function mix(x) {
  let z = (x + 0x9e3779b97f4a7c15n) & M64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
  return z ^ (z >> 31n);
}

const enc = new TextEncoder();
const hex16 = (n) => n.toString(16).padStart(16, "0");
function row(i) {
  const b = BigInt(i);
  const r = mix(b);
  const key = `acct-${String(i).padStart(10, "0")}`;
  const currency = ["USD", "EUR", "GBP", "JPY"][Number((r >> 20n) % 4n)];
  const value = `{"id":${i},"balance":${r % 1000000n},"currency":"${currency}","status":"open","token":"${hex16(mix(b ^ 1n))}${hex16(mix(b ^ 2n))}${hex16(mix(b ^ 3n))}"}`;
  return [enc.encode(key), enc.encode(value)];
}

const rows = Number(process.argv[2] ?? 200000);
const repeats = Number(process.argv[3] ?? 3);
const db = new Strata();
await db.execute("CREATE DATABASE bench");
await db.execute("CREATE TABLE bench.accounts");
let logical = 0;
for (let start = 0; start < rows; start += 10000) {
  const batch = [];
  for (let i = start; i < Math.min(start + 10000, rows); i++) batch.push(row(i));
  for (const [k, v] of batch) logical += k.length + v.length;
  await db.putMany("bench", "accounts", batch);
}

async function best(sql) {
  let min = Infinity;
  for (let n = 0; n < repeats; n++) {
    const started = process.hrtime.bigint();
    await db.execute(sql(n));
    min = Math.min(min, Number(process.hrtime.bigint() - started) / 1e9);
  }
  return min;
}
const full = await best((n) => `BACKUP DATABASE bench INTO 'memory://plain${n}'`);
const encrypted = await best((n) => `BACKUP DATABASE bench INTO 'memory://enc${n}' WITH encryption_passphrase = 'benchmark'`);
const mbS = (s) => Number((logical / 1e6 / s).toFixed(1));
console.log(
  JSON.stringify({
    side: "wasm",
    node: process.version,
    rows,
    logical_bytes: logical,
    full_s: Number(full.toFixed(4)),
    full_mb_s: mbS(full),
    encrypted_s: Number(encrypted.toFixed(4)),
    encrypted_mb_s: mbS(encrypted),
  }),
);
