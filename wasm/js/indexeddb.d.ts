import type { StoragePlugin } from "../pkg/types.js";

export interface IndexedDbStorage extends StoragePlugin {
  readonly name: string;
  /** Closes the database connection. */
  close(): Promise<void>;
}

/** A storage plugin over an IndexedDB database (default name "strata-backups"). */
export function indexedDbStorage(name?: string): IndexedDbStorage;
