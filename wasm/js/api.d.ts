import type { StrataErrorCode } from "../pkg/types.js";
export { Strata } from "../pkg/types.js";

/**
 * The error every Strata call rejects with: an `Error` named "StrataError" with a stable `code`
 * (switch on it with a default branch: more may be added) and `retryable`. `e instanceof
 * StrataError` holds for every error strata throws. A plugin may throw one to say what went
 * wrong (`new StrataError("no such object", "NOT_FOUND")`; see the plugin contracts for the codes
 * each kind of plugin may use).
 *
 * Calling a method of a `Strata` after its `free()` fails with code `PRECONDITION`.
 */
export declare class StrataError extends Error {
  constructor(message: string, code: StrataErrorCode, options?: { retryable?: boolean; cause?: unknown });
  name: "StrataError";
  code: StrataErrorCode;
  /** Whether the same call may succeed if tried again. */
  retryable: boolean;
  static [Symbol.hasInstance](value: unknown): boolean;
}

/** Whether `value` is an error strata threw (or a `StrataError` a plugin made). */
export declare function isStrataError(value: unknown): value is StrataError;

/**
 * A decimal timestamp as strata prints and takes it (`"1796516333034358466.0000000000"`, e.g.
 * `put`'s result, `BackupResult.endTime`) as the `bigint` nanoseconds since the Unix epoch that
 * plugins use; the hybrid logical clock's counter after the point is dropped. Throws a
 * `StrataError` `INVALID_ARGUMENT` for anything else.
 */
export declare function timestampToNanos(timestamp: string): bigint;

/** `bigint` nanoseconds since the Unix epoch as a decimal timestamp (usable as `asOf`). */
export declare function nanosToTimestamp(nanos: bigint | number): string;
