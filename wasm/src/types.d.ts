
// ---- Results and errors -------------------------------------------------------------------

/** One cell of a result: SQL NULL is `null`; integers beyond ±2^53 arrive as `bigint`. */
export type Value = null | boolean | number | bigint | string;

/** What `Strata.execute` resolves to: column names and rows, each row as long as `columns`. */
export interface QueryResult {
  columns: string[];
  rows: Value[][];
  /** Warnings that did not fail the statement (e.g. an incremental layer skipped for its missing BACKUP_MANIFEST). */
  notices: string[];
}

/** The stable codes of `StrataError.code` (more may be added; switch with a default branch). */
export type StrataErrorCode =
  | "INVALID_STATEMENT"
  | "INVALID_ARGUMENT"
  | "NOT_SUPPORTED"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "PRECONDITION"
  | "CORRUPT"
  | "WRONG_KEY"
  | "INVALID_TIME"
  | "STORAGE"
  | "KV"
  | "CANCELLED";

/**
 * Every Strata method rejects with this: an `Error` named "StrataError". A wrong encryption
 * passphrase is `WRONG_KEY` (none, for an encrypted backup, `PRECONDITION`), a damaged backup `CORRUPT`, a
 * missing one `NOT_FOUND`, a statement that does not parse `INVALID_STATEMENT`, a cancelled call
 * `CANCELLED`, a plugin's failure `STORAGE` or `KV`.
 */
export interface StrataError extends Error {
  name: "StrataError";
  code: StrataErrorCode;
  /** Whether the same call may succeed if tried again. */
  retryable: boolean;
}

// ---- Options of the calls -----------------------------------------------------------------

/** `new Strata(options)`. */
export interface StrataOptions {
  /** The store to back up and restore into; default: the built-in in-memory MVCC store. */
  kv?: KvPlugin;
  /** Storage to mount, by URI prefix (see `Strata.mount`), e.g. `{ "nodelocal://1": fsStorage(dir) }`. */
  storage?: Record<string, StoragePlugin>;
}

/** How far a backup or restore has got, reported to `onProgress` after every step. */
export interface Progress {
  operation: "backup" | "restore" | "statement";
  /** Between 0 and 1: work units exported (backup) or the chain's bytes ingested (restore); 1 when done. */
  fraction: number;
  /** Rows (versions) exported (backup) or ingested (restore). */
  rows: number;
  /** Key and value bytes of those rows. */
  bytes: number;
  /** Bytes written to backup storage (backup) or read from it (restore). */
  storageBytes: number;
  /** Files written (backup) or read (restore). */
  files: number;
  /** True on the last report, once the statement has succeeded. */
  done: boolean;
}

/** What every long call takes besides its own options. */
export interface RunOptions {
  /** Called (synchronously, often) as the work advances; what it throws is ignored. */
  onProgress?: (progress: Progress) => void;
  /** Cancels the call at its next step: it rejects with code `CANCELLED`, and a cancelled backup leaves no backup. */
  signal?: AbortSignal;
}

/** What to back up: the whole cluster (neither given), databases, or tables (`"db.table"`, `"db.*"`). */
export interface Targets {
  databases?: string | string[];
  tables?: string | string[];
}

/** `backup(options)`: `BACKUP [targets] {INTO | INTO LATEST IN | TO} … [AS OF SYSTEM TIME …] [WITH …]`. */
export interface BackupOptions extends Targets, RunOptions {
  /** A collection: a new full backup in a dated subdirectory (`INTO 'uri'`). */
  into?: string;
  /** With `into`: append an incremental layer to the collection's newest full backup (`INTO LATEST IN`). */
  incremental?: boolean;
  /** With `into`: append an incremental layer to this full backup of the collection (`INTO 'subdir' IN`). */
  subdir?: string;
  /** A backup directory (`TO 'uri'`): a full backup, or an incremental layer if it holds one already. */
  to?: string;
  /** With `to`: the layers this incremental extends, full backup first (`INCREMENTAL FROM`). */
  incrementalFrom?: string[];
  /** `AS OF SYSTEM TIME`: `"-10s"`, `"2026-11-23 10:00:00"`, or a decimal timestamp. */
  asOf?: string;
  /** Keep every revision, so a restore can go to any time inside the chain. */
  revisionHistory?: boolean;
  /** Encrypt with a key derived from this passphrase (argon2id); restores need it too. */
  encryptionPassphrase?: string;
  /** Encrypt with KMS keys. The wasm package has no KMS providers yet: this fails with PRECONDITION. */
  kms?: string | string[];
}

/** What `backup` resolves to. */
export interface BackupResult {
  status: "succeeded";
  backupType: "full" | "incremental";
  /** Where the layer was written (the collection's subdirectory for `into`). */
  path: string;
  /** The time the backup is as of, decimal. */
  endTime: string;
  files: number;
  rows: number;
  /** Key and value bytes backed up (as restore results and progress count them). */
  bytes: number;
  /** The size of the data files written. */
  storedBytes: number;
}

