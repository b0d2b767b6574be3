//! Progress of a running backup or restore, reported to a callback the host sets through
//! [`crate::BackupOptions::with_progress`] / [`crate::RestoreRunOptions::with_progress`] (the CLI
//! draws a progress bar with it).
//!
//! A backup reports after each data file and each finished work unit: `fraction` is the share
//! of work units finished. A restore reports after each ingested batch: `fraction` is the share
//! of the chain's logical bytes ingested (an estimate: older versions in earlier layers are read
//! but not ingested), and exactly 1 at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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

/// Running totals of a restore, shared by its concurrent spans.
pub(crate) struct RestoreCounter {
    reporter: ProgressReporter,
    total_bytes: u64,
    rows: AtomicU64,
    bytes: AtomicU64,
}

impl RestoreCounter {
    pub(crate) fn new(reporter: ProgressReporter, total_bytes: u64) -> Self {
        RestoreCounter { reporter, total_bytes, rows: AtomicU64::new(0), bytes: AtomicU64::new(0) }
    }

    /// Counts an ingested batch.
    pub(crate) fn add(&self, rows: u64, bytes: u64) {
        let rows = self.rows.fetch_add(rows, Ordering::Relaxed) + rows;
        let bytes = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let fraction = if self.total_bytes == 0 { 0.0 } else { (bytes as f64 / self.total_bytes as f64).min(0.99) };
        self.reporter.report(&Progress { operation: ProgressOperation::Restore, fraction, bytes, rows });
    }

    /// Reports completion.
    pub(crate) fn finish(&self) {
        let (rows, bytes) = (self.rows.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed));
        self.reporter.report(&Progress { operation: ProgressOperation::Restore, fraction: 1.0, bytes, rows });
    }
}
