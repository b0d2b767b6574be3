//! The JavaScript API as JS sees it, run under Node by wasm-bindgen-test
//! (`scripts/test-all.sh`; wasm-bindgen-test's default environment is Node).
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Reflect};
use strata_wasm::Strata;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::wasm_bindgen_test;

fn prop(obj: &JsValue, name: &str) -> JsValue {
    Reflect::get(obj, &name.into()).unwrap_or_else(|_| panic!("no property {name} on {obj:?}"))
}

async fn exec(s: &Strata, sql: &str) -> JsValue {
    match s.execute_js(sql.into()).await {
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

#[wasm_bindgen_test]
async fn backup_then_restore_under_a_new_name() {
    let s = Strata::new();
    exec(&s, "CREATE DATABASE bank").await;
    exec(&s, "CREATE TABLE bank.accounts").await;
    for (k, v) in [("alice", "100"), ("bob", "50"), ("carol", "7")] {
        s.put_js("bank".into(), "accounts".into(), bytes(k), bytes(v)).await.unwrap();
    }

    let backup = exec(&s, "BACKUP DATABASE bank INTO 'memory://b'").await;
    let (columns, rows) = table(&backup);
    assert!(!columns.is_empty());
    assert_eq!(rows.len(), 1);

    exec(&s, "RESTORE DATABASE bank FROM LATEST IN 'memory://b' WITH new_db_name = 'bank2'").await;
    let (columns, rows) = table(&exec(&s, "SHOW TABLES FROM bank2").await);
    assert_eq!(columns, ["database_name", "table_name"]);
    assert_eq!(rows, [["bank2", "accounts"]]);

    for (k, v) in [("alice", "100"), ("bob", "50"), ("carol", "7")] {
        let got = s.get_js("bank2".into(), "accounts".into(), bytes(k)).await.unwrap();
        assert_eq!(got, Some(bytes(v)), "bank2.accounts[{k}]");
    }
    assert_eq!(s.get_js("bank2".into(), "accounts".into(), bytes("dave")).await.unwrap(), None);

    // The original is untouched by writes to the copy.
    s.put_js("bank2".into(), "accounts".into(), bytes("alice"), bytes("0")).await.unwrap();
    assert_eq!(s.get_js("bank".into(), "accounts".into(), bytes("alice")).await.unwrap(), Some(bytes("100")));
}

#[wasm_bindgen_test]
async fn restore_from_a_missing_backup_is_not_found() {
    let s = Strata::new();
    let (code, message) =
        expect_error(s.execute_js("RESTORE DATABASE bank FROM LATEST IN 'memory://nowhere'".into()).await);
    assert_eq!(code, "NOT_FOUND", "{message}");
}

#[wasm_bindgen_test]
async fn syntax_error_is_invalid_statement() {
    let s = Strata::new();
    let (code, message) = expect_error(s.execute_js("BACKUP DATABASE".into()).await);
    assert_eq!(code, "INVALID_STATEMENT", "{message}");
}

#[wasm_bindgen_test]
async fn row_calls_on_a_missing_table_are_not_found() {
    let s = Strata::new();
    let (code, message) = expect_error(s.put_js("bank".into(), "accounts".into(), bytes("k"), bytes("v")).await);
    assert_eq!(code, "NOT_FOUND", "{message}");
    let (code, _) = expect_error(s.get_js("bank".into(), "accounts".into(), bytes("k")).await);
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
