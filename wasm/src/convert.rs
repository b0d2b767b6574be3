//! Values across the boundary: query results as plain JS objects (`{ columns, rows }`), bytes as
//! `Uint8Array`, timestamps as `bigint` nanoseconds.

use js_sys::{Array, BigInt, Number, Object, Reflect, Uint8Array};
use strata_core::{Error, QueryResult, Result, Timestamp, Value};
use wasm_bindgen::{JsCast, JsValue};

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

/// A statement's result as the object `Strata.execute` resolves to (TypeScript `QueryResult`):
/// `{ columns, rows, notices }`, `notices` being warnings that did not fail it.
pub fn query_result_to_js(result: &QueryResult) -> JsValue {
    let columns: Array = result.columns.iter().map(|c| JsValue::from_str(c)).collect();
    let rows: Array = result.rows.iter().map(|row| row.iter().map(value_to_js).collect::<Array>()).collect();
    let obj = Object::new();
    set(&obj, "columns", &columns);
    set(&obj, "rows", &rows);
    let notices: Array = result.notices.iter().map(|n| JsValue::from_str(n)).collect();
    set(&obj, "notices", &notices);
    obj.into()
}

/// Each row of a result as an object keyed by its columns in camelCase (`backup_type` →
/// `backupType`): what the typed calls (`backup`, `restore`, `showBackup`) resolve to.
pub fn result_rows_to_objects(result: &QueryResult) -> Array {
    let keys: Vec<JsValue> = result.columns.iter().map(|c| JsValue::from_str(&camel_case(c))).collect();
    result
        .rows
        .iter()
        .map(|row| {
            let obj = Object::new();
            for (k, v) in keys.iter().zip(row) {
                let _ = Reflect::set(&obj, k, &value_to_js(v));
            }
            JsValue::from(obj)
        })
        .collect()
}

/// `snake_case` → `camelCase`.
pub fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Sets an own property of a plain object (which cannot fail for a fresh, unfrozen object).
pub fn set(obj: &Object, name: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(name), value);
}

/// Bytes copied into a new `Uint8Array` (JS keeps no view into wasm memory, which may move).
pub fn bytes_to_js(bytes: &[u8]) -> Uint8Array {
    Uint8Array::from(bytes)
}

/// Bytes from a `Uint8Array` (a Node `Buffer` is one) or an `ArrayBuffer`.
pub fn bytes_from_js(value: &JsValue, what: &str) -> Result<Vec<u8>> {
    if let Some(a) = value.dyn_ref::<Uint8Array>() {
        return Ok(a.to_vec());
    }
    if value.is_instance_of::<js_sys::ArrayBuffer>() {
        return Ok(Uint8Array::new(value).to_vec());
    }
    let hint = if value.is_string() { " (encode text with new TextEncoder().encode(…))" } else { "" };
    Err(Error::InvalidArgument {
        what: what.to_string(),
        message: format!("expected a Uint8Array or an ArrayBuffer, got {}{hint}", describe_value(value)),
    })
}

/// A string argument of a call (`what` names it in the error).
pub fn string_arg(value: &JsValue, what: &str) -> Result<String> {
    value.as_string().ok_or_else(|| Error::InvalidArgument {
        what: what.to_string(),
        message: format!("expected a string, got {}", describe_value(value)),
    })
}

/// An optional string argument: `undefined` and `null` are `None`.
pub fn optional_string_arg(value: &JsValue, what: &str) -> Result<Option<String>> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    string_arg(value, what).map(Some)
}

/// A timestamp as JS sees it: `bigint` nanoseconds since the Unix epoch.
///
/// Plugins keep one number per version, so the hybrid logical clock's logical part is left out:
/// a plugin's own timestamps have none (it adds `1n` when its clock has not moved), and the
/// bounds of a scan floor to whole nanoseconds, which selects exactly the same versions of such
/// a plugin (`(w, l) < ts` ⇔ `w < ts` and `ts <= (w, l)` ⇔ `ts <= w` for a `ts` without one).
pub fn ts_to_js(ts: Timestamp) -> JsValue {
    BigInt::from(ts.wall).into()
}

/// A timestamp from JS: a `bigint` (or a safe integer `number`) of nanoseconds since the epoch.
pub fn ts_from_js(value: &JsValue, what: &str) -> Result<Timestamp> {
    if value.is_bigint() {
        if let Ok(n) = u64::try_from(value.clone()) {
            return Ok(Timestamp::from_nanos(n));
        }
    } else if let Some(n) = value.as_f64() {
        if (0.0..=Number::MAX_SAFE_INTEGER).contains(&n) && n.fract() == 0.0 {
            return Ok(Timestamp::from_nanos(n as u64));
        }
    }
    Err(Error::InvalidArgument {
        what: what.to_string(),
        message: format!(
            "expected a timestamp: a bigint of nanoseconds since the Unix epoch in [0, 2^64), got {}",
            describe_value(value)
        ),
    })
}

/// A non-negative safe integer `number` (or `bigint`) as a `u64`.
pub fn u64_from_js(value: &JsValue, what: &str) -> Result<u64> {
    if let Some(n) = value.as_f64() {
        if (0.0..=Number::MAX_SAFE_INTEGER).contains(&n) && n.fract() == 0.0 {
            return Ok(n as u64);
        }
    } else if value.is_bigint() {
        if let Ok(n) = u64::try_from(value.clone()) {
            return Ok(n);
        }
    }
    Err(Error::InvalidArgument {
        what: what.to_string(),
        message: format!("expected a non-negative integer, got {}", describe_value(value)),
    })
}

/// `typeof`-like name of a value for messages (`null`, `array`, `Uint16Array`, `string`, …).
pub fn type_name(value: &JsValue) -> String {
    if value.is_null() {
        return "null".into();
    }
    if value.is_undefined() {
        return "undefined".into();
    }
    if Array::is_array(value) {
        return "array".into();
    }
    if let Some(obj) = value.dyn_ref::<Object>() {
        let name = obj.constructor().name();
        if name != "Object" && name.length() > 0 {
            return name.into();
        }
        return "object".into();
    }
    value.js_typeof().as_string().unwrap_or_else(|| "value".into())
}

/// A short description of a value for messages: its type, and for scalars the value.
pub fn describe_value(value: &JsValue) -> String {
    if let Some(s) = value.as_string() {
        let short: String = s.chars().take(40).collect();
        return format!("the string {short:?}");
    }
    if let Some(n) = value.as_f64() {
        return format!("the number {n}");
    }
    if value.is_bigint() {
        let text = value.unchecked_ref::<BigInt>().to_string(10).map(String::from).unwrap_or_default();
        return format!("the bigint {text}n");
    }
    type_name(value)
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn camel_case_of_columns() {
        assert_eq!(camel_case("backup_type"), "backupType");
        assert_eq!(camel_case("is_full_cluster"), "isFullCluster");
        assert_eq!(camel_case("rows"), "rows");
    }
}
