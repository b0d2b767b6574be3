//! [`ObjectStorage`]: strata's [`ExternalStorage`] over any [`object_store::ObjectStore`].

use std::error::Error as _;
use std::fmt;
use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, WriteMultipart};
use strata_core::{is_secret_param, redact_uri, Error, ExternalStorage, MultipartUpload, ObjectMeta, Result, Status};

/// The default size of each part of a streamed upload (8 MiB; S3 needs at least 5 MiB).
const DEFAULT_PART_SIZE: usize = 8 << 20;

/// The default number of parts a streamed upload sends at once.
const DEFAULT_PARTS_IN_FLIGHT: usize = 4;

/// An [`ExternalStorage`] over an [`ObjectStore`], rooted at a directory of it.
///
/// It keeps every point of the trait's contract, whatever the store does natively:
/// - `put` is atomic because `ObjectStore::put_opts` is ("no clients should be able to observe
///   a partially written object"); `put_if_absent` is `PutMode::Create`, and a store's
///   `AlreadyExists` or `Precondition` answer becomes [`Error::AlreadyExists`].
/// - `get`, `get_range` and `size` of a missing object (or of a "directory") are
///   [`Error::NotFound`] naming the full location, e.g. `nodelocal://1/backups/data/1.sst`.
/// - `get_range` checks bounds itself: object stores clamp a range that ends past the object,
///   strata calls it an [`Error::InvalidArgument`]; empty ranges are valid.
/// - `list` takes a *string* prefix: object stores list by path segment, so it lists the deepest
///   directory containing the prefix and keeps the paths that start with it, sorted.
/// - `delete` of a missing object, or of a path that is a directory, succeeds.
/// - `put_multipart` streams fixed-size parts through the store's multipart upload (for local
///   files: one temporary file, renamed into place on completion), with at most
///   `part size × (parts in flight + 1)` bytes buffered. It needs a tokio runtime.
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
/// use strata_core::ExternalStorage;
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
    part_size: usize,
    parts_in_flight: usize,
    /// The same store without syncing writes to disk, for [`ExternalStorage::put_volatile`].
    volatile: Option<Arc<dyn ObjectStore>>,
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
            part_size: DEFAULT_PART_SIZE,
            parts_in_flight: DEFAULT_PARTS_IN_FLIGHT,
            volatile: None,
        }
    }

    /// Sets a view of the same objects that does not sync writes to stable storage (a
    /// `LocalFileSystem` without fsync), used by [`ExternalStorage::put_volatile`].
    pub fn with_volatile_store(mut self, store: Arc<dyn ObjectStore>) -> ObjectStorage {
        self.volatile = Some(store);
        self
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

    /// Sets the size of each part of a streamed upload: 8 MiB by default, at least 1 byte
    /// (stores such as S3 reject parts under 5 MiB except the last).
    pub fn with_part_size(mut self, bytes: usize) -> ObjectStorage {
        self.part_size = bytes.max(1);
        self
    }

    /// Sets how many parts of one streamed upload may be in flight at once: 4 by default, at
    /// least 1.
    pub fn with_parts_in_flight(mut self, parts: usize) -> ObjectStorage {
        self.parts_in_flight = parts.max(1);
        self
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
}

#[async_trait]
impl ExternalStorage for ObjectStorage {
    fn describe(&self) -> String {
        self.uri.clone()
    }

    async fn put(&self, path: &str, data: Bytes) -> Result<()> {
        let location = self.object_path(path)?;
        let result = self.store.put_opts(&location, PutPayload::from(data), PutOptions::default()).await;
        result.map(drop).map_err(|e| self.error("put", path, e))
    }

    async fn put_volatile(&self, path: &str, data: Bytes) -> Result<()> {
        let Some(store) = &self.volatile else { return self.put(path, data).await };
        let location = self.object_path(path)?;
        let result = store.put_opts(&location, PutPayload::from(data), PutOptions::default()).await;
        result.map(drop).map_err(|e| self.error("put", path, e))
    }

    async fn put_if_absent(&self, path: &str, data: Bytes) -> Result<()> {
        let location = self.object_path(path)?;
        match self.store.put_opts(&location, PutPayload::from(data), PutMode::Create.into()).await {
            Ok(_) => Ok(()),
            // Some stores answer a lost conditional create with a failed precondition.
            Err(object_store::Error::Precondition { .. }) => {
                Err(Error::AlreadyExists { what: "file".into(), name: self.location(path) })
            }
            Err(e) => Err(self.error("put_if_absent", path, e)),
        }
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        let location = self.object_path(path)?;
        let result = self.store.get_opts(&location, GetOptions::new()).await.map_err(|e| self.error("get", path, e))?;
        result.bytes().await.map_err(|e| self.error("get", path, e))
    }

    async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        let location = self.object_path(path)?;
        if range.start > range.end {
            let size = self.head("get_range", path, &location).await?;
            return Err(self.out_of_range(path, &range, size));
        }
        if range.start == range.end {
            // Object stores reject empty ranges; strata allows them inside the object.
            let size = self.head("get_range", path, &location).await?;
            return if range.end > size { Err(self.out_of_range(path, &range, size)) } else { Ok(Bytes::new()) };
        }
        let options = GetOptions::new().with_range(Some(range.clone()));
        match self.store.get_opts(&location, options).await {
            Ok(result) if result.range != range => Err(self.out_of_range(path, &range, result.meta.size)),
            Ok(result) => result.bytes().await.map_err(|e| self.error("get_range", path, e)),
            Err(e @ object_store::Error::NotFound { .. }) => Err(self.error("get_range", path, e)),
            // A range starting past the end fails in a store-specific way: ask for the size.
            Err(e) => match self.head("get_range", path, &location).await {
                Ok(size) if range.end > size => Err(self.out_of_range(path, &range, size)),
                _ => Err(self.error("get_range", path, e)),
            },
        }
    }

    async fn size(&self, path: &str) -> Result<u64> {
        let location = self.object_path(path)?;
        self.head("size", path, &location).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        check_prefix(prefix)?;
        let full = format!("{}{prefix}", self.root);
        // object_store lists whole path segments: list the deepest directory holding the prefix.
        let dir = match full.rfind('/') {
            Some(i) => Some(Path::parse(&full[..i]).map_err(|e| Error::InvalidArgument {
                what: "list prefix".into(),
                message: self.scrub(e.to_string()),
            })?),
            None => None,
        };
        let mut out = Vec::new();
        let mut stream = self.store.list(dir.as_ref());
        while let Some(meta) = stream.try_next().await.map_err(|e| self.error("list", prefix, e))? {
            let raw: &str = meta.location.as_ref();
            if let Some(relative) = raw.strip_prefix(&self.root) {
                if raw.starts_with(&full) {
                    out.push(ObjectMeta { path: relative.to_string(), size: meta.size });
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    async fn delete(&self, path: &str) -> Result<()> {
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

    async fn put_multipart<'a>(&'a self, path: &str) -> Result<Box<dyn MultipartUpload + 'a>> {
        let location = self.object_path(path)?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Storage {
                path: self.location(path),
                message: "streamed uploads run their parts on tokio: call put_multipart inside a tokio runtime".into(),
                status: Status::Permanent,
            });
        }
        let upload = self
            .store
            .put_multipart_opts(&location, PutMultipartOptions::default())
            .await
            .map_err(|e| self.error("put_multipart", path, e))?;
        let writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        Ok(Box::new(ObjectUpload {
            storage: self,
            path: path.to_string(),
            writer: Mutex::new(Some(writer)),
            failed: false,
        }))
    }
}

/// A streamed upload through object_store's multipart API.
///
/// A part that fails poisons the upload: it is aborted at once and `complete` fails, so a
/// missing part can never be published. Dropping an upload without `complete` or `abort`
/// aborts it in the background.
struct ObjectUpload<'a> {
    storage: &'a ObjectStorage,
    path: String,
    /// `WriteMultipart` is `Send` but not `Sync`; the mutex is only ever used through
    /// `get_mut`, never locked across an await.
    writer: Mutex<Option<WriteMultipart>>,
    failed: bool,
}

