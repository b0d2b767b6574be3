// The example page: notes kept in the page (a MemoryKv, strata's KV plugin in plain JavaScript),
// backed up full and then incrementally, encrypted, into OPFS, restored into a fresh store, and
// read straight from the backup as of a chosen time (scanBackup: only the table's blocks are read).
// Served from the package root (wasm/) so that ../../js/web.js and ../../pkg/ resolve;
// driven by tests/browser/example.test.js.
import init, { Strata, MemoryKv, opfsStorage } from "../../js/web.js";

const $ = (id) => document.getElementById(id);
const enc = new TextEncoder();
const dec = new TextDecoder();
// A directory of its own per page load, so reloading starts a new collection.
const COLLECTION = `opfs://notes/run-${Date.now()}`;

const state = { step: "loading", backups: [], restoredMatches: null, browsed: null, error: null };
window.exampleState = state;

function log(line) {
  $("log").textContent += `${new Date().toISOString().slice(11, 23)}  ${line}\n`;
}

function status(text, kind = "") {
  $("status").textContent = text;
  $("status").className = kind;
}

async function notesOf(db) {
  return (await db.scan("notes", "items")).map(([k, v]) => [dec.decode(k), dec.decode(v)]);
}

function show(list, notes) {
  list.replaceChildren(
    ...notes.map(([k, v]) => {
      const li = document.createElement("li");
      li.innerHTML = "<span></span><code></code>";
      li.firstChild.textContent = v;
      li.lastChild.textContent = k;
      return li;
    }),
  );
}

async function main() {
  await init();
  const kv = new MemoryKv();
  const db = new Strata({ kv });
  db.mount("opfs://notes", opfsStorage("strata-example"));
  await db.execute("CREATE DATABASE notes");
  await db.execute("CREATE TABLE notes.items");
  for (const [k, v] of [
    ["note-1", "Buy oat milk"],
    ["note-2", "Call the plumber about the leak"],
    ["note-3", "Draft the quarterly report"],
    ["note-4", "Book train tickets to Lyon"],
  ]) {
    await db.put("notes", "items", enc.encode(k), enc.encode(v));
  }
  const refresh = async () => show($("notes"), await notesOf(db));
  await refresh();

  const passphrase = () => $("passphrase").value;
  const buttons = ["full", "change", "incremental", "restore", "browse"].map($);
  const enable = (id) => buttons.forEach((b) => (b.disabled = b.id !== id));
  const run = (id, next, fn) => {
    $(id).addEventListener("click", async () => {
      buttons.forEach((b) => (b.disabled = true));
      try {
        await fn();
        state.step = id;
        enable(next);
      } catch (e) {
        state.error = `${e.code ?? e.name}: ${e.message}`;
        status(`Failed: ${state.error}`, "error");
        log(`error ${state.error}`);
      }
    });
  };

  const backup = async (incremental) => {
    let last;
    const result = await db.backup({
      databases: "notes",
      into: COLLECTION,
      incremental,
      encryptionPassphrase: passphrase(),
      onProgress: (p) => (last = p),
    });
    state.backups.push(result);
    const option = document.createElement("option");
    option.value = result.endTime;
    option.textContent = `${result.backupType} backup, ${new Date(Number(BigInt(result.endTime.split(".")[0]) / 1000000n)).toISOString().slice(11, 23)} (${result.endTime})`;
    $("asof").append(option);
    log(`${result.backupType} backup: ${result.rows} rows, ${result.files} files, ${result.bytes} bytes → ${COLLECTION}${result.path.startsWith("/") ? result.path : ""}`);
    log(`  progress: ${last.rows} rows read, ${last.storageBytes} bytes written in ${last.files} files`);
    status(`${result.backupType === "full" ? "Full" : "Incremental"} backup done (${result.rows} rows).`, "ok");
  };

  run("full", "change", () => backup(false));
  run("change", "incremental", async () => {
    await db.put("notes", "items", enc.encode("note-2"), enc.encode("Plumber comes Tuesday 9:00"));
    await db.delete("notes", "items", enc.encode("note-3"));
    await db.put("notes", "items", enc.encode("note-5"), enc.encode("Renew the passport"));
    await refresh();
    log("changed note-2, deleted note-3, added note-5");
    status("Notes changed: take an incremental backup.");
  });
  run("incremental", "restore", () => backup(true));
  run("restore", "browse", async () => {
    // A fresh store, as on a new device: restore the whole chain (full + incremental).
    const fresh = new Strata({ kv: new MemoryKv() });
    fresh.mount("opfs://notes", opfsStorage("strata-example"));
    const layers = await fresh.showBackup({ from: COLLECTION, latest: true, encryptionPassphrase: passphrase() });
    log(`the chain: ${[...new Set(layers.map((l) => l.backupType))].join(" + ")}`);
    const r = await fresh.restore({ databases: "notes", from: COLLECTION, latest: true, encryptionPassphrase: passphrase() });
    const restored = await notesOf(fresh);
    show($("restored"), restored);
    const original = await notesOf(db);
    state.restoredMatches = JSON.stringify(restored) === JSON.stringify(original);
    state.restoredNotes = restored.length;
    log(`restored ${r.rows} rows of ${r.tables} table as of ${r.asOf}`);
    status(
      state.restoredMatches ? `Restored ${restored.length} notes: identical to the page's.` : "Restored notes differ!",
      state.restoredMatches ? "ok" : "error",
    );
    fresh.free();
  });

  // Read the notes straight from the backup as of the chosen time, without restoring it.
  run("browse", "browse", async () => {
    const asOf = $("asof").value;
    const read = await db.scanBackup({
      from: COLLECTION,
      latest: true,
      table: "notes.items",
      asOf,
      encryptionPassphrase: passphrase(),
    });
    const notes = read.rows.map(([k, v]) => [dec.decode(k), dec.decode(v)]);
    show($("restored"), notes);
    $("restored-title").textContent = `Read from the backup as of ${asOf}`;
    state.browsed = notes;
    log(`read ${notes.length} notes from the backup as of ${read.asOf} (no restore)`);
    status(`${notes.length} notes in the backup as of the chosen time.`, "ok");
  });

  enable("full");
  state.step = "ready";
  status("Ready: take a full backup.");
  log(`strata loaded; ${Object.keys(kv.snapshot()).length} keys in the page's store`);
}

main().catch((e) => {
  state.error = `${e.code ?? e.name}: ${e.message}`;
  status(`Failed to start: ${state.error}`, "error");
});
