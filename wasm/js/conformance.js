// strata-wasm/conformance: strata's own conformance suites (the Rust ones every built-in store
// and storage passes, compiled into the package's WebAssembly), run on a plugin written in
// JavaScript.
//
//   import { checkKvPlugin, checkStoragePlugin } from "strata-wasm/conformance";
//   await checkKvPlugin(() => new MyKv());            // rejects, naming each failed check
//   await checkStoragePlugin(myStorage);
//
// Each check runs in an instance of the WebAssembly module of its own (a failed check traps its
// instance; the application's is never touched): the glue module is imported again under
// another URL and given the compiled module. Works in Node and in browsers served as ES modules
// (a bundler that merges modules by path defeats this; run the checks unbundled).

import { wasmModule } from "./instance.js";
import { StrataError } from "./api.js";

let instances = 0;
let compiled = null;

async function moduleForInstances() {
  if (compiled) return compiled;
  const url = new URL("../pkg/strata_wasm_bg.wasm", import.meta.url);
  compiled = wasmModule();
  if (!compiled && typeof process === "object" && process.versions?.node) {
    const { readFile } = await import("node:fs/promises");
    compiled = await WebAssembly.compile(await readFile(url));
  }
  if (!compiled) compiled = await WebAssembly.compileStreaming(fetch(url));
  return compiled;
}

/** A fresh instance of the glue and the module. */
async function freshInstance() {
  const module = await moduleForInstances();
  instances += 1;
  const glue = await import(`../pkg/strata_wasm.js?conformance=${instances}`);
  glue.initSync({ module });
  return glue;
}

/** Runs check `name`; resolves to null when it passes, else to its failure message. */
function runCheck(glue, kind, name, subject, gc) {
  return new Promise((resolve) => {
    let panic = null;
    let scheduled = false;
    let settled = false;
    const settle = (value) => {
      if (!settled) {
        settled = true;
        resolve(value);
      }
    };
    const step = () => {
      scheduled = false;
      if (settled) return;
      try {
        if (glue.conformancePoll()) settle(null);
      } catch (e) {
        // A failed check traps its instance (after the panic hook handed over the message).
        settle({ message: panic ?? String(e?.stack ?? e), trapped: true });
      }
    };
    const wake = () => {
      if (!scheduled) {
        scheduled = true;
        queueMicrotask(step);
      }
    };
    try {
      glue.conformanceStart(kind, name, subject, gc ?? null, wake, (message) => {
        panic = message;
      });
    } catch (e) {
      settle({ message: String(e?.message ?? e), trapped: panic !== null });
      return;
    }
    step();
  });
}

async function runSuite(kind, subjectFor, { gc, skip = {}, onCheck } = {}) {
  let glue = await freshInstance();
  const names = glue.conformanceChecks(kind, typeof gc === "function");
  for (const skipped of Object.keys(skip)) {
    if (!names.includes(skipped)) {
      throw new StrataError(`conformance: no check named ${skipped} to skip (checks: ${names.join(", ")})`, "INVALID_ARGUMENT");
    }
  }
  const report = { passed: [], failed: [], skipped: [] };
  for (const name of names) {
    if (name in skip) {
      report.skipped.push({ name, reason: String(skip[name]) });
      continue;
    }
    const failure = await runCheck(glue, kind, name, await subjectFor(), gc);
    if (failure === null) {
      report.passed.push(name);
      onCheck?.({ name, ok: true });
    } else {
      report.failed.push({ name, message: failure.message });
      onCheck?.({ name, ok: false, message: failure.message });
      if (failure.trapped) glue = await freshInstance();
    }
  }
  if (report.failed.length > 0) {
    const lines = report.failed.map((f) => `  ${f.name}: ${f.message}`);
    const e = new StrataError(
      `${kind} conformance: ${report.failed.length} of ${names.length} checks failed\n${lines.join("\n")}`,
      "PRECONDITION",
    );
    e.report = report;
    throw e;
  }
  return report;
}

/**
 * Runs the KV conformance suite: each check on a fresh, empty plugin from `factory` (which may
 * return a Promise). With `options.gc(plugin, threshold)` (garbage-collect the plugin the way
 * `MemoryKv.gc` does), the garbage-collection checks too.
 */
export async function checkKvPlugin(factory, options = {}) {
  if (typeof factory !== "function") {
    throw new StrataError("checkKvPlugin: expected a function returning a fresh KvPlugin", "INVALID_ARGUMENT");
  }
  return runSuite("kv", async () => await factory(), options);
}

/**
 * Runs the storage conformance suite on `plugin` (each check works in a scratch directory of its
 * own under `strata-conformance/` and removes what it wrote when it passes).
 */
export async function checkStoragePlugin(plugin, options = {}) {
  if (plugin === null || typeof plugin !== "object") {
    throw new StrataError("checkStoragePlugin: expected a StoragePlugin object", "INVALID_ARGUMENT");
  }
  return runSuite("storage", () => plugin, options);
}
