export * from "../pkg/node/strata_wasm.js";
export { fsStorage, FsStorage, FsStorageOptions } from "./fs.js";
export { httpStorage, HttpStorage, HttpStorageOptions } from "./http.js";
export { MemoryKv } from "./memory-kv.js";

/** Nothing to do in Node (the module is ready on import); here so code can `await init()` everywhere. */
export default function init(): Promise<void>;
export { init };
