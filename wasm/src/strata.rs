//! The `Strata` class: a store, the storage its backups go to, and every statement of the CLI,
//! as SQL text or as typed calls.

use std::sync::Arc;

use js_sys::{Array, Function, Object, Reflect};
use strata_core::sql::Statement;
use strata_core::{
    keys, prefix_end, read_span, BackupOptions, Cancel, Entropy, Error, Executor, ExternalStorage, KvStore, MemKv,
    MvccFilter, QueryResult, RestoreRunOptions, Result, ScanRequest, Span, Timestamp,
};
use wasm_bindgen::prelude::*;

use crate::convert::{
    bytes_from_js, bytes_to_js, optional_string_arg, query_result_to_js, result_rows_to_objects, set, string_arg,
};
use crate::error::to_js_error;
use crate::host;
use crate::host_kv::HostKv;
use crate::opener::Mounts;
use crate::options::{
    backup_statement, restore_statement, show_backup_statement, Options, BACKUP_OPTIONS, RESTORE_OPTIONS, RUN_OPTIONS,
    SHOW_BACKUP_OPTIONS,
};
use crate::progress::{JsProgress, Operation, Run};

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = include_str!("types.d.ts");

type JsResult<T> = std::result::Result<T, JsValue>;

/// A strata: a key-value store to back up and restore into (the built-in in-memory MVCC store,
/// or a `KvPlugin` written in JavaScript), the storage backups go to (`memory://` built in, and
/// any URI prefix mounted onto a `StoragePlugin`), and the statements of the `strata` CLI.
///
/// Every method returning a Promise rejects with a `StrataError` (an `Error` with a stable
/// `code`), and so do the constructor and `mount` when given something unusable.
///
/// One executor runs every call (each on a clone carrying the call's progress callback and
/// abort signal); `BACKUP … WITH detached` jobs run on the JavaScript event loop.
#[wasm_bindgen]
pub struct Strata {
    exec: Executor,
    mounts: Arc<Mounts>,
}

impl Default for Strata {
    fn default() -> Self {
        Strata::in_memory()
    }
}

/// Rust API: the same operations returning [`Result`]s, for Rust callers and native tests.
impl Strata {
    /// An in-memory strata: a [`MemKv`] whose clock is the host's (JS `Date.now()` in wasm, the
    /// system clock natively) and no mounts.
    pub fn in_memory() -> Strata {
        let store = Arc::new(MemKv::with_clock(Arc::new(host::wall_clock_nanos)));
        Strata::over(Arc::new(HostKv::new(store, Some(crate::host_kv::UNIT_BYTES))))
    }

    /// A strata over `store`: one executor over it and the mounts (which it reads as it opens
    /// each URI, so later mounts count), with the host's randomness for encryption and, in wasm,
    /// detached jobs run on the JavaScript event loop. The store is run through a [`HostKv`],
    /// which yields to the event loop as data moves.
    pub fn with_store(store: Arc<dyn KvStore>) -> Strata {
        Strata::over(Arc::new(HostKv::new(store, None)))
    }

    /// One executor over `store` (already a [`HostKv`]) and the mounts.
    fn over(store: Arc<dyn KvStore>) -> Strata {
        host::install_panic_hook();
        let mounts = Arc::new(Mounts::default());
        let exec = Executor::new(store, mounts.clone()).with_entropy(Entropy::new(host::fill_random));
        #[cfg(target_arch = "wasm32")]
        let exec = exec.with_job_spawner(Arc::new(EventLoop));
        Strata { exec, mounts }
    }

    /// Sets how backups run (concurrency, file and page sizes).
    pub fn with_backup_options(mut self, options: BackupOptions) -> Strata {
        self.exec = self.exec.with_backup_options(options);
        self
    }

    /// Sets how restores run.
    pub fn with_restore_options(mut self, options: RestoreRunOptions) -> Strata {
        self.exec = self.exec.with_restore_options(options);
        self
    }

    /// The store statements run against.
    pub fn store(&self) -> &Arc<dyn KvStore> {
        self.exec.store()
    }

    /// Which storage each backup URI names.
    pub fn mounts(&self) -> &Arc<Mounts> {
        &self.mounts
    }

