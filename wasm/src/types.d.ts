
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

// `StrataError` (the class every call rejects with) and `isStrataError` are in js/api.d.ts.

// ---- Options of the calls -----------------------------------------------------------------

/** `new Strata(options)`. */
export interface StrataOptions {
  /** The store to back up and restore into; default: the built-in in-memory MVCC store. */
  kv?: KvPlugin;
  /** Storage to mount, by URI prefix (see `Strata.mount`), e.g. `{ "nodelocal://1": fsStorage(dir) }`. */
  storage?: Record<string, StoragePlugin>;
}

/**
 * The counts a backup or restore reports, named the same in `Progress`, `BackupResult` and
 * `RestoreResult`.
 */
export interface Counts {
  /** Rows (versions) exported (backup) or ingested (restore). */
  rows: number;
  /** Key and value bytes of those rows (what they take in the store). */
  logicalBytes: number;
  /** Bytes of the data files written to backup storage (backup) or read from it (restore): compressed, encrypted. */
  storageBytes: number;
  /** Data files written (backup) or read (restore). */
  files: number;
}

/**
 * How far a backup or restore has got, reported to `onProgress` after every step: a backup after
 * each data file and each work unit (the built-in store cuts a table into units of about 1 MiB,
 * so `fraction` moves within a large table), a restore after each ingested batch.
 */
export interface Progress extends Counts {
  operation: "backup" | "restore" | "statement";
  /** Between 0 and 1: work units exported (backup) or the chain's bytes ingested (restore); 1 when done. */
  fraction: number;
  /** @deprecated The same as `logicalBytes`. */
  bytes: number;
  /** True on the last report, once the statement has succeeded. */
  done: boolean;
}

/** What `signal` needs to be: an `AbortSignal` is one (only `aborted` is read). */
export interface AbortSignalLike {
  readonly aborted: boolean;
}

