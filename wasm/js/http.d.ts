import type { StorageObject, StoragePlugin } from "../pkg/types.js";

/** What httpStorage needs of a fetch: the global `fetch` (browsers, Node >= 18) is one. */
export type HttpFetch = (
  url: string,
  init?: { method?: string; headers?: Record<string, string>; body?: Uint8Array | string },
) => Promise<{
  ok: boolean;
  status: number;
  statusText: string;
  headers: { get(name: string): string | null };
  arrayBuffer(): Promise<ArrayBuffer>;
  text(): Promise<string>;
}>;

export interface HttpStorageOptions {
  /** Headers of every request (e.g. `Authorization`), or a function returning them. */
  headers?: Record<string, string> | (() => Record<string, string> | Promise<Record<string, string>>);
  /** The URL of one request (e.g. a presigned URL); default: `baseUrl` + the %-encoded path. */
  sign?: (method: "GET" | "HEAD" | "PUT" | "DELETE" | "PROPFIND" | "MKCOL", path: string) => string | Promise<string>;
  /** Lists objects when the server has no WebDAV PROPFIND. */
  list?: (prefix: string) => Promise<StorageObject[]>;
  /** The fetch to use (default: the global one). */
  fetch?: HttpFetch;
}

export interface HttpStorage extends StoragePlugin {
  readonly baseUrl: string;
}

/**
 * A storage plugin over plain HTTP(S): GET (with Range), PUT, HEAD, DELETE; PROPFIND (WebDAV) to
 * list unless `options.list` is given. Errors for 408/429/5xx and network failures are retryable.
 */
export function httpStorage(baseUrl: string, options?: HttpStorageOptions): HttpStorage;