    /// The executor every call runs on (a clone of it, with the call's progress and
    /// cancellation, when it has them).
    pub fn executor(&self) -> &Executor {
        &self.exec
    }

    /// Parses and runs one statement.
    pub async fn execute(&self, sql: &str) -> Result<QueryResult> {
        self.exec.execute(sql).await
    }

    /// Runs a parsed statement, reporting to `run` and canceled by it if given (which is told
    /// when the statement succeeds).
    pub async fn execute_statement(&self, stmt: &Statement, run: Option<Arc<Run>>) -> Result<QueryResult> {
        let Some(run) = run else { return self.exec.execute_statement(stmt).await };
        let (progress, cancel) = run.control();
        let result = self.exec.clone().with_run_control(progress, cancel).execute_statement(stmt).await?;
        run.finish();
        Ok(result)
    }

    async fn table_prefix(&self, db: &str, table: &str, at: Option<Timestamp>) -> Result<[u8; 5]> {
        self.exec.table_prefix(db, table, at).await
    }

    /// Writes `value` under `key` in table `db.table`; returns the write's timestamp.
    pub async fn put(&self, db: &str, table: &str, key: &[u8], value: &[u8]) -> Result<Timestamp> {
        let prefix = self.table_prefix(db, table, None).await?;
        self.store().write(vec![([&prefix[..], key].concat(), Some(value.to_vec()))]).await
    }

    /// Writes every `(key, value)` of `rows` into table `db.table` in one atomic batch; returns
    /// its timestamp.
    pub async fn put_many(&self, db: &str, table: &str, rows: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Timestamp> {
        let prefix = self.table_prefix(db, table, None).await?;
        let batch = rows.into_iter().map(|(k, v)| ([&prefix[..], &k].concat(), Some(v))).collect();
        self.store().write(batch).await
    }

    /// Deletes `key` from table `db.table`; returns the deletion's timestamp.
    pub async fn delete(&self, db: &str, table: &str, key: &[u8]) -> Result<Timestamp> {
        let prefix = self.table_prefix(db, table, None).await?;
        self.store().write(vec![([&prefix[..], key].concat(), None)]).await
    }

    /// The value of `key` in table `db.table` as of `at` (default: now), if any.
    pub async fn get(&self, db: &str, table: &str, key: &[u8], at: Option<Timestamp>) -> Result<Option<Vec<u8>>> {
        let at = match at {
            Some(t) => t,
            None => self.store().now().await?,
        };
        let prefix = self.table_prefix(db, table, Some(at)).await?;
        let full = [&prefix[..], key].concat();
        let span = Span::new(full.clone(), [&full[..], &[0]].concat());
        let page = self.store().scan(ScanRequest::new(span, Timestamp::ZERO, at, MvccFilter::Latest)).await?;
        Ok(page.entries.into_iter().find(|e| e.key == full).and_then(|e| e.value).map(|v| v.to_vec()))
    }

    /// The rows of table `db.table` whose keys start with `prefix`, as of `at` (default: now),
    /// in key order, at most `limit` of them; keys without the table's prefix.
    pub async fn scan(
        &self,
        db: &str,
        table: &str,
        prefix: &[u8],
        at: Option<Timestamp>,
        limit: Option<usize>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let at = match at {
            Some(t) => t,
            None => self.store().now().await?,
        };
        let table_prefix = self.table_prefix(db, table, Some(at)).await?;
        let start = [&table_prefix[..], prefix].concat();
        let span = Span::new(start.clone(), prefix_end(&start));
        let mut rows = read_span(self.store().as_ref(), span, at).await?;
        if let Some(n) = limit {
            rows.truncate(n);
        }
        Ok(rows.into_iter().map(|(k, v)| (k[keys::table_prefix(0).len()..].to_vec(), v)).collect())
    }

    /// Resolves an `AS OF SYSTEM TIME` expression (`'-10s'`, a decimal, a date) against the store's clock.
    pub async fn resolve_time(&self, as_of: &str) -> Result<Timestamp> {
        Timestamp::parse_as_of(as_of, self.store().now().await?)
    }
}

/// JavaScript API (camelCase; Promises reject with a `StrataError`).
#[wasm_bindgen]
impl Strata {
    /// `new Strata(options?)`: the built-in in-memory store (or `options.kv`, a `KvPlugin`), and
    /// `memory://` storage plus the mounts of `options.storage` (URI prefix → `StoragePlugin`).
    #[wasm_bindgen(constructor)]
    pub fn js_new(
        #[wasm_bindgen(unchecked_optional_param_type = "StrataOptions")] options: JsValue,
    ) -> JsResult<Strata> {
        let o = Options::new(&options, "Strata", &["kv", "storage"]).map_err(|e| to_js_error(&e))?;
        let kv = o.get("kv");
        let strata = if kv.is_undefined() || kv.is_null() {
            Strata::in_memory()
        } else {
            Strata::with_store(plugins::kv(kv).map_err(|e| to_js_error(&e))?)
        };
        if let Some(storage) = o.object("storage").map_err(|e| to_js_error(&e))? {
            for entry in Object::entries(&storage).iter() {
                let entry = Array::from(&entry);
                strata.mount(entry.get(0), entry.get(1))?;
            }
        }
        Ok(strata)
    }

