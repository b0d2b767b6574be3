//! Telling an abandoned run (killed, never coming back) from one still running, the way restic
//! tells stale locks: each run keeps a lease in its backup directory and refreshes it as it
//! works; a lease not refreshed for longer than a threshold is stale, and a directory without a
//! manifest whose every lease is stale is abandoned. Any later run into the collection then
//! removes it ([`remove_abandoned_runs`]) — without the abandoned run's key.
//!
//! ```text
//!   run:     lease (put) ─▶ BACKUP-PLAN ─▶ units … every page read: beat ─▶ (each `every`:
//!            lease and plan still there? else stop: "lost the directory") ─▶ refresh lease
//!            ─▶ commit (the plan must still be the run's) ─▶ sweep (plan, records, leases)
//!   any later run, after its own commit:
//!            each dir with a plan / checkpoint / lease and no manifest ─▶ judge (pure):
//!            every lease stale? (no lease: an older strata's run, by its plan's end time)
//!            ─▶ delete the plan first ─▶ leases unchanged and still stale? ─▶ data files
//!            (every location), records, file list, checksum, leases, then a lone ENCRYPTION-INFO
//! ```
//!
//! Time is the source store's: a run records `now()` of the store it reads, and the judging run
//! compares what it finds with `now()` of its own store. Stores on different machines are
//! compared by their wall clocks, so the threshold (30 minutes by default, refreshed about every
//! 5) must dwarf their skew; a lease refreshed "in the future" is never stale.
//!
//! A lease holds no secret and is stored plain: run id, source store id, when the run started,
//! when it last refreshed the lease, and the run's own threshold (the judge uses the larger of
//! its own and the lease's, so a run given a long threshold is not removed by one given a short
//! one).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::backup::resume::{read_run, RunKeys};
use crate::crypto::FileCodec;
use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::kv::KvSource;
use crate::layout::{
    self, is_lease, lease_path, CHECKPOINT_NAME, DATA_DIR, ENCRYPTION_INFO_NAME, FILES_LIST_NAME, LEASES_DIR,
    MANIFEST_CHECKSUM_NAME, MANIFEST_NAME, PLAN_NAME, PROGRESS_DIR,
};
use crate::locality::Locations;
use crate::storage::{ExternalStorage, ExternalStorageExt};
use crate::timestamp::Timestamp;

/// The format of a lease.
pub const LEASE_FORMAT: Envelope = crate::envelope::RUN_LEASE;

/// How long a run may go without refreshing its lease before another run may take it for
/// abandoned, by default: 30 minutes (restic's stale-lock age). A run refreshes it six times as
/// often.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// What a running backup's lease (`leases/<run>`) holds. No secret: it is stored plain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLease {
    /// The run's id.
    pub run: String,
    /// The id of the source store the run reads (`None`: a store without one).
    pub store: Option<String>,
    /// When the run started, by its source store's clock.
    pub started: Timestamp,
    /// When the run last refreshed the lease, by its source store's clock.
    pub refreshed: Timestamp,
    /// How long the run may go without refreshing before it counts as abandoned, in seconds.
    pub stale_after_secs: u64,
}

impl RunLease {
    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        LEASE_FORMAT.encode(self)
    }

    /// Decodes stored bytes; `shown` names the file in errors.
    pub fn decode(bytes: &[u8], shown: &str) -> Result<RunLease> {
        LEASE_FORMAT.decode(bytes, shown)
    }

    /// Whether, at `now` (the judging run's source store's time), the lease was last refreshed
    /// longer ago than `stale_after` and than its own run's threshold.
    pub fn is_stale(&self, now: Timestamp, stale_after: Duration) -> bool {
        let limit = stale_after.as_nanos().max(u128::from(self.stale_after_secs) * 1_000_000_000);
        u128::from(now.wall) > u128::from(self.refreshed.wall) + limit
    }
}

/// What a run without a manifest is, as far as its directory tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Running (a lease refreshed within the threshold), or too young to tell.
    Alive,
    /// Killed and not coming back: its files may go.
    Abandoned,
    /// Nothing tells (a damaged lease, or an older strata's plan this run cannot read): left.
    Unknown,
}

