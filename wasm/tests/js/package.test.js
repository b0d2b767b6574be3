// The npm package as a user imports it (`import … from "strata-wasm"`, the wasm-bindgen
// --target nodejs build in pkg/node): full, incremental and encrypted backups restored through
// storage plugins written in JavaScript, a KV plugin written in JavaScript, the typed calls,
// progress and cancellation, and the error codes. Run by scripts/test-all.sh (step js) after
// wasm/build.sh:  cd wasm && node --test tests/js/
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import init, { Strata, MemoryKv, fsStorage, httpStorage } from "strata-wasm";
import { startWebDav, presigner } from "./webdav-server.js";

const enc = new TextEncoder();
const dec = new TextDecoder();
const PASS = "correct horse battery staple";

/** The simplest storage plugin: a Map, with only the four required methods. */
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

/** The rows of db.table as { key: value } strings. */
async function rows(db, database, table, asOf) {
  const out = {};
  for (const [k, v] of await db.scan(database, table, asOf ? { asOf } : undefined)) out[dec.decode(k)] = dec.decode(v);
  return out;
}

async function seed(db, n = 300) {
  await db.execute("CREATE DATABASE shop");
  await db.execute("CREATE TABLE shop.orders");
  await db.execute("CREATE TABLE shop.customers");
  for (let i = 0; i < n; i++) {
    await db.put("shop", "orders", enc.encode(`order-${String(i).padStart(5, "0")}`), enc.encode(`total=${i * 3}`));
  }
  for (let i = 0; i < n / 10; i++) {
    await db.put("shop", "customers", enc.encode(`c${i}`), enc.encode(`customer ${i}`));
  }
}

async function change(db) {
  await db.delete("shop", "orders", enc.encode("order-00000"));
  await db.put("shop", "orders", enc.encode("order-00001"), enc.encode("total=refunded"));
  await db.put("shop", "orders", enc.encode("order-99999"), enc.encode("total=1"));
}

/**
 * The scenario every storage runs: a full backup, a change, an incremental layer (plain and
 * encrypted chains side by side), then restores under new names that must equal the source at
 * each layer's time — through `storage`, mounted at `prefix`.
 */
async function fullIncrementalEncrypted(storage, prefix) {
  await init();
  const db = new Strata({ storage: { [prefix]: storage } });
  await seed(db);
  const atFull = await rows(db, "shop", "orders");

  const full = await db.backup({ databases: "shop", into: `${prefix}/plain` });
  assert.equal(full.backupType, "full");
  const fullEnc = await db.backup({ databases: ["shop"], into: `${prefix}/enc`, encryptionPassphrase: PASS });
  assert.equal(fullEnc.backupType, "full");
  assert.ok(fullEnc.files >= 1 && fullEnc.rows >= 330, JSON.stringify(fullEnc));

  await change(db);
  const atIncremental = await rows(db, "shop", "orders");
  assert.notDeepEqual(atIncremental, atFull);

  const inc = await db.backup({ databases: "shop", into: `${prefix}/plain`, incremental: true });
  assert.equal(inc.backupType, "incremental");
  assert.equal(inc.rows, 2, "an incremental holds what changed: 2 writes (and a deletion, which is no row)");
  const incEnc = await db.backup({ databases: "shop", into: `${prefix}/enc`, incremental: true, encryptionPassphrase: PASS });
  assert.equal(incEnc.backupType, "incremental");

  // Restore each chain (full + incremental) under a new name.
  await db.restore({ databases: "shop", from: `${prefix}/plain`, latest: true, newDbName: "plain" });
  assert.deepEqual(await rows(db, "plain", "orders"), atIncremental);
  const restored = await db.restore({
    databases: "shop",
    from: `${prefix}/enc`,
    latest: true,
    newDbName: "enc",
    encryptionPassphrase: PASS,
  });
  assert.equal(restored.tables, 2);
  assert.deepEqual(await rows(db, "enc", "orders"), atIncremental);
  assert.equal(Object.keys(await rows(db, "enc", "customers")).length, 30);

  // The collection's full backups by name: a dated subdirectory, which holds its incrementals.
  const [dir] = await db.showBackups(`${prefix}/enc`);
  assert.match(dir, /^\/\d{4}\/\d{2}\/\d{2}-\d{6}\.\d{2}$/);
  await db.execute(`RESTORE TABLE shop.orders FROM '${prefix}/enc${dir}' WITH into_db = 'plain', encryption_passphrase = '${PASS}'`).then(
    () => assert.fail("plain.orders exists: the restore must refuse"),
    (e) => assert.equal(e.code, "ALREADY_EXISTS", e.message),
  );
  await db.execute("CREATE DATABASE old");
  await db.execute(`RESTORE TABLE shop.orders FROM '${prefix}/enc${dir}' WITH into_db = 'old', encryption_passphrase = '${PASS}'`);
  assert.deepEqual(await rows(db, "old", "orders"), atIncremental);

  // SHOW BACKUP lists both layers; the encrypted chain needs its passphrase.
  const layers = await db.showBackup({ from: `${prefix}/enc`, latest: true, encryptionPassphrase: PASS });
  assert.deepEqual([...new Set(layers.map((l) => l.backupType))], ["full", "incremental"]);
  await assert.rejects(db.showBackup({ from: `${prefix}/enc`, latest: true }), (e) => e.code === "PRECONDITION" && /is encrypted/.test(e.message));
  await assert.rejects(
    db.restore({ databases: "shop", from: `${prefix}/enc`, latest: true, newDbName: "x", encryptionPassphrase: "wrong" }),
    (e) => e.name === "StrataError" && e.code === "WRONG_KEY" && /passphrase/.test(e.message) && e instanceof Error,
  );
  db.free();
}