    /// Serves backup URIs starting with `prefix` (e.g. `"nodelocal://1"`, `"https://host/backups"`)
    /// from `storage`: `BACKUP INTO 'nodelocal://1/b'` then writes under `b/` of it. The longest
    /// matching prefix wins; mounting a prefix again replaces its storage.
    pub fn mount(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] prefix: JsValue,
        #[wasm_bindgen(unchecked_param_type = "StoragePlugin")] storage: JsValue,
    ) -> JsResult<()> {
        let run = || {
            let prefix = string_arg(&prefix, "mount prefix")?;
            let storage = plugins::storage(storage, &prefix)?;
            self.mounts.mount(&prefix, storage)
        };
        run().map_err(|e| to_js_error(&e))
    }

    /// Removes the mount of `prefix`; returns whether there was one.
    pub fn unmount(&self, #[wasm_bindgen(unchecked_param_type = "string")] prefix: JsValue) -> JsResult<bool> {
        let prefix = string_arg(&prefix, "unmount prefix").map_err(|e| to_js_error(&e))?;
        Ok(self.mounts.unmount(&prefix))
    }

    /// `execute(sql, options?)`: runs one statement (any statement of the CLI); resolves to
    /// `{ columns, rows }`.
    #[wasm_bindgen(js_name = execute, unchecked_return_type = "QueryResult")]
    pub async fn execute_js(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] sql: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "RunOptions")] options: JsValue,
    ) -> JsResult<JsValue> {
        let stmt = string_arg(&sql, "execute sql")
            .and_then(|sql| strata_core::sql::parse(&sql))
            .map_err(|e| to_js_error(&e))?;
        let run = call_run(&options, RUN_OPTIONS, "execute", &stmt, false)?;
        let result = self.execute_statement(&stmt, run).await.map_err(|e| to_js_error(&e))?;
        Ok(query_result_to_js(&result))
    }

    /// `backup(options)`: `BACKUP` as a typed call; resolves to what the backup wrote.
    #[wasm_bindgen(js_name = backup, unchecked_return_type = "BackupResult")]
    pub async fn backup_js(
        &self,
        #[wasm_bindgen(unchecked_param_type = "BackupOptions")] options: JsValue,
    ) -> JsResult<JsValue> {
        let stmt = Options::new(&options, "backup", BACKUP_OPTIONS)
            .and_then(|o| backup_statement(&o))
            .map_err(|e| to_js_error(&e))?;
        self.counted(stmt, &options, BACKUP_OPTIONS, "backup").await
    }

    /// `restore(options)`: `RESTORE` as a typed call; resolves to what was restored.
    #[wasm_bindgen(js_name = restore, unchecked_return_type = "RestoreResult")]
    pub async fn restore_js(
        &self,
        #[wasm_bindgen(unchecked_param_type = "RestoreOptions")] options: JsValue,
    ) -> JsResult<JsValue> {
        let stmt = Options::new(&options, "restore", RESTORE_OPTIONS)
            .and_then(|o| restore_statement(&o))
            .map_err(|e| to_js_error(&e))?;
        self.counted(stmt, &options, RESTORE_OPTIONS, "restore").await
    }

    /// `showBackup(options)`: `SHOW BACKUP` as a typed call; resolves to one row per database and
    /// table of each layer of the chain.
    #[wasm_bindgen(js_name = showBackup, unchecked_return_type = "BackupContents[]")]
    pub async fn show_backup_js(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ShowBackupOptions")] options: JsValue,
    ) -> JsResult<JsValue> {
        let stmt = Options::new(&options, "showBackup", SHOW_BACKUP_OPTIONS)
            .and_then(|o| show_backup_statement(&o))
            .map_err(|e| to_js_error(&e))?;
        self.typed(stmt, &options, SHOW_BACKUP_OPTIONS, "showBackup").await.map(JsValue::from)
    }

    /// `showBackups(collection)`: the full backups of a collection (`SHOW BACKUPS IN`), as the
    /// subdirectories `restore({ from, subdir })` takes, oldest first.
    #[wasm_bindgen(js_name = showBackups, unchecked_return_type = "string[]")]
    pub async fn show_backups_js(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] collection: JsValue,
    ) -> JsResult<JsValue> {
        let collection = string_arg(&collection, "showBackups collection").map_err(|e| to_js_error(&e))?;
        let stmt = Statement::ShowBackups { collection: vec![collection] };
        let result = self.execute_statement(&stmt, None).await.map_err(|e| to_js_error(&e))?;
        let paths: Array = result.rows.iter().map(|r| JsValue::from_str(&r[0].to_string())).collect();
        Ok(paths.into())
    }

    async fn typed(
        &self,
        stmt: Statement,
        options: &JsValue,
        allowed: &'static [&'static str],
        what: &'static str,
    ) -> JsResult<Array> {
        let run = call_run(options, allowed, what, &stmt, false)?;
        let result = self.execute_statement(&stmt, run).await.map_err(|e| to_js_error(&e))?;
        Ok(result_rows_to_objects(&result))
    }

    /// A backup or restore as a typed call: its result row as an object, with the counts named
    /// as `Progress` names them (`rows`, `logicalBytes`, `storageBytes`, `files`) and `bytes`
    /// kept with its old meaning (deprecated: stored bytes for a backup, logical for a restore).
    async fn counted(
        &self,
        stmt: Statement,
        options: &JsValue,
        allowed: &'static [&'static str],
        what: &'static str,
    ) -> JsResult<JsValue> {
        let run = call_run(options, allowed, what, &stmt, true)?.expect("a run is always made");
        let result = self.execute_statement(&stmt, Some(run.clone())).await.map_err(|e| to_js_error(&e))?;
        let obj = Object::from(result_rows_to_objects(&result).get(0));
        let p = run.progress();
        let bytes = if p.operation == Operation::Backup { p.storage_bytes } else { p.bytes };
        let counts = [
            ("rows", p.rows),
            ("logicalBytes", p.bytes),
            ("storageBytes", p.storage_bytes),
            ("files", p.files),
            ("bytes", bytes),
        ];
        for (name, n) in counts {
            set(&obj, name, &(n as f64).into());
        }
        // The SQL result's `stored_bytes` is `storageBytes` here: one name for one count.
        let _ = Reflect::delete_property(&obj, &JsValue::from_str("storedBytes"));
        Ok(obj.into())
    }

    /// `put(db, table, key, value)`: writes one row of `db.table`; resolves to the write's
    /// timestamp (decimal text, usable as `asOf`).
    #[wasm_bindgen(js_name = put)]
    pub async fn put_js(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] db: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] table: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array | ArrayBuffer")] key: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array | ArrayBuffer")] value: JsValue,
    ) -> JsResult<String> {
        let run = async {
            let (db, table) = table_args("put", &db, &table)?;
            let key = bytes_from_js(&key, "put key")?;
            let value = bytes_from_js(&value, "put value")?;
            self.put(&db, &table, &key, &value).await
        };
        run.await.map(|ts| ts.to_string()).map_err(|e| to_js_error(&e))
    }

    /// `putMany(db, table, rows)`: writes `[key, value]` pairs into `db.table` in one atomic
    /// batch; resolves to its timestamp.
    #[wasm_bindgen(js_name = putMany)]
    pub async fn put_many_js(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] db: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] table: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Array<[Uint8Array | ArrayBuffer, Uint8Array | ArrayBuffer]>")]
        rows: JsValue,
    ) -> JsResult<String> {
        let run = async {
            let (db, table) = table_args("putMany", &db, &table)?;
            let rows = pairs_from_js(&rows)?;
            self.put_many(&db, &table, rows).await
        };
        run.await.map(|ts| ts.to_string()).map_err(|e| to_js_error(&e))
    }

    /// `delete(db, table, key)`: deletes one row; resolves to the deletion's timestamp.
    #[wasm_bindgen(js_name = delete)]
    pub async fn delete_js(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] db: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] table: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array | ArrayBuffer")] key: JsValue,
    ) -> JsResult<String> {
        let run = async {
            let (db, table) = table_args("delete", &db, &table)?;
            let key = bytes_from_js(&key, "delete key")?;
            self.delete(&db, &table, &key).await
        };
        run.await.map(|ts| ts.to_string()).map_err(|e| to_js_error(&e))
    }

    /// `get(db, table, key, asOf?)`: the row's value (as of `asOf`, an `AS OF SYSTEM TIME`
    /// expression, or now), or `undefined`.
    #[wasm_bindgen(js_name = get)]
    pub async fn get_js(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] db: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] table: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array | ArrayBuffer")] key: JsValue,
        #[wasm_bindgen(js_name = asOf, unchecked_optional_param_type = "string")] as_of: JsValue,
    ) -> JsResult<Option<Vec<u8>>> {
        let run = async {
            let (db, table) = table_args("get", &db, &table)?;
            let key = bytes_from_js(&key, "get key")?;
            let at = match optional_string_arg(
                &as_of,
                "get asOf (an AS OF SYSTEM TIME expression: a decimal string, a date or \"-10s\")",
            )? {
                Some(a) => Some(self.resolve_time(&a).await?),
                None => None,
            };
            self.get(&db, &table, &key, at).await
        };
        run.await.map_err(|e| to_js_error(&e))
    }

    /// `scan(db, table, options?)`: the rows of `db.table` as `[key, value]` pairs in key order;
    /// `options.prefix` keeps keys starting with it, `options.asOf` reads the past, `options.limit`
    /// stops early.
    #[wasm_bindgen(js_name = scan, unchecked_return_type = "Array<[Uint8Array, Uint8Array]>")]
    pub async fn scan_js(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] db: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] table: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "ScanOptions")] options: JsValue,
    ) -> JsResult<JsValue> {
        let run = async {
            let (db, table) = table_args("scan", &db, &table)?;
            let o = Options::new(&options, "scan", &["prefix", "asOf", "limit"])?;
            let prefix = match o.get("prefix") {
                v if v.is_undefined() || v.is_null() => Vec::new(),
                v => bytes_from_js(&v, "scan option prefix")?,
            };
            let limit = match o.get("limit") {
                v if v.is_undefined() || v.is_null() => None,
                v => Some(crate::convert::u64_from_js(&v, "scan option limit")? as usize),
            };
            let at = match o.string("asOf")? {
                Some(a) => Some(self.resolve_time(&a).await?),
                None => None,
            };
            self.scan(&db, &table, &prefix, at, limit).await
        };
        let rows = run.await.map_err(|e| to_js_error(&e))?;
        let out: Array =
            rows.iter().map(|(k, v)| JsValue::from(Array::of2(&bytes_to_js(k), &bytes_to_js(v)))).collect();
        Ok(out.into())
    }

    /// `now()`: the store's current timestamp, as decimal text (usable as `asOf`).
    #[wasm_bindgen(js_name = now)]
    pub async fn now_js(&self) -> JsResult<String> {
        self.store().now().await.map(|t| t.to_string()).map_err(|e| to_js_error(&e))
    }
}

