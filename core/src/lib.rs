//! strata-core: the no-IO heart of strata, a backup and restore library for MVCC key-value data
//! in the style of CockroachDB's `BACKUP` and `RESTORE`.
//!
//! ```text
//!   statement ──sql::parse──▶ Statement ──plan──▶ BackupPlan / RestorePlan   (pure data)
//!                                                    │
//!   KvSource ──scan pages──▶ DataFileWriter ──▶ ExternalStorage: data/*.sst, BACKUP_MANIFEST (last)
//!   ExternalStorage ──ranged reads of needed blocks──▶ key rewrite ──▶ KvSink::ingest ──▶ publish
//! ```
//!
//! The core never touches files, the network, threads or the clock: time arrives as
//! [`Timestamp`] values from the engine, IO through the async traits [`KvSource`], [`KvSink`] and
//! [`ExternalStorage`], implemented by `strata-native`, `strata-wasm` or a plugin.
//!
//! ```
//! use std::sync::Arc;
//! use strata_core::{Executor, MemKv, MemoryOpener};
//!
//! futures::executor::block_on(async {
//!     let source = Arc::new(MemKv::new());
//!     let storage = Arc::new(MemoryOpener::default());
//!     let exec = Executor::new(source.clone(), storage.clone());
//!     exec.execute("CREATE DATABASE bank").await.unwrap();
//!     exec.execute("CREATE TABLE bank.accounts").await.unwrap();
//!     exec.execute("BACKUP DATABASE bank INTO 'memory://backups'").await.unwrap();
//!
//!     // Restore into a fresh, empty store.
//!     let target = Executor::new(Arc::new(MemKv::new()), storage);
//!     target.execute("RESTORE DATABASE bank FROM LATEST IN 'memory://backups'").await.unwrap();
//!     let tables = target.execute("SHOW TABLES FROM bank").await.unwrap();
//!     assert_eq!(tables.rows.len(), 1);
//! });
//! ```
#![warn(missing_docs)]

mod backup;
mod batch;
mod catalog;
mod chain;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod cron;
pub mod crypto;
mod envelope;
mod error;
mod exec;
mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod keys;
mod kv;
mod layout;
mod locality;
pub mod manage;
mod memkv;
mod offload;
mod progress;
mod reader;
mod records;
mod redact;
mod restore;
mod result;
mod retention;
mod schedule;
mod schedule_alter;
mod secrets;
mod span;
pub mod sql;
mod stage;
mod storage;
mod timestamp;
pub mod verify;
mod workqueue;

/// The attribute the engine and storage traits are implemented with (natively
/// `#[async_trait]`, on wasm32 `#[async_trait(?Send)]`; see [`KvSource`]).
pub use async_trait::async_trait;
pub use backup::identity::{ensure_store_id, store_id};
pub use backup::job::{finish_backup_job, job_run_id, run_claimed_unit};
pub use backup::lease::{
    judge, read_leases, remove_abandoned_dir, remove_abandoned_runs, Liveness, RunLease, DEFAULT_STALE_AFTER,
};
pub use backup::plan::{
    describe_scope, expand_table_name, plan_backup, plan_full_backup, read_descriptor_history, resolve_targets,
    split_units, BackupPlan, BackupSpec, ExportTask, PlannedUnit,
};
pub use backup::resume::{
    find_unfinished, read_run, superseded_runs, BackupPlanV1, CheckpointV1, RunInfo, RunKeys, RunState,
    UnitCheckpointV1, UnitRecord,
};
pub use backup::run::{claim_backup_dir, new_run_id, run_backup, BackupOptions};
pub use batch::IngestBatch;
pub use catalog::{
    Catalog, DatabaseDescriptor, DescId, Descriptor, DescriptorChange, IndexDescriptor, IndexState, TableDescriptor,
    FIRST_USER_ID,
};
pub use chain::{catalog_at, layers_for, read_manifest, unlock, validate, Chain, Layer};
pub use cron::CronExpr;
pub use crypto::kdf::KdfParams;
pub use crypto::keyring::{KeyProvider, KeyRequest, Keyring, KmsOpener};
pub use crypto::{DataKey, Entropy, FileCodec};
pub use error::{Error, Result, Status};
pub use exec::{
    finish_queued_backup, queue_job_id, run_queued_unit, show_backup, Executor, Job, JobFuture, JobSpawner, JobStatus,
    QueuedBackup, RunOutcome, ScheduledRun,
};
pub use format::datafile::{self, BlockCodec, DataFileOptions, DataFileStats, DataFileWriter};
pub use format::manifest::{self, BackupScope, DescriptorRevision, FileInfo, Manifest, Origin};
pub use kv::{
    check_gc_threshold, decode_mvcc_key, mvcc_key, push_mvcc_key, read_span, Entry, KvSink, KvSource, KvStore,
    MaybeSendSync, MvccFilter, PageBuilder, ScanPage, ScanRequest, WorkUnit,
};
pub use layout::{
    dated_subdir, is_dated_subdir, layer_dir, layer_subdir, skipped_layers, SkipReason, SkippedLayer, CHECKPOINT_NAME,
    DATA_DIR, ENCRYPTION_INFO_NAME, FILES_LIST_NAME, INCREMENTALS_DIR, LATEST_NAME, MANIFEST_CHECKSUM_NAME,
    MANIFEST_NAME, PLAN_NAME, PROGRESS_DIR,
};
pub use layout::{lease_path, LEASES_DIR};
pub use locality::{locality_of, open_locations, Locations, DEFAULT_LOCALITY, LOCALITY_PARAM};
pub use manage::compact::{compact_chain, compact_in_collection, CompactOptions};
pub use manage::copy::{copy_chain, copy_collection, CopyOptions, CopyReport};
pub use manage::forget::{apply_forget, forget, forget_plan, plan_forget, ChainListing, ForgetEntry, ForgetPlan};
pub use memkv::{Clock, MemKv};
pub use offload::{CpuPool, Offload};
pub use progress::{Cancel, Progress, ProgressOperation, ProgressReporter};
pub use reader::{BackupReader, TableRows};
pub use redact::env_reference;
pub use redact::{is_secret_param, percent_decode, percent_decode_query, redact_uri, shows_query_value, REDACTED};
pub use restore::plan::{prepare_restore, DatabaseRestore, LayerFile, RestorePlan, RestoreSelection, TableRestore};
pub use restore::run::{run_restore, RestoreRunOptions, RestoreSummary};
pub use result::{escape_control, QueryResult, Value};
pub use retention::{parse_keep_within, KeepRule, RetentionPolicy, KEEP_OPTIONS};
pub use schedule::{
    pick_full_recurrence, plan_schedules, validate_schedule_option, BackupKind, FinishEffect, OnFailure,
    OnPreviousRunning, Schedule, ScheduleOption, ScheduleOptions, StartDecision, RETRY_AFTER_NANOS, WAITING_FOR_FULL,
};
pub use secrets::{required_sources, without_secrets, NoSecrets, SecretResolver, PLAIN_PARAMS};
pub use span::{prefix_end, Span, SpanSet};
pub use sql::SecretSource;
pub use storage::{
    slice_range, subdir, Durability, ExternalStorage, ExternalStorageExt, GetOptions, GetResult, ListResult,
    MemoryOpener, MemoryStorage, ObjectMeta, Prefixed, PutMode, PutOptions, StorageOpener, StorageWrapper,
};
pub use timestamp::{Civil, Timestamp};
pub use verify::{FileProblem, VerifyReport};
pub use workqueue::{Claim, Completion, Created, JobInfo, Lease, MemQueue, UnitState, WorkQueue};
