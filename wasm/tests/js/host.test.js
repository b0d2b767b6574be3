// The package as a JavaScript plugin author meets it: wrong argument types are refused with
// INVALID_ARGUMENT (as rejected promises, nothing written), a freed Strata fails with a code,
// StrataError and the timestamp helpers, the event loop runs during a backup (so timers, abort
// signals and progress work), progress moves within a table, the counts are named alike in
// progress and results, CommonJS require(), and the conformance suites shipped in the package
// (strata-wasm/conformance) run on the bundled plugins. Run by scripts/test-all.sh (step js).
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import {
  Strata,
  StrataError,
  isStrataError,
  timestampToNanos,
  nanosToTimestamp,
  MemoryKv,
  fsStorage,
  httpStorage,
} from "strata-wasm";
import { checkKvPlugin, checkStoragePlugin } from "strata-wasm/conformance";
import { startWebDav } from "./webdav-server.js";

const enc = new TextEncoder();

function mapStorage() {
  const objects = new Map();
  return {
    objects,
    async put(path, data) {
      objects.set(path, data.slice());
    },
    async get(path) {
      return objects.get(path) ?? null;
    },
    async list(prefix) {
      return [...objects].filter(([p]) => p.startsWith(prefix)).map(([path, d]) => ({ path, size: d.length }));
    },
    async delete(path) {
      objects.delete(path);
    },
  };
}

async function bank(options) {
  const db = new Strata(options);
  await db.execute("CREATE DATABASE bank");
  await db.execute("CREATE TABLE bank.accounts");
  return db;
}

/** The code a call fails with; the call must return a Promise (not throw). */
async function rejection(call) {
  let p;
  try {
    p = call();
  } catch (e) {
    return `threw synchronously: ${e}`;
  }
  if (!(p instanceof Promise)) return "returned no Promise";
  return p.then(
    () => "resolved",
    (e) => (isStrataError(e) ? e.code : `not a StrataError: ${e}`),
  );
}

test("wrong argument types reject with INVALID_ARGUMENT and write nothing", async () => {
  const db = await bank({ storage: { "js://b": mapStorage() } });
  const k = enc.encode("k");
  const v = enc.encode("v");
  const bad = {
    'put("bank","accounts","bob","2")': () => db.put("bank", "accounts", "bob", "2"),
    "put with a number database": () => db.put(1, "accounts", k, v),
    "put with a null table": () => db.put("bank", null, k, v),
    "put with an array value": () => db.put("bank", "accounts", k, [1, 2]),
    "put without a value": () => db.put("bank", "accounts", k),
    "putMany with string pairs": () => db.putMany("bank", "accounts", [["a", "b"]]),
    "delete with a string key": () => db.delete("bank", "accounts", "bob"),
    "execute(42)": () => db.execute(42),
    "execute({})": () => db.execute({ sql: "SHOW DATABASES" }),
    "execute()": () => db.execute(),
    "get with a bigint asOf": () => db.get("bank", "accounts", k, 1796516333034358466n),
    "get with a number asOf": () => db.get("bank", "accounts", k, 1796516333),
    "get with a string key": () => db.get("bank", "accounts", "k"),
    "scan with a bigint asOf": () => db.scan("bank", "accounts", { asOf: 5n }),
    "scan with a number database": () => db.scan(7, "accounts"),
    "showBackups(5)": () => db.showBackups(5),
    "backup into a number": () => db.backup({ databases: "bank", into: 5 }),
    "backup with a bigint asOf": () => db.backup({ databases: "bank", into: "js://b/x", asOf: 5n }),
    "restore from an object": () => db.restore({ from: {} }),
    "getFromBackup with a string key": () => db.getFromBackup({ from: "js://b/x", table: "bank.accounts", key: "k" }),
  };
  for (const [what, call] of Object.entries(bad)) {
    assert.equal(await rejection(call), "INVALID_ARGUMENT", what);
  }
  const syncBad = {
    "mount(5, storage)": () => db.mount(5, mapStorage()),
    "mount(prefix, 5)": () => db.mount("js://c", 5),
    "unmount(5)": () => db.unmount(5),
    "new Strata({ storage: 5 })": () => new Strata({ storage: 5 }),
  };
  for (const [what, call] of Object.entries(syncBad)) {
    assert.throws(call, (e) => e instanceof StrataError && e.code === "INVALID_ARGUMENT", what);
  }
  // Nothing was written: no row, no backup.
  assert.deepEqual(await db.scan("bank", "accounts"), []);
  await assert.rejects(db.showBackups("js://b"), (e) => e.code === "NOT_FOUND", "no backup was written");

  // An ArrayBuffer is bytes, as a Uint8Array is.
  const key = enc.encode("alice").buffer;
  await db.put("bank", "accounts", key, enc.encode("100").buffer);
  assert.deepEqual(await db.get("bank", "accounts", enc.encode("alice")), enc.encode("100"));
  assert.deepEqual(await db.scan("bank", "accounts"), [[enc.encode("alice"), enc.encode("100")]]);
});