/// The run of a call whose options may hold `onProgress` and `signal`, if either is given (or
/// `always`).
fn call_run(
    options: &JsValue,
    allowed: &'static [&'static str],
    what: &'static str,
    stmt: &Statement,
    always: bool,
) -> JsResult<Option<Arc<Run>>> {
    let o = Options::new(options, what, allowed).map_err(|e| to_js_error(&e))?;
    let on_progress = o.function("onProgress").map_err(|e| to_js_error(&e))?;
    let signal = o.object("signal").map_err(|e| to_js_error(&e))?;
    if on_progress.is_none() && signal.is_none() && !always {
        return Ok(None);
    }
    if let Some(signal) = &signal {
        if is_aborted(signal) {
            return Err(to_js_error(&Error::Cancelled(format!("the {what} was cancelled before it started"))));
        }
    }
    let operation = match stmt {
        Statement::Backup(_) => Operation::Backup,
        Statement::Restore(_) => Operation::Restore,
        _ => Operation::Statement,
    };
    let mut run = Run::new(operation);
    if let Some(f) = on_progress {
        run = run.with_callback(move |p| report(&f, p));
    }
    if let Some(signal) = signal {
        run = run.with_cancel(Cancel::from_fn(move || is_aborted(&signal)));
    }
    Ok(Some(Arc::new(run)))
}

