// Reading a table straight from a backup (issue 15 §1): `scanBackup` and `getFromBackup` on a
// backup served over HTTP (the WebDAV test server, through httpStorage) print what a restore at
// the same time holds, encrypted or not, and fetch little more than the table's own bytes.
// Run by scripts/test-all.sh (step js) after wasm/build.sh:  cd wasm && node --test tests/js/
import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import init, { Strata, httpStorage } from "strata-wasm";
import { startWebDav } from "./webdav-server.js";

const enc = new TextEncoder();
const dec = new TextDecoder();
const PASS = "correct horse battery staple";

/** Wraps a storage plugin, counting the bytes each read of a data file returns. */
function counting(plugin) {
  const reads = [];
  const count = (path, data) => {
    if (data && path.includes("/data/")) reads.push([path, data.byteLength]);
    return data;
  };
  return {
    reads,
    put: (p, d) => plugin.put(p, d),
    putIfAbsent: (p, d) => plugin.putIfAbsent(p, d),
    list: (p) => plugin.list(p),
    delete: (p) => plugin.delete(p),
    size: (p) => plugin.size(p),
    get: async (p) => count(p, await plugin.get(p)),
    getRange: async (p, s, e) => count(p, await plugin.getRange(p, s, e)),
  };
}

/** Noise for values: LZ4 cannot shrink it, so block sizes follow the rows. */
function noise(seed) {
  let s = ((BigInt(seed) + 1n) * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
  let out = "";
  for (let i = 0; i < 8; i++) {
    s ^= (s << 13n) & 0xffffffffffffffffn;
    s ^= s >> 7n;
    s ^= (s << 17n) & 0xffffffffffffffffn;
    out += s.toString(16).padStart(16, "0");
  }
  return out;
}

const asText = (rows) => rows.map(([k, v]) => `${dec.decode(k)}\t${dec.decode(v)}`);

let dav;
before(async () => {
  await init();
  dav = await startWebDav();
});
after(() => dav.close());

for (const encrypted of [false, true]) {
  test(`scanBackup over HTTP equals a restore at each time${encrypted ? " (encrypted)" : ""}`, async () => {
    const keys = encrypted ? { encryptionPassphrase: PASS } : {};
    const uri = `${dav.url.replace(/\/$/, "")}/${encrypted ? "enc" : "plain"}`;
    const db = new Strata({ storage: { [dav.url.replace(/\/$/, "")]: httpStorage(dav.url) } });
    await db.execute("CREATE DATABASE shop");
    for (const t of ["orders", "customers", "items"]) {
      await db.execute(`CREATE TABLE shop.${t}`);
      const rows = [];
      for (let i = 0; i < 1500; i++) rows.push([enc.encode(`${t}-${String(i).padStart(5, "0")}`), enc.encode(noise(i + t.length * 7919))]);
      await db.putMany("shop", t, rows);
    }
    const times = [];
    await db.backup({ databases: "shop", into: uri, revisionHistory: true, ...keys });
    times.push(await db.now());
    await db.delete("shop", "customers", enc.encode("customers-00003"));
    await db.put("shop", "customers", enc.encode("customers-00004"), enc.encode("changed"));
    times.push(await db.now());
    await db.backup({ databases: "shop", into: uri, incremental: true, revisionHistory: true, ...keys });
    await db.put("shop", "customers", enc.encode("customers-zz"), enc.encode("late"));
    times.push(await db.now());
    await db.backup({ databases: "shop", into: uri, incremental: true, revisionHistory: true, ...keys });

    // Another page (a fresh Strata) reads the backup over HTTP, counting what it fetches.
    const storage = counting(httpStorage(dav.url));
    const reader = new Strata({ storage: { [dav.url.replace(/\/$/, "")]: storage } });
    for (const asOf of times) {
      const read = await reader.scanBackup({ from: uri, latest: true, table: "shop.customers", asOf, ...keys });
      assert.equal(read.asOf, asOf);
      const fresh = new Strata({ storage: { [dav.url.replace(/\/$/, "")]: httpStorage(dav.url) } });
      await fresh.restore({ databases: "shop", from: uri, latest: true, asOf, ...keys });
      assert.deepEqual(asText(read.rows), asText(await fresh.scan("shop", "customers")), `customers at ${asOf}`);
      for (const key of ["customers-00003", "customers-00004", "customers-zz"]) {
        const got = await reader.getFromBackup({ from: uri, latest: true, table: "shop.customers", key: enc.encode(key), asOf, ...keys });
        const want = await fresh.get("shop", "customers", enc.encode(key));
        assert.deepEqual(got && dec.decode(got), want && dec.decode(want), `${key} at ${asOf}`);
      }
      fresh.free();
    }
    const latest = await reader.scanBackup({ from: uri, latest: true, table: "shop.customers", ...keys });
    assert.ok(asText(latest.rows).includes("customers-zz\tlate"));

    // One table of three: the reads of data files add up to about a third of the full backup's
    // data files, never the whole (each read is a footer, an index, or the table's blocks).
    const full = (await storage.list(`${encrypted ? "enc" : "plain"}/`)).filter(
      (o) => (o.path ?? o).includes("/data/") && !(o.path ?? o).includes("/incrementals/"),
    );
    const fullBytes = full.reduce((n, o) => n + o.size, 0);
    assert.ok(fullBytes > 3 * 1500 * 128, `the full backup's data files hold ${fullBytes} bytes`);
    storage.reads.length = 0;
    const again = await reader.scanBackup({ from: uri, latest: true, table: "shop.orders", ...keys });
    assert.equal(again.rows.length, 1500);
    const fetched = storage.reads.reduce((n, [, len]) => n + len, 0);
    const chunkSlack = encrypted ? storage.reads.length * 2 * (64 << 10) : 0;
    console.log(`read shop.orders${encrypted ? " (encrypted)" : ""}: ${fetched} bytes in ${storage.reads.length} reads; data files of the full backup: ${fullBytes} bytes`);
    assert.ok(fetched >= fullBytes / 3 - 16384, `fetched ${fetched} of ${fullBytes}`);
    assert.ok(fetched <= fullBytes / 3 + 16384 + chunkSlack, `fetched ${fetched} of ${fullBytes}: more than one table's share`);
    // The first rows only.
    const first = await reader.scanBackup({ from: uri, latest: true, table: "shop.orders", limit: 10, ...keys });
    assert.deepEqual(asText(first.rows), asText(again.rows).slice(0, 10));
    reader.free();
    db.free();
  });
}

test("scanBackup errors: a missing passphrase, a table not in the backup, a time outside it, a bad table name", async () => {
  const db = new Strata();
  await db.execute("CREATE DATABASE d");
  await db.execute("CREATE TABLE d.t");
  await db.put("d", "t", enc.encode("k"), enc.encode("v"));
  await db.backup({ databases: "d", into: "memory://e", encryptionPassphrase: PASS });
  await assert.rejects(db.scanBackup({ from: "memory://e", latest: true, table: "d.t" }), { code: "PRECONDITION" });
  await assert.rejects(db.scanBackup({ from: "memory://e", latest: true, table: "d.nope", encryptionPassphrase: PASS }), {
    code: "NOT_FOUND",
  });
  await assert.rejects(db.scanBackup({ from: "memory://e", latest: true, table: "d.t", asOf: "1", encryptionPassphrase: PASS }), {
    code: "INVALID_TIME",
  });
  await assert.rejects(db.scanBackup({ from: "memory://e", latest: true, table: "t", encryptionPassphrase: PASS }), {
    code: "INVALID_ARGUMENT",
  });
  const read = await db.scanBackup({ from: "memory://e", latest: true, table: "d.t", encryptionPassphrase: PASS });
  assert.deepEqual(asText(read.rows), ["k\tv"]);
  db.free();
});
