// httpStorage: a StoragePlugin over plain HTTP(S) — GET (with Range), PUT, HEAD, DELETE — for a
// WebDAV server, or any server reached through presigned URLs. Works wherever `fetch` does
// (browsers, Node >= 18, Deno).
//
//   httpStorage("https://dav.example.com/backups/", { headers: { Authorization: "Bearer …" } })
//   httpStorage("https://bucket.s3.amazonaws.com/", { sign: (method, path) => presign(method, path),
//                                                     list: (prefix) => myListEndpoint(prefix) })
//
// Listing uses WebDAV's PROPFIND (Depth: 1, walked recursively) unless `options.list` is given;
// `putIfAbsent` sends `If-None-Match: *` (412 means the object exists); a PUT answered 409
// (WebDAV: the parent collection is missing) creates the parents with MKCOL and tries again.

const RETRYABLE = new Set([408, 425, 429, 500, 502, 503, 504]);

function httpError(method, url, res) {
  const where = url.split("?")[0];
  const e = new Error(`${method} ${where}: HTTP ${res.status} ${res.statusText}`.trim());
  e.status = res.status;
  e.retryable = RETRYABLE.has(res.status);
  if (res.status === 401 || res.status === 403) e.code = "PERMISSION_DENIED";
  return e;
}

function networkError(method, url, cause) {
  const e = new Error(`${method} ${url.split("?")[0]}: ${cause && cause.message ? cause.message : cause}`);
  e.retryable = true;
  e.cause = cause;
  return e;
}

const XML_RESPONSE = /<(?:[\w-]+:)?response\b[^>]*>([\s\S]*?)<\/(?:[\w-]+:)?response\s*>/g;
const XML_HREF = /<(?:[\w-]+:)?href\b[^>]*>([\s\S]*?)<\/(?:[\w-]+:)?href\s*>/;
const XML_COLLECTION = /<(?:[\w-]+:)?collection\b[^>]*\/?>/;
const XML_LENGTH = /<(?:[\w-]+:)?getcontentlength\b[^>]*>\s*(\d+)\s*</;

function xmlText(s) {
  return s
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, "&")
    .trim();
}

/**
 * @param {string} baseUrl the directory backups live in (a trailing `/` is added if missing)
 * @param {object} [options]
 * @param {Record<string,string> | (() => Record<string,string> | Promise<Record<string,string>>)} [options.headers]
 *   headers of every request (e.g. Authorization)
 * @param {(method: string, path: string) => string | Promise<string>} [options.sign]
 *   the URL of one request, e.g. a presigned URL; default: `baseUrl` + the path, %-encoded
 * @param {(prefix: string) => Promise<Array<{ path: string, size: number }>>} [options.list]
 *   lists objects when the server has no PROPFIND
 * @param {typeof fetch} [options.fetch] the fetch to use (default: the global one)
 */
export function httpStorage(baseUrl, options = {}) {
  const base = baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`;
  const doFetch = options.fetch ?? ((...args) => globalThis.fetch(...args));
  const encode = (path) => path.split("/").map(encodeURIComponent).join("/");
  const urlOf = async (method, path) => (options.sign ? await options.sign(method, path) : base + encode(path));

  async function headers(extra = {}) {
    const h = typeof options.headers === "function" ? await options.headers() : options.headers ?? {};
    return { ...h, ...extra };
  }

  async function request(method, path, init = {}) {
    const url = await urlOf(method, path);
    let res;
    try {
      res = await doFetch(url, { method, ...init, headers: await headers(init.headers) });
    } catch (cause) {
      throw networkError(method, url, cause);
    }
    return { res, url };
  }

  async function mkcolParents(path) {
    const parts = path.split("/").slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const dir = `${parts.slice(0, i).join("/")}/`;
      const { res, url } = await request("MKCOL", dir);
      await res.arrayBuffer().catch(() => {});
      // 405: it exists already.
      if (!res.ok && res.status !== 405) throw httpError("MKCOL", url, res);
    }
  }

  async function put(path, data, extraHeaders) {
    for (let attempt = 0; ; attempt++) {
      const { res, url } = await request("PUT", path, { body: data, headers: extraHeaders });
      await res.arrayBuffer().catch(() => {});
      if (res.ok) return true;
      if (res.status === 412 && extraHeaders) return false;
      if (res.status === 409 && attempt === 0 && !options.sign) {
        await mkcolParents(path);
        continue;
      }
      throw httpError("PUT", url, res);
    }
  }

  async function propfind(dir) {
    const { res, url } = await request("PROPFIND", dir, {
      headers: { Depth: "1", "Content-Type": "application/xml" },
      body: '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><resourcetype/><getcontentlength/></prop></propfind>',
    });
    if (res.status === 404) {
      await res.arrayBuffer().catch(() => {});
      return [];
    }
    if (!res.ok) throw httpError("PROPFIND", url, res);
    const xml = await res.text();
    const basePath = decodeURIComponent(new URL(base).pathname);
    const out = [];
    for (const m of xml.matchAll(XML_RESPONSE)) {
      const href = XML_HREF.exec(m[1]);
      if (!href) continue;
      const abs = decodeURIComponent(new URL(xmlText(href[1]), url).pathname);
      if (!abs.startsWith(basePath)) continue;
      const rel = abs.slice(basePath.length);
      const isDir = XML_COLLECTION.test(m[1]);
      const path = isDir ? rel.replace(/\/$/, "") : rel;
      if (path === dir.replace(/\/$/, "")) continue; // the directory itself
      const length = XML_LENGTH.exec(m[1]);
      out.push({ path, isDir, size: length ? Number(length[1]) : 0 });
    }
    return out;
  }

  async function walk(dir, out) {
    for (const e of await propfind(dir)) {
      if (e.isDir) await walk(`${e.path}/`, out);
      else out.push({ path: e.path, size: e.size });
    }
  }

  return {
    baseUrl: base,

    async put(path, data) {
      await put(path, data);
    },

    async putIfAbsent(path, data) {
      return put(path, data, { "If-None-Match": "*" });
    },

    async get(path) {
      const { res, url } = await request("GET", path);
      if (res.status === 404) return null;
      if (!res.ok) throw httpError("GET", url, res);
      return new Uint8Array(await res.arrayBuffer());
    },

    async getRange(path, start, end) {
      if (end <= start) return new Uint8Array(0);
      const { res, url } = await request("GET", path, { headers: { Range: `bytes=${start}-${end - 1}` } });
      if (res.status === 404) return null;
      if (res.status === 416) return new Uint8Array(0);
      if (!res.ok) throw httpError("GET", url, res);
      const body = new Uint8Array(await res.arrayBuffer());
      // 200: the server ignored the Range header and sent everything.
      return res.status === 206 ? body : body.subarray(start, end);
    },

    async size(path) {
      const { res, url } = await request("HEAD", path);
      if (res.status === 404) return null;
      if (!res.ok) throw httpError("HEAD", url, res);
      const length = res.headers.get("content-length");
      if (length !== null) return Number(length);
      const body = await this.get(path);
      return body === null ? null : body.length;
    },

    async list(prefix) {
      if (options.list) return options.list(prefix);
      const slash = prefix.lastIndexOf("/");
      const dir = slash >= 0 ? prefix.slice(0, slash + 1) : "";
      const out = [];
      await walk(dir, out);
      return out.filter((o) => o.path.startsWith(prefix));
    },

    async delete(path) {
      const { res, url } = await request("DELETE", path);
      await res.arrayBuffer().catch(() => {});
      if (!res.ok && res.status !== 404) throw httpError("DELETE", url, res);
    },
  };
}
