// The browser entry point's types (`tsc -p tests/types`).
import init, { Strata, opfsStorage, indexedDbStorage, httpStorage, MemoryKv } from "../../js/web.js";

export async function usage(): Promise<void> {
  await init();
  const db = new Strata({ kv: new MemoryKv() });
  db.mount("opfs://b", opfsStorage("backups"));
  db.mount("idb://b", indexedDbStorage("strata"));
  db.mount("https://h/b", httpStorage("https://h/b", { sign: (method, path) => `https://h/b/${path}?m=${method}` }));
  await db.backup({ into: "opfs://b/c", onProgress: (p) => console.log(p.storageBytes) });
}
