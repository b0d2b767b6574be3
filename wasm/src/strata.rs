//! The `Strata` class: an in-memory MVCC store plus `memory://` backup storage, driven by SQL.

use std::sync::Arc;

use strata_core::{Executor, KvSource, KvStore, MemKv, MemoryOpener, QueryResult, Result, StorageOpener, Timestamp};
use wasm_bindgen::prelude::*;

use crate::convert::query_result_to_js;
use crate::error::to_js_error;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** One cell of a result: SQL NULL is `null`; integers beyond ±2^53 arrive as `bigint`. */
export type Value = null | boolean | number | bigint | string;

/** What `Strata.execute` resolves to: column names and rows, each row as long as `columns`. */
export interface QueryResult {
  columns: string[];
  rows: Value[][];
}

/** The stable codes of `StrataError.code` (more may be added; switch with a default branch). */
export type StrataErrorCode =
  | "INVALID_STATEMENT"
  | "INVALID_ARGUMENT"
  | "NOT_SUPPORTED"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "PRECONDITION"
  | "CORRUPT"
  | "INVALID_TIME"
  | "STORAGE"
  | "KV"
  | "CANCELLED";

/** Every Strata method rejects with this: an `Error` named "StrataError". */
export interface StrataError extends Error {
  name: "StrataError";
  code: StrataErrorCode;
  /** Whether the same call may succeed if tried again. */
  retryable: boolean;
}
"#;

/// An in-memory strata: a [`MemKv`] store whose clock is the host's (JS `Date.now()` in wasm,
/// the system clock natively) and a [`MemoryOpener`] for `memory://` backup URIs.
///
/// JS sees `new Strata()`, `execute`, `put` and `get`; Rust sees [`Strata::execute`],
/// [`Strata::put`] and [`Strata::get`], which return [`Result`]s instead of Promises.
#[wasm_bindgen]
pub struct Strata {
    store: MemKv,
    exec: Executor,
}

impl Default for Strata {
    fn default() -> Self {
        Strata::new()
    }
}

/// Rust API.
impl Strata {
    /// A strata over `store`, opening backup URIs with `opener`.
    pub fn with_store(store: MemKv, opener: Arc<dyn StorageOpener>) -> Strata {
        let exec = Executor::new(Arc::new(store.clone()), opener);
        Strata { store, exec }
    }

    /// The store statements run against.
    pub fn store(&self) -> &MemKv {
        &self.store
    }

    /// The executor, for running parsed statements ([`Executor::execute_statement`]).
    pub fn executor(&self) -> &Executor {
        &self.exec
    }

    /// Parses and runs one statement.
    pub async fn execute(&self, sql: &str) -> Result<QueryResult> {
        self.exec.execute(sql).await
    }

    /// Writes `value` under `key` in table `db.table`; returns the write's timestamp.
    pub async fn put(&self, db: &str, table: &str, key: &[u8], value: &[u8]) -> Result<Timestamp> {
        let prefix = self.exec.table_prefix(db, table, None).await?;
        self.store.write(vec![(row_key(prefix, key), Some(value.to_vec()))]).await
    }

    /// The current value of `key` in table `db.table`, if any.
    pub async fn get(&self, db: &str, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let now = self.store.now().await?;
        let prefix = self.exec.table_prefix(db, table, Some(now)).await?;
        Ok(self.store.get_at(&row_key(prefix, key), now))
    }
}

/// JavaScript API (camelCase; every method returns a Promise rejecting with a `StrataError`).
#[wasm_bindgen]
impl Strata {
    /// `new Strata()`: an empty store and empty `memory://` storage.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Strata {
        Strata::with_store(MemKv::with_clock(Arc::new(wall_clock_nanos)), Arc::new(MemoryOpener::default()))
    }

    /// `execute(sql)`: runs one statement; resolves to `{ columns, rows }`.
    #[wasm_bindgen(js_name = execute, unchecked_return_type = "QueryResult")]
    pub async fn execute_js(&self, sql: String) -> std::result::Result<JsValue, JsValue> {
        let result = self.execute(&sql).await.map_err(|e| to_js_error(&e))?;
        Ok(query_result_to_js(&result))
    }

    /// `put(db, table, key, value)`: writes one row of `db.table`.
    #[wasm_bindgen(js_name = put)]
    pub async fn put_js(
        &self,
        db: String,
        table: String,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> std::result::Result<(), JsValue> {
        self.put(&db, &table, &key, &value).await.map(|_| ()).map_err(|e| to_js_error(&e))
    }

    /// `get(db, table, key)`: the row's current value, or `undefined`.
    #[wasm_bindgen(js_name = get)]
    pub async fn get_js(
        &self,
        db: String,
        table: String,
        key: Vec<u8>,
    ) -> std::result::Result<Option<Vec<u8>>, JsValue> {
        self.get(&db, &table, &key).await.map_err(|e| to_js_error(&e))
    }
}

/// The key of a row: the table's prefix, then the user's key (as [`strata_core::keys::table_key`]).
fn row_key(table_prefix: [u8; 5], key: &[u8]) -> Vec<u8> {
    [table_prefix.as_slice(), key].concat()
}

/// Wall-clock nanoseconds since the epoch, from the host.
#[cfg(target_arch = "wasm32")]
fn wall_clock_nanos() -> u64 {
    // Date.now() is whole milliseconds; the store's hybrid logical clock orders writes within one.
    (js_sys::Date::now() as u64).saturating_mul(1_000_000)
}

/// Wall-clock nanoseconds since the epoch, from the host.
#[cfg(not(target_arch = "wasm32"))]
fn wall_clock_nanos() -> u64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use futures::executor::block_on;
    use strata_core::sql::{Statement, TableName};
    use strata_core::Error;

    use super::*;

    fn with_table() -> Strata {
        let s = Strata::new();
        block_on(async {
            let exec = s.executor();
            exec.execute_statement(&Statement::CreateDatabase { name: "bank".into(), if_not_exists: false })
                .await
                .unwrap();
            let name = TableName { database: Some("bank".into()), table: "accounts".into() };
            exec.execute_statement(&Statement::CreateTable { name, if_not_exists: false }).await.unwrap();
        });
        s
    }

    #[test]
    fn put_then_get() {
        let s = with_table();
        block_on(async {
            s.put("bank", "accounts", b"alice", b"100").await.unwrap();
            assert_eq!(s.get("bank", "accounts", b"alice").await.unwrap(), Some(b"100".to_vec()));
            assert_eq!(s.get("bank", "accounts", b"bob").await.unwrap(), None);
        });
    }

    #[test]
    fn missing_table_is_not_found() {
        let s = with_table();
        let err = block_on(s.put("bank", "nope", b"k", b"v")).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        assert_eq!(err.code(), "NOT_FOUND");
    }

    #[test]
    fn clock_is_the_hosts() {
        let s = Strata::new();
        let ts = block_on(s.store().now()).unwrap();
        // After 2025-06: a real wall clock, not MemKv's deterministic counter from 2023-11-14.
        assert!(ts.wall > 1_750_000_000_000_000_000, "{ts}");
    }
}