/// Judges a directory without a manifest (pure): from its `leases`, how many more were damaged
/// (`damaged`), and, for a directory without any lease (an older strata's run), its plan's end
/// time if the plan could be read (`plan_end`), at `now` with threshold `stale_after`.
pub fn judge(
    leases: &[RunLease],
    damaged: usize,
    plan_end: Option<Timestamp>,
    now: Timestamp,
    stale_after: Duration,
) -> Liveness {
    if leases.iter().any(|l| !l.is_stale(now, stale_after)) {
        return Liveness::Alive;
    }
    if damaged > 0 {
        return Liveness::Unknown;
    }
    if !leases.is_empty() {
        return Liveness::Abandoned;
    }
    // An older strata's run: its plan's end time is at or before the time it started.
    match plan_end {
        Some(end) if u128::from(now.wall) > u128::from(end.wall) + stale_after.as_nanos() => Liveness::Abandoned,
        Some(_) => Liveness::Alive,
        None => Liveness::Unknown,
    }
}

/// A run's lease, kept fresh as the run works.
/// See [`Heartbeat::beat`].
struct Pacing {
    pages: u64,
    stride: u64,
    read: Timestamp,
}

/// The most pages between two reads of the source's clock.
const MAX_STRIDE: u64 = 64;

pub(crate) struct Heartbeat {
    storage: Arc<dyn ExternalStorage>,
    lease: Mutex<RunLease>,
    /// Nanoseconds between refreshes.
    every: u64,
    /// How often the source's clock is read: every `stride`-th page, and when it was read last
    /// (a clock read may cost a round trip, or a write: etcd's ticks its clock).
    pacing: Mutex<Pacing>,
    /// A shared job's worker: it refreshes the job's lease where the job claimed its directory,
    /// and has nothing to keep alive where it did not (a queued job's directory has no plan).
    joined: bool,
}

impl Heartbeat {
    /// The lease of run `run` from store `store` in the backup directory `storage`, refreshed
    /// about six times per `stale_after`. Nothing is written yet.
    pub(crate) fn new(
        storage: Arc<dyn ExternalStorage>,
        run: &str,
        store: Option<String>,
        stale_after: Duration,
    ) -> Heartbeat {
        let lease = RunLease {
            run: run.to_string(),
            store,
            started: Timestamp::ZERO,
            refreshed: Timestamp::ZERO,
            stale_after_secs: stale_after.as_secs().max(1),
        };
        let every = u64::try_from(stale_after.as_nanos() / 6).unwrap_or(u64::MAX);
        let pacing = Mutex::new(Pacing { pages: 0, stride: 1, read: Timestamp::ZERO });
        Heartbeat { storage, lease: Mutex::new(lease), every, pacing, joined: false }
    }

    /// [`Heartbeat::new`] for a worker of a shared job (see [`Heartbeat::joined`]).
    pub(crate) fn joining(mut self) -> Heartbeat {
        self.joined = true;
        self
    }

    fn lease(&self) -> RunLease {
        self.lease.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, lease: &RunLease) {
        *self.lease.lock().unwrap_or_else(|e| e.into_inner()) = lease.clone();
    }

    /// Writes the lease, started and refreshed now (the source's time): before the run writes
    /// anything else, so that a directory with a plan and no lease is an older strata's.
    pub(crate) async fn start(&self, source: &dyn KvSource) -> Result<()> {
        let now = source.now().await?;
        let mut lease = self.lease();
        lease.started = now;
        lease.refreshed = now;
        self.storage.put(&lease_path(&lease.run), Bytes::from(lease.encode())).await?;
        self.set(&lease);
        Ok(())
    }

    /// Refreshes the lease if it is due (the source's time): fails, so the run stops before it
    /// commits, if the lease or the directory's plan is gone (another run took this one for
    /// abandoned and removed it).
    ///
    /// Called once per page read. It reads the source's clock only every `stride`-th page: the
    /// stride doubles (up to 64) while reads come less than an eighth of the refresh interval
    /// apart, and halves once they come more than half of it apart, so a fast run reads the
    /// clock a few times per interval and a slow one every page.
    pub(crate) async fn beat(&self, source: &dyn KvSource) -> Result<()> {
        {
            let mut pacing = self.pacing.lock().unwrap_or_else(|e| e.into_inner());
            pacing.pages += 1;
            if pacing.pages < pacing.stride {
                return Ok(());
            }
            pacing.pages = 0;
        }
        let mut lease = self.lease();
        let now = source.now().await?;
        {
            let mut pacing = self.pacing.lock().unwrap_or_else(|e| e.into_inner());
            let since = now.wall.saturating_sub(pacing.read.wall.max(lease.refreshed.wall));
            if since < self.every / 8 {
                pacing.stride = (pacing.stride * 2).min(MAX_STRIDE);
            } else if since > self.every / 2 {
                pacing.stride = (pacing.stride / 2).max(1);
            }
            pacing.read = now;
        }
        if now.wall < lease.refreshed.wall.saturating_add(self.every) {
            return Ok(());
        }
        let path = lease_path(&lease.run);
        let leased = present(self.storage.as_ref(), &path).await?;
        let planned = present(self.storage.as_ref(), PLAN_NAME).await?;
        if self.joined && !leased && !planned {
            // A queued job's directory: no claim to keep alive.
            lease.refreshed = now;
            self.set(&lease);
            return Ok(());
        }
        if !leased || !planned {
            return Err(Error::Precondition(format!(
                "backup run {} lost {}: another run removed it as abandoned (its lease was not refreshed \
                 for longer than {} s); this run stops without committing — run the backup again",
                lease.run,
                self.storage.describe(),
                lease.stale_after_secs
            )));
        }
        lease.refreshed = now;
        if lease.started.is_zero() {
            lease.started = now;
        }
        self.storage.put(&path, Bytes::from(lease.encode())).await?;
        self.set(&lease);
        Ok(())
    }

