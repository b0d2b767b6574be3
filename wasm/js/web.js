// The package's browser entry point: strata's WebAssembly (call `await init()` once before using
// it: it fetches and compiles `pkg/strata_wasm_bg.wasm`, beside the glue module) and the storage
// adapters that work in browsers.
//
//   import init, { Strata, opfsStorage } from "strata-wasm";
//   await init();

import init, { initSync } from "../pkg/strata_wasm.js";

export default init;
export { init, initSync };
export { Strata, StrataError, isStrataError, timestampToNanos, nanosToTimestamp } from "./api.js";
export { opfsStorage } from "./opfs.js";
export { indexedDbStorage } from "./indexeddb.js";
export { httpStorage } from "./http.js";
export { MemoryKv } from "./memory-kv.js";
