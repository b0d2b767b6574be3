import type { StoragePlugin } from "../pkg/types.js";

export interface FsStorageOptions {
  /** Sync each file and its directory before a write returns (default true). */
  fsync?: boolean;
}

export interface FsStorage extends StoragePlugin {
  /** The absolute directory the objects live in. */
  readonly root: string;
}

/**
 * A storage plugin over a directory of Node's file system, in the layout the native `strata` CLI
 * uses (`nodelocal://1/x` is `<store>/extern/x`). Writes are atomic (temporary file, then rename
 * or hard link).
 */
export function fsStorage(root: string, options?: FsStorageOptions): FsStorage;
