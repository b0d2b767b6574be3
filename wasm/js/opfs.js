// opfsStorage: a StoragePlugin over the browser's Origin Private File System — private to the
// page's origin, persistent, and fast. Each object is a file; `/` in paths are directories.
// Writes go through `createWritable()`, which writes a swap file and swaps it in on `close()`,
// so a reader sees the old bytes or the new, never a mix.
//
//   const storage = opfsStorage("backups");   // the directory "backups" of the origin's OPFS
//   db.mount("opfs://backups", storage);

function isMissing(e) {
  return e && (e.name === "NotFoundError" || e.name === "TypeMismatchError");
}

/**
 * @param {FileSystemDirectoryHandle | string} [dir] a directory handle, or a path below the
 *   origin's OPFS root (created if needed); default: the root itself
 */
export function opfsStorage(dir = "") {
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
    async put(path, data) {
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
    },

    async get(path) {
      const f = await file(path);
      return f ? new Uint8Array(await f.arrayBuffer()) : null;
    },

    async getRange(path, start, end) {
      const f = await file(path);
      return f ? new Uint8Array(await f.slice(start, end).arrayBuffer()) : null;
    },

    async size(path) {
      const f = await file(path);
      return f ? f.size : null;
    },

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

    async delete(path) {
      const p = await parent(path, false);
      if (!p) return;
      try {
        await p.dir.getFileHandle(p.name); // a directory is not an object: leave it
        await p.dir.removeEntry(p.name);
      } catch (e) {
        if (!isMissing(e)) throw e;
      }
    },
  };
}
