// fsStorage: a StoragePlugin over a directory of Node's file system — the same layout the native
// `strata` CLI writes (`nodelocal://1/x` is `<store>/extern/x`), so either side restores what the
// other backed up.
//
// Writes go to a temporary file `<name>#<random>` beside the object and are published with a
// rename (`put`) or a hard link that fails if the name exists (`putIfAbsent`): readers see the old
// file or the new one, never a prefix. Listings skip `#` temporaries, as the native side does.

import { promises as fs } from "node:fs";
import * as nodePath from "node:path";
import { randomBytes } from "node:crypto";

function notFound(e) {
  return e && (e.code === "ENOENT" || e.code === "ENOTDIR" || e.code === "EISDIR");
}

/**
 * @param {string} root the directory backups live in (created as needed)
 * @param {{ fsync?: boolean }} [options] `fsync` (default true): sync each file and its directory
 *   before a write returns, so a finished backup survives a power loss.
 */
export function fsStorage(root, options = {}) {
  const base = nodePath.resolve(root);
  const fsync = options.fsync ?? true;

  const full = (path) => {
    const parts = path.split("/");
    if (path.startsWith("/") || parts.some((p) => p === ".." || p === ".")) {
      throw Object.assign(new Error(`invalid path '${path}': it must be relative, without '.' or '..'`), {
        code: "INVALID_ARGUMENT",
      });
    }
    return nodePath.join(base, ...parts);
  };

  async function syncDir(dir) {
    if (!fsync) return;
    const fh = await fs.open(dir, "r");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /** Writes `data` to a fresh temporary file beside `file`; returns its name. */
  async function writeTemp(file, data) {
    const tmp = `${file}#${randomBytes(8).toString("hex")}`;
    let fh;
    for (let attempt = 0; ; attempt++) {
      await fs.mkdir(nodePath.dirname(file), { recursive: true });
      try {
        fh = await fs.open(tmp, "wx");
        break;
      } catch (e) {
        // A concurrent delete removed the directory it had left empty: make it again.
        if (e.code !== "ENOENT" || attempt >= 5) throw e;
      }
    }
    try {
      await fh.writeFile(data);
      if (fsync) await fh.sync();
    } catch (e) {
      await fh.close();
      await fs.rm(tmp, { force: true });
      throw e;
    }
    await fh.close();
    return tmp;
  }

  async function walk(dir, rel, out) {
    let entries;
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (e) {
      if (notFound(e)) return;
      throw e;
    }
    for (const entry of entries) {
      if (entry.name.includes("#")) continue;
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      const abs = nodePath.join(dir, entry.name);
      if (entry.isDirectory()) await walk(abs, path, out);
      else if (entry.isFile()) out.push({ abs, path });
    }
  }

  return {
    root: base,

    async put(path, data) {
      const file = full(path);
      const tmp = await writeTemp(file, data);
      try {
        await fs.rename(tmp, file);
      } catch (e) {
        await fs.rm(tmp, { force: true });
        throw e;
      }
      await syncDir(nodePath.dirname(file));
    },

    async putIfAbsent(path, data) {
      const file = full(path);
      const tmp = await writeTemp(file, data);
      try {
        await fs.link(tmp, file);
      } catch (e) {
        if (e.code === "EEXIST") return false;
        throw e;
      } finally {
        await fs.rm(tmp, { force: true });
      }
      await syncDir(nodePath.dirname(file));
      return true;
    },

    async get(path) {
      try {
        return await fs.readFile(full(path));
      } catch (e) {
        if (notFound(e)) return null;
        throw e;
      }
    },

    async getRange(path, start, end) {
      let fh;
      try {
        fh = await fs.open(full(path), "r");
      } catch (e) {
        if (notFound(e)) return null;
        throw e;
      }
      try {
        const buf = Buffer.alloc(end - start);
        let got = 0;
        while (got < buf.length) {
          const { bytesRead } = await fh.read(buf, got, buf.length - got, start + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        return buf.subarray(0, got);
      } catch (e) {
        if (notFound(e)) return null;
        throw e;
      } finally {
        await fh.close();
      }
    },

    async size(path) {
      try {
        const st = await fs.stat(full(path));
        return st.isFile() ? st.size : null;
      } catch (e) {
        if (notFound(e)) return null;
        throw e;
      }
    },

    async list(prefix) {
      // Walk the deepest directory the prefix names in full, then filter by the whole prefix.
      const slash = prefix.lastIndexOf("/");
      const dir = slash >= 0 ? prefix.slice(0, slash) : "";
      const files = [];
      await walk(dir ? full(dir) : base, dir, files);
      const out = [];
      for (const { abs, path } of files) {
        if (!path.startsWith(prefix)) continue;
        try {
          out.push({ path, size: (await fs.stat(abs)).size });
        } catch (e) {
          if (!notFound(e)) throw e; // deleted meanwhile
        }
      }
      return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    },

    async delete(path) {
      const file = full(path);
      try {
        await fs.unlink(file);
      } catch (e) {
        if (notFound(e)) return;
        // A directory is not an object: there is nothing to delete (EPERM on macOS).
        if (e.code === "EPERM" && (await fs.stat(file).catch(() => null))?.isDirectory()) return;
        throw e;
      }
      // Remove directories the delete left empty, up to the root (best effort).
      let dir = nodePath.dirname(file);
      while (dir.startsWith(base + nodePath.sep)) {
        try {
          await fs.rmdir(dir);
        } catch {
          break;
        }
        dir = nodePath.dirname(dir);
      }
    },
  };
}
