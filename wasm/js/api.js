// What both entry points (node.js, web.js) add to the WebAssembly's exports: the StrataError
// class, timestamp helpers, and a guard that makes a call on a freed Strata fail with a code.

import { Strata } from "../pkg/strata_wasm.js";

/**
 * The error every Strata call rejects with (an `Error` named "StrataError" with a stable
 * `code`). `e instanceof StrataError` holds for every error strata throws, whichever copy of the
 * module made it; plugins may throw one too (`new StrataError("gone", "NOT_FOUND")`).
 */
export class StrataError extends Error {
  constructor(message, code, options = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "StrataError";
    this.code = code;
    this.retryable = options.retryable ?? false;
  }

  static [Symbol.hasInstance](value) {
    return isStrataError(value);
  }
}

/** Whether `value` is an error strata threw (or a `StrataError` a plugin made). */
export function isStrataError(value) {
  return value instanceof Error && value.name === "StrataError" && typeof value.code === "string";
}

const DECIMAL = /^(\d+)(?:\.(\d{1,10}))?$/;

/**
 * A timestamp as strata prints it (`"1796516333034358466.0000000000"`: nanoseconds since the
 * Unix epoch, then the hybrid logical clock's counter) as the `bigint` nanoseconds plugins use.
 * The logical counter is dropped (plugins keep one number per version).
 */
export function timestampToNanos(timestamp) {
  const m = typeof timestamp === "string" ? DECIMAL.exec(timestamp) : null;
  if (!m) {
    throw new StrataError(
      `timestampToNanos: expected a decimal timestamp such as "1796516333034358466.0000000000", got ${describe(timestamp)}`,
      "INVALID_ARGUMENT",
    );
  }
  return BigInt(m[1]);
}

/** `bigint` nanoseconds since the Unix epoch as the decimal timestamp strata takes (e.g. as `asOf`). */
export function nanosToTimestamp(nanos) {
  if (typeof nanos === "number" && Number.isSafeInteger(nanos)) nanos = BigInt(nanos);
  if (typeof nanos !== "bigint" || nanos < 0n || nanos >= 1n << 64n) {
    throw new StrataError(
      `nanosToTimestamp: expected a bigint of nanoseconds since the Unix epoch in [0, 2^64), got ${describe(nanos)}`,
      "INVALID_ARGUMENT",
    );
  }
  return `${nanos}.0000000000`;
}

function describe(value) {
  if (typeof value === "string") return JSON.stringify(value.slice(0, 40));
  if (typeof value === "bigint") return `${value}n`;
  if (value === null || typeof value !== "object") return String(value);
  return value.constructor?.name ?? "object";
}

// Methods that return a value, not a Promise: after free() they throw; the others reject.
const SYNC = new Set(["mount", "unmount"]);

function freed(name) {
  return new StrataError(
    `Strata.${name}: this Strata was freed (free() was called); make a new one`,
    "PRECONDITION",
  );
}

/** Wraps every method of the wasm-bindgen class so that a call after free() fails with a code. */
function guard(cls) {
  const proto = cls.prototype;
  for (const name of Object.getOwnPropertyNames(proto)) {
    const f = proto[name];
    if (name === "constructor" || name.startsWith("__") || typeof f !== "function" || f.__strataGuarded) continue;
    let wrapped;
    if (name === "free") {
      // A second free() does nothing.
      wrapped = function free() {
        if (this.__wbg_ptr) f.call(this);
      };
    } else if (SYNC.has(name)) {
      wrapped = function (...args) {
        if (!this.__wbg_ptr) throw freed(name);
        return f.apply(this, args);
      };
    } else {
      wrapped = function (...args) {
        if (!this.__wbg_ptr) return Promise.reject(freed(name));
        return f.apply(this, args);
      };
    }
    Object.defineProperty(wrapped, "name", { value: name });
    wrapped.__strataGuarded = true;
    Object.defineProperty(proto, name, { ...Object.getOwnPropertyDescriptor(proto, name), value: wrapped });
  }
  const dispose = Symbol.dispose && proto[Symbol.dispose];
  if (typeof dispose === "function") {
    proto[Symbol.dispose] = function () {
      if (this.__wbg_ptr) dispose.call(this);
    };
  }
}

guard(Strata);

export { Strata };
