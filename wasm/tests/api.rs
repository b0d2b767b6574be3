//! The JavaScript API as JS sees it (`Strata`'s exported methods, called with JS values), run
//! under Node and in headless Chromium by wasm-bindgen-test (scripts/test-all.sh).
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Function, Object, Reflect};
use strata_wasm::Strata;
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::wasm_bindgen_test;

fn prop(obj: &JsValue, name: &str) -> JsValue {
    Reflect::get(obj, &name.into()).unwrap_or_else(|_| panic!("no property {name} on {obj:?}"))
}

/// A JS object from `(name, value)` pairs.
fn obj(props: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in props {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

fn new_strata() -> Strata {
    Strata::js_new(JsValue::UNDEFINED).unwrap()
}

async fn exec(s: &Strata, sql: &str) -> JsValue {
    match s.execute_js(sql.into(), JsValue::UNDEFINED).await {
        Ok(v) => v,
        Err(e) => panic!("{sql}: {} ({:?})", prop(&e, "message").as_string().unwrap_or_default(), prop(&e, "code")),
    }
}

/// The rejection of a call that must fail, checked to be a JS `Error` with a string `code`.
fn expect_error(result: Result<impl std::fmt::Debug, JsValue>) -> (String, String) {
    let err = result.expect_err("the call should have failed");
    assert!(err.is_instance_of::<js_sys::Error>(), "{err:?} is not an Error");
    assert_eq!(prop(&err, "name").as_string().as_deref(), Some("StrataError"));
    let code = prop(&err, "code").as_string().expect("code is a string");
    let message = prop(&err, "message").as_string().expect("message is a string");
    assert!(!message.is_empty());
    (code, message)
}

/// A cell as text: strings as they are, numbers, booleans and bigints in decimal, null as NULL.
fn cell_text(v: &JsValue) -> String {
    if let Some(s) = v.as_string() {
        s
    } else if let Some(n) = v.as_f64() {
        n.to_string()
    } else if let Some(b) = v.as_bool() {
        b.to_string()
    } else if v.is_null() {
        "NULL".into()
    } else if v.is_bigint() {
        String::from(v.unchecked_ref::<js_sys::BigInt>().to_string(10).expect("radix 10"))
    } else {
        panic!("unexpected cell {v:?}")
    }
}

/// `{columns, rows}` as Rust strings (see [`cell_text`]).
fn table(result: &JsValue) -> (Vec<String>, Vec<Vec<String>>) {
    let columns: Vec<String> =
        Array::from(&prop(result, "columns")).iter().map(|c| c.as_string().expect("column name")).collect();
    let rows: Vec<Vec<String>> = Array::from(&prop(result, "rows"))
        .iter()
        .map(|r| Array::from(&r).iter().map(|v| cell_text(&v)).collect())
        .collect();
    for r in &rows {
        assert_eq!(r.len(), columns.len());
    }
    (columns, rows)
}

fn bytes(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// Bytes as a JS `Uint8Array` argument.
fn js_bytes(s: &str) -> JsValue {
    js_sys::Uint8Array::from(s.as_bytes()).into()
}

async fn bank(s: &Strata) {
    exec(s, "CREATE DATABASE bank").await;
    exec(s, "CREATE TABLE bank.accounts").await;
    for (k, v) in [("alice", "100"), ("bob", "50"), ("carol", "7")] {
        s.put_js("bank".into(), "accounts".into(), js_bytes(k), js_bytes(v)).await.unwrap();
    }
}

#[wasm_bindgen_test]
async fn backup_then_restore_under_a_new_name() {
    let s = new_strata();
    bank(&s).await;

    let backup = exec(&s, "BACKUP DATABASE bank INTO 'memory://b'").await;
    let (columns, rows) = table(&backup);
    assert!(!columns.is_empty());
    assert_eq!(rows.len(), 1);
    // Warnings that do not fail a statement come as `notices`: none here. A collection with
    // nothing in it (a mistyped URI?) is an error.
    assert_eq!(Array::from(&prop(&backup, "notices")).length(), 0);
    let (code, message) =
        expect_error(s.execute_js("SHOW BACKUPS IN 'memory://nothing'".into(), JsValue::UNDEFINED).await);
    assert_eq!(code, "NOT_FOUND", "{message}");
    assert!(message.contains("memory://nothing"), "{message}");

    exec(&s, "RESTORE DATABASE bank FROM LATEST IN 'memory://b' WITH new_db_name = 'bank2'").await;
    let (columns, rows) = table(&exec(&s, "SHOW TABLES FROM bank2").await);
    assert_eq!(columns, ["database_name", "table_name"]);
    assert_eq!(rows, [["bank2", "accounts"]]);

    for (k, v) in [("alice", "100"), ("bob", "50"), ("carol", "7")] {
        let got = s.get_js("bank2".into(), "accounts".into(), js_bytes(k), JsValue::UNDEFINED).await.unwrap();
        assert_eq!(got, Some(bytes(v)), "bank2.accounts[{k}]");
    }
    assert_eq!(s.get_js("bank2".into(), "accounts".into(), js_bytes("dave"), JsValue::UNDEFINED).await.unwrap(), None);

    // The original is untouched by writes to the copy.
    s.put_js("bank2".into(), "accounts".into(), js_bytes("alice"), js_bytes("0")).await.unwrap();
    assert_eq!(
        s.get_js("bank".into(), "accounts".into(), js_bytes("alice"), JsValue::UNDEFINED).await.unwrap(),
        Some(bytes("100"))
    );
}

#[wasm_bindgen_test]
async fn typed_calls_full_incremental_encrypted() {
    let s = new_strata();
    bank(&s).await;
    let pass = JsValue::from_str("correct horse battery staple");
    let full = s
        .backup_js(obj(&[
            ("databases", "bank".into()),
            ("into", "memory://typed".into()),
            ("encryptionPassphrase", pass.clone()),
            ("revisionHistory", true.into()),
        ]))
        .await
        .unwrap();
    assert_eq!(prop(&full, "backupType").as_string().as_deref(), Some("full"));
    assert_eq!(prop(&full, "status").as_string().as_deref(), Some("succeeded"));
    assert!(prop(&full, "files").as_f64().unwrap() >= 1.0);
    let before = s.now_js().await.unwrap();

    s.delete_js("bank".into(), "accounts".into(), js_bytes("bob")).await.unwrap();
    s.put_js("bank".into(), "accounts".into(), js_bytes("dave"), js_bytes("1")).await.unwrap();
    let incremental = s
        .backup_js(obj(&[
            ("databases", Array::of1(&"bank".into()).into()),
            ("into", "memory://typed".into()),
            ("incremental", true.into()),
            ("encryptionPassphrase", pass.clone()),
            ("revisionHistory", true.into()),
        ]))
        .await
        .unwrap();
    assert_eq!(prop(&incremental, "backupType").as_string().as_deref(), Some("incremental"));

    let layers = s
        .show_backup_js(obj(&[
            ("from", "memory://typed".into()),
            ("latest", true.into()),
            ("encryptionPassphrase", pass.clone()),
        ]))
        .await
        .unwrap();
    let layers = Array::from(&layers);
    assert_eq!(layers.length(), 4, "two layers, each a database row and a table row");
    assert_eq!(prop(&layers.get(3), "backupType").as_string().as_deref(), Some("incremental"));
    assert_eq!(prop(&layers.get(1), "tableName").as_string().as_deref(), Some("accounts"));

    let restored = s
        .restore_js(obj(&[
            ("databases", "bank".into()),
            ("from", "memory://typed".into()),
            ("latest", true.into()),
            ("newDbName", "now".into()),
            ("encryptionPassphrase", pass.clone()),
        ]))
        .await
        .unwrap();
    assert_eq!(prop(&restored, "tables").as_f64(), Some(1.0));
    assert_eq!(prop(&restored, "rows").as_f64(), Some(3.0));
    let rows = Array::from(&s.scan_js("now".into(), "accounts".into(), JsValue::UNDEFINED).await.unwrap());
    let keys: Vec<String> = rows
        .iter()
        .map(|r| String::from_utf8(js_sys::Uint8Array::new(&Array::from(&r).get(0)).to_vec()).unwrap())
        .collect();
    assert_eq!(keys, ["alice", "carol", "dave"]);

    // Point in time inside the chain (revision history).
    s.restore_js(obj(&[
        ("tables", "bank.accounts".into()),
        ("from", "memory://typed".into()),
        ("latest", true.into()),
        ("asOf", before.clone().into()),
        ("intoDb", "now".into()),
        ("encryptionPassphrase", pass.clone()),
    ]))
    .await
    .expect_err("now.accounts exists already");
    exec(&s, "CREATE DATABASE past").await;
    let pitr = |as_of: JsValue| {
        obj(&[
            ("tables", "bank.accounts".into()),
            ("from", "memory://typed".into()),
            ("latest", true.into()),
            ("asOf", as_of),
            ("intoDb", "past".into()),
            ("encryptionPassphrase", pass.clone()),
        ])
    };
    s.restore_js(pitr(before.clone().into())).await.unwrap();
    let rows = Array::from(&s.scan_js("past".into(), "accounts".into(), JsValue::UNDEFINED).await.unwrap());
    assert_eq!(rows.length(), 3, "alice, bob and carol as of the full backup's end");
    let (code, message) = expect_error(s.restore_js(pitr(s.now_js().await.unwrap().into())).await);
    assert_eq!(code, "INVALID_TIME", "{message}");

    let (code, message) = expect_error(
        s.restore_js(obj(&[
            ("databases", "bank".into()),
            ("from", "memory://typed".into()),
            ("latest", true.into()),
            ("newDbName", "x".into()),
            ("encryptionPassphrase", "wrong".into()),
        ]))
        .await,
    );
    assert!(message.contains("passphrase"), "{code}: {message}");
    let (code, message) = expect_error(
        s.restore_js(obj(&[("databases", "bank".into()), ("from", "memory://typed".into()), ("latest", true.into())]))
            .await,
    );
    assert!(message.contains("encrypt"), "{code}: {message}");
}

#[wasm_bindgen_test]
async fn options_are_checked() {
    let s = new_strata();
    bank(&s).await;
    let (code, message) =
        expect_error(s.backup_js(obj(&[("into", "memory://x".into()), ("revisonHistory", true.into())])).await);
    assert_eq!(code, "INVALID_ARGUMENT");
    assert!(message.contains("revisonHistory") && message.contains("revisionHistory"), "{message}");
    let (code, message) = expect_error(s.backup_js(obj(&[("databases", "bank".into())])).await);
    assert_eq!(code, "INVALID_ARGUMENT");
    assert!(message.contains("into"), "{message}");
    let (_, message) =
        expect_error(s.backup_js(obj(&[("into", "memory://x".into()), ("to", "memory://y".into())])).await);
    assert!(message.contains("not both"), "{message}");
    let (_, message) = expect_error(s.backup_js(obj(&[("into", 7.into())])).await);
    assert!(message.contains("expected a string"), "{message}");
    let (_, message) = expect_error(s.backup_js(JsValue::from_str("memory://x")).await);
    assert!(message.contains("options object"), "{message}");
    let (_, message) = expect_error(s.restore_js(obj(&[("latest", true.into())])).await);
    assert!(message.contains("from"), "{message}");
    let (_, message) =
        expect_error(s.restore_js(obj(&[("tables", "accounts".into()), ("from", "memory://x".into())])).await);
    assert!(message.contains("db.table"), "{message}");
    let (code, _) = expect_error(Strata::js_new(obj(&[("kv", 3.into())])).map(|_| ()));
    assert_eq!(code, "INVALID_ARGUMENT");
    let (code, message) = expect_error(
        s.execute_js("BACKUP INTO 's3://bucket/x?AWS_SECRET_ACCESS_KEY=hunter2'".into(), JsValue::UNDEFINED).await,
    );
    assert_eq!(code, "INVALID_ARGUMENT");
    assert!(message.contains("mount") && !message.contains("hunter2"), "{message}");
}

#[wasm_bindgen(inline_js = r#"
export function recorder() {
  const reports = [];
  return { reports, onProgress: (p) => { reports.push({ ...p }); if (reports.length === 2) throw new Error("ignored"); } };
}
export function mapStorage() {
  const m = new Map();
  return {
    objects: m,
    async put(p, d) { m.set(p, d.slice()); },
    async get(p) { return m.get(p) ?? null; },
    async list(prefix) { return [...m].filter(([k]) => k.startsWith(prefix)).map(([path, d]) => ({ path, size: d.length })); },
    async delete(p) { m.delete(p); },
  };
}
"#)]
extern "C" {
    fn recorder() -> JsValue;
    #[wasm_bindgen(js_name = mapStorage)]
    fn map_storage() -> JsValue;
}

#[wasm_bindgen_test]
async fn progress_is_reported_and_signals_cancel() {
    let storage = map_storage();
    let s = Strata::js_new(obj(&[("storage", obj(&[("js://disk", storage.clone())]))])).unwrap();
    bank(&s).await;
    let rec = recorder();
    let on_progress: Function = prop(&rec, "onProgress").dyn_into().unwrap();
    let options = obj(&[("onProgress", on_progress.clone().into())]);
    exec(&s, "CREATE DATABASE other").await;
    s.execute_js("BACKUP DATABASE bank INTO 'js://disk/p'".into(), options).await.unwrap();
    let reports = Array::from(&prop(&rec, "reports"));
    assert!(reports.length() >= 3, "{reports:?}");
    let last = reports.get(reports.length() - 1);
    assert_eq!(prop(&last, "done").as_bool(), Some(true));
    assert_eq!(prop(&last, "operation").as_string().as_deref(), Some("backup"));
    assert!(prop(&last, "rows").as_f64().unwrap() >= 3.0);
    assert!(prop(&last, "storageBytes").as_f64().unwrap() > 0.0);
    let objects: js_sys::Map = prop(&storage, "objects").dyn_into().unwrap();
    assert!(objects.has(&"p/LATEST".into()));

    let restore = s
        .restore_js(obj(&[
            ("databases", "bank".into()),
            ("from", "js://disk/p".into()),
            ("latest", true.into()),
            ("newDbName", "copy".into()),
            ("onProgress", on_progress.into()),
        ]))
        .await
        .unwrap();
    assert_eq!(prop(&restore, "rows").as_f64(), Some(3.0));
    let reports = Array::from(&prop(&rec, "reports"));
    let last = reports.get(reports.length() - 1);
    assert_eq!(prop(&last, "operation").as_string().as_deref(), Some("restore"));
    assert_eq!(prop(&last, "rows").as_f64(), Some(3.0));

    // An aborted signal stops the call and leaves no backup behind.
    let aborted = obj(&[("aborted", true.into())]);
    let (code, _) = expect_error(s.backup_js(obj(&[("into", "js://disk/q".into()), ("signal", aborted)])).await);
    assert_eq!(code, "CANCELLED");
    let signal = obj(&[("aborted", false.into())]);
    let abort_on_first = Function::new_with_args("p", "this.aborted = true;").bind0(&signal);
    let (code, _) = expect_error(
        s.backup_js(obj(&[("into", "js://disk/q".into()), ("signal", signal), ("onProgress", abort_on_first.into())]))
            .await,
    );
    assert_eq!(code, "CANCELLED");
    let left: Vec<String> =
        objects.keys().into_iter().filter_map(|k| k.ok()?.as_string()).filter(|k| k.starts_with("q/")).collect();
    assert!(left.is_empty(), "{left:?}");
    let backups = Array::from(&s.show_backups_js("js://disk/p".into()).await.unwrap());
    assert_eq!(backups.length(), 1);
    assert!(s.unmount("js://disk".into()).unwrap());
    let (code, _) = expect_error(s.show_backups_js("js://disk/p".into()).await);
    assert_eq!(code, "INVALID_ARGUMENT");
}

#[wasm_bindgen_test]
async fn rows_as_of_the_past() {
    let s = new_strata();
    bank(&s).await;
    let t = s.put_js("bank".into(), "accounts".into(), js_bytes("alice"), js_bytes("1")).await.unwrap();
    s.put_js("bank".into(), "accounts".into(), js_bytes("alice"), js_bytes("2")).await.unwrap();
    let then = s.get_js("bank".into(), "accounts".into(), js_bytes("alice"), t.clone().into()).await.unwrap();
    assert_eq!(then, Some(bytes("1")));
    let rows = s
        .scan_js("bank".into(), "accounts".into(), obj(&[("prefix", js_sys::Uint8Array::from(&b"b"[..]).into())]))
        .await
        .unwrap();
    assert_eq!(Array::from(&rows).length(), 1);
    let rows =
        s.scan_js("bank".into(), "accounts".into(), obj(&[("limit", 2.into()), ("asOf", t.into())])).await.unwrap();
    assert_eq!(Array::from(&rows).length(), 2);
    let (code, _) =
        expect_error(s.get_js("bank".into(), "accounts".into(), js_bytes("alice"), "yesterday".into()).await);
    assert_eq!(code, "INVALID_ARGUMENT");
}

#[wasm_bindgen_test]
async fn restore_from_a_missing_backup_is_not_found() {
    let s = new_strata();
    let (code, message) = expect_error(
        s.execute_js("RESTORE DATABASE bank FROM LATEST IN 'memory://nowhere'".into(), JsValue::UNDEFINED).await,
    );
    assert_eq!(code, "NOT_FOUND", "{message}");
}

#[wasm_bindgen_test]
async fn syntax_error_is_invalid_statement() {
    let s = new_strata();
    let (code, message) = expect_error(s.execute_js("BACKUP DATABASE".into(), JsValue::UNDEFINED).await);
    assert_eq!(code, "INVALID_STATEMENT", "{message}");
}

#[wasm_bindgen_test]
async fn row_calls_on_a_missing_table_are_not_found() {
    let s = new_strata();
    let (code, message) = expect_error(s.put_js("bank".into(), "accounts".into(), js_bytes("k"), js_bytes("v")).await);
    assert_eq!(code, "NOT_FOUND", "{message}");
    let (code, _) = expect_error(s.get_js("bank".into(), "accounts".into(), js_bytes("k"), JsValue::UNDEFINED).await);
    assert_eq!(code, "NOT_FOUND");
}

#[wasm_bindgen_test]
fn errors_carry_code_and_retryable() {
    let e = strata_wasm::to_js_error(&strata_core::Error::Storage {
        path: "memory://b/x".into(),
        message: "timeout".into(),
        status: strata_core::Status::Temporary,
    });
    assert_eq!(prop(&e, "code").as_string().as_deref(), Some("STORAGE"));
    assert_eq!(prop(&e, "retryable").as_bool(), Some(true));
    assert!(prop(&e, "message").as_string().unwrap().contains("memory://b/x"));
}

#[wasm_bindgen_test]
fn large_integers_become_bigints() {
    use strata_core::Value;
    assert_eq!(strata_wasm::value_to_js(&Value::Int(42)).as_f64(), Some(42.0));
    assert!(strata_wasm::value_to_js(&Value::Int(i64::MAX)).is_bigint());
    assert!(strata_wasm::value_to_js(&Value::Null).is_null());
}

#[wasm_bindgen_test]
fn timestamps_are_bigint_nanoseconds() {
    use strata_core::Timestamp;
    let ts = Timestamp::new(1_800_000_000_000_000_001, 7);
    let js = strata_wasm::ts_to_js(ts);
    assert!(js.is_bigint());
    assert_eq!(strata_wasm::ts_from_js(&js, "t").unwrap(), Timestamp::from_nanos(ts.wall));
    assert_eq!(strata_wasm::ts_from_js(&JsValue::from_f64(5.0), "t").unwrap(), Timestamp::from_nanos(5));
    assert!(strata_wasm::ts_from_js(&JsValue::from_f64(-1.0), "t").is_err());
    assert!(strata_wasm::ts_from_js(&JsValue::from_str("5"), "t").is_err());
}

/// Lets the JavaScript event loop run what is queued on it (a resolved promise's turn: no wall
/// clock involved).
async fn yield_to_event_loop() {
    wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(&JsValue::UNDEFINED)).await.unwrap();
}

#[wasm_bindgen_test]
async fn detached_backups_run_on_the_event_loop() {
    let s = new_strata();
    bank(&s).await;
    let (columns, rows) = table(&exec(&s, "BACKUP DATABASE bank INTO 'memory://jobs' WITH detached").await);
    assert_eq!(columns, ["job_id", "status"]);
    assert_eq!(rows, [["1", "running"]], "a Strata runs its jobs");

    let mut statuses = Vec::new();
    for _ in 0..100 {
        yield_to_event_loop().await;
        let (columns, rows) = table(&exec(&s, "SHOW JOBS").await);
        let status = columns.iter().position(|c| c == "status").expect("a status column");
        assert_eq!(rows.len(), 1, "{rows:?}");
        statuses.push(rows[0][status].clone());
        if matches!(statuses.last().map(String::as_str), Some("succeeded" | "failed" | "canceled")) {
            break;
        }
    }
    assert_eq!(statuses.last().map(String::as_str), Some("succeeded"), "{statuses:?}");

    exec(&s, "RESTORE DATABASE bank FROM LATEST IN 'memory://jobs' WITH new_db_name = 'copy'").await;
    let scan = |db: &'static str| s.scan_js(db.into(), "accounts".into(), JsValue::UNDEFINED);
    let (source, copy) = (Array::from(&scan("bank").await.unwrap()), Array::from(&scan("copy").await.unwrap()));
    assert_eq!(copy.length(), 3);
    for i in 0..source.length() {
        let (a, b) = (Array::from(&source.get(i)), Array::from(&copy.get(i)));
        for j in 0..2 {
            let (a, b) = (js_sys::Uint8Array::new(&a.get(j)).to_vec(), js_sys::Uint8Array::new(&b.get(j)).to_vec());
            assert_eq!(a, b, "row {i}");
        }
    }
}
