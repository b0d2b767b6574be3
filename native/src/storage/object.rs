//! [`ObjectStorage`]: strata's [`ExternalStorage`] over any [`object_store::ObjectStore`].

use std::error::Error as _;
use std::fmt;
use std::io;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, PutMode, PutOptions, PutPayload};
use strata_core::{
    is_secret_param, redact_uri, shows_query_value, Durability, Error, ExternalStorage, GetResult, ListResult,
    ObjectMeta, Result, Status,
};

/// An [`ExternalStorage`] over an [`ObjectStore`], rooted at a directory of it.
///
/// It keeps every point of the trait's contract, whatever the store does natively:
/// - `put_opts` is atomic because `ObjectStore::put_opts` is ("no clients should be able to
///   observe a partially written object"); strata's `PutMode::Create` is object_store's, and a
///   store's `AlreadyExists` or `Precondition` answer becomes [`Error::AlreadyExists`]. A
///   volatile put goes to the store set by [`ObjectStorage::with_volatile_store`], if any.
/// - `get_opts` of a missing object (or of a "directory") is [`Error::NotFound`] naming the full
///   location, e.g. `nodelocal://1/backups/data/1.sst`; a head request is object_store's.
/// - Ranges are checked here: object stores clamp a range that ends past the object, strata
///   calls it an [`Error::InvalidArgument`]; empty ranges are valid.
/// - `list` and `list_with_delimiter` take a *string* prefix: object stores list by path
///   segment, so they list the deepest directory containing the prefix and keep the paths that
///   start with it, sorted.
/// - `delete` of a missing object, or of a path that is a directory, succeeds.
///
/// Errors name the location with secrets redacted, say whether retrying can help
/// ([`Status::Temporary`] for timeouts, refused or reset connections and the like), and never
/// contain a secret of the URI: any secret value that appears in a store's message is replaced
/// by `redacted`.
///
/// Paths must be relative, `/`-separated, without empty, `.` or `..` segments or control
/// characters; anything else is an [`Error::InvalidArgument`].
///
/// ```
/// use std::sync::Arc;
/// use strata_core::{ExternalStorage, ExternalStorageExt};
/// use strata_native::ObjectStorage;
///
/// # futures::executor::block_on(async {
/// let store = Arc::new(object_store::memory::InMemory::new());
/// let storage = ObjectStorage::new(store, "memory://docs/backups").with_root("backups").unwrap();
/// storage.put("LATEST", "2026/11/23-101500.00".into()).await.unwrap();
/// assert_eq!(storage.list("").await.unwrap()[0].path, "LATEST");
/// let err = storage.get("BACKUP_MANIFEST").await.unwrap_err();
/// assert_eq!(err.to_string(), "file not found: memory://docs/backups/BACKUP_MANIFEST");
/// # });
/// ```
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    /// `""` or the directory of the store this storage is rooted at, ending with `/`.
    root: String,
    /// The URI with secrets redacted.
    uri: String,
    /// The redacted URI without its query and trailing `/`: object locations are `{base}/{path}`.
    base: String,
    /// Secret values of the URI, raw and percent-decoded, scrubbed from every message.
    secrets: Vec<String>,
    /// The same store without syncing writes to disk, for [`Durability::Volatile`] puts.
    volatile: Option<Arc<dyn ObjectStore>>,
    /// For a `LocalFileSystem`: the directory on disk the store is (see
    /// [`ObjectStorage::with_local_dir`]).
    local: Option<std::path::PathBuf>,
}

impl fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStorage").field("uri", &self.uri).field("root", &self.root).finish_non_exhaustive()
    }
}

impl ObjectStorage {
    /// A storage over the whole of `store`, described by `uri`.
    ///
    /// `uri` is what [`ExternalStorage::describe`] shows and what error messages name, after
    /// [`redact_uri`]; it should point at the same place as the storage's root (see
    /// [`ObjectStorage::with_root`]). Secret values in it are remembered only to scrub them from
    /// the store's error messages.
    ///
    /// Call [`install_tls_provider`](crate::install_tls_provider) before building an HTTPS
    /// `object_store` client yourself (the [`NativeOpener`](crate::NativeOpener) does it for the
    /// clients it builds).
    pub fn new(store: Arc<dyn ObjectStore>, uri: &str) -> ObjectStorage {
        let redacted = redact_uri(uri);
        let without_query = redacted.split('?').next().unwrap_or_default();
        let base = match without_query.strip_suffix('/') {
            Some(stripped) if !without_query.ends_with("://") => stripped.to_string(),
            _ => without_query.to_string(),
        };
        ObjectStorage {
            store,
            root: String::new(),
            uri: redacted,
            base,
            secrets: secrets_of(uri),
            volatile: None,
            local: None,
        }
    }

