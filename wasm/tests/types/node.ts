// Type-checks the package's TypeScript types as a Node user sees them (`tsc -p tests/types`):
// every call compiles with the declared shapes, and misuses are rejected (@ts-expect-error).
import init, {
  Strata,
  MemoryKv,
  fsStorage,
  httpStorage,
  type BackupResult,
  type BackupRows,
  type CompactResult,
  type CopyResult,
  type ForgetEntry,
  type ForgetResult,
  type KvPlugin,
  type Progress,
  type QueryResult,
  type RestoreResult,
  type StoragePlugin,
  type StrataError,
  type StrataErrorCode,
} from "strata-wasm";

export async function usage(): Promise<void> {
  await init();
  const kv: KvPlugin = new MemoryKv();
  const db = new Strata({ kv, storage: { "nodelocal://1": fsStorage("/tmp/x", { fsync: false }) } });
  db.mount("https://dav.example.com/b", httpStorage("https://dav.example.com/b/", { headers: { Authorization: "x" } }));
  const r: QueryResult = await db.execute("SHOW DATABASES", { onProgress: (p: Progress) => p.rows });
  const first: string | number | bigint | boolean | null = r.rows[0][0];
  const warnings: string[] = r.notices;
  const b: BackupResult = await db.backup({
    databases: ["bank"],
    into: "nodelocal://1/b",
    incremental: true,
    encryptionPassphrase: "pw",
    signal: new AbortController().signal,
  });
  const kind: "full" | "incremental" = b.backupType;
  const rr: RestoreResult = await db.restore({ tables: "bank.accounts", from: "nodelocal://1/b", latest: true, intoDb: "x" });
  const n: number = rr.rows;
  const rows: Array<[Uint8Array, Uint8Array]> = await db.scan("bank", "accounts", { limit: 10 });
  const value: Uint8Array | undefined = await db.get("bank", "accounts", rows[0][0], "-10s");
  const ts: string = await db.put("bank", "accounts", new Uint8Array([1]), new Uint8Array([2]));
  await db.putMany("bank", "accounts", [[new Uint8Array([1]), new Uint8Array([2])]]);
  const layers = await db.showBackup({ from: "nodelocal://1/b", latest: true });
  const full: boolean = layers[0].isFullCluster;
  const dirs: string[] = await db.showBackups("nodelocal://1/b");
  const read: BackupRows = await db.scanBackup({ from: "nodelocal://1/b", latest: true, table: "bank.accounts", asOf: "-10s", limit: 5 });
  const readRows: Array<[Uint8Array, Uint8Array]> = read.rows;
  const readAt: string = read.asOf;
  const one: Uint8Array | undefined = await db.getFromBackup({ from: "nodelocal://1/b", table: "bank.accounts", key: readRows[0][0] });
  // @ts-expect-error: the table to read is required
  await db.scanBackup({ from: "nodelocal://1/b" });
  const copied: CopyResult = await db.copy({ from: "nodelocal://1/b", to: "nodelocal://1/c", latest: true, newEncryptionPassphrase: "p2" });
  const copiedFiles: number = copied.filesCopied + copied.filesSkipped;
  const compacted: CompactResult = await db.compact({ collection: "nodelocal://1/b", dropHistory: true });
  const compactedPath: string = compacted.path;
  const plan: ForgetResult = await db.forget({ collection: "nodelocal://1/b", keepLast: 3, keepWithin: "36h", prune: false });
  const actions: Array<"keep" | "remove"> = plan.backups.map((e: ForgetEntry) => e.action);
  // @ts-expect-error: keepWithin is a duration string
  await db.forget({ collection: "nodelocal://1/b", keepWithin: 36 });
  try {
    await db.execute("BACKUP");
  } catch (e) {
    const code: StrataErrorCode = (e as StrataError).code;
    switch (code) {
      case "WRONG_KEY":
      case "NOT_FOUND":
        break;
      default:
    }
  }
  const plugin: StoragePlugin = {
    put: async () => {},
    get: async () => null,
    list: async () => [{ path: "a", size: 1 }],
    delete: async () => {},
  };
  db.mount("js://x", plugin);
  // @ts-expect-error: `into` or `to` is a string
  await db.backup({ into: 7 });
  // @ts-expect-error: storage plugins need delete()
  db.mount("js://y", { put: async () => {}, get: async () => null, list: async () => [] });
  // @ts-expect-error: timestamps of KV plugins are bigints
  const bad: KvPlugin = { now: async () => 1, scan: async () => ({ entries: [] }), write: async () => 1n, discard: async () => {} };
  void [first, kind, n, value, ts, full, dirs, bad];
  db.free();
}
