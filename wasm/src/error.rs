//! Errors across the boundary: strata errors become JS `Error`s with a stable `code`, and what a
//! JavaScript plugin throws becomes a strata error.

use js_sys::Reflect;
use strata_core::{Error, Status};
use wasm_bindgen::{JsCast, JsValue};

/// Turns a strata error into the JS `Error` every method rejects with: `name` is `"StrataError"`,
/// `message` the error's text, `code` its [`Error::code`] and `retryable` whether the same call
/// may succeed later ([`Status::Temporary`]).
pub fn to_js_error(err: &Error) -> JsValue {
    let e = js_sys::Error::new(&err.to_string());
    e.set_name("StrataError");
    // Setting an own property on a fresh, unfrozen Error cannot fail.
    let _ = Reflect::set(&e, &"code".into(), &err.code().into());
    let _ = Reflect::set(&e, &"retryable".into(), &(err.status() == Status::Temporary).into());
    e.into()
}

/// Which plugin threw, for the error it becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// A storage plugin: its errors become [`Error::Storage`].
    Storage,
    /// A KV plugin: its errors become [`Error::Kv`].
    Kv,
}

/// What a JavaScript plugin's rejection means, as a strata error about `path` (a storage path,
/// redacted; or the KV method called).
///
/// A thrown value's `code` decides: `"NOT_FOUND"` or Node's `"ENOENT"` (and a DOMException named
/// `"NotFoundError"`) is [`Error::NotFound`], `"ALREADY_EXISTS"` or `"EEXIST"` is
/// [`Error::AlreadyExists`], `"INVALID_TIME"` (a read below a plugin's GC threshold) is
/// [`Error::InvalidTime`], a `StrataError` thrown back keeps its code where one exists for it,
/// anything else is [`Error::Storage`] / [`Error::Kv`] with the value's message, temporary when it
/// has `retryable: true`.
pub fn from_js_error(value: &JsValue, kind: PluginKind, path: &str) -> Error {
    let code = string_prop(value, "code").or_else(|| string_prop(value, "name")).unwrap_or_default();
    let message = error_message(value);
    let what = match kind {
        PluginKind::Storage => "file",
        PluginKind::Kv => "kv object",
    };
    match code.as_str() {
        "NOT_FOUND" | "ENOENT" | "NotFoundError" => {
            return Error::NotFound { what: what.into(), name: path.to_string() };
        }
        "ALREADY_EXISTS" | "EEXIST" => return Error::AlreadyExists { what: what.into(), name: path.to_string() },
        "INVALID_ARGUMENT" => return Error::InvalidArgument { what: path.to_string(), message },
        "CORRUPT" => return Error::Corrupt { path: path.to_string(), message },
        "INVALID_TIME" => return Error::InvalidTime(format!("{path}: {message}")),
        "PRECONDITION" => return Error::Precondition(format!("{path}: {message}")),
        "CANCELLED" | "AbortError" => return Error::Cancelled(format!("{path}: {message}")),
        _ => {}
    }
    let retryable = Reflect::get(value, &"retryable".into()).ok().and_then(|v| v.as_bool()).unwrap_or(false);
    let status = if retryable { Status::Temporary } else { Status::Permanent };
    match kind {
        PluginKind::Storage => Error::Storage { path: path.to_string(), message, status },
        PluginKind::Kv => Error::Kv { message: format!("{path}: {message}"), status },
    }
}

/// The text of a thrown value: an `Error`'s message (with its code, if any), or the value as a string.
pub fn error_message(value: &JsValue) -> String {
    if let Some(e) = value.dyn_ref::<js_sys::Error>() {
        let message = String::from(e.message());
        return match string_prop(value, "code") {
            Some(code) if !message.contains(&code) => format!("{message} ({code})"),
            _ => message,
        };
    }
    if let Some(s) = value.as_string() {
        return s;
    }
    js_sys::JSON::stringify(value).ok().and_then(|s| s.as_string()).unwrap_or_else(|| format!("{value:?}"))
}

fn string_prop(value: &JsValue, name: &str) -> Option<String> {
    if !value.is_object() {
        return None;
    }
    Reflect::get(value, &name.into()).ok().and_then(|v| v.as_string())
}
