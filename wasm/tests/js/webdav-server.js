// A small in-memory WebDAV-style HTTP server for the tests of httpStorage: GET (with Range), HEAD,
// PUT (If-None-Match: *), DELETE, MKCOL and PROPFIND (Depth 0/1). Like Apache's mod_dav, a PUT
// whose parent collection does not exist is refused with 409 until MKCOL creates it. With
// `secret`, every request must carry `?sig=` from `sign(secret, method, path)` — a stand-in for
// presigned URLs.

import http from "node:http";
import { createHmac } from "node:crypto";

/** The signature of one request (what a presigning service would compute). */
export function sign(secret, method, path) {
  return createHmac("sha256", secret).update(`${method} ${path}`).digest("hex");
}

const escapeXml = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/**
 * Starts a server on 127.0.0.1 (a free port); resolves to `{ url, close, objects, requests }`.
 * @param {{ secret?: string, root?: string, autoParents?: boolean }} [options] `root`: the path
 *   prefix it serves (default "/dav/"); `autoParents`: a PUT creates missing parent collections
 *   (as object stores do) instead of answering 409.
 */
export async function startWebDav(options = {}) {
  const root = options.root ?? "/dav/";
  const objects = new Map(); // path below root -> Buffer
  const collections = new Set([""]); // directories, "a/b" (no trailing slash)
  const requests = [];

  const parentOf = (p) => (p.includes("/") ? p.slice(0, p.lastIndexOf("/")) : "");

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const u = new URL(req.url, "http://x");
      let pathname;
      try {
        pathname = decodeURIComponent(u.pathname);
      } catch {
        res.writeHead(400).end();
        return;
      }
      requests.push(`${req.method} ${pathname}`);
      if (!pathname.startsWith(root) && `${pathname}/` !== root) {
        res.writeHead(404).end();
        return;
      }
      let path = pathname.slice(root.length);
      if (options.secret && u.searchParams.get("sig") !== sign(options.secret, req.method, path)) {
        res.writeHead(403, "Bad Signature").end();
        return;
      }
      const isDirRequest = path === "" || path.endsWith("/");
      path = path.replace(/\/$/, "");
      switch (req.method) {
        case "GET":
        case "HEAD": {
          const data = objects.get(path);
          if (!data || isDirRequest) {
            res.writeHead(404).end();
            return;
          }
          const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
          if (range) {
            const start = Number(range[1]);
            const end = Math.min(Number(range[2]), data.length - 1);
            if (start >= data.length) {
              res.writeHead(416, { "Content-Range": `bytes */${data.length}` }).end();
              return;
            }
            const part = data.subarray(start, end + 1);
            res.writeHead(206, { "Content-Length": part.length, "Content-Range": `bytes ${start}-${end}/${data.length}` });
            res.end(req.method === "HEAD" ? undefined : part);
            return;
          }
          res.writeHead(200, { "Content-Length": data.length });
          res.end(req.method === "HEAD" ? undefined : data);
          return;
        }
        case "PUT": {
          if (options.autoParents) {
            for (let p = parentOf(path); p; p = parentOf(p)) collections.add(p);
          }
          if (!collections.has(parentOf(path))) {
            res.writeHead(409, "Parent Collection Missing").end();
            return;
          }
          if (req.headers["if-none-match"] === "*" && objects.has(path)) {
            res.writeHead(412).end();
            return;
          }
          const existed = objects.has(path);
          objects.set(path, body);
          res.writeHead(existed ? 204 : 201).end();
          return;
        }
        case "DELETE":
          if (objects.delete(path)) res.writeHead(204).end();
          else res.writeHead(404).end();
          return;
        case "MKCOL":
          if (collections.has(path)) {
            res.writeHead(405).end();
            return;
          }
          if (!collections.has(parentOf(path))) {
            res.writeHead(409).end();
            return;
          }
          collections.add(path);
          res.writeHead(201).end();
          return;
        case "PROPFIND": {
          if (!collections.has(path)) {
            res.writeHead(404).end();
            return;
          }
          const depth = req.headers.depth ?? "infinity";
          const hrefOf = (p, dir) => escapeXml(encodeURI(root + p + (dir && p ? "/" : "")));
          const entries = [`<d:response><d:href>${hrefOf(path, true)}</d:href><d:propstat><d:prop><d:resourcetype><d:collection/></d:resourcetype></d:prop></d:propstat></d:response>`];
          if (depth !== "0") {
            const prefix = path ? `${path}/` : "";
            for (const c of collections) {
              if (c && c.startsWith(prefix) && !c.slice(prefix.length).includes("/")) {
                entries.push(`<d:response><d:href>${hrefOf(c, true)}</d:href><d:propstat><d:prop><d:resourcetype><d:collection/></d:resourcetype></d:prop></d:propstat></d:response>`);
              }
            }
            for (const [p, data] of objects) {
              if (p.startsWith(prefix) && !p.slice(prefix.length).includes("/")) {
                entries.push(`<d:response><d:href>${hrefOf(p, false)}</d:href><d:propstat><d:prop><d:resourcetype/><d:getcontentlength>${data.length}</d:getcontentlength></d:prop></d:propstat></d:response>`);
              }
            }
          }
          res.writeHead(207, { "Content-Type": "application/xml; charset=utf-8" });
          res.end(`<?xml version="1.0" encoding="utf-8"?>\n<d:multistatus xmlns:d="DAV:">${entries.join("")}</d:multistatus>`);
          return;
        }
        default:
          res.writeHead(405).end();
      }
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}${root}`,
    objects,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/** A `sign` option for httpStorage that presigns each request of a server started with `secret`. */
export function presigner(url, secret) {
  return (method, path) =>
    `${url}${path.split("/").map(encodeURIComponent).join("/")}?sig=${sign(secret, method, path)}`;
}