    /// Sets a view of the same objects that does not sync writes to stable storage (a
    /// `LocalFileSystem` without fsync), used by [`Durability::Volatile`] puts.
    pub fn with_volatile_store(mut self, store: Arc<dyn ObjectStore>) -> ObjectStorage {
        self.volatile = Some(store);
        self
    }

    /// Marks the store as a `LocalFileSystem` over directory `dir`. A put that `LocalFileSystem`
    /// was making when its process was killed leaves its staging file (`name#1`) on disk, and
    /// object_store's own listing hides such files; this storage lists them (and deletes them)
    /// like objects, so a later run's cleanup of a prefix removes them too.
    pub fn with_local_dir(mut self, dir: std::path::PathBuf) -> ObjectStorage {
        self.local = Some(dir);
        self
    }

    /// The staging files of killed puts (`…#N`) below the string prefix `full` (the store's
    /// path), as this storage names them.
    fn killed_uploads(&self, full: &str) -> Vec<ObjectMeta> {
        let Some(local) = &self.local else { return Vec::new() };
        let dir = match full.rfind('/') {
            Some(i) => local.join(&full[..i]),
            None => local.clone(),
        };
        let mut out = Vec::new();
        let mut pending = vec![dir];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    pending.push(path);
                    continue;
                }
                let Some(relative) = path.strip_prefix(local).ok().and_then(|p| p.to_str()) else { continue };
                let relative = relative.replace(std::path::MAIN_SEPARATOR, "/");
                if is_staging_name(&relative) {
                    if let Some(own) = self.relative(&relative, full) {
                        out.push(ObjectMeta { path: own.to_string(), size: meta.len() });
                    }
                }
            }
        }
        out
    }

    /// The same storage rooted at directory `root` of the store (`""` for the store's root);
    /// [`Error::InvalidArgument`] if `root` is not a valid relative path.
    pub fn with_root(mut self, root: &str) -> Result<ObjectStorage> {
        let root = root.trim_matches('/');
        if root.is_empty() {
            self.root = String::new();
        } else {
            check_path(root, "storage root")?;
            self.root = format!("{root}/");
        }
        Ok(self)
    }

    /// The underlying object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The directory of the store this storage is rooted at (`""` or ending with `/`).
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The location of `path` for messages: `{uri without query}/{path}`, secrets redacted.
    pub(crate) fn location(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// The store's path of the object at `path`.
    pub(crate) fn object_path(&self, path: &str) -> Result<Path> {
        check_path(path, "object path")?;
        Path::parse(format!("{}{path}", self.root))
            .map_err(|e| Error::InvalidArgument { what: "object path".into(), message: self.scrub(e.to_string()) })
    }

    /// Replaces every secret of the URI in `message` with `redacted`.
    pub(crate) fn scrub(&self, mut message: String) -> String {
        for secret in &self.secrets {
            if message.contains(secret.as_str()) {
                message = message.replace(secret.as_str(), strata_core::REDACTED);
            }
        }
        message
    }

    /// Translates an object_store error about `path` during `op`.
    fn error(&self, op: &str, path: &str, err: object_store::Error) -> Error {
        let location = self.location(path);
        match err {
            object_store::Error::NotFound { .. } => Error::NotFound { what: "file".into(), name: location },
            object_store::Error::AlreadyExists { .. } => Error::AlreadyExists { what: "file".into(), name: location },
            object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. } => {
                Error::NotSupported { feature: format!("{op} on {}", self.base) }
            }
            e @ (object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }) => {
                let message = self.scrub(format!("{op} failed: permission denied (check the URI's credentials): {e}"));
                Error::Storage { path: location, message, status: Status::Permanent }
            }
            other => {
                let status = status_of(&other);
                Error::Storage { path: location, message: self.scrub(format!("{op} failed: {other}")), status }
            }
        }
    }

    fn out_of_range(&self, path: &str, range: &Range<u64>, size: u64) -> Error {
        Error::InvalidArgument {
            what: "range".into(),
            message: format!("{}..{} is outside {} ({size} bytes)", range.start, range.end, self.location(path)),
        }
    }

    /// The size of the object at `location` (`path` for messages), as part of `op`.
    async fn head(&self, op: &str, path: &str, location: &Path) -> Result<u64> {
        let result = self.store.get_opts(location, GetOptions::new().with_head(true)).await;
        Ok(result.map_err(|e| self.error(op, path, e))?.meta.size)
    }

    /// Reads bytes `range` of the object at `location` (`path` for messages).
    async fn get_range(&self, path: &str, location: &Path, range: Range<u64>) -> Result<GetResult> {
        if range.start > range.end {
            let size = self.head("get_range", path, location).await?;
            return Err(self.out_of_range(path, &range, size));
        }
        if range.start == range.end {
            // Object stores reject empty ranges; strata allows them inside the object.
            let size = self.head("get_range", path, location).await?;
            return if range.end > size {
                Err(self.out_of_range(path, &range, size))
            } else {
                Ok(GetResult::new(Bytes::new(), Some(size)))
            };
        }
        let options = GetOptions::new().with_range(Some(range.clone()));
        match self.store.get_opts(location, options).await {
            Ok(result) if result.range != range => Err(self.out_of_range(path, &range, result.meta.size)),
            Ok(result) => {
                let size = result.meta.size;
                let bytes = result.bytes().await.map_err(|e| self.error("get_range", path, e))?;
                Ok(GetResult::new(bytes, Some(size)))
            }
            Err(e @ object_store::Error::NotFound { .. }) => Err(self.error("get_range", path, e)),
            // A range starting past the end fails in a store-specific way: ask for the size.
            Err(e) => match self.head("get_range", path, location).await {
                Ok(size) if range.end > size => Err(self.out_of_range(path, &range, size)),
                _ => Err(self.error("get_range", path, e)),
            },
        }
    }

    /// The deepest directory of the store holding the string prefix `full` (root included).
    fn list_dir(&self, full: &str) -> Result<Option<Path>> {
        match full.rfind('/') {
            Some(i) => Ok(Some(Path::parse(&full[..i]).map_err(|e| Error::InvalidArgument {
                what: "list prefix".into(),
                message: self.scrub(e.to_string()),
            })?)),
            None => Ok(None),
        }
    }

    /// A path of the store as this storage names it, if it is under the root and `full`.
    fn relative<'a>(&self, raw: &'a str, full: &str) -> Option<&'a str> {
        raw.strip_prefix(&self.root).filter(|_| raw.starts_with(full))
    }
}