test("a call after free() fails with a code", async () => {
  const db = await bank();
  db.free();
  assert.equal(await rejection(() => db.now()), "PRECONDITION");
  assert.equal(await rejection(() => db.put("bank", "accounts", enc.encode("k"), enc.encode("v"))), "PRECONDITION");
  assert.throws(() => db.mount("js://x", mapStorage()), (e) => isStrataError(e) && e.code === "PRECONDITION" && /free\(\)/.test(e.message));
  db.free(); // again: nothing happens
});

test("StrataError, isStrataError and the timestamp helpers", async () => {
  // A KV plugin's timestamps are whole nanoseconds (the built-in store's may differ only in the
  // clock's logical counter, which the helpers drop).
  const db = await bank({ kv: new MemoryKv() });
  const err = await db.execute("BACKUP").catch((e) => e);
  assert.ok(err instanceof StrataError && err instanceof Error && isStrataError(err));
  assert.equal(err.code, "INVALID_STATEMENT");
  assert.ok(!isStrataError(new Error("x")) && !(new Error("x") instanceof StrataError));
  const mine = new StrataError("gone", "NOT_FOUND", { retryable: true });
  assert.ok(isStrataError(mine) && mine.retryable && mine.name === "StrataError");

  const t1 = await db.put("bank", "accounts", enc.encode("a"), enc.encode("1"));
  await db.put("bank", "accounts", enc.encode("a"), enc.encode("2"));
  const ns = timestampToNanos(t1);
  assert.equal(typeof ns, "bigint");
  assert.equal(ns, BigInt(t1.split(".")[0]));
  // Back to a decimal usable as asOf: the first write, not the second, as of its nanosecond.
  assert.deepEqual(await db.get("bank", "accounts", enc.encode("a"), nanosToTimestamp(ns)), enc.encode("1"));
  assert.equal(nanosToTimestamp(5n), "5.0000000000");
  assert.equal(timestampToNanos(nanosToTimestamp(ns)), ns);
  for (const badTs of [5n, "yesterday", "-1.0", undefined]) {
    assert.throws(() => timestampToNanos(badTs), (e) => isStrataError(e) && e.code === "INVALID_ARGUMENT", String(badTs));
  }
  for (const badNs of [-1n, 1n << 64n, "5", 1.5]) {
    assert.throws(() => nanosToTimestamp(badNs), (e) => isStrataError(e) && e.code === "INVALID_ARGUMENT", String(badNs));
  }
});

describe("the event loop during a backup", () => {
  // 3,000 rows of 1 KB: about 3 MB in one table, so several work units of the built-in store.
  let db;
  let storage;
  before(async () => {
    storage = mapStorage();
    db = await bank({ storage: { "js://b": storage } });
    const rows = [];
    for (let i = 0; i < 3000; i++) rows.push([enc.encode(`row-${String(i).padStart(5, "0")}`), new Uint8Array(1000).fill(i % 251)]);
    await db.putMany("bank", "accounts", rows);
  });

  test("a task queued before a backup runs while it runs, and progress moves within the table", async () => {
    let ran = false;
    setImmediate(() => {
      ran = true;
    });
    const reports = [];
    const result = await db.backup({ databases: "bank", into: "js://b/full", onProgress: (p) => reports.push({ ...p, ran }) });
    const during = reports.filter((p) => p.fraction > 0 && p.fraction < 1);
    assert.ok(during.some((p) => p.ran), `no report before the end saw the queued task run: ${JSON.stringify(reports.map((p) => [p.fraction, p.ran]))}`);
    // Within the one table: several distinct fractions between 0 and 1.
    const fractions = new Set(during.map((p) => p.fraction));
    assert.ok(fractions.size >= 2, `fractions: ${[...fractions]}`);

    // The counts are named alike in the result and the progress.
    const last = reports.at(-1);
    assert.equal(last.done, true);
    for (const name of ["rows", "logicalBytes", "storageBytes", "files"]) assert.equal(result[name], last[name], name);
    assert.ok(result.rows >= 3000 && result.logicalBytes > 3000 * 1000 && result.storageBytes > 0, JSON.stringify(result));
    assert.equal(result.bytes, result.storageBytes, "deprecated: a backup's bytes were its stored bytes");
    assert.equal(last.bytes, last.logicalBytes, "deprecated: progress bytes are logical bytes");

    const restoreReports = [];
    const restored = await db.restore({
      databases: "bank",
      from: "js://b/full",
      latest: true,
      newDbName: "copy",
      onProgress: (p) => restoreReports.push(p),
    });
    for (const name of ["rows", "logicalBytes", "storageBytes", "files"]) assert.equal(restored[name], restoreReports.at(-1)[name], name);
    assert.equal(restored.logicalBytes, result.logicalBytes);
    assert.equal(restored.storageBytes, result.storageBytes);
    assert.equal(restored.bytes, restored.logicalBytes, "deprecated: a restore's bytes were its logical bytes");
  });

  test("an abort from a task queued before the backup cancels it, and it leaves no backup", async () => {
    const controller = new AbortController();
    setImmediate(() => controller.abort());
    const err = await db.backup({ databases: "bank", into: "js://b/cancelled", signal: controller.signal }).catch((e) => e);
    assert.equal(err.code, "CANCELLED", String(err));
    assert.deepEqual([...storage.objects.keys()].filter((p) => p.startsWith("cancelled/")), []);
  });
});

