//! A [`CpuPool`] on tokio's blocking threads.

use strata_core::CpuPool;
use tokio::runtime::Handle;

/// Runs a backup's CPU-heavy steps (sealing finished data files) on tokio's blocking pool, so
/// the thread driving the backup goes on encoding meanwhile. Pass it with
/// `BackupOptions::with_cpu_pool`; the `strata` CLI does.
#[derive(Debug, Clone)]
pub struct TokioCpuPool {
    handle: Handle,
}

impl TokioCpuPool {
    /// A pool on the runtime this is called from; `None` outside a tokio runtime.
    pub fn current() -> Option<TokioCpuPool> {
        Handle::try_current().ok().map(|handle| TokioCpuPool { handle })
    }
}

impl CpuPool for TokioCpuPool {
    fn spawn(&self, work: Box<dyn FnOnce() + Send>) {
        // A runtime shutting down drops the task: the backup's `Offload::run` reports it.
        drop(self.handle.spawn_blocking(work));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::Offload;

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn runs_work_on_another_thread() {
        let pool = TokioCpuPool::current().expect("inside a runtime");
        let here = std::thread::current().id();
        let there = Offload::pool(std::sync::Arc::new(pool)).run(move || std::thread::current().id()).await.unwrap();
        assert_ne!(here, there, "the work ran on the calling thread");
    }

    #[test]
    fn outside_a_runtime_there_is_no_pool() {
        assert!(TokioCpuPool::current().is_none());
    }
}