/// Runs detached jobs' futures on the JavaScript event loop.
#[cfg(target_arch = "wasm32")]
struct EventLoop;

#[cfg(target_arch = "wasm32")]
impl strata_core::JobSpawner for EventLoop {
    fn spawn(&self, job: strata_core::JobFuture) {
        wasm_bindgen_futures::spawn_local(job);
    }
}

/// The database and table arguments of a row call (`put`, `get`, …).
fn table_args(call: &str, db: &JsValue, table: &JsValue) -> Result<(String, String)> {
    Ok((string_arg(db, &format!("{call} database"))?, string_arg(table, &format!("{call} table"))?))
}

/// `[key, value]` pairs from a JS array.
fn pairs_from_js(rows: &JsValue) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    if !Array::is_array(rows) {
        return Err(Error::InvalidArgument {
            what: "putMany rows".into(),
            message: format!("expected an array of [key, value] pairs, got {}", crate::convert::describe_value(rows)),
        });
    }
    Array::from(rows)
        .iter()
        .enumerate()
        .map(|(i, pair)| {
            let what = format!("putMany row {i}");
            if !Array::is_array(&pair) || Array::from(&pair).length() != 2 {
                return Err(Error::InvalidArgument { what, message: "expected a [key, value] pair".into() });
            }
            let pair = Array::from(&pair);
            Ok((
                bytes_from_js(&pair.get(0), &format!("{what} key"))?,
                bytes_from_js(&pair.get(1), &format!("{what} value"))?,
            ))
        })
        .collect()
}

