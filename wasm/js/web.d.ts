export * from "../pkg/web/strata_wasm.js";
export { default, default as init, initSync } from "../pkg/web/strata_wasm.js";
export { opfsStorage, OpfsStorage } from "./opfs.js";
export { indexedDbStorage, IndexedDbStorage } from "./indexeddb.js";
export { httpStorage, HttpStorage, HttpStorageOptions } from "./http.js";
export { MemoryKv } from "./memory-kv.js";
