//! The layout of backups in storage, in one place: every file and directory name, the shapes of
//! dated directories, how a collection's backups and a backup's layers are found, and how an
//! abandoned run's files are removed.
//!
//! ```text
//!   collection/                         BACKUP INTO 'collection'
//!     LATEST                            names the newest full backup: /2026/11/23-101500.00
//!     2026/11/23-101500.00/             a full backup (dated_subdir)
//!       BACKUP_MANIFEST                 written last: without it there is no backup
//!       BACKUP_MANIFEST-CHECKSUM
//!       ENCRYPTION-INFO                 an encrypted chain's wrapped data keys (full backup only)
//!       BACKUP-FILES                    an encrypted layer's data files, in plaintext, for checks
//!       BACKUP-PLAN                     while running: the plan being run
//!       leases/<run>                    while running: each run's lease, plaintext, refreshed
//!                                       as it works (see "Abandoned runs" below)
//!       progress/<plan>-<unit>-<writer> while running: each writer's record of a unit's files
//!       BACKUP-CHECKPOINT               left by older strata while running (still read)
//!       data/<plan>-<unit>-<writer>-<seq>.sst   the data files; <writer> is <run>-<token>:
//!                                       the run's random id and its claim's fencing token
//!       data/<plan>-<unit>-<seq>.sst    data files of older strata (no writer; still read)
//!       incrementals/2026/11/23-111500.123456789-0/   an incremental layer (layer_subdir)
//!         BACKUP_MANIFEST, …            the same files as above, but no ENCRYPTION-INFO
//! ```
//!
//! This module knows names and shapes only; what the files hold is the business of `format`,
//! `crypto` and `backup`.
//!
//! # Abandoned runs
//!
//! A run that is killed and never comes back leaves its directory without a manifest. The next
//! run of the same request from the same store resumes it (or, with another end time, removes it:
//! it superseded it). Any other run is told apart from a run still going by the run's lease
//! (`leases/<run>`, [`lease_path`]): a small plaintext record holding no secret (run id, source
//! store id, when the run started and when it last refreshed it, as the source store's clock
//! read them, and how long it may go without refreshing) that a run writes before its plan and
//! refreshes as it reads its source, about six times per threshold. Every successful backup run
//! into a collection (or a `BACKUP TO` location) then looks at every directory below it that has a
//! plan, a legacy checkpoint or a lease and no manifest: when every lease there was last
//! refreshed longer ago than the threshold (the larger of the looking run's and the lease's own;
//! 30 minutes by default, see `BackupOptions::stale_after`), measured with its own source
//! store's `now()`, the run is abandoned and its files go — without its key: the plan first (a
//! run still alive finds it gone at its next refresh or at its commit, and stops), then its data
//! files in every location, records, file list, checksum, the leases, and an `ENCRYPTION-INFO`
//! once nothing else is left. A directory with a manifest is never touched. A run of an older
//! strata (a plan and no lease) is judged by its plan's end time when the plan can be read (plain,
//! or with the looking run's keys); otherwise it is left, and `SHOW BACKUP`, `SHOW BACKUPS` and
//! `verify` keep reporting it as unfinished.

use crate::error::{Error, Result};
use crate::locality::Locations;
use crate::storage::ExternalStorage;
use crate::storage::ExternalStorageExt;
use crate::timestamp::Timestamp;

/// The manifest of a backup layer: written last, the commit point.
pub const MANIFEST_NAME: &str = "BACKUP_MANIFEST";
/// The SHA-256 of the manifest's stored bytes, as hex and a newline.
pub const MANIFEST_CHECKSUM_NAME: &str = "BACKUP_MANIFEST-CHECKSUM";
/// An encrypted chain's data key, wrapped by each of its passphrases and KMS keys.
pub const ENCRYPTION_INFO_NAME: &str = "ENCRYPTION-INFO";
/// An encrypted layer's data files (path, size, SHA-256) in plaintext, for checks without a key.
pub const FILES_LIST_NAME: &str = "BACKUP-FILES";
/// The plan of a run in progress.
pub const PLAN_NAME: &str = "BACKUP-PLAN";
/// The directory of a running backup's per-unit done records.
pub const PROGRESS_DIR: &str = "progress";
/// The single checkpoint older strata rewrote while a backup ran (read to resume such a run).
pub const CHECKPOINT_NAME: &str = "BACKUP-CHECKPOINT";
/// The directory of a running backup's leases: one plaintext file per run, named by its run id.
pub const LEASES_DIR: &str = "leases";
/// The file in a collection naming its newest full backup.
pub const LATEST_NAME: &str = "LATEST";
/// Where incremental layers appended to a backup directory live, below it.
pub const INCREMENTALS_DIR: &str = "incrementals";
/// Where a layer's data files live, below it.
pub const DATA_DIR: &str = "data";

