// The package's Node entry point: strata's WebAssembly (loaded synchronously, ready on import)
// and the storage adapters that work in Node.
//
//   import { Strata, fsStorage, httpStorage, MemoryKv } from "strata-wasm";

export { Strata } from "../pkg/node/strata_wasm.js";
export { fsStorage } from "./fs.js";
export { httpStorage } from "./http.js";
export { MemoryKv } from "./memory-kv.js";

/** Nothing to do in Node (the module is ready on import); here so code can `await init()` everywhere. */
export default async function init() {}
export { init };
