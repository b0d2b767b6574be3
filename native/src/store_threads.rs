//! The embedded stores' own threads (redb's [`EmbeddedStore`](crate::EmbeddedStore) and fjall's
//! [`LsmStore`](crate::LsmStore)): every engine operation runs on one of them, and the store's
//! async methods await its result (see "Blocking" on each store).
//!
//! Not tokio's blocking pool: its threads come and go, and an engine's buffers, allocated on one
//! and freed on another, then stay resident in each thread's share of the allocator (random
//! writes into a 4 GB redb store grew the process to 330 MB with mimalloc, against 148 MB on two
//! fixed threads). Two threads let a scan and a write, or two scans, run at once.

use std::path::Path;
use std::sync::{Arc, Mutex};

use strata_core::{Error, Result, Status};

/// Threads a store runs its engine's operations on.
pub(crate) const STORE_THREADS: usize = 2;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of threads taking jobs from one queue; they end when the queue's sender (held by
/// the store's shared state) is dropped.
pub(crate) struct Workers {
    tx: std::sync::mpsc::Sender<Job>,
}

impl Workers {
    /// Starts `threads` threads named `<name>-<i>`.
    pub(crate) fn start(threads: usize, name: &str) -> Result<Workers> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || loop {
                    // The lock is held only while waiting for a job, never while running one.
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(poisoned) => poisoned.into_inner().recv(),
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })
                .map_err(|e| Error::Kv {
                    message: format!("cannot start the store's threads: {e}"),
                    status: Status::Temporary,
                })?;
        }
        Ok(Workers { tx })
    }

    /// Runs `f(&state)` on one of the threads and awaits its result (a panic in `f` resumes
    /// here). `path` names the store in the error when the threads are gone.
    pub(crate) async fn run<S, T, F>(&self, state: Arc<S>, path: &Path, f: F) -> Result<T>
    where
        S: Send + Sync + 'static,
        T: Send + 'static,
        F: FnOnce(&S) -> Result<T> + Send + 'static,
    {
        let (tx, rx) = futures::channel::oneshot::channel();
        let job: Job = Box::new(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&state)));
            drop(state);
            let _ = tx.send(result);
        });
        let lost = || Error::Kv {
            message: format!("operation on {} did not finish: the store's threads are gone", path.display()),
            status: Status::Temporary,
        };
        self.tx.send(job).map_err(|_| lost())?;
        match rx.await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(lost()),
        }
    }
}