/// The files every finished layer directory holds besides its data files.
pub const LAYER_FILES: &[&str] = &[MANIFEST_NAME, MANIFEST_CHECKSUM_NAME, FILES_LIST_NAME];

/// The tag naming everything one writer of a unit writes: its run's id and its claim's fencing
/// token (`3f9c0a1b2c3d4e5f-7`). Two runs, or two claims of one unit, never share one.
pub fn writer_tag(run: &str, token: u64) -> String {
    format!("{run}-{token}")
}

/// The path of data file `seq` that writer `tag` (see [`writer_tag`]) writes for unit `unit` of
/// the plan with file prefix `prefix`.
pub fn writer_data_file_path(prefix: &str, unit: usize, tag: &str, seq: usize) -> String {
    format!("{}{seq:04}.sst", writer_files_prefix(prefix, unit, tag))
}

/// The prefix of every data file writer `tag` writes for unit `unit`.
pub fn writer_files_prefix(prefix: &str, unit: usize, tag: &str) -> String {
    format!("{DATA_DIR}/{prefix}-{unit:06}-{tag}-")
}

/// The path of run `run`'s lease in its backup directory (`leases/<run>`).
pub fn lease_path(run: &str) -> String {
    format!("{LEASES_DIR}/{run}")
}

/// Whether `path` (relative to a backup directory) is a lease.
pub fn is_lease(path: &str) -> bool {
    path.strip_prefix(LEASES_DIR).and_then(|rest| rest.strip_prefix('/')).is_some_and(|run| !run.contains('/'))
}

/// The path of writer `tag`'s record of unit `unit` (its finished files, where it goes on).
pub fn writer_record_path(prefix: &str, unit: usize, tag: &str) -> String {
    format!("{PROGRESS_DIR}/{prefix}-{unit:06}-{tag}")
}

/// The writer tag of a unit record's path (`None` for an older strata's untagged record).
pub fn record_writer(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(PROGRESS_DIR)?.strip_prefix('/')?;
    let (_plan, rest) = rest.split_once('-')?;
    let (_unit, tag) = rest.split_once('-')?;
    Some(tag)
}

/// The writer tag of a data file's path (`None` for an older strata's untagged file).
pub fn file_writer(path: &str) -> Option<&str> {
    let name = path.strip_prefix(DATA_DIR)?.strip_prefix('/')?.strip_suffix(".sst")?;
    let (_plan, rest) = name.split_once('-')?;
    let (_unit, rest) = rest.split_once('-')?;
    let (tag, _seq) = rest.rsplit_once('-')?;
    Some(tag)
}

/// The directory prefix of the data files of a plan with file prefix `prefix`.
pub fn data_files_prefix(prefix: &str) -> String {
    format!("{DATA_DIR}/{prefix}-")
}

/// The dated subdirectory a `BACKUP INTO` collection gives a full backup ending at `ts`:
/// `2026/11/23-101500.00` (CockroachDB's layout, hundredths of a second).
pub fn dated_subdir(ts: Timestamp) -> String {
    let c = ts.civil();
    format!(
        "{:04}/{:02}/{:02}-{:02}{:02}{:02}.{:02}",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.nanos / 10_000_000
    )
}

/// How many hundredths after its own a full backup's dated subdirectory may be, when the
/// subdirectories before it are taken (see [`dated_subdir_candidates`]).
pub const DATED_SUBDIR_TRIES: u64 = 100;

/// The dated subdirectories a full backup ending at `ts` may take, in order: its own
/// ([`dated_subdir`]), then each next hundredth of a second, for when two backups end in the same
/// hundredth (two stores backing up at once, or a killed run of another store holding the
/// directory). The manifest records the exact end time; the name only orders the backups.
pub fn dated_subdir_candidates(ts: Timestamp) -> impl Iterator<Item = String> {
    (0..DATED_SUBDIR_TRIES).map(move |n| dated_subdir(Timestamp { wall: ts.wall + n * 10_000_000, logical: 0 }))
}

