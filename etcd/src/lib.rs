//! strata-etcd: strata on a real etcd cluster — a `KvSource`/`KvSink`/`KvStore` over etcd's MVCC
//! revisions, and a work queue in etcd through which several worker processes share one backup.
#![warn(missing_docs)]

mod client;
mod clock;
mod history;
mod index;
mod keyspace;
mod layout;
mod queue;
mod store;
pub mod testing;
mod worker;

pub use client::{parse_endpoints, EtcdConn};
pub use layout::DEFAULT_ROOT;
pub use queue::{ClaimEvent, Connection, EtcdQueue, DEFAULT_QUEUE_ROOT};
pub use store::{EtcdKv, EtcdOptions};
pub use worker::{failed_outcome, job_progress, run_worker, BackupJobRunner, JobRunner, WorkerOptions, WorkerSummary};
