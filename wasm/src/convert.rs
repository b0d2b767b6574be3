//! Query results as plain JS objects: `{ columns: string[], rows: Value[][] }`.

use js_sys::{Array, BigInt, Number, Object, Reflect};
use strata_core::{QueryResult, Value};
use wasm_bindgen::JsValue;

/// One cell: `null`, a boolean, a number (a `bigint` beyond ±2^53, where a number would lose
/// digits) or a string.
pub fn value_to_js(value: &Value) -> JsValue {
    const SAFE: i64 = Number::MAX_SAFE_INTEGER as i64;
    match value {
        Value::Null => JsValue::NULL,
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::Int(i) if (-SAFE..=SAFE).contains(i) => JsValue::from_f64(*i as f64),
        Value::Int(i) => BigInt::from(*i).into(),
        Value::Text(s) => JsValue::from_str(s),
    }
}

/// A statement's result as the object `Strata.execute` resolves to (TypeScript `QueryResult`).
pub fn query_result_to_js(result: &QueryResult) -> JsValue {
    let columns: Array = result.columns.iter().map(|c| JsValue::from_str(c)).collect();
    let rows: Array = result.rows.iter().map(|row| row.iter().map(value_to_js).collect::<Array>()).collect();
    let obj = Object::new();
    // Setting an own property on a fresh plain object cannot fail.
    let _ = Reflect::set(&obj, &"columns".into(), &columns);
    let _ = Reflect::set(&obj, &"rows".into(), &rows);
    obj.into()
}