/// Whether `dir` is one of the dated subdirectories a full backup ending at `ts` may take.
pub fn is_dated_subdir_of(ts: Timestamp, dir: &str) -> bool {
    dated_subdir_candidates(ts).any(|d| d == dir)
}

/// The directory of an incremental layer ending at `ts`, relative to its full backup:
/// `incrementals/` and the dated form with the full nanoseconds and logical counter, so that
/// layers taken in quick succession never collide (`…/2026/11/23-101500.123456789-0`).
pub fn layer_dir(ts: Timestamp) -> String {
    format!("{INCREMENTALS_DIR}/{}", layer_subdir(ts))
}

/// [`layer_dir`] without its `incrementals/`.
pub fn layer_subdir(ts: Timestamp) -> String {
    let c = ts.civil();
    format!(
        "{:04}/{:02}/{:02}-{:02}{:02}{:02}.{:09}-{}",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.nanos, ts.logical
    )
}

/// Whether `path` (without leading `/`) has the shape of a dated full-backup subdirectory.
pub fn is_dated_subdir(path: &str) -> bool {
    let b = path.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'/',
            10 => *c == b'-',
            17 => *c == b'.',
            _ => c.is_ascii_digit(),
        })
}

/// The full backups of a collection with a manifest, oldest first (`SHOW BACKUPS IN`).
pub async fn full_backups(root: &dyn ExternalStorage) -> Result<Vec<String>> {
    let suffix = format!("/{MANIFEST_NAME}");
    Ok(root
        .list("")
        .await?
        .iter()
        .filter_map(|o| o.path.strip_suffix(&suffix))
        .filter(|d| is_dated_subdir(d))
        .map(str::to_string)
        .collect())
}

/// The full backups of a collection whether or not their manifest survived: dated directories
/// holding any file, oldest first (for checks, which report what is missing).
pub async fn full_backup_dirs(root: &dyn ExternalStorage) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for o in root.list("").await? {
        let p = &o.path;
        if p.len() > 21 && is_dated_subdir(&p[..20]) && p.as_bytes()[20] == b'/' {
            let d = &p[..20];
            if out.last().map(String::as_str) != Some(d) {
                out.push(d.to_string());
            }
        }
    }
    out.dedup();
    Ok(out)
}

/// The incremental layers appended to the backup directory `full` that have a manifest
/// (relative to `full`, in name order).
pub async fn finished_layers(full: &dyn ExternalStorage) -> Result<Vec<String>> {
    let suffix = format!("/{MANIFEST_NAME}");
    Ok(full
        .list(&format!("{INCREMENTALS_DIR}/"))
        .await?
        .iter()
        .filter_map(|o| o.path.strip_suffix(&suffix))
        .map(str::to_string)
        .collect())
}

/// The incremental layer directories below `full` found by any of their files (so a layer
/// whose manifest is gone is still found), relative to `full`, in name (time) order.
pub async fn layer_dirs(full: &dyn ExternalStorage) -> Result<Vec<String>> {
    let mut dirs: Vec<String> = Vec::new();
    for o in full.list(&format!("{INCREMENTALS_DIR}/")).await? {
        let dir = match o.path.split_once(&format!("/{DATA_DIR}/")) {
            Some((dir, _)) => dir,
            None => match o.path.rsplit_once('/') {
                Some((dir, name)) if LAYER_FILES.contains(&name) => dir,
                _ => continue,
            },
        };
        if !dirs.iter().any(|d| d == dir) {
            dirs.push(dir.to_string());
        }
    }
    dirs.sort();
    Ok(dirs)
}

/// The directories below `root` (and `root` itself, as `""`) where a run left a plan, a
/// legacy checkpoint or a lease and no manifest: backups that were started and did not finish.
pub async fn unfinished_dirs(root: &dyn ExternalStorage, prefix: &str) -> Result<Vec<String>> {
    let listed = root.list(prefix).await?;
    let has = |dir: &str, name: &str| {
        let path = if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") };
        listed.iter().any(|o| o.path == path)
    };
    let mut out = Vec::new();
    for o in &listed {
        let (dir, name) = o.path.rsplit_once('/').unwrap_or(("", o.path.as_str()));
        let dir = match dir.rsplit_once('/') {
            _ if name == PLAN_NAME || name == CHECKPOINT_NAME => dir,
            Some((parent, LEASES_DIR)) => parent,
            None if dir == LEASES_DIR => "",
            _ => continue,
        };
        if !has(dir, MANIFEST_NAME) && !out.iter().any(|d| d == dir) {
            out.push(dir.to_string());
        }
    }
    Ok(out)
}