// require() of ES modules is on by default from Node 20.19 and 22.12 (the package's engines).
const [major, minor] = process.versions.node.split(".").map(Number);
const requireEsm = (major === 20 && minor >= 19) || (major === 22 && minor >= 12) || major >= 23;

test("CommonJS: require('strata-wasm') on Node versions that require() ES modules", { skip: !requireEsm && `Node ${process.versions.node} cannot require() ES modules` }, () => {
  const require = createRequire(import.meta.url);
  const cjs = require("strata-wasm");
  assert.equal(cjs.Strata, Strata, "the same module as import");
  assert.equal(typeof cjs.fsStorage, "function");
});

// The suites run in full on every bundled plugin in the Rust tests (tests/plugins.rs,
// tests/node_adapters.rs, tests/browser_adapters.rs); here the slowest checks are skipped to keep
// CI fast: what is tested is the package's way of running them.
const FULL = "run in full by the Rust tests of the plugin";

describe("strata-wasm/conformance on the bundled plugins", () => {
  let dir;
  let dav;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "strata-conformance-"));
    dav = await startWebDav({ autoParents: true });
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await dav?.close();
  });

  test("MemoryKv passes the KV suite, garbage collection included", async () => {
    const seen = [];
    const skip = { model_seed_1: FULL, model_seed_2: FULL, model_with_gc_seed_11: FULL };
    const report = await checkKvPlugin(() => new MemoryKv(), { gc: (kv, t) => kv.gc(t), skip, onCheck: (c) => seen.push(c.name) });
    assert.deepEqual(report.failed, []);
    assert.ok(report.passed.includes("paging") && report.passed.includes("gc_threshold"), report.passed.join());
    assert.equal(report.passed.length + report.skipped.length, 18);
    assert.deepEqual(seen, report.passed);
  });

  test("fsStorage and httpStorage pass the storage suite", async () => {
    const skip = { list_prefixes: FULL, overwrite_is_atomic: FULL };
    const fs = await checkStoragePlugin(fsStorage(dir, { fsync: false }), { skip });
    assert.equal(fs.passed.length, 7, JSON.stringify(fs));
    const slowOverHttp = { put_get_delete: FULL, list_with_delimiter: FULL, concurrent_writers: FULL };
    const http = await checkStoragePlugin(httpStorage(dav.url), { skip: { ...skip, ...slowOverHttp } });
    assert.deepEqual(http.passed, ["put_if_absent", "put_and_get_options", "ranged_get", "missing_objects"]);
  });

  test("a broken plugin fails the checks it breaks, each named, and the application's Strata goes on", async () => {
    const db = await bank();
    await db.put("bank", "accounts", enc.encode("a"), enc.encode("1"));
    // A storage whose list forgets everything, and a KV plugin whose batches keep the first write of a key.
    const forgetful = { ...mapStorage(), list: async () => [] };
    const err = await checkStoragePlugin(forgetful).catch((e) => e);
    assert.ok(isStrataError(err) && err.code === "PRECONDITION", String(err));
    const failed = err.report.failed.map((f) => f.name);
    assert.ok(failed.includes("list_prefixes"), failed.join());
    assert.ok(err.report.passed.length > 0, "later checks still ran");
    assert.match(err.message, /list_prefixes: /);

    class FirstWriteWins extends MemoryKv {
      async write(batch) {
        const seenKeys = new Set();
        return super.write(batch.filter(([k]) => !seenKeys.has(k.join()) && seenKeys.add(k.join())));
      }
    }
    const kvErr = await checkKvPlugin(() => new FirstWriteWins(), { skip: { model_seed_1: "slow", model_seed_2: "slow" } }).catch((e) => e);
    assert.ok(kvErr.report?.failed.some((f) => f.name === "write_is_atomic"), String(kvErr));
    assert.deepEqual(kvErr.report.skipped.map((s) => s.name), ["model_seed_1", "model_seed_2"]);

    assert.deepEqual(await db.get("bank", "accounts", enc.encode("a")), enc.encode("1"));
  });
});
