//! [`JsStorage`]: an [`ExternalStorage`] over a JavaScript object with async methods (TypeScript
//! `StoragePlugin`), so a backup can live wherever JavaScript can put bytes.

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use js_sys::{Array, Function, Object, Promise, Reflect};
use strata_core::{
    redact_uri, slice_range, Error, ExternalStorage, GetOptions, GetResult, ListResult, ObjectMeta, PutMode,
    PutOptions, Result, Status,
};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::convert::{bytes_from_js, bytes_to_js, describe_value, type_name, u64_from_js};
use crate::error::{from_js_error, PluginKind};

/// The methods every storage plugin has; `getRange`, `size` and `putIfAbsent` are optional.
const REQUIRED: &[&str] = &["put", "get", "list", "delete"];

/// A storage plugin written in JavaScript, seen as an [`ExternalStorage`].
///
/// The plugin's methods (see `StoragePlugin` in the TypeScript types) may return Promises or
/// plain values. Missing objects are `null`/`undefined` results or errors with code
/// `"NOT_FOUND"`/`"ENOENT"`; see [`from_js_error`] for how other errors map. The optional
/// methods have defaults built from the required ones: `getRange` reads the whole object and
/// slices it, `size` lists the path, `putIfAbsent` checks `size` then `put`s (serialized within
/// this adapter, but not atomic against other writers: plugins whose backend has a conditional
/// write should provide it).
///
/// The Rust methods map onto the plugin's: `put_opts` onto `put` (overwrite) or `putIfAbsent`
/// (create; both durabilities alike), `get_opts` onto `get` (whole), `getRange` (range) or
/// `size` (head), `list_with_delimiter` onto `list`.
pub struct JsStorage {
    plugin: Object,
    name: String,
    /// Serializes the default `putIfAbsent` (a `size` then a `put`, with awaits between), so
    /// that racing calls through this adapter cannot both create the object.
    creating: futures::lock::Mutex<()>,
}

impl JsStorage {
    /// Wraps `plugin`, described in messages as `name` (a URI; its query string is left out,
    /// since a presigned URL's signature is a secret whatever its parameter is called). Fails
    /// with [`Error::InvalidArgument`] naming the first required method it lacks.
    pub fn new(plugin: JsValue, name: &str) -> Result<JsStorage> {
        let name = redact_uri(name.split(['?', '#']).next().unwrap_or_default());
        let plugin = check_plugin(plugin, REQUIRED, "storage plugin", &name)?;
        Ok(JsStorage { plugin, name, creating: futures::lock::Mutex::new(()) })
    }

    fn has(&self, method: &str) -> bool {
        has_method(&self.plugin, method)
    }

    fn where_(&self, path: &str) -> String {
        format!("{}/{path}", self.name.trim_end_matches('/'))
    }

    /// Calls `method(args…)` and awaits its result; errors name `path`.
    async fn call(&self, method: &str, args: &[JsValue], path: &str) -> Result<JsValue> {
        call_method(&self.plugin, method, args)
            .await
            .map_err(|e| from_js_error(&e, PluginKind::Storage, &self.where_(path)))
    }

    /// A `null`/`undefined` result: the object does not exist.
    fn missing(&self, path: &str) -> Error {
        Error::NotFound { what: "file".into(), name: self.where_(path) }
    }

    fn bad_result(&self, method: &str, path: &str, message: String) -> Error {
        Error::Storage {
            path: self.where_(path),
            message: format!("the storage plugin's {method}() {message}"),
            status: Status::Permanent,
        }
    }
}

/// The plugin's methods, each with its defaults.
impl JsStorage {
    async fn put_js(&self, path: &str, data: Bytes) -> Result<()> {
        self.call("put", &[path.into(), bytes_to_js(&data).into()], path).await.map(|_| ())
    }

    async fn put_if_absent_js(&self, path: &str, data: Bytes) -> Result<()> {
        if self.has("putIfAbsent") {
            let created = self.call("putIfAbsent", &[path.into(), bytes_to_js(&data).into()], path).await?;
            if created.as_bool() == Some(false) {
                return Err(Error::AlreadyExists { what: "file".into(), name: self.where_(path) });
            }
            return Ok(());
        }
        let _serialized = self.creating.lock().await;
        match self.size_js(path).await {
            Ok(_) => Err(Error::AlreadyExists { what: "file".into(), name: self.where_(path) }),
            Err(Error::NotFound { .. }) => self.put_js(path, data).await,
            Err(e) => Err(e),
        }
    }

    async fn get_js(&self, path: &str) -> Result<Bytes> {
        let v = self.call("get", &[path.into()], path).await?;
        if v.is_null() || v.is_undefined() {
            return Err(self.missing(path));
        }
        let bytes = bytes_from_js(&v, &self.where_(path)).map_err(|e| self.bad_result("get", path, e.to_string()))?;
        Ok(Bytes::from(bytes))
    }

