//! The store's own threads, which run every fjall operation, and [`LsmStore::blocking`], which
//! hands one to them and awaits its result (see "Blocking" on [`LsmStore`]). The same shape as
//! the redb store's threads (`embedded/worker.rs`), for the same reason: buffers allocated and
//! freed on the same few threads keep the process's resident memory near its live heap.

use std::sync::{Arc, Mutex};

use strata_core::{Error, Result, Status};

use super::{Inner, LsmStore};

/// Threads the store runs fjall operations on ([`LsmStore::blocking`]).
pub(super) const STORE_THREADS: usize = 2;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of threads taking jobs from one queue; they end when the queue's sender (held by
/// the store's shared state) is dropped.
pub(super) struct Workers {
    tx: std::sync::mpsc::Sender<Job>,
}

impl Workers {
    pub(super) fn start(threads: usize) -> Result<Workers> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("strata-lsm-{i}"))
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
}

impl LsmStore {
    /// Runs `f` on one of the store's threads and awaits its result (a panic in `f` resumes
    /// here).
    pub(super) async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let (tx, rx) = futures::channel::oneshot::channel();
        let job: Job = Box::new(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&inner)));
            drop(inner);
            let _ = tx.send(result);
        });
        let lost = || Error::Kv {
            message: format!("operation on {} did not finish: the store's threads are gone", self.inner.path.display()),
            status: Status::Temporary,
        };
        self.inner.workers.tx.send(job).map_err(|_| lost())?;
        match rx.await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(lost()),
        }
    }
}