impl ObjectUpload<'_> {
    fn take_writer(&mut self) -> Option<WriteMultipart> {
        self.writer.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
    }

    fn finished(&self, op: &str) -> Error {
        let message = if self.failed {
            format!("{op}: the upload already failed and was aborted; nothing was written")
        } else {
            format!("{op}: the upload was already completed or aborted")
        };
        Error::Storage { path: self.storage.location(&self.path), message, status: Status::Permanent }
    }

    async fn fail(&mut self, op: &str, err: object_store::Error) -> Error {
        self.failed = true;
        if let Some(writer) = self.take_writer() {
            // Best effort: the part's error is the one worth reporting.
            let _ = writer.abort().await;
        }
        self.storage.error(op, &self.path, err)
    }
}

#[async_trait]
impl MultipartUpload for ObjectUpload<'_> {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        let in_flight = self.storage.parts_in_flight;
        let Some(writer) = self.writer.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()).as_mut() else {
            return Err(self.finished("write"));
        };
        match writer.wait_for_capacity(in_flight).await {
            Ok(()) => {
                writer.put(data);
                Ok(())
            }
            Err(e) => Err(self.fail("write", e).await),
        }
    }

    async fn complete(mut self: Box<Self>) -> Result<()> {
        let Some(writer) = self.take_writer() else {
            return Err(self.finished("complete"));
        };
        // On failure `finish` aborts the upload itself.
        writer.finish().await.map(drop).map_err(|e| self.storage.error("complete", &self.path, e))
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        match self.take_writer() {
            Some(writer) => writer.abort().await.map_err(|e| self.storage.error("abort", &self.path, e)),
            None if self.failed => Ok(()),
            None => Err(self.finished("abort")),
        }
    }
}

impl Drop for ObjectUpload<'_> {
    fn drop(&mut self) {
        if let Some(writer) = self.take_writer() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = writer.abort().await;
                });
            }
            // Without a runtime, dropping the writer cancels its parts; a local upload also
            // removes its temporary file when dropped.
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

/// The values of `uri` that must never be shown: secret query parameters and a
/// `user:password@` password, each raw and percent-decoded.
pub(crate) fn secrets_of(uri: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    let (base, query) = uri.split_once('?').unwrap_or((uri, ""));
    for pair in query.split('&') {
        if let Some((key, value)) = pair.split_once('=') {
            if is_secret_param(&percent_decode(key)) && !value.is_empty() {
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
    let spellings: Vec<String> =
        secrets.iter().flat_map(|s| [percent_decode(s), percent_decode(&s.replace('+', " "))]).collect();
    secrets.extend(spellings);
    secrets.retain(|s| !s.is_empty());
    secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    secrets.dedup();
    secrets
}

/// Decodes `%XX` escapes; invalid escapes and invalid UTF-8 are kept as they are.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
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

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2fc"), "a b/c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%ff"), "%ff");
    }
}