fn is_aborted(signal: &Object) -> bool {
    Reflect::get(signal, &"aborted".into()).ok().and_then(|v| v.as_bool()).unwrap_or(false)
}

/// Calls `onProgress` with a `Progress` object; what it throws is ignored (the work goes on).
fn report(f: &Function, p: &JsProgress) {
    let obj = Object::new();
    set(&obj, "operation", &p.operation.as_str().into());
    set(&obj, "fraction", &p.fraction.into());
    let counts = [
        ("rows", p.rows),
        ("logicalBytes", p.bytes),
        ("storageBytes", p.storage_bytes),
        ("files", p.files),
        // Deprecated alias of logicalBytes.
        ("bytes", p.bytes),
    ];
    for (name, n) in counts {
        set(&obj, name, &(n as f64).into());
    }
    set(&obj, "done", &p.done.into());
    let _ = f.call1(&JsValue::NULL, &obj);
}

/// Plugins written in JavaScript, as the store and storage traits.
#[cfg(target_arch = "wasm32")]
mod plugins {
    use super::*;

    pub fn kv(plugin: JsValue) -> Result<Arc<dyn KvStore>> {
        Ok(Arc::new(crate::js_kv::JsKv::new(plugin)?))
    }

    pub fn storage(plugin: JsValue, name: &str) -> Result<Arc<dyn ExternalStorage>> {
        Ok(Arc::new(crate::js_storage::JsStorage::new(plugin, name)?))
    }
}

