// The compiled WebAssembly module, where the entry point that loaded it (js/node.js) leaves it
// for the conformance checks (js/conformance.js), which run each plugin in instances of their own.

let compiled = null;

/** Records the compiled module. */
export function setWasmModule(module) {
  compiled = module;
}

/** The compiled module, or null when it was loaded by URL (the browser entry's init()). */
export function wasmModule() {
  return compiled;
}
