import type { KvPlugin, StoragePlugin } from "../pkg/types.js";

/** What a conformance run did: the checks that passed, failed (with the first difference found) and were skipped. */
export interface ConformanceReport {
  passed: string[];
  failed: Array<{ name: string; message: string }>;
  skipped: Array<{ name: string; reason: string }>;
}

export interface ConformanceOptions {
  /** Checks not to run, by name, each with the reason (printed in the report). */
  skip?: Record<string, string>;
  /** Called after each check. */
  onCheck?: (result: { name: string; ok: boolean; message?: string }) => void;
}

export interface KvConformanceOptions extends ConformanceOptions {
  /**
   * Garbage-collects `plugin` up to `threshold`: for each key keep the newest version at or below
   * it unless that is a deletion, drop the older ones, and raise `gcThreshold` to it (never lower
   * it). Given, the suite also checks reads below the GC threshold (`INVALID_TIME`).
   */
  gc?: (plugin: KvPlugin, threshold: bigint) => void | Promise<void>;
}

/**
 * Runs strata's KV conformance suite (the one the built-in stores pass) on plugins from
 * `factory`, each check on a fresh, empty one. Resolves to the report when every check passes;
 * rejects with a `StrataError` (code `PRECONDITION`, `report` attached) naming each failed check
 * and the first difference it found. See `KvPlugin` for what the checks hold a plugin to.
 */
export function checkKvPlugin(
  factory: () => KvPlugin | Promise<KvPlugin>,
  options?: KvConformanceOptions,
): Promise<ConformanceReport>;

/**
 * Runs strata's storage conformance suite on `plugin` (in scratch directories under
 * `strata-conformance/`, removed when a check passes). Resolves to the report; rejects like
 * `checkKvPlugin`. See `StoragePlugin` for what the checks hold a plugin to.
 */
export function checkStoragePlugin(plugin: StoragePlugin, options?: ConformanceOptions): Promise<ConformanceReport>;
