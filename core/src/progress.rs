//! The control of a running backup or restore: where its [`Progress`] goes (a callback the host
//! sets through [`crate::BackupOptions::with_progress`] / [`crate::RestoreRunOptions::with_progress`];
//! the CLI draws a progress bar with it, the wasm package calls `onProgress`), and the [`Cancel`]
//! signal that stops it at its next step ([`crate::Executor::with_run_control`] sets both).
//!
//! A backup reports after each data file and each finished work unit: `fraction` is the share
//! of its work done, each work unit weighed by the source's estimate of its bytes
//! ([`crate::KvSource::estimate_bytes`]) and counted by the bytes of its stored files (a source
//! without estimates: the share of units finished); `storage_bytes` and `files` count the data
//! files stored. A restore
//! reports after each ingested batch: `fraction` is the share of the chain's logical bytes
//! ingested (an estimate: older versions in earlier layers are read but not ingested), and
//! exactly 1 at the end; `storage_bytes` and `files` count what it read of the data files.
//!
//! A backup checks its [`Cancel`] before each page it reads from the store, a restore before each
//! batch it ingests and as each read of a data file arrives; a canceled run fails with
//! [`Error::Cancelled`] and cleans up as after any failure (a backup leaves no manifest, a restore
//! publishes nothing).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// Which operation a [`Progress`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressOperation {
    /// A backup.
    Backup,
    /// A restore.
    Restore,
}

/// How far a backup or restore has got.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Progress {
    /// Backup or restore.
    pub operation: ProgressOperation,
    /// Between 0 and 1.
    pub fraction: f64,
    /// Key and value bytes exported (backup) or ingested (restore) so far.
    pub bytes: u64,
    /// Rows (versions) exported or ingested so far.
    pub rows: u64,
    /// Bytes of the data files stored (backup) or read from storage (restore) so far.
    pub storage_bytes: u64,
    /// Data files stored (backup) or opened (restore) so far.
    pub files: u64,
}

#[cfg(not(target_arch = "wasm32"))]
type ProgressFn = dyn Fn(&Progress) + Send + Sync;
#[cfg(target_arch = "wasm32")]
type ProgressFn = dyn Fn(&Progress);

/// Where progress goes: nowhere by default, or a callback. Cloning shares the callback.
#[derive(Clone, Default)]
pub struct ProgressReporter(Option<Arc<ProgressFn>>);

impl ProgressReporter {
    /// Reports to `f`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new(f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        ProgressReporter(Some(Arc::new(f)))
    }
    /// Reports to `f`.
    #[cfg(target_arch = "wasm32")]
    pub fn new(f: impl Fn(&Progress) + 'static) -> Self {
        ProgressReporter(Some(Arc::new(f)))
    }

    /// Whether anyone listens.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Reports `p`.
    pub fn report(&self, p: &Progress) {
        if let Some(f) = &self.0 {
            f(p)
        }
    }
}

impl std::fmt::Debug for ProgressReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "ProgressReporter(callback)" } else { "ProgressReporter(none)" })
    }
}

#[cfg(not(target_arch = "wasm32"))]
type PollFn = dyn Fn() -> bool + Send + Sync;
#[cfg(target_arch = "wasm32")]
type PollFn = dyn Fn() -> bool;

/// A cancellation signal: [`Cancel::cancel`] it (or let the function of [`Cancel::from_fn`]
/// answer true, e.g. a JavaScript `AbortSignal`'s `aborted`) and the run holding it stops at its
/// next [`Cancel::check`]. Cloning shares the signal; the default one is never canceled unless
/// [`Cancel::cancel`] is called on it or a clone.
#[derive(Clone, Default)]
pub struct Cancel(Arc<CancelState>);

#[derive(Default)]
struct CancelState {
    canceled: AtomicBool,
    poll: Option<Box<PollFn>>,
}

impl Cancel {
    /// A signal canceled only by [`Cancel::cancel`].
    pub fn new() -> Self {
        Cancel::default()
    }