/** What every long call takes besides its own options. */
export interface RunOptions {
  /** Called (synchronously, often) as the work advances; what it throws is ignored. */
  onProgress?: (progress: Progress) => void;
  /** Cancels the call at its next step: it rejects with code `CANCELLED`, and a cancelled backup leaves no backup. */
  signal?: AbortSignalLike;
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

/** What `backup` resolves to: the counts of the layer written (as the last `Progress` had them). */
export interface BackupResult extends Counts {
  status: "succeeded";
  backupType: "full" | "incremental";
  /** Where the layer was written (the collection's subdirectory for `into`). */
  path: string;
  /** The time the backup is as of, decimal (`timestampToNanos` turns it into bigint nanoseconds). */
  endTime: string;
  /** @deprecated The same as `storageBytes` (what `bytes` meant here before `logicalBytes` and `storageBytes`). */
  bytes: number;
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

/**
 * `copy(options)`: copies a collection (every backup, then `LATEST`), a backup directory, or one
 * chain of a collection to another storage, checking every file's size and SHA-256 on the way.
 * A rerun of an interrupted copy resumes (files already there and intact are kept).
 */
export interface CopyOptions {
  /** The collection or backup directory to copy. */
  from: string;
  /** Where the copy goes: a new, empty place (or the same place, to resume). */
  to: string;
  /** Copy only the collection's newest full backup and its incrementals (into the same subdirectory). */
  latest?: boolean;
  /** Copy only this full backup of the collection and its incrementals, as `showBackups` lists them. */
  subdir?: string;
  /** The source's passphrase: needed only to re-encrypt or decrypt. */
  encryptionPassphrase?: string;
  kms?: string | string[];
  /** Re-encrypt the copy with a new data key wrapped by this passphrase. */
  newEncryptionPassphrase?: string;
  newKms?: string | string[];
  /** Write the copy unencrypted (needs the source's key). */
  decrypt?: boolean;
}

/** What `copy` resolves to. */
export interface CopyResult {
  chains: number;
  /** Full backups and incrementals copied. */
  layers: number;
  /** Data files written. */
  filesCopied: number;
  /** Data files already at the destination and intact (a resumed copy). */
  filesSkipped: number;
  /** Bytes written. */
  bytes: number;
}

/**
 * `compact(options)`: merges a chain of the collection into one new full backup of the collection
 * at the chain's end time, read from the backup alone. `LATEST` is not changed.
 */
export interface CompactOptions {
  collection: string;
  /** The full backup whose chain is compacted (default: the one `LATEST` names). */
  subdir?: string;
  encryptionPassphrase?: string;
  kms?: string | string[];
  /** Keep only the end time's data, not the revision history. */
  dropHistory?: boolean;
}

/** What `compact` resolves to: the new full backup. */
export interface CompactResult {
  /** Its subdirectory of the collection (`restore({ from: collection, subdir: path })`). */
  path: string;
  /** The time it is as of (the chain's end), decimal. */
  endTime: string;
  files: number;
  rows: number;
  revisionHistory: boolean;
}

/**
 * `forget(options)`: which backups of a collection to keep, by restic's rules, at the store's time
 * (`keepLast` the newest N; `keepHourly` … `keepYearly` the newest backup of each of the newest N
 * hours … years, UTC, that have backups; `keepWithin` every backup younger than that). A kept
 * incremental keeps its full backup and every layer between. Only with `prune` is anything deleted.
 */
export interface ForgetOptions {
  collection: string;
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  /** A duration: `"36h"`, `"7d"`, `"90m"`, `"2w"`. */
  keepWithin?: string;
  /** Delete what the plan removes (default: only plan). */
  prune?: boolean;
}

/** One backup (or leftover of an interrupted forget) in a `forget` plan. */
export interface ForgetEntry {
  /** `/2026/11/23-101500.00` or `/2026/11/23-101500.00/incrementals/…`. */
  path: string;
  type: "full" | "incremental" | "leftover";
  endTime: string;
  action: "keep" | "remove";
  /** Why it is kept (`"last 1"`, `"daily 2"`, `"needed by …"`), comma-separated. */
  reasons: string;
}

/** What `forget` resolves to. */
export interface ForgetResult {
  /** Every backup, oldest first, then leftovers. */
  backups: ForgetEntry[];
  kept: number;
  /** Backups (and leftovers) removed, or that `prune` would remove. */
  removed: number;
  /** Where `LATEST` points afterwards when the backup it named goes (`null`: it is deleted). */
  newLatest?: string | null;
  /** Whether they were deleted. */
  pruned: boolean;
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

/** What `restore` resolves to: what was restored, and the counts of the run (as the last `Progress` had them). */
export interface RestoreResult extends Counts {
  status: "succeeded";
  /** The time restored, decimal. */
  asOf: string;
  databases: number;
  tables: number;
  /** @deprecated The same as `logicalBytes`. */
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

/** One row of `showBackup({ checkFiles: true })`: a file that is missing, of the wrong size, or damaged (no rows: all intact). */
export interface FileProblem {
  /** The file, as the storage describes it. */
  path: string;
  /** What is wrong with it (e.g. "missing"). */
  problem: string;
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
 * Contract: what `checkStoragePlugin` (strata-wasm/conformance) checks, and the ready plugins pass.
 * - Paths are relative, `/`-separated, without a leading `/`; any byte of UTF-8 may appear in a
 *   segment (spaces, punctuation, capitals, non-ASCII letters).
 * - `put` replaces the whole object atomically: a reader racing it sees the old bytes or the new,
 *   never a mix, a prefix or a missing object; a shorter object leaves no tail of the longer.
 *   Empty objects and every byte value round-trip.
 * - A missing object is a `null`/`undefined` result of `get`/`getRange`/`size`, or an error with
 *   `code` `"NOT_FOUND"` or `"ENOENT"` (or a DOMException named `"NotFoundError"`). There are no
 *   directories: reading a path that only prefixes other objects (`a` when `a/b` exists) is
 *   missing, and deleting it succeeds and removes nothing.
 * - `list(prefix)` returns every object whose path starts with `prefix` (a string prefix, not a
 *   directory: `"a/b"` lists `a/b`, `a/bc` and `a/b/c`), each once, with its size; a missing
 *   prefix lists nothing. The order does not matter (strata sorts).
 * - `delete` of a missing object succeeds; deleting twice succeeds.
 * - `getRange(path, start, end)` returns bytes `[start, end)`, fewer when the object ends first.
 * - `putIfAbsent` creates the object only if there is none, atomically: of racing callers
 *   exactly one wins; the others resolve to `false` (or throw `code` `"ALREADY_EXISTS"`/`"EEXIST"`)
 *   and the winner's bytes stay.
 * - Errors: the codes above mean what they say; `"INVALID_ARGUMENT"`, `"CORRUPT"`,
 *   `"PRECONDITION"`, `"CANCELLED"` (or an `AbortError`) are kept; anything else becomes a
 *   `STORAGE` error with the thrown value's message, retryable when it has `retryable: true`.
 * Methods may return Promises or plain values, and may be called concurrently.
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
  /** Stop before the next key once the page holds this many key and value bytes or more (exactly: see `KvPlugin`). */
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
  /** The next stored key of the span, not returned (even one without a version in the window); absent when the span is exhausted. */
  resumeKey?: Uint8Array | null;
}

/**
 * A multi-version key-value store written in JavaScript: what `new Strata({ kv })` backs up and
 * restores into, so an application can back up its own data store. `MemoryKv` (in the package)
 * is a complete one to start from.
 *
 * Timestamps are `bigint` nanoseconds since the Unix epoch (`timestampToNanos` and
 * `nanosToTimestamp` convert to and from the decimal text strata prints). Tables, databases and
 * the id counter are ordinary keys (in the system span `[0x01, 0x02)`), so the store needs no
 * schema of its own. Keys are raw bytes compared unsigned, byte by byte: they contain `0x00` and
 * prefix one another.
 *
 * Contract: what `checkKvPlugin` (strata-wasm/conformance) checks, and `MemoryKv` passes.
 * - Every timestamp the store hands out (`write`, `publish`, `ingest`) is fresh: above every
 *   earlier one (add `1n` when the clock has not moved). Calls may come concurrently (writes,
 *   ingests and id allocations together): each gets its own timestamp or ids, and all land.
 * - `write(batch)` applies the batch atomically at one fresh timestamp and resolves to it; the
 *   last write of a key in a batch wins; deleting an absent key writes a tombstone; an empty
 *   batch still gets a timestamp.
 * - `now()` resolves to a timestamp at or above every committed write, never below an earlier
 *   `now()`, and below every later write (so a read at `now()` is stable); never `0n`.
 * - `scan(request)` resolves to one page of the versions with `startTime < ts <= endTime` of the
 *   keys in `[start, end)`: by key ascending, each key's versions newest first, tombstones
 *   included (`value: null`); with `allRevisions: false` only each key's newest version in the
 *   window. Pages are exact: add keys in order, counting each version's key and value bytes, and
 *   stop before a key once the page holds `targetBytes` or more; all versions of a key go in one
 *   page. `resumeKey` is then that next stored key (even if it has no version in the window), and
 *   absent (`null`) when the span is exhausted. The pages together equal one unpaged scan.
 * - `discard(spans)` removes every version of every key in the spans (the system span included,
 *   when asked), leaves every other key, and succeeds on spans that hold nothing.
 * - `gcThreshold(span)`: the oldest timestamp the span can be read at. A `scan` whose window needs
 *   older data (`endTime` below it; with `allRevisions` or `startTime > 0n`, `startTime` below it)
 *   must throw an error with `code` `"INVALID_TIME"` naming the threshold, never answer with
 *   data missing. Default `0n` (the store never forgets).
 * Optional, with defaults built from the above:
 * - `ingest(pairs)`: restored rows, sorted by key, in tables not yet published, written at one
 *   fresh timestamp above earlier writes and at or below the next `now()` (they are scanned right
 *   after, before the restore publishes); default `write`.
 * - `publish(batch)`: descriptor writes that make restored tables visible, atomically; resolves
 *   to their timestamp; default `write`.
 * - `allocateIds(count)`: reserve `count` consecutive ids and resolve to the first: the first
 *   call hands out 100, each next call continues where the last ended (`count` may be 0), and the
 *   store keeps the next free id at key `[0x01, 0x69]` ("\x01i") as a big-endian u32, written
 *   on every call. Default: that counter read and written (serialized within one `Strata`).
 * - `scanChanges(request)`: the same page as `scan`, from an index of changes (incrementals then
 *   cost what changed); resolve to `null` to fall back to `scan`.
 * Errors a plugin may throw, by `code`: `"INVALID_TIME"` (above), `"NOT_FOUND"`,
 * `"INVALID_ARGUMENT"`, `"CORRUPT"`, `"PRECONDITION"`, `"CANCELLED"` keep their meaning; anything
 * else becomes a `KV` error with the thrown value's message, retryable when it has
 * `retryable: true`.
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
