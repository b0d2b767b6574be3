// MemoryKv: a complete KV plugin (TypeScript `KvPlugin`) in plain JavaScript — a multi-version
// key-value store held in memory. It is the template for plugins over an application's own data
// store, and it passes strata's KV conformance suite (wasm/tests/plugins.rs).
//
//   const kv = new MemoryKv();
//   const db = new Strata({ kv });        // back up / restore this store
//   kv.snapshot()                         // { keyHex: valueHex } of the newest live versions

/** Unsigned lexicographic order of two byte arrays: -1, 0 or 1. */
export function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function timeError(message) {
  const e = new Error(message);
  e.code = "INVALID_TIME";
  return e;
}

export class MemoryKv {
  /** @param {{ clock?: () => bigint }} [options] `clock`: wall nanoseconds (default `Date.now()`). */
  constructor(options = {}) {
    this.clock = options.clock ?? (() => BigInt(Date.now()) * 1000000n);
    /** Sorted by key: `{ key: Uint8Array, versions: Array<{ ts: bigint, value: Uint8Array | null }> }`, newest first. */
    this.rows = [];
    this.last = 0n;
    this.gcTs = 0n;
  }

  /** A fresh timestamp above every earlier one. */
  tick() {
    let t = this.clock();
    if (t <= this.last) t = this.last + 1n;
    this.last = t;
    return t;
  }

  /** Index of the first row whose key is >= `key`. */
  lowerBound(key) {
    let lo = 0;
    let hi = this.rows.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareBytes(this.rows[mid].key, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  async now() {
    return this.tick();
  }

  async write(batch) {
    const ts = this.tick();
    for (const [key, value] of batch) {
      const i = this.lowerBound(key);
      let row = this.rows[i];
      if (!row || compareBytes(row.key, key) !== 0) {
        row = { key: Uint8Array.from(key), versions: [] };
        this.rows.splice(i, 0, row);
      }
      // Two writes of one key in one batch: the later wins, as in a map.
      if (row.versions.length > 0 && row.versions[0].ts === ts) row.versions.shift();
      row.versions.unshift({ ts, value: value === null ? null : Uint8Array.from(value) });
    }
    return ts;
  }

  async scan({ start, end, startTime, endTime, allRevisions, targetBytes }) {
    const needsStart = startTime !== 0n || allRevisions;
    const t = needsStart ? startTime : endTime;
    if (t < this.gcTs) {
      throw timeError(`cannot read at ${t}: it is below the GC threshold ${this.gcTs}`);
    }
    const entries = [];
    let bytes = 0;
    for (let i = this.lowerBound(start); i < this.rows.length; i++) {
      const row = this.rows[i];
      if (compareBytes(row.key, end) >= 0) break;
      if (bytes >= targetBytes) return { entries, resumeKey: row.key };
      for (const v of row.versions) {
        if (v.ts > endTime) continue;
        if (v.ts <= startTime) break;
        bytes += row.key.length + (v.value ? v.value.length : 0);
        entries.push({ key: row.key, ts: v.ts, value: v.value });
        if (!allRevisions) break;
      }
    }
    return { entries, resumeKey: null };
  }

  async discard(spans) {
    this.rows = this.rows.filter(
      (r) => !spans.some((s) => compareBytes(r.key, s.start) >= 0 && compareBytes(r.key, s.end) < 0),
    );
  }

  async gcThreshold() {
    return this.gcTs;
  }

  /** Drops versions hidden at `threshold` (keeping each key's newest one at or below it, unless a deletion) and raises the GC threshold. */
  gc(threshold) {
    for (const row of this.rows) {
      const keep = [];
      let keptOne = false;
      for (const v of row.versions) {
        if (v.ts > threshold) keep.push(v);
        else if (!keptOne) {
          keptOne = true;
          if (v.value !== null) keep.push(v);
        }
      }
      row.versions = keep;
    }
    this.rows = this.rows.filter((r) => r.versions.length > 0);
    if (threshold > this.gcTs) this.gcTs = threshold;
  }

  /** The newest live version of every key, as `{ keyHex: valueHex }` (for tests and pages that show the store). */
  snapshot() {
    const out = {};
    for (const row of this.rows) {
      const v = row.versions[0];
      if (v && v.value !== null) out[hex(row.key)] = hex(v.value);
    }
    return out;
  }
}