/// A new, empty layer directory `dir` below `root` (an error if something is already there).
pub async fn new_layer_dir(root: &Locations, dir: &str) -> Result<Locations> {
    if !root.storage().list(&format!("{dir}/")).await?.is_empty() {
        return Err(Error::exists("backup", format!("{}/{dir}", root.describe())));
    }
    Ok(root.subdir(dir))
}

/// Removes the records of the run of the plan with file prefix `prefix` (its done records, the
/// plan, a legacy checkpoint): what a finished run no longer needs.
pub async fn remove_records(dir: &dyn ExternalStorage, prefix: &str) -> Result<()> {
    for o in dir.list(&format!("{PROGRESS_DIR}/{prefix}-")).await? {
        dir.delete(&o.path).await?;
    }
    dir.delete(PLAN_NAME).await?;
    dir.delete(CHECKPOINT_NAME).await
}

/// Removes what a run of the plan with file prefix `prefix` left in `dir` besides its
/// records: every data file of that prefix, in every location (a locality-routed file stored
/// just before the run was killed is named by no record), then its records.
pub async fn remove_run(dir: &Locations, prefix: &str) -> Result<()> {
    remove_run_files(dir, prefix).await?;
    remove_records(dir.storage().as_ref(), prefix).await
}

/// [`remove_run`] but for the directory's plan and checkpoint: the data files of the plan with
/// file prefix `prefix` in every location, and its done records.
pub async fn remove_run_files(dir: &Locations, prefix: &str) -> Result<()> {
    for location in dir.all() {
        for o in location.list(&data_files_prefix(prefix)).await? {
            location.delete(&o.path).await?;
        }
    }
    let storage = dir.storage();
    for o in storage.list(&format!("{PROGRESS_DIR}/{prefix}-")).await? {
        storage.delete(&o.path).await?;
    }
    Ok(())
}

/// Removes everything an unfinished backup left in its directory `dir`: the data files it
/// names (`files`, removed from every location), every data file of its plan's prefix (in
/// every location), its records and leases, and a file list or manifest checksum without a
/// manifest. Once
/// nothing else is left, an `ENCRYPTION-INFO` it created goes too. A finished backup (with a
/// manifest) is never touched.
pub async fn remove_unfinished(dir: &Locations, prefix: Option<&str>, files: &[String]) -> Result<()> {
    let storage = dir.storage().as_ref();
    if storage.size(MANIFEST_NAME).await.is_ok() {
        return Ok(());
    }
    for path in files {
        dir.delete_everywhere(path).await?;
    }
    if let Some(prefix) = prefix {
        remove_run(dir, prefix).await?;
    }
    for o in storage.list(&format!("{PROGRESS_DIR}/")).await? {
        storage.delete(&o.path).await?;
    }
    for name in [PLAN_NAME, CHECKPOINT_NAME, FILES_LIST_NAME, MANIFEST_CHECKSUM_NAME] {
        storage.delete(name).await?;
    }
    for o in storage.list(&format!("{LEASES_DIR}/")).await? {
        storage.delete(&o.path).await?;
    }
    let rest = storage.list("").await?;
    if rest.iter().all(|o| o.path == ENCRYPTION_INFO_NAME) {
        for o in rest {
            storage.delete(&o.path).await?;
        }
    }
    Ok(())
}

/// The subdirectory a collection's `LATEST` names: a dated subdirectory such as
/// `/2026/11/23-101500.12`. Anything else (garbage, or the content of another file `LATEST` is a
/// link to) is refused without being shown: it may be anything, a secret included.
pub async fn read_latest(root: &dyn ExternalStorage) -> Result<String> {
    let latest = root.get(LATEST_NAME).await.map_err(|e| match e {
        Error::NotFound { .. } => Error::not_found("backup collection (no LATEST file)", root.describe()),
        e => e,
    })?;
    let text = std::str::from_utf8(&latest).unwrap_or_default().trim();
    if !is_dated_subdir(text.strip_prefix('/').unwrap_or(text)) {
        return Err(Error::corrupt(
            format!("{}/{LATEST_NAME}", root.describe()),
            format!(
                "it does not name a backup ({} bytes that are not a path such as /2026/11/23-101500.12; \
                 its content is not shown)",
                latest.len()
            ),
        ));
    }
    Ok(text.to_string())
}

