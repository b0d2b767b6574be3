//! Progress and cancellation of one call, as JavaScript sees them. The counting and the
//! cancellation are the core's ([`strata_core::Progress`], [`strata_core::Cancel`], set on the
//! call's executor with [`strata_core::Executor::with_run_control`]); a [`Run`] keeps the last
//! report, hands it to the call's `onProgress` as a [`Progress`], and reports `done` once the
//! statement has succeeded.

use std::sync::{Arc, Mutex};

use strata_core::{Cancel, ProgressOperation, ProgressReporter};

/// What kind of statement is running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Operation {
    /// A `BACKUP`.
    Backup,
    /// A `RESTORE`.
    Restore,
    /// Anything else.
    #[default]
    Statement,
}

impl Operation {
    /// `"backup"`, `"restore"` or `"statement"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Backup => "backup",
            Operation::Restore => "restore",
            Operation::Statement => "statement",
        }
    }
}

/// How far a statement has got, as JavaScript sees it (TypeScript `Progress`; the core reports
/// [`strata_core::Progress`], which this adds `done` to).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct JsProgress {
    /// What is running.
    pub operation: Operation,
    /// Between 0 and 1: the share of work units exported (backup) or of the chain's bytes
    /// ingested (restore), as the core estimates it; 1 once done.
    pub fraction: f64,
    /// Rows (versions) exported (backup) or ingested (restore).
    pub rows: u64,
    /// Key and value bytes of those rows.
    pub bytes: u64,
    /// Bytes of the data files written to backup storage (backup) or read from it (restore).
    pub storage_bytes: u64,
    /// Data files written (backup) or read (restore).
    pub files: u64,
    /// Set on the last report, once the statement has succeeded.
    pub done: bool,
}

#[cfg(not(target_arch = "wasm32"))]
type ProgressFn = dyn Fn(&JsProgress) + Send + Sync;
#[cfg(target_arch = "wasm32")]
type ProgressFn = dyn Fn(&JsProgress);

/// One call's progress so far, the callback it goes to, and the signal that cancels it.
pub struct Run {
    last: Mutex<JsProgress>,
    on_progress: Option<Box<ProgressFn>>,
    cancel: Cancel,
}

impl Run {
    /// A run of `operation` with no callback and no cancellation.
    pub fn new(operation: Operation) -> Run {
        let last = JsProgress { operation, ..JsProgress::default() };
        Run { last: Mutex::new(last), on_progress: None, cancel: Cancel::new() }
    }

