// The package's Node entry point: strata's WebAssembly, compiled from pkg/strata_wasm_bg.wasm
// synchronously on import (ready at once; no top-level await, so Node versions that can
// require() ES modules can also `require("strata-wasm")`), and the storage adapters that work
// in Node. The same module and glue (wasm-bindgen --target web) serve browsers (js/web.js).
//
//   import { Strata, fsStorage, httpStorage, MemoryKv } from "strata-wasm";

import { readFileSync } from "node:fs";

import { initSync } from "../pkg/strata_wasm.js";
import { setWasmModule } from "./instance.js";

const module = new WebAssembly.Module(readFileSync(new URL("../pkg/strata_wasm_bg.wasm", import.meta.url)));
setWasmModule(module);
initSync({ module });

export { Strata, StrataError, isStrataError, timestampToNanos, nanosToTimestamp } from "./api.js";
export { fsStorage } from "./fs.js";
export { httpStorage } from "./http.js";
export { MemoryKv } from "./memory-kv.js";

/** Nothing to do in Node (the module is ready on import); here so code can `await init()` everywhere. */
export default async function init() {}
export { init };
