export * from "../pkg/types.js";
export type { InitInput, InitOutput, SyncInitInput } from "../pkg/strata_wasm.js";
export { default, default as init, initSync } from "../pkg/strata_wasm.js";
export { Strata, StrataError, isStrataError, timestampToNanos, nanosToTimestamp } from "./api.js";
export { opfsStorage, OpfsStorage } from "./opfs.js";
export { indexedDbStorage, IndexedDbStorage } from "./indexeddb.js";
export { httpStorage, HttpStorage, HttpStorageOptions, HttpFetch } from "./http.js";
export { MemoryKv } from "./memory-kv.js";
