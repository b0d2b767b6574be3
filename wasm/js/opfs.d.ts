import type { StoragePlugin } from "../pkg/types.js";

export type OpfsStorage = StoragePlugin;

/**
 * A storage plugin over the browser's Origin Private File System: `dir` is a directory handle,
 * or a path below the origin's OPFS root (created as needed; default: the root).
 */
export function opfsStorage(dir?: FileSystemDirectoryHandle | string): OpfsStorage;
