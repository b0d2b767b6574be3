//! strata-etcd: strata on a real etcd cluster — a [`KvSource`](strata_core::KvSource) /
//! [`KvSink`](strata_core::KvSink) / [`KvStore`](strata_core::KvStore) over etcd's MVCC
//! revisions ([`EtcdKv`]), so that strata backs up and restores an etcd cluster's keys (a
//! Kubernetes control plane's `/registry/…`): full, incremental, with revision history, as of a
//! past time, encrypted, into any strata storage.
//!
//! ```text
//!   etcdctl put /registry/pods/…        strata put / sql / RESTORE
//!              │                                   │ txns ≤ 128 ops
//!              ▼                                   ▼
//!   ┌─────────────────────── etcd cluster (Raft, MVCC revisions) ───────────────────────┐
//!   │ /registry/…  (mapped table: prefix + key)     /strata/d/…  (strata's own rows)    │
//!   │ /strata/c/<wall>  clock ticks   /strata/map/<id>  mappings   /strata/fence …      │
//!   └────────────┬──────────────────────────────────────────────────────────────────────┘
//!                │ Range at the compaction revision, then ONE watch (revision order)
//!                ▼
//!   history index (every version since compaction) ──scan (s, e] ──▶ backup (core)
//! ```
//!
//! ```no_run
//! # async fn demo() -> strata_core::Result<()> {
//! use strata_core::{KvSource, KvStore};
//! use strata_etcd::{EtcdKv, EtcdOptions, MapMode};
//!
//! let store = EtcdKv::open_uri("etcd://127.0.0.1:2379", EtcdOptions::default()).await?;
//! // Rows of k8s.registry are the etcd keys /registry/… (declared once, kept in etcd).
//! store.map_table("k8s", "registry", b"/registry/", MapMode::Create).await?;
//! let now = store.now().await?; // a clock tick: this revision ↔ this wall time
//! # let _ = now; Ok(()) }
//! ```
//!
//! # Layout in etcd
//! strata's own rows (catalog, system span, tables made with SQL or `put`) live under a root
//! prefix (`/strata/` by default, [`EtcdOptions::with_root`]), value-encoded so that a deletion
//! is a version too; mapped tables' rows live at their native keys, values as they are (see
//! [`MapMode`]); the mapping itself is kept under the root. The full list is in `layout.rs`.
//!
//! # Timestamps ↔ revisions
//! One etcd txn is one revision. `now()` writes a *clock tick* (revision `q`, wall time `w`, `w`
//! above every earlier tick, compare-and-swapped): revision `r` maps to `(w, r − q)` for the last
//! tick at or before `r` (wall time, then the distance in revisions as the logical counter), and
//! a timestamp `t` maps back to the largest revision at or below it. So `AS OF SYSTEM TIME
//! '-10s'` and dated backup directories work, with the resolution of the ticks (every `now()`:
//! every statement ticks); revisions before the first tick (keys other programs wrote before the
//! store existed) map to `(r ns, 0)`.
//!
//! # History: revision history, deletions, compaction
//! etcd keeps every version since its compaction revision; deletions appear only in its watch
//! history. An [`EtcdKv`] reads the keys at the compaction revision once, then follows one watch
//! over the root and every mapped prefix from the revision after it, into an in-memory index of
//! every version (memory follows what etcd itself keeps since its last compaction). A read first
//! makes sure the index has reached the revision it reads at: its own writes are waited for; a
//! read at a time past the newest tick writes the *fence* key and waits for the watch to pass it
//! (never progress notifications: on 3.4 they can overtake a lagging watcher's events).
//! Compaction is the GC threshold: [`EtcdKv::compact`] compacts, and reads below the compaction
//! revision fail with `InvalidTime` naming the threshold; compactions by others (a Kubernetes
//! API server compacts every 5 minutes) are found by bisecting readable revisions. An
//! incremental backup therefore needs its previous backup's end above the current compaction.
//!
//! # Limits and failures
//! etcd takes at most 128 operations and 1.5 MiB per txn (configurable,
//! [`EtcdOptions::with_max_txn_ops`]): `write` and `publish` larger than that fail (they must be
//! atomic); `ingest` is split into several txns (each ≤ 128 keys lands at one revision). The
//! clients decode messages up to 1 GiB (etcd-client's default is 4 MiB); a Range page holds 256
//! keys (a limited Range counts keys, not bytes). Each member gets its own single-endpoint client;
//! a request that finds its member down moves to the next (a multi-endpoint client stalled on a
//! dead member), so a plain write retried there may apply twice (same values, two revisions). A
//! request to a member that died waits for its deadline first (5 s,
//! [`EtcdOptions::with_request_timeout`]: etcd-client queues it until the member answers); the
//! history watch moves on its own, and notices a frozen member by keep-alive pings (10 s + 5 s,
//! within etcd's minimum ping interval of 5 s).
//!
//! # Where the KV conformance suite and etcd differ
//! The suite passes unchanged (`strata_core::conformance::kv::run_all_with_gc`, `gc` =
//! [`EtcdKv::compact`]) against a 3-member cluster. To fit it: a deletion of a key that does not
//! exist writes a tombstone version (own rows only: etcd itself records nothing for it);
//! `discard` deletes the spans and writes a marker that hides their older versions; compaction
//! is cluster-wide, so compactions at or below a store's first revision do not count as its GC
//! threshold (its own rows did not exist yet). Mapped tables follow etcd: deleting an absent key
//! leaves no version.
//!
//! # Tests
//! [`testing::EtcdCluster`] starts real etcd member processes for tests.
#![warn(missing_docs)]

mod client;
mod clock;
mod history;
mod index;
mod keyspace;
mod layout;
mod mapping;
mod store;
pub mod testing;

pub use client::{parse_endpoints, EtcdConn};
pub use layout::DEFAULT_ROOT;
pub use mapping::MapMode;
pub use store::{EtcdKv, EtcdOptions};
