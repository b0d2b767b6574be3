//! strata-etcd: strata on a real etcd cluster — a `KvSource`/`KvSink`/`KvStore` over etcd's MVCC
//! revisions, and a work queue in etcd through which several worker processes share one backup.
#![warn(missing_docs)]

pub mod testing;
mod queue;
mod worker;

pub use queue::{ClaimEvent, Connection, EtcdQueue, DEFAULT_QUEUE_ROOT};
pub use worker::{failed_outcome, job_progress, run_worker, JobRunner, WorkerOptions, WorkerSummary};
