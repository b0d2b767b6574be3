//! Running CPU-heavy steps off the thread that drives a backup.
//!
//! The core has no threads: a backup's future does its encoding on whichever thread polls it,
//! while a native store reads and a native storage writes on their own threads. Sealing a
//! finished data file (building its index, encrypting it, hashing it) is pure CPU work that can
//! run anywhere; given a [`CpuPool`], the backup hands it over and goes on encoding the next
//! file meanwhile. Without one (the default, and on wasm32) it runs inline, as before.

use std::fmt;
use std::sync::Arc;

use futures::channel::oneshot;

use crate::error::{Error, Result};
use crate::kv::MaybeSendSync;

/// Runs pure CPU work on other threads.
///
/// # Contract
/// `spawn` returns at once and runs `work` exactly once, soon, on any thread (a pool's worker:
/// tokio's `spawn_blocking`, a rayon pool). Work may take tens of milliseconds; it does no IO
/// and never blocks on other work. A pool that cannot run it (shutting down) drops it: the
/// backup then fails with an error saying so.
pub trait CpuPool: MaybeSendSync {
    /// Runs `work` in the background.
    fn spawn(&self, work: Box<dyn FnOnce() + Send>);
}

/// Where a backup's CPU-heavy steps run: inline (the default) or on a [`CpuPool`].
#[derive(Clone, Default)]
pub struct Offload(Option<Arc<dyn CpuPool>>);

impl fmt::Debug for Offload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Offload(pool)" } else { "Offload(inline)" })
    }
}

impl Offload {
    /// Work runs inline, on the thread polling the backup.
    pub fn inline() -> Offload {
        Offload(None)
    }

    /// Work runs on `pool`.
    pub fn pool(pool: Arc<dyn CpuPool>) -> Offload {
        Offload(Some(pool))
    }

    /// Runs `work` (inline or on the pool) and returns its output.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let Some(pool) = &self.0 else { return Ok(work()) };
        let (tx, rx) = oneshot::channel();
        pool.spawn(Box::new(move || {
            let _ = tx.send(work());
        }));
        rx.await.map_err(|_| Error::Cancelled("the CPU pool dropped a backup's work (is it shutting down?)".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    use std::sync::Mutex;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// A pool that queues work until `drain` (or drops it).
    #[derive(Default)]
    struct Queue(Mutex<Vec<Box<dyn FnOnce() + Send>>>);

    impl CpuPool for Queue {
        fn spawn(&self, work: Box<dyn FnOnce() + Send>) {
            self.0.lock().unwrap().push(work);
        }
    }

    #[test]
    fn inline_runs_at_once_and_a_pool_runs_on_its_own_time() {
        assert_eq!(block_on(Offload::inline().run(|| 6 * 7)).unwrap(), 42);

        let queue = Arc::new(Queue::default());
        let offload = Offload::pool(queue.clone());
        let mut fut = Box::pin(offload.run(|| "sealed".to_string()));
        assert!(block_on(async { futures::poll!(fut.as_mut()) }).is_pending(), "runs only when the pool does");
        let work = queue.0.lock().unwrap().pop().expect("the work reached the pool");
        work();
        assert_eq!(block_on(fut).unwrap(), "sealed");
    }

    #[test]
    fn work_a_pool_drops_is_an_error() {
        let queue = Arc::new(Queue::default());
        let offload = Offload::pool(queue.clone());
        let fut = offload.run(|| 1);
        let mut fut = Box::pin(fut);
        let _ = block_on(async { futures::poll!(fut.as_mut()) });
        queue.0.lock().unwrap().clear();
        let err = block_on(fut).unwrap_err();
        assert!(err.to_string().contains("CPU pool dropped"), "{err}");
    }
}