/** Where a restore or `showBackup` reads: a backup directory, a collection's backup, or a list of layers. */
export interface BackupSource {
  /** The backup's URI, a collection's URI (with `latest` or `subdir`), or a list of layer URIs (full first). */
  from: string | string[];
  /** Read the collection's newest full backup and its incrementals (`FROM LATEST IN`). */
  latest?: boolean;
  /** Read this full backup of the collection, as `showBackups` lists them (`FROM 'subdir' IN`). */
  subdir?: string;
  encryptionPassphrase?: string;
  kms?: string | string[];
}

/**
 * What `scanBackup` and `getFromBackup` read: a table in a backup, as a restore as of `asOf` would
 * hold it, without restoring it (only the table's blocks are fetched).
 */
export interface ReadBackupOptions extends BackupSource {
  /** The table, as `db.table`, named as it was at `asOf`. */
  table: string;
  /** A time inside the chain (any time with revision history, else a layer's end): a decimal
   * timestamp, `"2026-11-23 10:00:00"`, or `"-10s"` (before the backup's end). Default: its end. */
  asOf?: string;
}

/** `scanBackup(options)`: the table's rows. */
export interface ScanBackupOptions extends ReadBackupOptions {
  /** At most this many rows (the first ones, in key order); reading stops there. */
  limit?: number;
}

/** `getFromBackup(options)`: one row's value. */
export interface GetFromBackupOptions extends ReadBackupOptions {
  /** The row's key. */
  key: Uint8Array;
}

/** What `scanBackup` resolves to. */
export interface BackupRows {
  /** The time the rows are as of, decimal. */
  asOf: string;
  /** The table's id in the backup. */
  tableId: number;
  /** `[key, value]` of every row, in key order. */
  rows: Array<[Uint8Array, Uint8Array]>;
}

/** `restore(options)`: `RESTORE [targets] FROM … [AS OF SYSTEM TIME …] [WITH …]`. */
export interface RestoreOptions extends Targets, BackupSource, RunOptions {
  /** `AS OF SYSTEM TIME`: a time inside the chain (any time with revision history, else a layer's end). */
  asOf?: string;
  /** Restore tables into this existing database. */
  intoDb?: string;
  /** Restore one database under a new name. */
  newDbName?: string;
  skipMissingForeignKeys?: boolean;
}

/** What `restore` resolves to. */
export interface RestoreResult {
  status: "succeeded";
  /** The time restored, decimal. */
  asOf: string;
  databases: number;
  tables: number;
  rows: number;
  bytes: number;
}

/** `showBackup(options)`: `SHOW BACKUP`. */
export interface ShowBackupOptions extends BackupSource, RunOptions {
  /** Check every file's existence, size and checksum instead (`WITH check_files`). */
  checkFiles?: boolean;
}

/** One row of `showBackup`: a database (`tableName` null) or a table of one layer of the chain. */
export interface BackupContents {
  databaseName: string;
  tableName: string | null;
  backupType: "full" | "incremental";
  /** UTC, as CockroachDB shows it (`2026-12-06 19:38:34.123456+00:00`); null for a full backup. */
  startTime: string | null;
  /** UTC, as CockroachDB shows it. */
  endTime: string;
  /** Key and value bytes. */
  sizeBytes: number | null;
  rows: number | null;
  isFullCluster: boolean;
  revisionHistory: boolean;
  /** The exact end time, decimal, as `asOf` takes it. */
  endTimeDecimal: string;
  [column: string]: Value;
}

/** `scan(db, table, options)`. */
export interface ScanOptions {
  /** Only keys starting with these bytes. */
  prefix?: Uint8Array;
  /** Read as of this `AS OF SYSTEM TIME` expression instead of now. */
  asOf?: string;
  /** At most this many rows. */
  limit?: number;
}

// ---- Storage plugins ----------------------------------------------------------------------

/** An object in storage, as `StoragePlugin.list` returns it. */
export interface StorageObject {
  /** Relative to the storage's root, `/`-separated, no leading `/`. */
  path: string;
  /** Bytes. */
  size: number;
}

/**
 * Where backups live, written in JavaScript: mount one with `strata.mount(prefix, plugin)`.
 * Ready ones: `fsStorage` (Node), `opfsStorage` and `indexedDbStorage` (browsers), `httpStorage`.
 *
 * Contract (checked by strata's storage conformance suite, which the ready plugins pass):
 * - Paths are relative, `/`-separated, without a leading `/`.
 * - `put` replaces the whole object atomically: a reader sees the old bytes or the new, never a mix.
 * - A missing object is a `null`/`undefined` result of `get`/`getRange`/`size`, or an error with
 *   `code` `"NOT_FOUND"` or `"ENOENT"`. Other errors are storage errors; set `retryable: true` on
 *   one when trying again may help.
 * - `list(prefix)` returns every object whose path starts with `prefix` (a string prefix, not a directory).
 * - `delete` of a missing object succeeds.
 * Methods may return Promises or plain values.
 */