    /// Removes the lease (best effort): the run failed, or never claimed the directory.
    pub(crate) async fn release(&self) {
        let _ = self.storage.delete(&lease_path(&self.lease().run)).await;
    }
}

async fn present(storage: &dyn ExternalStorage, path: &str) -> Result<bool> {
    match storage.size(path).await {
        Ok(_) => Ok(true),
        Err(Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The leases in a backup directory, with their paths, and how many did not decode.
pub async fn read_leases(dir: &dyn ExternalStorage) -> Result<(Vec<(String, RunLease)>, usize)> {
    let mut leases = Vec::new();
    let mut damaged = 0;
    for o in dir.list(&format!("{LEASES_DIR}/")).await? {
        if !is_lease(&o.path) {
            continue;
        }
        let stored = match dir.get(&o.path).await {
            Ok(stored) => stored,
            Err(Error::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        match RunLease::decode(&stored, &format!("{}/{}", dir.describe(), o.path)) {
            Ok(lease) => leases.push((o.path, lease)),
            Err(_) => damaged += 1,
        }
    }
    Ok((leases, damaged))
}

/// The end time of the plan of a run without a lease, if it can be read: plain, or with `keys`.
async fn plan_end(dir: &Locations, keys: RunKeys<'_>) -> Option<Timestamp> {
    let storage = dir.storage().as_ref();
    if let Some(run) = read_run(storage, &FileCodec::plain()).await {
        return Some(run.plan.end_time);
    }
    let codec = match keys {
        RunKeys::Codec(codec) => codec.clone(),
        RunKeys::Unlock(keyring, request) if !request.is_empty() => {
            crate::chain::unlock(storage, keyring, request).await.ok()?
        }
        RunKeys::Unlock(..) => return None,
    };
    read_run(storage, &codec).await.map(|run| run.plan.end_time)
}

/// Removes every abandoned run below `root` (a collection, or a `BACKUP TO` location): each
/// directory other than `keep` with a plan, a legacy checkpoint or a lease and no manifest that
/// [`judge`] finds [`Liveness::Abandoned`] at `now` (the judging run's source store's time) with
/// threshold `stale_after`. A lease-less run's plan is read plain or with `keys`. Returns the
/// directories removed.
pub async fn remove_abandoned_runs(
    root: &Locations,
    keep: &str,
    now: Timestamp,
    stale_after: Duration,
    keys: RunKeys<'_>,
) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for dir in layout::unfinished_dirs(root.storage().as_ref(), "").await? {
        if dir == keep.trim_matches('/') {
            continue;
        }
        let location = root.subdir(&dir);
        let (leases, damaged) = read_leases(location.storage().as_ref()).await?;
        let end = if leases.is_empty() && damaged == 0 { plan_end(&location, keys).await } else { None };
        let found: Vec<RunLease> = leases.iter().map(|(_, l)| l.clone()).collect();
        if judge(&found, damaged, end, now, stale_after) != Liveness::Abandoned {
            continue;
        }
        let seen: Vec<String> = leases.into_iter().map(|(p, _)| p).collect();
        if remove_abandoned_dir(&location, &seen, now, stale_after).await? {
            removed.push(dir);
        }
    }
    Ok(removed)
}

/// Removes an abandoned run's files from its directory `dir`, without its key: the plan (and a
/// legacy checkpoint) first, so that the run, were it alive after all, finds it gone at its next
/// refresh or at its commit and stops; then, unless a manifest appeared or a lease other than
/// `seen` appeared or was refreshed meanwhile (a run is using the directory), its data files in
/// every location, its records, a file list and manifest checksum, its leases, and an
/// `ENCRYPTION-INFO` once nothing else is left. Only a run's own names are removed: the
/// incremental layers of a full backup, say, are not. Returns whether it removed them.
pub async fn remove_abandoned_dir(
    dir: &Locations,
    seen: &[String],
    now: Timestamp,
    stale_after: Duration,
) -> Result<bool> {
    let storage = dir.storage();
    if present(storage.as_ref(), MANIFEST_NAME).await? {
        return Ok(false);
    }
    storage.delete(PLAN_NAME).await?;
    storage.delete(CHECKPOINT_NAME).await?;
    // A run that committed just now takes its commit back (its plan is gone).
    if present(storage.as_ref(), MANIFEST_NAME).await? {
        return Ok(false);
    }
    let (leases, damaged) = read_leases(storage.as_ref()).await?;
    if damaged > 0 || leases.iter().any(|(p, l)| !seen.contains(p) || !l.is_stale(now, stale_after)) {
        return Ok(false);
    }
    for location in dir.all() {
        for o in location.list(&format!("{DATA_DIR}/")).await? {
            location.delete(&o.path).await?;
        }
    }
    for o in storage.list(&format!("{PROGRESS_DIR}/")).await? {
        storage.delete(&o.path).await?;
    }
    storage.delete(FILES_LIST_NAME).await?;
    storage.delete(MANIFEST_CHECKSUM_NAME).await?;
    // Only the leases judged: one written since is a run's that just came (it keeps the
    // ENCRYPTION-INFO, and its commit fails on the files it finds gone).
    for path in seen {
        storage.delete(path).await?;
    }
    let rest = storage.list("").await?;
    if rest.len() == 1 && rest[0].path == ENCRYPTION_INFO_NAME {
        storage.delete(ENCRYPTION_INFO_NAME).await?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn at(secs: u64) -> Timestamp {
        Timestamp { wall: secs * 1_000_000_000, logical: 0 }
    }

    fn lease(refreshed: u64, stale_after_secs: u64) -> RunLease {
        RunLease { run: "r".into(), store: None, started: at(0), refreshed: at(refreshed), stale_after_secs }
    }

    #[test]
    fn a_run_is_abandoned_only_when_every_lease_is_stale() {
        let min30 = Duration::from_secs(1800);
        let now = at(10_000);
        use Liveness::*;
        assert_eq!(judge(&[lease(10_000 - 1801, 1800)], 0, None, now, min30), Abandoned);
        assert_eq!(judge(&[lease(10_000 - 1800, 1800)], 0, None, now, min30), Alive);
        assert_eq!(judge(&[lease(1, 1800), lease(9_999, 1800)], 0, None, now, min30), Alive);
        // The lease's own, longer threshold wins; a refresh "in the future" is never stale.
        assert_eq!(judge(&[lease(10_000 - 1801, 7200)], 0, None, now, min30), Alive);
        assert_eq!(judge(&[lease(20_000, 1800)], 0, None, now, min30), Alive);
        // A damaged lease is not read as stale; no lease: the plan's age, else unknown.
        assert_eq!(judge(&[lease(1, 1800)], 1, None, now, min30), Unknown);
        assert_eq!(judge(&[], 0, Some(at(10_000 - 1801)), now, min30), Abandoned);
        assert_eq!(judge(&[], 0, Some(at(9_000)), now, min30), Alive);
        assert_eq!(judge(&[], 0, None, now, min30), Unknown);
    }

    #[test]
    fn the_committed_lease_of_version_1_still_decodes() {
        // The fuzz corpus seed is the format's fixture: version 1 as written.
        let committed = include_bytes!("../../../fuzz/corpus/run_lease/written");
        let lease = RunLease {
            run: "0123456789abcdef".into(),
            store: Some("fedcba9876543210".into()),
            started: Timestamp { wall: 1_700_000_000_000_000_000, logical: 0 },
            refreshed: Timestamp { wall: 1_700_000_300_000_000_000, logical: 2 },
            stale_after_secs: 1800,
        };
        assert_eq!(RunLease::decode(committed, "fixture").unwrap(), lease);
        assert_eq!(lease.encode(), committed);
    }

    #[test]
    fn a_lease_round_trips_and_holds_what_it_says() {
        let l = RunLease { store: Some("s1".into()), ..lease(5, 60) };
        assert_eq!(RunLease::decode(&l.encode(), "x").unwrap(), l);
        assert!(RunLease::decode(b"STRATAPL\x01\x00", "x/leases/r").unwrap_err().to_string().contains("x/leases/r"));
    }
}