    /// A signal that is canceled once `f` answers true (asked at each check), or by [`Cancel::cancel`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn from_fn(f: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Cancel(Arc::new(CancelState { canceled: AtomicBool::new(false), poll: Some(Box::new(f)) }))
    }
    /// A signal that is canceled once `f` answers true (asked at each check), or by [`Cancel::cancel`].
    #[cfg(target_arch = "wasm32")]
    pub fn from_fn(f: impl Fn() -> bool + 'static) -> Self {
        Cancel(Arc::new(CancelState { canceled: AtomicBool::new(false), poll: Some(Box::new(f)) }))
    }

    /// Cancels every run holding this signal or a clone of it.
    pub fn cancel(&self) {
        self.0.canceled.store(true, Ordering::Relaxed);
    }

    /// Whether the signal is canceled (once it is, it stays so).
    pub fn is_canceled(&self) -> bool {
        if self.0.canceled.load(Ordering::Relaxed) {
            return true;
        }
        let polled = self.0.poll.as_ref().is_some_and(|f| f());
        if polled {
            self.cancel();
        }
        polled
    }

    /// Fails with [`Error::Cancelled`] (code `CANCELLED`) once the signal is canceled.
    pub fn check(&self) -> Result<()> {
        if self.is_canceled() {
            return Err(Error::Cancelled("the run was cancelled by its caller".into()));
        }
        Ok(())
    }
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel").field("canceled", &self.0.canceled.load(Ordering::Relaxed)).finish_non_exhaustive()
    }
}

/// Running totals of a restore, shared by its concurrent spans, and its cancellation.
pub(crate) struct RestoreCounter {
    reporter: ProgressReporter,
    cancel: Cancel,
    total_bytes: u64,
    rows: AtomicU64,
    bytes: AtomicU64,
    storage_bytes: AtomicU64,
    files: AtomicU64,
}

impl RestoreCounter {
    pub(crate) fn new(reporter: ProgressReporter, cancel: Cancel, total_bytes: u64) -> Self {
        RestoreCounter {
            reporter,
            cancel,
            total_bytes,
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            storage_bytes: AtomicU64::new(0),
            files: AtomicU64::new(0),
        }
    }

    /// Fails once the restore is canceled.
    pub(crate) fn check(&self) -> Result<()> {
        self.cancel.check()
    }

    /// Counts a data file opened.
    pub(crate) fn opened(&self) {
        self.files.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `bytes` read from a data file (reported with the next batch), then fails if the
    /// restore is canceled.
    pub(crate) fn fetched(&self, bytes: usize) -> Result<()> {
        self.storage_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.check()
    }

    /// Counts an ingested batch.
    pub(crate) fn add(&self, rows: u64, bytes: u64) {
        let rows = self.rows.fetch_add(rows, Ordering::Relaxed) + rows;
        let bytes = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let fraction = if self.total_bytes == 0 { 0.0 } else { (bytes as f64 / self.total_bytes as f64).min(0.99) };
        self.report(fraction, rows, bytes);
    }

    /// Reports completion.
    pub(crate) fn finish(&self) {
        self.report(1.0, self.rows.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed));
    }

    fn report(&self, fraction: f64, rows: u64, bytes: u64) {
        self.reporter.report(&Progress {
            operation: ProgressOperation::Restore,
            fraction,
            bytes,
            rows,
            storage_bytes: self.storage_bytes.load(Ordering::Relaxed),
            files: self.files.load(Ordering::Relaxed),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn cancel_is_shared_by_clones_and_polls_its_function() {
        let c = Cancel::new();
        let clone = c.clone();
        assert!(!clone.is_canceled() && clone.check().is_ok());
        c.cancel();
        let err = clone.check().unwrap_err();
        assert_eq!(err.code(), "CANCELLED", "{err}");

        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let polled = Cancel::from_fn(move || f.load(Ordering::Relaxed));
        assert!(!polled.is_canceled());
        flag.store(true, Ordering::Relaxed);
        assert!(polled.is_canceled());
        // Once canceled it stays so, whatever the function answers later.
        flag.store(false, Ordering::Relaxed);
        assert!(polled.check().is_err());
        assert!(Cancel::default().check().is_ok());
    }
}
