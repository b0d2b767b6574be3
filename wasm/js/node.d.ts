// The Node entry point's types: no web-only types (tsc with lib ["es2023"] and no DOM accepts them).
export * from "../pkg/types.js";
export { Strata, StrataError, isStrataError, timestampToNanos, nanosToTimestamp } from "./api.js";
export { fsStorage, FsStorage, FsStorageOptions } from "./fs.js";
export { httpStorage, HttpStorage, HttpStorageOptions, HttpFetch } from "./http.js";
export { MemoryKv } from "./memory-kv.js";

/** Nothing to do in Node (the module is ready on import); here so code can `await init()` everywhere. */
export default function init(): Promise<void>;
export { init };