/// Why [`skipped_layers`] found a layer directory without a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// It holds a run's plan, legacy checkpoint, done records or lease: a backup running now, or
    /// one that was killed and is resumed by the next run of its statement, or removed by any
    /// later run once its lease is stale (see "Abandoned runs" in the module docs).
    Unfinished,
    /// It holds data files, a manifest checksum or a file list but no run records: it looks
    /// finished, and its `BACKUP_MANIFEST` was lost or deleted.
    ManifestMissing,
}

/// A layer directory below a backup that is not part of its chain, because it has no
/// `BACKUP_MANIFEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedLayer {
    /// The directory, relative to the full backup (`incrementals/2026/…`).
    pub dir: String,
    /// How many files it holds.
    pub files: usize,
    /// Why it has no manifest, as well as the files tell.
    pub reason: SkipReason,
}

/// The incremental layer directories below the backup directory `full` that have files but no
/// manifest, in name (time) order: what `finished_layers` leaves out of a chain, so that a
/// restore or `SHOW BACKUP` can say so. A directory with a plan, a legacy checkpoint or done
/// records is [`SkipReason::Unfinished`] (its run may still be going: a run writes its plan
/// first and removes its records only after its manifest); any other is
/// [`SkipReason::ManifestMissing`].
pub async fn skipped_layers(full: &dyn ExternalStorage) -> Result<Vec<SkippedLayer>> {
    let listed = full.list(&format!("{INCREMENTALS_DIR}/")).await?;
    let mut out: Vec<(String, usize, bool, bool)> = Vec::new();
    for o in &listed {
        let in_subdir = |sub: &'static str| o.path.split_once(&format!("/{sub}/")).map(|(dir, _)| (dir, sub));
        let (dir, name) = match in_subdir(DATA_DIR)
            .or_else(|| in_subdir(PROGRESS_DIR))
            .or_else(|| in_subdir(LEASES_DIR))
        {
            Some(found) => found,
            None => match o.path.rsplit_once('/') {
                Some((dir, name)) if LAYER_FILES.contains(&name) || name == PLAN_NAME || name == CHECKPOINT_NAME => {
                    (dir, name)
                }
                _ => continue,
            },
        };
        let i = match out.iter().position(|(d, ..)| d == dir) {
            Some(i) => i,
            None => {
                out.push((dir.to_string(), 0, false, false));
                out.len() - 1
            }
        };
        let entry = &mut out[i];
        entry.1 += 1;
        entry.2 |= name == MANIFEST_NAME;
        entry.3 |= name == PLAN_NAME || name == CHECKPOINT_NAME || name == PROGRESS_DIR || name == LEASES_DIR;
    }
    out.sort();
    Ok(out
        .into_iter()
        .filter(|(_, _, manifest, _)| !manifest)
        .map(|(dir, files, _, run)| SkippedLayer {
            dir,
            files,
            reason: if run { SkipReason::Unfinished } else { SkipReason::ManifestMissing },
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{subdir, MemoryStorage};
    use bytes::Bytes;
    use futures::executor::block_on;
    use std::sync::Arc;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn latest_names_a_dated_subdirectory_and_never_shows_anything_else() {
        block_on(async {
            let root = MemoryStorage::new("l");
            for good in ["/2026/11/23-101500.12", "2026/11/23-101500.12\n"] {
                root.put(LATEST_NAME, Bytes::from(good)).await.unwrap();
                assert_eq!(read_latest(&root).await.unwrap(), good.trim());
            }
            // Garbage, or what a `LATEST` linked to another file (a key, /etc/shadow) would hold.
            for bad in ["hunter2-Zq9", "/2026/11/23-101500.12/../../Zq9", "AWS_SECRET_ACCESS_KEY=Zq9\n", "\u{0}Zq9"] {
                root.put(LATEST_NAME, Bytes::from(bad)).await.unwrap();
                let e = read_latest(&root).await.unwrap_err();
                let shown = format!("{e} {e:?}");
                assert!(!shown.contains("Zq9") && shown.contains("LATEST"), "{shown}");
            }
        });
    }

    #[test]
    fn dated_subdirs() {
        let ts = Timestamp::parse_as_of("2026-11-23 10:15:00.127", Timestamp::ZERO).unwrap();
        assert_eq!(dated_subdir(ts), "2026/11/23-101500.12");
        assert!(is_dated_subdir("2026/11/23-101500.12"));
        assert!(!is_dated_subdir("2026/11/23-101500.1"));
        assert!(!is_dated_subdir("incrementals/2026/11/23-101500.12"));
        assert_eq!(layer_dir(ts.next()), "incrementals/2026/11/23-101500.127000000-1");
    }

    #[test]
    fn discovery_and_cleanup() {
        block_on(async {
            let s = MemoryStorage::new("c");
            let put = |p: &str| {
                let s = s.clone();
                let p = p.to_string();
                async move { s.put(&p, Bytes::from_static(b"x")).await.unwrap() }
            };
            put("2026/11/23-101500.00/BACKUP_MANIFEST").await;
            put("2026/11/23-101500.00/incrementals/2026/11/23-111500.000000000-0/BACKUP_MANIFEST").await;
            put("2026/11/23-101500.00/incrementals/2026/11/23-121500.000000000-0/data/a-000000-0000.sst").await;
            put("2026/11/24-101500.00/BACKUP-PLAN").await;
            put("2026/11/24-101500.00/ENCRYPTION-INFO").await;
            put("2026/11/24-101500.00/progress/ab-000000").await;
            put("2026/11/24-101500.00/data/ab-000000-0000.sst").await;
            put("2026/11/24-101500.00/data/cd-000000-0000.sst").await;
            assert_eq!(full_backups(&s).await.unwrap(), ["2026/11/23-101500.00"]);
            assert_eq!(full_backup_dirs(&s).await.unwrap(), ["2026/11/23-101500.00", "2026/11/24-101500.00"]);
            assert_eq!(unfinished_dirs(&s, "").await.unwrap(), ["2026/11/24-101500.00"]);
            let full: Arc<dyn ExternalStorage> = Arc::new(s.clone());
            let full = subdir(&full, "2026/11/23-101500.00");
            assert_eq!(finished_layers(full.as_ref()).await.unwrap(), ["incrementals/2026/11/23-111500.000000000-0"]);
            assert_eq!(layer_dirs(full.as_ref()).await.unwrap().len(), 2);
            let running = "incrementals/2026/11/23-131500.000000000-0";
            put(&format!("2026/11/23-101500.00/{running}/BACKUP-PLAN")).await;
            put(&format!("2026/11/23-101500.00/{running}/data/b-000000-0000.sst")).await;
            put(&format!("2026/11/23-101500.00/{running}/progress/b-000000")).await;
            assert_eq!(
                skipped_layers(full.as_ref()).await.unwrap(),
                [
                    SkippedLayer {
                        dir: "incrementals/2026/11/23-121500.000000000-0".into(),
                        files: 1,
                        reason: SkipReason::ManifestMissing
                    },
                    SkippedLayer { dir: running.into(), files: 3, reason: SkipReason::Unfinished },
                ]
            );
            for name in ["BACKUP-PLAN", "data/b-000000-0000.sst", "progress/b-000000"] {
                s.delete(&format!("2026/11/23-101500.00/{running}/{name}")).await.unwrap();
            }
            // Cleanup keeps another plan's file and so the ENCRYPTION-INFO.
            let root: Arc<dyn ExternalStorage> = Arc::new(s.clone());
            let dir = Locations::single(subdir(&root, "2026/11/24-101500.00"));
            remove_unfinished(&dir, Some("ab"), &[]).await.unwrap();
            let dir = dir.storage();
            let left: Vec<String> = dir.list("").await.unwrap().into_iter().map(|o| o.path).collect();
            assert_eq!(left, ["ENCRYPTION-INFO", "data/cd-000000-0000.sst"]);
            remove_unfinished(&Locations::single(dir.clone()), None, &["data/cd-000000-0000.sst".into()])
                .await
                .unwrap();
            assert!(dir.list("").await.unwrap().is_empty());
            // A finished backup is never touched.
            remove_unfinished(&Locations::single(full.clone()), None, &["BACKUP_MANIFEST".into()]).await.unwrap();
            assert!(full.size(MANIFEST_NAME).await.is_ok());
        });
    }
}