#[async_trait]
impl ExternalStorage for ObjectStorage {
    fn describe(&self) -> String {
        self.uri.clone()
    }

    async fn put_opts(&self, path: &str, data: Bytes, options: strata_core::PutOptions) -> Result<()> {
        let location = self.object_path(path)?;
        let store = match (options.durability, &self.volatile) {
            (Durability::Volatile, Some(volatile)) => volatile,
            _ => &self.store,
        };
        let payload = PutPayload::from(data);
        match options.mode {
            strata_core::PutMode::Create => match store.put_opts(&location, payload, PutMode::Create.into()).await {
                Ok(_) => Ok(()),
                // Some stores answer a lost conditional create with a failed precondition.
                Err(object_store::Error::Precondition { .. }) => {
                    Err(Error::AlreadyExists { what: "file".into(), name: self.location(path) })
                }
                Err(e) => Err(self.error("put_if_absent", path, e)),
            },
            _ => {
                let result = store.put_opts(&location, payload, PutOptions::default()).await;
                result.map(drop).map_err(|e| self.error("put", path, e))
            }
        }
    }

    async fn get_opts(&self, path: &str, options: strata_core::GetOptions) -> Result<GetResult> {
        let location = self.object_path(path)?;
        if options.head {
            return Ok(GetResult::head(self.head("size", path, &location).await?));
        }
        if let Some(range) = options.range {
            return self.get_range(path, &location, range).await;
        }
        let result = self.store.get_opts(&location, GetOptions::new()).await.map_err(|e| self.error("get", path, e))?;
        let size = result.meta.size;
        let bytes = result.bytes().await.map_err(|e| self.error("get", path, e))?;
        Ok(GetResult::new(bytes, Some(size)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        check_prefix(prefix)?;
        let full = format!("{}{prefix}", self.root);
        // object_store lists whole path segments: list the deepest directory holding the prefix.
        let dir = self.list_dir(&full)?;
        let mut out = Vec::new();
        let mut stream = self.store.list(dir.as_ref());
        while let Some(meta) = stream.try_next().await.map_err(|e| self.error("list", prefix, e))? {
            if let Some(relative) = self.relative(meta.location.as_ref(), &full) {
                out.push(ObjectMeta { path: relative.to_string(), size: meta.size });
            }
        }
        out.extend(self.killed_uploads(&full));
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    async fn list_with_delimiter(&self, prefix: &str) -> Result<ListResult> {
        check_prefix(prefix)?;
        let full = format!("{}{prefix}", self.root);
        // Objects and directories directly in the deepest directory holding the prefix: those
        // that start with it are the ones directly under the string prefix.
        let dir = self.list_dir(&full)?;
        let listed = match self.store.list_with_delimiter(dir.as_ref()).await {
            Ok(listed) => listed,
            Err(object_store::Error::NotFound { .. }) => return Ok(ListResult::default()),
            Err(e) => return Err(self.error("list_with_delimiter", prefix, e)),
        };
        let objects = listed
            .objects
            .iter()
            .filter_map(|meta| {
                let relative = self.relative(meta.location.as_ref(), &full)?;
                Some(ObjectMeta { path: relative.to_string(), size: meta.size })
            })
            .collect();
        let prefixes = listed
            .common_prefixes
            .iter()
            .filter_map(|p| {
                let with_slash = format!("{}/", p.as_ref());
                self.relative(&with_slash, &full).map(str::to_string)
            })
            .collect();
        let mut result = ListResult::new(objects, prefixes);
        result.objects.sort_by(|a, b| a.path.cmp(&b.path));
        result.common_prefixes.sort();
        Ok(result)
    }

    async fn delete(&self, path: &str) -> Result<()> {
        if let (Some(local), true) = (&self.local, is_staging_name(path)) {
            check_path(path, "object path")?;
            return match std::fs::remove_file(local.join(format!("{}{path}", self.root))) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Storage {
                    path: self.location(path),
                    message: self.scrub(format!("delete failed: {e}")),
                    status: Status::Temporary,
                }),
                _ => Ok(()),
            };
        }
        let location = self.object_path(path)?;
        let one = futures::stream::once(futures::future::ready(Ok(location.clone()))).boxed();
        let result = self.store.delete_stream(one).try_collect::<Vec<_>>().await;
        match result {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            // Deleting a path that is not an object (a local directory) is deleting nothing.
            Err(e) => match self.head("delete", path, &location).await {
                Err(Error::NotFound { .. }) => Ok(()),
                _ => Err(self.error("delete", path, e)),
            },
        }
    }
}

/// Whether retrying an operation that failed with `err` can help: when its cause is a passing
/// condition. By the time an error reaches strata, object_store has already retried it as its
/// `RetryConfig` allows; [`Status::Temporary`] says a later attempt may still succeed.
///
/// Temporary: IO errors such as timeouts, refused or reset connections; HTTP `5xx`, `408`,
/// `429`; connection, request and timeout failures of the HTTP client. Everything else
/// (`4xx`, permission, malformed responses) is permanent.
fn status_of(err: &object_store::Error) -> Status {
    use object_store::client::HttpErrorKind;
    use object_store::Error as E;
    if !matches!(err, E::Generic { .. } | E::JoinError { .. }) {
        return Status::Permanent;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = err.source();
    while let Some(e) = cause {
        // object_store's RetryError is not public: its status is read from its message
        // ("Server returned non-2xx status code: 503 Service Unavailable: …").
        if let Some(code) = http_status_in(&e.to_string()) {
            return if code >= 500 || code == 408 || code == 429 { Status::Temporary } else { Status::Permanent };
        }
        if let Some(http) = e.downcast_ref::<object_store::client::HttpError>() {
            if matches!(
                http.kind(),
                HttpErrorKind::Connect | HttpErrorKind::Request | HttpErrorKind::Timeout | HttpErrorKind::Interrupted
            ) {
                return Status::Temporary;
            }
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            use io::ErrorKind as K;
            if matches!(
                io.kind(),
                K::TimedOut
                    | K::Interrupted
                    | K::WouldBlock
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::ConnectionRefused
                    | K::NotConnected
                    | K::BrokenPipe
                    | K::UnexpectedEof
                    | K::ResourceBusy
                    | K::NetworkDown
                    | K::NetworkUnreachable
                    | K::HostUnreachable
            ) {
                return Status::Temporary;
            }
        }
        cause = e.source();
    }
    Status::Permanent
}

/// The HTTP status an object_store request error reports, if any.
fn http_status_in(message: &str) -> Option<u16> {
    let (_, rest) = message.split_once("Server returned non-2xx status code: ")?;
    rest.get(..3)?.parse().ok()
}

/// Checks a relative object path: non-empty, no leading or trailing `/`, no empty, `.` or `..`
/// segments, no control characters.
/// Whether `path` names a `LocalFileSystem` staging file: its last segment ends in `#` and
/// digits.
fn is_staging_name(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    matches!(name.rsplit_once('#'), Some((_, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

pub(crate) fn check_path(path: &str, what: &str) -> Result<()> {
    let invalid = |message: String| Err(Error::InvalidArgument { what: what.into(), message });
    if path.is_empty() {
        return invalid("the path is empty".into());
    }
    if path.starts_with('/') || path.ends_with('/') {
        return invalid(format!("{path:?} must not start or end with '/'"));
    }
    if let Some(c) = path.chars().find(|c| c.is_control()) {
        return invalid(format!("{path:?} contains the control character {c:?}"));
    }
    for segment in path.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return invalid(format!("{path:?} has an empty, '.' or '..' segment"));
        }
    }
    Ok(())
}

/// Checks a list prefix: like a path, but it may be empty and may end with `/`.
fn check_prefix(prefix: &str) -> Result<()> {
    match prefix.strip_suffix('/').unwrap_or(prefix) {
        "" if prefix.is_empty() => Ok(()),
        trimmed => check_path(trimmed, "list prefix"),
    }
}

// Parameters the schemes take whose values are no secret (endpoints, regions, names): kept in
// messages from the clients (`redact_uri` still hides them in the URI shown).
use strata_core::{percent_decode, percent_decode_query, PLAIN_PARAMS};

/// The values of `uri` that must never be shown: secret query parameters, those of parameters
/// no scheme takes (a misspelled secret), and a `user:password@` password, each raw and
/// percent-decoded.
pub(crate) fn secrets_of(uri: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    let (base, query) = uri.split_once('?').unwrap_or((uri, ""));
    for pair in query.split('&') {
        if let Some((key, value)) = pair.split_once('=') {
            // Secret parameters, and any the schemes do not know (a misspelled secret).
            let name = percent_decode("URI parameter name", key).unwrap_or_else(|_| key.to_string());
            let known_plain = PLAIN_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(&name));
            if (is_secret_param(&name) || !known_plain) && !value.is_empty() && !shows_query_value(key, value) {
                secrets.push(value.to_string());
            }
        }
    }
    if let Some((_, rest)) = base.split_once("://") {
        // Up to the last '@', not the first '/': an unencoded '/' in a password must not hide it.
        if let Some((userinfo, _)) = rest.rsplit_once('@') {
            if let Some((_, password)) = userinfo.split_once(':') {
                if !password.is_empty() {
                    secrets.push(password.to_string());
                }
            }
        }
    }
    let spellings: Vec<String> = secrets
        .iter()
        .flat_map(|s| [percent_decode("URI parameter", s), percent_decode_query("URI parameter", s)])
        .filter_map(|decoded| decoded.ok())
        .collect();
    secrets.extend(spellings);
    secrets.retain(|s| !s.is_empty());
    secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    secrets.dedup();
    secrets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_in_every_spelling() {
        let secrets = secrets_of("s3://u:pa%24s@b/p?AWS_SECRET_ACCESS_KEY=a%2Bb+c&AWS_REGION=x&token=t0k");
        for s in ["pa%24s", "pa$s", "a%2Bb+c", "a+b c", "a+b+c", "t0k"] {
            assert!(secrets.contains(&s.to_string()), "{s} missing from {secrets:?}");
        }
        assert!(!secrets.contains(&"x".to_string()));
    }

    #[test]
    fn paths_are_checked() {
        for ok in ["a", "a/b", "a b/c=d", "ü"] {
            check_path(ok, "p").unwrap();
        }
        for bad in ["", "/a", "a/", "a//b", "a/./b", "../a", "a\nb"] {
            assert!(matches!(check_path(bad, "p"), Err(Error::InvalidArgument { .. })), "{bad:?}");
        }
        for ok in ["", "a", "a/", "a/b", "a/b/"] {
            check_prefix(ok).unwrap();
        }
        for bad in ["/", "/a", "a//", "../"] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
    }
}