    /// Reports every change to `f`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn with_callback(mut self, f: impl Fn(&JsProgress) + Send + Sync + 'static) -> Run {
        self.on_progress = Some(Box::new(f));
        self
    }

    /// Reports every change to `f`.
    #[cfg(target_arch = "wasm32")]
    pub fn with_callback(mut self, f: impl Fn(&JsProgress) + 'static) -> Run {
        self.on_progress = Some(Box::new(f));
        self
    }

    /// Cancels the run with `cancel` (e.g. [`Cancel::from_fn`] over an `AbortSignal`).
    pub fn with_cancel(mut self, cancel: Cancel) -> Run {
        self.cancel = cancel;
        self
    }

    /// The reporter and the signal to run the call's executor with
    /// ([`strata_core::Executor::with_run_control`]).
    pub fn control(self: &Arc<Self>) -> (ProgressReporter, Cancel) {
        let run = self.clone();
        (ProgressReporter::new(move |p| run.core_progress(p)), self.cancel.clone())
    }

    /// The progress so far.
    pub fn progress(&self) -> JsProgress {
        self.lock().clone()
    }

    /// Reports the end of a successful statement.
    pub fn finish(&self) {
        self.update(|p| {
            p.done = true;
            p.fraction = 1.0;
        });
    }

    /// Takes in a progress report of the core.
    fn core_progress(&self, core: &strata_core::Progress) {
        self.update(|p| {
            p.operation = match core.operation {
                ProgressOperation::Backup => Operation::Backup,
                ProgressOperation::Restore => Operation::Restore,
            };
            p.fraction = core.fraction.clamp(0.0, 1.0);
            (p.rows, p.bytes) = (core.rows, core.bytes);
            (p.storage_bytes, p.files) = (core.storage_bytes, core.files);
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JsProgress> {
        self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut JsProgress)) {
        let snapshot = {
            let mut last = self.lock();
            f(&mut last);
            last.clone()
        };
        // Called without the lock: the callback may ask for progress() itself.
        if let Some(cb) = &self.on_progress {
            cb(&snapshot);
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use futures::executor::block_on;
    use strata_core::{StorageOpener, Value};

    use super::*;
    use crate::Strata;

    #[test]
    fn backup_and_restore_are_counted_and_cancellable() {
        let s = Strata::in_memory();
        block_on(async {
            s.execute("CREATE DATABASE bank").await.unwrap();
            s.execute("CREATE TABLE bank.accounts").await.unwrap();
            let rows = (0..100u32).map(|i| (i.to_be_bytes().to_vec(), vec![7u8; 50])).collect();
            s.put_many("bank", "accounts", rows).await.unwrap();

            let run = |op: Operation, sql: &'static str, cancel: bool| {
                let s = &s;
                async move {
                    let reports = Arc::new(Mutex::new(Vec::<JsProgress>::new()));
                    let seen = reports.clone();
                    let run = Run::new(op)
                        .with_callback(move |p| seen.lock().unwrap().push(p.clone()))
                        .with_cancel(Cancel::from_fn(move || cancel));
                    let run = Arc::new(run);
                    let stmt = strata_core::sql::parse(sql).unwrap();
                    let result = s.execute_statement(&stmt, Some(run.clone())).await;
                    let reports = reports.lock().unwrap().clone();
                    (result, run.progress(), reports)
                }
            };
            let (result, p, reports) = run(Operation::Backup, "BACKUP DATABASE bank INTO 'memory://b'", false).await;
            let result = result.unwrap();
            assert!(p.done && p.fraction == 1.0, "{p:?}");
            assert_eq!((p.rows, p.bytes), (100, 100 * 59), "{p:?}");
            // The data files, as the backup's result counts them.
            let (files, stored) = (result.get(0, "files"), result.get(0, "stored_bytes"));
            assert_eq!((files, stored), (Some(&Value::Int(p.files as i64)), Some(&Value::Int(p.storage_bytes as i64))));
            assert!(p.files >= 1 && p.storage_bytes > 0, "{p:?}");
            assert!(reports.len() >= 3, "{reports:?}");
            assert!(
                reports.windows(2).all(|w| w[0].fraction <= w[1].fraction && w[0].rows <= w[1].rows),
                "{reports:?}"
            );
            let restore = "RESTORE DATABASE bank FROM LATEST IN 'memory://b' WITH new_db_name = 'copy'";
            let (result, r, _) = run(Operation::Restore, restore, false).await;
            result.unwrap();
            assert_eq!((r.rows, r.bytes), (100, 100 * 59), "{r:?}");
            assert_eq!((r.files, r.storage_bytes), (p.files, p.storage_bytes), "{r:?}");
            assert!(r.done && r.operation == Operation::Restore, "{r:?}");

            let (result, p, _) = run(Operation::Backup, "BACKUP DATABASE bank INTO 'memory://c'", true).await;
            let err = result.unwrap_err();
            assert_eq!(err.code(), "CANCELLED", "{err}");
            assert!(!p.done);
            assert!(s.mounts().open("memory://c").unwrap().list("").await.unwrap().is_empty());
            let restore = "RESTORE DATABASE bank FROM LATEST IN 'memory://b' WITH new_db_name = 'other'";
            let (result, _, _) = run(Operation::Restore, restore, true).await;
            assert_eq!(result.unwrap_err().code(), "CANCELLED");
            let dbs = s.execute("SHOW DATABASES").await.unwrap();
            assert_eq!(dbs.rows.len(), 2, "a canceled restore publishes nothing: {dbs:?}");
        });
    }
}
