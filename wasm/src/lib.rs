//! strata-wasm: strata for JavaScript — full and incremental backups of MVCC key-value data,
//! encrypted or not, into storage the application chooses, and restores, in Node and browsers.
//!
//! ```text
//!   JS: new Strata({ kv? }) ──execute(sql) / backup({…}) / restore({…})──▶ Promise<result>
//!          │                                                    (rejects: StrataError { code })
//!          ▼
//!   strata_core::Executor ──parse, plan, run──▶ store: MemKv (built in) | JsKv (a KvPlugin in JS)
//!          │
//!          └──backup URIs──▶ Mounts: memory:// (built in) | prefix → JsStorage (a StoragePlugin in JS:
//!                                    fsStorage, httpStorage, opfsStorage, indexedDbStorage, your own)
//! ```
//!
//! Every method returns a Promise; a failure rejects with a JS `Error` named `StrataError` whose
//! `code` is [`strata_core::Error::code`] (`"NOT_FOUND"`, `"INVALID_STATEMENT"`, …) and whose
//! `retryable` says whether trying again can help. Plugins are plain JavaScript objects with
//! async methods (`JsStorage`, `JsKv` on wasm32); the TypeScript types in `src/types.d.ts` document
//! their contracts.
//!
//! ```js
//! import { Strata, fsStorage } from "strata-wasm";
//!
//! const db = new Strata({ storage: { "nodelocal://1": fsStorage("/var/backups") } });
//! await db.execute("CREATE DATABASE bank");
//! await db.execute("CREATE TABLE bank.accounts");
//! await db.put("bank", "accounts", new TextEncoder().encode("alice"), Uint8Array.of(100));
//! await db.backup({ databases: ["bank"], into: "nodelocal://1/b", encryptionPassphrase: "hunter2" });
//! await db.put("bank", "accounts", new TextEncoder().encode("bob"), Uint8Array.of(7));
//! await db.backup({ databases: ["bank"], into: "nodelocal://1/b", incremental: true,
//!                   encryptionPassphrase: "hunter2", onProgress: (p) => console.log(p.rows) });
//! await db.restore({ databases: ["bank"], from: "nodelocal://1/b", latest: true,
//!                    newDbName: "bank2", encryptionPassphrase: "hunter2" });
//! try {
//!   await db.execute("RESTORE DATABASE bank FROM LATEST IN 'memory://nowhere'");
//! } catch (e) {
//!   console.log(e.code); // "NOT_FOUND"
//! }
//! ```
//!
//! The same [`Strata`] is usable from Rust (and is tested natively) through its Rust methods,
//! which return [`strata_core::Result`] instead of Promises.
#![warn(missing_docs)]
// On wasm32 the traits drop Send + Sync (JavaScript values are neither, and there is one thread),
// yet the core's API takes `Arc<dyn …>`: an Arc of a non-Send value is what is meant there.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

mod backup_read;
#[cfg(target_arch = "wasm32")]
mod conformance;
mod convert;
mod error;
mod host;
mod host_kv;
#[cfg(target_arch = "wasm32")]
mod js_kv;
#[cfg(target_arch = "wasm32")]
mod js_storage;
mod manage;
mod opener;
mod options;
mod progress;
mod strata;

pub use crate::convert::{query_result_to_js, ts_from_js, ts_to_js, value_to_js};
pub use crate::error::{from_js_error, to_js_error, PluginKind};
pub use crate::host::fill_random;
pub use crate::host_kv::{yield_to_event_loop, HostKv};
#[cfg(target_arch = "wasm32")]
pub use crate::js_kv::JsKv;
#[cfg(target_arch = "wasm32")]
pub use crate::js_storage::JsStorage;
pub use crate::opener::Mounts;
pub use crate::progress::{JsProgress, Operation, Run};
pub use crate::strata::Strata;