    async fn get_range_js(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        if range.start > range.end {
            return Err(Error::InvalidArgument {
                what: "range".into(),
                message: format!("{}..{} of {} is reversed", range.start, range.end, self.where_(path)),
            });
        }
        if !self.has("getRange") {
            let data = self.get_js(path).await?;
            return slice_range(&data, range, &self.where_(path));
        }
        let args = [path.into(), (range.start as f64).into(), (range.end as f64).into()];
        let v = self.call("getRange", &args, path).await?;
        if v.is_null() || v.is_undefined() {
            return Err(self.missing(path));
        }
        let bytes =
            bytes_from_js(&v, &self.where_(path)).map_err(|e| self.bad_result("getRange", path, e.to_string()))?;
        let want = range.end - range.start;
        let outside = |len: u64| Error::InvalidArgument {
            what: "range".into(),
            message: format!("{}..{} is outside {} ({len} bytes)", range.start, range.end, self.where_(path)),
        };
        match (bytes.len() as u64).cmp(&want) {
            // An empty range is valid only inside the object (or at its end).
            std::cmp::Ordering::Equal if want == 0 => {
                let len = self.size_js(path).await?;
                if range.end > len {
                    return Err(outside(len));
                }
                Ok(Bytes::new())
            }
            std::cmp::Ordering::Equal => Ok(Bytes::from(bytes)),
            // The object ends before the range does.
            std::cmp::Ordering::Less => Err(outside(range.start + bytes.len() as u64)),
            std::cmp::Ordering::Greater => Err(self.bad_result(
                "getRange",
                path,
                format!("returned {} bytes for the {want} bytes {}..{}", bytes.len(), range.start, range.end),
            )),
        }
    }

    async fn size_js(&self, path: &str) -> Result<u64> {
        if self.has("size") {
            let v = self.call("size", &[path.into()], path).await?;
            if v.is_null() || v.is_undefined() {
                return Err(self.missing(path));
            }
            return u64_from_js(&v, "size").map_err(|e| self.bad_result("size", path, e.to_string()));
        }
        let found = self.list_js(path).await?.into_iter().find(|o| o.path == path);
        found.map(|o| o.size).ok_or_else(|| self.missing(path))
    }

    async fn list_js(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let v = self.call("list", &[prefix.into()], prefix).await?;
        if !Array::is_array(&v) {
            return Err(self.bad_result("list", prefix, format!("returned {}, not an array", type_name(&v))));
        }
        let mut out = Vec::new();
        for item in Array::from(&v).iter() {
            let (path, size) = if let Some(p) = item.as_string() {
                (p, None)
            } else {
                let path = Reflect::get(&item, &"path".into()).ok().and_then(|p| p.as_string());
                let size = Reflect::get(&item, &"size".into()).unwrap_or(JsValue::UNDEFINED);
                let Some(path) = path else {
                    return Err(self.bad_result(
                        "list",
                        prefix,
                        format!("returned an entry without a string path: {}", describe_value(&item)),
                    ));
                };
                (path, Some(size))
            };
            if !path.starts_with(prefix) {
                continue;
            }
            let size = match size {
                Some(s) if !s.is_undefined() => {
                    u64_from_js(&s, "size").map_err(|e| self.bad_result("list", prefix, e.to_string()))?
                }
                // Entries given as bare paths: ask for each size.
                _ => Box::pin(self.size_js(&path)).await?,
            };
            out.push(ObjectMeta { path, size });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out.dedup_by(|a, b| a.path == b.path);
        Ok(out)
    }

    async fn delete_js(&self, path: &str) -> Result<()> {
        match self.call("delete", &[path.into()], path).await {
            Err(Error::NotFound { .. }) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

#[async_trait(?Send)]
impl ExternalStorage for JsStorage {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn put_opts(&self, path: &str, data: Bytes, options: PutOptions) -> Result<()> {
        match options.mode {
            PutMode::Create => self.put_if_absent_js(path, data).await,
            _ => self.put_js(path, data).await,
        }
    }

    async fn get_opts(&self, path: &str, options: GetOptions) -> Result<GetResult> {
        if options.head {
            return Ok(GetResult::head(self.size_js(path).await?));
        }
        match options.range {
            // Without `size` from the plugin, a ranged read cannot tell the object's size.
            Some(range) => Ok(GetResult::new(self.get_range_js(path, range).await?, None)),
            None => {
                let bytes = self.get_js(path).await?;
                let size = bytes.len() as u64;
                Ok(GetResult::new(bytes, Some(size)))
            }
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.list_js(prefix).await
    }

    async fn list_with_delimiter(&self, prefix: &str) -> Result<ListResult> {
        Ok(ListResult::from_listing(prefix, self.list_js(prefix).await?))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.delete_js(path).await
    }
}

/// Checks that `plugin` is an object with each of `required` as a function.
pub(crate) fn check_plugin(plugin: JsValue, required: &[&str], what: &str, name: &str) -> Result<Object> {
    let Some(obj) = plugin.dyn_ref::<Object>() else {
        return Err(Error::InvalidArgument {
            what: what.into(),
            message: format!(
                "{name}: expected an object with methods {}, got {}",
                required.join(", "),
                type_name(&plugin)
            ),
        });
    };
    for m in required {
        if !has_method(obj, m) {
            return Err(Error::InvalidArgument {
                what: what.into(),
                message: format!("{name}: it has no method {m}() (it needs {})", required.join(", ")),
            });
        }
    }
    Ok(obj.clone())
}

/// Whether `obj.method` is a function (own or inherited: class instances work).
pub(crate) fn has_method(obj: &Object, method: &str) -> bool {
    Reflect::get(obj, &method.into()).map(|f| f.is_function()).unwrap_or(false)
}

/// Calls `obj.method(args…)` with `this` = `obj`, and awaits the result if it is a Promise (or
/// any thenable). A synchronous throw and a rejection are both `Err`.
pub(crate) async fn call_method(obj: &Object, method: &str, args: &[JsValue]) -> std::result::Result<JsValue, JsValue> {
    let f: Function = Reflect::get(obj, &method.into())?.dyn_into()?;
    let args: Array = args.iter().collect();
    let result = f.apply(obj, &args)?;
    if result.has_type::<Promise>() || is_thenable(&result) {
        JsFuture::from(Promise::resolve(&result)).await
    } else {
        Ok(result)
    }
}

fn is_thenable(v: &JsValue) -> bool {
    v.is_object() && Reflect::get(v, &"then".into()).map(|t| t.is_function()).unwrap_or(false)
}
