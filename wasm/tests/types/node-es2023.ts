// The Node typings as a user without the DOM library compiles them (tsconfig.es2023.json:
// lib ["es2023"], no @types): nothing in them may name a web-only type (RequestInfo,
// BufferSource, AbortSignal, fetch…).
import {
  Strata,
  StrataError,
  isStrataError,
  timestampToNanos,
  nanosToTimestamp,
  MemoryKv,
  fsStorage,
  httpStorage,
  type BackupResult,
  type FileProblem,
  type Progress,
  type RestoreResult,
} from "strata-wasm";
import { checkKvPlugin, checkStoragePlugin, type ConformanceReport } from "strata-wasm/conformance";
import { MemoryKv as Kv } from "strata-wasm/memory-kv";

export async function usage(db: Strata): Promise<void> {
  const b: BackupResult = await db.backup({ databases: "bank", into: "nodelocal://1/b", signal: { aborted: false } });
  const counts: [number, number, number, number] = [b.rows, b.logicalBytes, b.storageBytes, b.files];
  const r: RestoreResult = await db.restore({ databases: "bank", from: "nodelocal://1/b", latest: true });
  const same: number = r.logicalBytes + r.storageBytes + r.files + counts[0];
  await db.backup({ into: "memory://x", onProgress: (p: Progress) => p.logicalBytes + p.storageBytes + same });
  const problems: FileProblem[] = await db.showBackup({ from: "nodelocal://1/b", latest: true, checkFiles: true });
  const first: string = problems[0].path + problems[0].problem;
  const layers = await db.showBackup({ from: "nodelocal://1/b", latest: true });
  const full: boolean = layers[0].isFullCluster;
  // @ts-expect-error: checkFiles rows have no isFullCluster
  problems[0].isFullCluster;
  const ns: bigint = timestampToNanos(b.endTime);
  const text: string = nanosToTimestamp(ns + 1n) + first + String(full);
  await db.get("bank", "accounts", new Uint8Array([1]), text);
  try {
    await db.now();
  } catch (e) {
    if (isStrataError(e)) {
      const retry: boolean = e.retryable;
      if (e.code === "PRECONDITION" && retry) throw new StrataError("again", "PRECONDITION", { retryable: true });
    }
    if (e instanceof StrataError) throw e;
  }
  db.mount("nodelocal://1", fsStorage("/tmp/x"));
  db.mount("https://h/b", httpStorage("https://h/b/"));
  const report: ConformanceReport = await checkKvPlugin(() => new MemoryKv(), { gc: (p, t) => (p as MemoryKv).gc(t) });
  await checkStoragePlugin(fsStorage("/tmp/y"), { skip: { overwrite_is_atomic: "why" } });
  const kv: Kv = new Kv();
  new Strata({ kv });
  db.free();
  void report;
}
