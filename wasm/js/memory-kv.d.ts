import type { KvPlugin, KvScanPage, KvScanRequest, KvSpan, KvWrite } from "../pkg/types.js";

/** Unsigned lexicographic order of two byte arrays: -1, 0 or 1. */
export function compareBytes(a: Uint8Array, b: Uint8Array): -1 | 0 | 1;

/**
 * A complete KV plugin in plain JavaScript: a multi-version key-value store held in memory. The
 * template for plugins over an application's own store; it passes strata's KV conformance suite.
 */
export class MemoryKv implements KvPlugin {
  /** `clock`: wall nanoseconds since the epoch (default: `Date.now()` × 10^6). */
  constructor(options?: { clock?: () => bigint });
  now(): Promise<bigint>;
  scan(request: KvScanRequest): Promise<KvScanPage>;
  write(batch: KvWrite[]): Promise<bigint>;
  discard(spans: KvSpan[]): Promise<void>;
  gcThreshold(): Promise<bigint>;
  /** Drops versions hidden at `threshold` and raises the GC threshold to it. */
  gc(threshold: bigint): void;
  /** The newest live version of every key, as `{ keyHex: valueHex }`. */
  snapshot(): Record<string, string>;
}