export interface StoragePlugin {
  put(path: string, data: Uint8Array): Promise<void> | void;
  get(path: string): Promise<Uint8Array | ArrayBuffer | null | undefined> | Uint8Array | ArrayBuffer | null | undefined;
  list(prefix: string): Promise<Array<StorageObject | string>> | Array<StorageObject | string>;
  delete(path: string): Promise<void> | void;
  /** Bytes `[start, end)`; fewer when the object ends first. Default: `get` and slice. */
  getRange?(path: string, start: number, end: number): Promise<Uint8Array | ArrayBuffer | null | undefined>;
  /** The object's size. Default: `list(path)`. */
  size?(path: string): Promise<number | null | undefined>;
  /** Creates the object only if there is none; resolves to false (or throws code "ALREADY_EXISTS") if there is. Default: `size`, then `put` (not atomic). */
  putIfAbsent?(path: string, data: Uint8Array): Promise<boolean | void>;
}

// ---- KV plugins ---------------------------------------------------------------------------

/** A key-value pair to write; a `null` value deletes the key (writes a tombstone). */
export type KvWrite = [key: Uint8Array, value: Uint8Array | null];

/** A half-open key range `[start, end)`. */
export interface KvSpan {
  start: Uint8Array;
  end: Uint8Array;
}

/** One page of a scan: versions with `startTime < ts <= endTime` of keys in `[start, end)`. */
export interface KvScanRequest extends KvSpan {
  startTime: bigint;
  endTime: bigint;
  /** Every version in the window; otherwise only each key's newest one in it (tombstones included). */
  allRevisions: boolean;
  /** End the page at a key boundary once about this many key and value bytes are in it. */
  targetBytes: number;
}

/** One version of a key. */
export interface KvEntry {
  key: Uint8Array;
  /** When it was written: nanoseconds since the Unix epoch. */
  ts: bigint;
  /** The value, or `null` for a deletion. */
  value: Uint8Array | null;
}

/** A page of versions: by key ascending, each key's versions newest first. */
export interface KvScanPage {
  entries: KvEntry[];
  /** The first key not returned, when the span is not exhausted. */
  resumeKey?: Uint8Array | null;
}

/**
 * A multi-version key-value store written in JavaScript: what `new Strata({ kv })` backs up and
 * restores into, so an application can back up its own data store. `MemoryKv` (in the package)
 * is a complete one to start from.
 *
 * Timestamps are `bigint` nanoseconds since the Unix epoch; a store's own timestamps strictly
 * increase (add `1n` when the clock has not moved). Tables, databases and the id counter are
 * ordinary keys (in the system span `[0x01, 0x02)`), so the store needs no schema of its own.
 *
 * Contract (checked by strata's KV conformance suite, which `MemoryKv` passes):
 * - `write(batch)` applies the batch atomically at one fresh timestamp, above every earlier one, and resolves to it.
 * - `now()` resolves to a timestamp at or above every committed write.
 * - `scan(request)` resolves to one page (see `KvScanPage`); the adapter checks order and window.
 * - `discard(spans)` removes every version of every key in the spans.
 * Optional, with defaults built from the above:
 * - `ingest(pairs)`: restored rows, sorted by key, for tables not yet published; default `write`.
 * - `publish(batch)`: descriptor writes that make restored tables visible, atomically; default `write`.
 * - `allocateIds(count)`: reserve `count` fresh ids, resolve to the first; default: a counter key
 *   read and written (serialized within one `Strata`).
 * - `gcThreshold(span)`: the oldest readable timestamp; reading below it must throw. Default `0n`.
 * - `scanChanges(request)`: the same page as `scan`, from an index of changes (incrementals then
 *   cost what changed); resolve to `null` to fall back to `scan`.
 */
export interface KvPlugin {
  now(): Promise<bigint>;
  scan(request: KvScanRequest): Promise<KvScanPage>;
  write(batch: KvWrite[]): Promise<bigint>;
  discard(spans: KvSpan[]): Promise<void>;
  ingest?(pairs: Array<[key: Uint8Array, value: Uint8Array]>): Promise<void>;
  publish?(batch: KvWrite[]): Promise<bigint>;
  allocateIds?(count: number): Promise<number>;
  gcThreshold?(span: KvSpan): Promise<bigint>;
  scanChanges?(request: KvScanRequest): Promise<KvScanPage | null>;
}
