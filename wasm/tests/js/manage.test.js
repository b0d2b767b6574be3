// Managing backups from JavaScript (issue 15 §2–4): `copy`, `compact` and `forget` on real
// storages — the built-in memory:// and a directory through fsStorage — as `strata copy |
// compact | forget` run them: a copied chain (re-encrypted or not) restores identically, a
// compacted chain restores the same rows as the chain, and forget removes only what no kept
// backup needs (and nothing without `prune`).
// Run by scripts/test-all.sh (step js) after wasm/build.sh:  cd wasm && node --test tests/js/
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import init, { Strata, MemoryKv, fsStorage } from "strata-wasm";

const enc = new TextEncoder();
const dec = new TextDecoder();
const PASS = "correct horse battery staple";
const PASS2 = "another passphrase entirely";

await init();
const dirs = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A place backups go: the built-in memory:// or a directory mounted as nodelocal://1. */
function place(kind) {
  if (kind === "memory") return { options: {}, uri: (name) => `memory://${name}`, files: null };
  const dir = mkdtempSync(join(tmpdir(), "strata-manage-"));
  dirs.push(dir);
  const files = (name) => {
    try {
      return readdirSync(join(dir, name), { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => join(e.parentPath ?? e.path, e.name).slice(dir.length))
        .sort();
    } catch {
      return [];
    }
  };
  return { options: { storage: { "nodelocal://1": fsStorage(dir) } }, uri: (name) => `nodelocal://1/${name}`, files };
}

/** The rows of db.table as "key\tvalue" lines. */
async function rows(db, database, table, asOf) {
  return (await db.scan(database, table, asOf ? { asOf } : undefined)).map(([k, v]) => `${dec.decode(k)}\t${dec.decode(v)}`);
}

async function seed(db) {
  await db.execute("CREATE DATABASE shop");
  await db.execute("CREATE TABLE shop.orders");
  await db.execute("CREATE TABLE shop.customers");
  const orders = [];
  for (let i = 0; i < 200; i++) orders.push([enc.encode(`order-${String(i).padStart(4, "0")}`), enc.encode(`total=${i * 3}`)]);
  await db.putMany("shop", "orders", orders);
  await db.put("shop", "customers", enc.encode("c1"), enc.encode("ada"));
}

/** Changes between backups: a delete, an update, an insert. */
async function change(db, n) {
  await db.delete("shop", "orders", enc.encode(`order-${String(n).padStart(4, "0")}`));
  await db.put("shop", "orders", enc.encode("order-0100"), enc.encode(`total=changed ${n}`));
  await db.put("shop", "customers", enc.encode(`c${n + 2}`), enc.encode(`new ${n}`));
}

/** Both tables of database `a` and database `b` hold the same rows. */
async function sameRows(db, a, b, label) {
  for (const t of ["orders", "customers"]) assert.deepEqual(await rows(db, b, t), await rows(db, a, t), `${label}: ${t}`);
}

for (const kind of ["memory", "fs"]) {
  test(`copy (${kind}): the copied chain restores identically, re-encrypted or as stored, and a rerun resumes`, async () => {
    const p = place(kind);
    const db = new Strata(p.options);
    await seed(db);
    const src = p.uri("src");
    // Each passphrase costs a key derivation (about a second in the debug build the tests use):
    // the memory:// source is plain, the directory's encrypted.
    const keys = kind === "fs" ? { encryptionPassphrase: PASS } : {};
    await db.backup({ databases: "shop", into: src, ...keys });
    await change(db, 1);
    await db.backup({ databases: "shop", into: src, incremental: true, ...keys });

    // Re-encrypted with another passphrase: the copy opens with it, and only with it.
    const re = p.uri("reencrypted");
    const copied = await db.copy({ from: src, to: re, ...keys, newEncryptionPassphrase: PASS2 });
    assert.equal(copied.chains, 1);
    assert.equal(copied.layers, 2);
    assert.ok(copied.filesCopied >= 2 && copied.bytes > 0, JSON.stringify(copied));
    await db.restore({ databases: "shop", from: re, latest: true, newDbName: "re", encryptionPassphrase: PASS2 });
    await sameRows(db, "shop", "re", "re-encrypted copy");
    await assert.rejects(db.restore({ databases: "shop", from: re, latest: true, newDbName: "x", ...keys }), {
      code: kind === "fs" ? "WRONG_KEY" : "PRECONDITION",
    });
    if (kind === "memory") {
      const checked = await db.showBackup({ from: re, latest: true, checkFiles: true, encryptionPassphrase: PASS2 });
      assert.deepEqual(checked, [], "the copy verifies clean with its new key");
    }

    // As stored (no key needed), one chain: the same directory names, the old passphrase.
    const [full] = await db.showBackups(src);
    const plain = p.uri("asstored");
    const asStored = await db.copy({ from: src, to: plain, subdir: full });
    assert.equal(asStored.layers, 2);
    assert.deepEqual(await db.showBackups(plain), [full]);
    await db.restore({ databases: "shop", from: plain, subdir: full, newDbName: "plain", ...keys });
    await sameRows(db, "shop", "plain", "copy as stored");

    // A rerun finds every data file there and intact.
    if (kind === "memory") {
      const again = await db.copy({ from: src, to: re, ...keys, newEncryptionPassphrase: PASS2 });
      assert.equal(again.filesCopied, 0);
      assert.equal(again.filesSkipped, copied.filesCopied);
    }
    if (p.files) assert.ok(p.files("reencrypted").some((f) => f.includes("/incrementals/")), p.files("reencrypted").join("\n"));

    await assert.rejects(db.copy({ from: src }), { code: "INVALID_ARGUMENT" });
    await assert.rejects(db.copy({ from: src, to: p.uri("x"), decrypt: true, newEncryptionPassphrase: PASS2 }), {
      code: "INVALID_ARGUMENT",
    });
    await assert.rejects(db.copy({ from: p.uri("nothing"), to: p.uri("y") }), { code: "NOT_FOUND" });
    db.free();
  });

  test(`compact (${kind}): the compacted layer restores the same rows as the chain, at its end and before`, async () => {
    const p = place(kind);
    const db = new Strata(p.options);
    await seed(db);
    const coll = p.uri("coll");
    // (Encrypted chains compact the same way: native/tests/cli_manage; a key derivation costs
    // about a second in the debug build these tests use.)
    const keys = {};
    await db.backup({ databases: "shop", into: coll, revisionHistory: true, ...keys });
    await change(db, 1);
    const middle = await db.now();
    await db.backup({ databases: "shop", into: coll, incremental: true, revisionHistory: true, ...keys });
    await change(db, 2);
    const last = await db.backup({ databases: "shop", into: coll, incremental: true, revisionHistory: true, ...keys });

    const compacted = await db.compact({ collection: coll, ...keys });
    assert.equal(compacted.endTime, last.endTime);
    assert.equal(compacted.revisionHistory, true);
    assert.ok(compacted.rows > 0 && compacted.files >= 1, JSON.stringify(compacted));
    const [chainFull, newFull] = await db.showBackups(coll);
    assert.equal(newFull, compacted.path);
    const layers = await db.showBackup({ from: coll, subdir: compacted.path, ...keys });
    assert.ok(layers.every((r) => r.backupType === "full"), JSON.stringify(layers));

    await db.restore({ databases: "shop", from: coll, subdir: chainFull, newDbName: "chain", ...keys });
    await db.restore({ databases: "shop", from: coll, subdir: compacted.path, newDbName: "compacted", ...keys });
    await sameRows(db, "chain", "compacted", "at the end");
    await sameRows(db, "shop", "compacted", "at the end, against the source");
    // With revision history kept, a time inside the chain restores the same from both.
    await db.restore({ databases: "shop", from: coll, subdir: chainFull, asOf: middle, newDbName: "chainmid", ...keys });
    await db.restore({ databases: "shop", from: coll, subdir: compacted.path, asOf: middle, newDbName: "compmid", ...keys });
    await sameRows(db, "chainmid", "compmid", "at a time inside the chain");
    assert.ok((await rows(db, "compmid", "orders")).includes("order-0002\ttotal=6"));

    await assert.rejects(db.compact({ collection: coll, subdir: compacted.path, ...keys }), { code: "PRECONDITION" });
    db.free();
  });

  test(`forget (${kind}): removes only what no kept backup needs, and a dry run deletes nothing`, async () => {
    const p = place(kind);
    // Backups are dated by the store's clock: this one moves an hour before each backup, from
    // 2026-03-02 10:00 UTC (forget decides by those dates, and by the store's time).
    let now = 1772445600000000000n;
    const db = new Strata({ ...p.options, kv: new MemoryKv({ clock: () => now }) });
    await seed(db);
    const coll = p.uri("coll");
    const backup = async (incremental) => {
      now += 3600000000000n;
      await db.backup({ databases: "shop", into: coll, incremental });
    };
    // Chain A: a full backup and two incrementals; chain B: a full backup and one incremental.
    await backup(false);
    for (const n of [1, 2]) {
      await change(db, n);
      await backup(true);
    }
    await change(db, 3);
    await backup(false);
    await change(db, 4);
    await backup(true);
    const [a, b] = await db.showBackups(coll);
    const before = p.files?.("coll");

    // keepLast 1 keeps B's incremental, and B's full backup it needs; chain A goes whole.
    const plan = await db.forget({ collection: coll, keepLast: 1 });
    assert.equal(plan.pruned, false);
    assert.deepEqual(
      plan.backups.map((e) => [e.path.startsWith(a) ? "A" : "B", e.type, e.action]),
      [
        ["A", "full", "remove"],
        ["A", "incremental", "remove"],
        ["A", "incremental", "remove"],
        ["B", "full", "keep"],
        ["B", "incremental", "keep"],
      ],
    );
    assert.match(plan.backups[3].reasons, /needed by/);
    assert.equal(plan.backups[4].reasons, "last 1");
    assert.equal(plan.kept, 2);
    assert.equal(plan.removed, 3);
    // The dry run deleted nothing.
    assert.deepEqual(await db.showBackups(coll), [a, b]);
    assert.equal((await db.showBackup({ from: coll, subdir: a })).length > 0, true);
    if (before) assert.deepEqual(p.files("coll"), before);

    // keepDaily 1 (the newest of the day: B's incremental) and keepHourly 2 (B's two): the same.
    for (const policy of [{ keepDaily: 1 }, { keepHourly: 2 }]) {
      const other = await db.forget({ collection: coll, ...policy });
      assert.deepEqual(other.backups.map((e) => e.action), plan.backups.map((e) => e.action), JSON.stringify(policy));
    }
    // keepHourly 4 keeps A's last incremental: chain A stays whole.
    const hourly = await db.forget({ collection: coll, keepHourly: 4 });
    assert.deepEqual(hourly.backups.map((e) => e.action), ["keep", "keep", "keep", "keep", "keep"]);
    assert.match(hourly.backups[0].reasons, /needed by/);

    const pruned = await db.forget({ collection: coll, keepLast: 1, prune: true });
    assert.equal(pruned.pruned, true);
    assert.deepEqual(await db.showBackups(coll), [b]);
    if (before) {
      const left = p.files("coll");
      assert.ok(left.length > 0 && left.every((f) => !f.includes(a)), left.join("\n"));
    }
    // Every kept backup still restores, to the rows of its time.
    await db.restore({ databases: "shop", from: coll, latest: true, newDbName: "kept" });
    await sameRows(db, "shop", "kept", "the kept chain");
    // Nothing more to forget.
    const again = await db.forget({ collection: coll, keepLast: 1, prune: true });
    assert.equal(again.removed, 0);

    await assert.rejects(db.forget({ collection: coll }), { code: "INVALID_ARGUMENT" });
    await assert.rejects(db.forget({ collection: coll, keepLast: -1 }), { code: "INVALID_ARGUMENT" });
    await assert.rejects(db.forget({ collection: coll, keepWithin: "3y" }), (e) => {
      assert.equal(e.code, "INVALID_ARGUMENT");
      assert.match(e.message, /keep_within: '3y': the unit must be s, m, h, d or w/);
      return true;
    });
    await assert.rejects(db.forget({ collection: coll, keepLastt: 1 }), { code: "INVALID_ARGUMENT" });
    db.free();
  });
}