/// Natively there is no JavaScript to call: the JS-facing constructor options are unavailable.
#[cfg(not(target_arch = "wasm32"))]
mod plugins {
    use super::*;

    pub fn kv(_plugin: JsValue) -> Result<Arc<dyn KvStore>> {
        Err(Error::NotSupported { feature: "KV plugins written in JavaScript outside wasm32".into() })
    }

    pub fn storage(_plugin: JsValue, _name: &str) -> Result<Arc<dyn ExternalStorage>> {
        Err(Error::NotSupported { feature: "storage plugins written in JavaScript outside wasm32".into() })
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use futures::executor::block_on;
    use strata_core::ExternalStorageExt;

    use super::*;

    fn with_table() -> Strata {
        let s = Strata::in_memory();
        block_on(async {
            s.execute("CREATE DATABASE bank").await.unwrap();
            s.execute("CREATE TABLE bank.accounts").await.unwrap();
        });
        s
    }

    #[test]
    fn put_get_delete_scan() {
        let s = with_table();
        block_on(async {
            let t1 = s.put("bank", "accounts", b"alice", b"100").await.unwrap();
            s.put("bank", "accounts", b"bob", b"50").await.unwrap();
            s.put("bank", "accounts", b"alice", b"90").await.unwrap();
            assert_eq!(s.get("bank", "accounts", b"alice", None).await.unwrap(), Some(b"90".to_vec()));
            assert_eq!(s.get("bank", "accounts", b"alice", Some(t1)).await.unwrap(), Some(b"100".to_vec()));
            assert_eq!(s.get("bank", "accounts", b"ali", None).await.unwrap(), None);
            s.delete("bank", "accounts", b"bob").await.unwrap();
            assert_eq!(s.get("bank", "accounts", b"bob", None).await.unwrap(), None);
            let rows = s.scan("bank", "accounts", b"", None, None).await.unwrap();
            assert_eq!(rows, vec![(b"alice".to_vec(), b"90".to_vec())]);
            assert!(s.scan("bank", "accounts", b"b", None, None).await.unwrap().is_empty());
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
        let s = Strata::in_memory();
        let ts = block_on(s.store().now()).unwrap();
        // After 2025-06: a real wall clock, not MemKv's deterministic counter from 2023-11-14.
        assert!(ts.wall > 1_750_000_000_000_000_000, "{ts}");
    }

    #[test]
    fn backups_go_to_mounted_storage() {
        let s = with_table();
        let disk = strata_core::MemoryStorage::new("disk");
        s.mounts().mount("nodelocal://1", Arc::new(disk.clone())).unwrap();
        block_on(async {
            s.put("bank", "accounts", b"alice", b"100").await.unwrap();
            s.execute("BACKUP DATABASE bank INTO 'nodelocal://1/b'").await.unwrap();
            assert!(disk.get("b/LATEST").await.is_ok());
            s.execute("RESTORE DATABASE bank FROM LATEST IN 'nodelocal://1/b' WITH new_db_name = 'copy'")
                .await
                .unwrap();
            assert_eq!(s.get("copy", "accounts", b"alice", None).await.unwrap(), Some(b"100".to_vec()));
        });
    }

    #[test]
    fn encrypted_backups_use_the_hosts_randomness() {
        let s = with_table();
        block_on(async {
            s.put("bank", "accounts", b"alice", b"100").await.unwrap();
            s.execute("BACKUP DATABASE bank INTO 'memory://e' WITH encryption_passphrase = 'correct horse'")
                .await
                .unwrap();
            let wrong = s
                .execute("RESTORE DATABASE bank FROM LATEST IN 'memory://e' WITH new_db_name = 'x', encryption_passphrase = 'nope'")
                .await
                .unwrap_err();
            assert_eq!(wrong.code(), "WRONG_KEY", "{wrong}");
            s.execute(
                "RESTORE DATABASE bank FROM LATEST IN 'memory://e' WITH new_db_name = 'copy', encryption_passphrase = 'correct horse'",
            )
            .await
            .unwrap();
            assert_eq!(s.get("copy", "accounts", b"alice", None).await.unwrap(), Some(b"100".to_vec()));
        });
    }
}
