// indexedDbStorage: a StoragePlugin over an IndexedDB database — available in every browser and
// worker, persistent per origin. Objects are values keyed by path; each write is one transaction
// (atomic), `putIfAbsent` is an `add` (which fails if the key exists), and sizes live in a store
// of their own so listings do not read the data.
//
//   db.mount("idb://backups", indexedDbStorage("strata-backups"));

const DATA = "data";
const META = "meta";

function done(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function committed(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    // A failed request whose error event is not prevented aborts the transaction.
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
}

/** @param {string} [name] the IndexedDB database (default "strata-backups") */
export function indexedDbStorage(name = "strata-backups") {
  let dbPromise;
  const db = () => {
    dbPromise ??= (() => {
      const open = indexedDB.open(name, 1);
      open.onupgradeneeded = () => {
        open.result.createObjectStore(DATA);
        open.result.createObjectStore(META);
      };
      return done(open);
    })();
    return dbPromise;
  };

  async function read(path) {
    const tx = (await db()).transaction(DATA, "readonly");
    const value = await done(tx.objectStore(DATA).get(path));
    return value === undefined ? null : new Uint8Array(value);
  }

  return {
    name,

    async put(path, data) {
      const tx = (await db()).transaction([DATA, META], "readwrite");
      tx.objectStore(DATA).put(data.slice().buffer, path);
      tx.objectStore(META).put(data.length, path);
      await committed(tx);
    },

    async putIfAbsent(path, data) {
      const tx = (await db()).transaction([DATA, META], "readwrite");
      const add = tx.objectStore(META).add(data.length, path);
      add.onerror = (event) => {
        // The key exists: keep the transaction from aborting with an error, and say so.
        if (add.error && add.error.name === "ConstraintError") event.preventDefault();
      };
      tx.objectStore(DATA).add(data.slice().buffer, path).onerror = (event) => event.preventDefault();
      await committed(tx);
      return !add.error;
    },

    get: read,

    async getRange(path, start, end) {
      const data = await read(path);
      return data === null ? null : data.subarray(start, end);
    },

    async size(path) {
      const tx = (await db()).transaction(META, "readonly");
      const size = await done(tx.objectStore(META).get(path));
      return size === undefined ? null : size;
    },

    async list(prefix) {
      const tx = (await db()).transaction(META, "readonly");
      const store = tx.objectStore(META);
      const range = prefix ? IDBKeyRange.bound(prefix, `${prefix}\uffff`) : undefined;
      const [keys, sizes] = await Promise.all([done(store.getAllKeys(range)), done(store.getAll(range))]);
      return keys.map((path, i) => ({ path, size: sizes[i] })).filter((o) => o.path.startsWith(prefix));
    },

    async delete(path) {
      const tx = (await db()).transaction([DATA, META], "readwrite");
      tx.objectStore(DATA).delete(path);
      tx.objectStore(META).delete(path);
      await committed(tx);
    },

    /** Closes the database connection (e.g. before deleting it). */
    async close() {
      (await db()).close();
    },
  };
}
