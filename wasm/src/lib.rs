//! strata-wasm: strata for JavaScript, in Node and in browsers, through wasm-bindgen.
//!
//! ```text
//!   JS: new Strata() ──execute(sql)──▶ Promise<QueryResult>        put/get ──▶ Promise
//!          │                               ▲                            │
//!          ▼                               │ {columns, rows}            ▼
//!   strata_core::Executor ──parse, plan, run──▶ MemKv (clock: Date.now()) ◀── table rows
//!          │
//!          └──BACKUP / RESTORE──▶ MemoryOpener: memory://name/… objects
//! ```
//!
//! Every method returns a Promise; a failure rejects with a JS `Error` whose `code` is
//! [`strata_core::Error::code`] (`"NOT_FOUND"`, `"INVALID_STATEMENT"`, …) and whose `retryable`
//! says whether trying again can help.
//!
//! ```js
//! import { Strata } from "strata-wasm";
//!
//! const db = new Strata();
//! await db.execute("CREATE DATABASE bank");
//! await db.execute("CREATE TABLE bank.accounts");
//! await db.put("bank", "accounts", new TextEncoder().encode("alice"), Uint8Array.of(100));
//! await db.execute("BACKUP DATABASE bank INTO 'memory://backups'");
//! await db.execute("RESTORE DATABASE bank FROM LATEST IN 'memory://backups' WITH new_db_name = 'bank2'");
//! const { columns, rows } = await db.execute("SHOW TABLES FROM bank2");
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

mod convert;
mod error;
mod strata;

pub use crate::convert::{query_result_to_js, value_to_js};
pub use crate::error::to_js_error;
pub use crate::strata::Strata;
