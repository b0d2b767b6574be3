//! [`Mounts`]: which storage a backup URI names. `memory://` is built in; any other URI prefix is
//! mounted onto a storage (a JavaScript plugin, or any [`ExternalStorage`] from Rust).

use std::sync::{Arc, Mutex};

use strata_core::{redact_uri, subdir, Error, ExternalStorage, MemoryOpener, Result, StorageOpener};

/// Opens backup URIs: the longest mounted prefix that matches at a `/` boundary wins, and the
/// rest of the URI (query string left out, `%XX` escapes decoded) is a directory below the
/// mounted storage. `memory://name/…` URIs not mounted otherwise open shared in-memory stores.
///
/// ```
/// use std::sync::Arc;
/// use strata_core::{MemoryStorage, StorageOpener};
/// use strata_wasm::Mounts;
///
/// let mounts = Mounts::default();
/// mounts.mount("nodelocal://1", Arc::new(MemoryStorage::new("disk"))).unwrap();
/// let dir = mounts.open("nodelocal://1/backups/monday").unwrap();
/// assert_eq!(dir.describe(), "memory://disk/backups/monday");
/// ```
#[derive(Default)]
pub struct Mounts {
    memory: MemoryOpener,
    mounts: Mutex<Vec<(String, Arc<dyn ExternalStorage>)>>,
}

impl Mounts {
    /// Serves URIs starting with `prefix` (`scheme://authority[/path]`; a trailing `/` is
    /// ignored) from `storage`, replacing an earlier mount of the same prefix.
    pub fn mount(&self, prefix: &str, storage: Arc<dyn ExternalStorage>) -> Result<()> {
        let prefix = normalize_prefix(prefix)?;
        let mut mounts = self.lock();
        mounts.retain(|(p, _)| *p != prefix);
        mounts.push((prefix, storage));
        // Longest first, so the first match is the most specific.
        mounts.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        Ok(())
    }

    /// Removes the mount of `prefix`; returns whether there was one.
    pub fn unmount(&self, prefix: &str) -> bool {
        let Ok(prefix) = normalize_prefix(prefix) else { return false };
        let mut mounts = self.lock();
        let before = mounts.len();
        mounts.retain(|(p, _)| *p != prefix);
        mounts.len() != before
    }

    /// The mounted prefixes, most specific first.
    pub fn prefixes(&self) -> Vec<String> {
        self.lock().iter().map(|(p, _)| p.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Arc<dyn ExternalStorage>)>> {
        self.mounts.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl StorageOpener for Mounts {
    fn open(&self, uri: &str) -> Result<Arc<dyn ExternalStorage>> {
        let bare = uri.split(['?', '#']).next().unwrap_or_default();
        let found = self.lock().iter().find_map(|(prefix, storage)| {
            let rest = bare.strip_prefix(prefix.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then(|| (storage.clone(), rest.to_string()))
        });
        if let Some((storage, rest)) = found {
            let dir = strata_core::percent_decode("path", rest.trim_matches('/'))
                .map_err(|_| invalid(uri, "a %-escape in its path does not decode to UTF-8 text"))?;
            if dir.split('/').any(|s| s == ".." || s == ".") {
                return Err(invalid(uri, "its path may not hold '.' or '..' segments"));
            }
            return Ok(subdir(&storage, &dir));
        }
        if bare.starts_with("memory://") {
            return self.memory.open(uri);
        }
        let scheme = bare.split_once("://").map_or("", |(s, _)| s);
        Err(invalid(
            uri,
            &format!(
                "no storage is mounted for it; mount one first, e.g. strata.mount(\"{}://…\", fsStorage(dir)) \
                 (ready adapters: fsStorage, httpStorage, opfsStorage, indexedDbStorage; memory:// is built in)",
                if scheme.is_empty() { "scheme" } else { scheme }
            ),
        ))
    }
}

/// An error about `uri`, shown without its query string (which may hold secrets whose names
/// [`redact_uri`] does not know, like a presigned URL's signature).
fn invalid(uri: &str, message: &str) -> Error {
    let bare = uri.split(['?', '#']).next().unwrap_or_default();
    Error::InvalidArgument { what: "storage URI".into(), message: format!("'{}': {message}", redact_uri(bare)) }
}

fn normalize_prefix(prefix: &str) -> Result<String> {
    let p = prefix.trim().trim_end_matches('/');
    let ok = p.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if !ok || p.contains(['?', '#']) {
        return Err(Error::InvalidArgument {
            what: "mount prefix".into(),
            message: format!(
                "'{}': expected scheme://authority[/path] without a query, e.g. 'nodelocal://1'",
                redact_uri(prefix)
            ),
        });
    }
    Ok(p.to_string())
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use bytes::Bytes;
    use futures::executor::block_on;
    use strata_core::{ExternalStorageExt, MemoryStorage};

    use super::*;

    #[test]
    fn longest_prefix_at_a_segment_boundary_wins() {
        let m = Mounts::default();
        let (a, b) = (MemoryStorage::new("a"), MemoryStorage::new("b"));
        m.mount("nodelocal://1/", Arc::new(a.clone())).unwrap();
        m.mount("nodelocal://1/special", Arc::new(b.clone())).unwrap();
        block_on(async {
            m.open("nodelocal://1/x/y?AWS_SECRET_ACCESS_KEY=s")
                .unwrap()
                .put("f", Bytes::from_static(b"1"))
                .await
                .unwrap();
            m.open("nodelocal://1/special/z").unwrap().put("f", Bytes::from_static(b"2")).await.unwrap();
            m.open("nodelocal://1/specialist").unwrap().put("f", Bytes::from_static(b"3")).await.unwrap();
            m.open("nodelocal://1/my%20dir").unwrap().put("f", Bytes::from_static(b"4")).await.unwrap();
            let paths = |s: &MemoryStorage| {
                let s = s.clone();
                async move { s.list("").await.unwrap().into_iter().map(|o| o.path).collect::<Vec<_>>() }
            };
            assert_eq!(paths(&a).await, ["my dir/f", "specialist/f", "x/y/f"]);
            assert_eq!(paths(&b).await, ["z/f"]);
        });
        assert_eq!(m.prefixes(), ["nodelocal://1/special", "nodelocal://1"]);
        assert!(m.unmount("nodelocal://1/special/"));
        assert!(!m.unmount("nodelocal://1/special"));
    }

    #[test]
    fn unmounted_uris_say_how_to_mount() {
        let m = Mounts::default();
        let err = m.open("s3://bucket/x?AWS_SECRET_ACCESS_KEY=hunter2").err().unwrap();
        let text = err.to_string();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
        assert!(text.contains("strata.mount(\"s3://…\""), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(m.open("memory://x/y").is_ok());
        assert!(m.mount("no-scheme", Arc::new(MemoryStorage::new("a"))).is_err());
        m.mount("file:///tmp", Arc::new(MemoryStorage::new("a"))).unwrap();
        assert!(m.open("file:///tmp/../etc").is_err());
    }

    #[test]
    fn a_path_that_does_not_decode_to_text_is_refused() {
        let m = Mounts::default();
        m.mount("nodelocal://1", Arc::new(MemoryStorage::new("a"))).unwrap();
        let err = m.open("nodelocal://1/a%ffb").err().unwrap();
        assert_eq!(err.code(), "INVALID_ARGUMENT");
        assert!(err.to_string().contains("does not decode to UTF-8"), "{err}");
        assert!(m.open("nodelocal://1/a%20b%zz").is_ok());
    }
}
