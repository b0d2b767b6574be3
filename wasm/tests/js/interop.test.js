// Interoperability with the native CLI: a backup written by `strata` (native, embedded store,
// object_store files) restores through the wasm package, and one written by the wasm package
// (fsStorage) restores through `strata` — full + incremental layers, plain and encrypted. Both
// sides use the same directory: the CLI's `nodelocal://1/x` is `<store>/extern/x`, which the
// package mounts with fsStorage.
//
// The CLI binary is STRATA_BIN, or target/debug/strata of the workspace (scripts/test-all.sh
// builds it before this step: cargo build -p strata-native --bin strata).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

import { Strata, fsStorage } from "strata-wasm";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const STRATA = process.env.STRATA_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(repo, "target"), "debug", "strata");
const PASS = "interop passphrase";
const dirs = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function tempDir(name) {
  const d = mkdtempSync(join(tmpdir(), `strata-interop-${name}-`));
  dirs.push(d);
  return d;
}

/** Runs the CLI; returns its stdout (throws with its stderr if it fails). */
function cli(store, ...args) {
  assert.ok(existsSync(STRATA), `the native CLI is missing at ${STRATA}: build it with cargo build -p strata-native --bin strata`);
  const r = spawnSync(STRATA, ["--store", store, ...args], { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`strata ${args.join(" ")} failed (${r.status}):\n${r.stderr}`);
  return r.stdout;
}

/** Text as the CLI prints it: control characters (C0, DEL, C1, bidi overrides) escaped, as
 * strata_core::escape_control does. */
function escapeControl(text) {
  const named = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };
  return Array.from(text, (ch) => {
    const c = ch.codePointAt(0);
    const control = c < 0x20 || (c >= 0x7f && c <= 0x9f);
    const bidi = c === 0x200e || c === 0x200f || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
    if (named[ch]) return named[ch];
    if (!control && !bidi) return ch;
    return c < 0x80 ? `\\x${c.toString(16).padStart(2, "0")}` : `\\u{${c.toString(16)}}`;
  }).join("");
}

/** Bytes as the CLI's `scan` prints them: UTF-8 with control characters escaped, otherwise
 * printable ASCII and \xNN. */
function showBytes(b) {
  try {
    return escapeControl(new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(b));
  } catch {
    return Array.from(b, (c) => (c >= 0x20 && c <= 0x7e ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, "0")}`)).join("");
  }
}

/** A table as the CLI's `scan` prints it, read through the wasm package. */
async function wasmScan(db, database, table) {
  return (await db.scan(database, table)).map(([k, v]) => `${showBytes(k)}\t${showBytes(v)}\n`).join("");
}

test("a backup written by the native CLI restores through the wasm package", async () => {
  const store = tempDir("native");
  cli(store, "workload", "init", "bank", "--rows", "2000");
  // An encrypted collection (full + incremental) and a plain backup directory (full + appended layer).
  cli(store, "sql", `BACKUP DATABASE bank INTO 'nodelocal://1/collection' WITH encryption_passphrase = '${PASS}'`);
  cli(store, "sql", "BACKUP DATABASE bank TO 'nodelocal://1/directory'");
  const firstKey = cli(store, "scan", "bank.accounts").split("\t")[0];
  cli(store, "delete", "bank.accounts", firstKey);
  cli(store, "put", "bank.accounts", "zz-added-after-the-full-backup", "{\"balance\":1}");
  cli(store, "put", "bank.customers", "0000000001", "renamed");
  cli(store, "sql", `BACKUP DATABASE bank INTO LATEST IN 'nodelocal://1/collection' WITH encryption_passphrase = '${PASS}'`);
  cli(store, "sql", "BACKUP DATABASE bank TO 'nodelocal://1/directory'");
  const accounts = cli(store, "scan", "bank.accounts");
  const customers = cli(store, "scan", "bank.customers");
  assert.ok(accounts.includes("zz-added-after-the-full-backup") && !accounts.startsWith(`${firstKey}\t`));

  const db = new Strata({ storage: { "nodelocal://1": fsStorage(join(store, "extern")) } });
  const layers = await db.showBackup({ from: "nodelocal://1/collection", latest: true, encryptionPassphrase: PASS });
  assert.deepEqual([...new Set(layers.map((l) => l.backupType))], ["full", "incremental"]);

  await db.restore({ databases: "bank", from: "nodelocal://1/collection", latest: true, encryptionPassphrase: PASS });
  assert.equal(await wasmScan(db, "bank", "accounts"), accounts);
  assert.equal(await wasmScan(db, "bank", "customers"), customers);
  await db.restore({ databases: "bank", from: "nodelocal://1/directory", newDbName: "plain" });
  assert.equal(await wasmScan(db, "plain", "accounts"), accounts);
  await assert.rejects(
    db.restore({ databases: "bank", from: "nodelocal://1/collection", latest: true, newDbName: "x", encryptionPassphrase: "wrong" }),
    (e) => e.code === "WRONG_KEY",
  );
});

test("a backup written by the wasm package restores through the native CLI", async () => {
  const store = tempDir("wasm");
  const db = new Strata({ storage: { "nodelocal://1": fsStorage(join(store, "extern")) } });
  await db.execute("CREATE DATABASE app");
  await db.execute("CREATE TABLE app.events");
  await db.execute("CREATE TABLE app.blobs");
  const enc = new TextEncoder();
  for (let i = 0; i < 1500; i++) {
    await db.put("app", "events", enc.encode(`event-${String(i).padStart(6, "0")}`), enc.encode(`{"n":${i},"kind":"click"}`));
  }
  // Keys and values that are not UTF-8 travel too.
  for (let i = 0; i < 64; i++) {
    await db.put("app", "blobs", Uint8Array.of(0xff, i, 0), Uint8Array.from({ length: 50 }, (_, j) => (i * 7 + j) & 0xff));
  }
  await db.backup({ databases: "app", into: "nodelocal://1/from-wasm", encryptionPassphrase: PASS });
  await db.backup({ databases: "app", to: "nodelocal://1/from-wasm-plain" });
  await db.delete("app", "events", enc.encode("event-000000"));
  await db.put("app", "events", enc.encode("event-999999"), enc.encode("late"));
  await db.backup({ databases: "app", into: "nodelocal://1/from-wasm", incremental: true, encryptionPassphrase: PASS });
  await db.backup({ databases: "app", to: "nodelocal://1/from-wasm-plain" });
  const events = await wasmScan(db, "app", "events");
  const blobs = await wasmScan(db, "app", "blobs");

  cli(store, "sql", `RESTORE DATABASE app FROM LATEST IN 'nodelocal://1/from-wasm' WITH encryption_passphrase = '${PASS}'`);
  assert.equal(cli(store, "scan", "app.events"), events);
  assert.equal(cli(store, "scan", "app.blobs"), blobs);
  cli(store, "sql", "RESTORE DATABASE app FROM 'nodelocal://1/from-wasm-plain' WITH new_db_name = 'plain'");
  assert.equal(cli(store, "scan", "plain.events"), events);
  const shown = cli(store, "--format", "json", "sql", `SHOW BACKUP LATEST IN 'nodelocal://1/from-wasm' WITH encryption_passphrase = '${PASS}'`);
  const rows = JSON.parse(shown);
  assert.deepEqual([...new Set(rows.map((r) => r.backup_type))], ["full", "incremental"]);
  // The CLI's key-less verification checks every file the wasm package wrote.
  cli(store, "verify", "nodelocal://1/from-wasm-plain");
});