describe("full + incremental + encrypted restore through JavaScript storage plugins", () => {
  test("a Map-based plugin (only put/get/list/delete)", async () => {
    const storage = mapStorage();
    await fullIncrementalEncrypted(storage, "js://backups");
    const paths = [...storage.objects.keys()];
    assert.ok(paths.some((p) => p.startsWith("enc/") && p.endsWith("ENCRYPTION-INFO")), paths.join("\n"));
    assert.ok(paths.some((p) => p.includes("/incrementals/")), paths.join("\n"));
    // Nothing of the data is readable in the encrypted chain's files.
    for (const [path, data] of storage.objects) {
      if (path.startsWith("enc/") && !path.endsWith("LATEST") && !path.endsWith("ENCRYPTION-INFO")) {
        const text = Buffer.from(data).toString("latin1");
        assert.ok(!text.includes("order-0") && !text.includes("customer"), `${path} holds plaintext`);
      }
    }
  });

  test("fsStorage (Node's file system)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "strata-node-test-"));
    try {
      await fullIncrementalEncrypted(fsStorage(dir, { fsync: false }), "nodelocal://1");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe("httpStorage", () => {
    let dav;
    let signed;
    before(async () => {
      dav = await startWebDav();
      signed = await startWebDav({ secret: "k", autoParents: true });
    });
    after(async () => {
      await dav.close();
      await signed.close();
    });
    test("against a WebDAV server", async () => {
      await fullIncrementalEncrypted(httpStorage(dav.url), dav.url.replace(/\/$/, ""));
      assert.ok(dav.requests.some((r) => r.startsWith("PROPFIND")));
    });
    test("through presigned URLs", async () => {
      await fullIncrementalEncrypted(httpStorage(signed.url, { sign: presigner(signed.url, "k") }), "https://bucket.example");
    });
  });
});

test("a KV plugin written in JavaScript: the app's own store is backed up and restored", async () => {
  const appStore = new MemoryKv();
  const storage = mapStorage();
  const app = new Strata({ kv: appStore, storage: { "js://b": storage } });
  await seed(app, 100);
  await app.backup({ into: "js://b/app", encryptionPassphrase: PASS, revisionHistory: true });
  const t1 = await app.now();
  await change(app);
  await app.backup({ into: "js://b/app", incremental: true, encryptionPassphrase: PASS, revisionHistory: true });
  const expected = await rows(app, "shop", "orders");

  // A fresh store (another MemoryKv) restores the whole cluster…
  const freshStore = new MemoryKv();
  const fresh = new Strata({ kv: freshStore, storage: { "js://b": storage } });
  await fresh.restore({ from: "js://b/app", latest: true, encryptionPassphrase: PASS });
  assert.deepEqual(await rows(fresh, "shop", "orders"), expected);
  assert.deepEqual((await fresh.execute("SHOW TABLES FROM shop")).rows, [
    ["shop", "customers"],
    ["shop", "orders"],
  ]);
  // …and the restored rows are in the plugin's own data.
  const tablePrefixes = Object.keys(freshStore.snapshot()).filter((k) => k.startsWith("10"));
  assert.ok(tablePrefixes.length >= 110, `${tablePrefixes.length} rows in the plugin`);

  // Point in time inside the chain (revision history): the state at t1.
  await fresh.execute("CREATE DATABASE then");
  await fresh.restore({ tables: "shop.orders", from: "js://b/app", latest: true, asOf: t1, intoDb: "then", encryptionPassphrase: PASS });
  const atT1 = await rows(fresh, "then", "orders");
  assert.equal(atT1["order-00000"], "total=0");
  assert.equal(atT1["order-00001"], "total=3");
  assert.equal(atT1["order-99999"], undefined);
});

test("progress is reported and an AbortSignal cancels", async () => {
  const storage = mapStorage();
  const db = new Strata({ storage: { "js://b": storage } });
  await seed(db, 2000);
  const reports = [];
  const result = await db.backup({ databases: "shop", into: "js://b/p", onProgress: (p) => reports.push(p) });
  const last = reports.at(-1);
  assert.equal(last.done, true);
  assert.equal(last.operation, "backup");
  // The data files the backup stored, as its result counts them.
  assert.ok(last.rows >= 2200 && last.files === result.files && last.storageBytes === result.storageBytes, JSON.stringify([last, result]));
  assert.ok(reports.length > 3);
  assert.equal(last.fraction, 1);
  for (let i = 1; i < reports.length; i++) {
    assert.ok(reports[i].fraction >= reports[i - 1].fraction && reports[i].rows >= reports[i - 1].rows, JSON.stringify(reports));
  }

  const controller = new AbortController();
  await assert.rejects(
    db.backup({
      databases: "shop",
      into: "js://b/cancelled",
      signal: controller.signal,
      onProgress: () => controller.abort(),
    }),
    (e) => e.code === "CANCELLED",
  );
  assert.deepEqual([...storage.objects.keys()].filter((p) => p.startsWith("cancelled/")), []);

  const restoreReports = [];
  await db.restore({ databases: "shop", from: "js://b/p", latest: true, newDbName: "copy", onProgress: (p) => restoreReports.push(p) });
  assert.equal(restoreReports.at(-1).rows, 2200);
  // A whole restore reads each data file once, all of it.
  assert.equal(restoreReports.at(-1).files, result.files);
  assert.equal(restoreReports.at(-1).storageBytes, result.storageBytes);
});

test("errors have stable codes", async () => {
  const storage = mapStorage();
  const db = new Strata({ storage: { "js://b": storage } });
  await seed(db, 20);
  await db.backup({ into: "js://b/c" });
  const codeOf = (p) => p.then(() => "ok", (e) => (e instanceof Error && e.name === "StrataError" ? e.code : `not a StrataError: ${e}`));

  assert.equal(await codeOf(db.execute("BACKUP DATABASE")), "INVALID_STATEMENT");
  assert.equal(await codeOf(db.execute("RESTORE FROM LATEST IN 'js://b/nothing'")), "NOT_FOUND");
  assert.equal(await codeOf(db.execute("RESTORE FROM LATEST IN 'gs://bucket/x'")), "INVALID_ARGUMENT");
  assert.equal(await codeOf(db.execute("CREATE DATABASE shop")), "ALREADY_EXISTS");
  assert.equal(await codeOf(db.restore({ from: "js://b/c", latest: true })), "PRECONDITION", "a full-cluster restore needs an empty store");
  assert.equal(await codeOf(db.backup({ into: "js://b/c", asOf: "2500-01-01 00:00:00" })), "INVALID_TIME");
  assert.equal(await codeOf(db.backup({ into: "js://b/c", revisonHistory: true })), "INVALID_ARGUMENT");

  // One flipped bit in each data file: the restore fails naming a file.
  const dataFiles = [...storage.objects.keys()].filter((p) => p.includes("/data/"));
  for (const f of dataFiles) storage.objects.get(f)[40] ^= 1;
  const err = await db.restore({ databases: "shop", from: "js://b/c", latest: true, newDbName: "damaged" }).catch((e) => e);
  assert.equal(err.code, "CORRUPT", err.message);
  assert.ok(dataFiles.some((f) => err.message.includes(f.split("/").pop())), err.message);
  assert.equal(err.retryable, false);

  // A plugin's failure is a STORAGE error, retryable when the plugin says so.
  db.mount("js://flaky", {
    put: async () => {
      throw Object.assign(new Error("503 Slow Down"), { retryable: true });
    },
    get: async () => null,
    list: async () => [],
    delete: async () => {},
  });
  const flaky = await db.backup({ into: "js://flaky/x" }).catch((e) => e);
  assert.equal(flaky.code, "STORAGE");
  assert.equal(flaky.retryable, true);
  assert.match(flaky.message, /503 Slow Down/);
});
