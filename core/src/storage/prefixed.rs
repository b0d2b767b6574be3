//! [`Prefixed`]: a view of a subdirectory of another storage.

use std::borrow::Cow;
use std::sync::Arc;

use super::{ExternalStorage, StorageWrapper};

/// A view of a subdirectory of another storage.
pub struct Prefixed {
    inner: Arc<dyn ExternalStorage>,
    /// `""` or the subdirectory, ending with `/`.
    prefix: String,
}

impl Prefixed {
    /// The subdirectory `dir` (no leading or trailing `/` needed) of `inner`.
    pub fn new(inner: Arc<dyn ExternalStorage>, dir: &str) -> Prefixed {
        let dir = dir.trim_matches('/');
        Prefixed { inner, prefix: if dir.is_empty() { String::new() } else { format!("{dir}/") } }
    }
}

/// The storage at subdirectory `dir` of `inner` (`inner` itself for an empty `dir`).
pub fn subdir(inner: &Arc<dyn ExternalStorage>, dir: &str) -> Arc<dyn ExternalStorage> {
    if dir.trim_matches('/').is_empty() {
        inner.clone()
    } else {
        Arc::new(Prefixed::new(inner.clone(), dir))
    }
}

impl StorageWrapper for Prefixed {
    fn inner(&self) -> &dyn ExternalStorage {
        self.inner.as_ref()
    }

    fn inner_path<'a>(&self, path: &'a str) -> Cow<'a, str> {
        Cow::Owned(format!("{}{path}", self.prefix))
    }

    fn outer_path(&self, mut inner_path: String) -> String {
        // The inner storage only lists paths under `inner_path(prefix)`, which start with ours.
        inner_path.drain(..self.prefix.len());
        inner_path
    }

    fn describe(&self) -> String {
        format!("{}/{}", self.inner.describe().trim_end_matches('/'), self.prefix.trim_end_matches('/'))
    }
}
