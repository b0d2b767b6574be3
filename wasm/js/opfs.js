// opfsStorage: a StoragePlugin over the browser's Origin Private File System — private to the
// page's origin, persistent, and fast. Each object is a file; `/` in paths are directories.
// Writes go through `createWritable()`, which writes a swap file and swaps it in on `close()`,
// so a reader sees the old bytes or the new, never a mix. Chromium's swap is not atomic for
// readers, though: it removes the old file before it moves the new one in, and a read in that
// window finds no file at all (an object that exists would read as missing). So every operation
// on an object holds a Web Lock named after it — shared for reads, exclusive for writes and
// deletes — which covers every tab and worker of the origin; without the Web Locks API, a lock
// of this JS realm does.
//
//   const storage = opfsStorage("backups");   // the directory "backups" of the origin's OPFS
//   db.mount("opfs://backups", storage);

function isMissing(e) {
  return e && (e.name === "NotFoundError" || e.name === "TypeMismatchError");
}

/** Per-name read/write locks of this realm, for hosts without navigator.locks. */
const localLocks = new Map();

/** Runs `f` holding the lock `name` (mode "shared" or "exclusive"). */
async function withLock(name, mode, f) {
  const locks = globalThis.navigator?.locks;
  if (locks) return locks.request(name, { mode }, f);
  // A chain per name: a writer waits for everything before it; readers wait for the last writer.
  const state = localLocks.get(name) ?? { writer: Promise.resolve(), all: Promise.resolve() };
  localLocks.set(name, state);
  const waitFor = mode === "exclusive" ? state.all : state.writer;
  const run = waitFor.then(() => f());
  const settled = run.then(
    () => {},
    () => {},
  );
  state.all = Promise.all([state.all, settled]).then(() => {});
  if (mode === "exclusive") state.writer = settled;
  return run;
}

let storageIds = 0;

/**
 * @param {FileSystemDirectoryHandle | string} [dir] a directory handle, or a path below the
 *   origin's OPFS root (created if needed); default: the root itself
 */
export function opfsStorage(dir = "") {
  // Locks are named by the directory path; a handle passed in gets a name of its own.
  const lockPrefix = typeof dir === "string" ? `strata-opfs:${dir.split("/").filter(Boolean).join("/")}:` : `strata-opfs#${++storageIds}:`;
  const lock = (path, mode, f) => withLock(lockPrefix + path, mode, f);
  let rootPromise;
  const root = () => {
    rootPromise ??= (async () => {
      if (typeof dir !== "string") return dir;
      let d = await navigator.storage.getDirectory();
      for (const part of dir.split("/").filter(Boolean)) d = await d.getDirectoryHandle(part, { create: true });
      return d;
    })();
    return rootPromise;
  };

  /** The directory holding `path` and the object's name; null when a directory is missing. */
  async function parent(path, create) {
    const parts = path.split("/");
    const name = parts.pop();
    let d = await root();
    try {
      for (const part of parts) d = await d.getDirectoryHandle(part, { create });
    } catch (e) {
      if (!create && isMissing(e)) return null;
      throw e;
    }
    return { dir: d, name };
  }

  async function file(path) {
    const p = await parent(path, false);
    if (!p) return null;
    try {
      return await (await p.dir.getFileHandle(p.name)).getFile();
    } catch (e) {
      if (isMissing(e)) return null;
      throw e;
    }
  }

  async function walk(d, rel, out) {
    for await (const [name, handle] of d.entries()) {
      if (name.endsWith(".crswap")) continue;
      const path = rel ? `${rel}/${name}` : name;
      if (handle.kind === "directory") await walk(handle, path, out);
      else {
        try {
          out.push({ path, size: (await handle.getFile()).size });
        } catch (e) {
          if (!isMissing(e)) throw e; // deleted meanwhile
        }
      }
    }
  }

  return {
    put: (path, data) => lock(path, "exclusive", async () => {
      const { dir: d, name } = await parent(path, true);
      const handle = await d.getFileHandle(name, { create: true });
      const w = await handle.createWritable();
      try {
        await w.write(data);
        await w.close();
      } catch (e) {
        await w.abort().catch(() => {});
        throw e;
      }
    }),

    get: (path) =>
      lock(path, "shared", async () => {
        const f = await file(path);
        return f ? new Uint8Array(await f.arrayBuffer()) : null;
      }),

    getRange: (path, start, end) =>
      lock(path, "shared", async () => {
        const f = await file(path);
        return f ? new Uint8Array(await f.slice(start, end).arrayBuffer()) : null;
      }),

    size: (path) =>
      lock(path, "shared", async () => {
        const f = await file(path);
        return f ? f.size : null;
      }),

    async list(prefix) {
      const slash = prefix.lastIndexOf("/");
      const dirPath = slash >= 0 ? prefix.slice(0, slash) : "";
      let d = await root();
      try {
        for (const part of dirPath.split("/").filter(Boolean)) d = await d.getDirectoryHandle(part);
      } catch (e) {
        if (isMissing(e)) return [];
        throw e;
      }
      const out = [];
      await walk(d, dirPath, out);
      return out.filter((o) => o.path.startsWith(prefix));
    },

    delete: (path) =>
      lock(path, "exclusive", async () => {
        const p = await parent(path, false);
        if (!p) return;
        try {
          await p.dir.getFileHandle(p.name); // a directory is not an object: leave it
          await p.dir.removeEntry(p.name);
        } catch (e) {
          if (!isMissing(e)) throw e;
        }
      }),
  };
}
