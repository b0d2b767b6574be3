//! Forgetting old backups of a collection by a retention policy, in restic's vocabulary
//! (`keep_last`, `keep_hourly`, `keep_daily`, `keep_weekly`, `keep_monthly`, `keep_yearly`,
//! `keep_within`), never breaking a chain.
//!
//! ```text
//!   collection ──list──▶ chains (full + layers, times from their directory names: no key needed)
//!              ──plan_forget(policy, now)──▶ ForgetPlan: each backup kept (and why) or removed
//!              ──apply_forget──▶ removed manifests first (newest first), then their files
//! ```
//!
//! A backup is one layer: a full backup or an incremental. The policy picks backups; every
//! kept incremental keeps its full backup and every layer between (a restore reads them all).
//! Only whole layers after a chain's last kept one, and whole chains with nothing kept, go. A
//! chain with an unfinished layer (a backup running into it, or killed) is kept whole.
//!
//! Removal deletes the removed layers' manifests first, newest layer first, so each stops being
//! a backup before any of its files goes, and a chain never has a hole; then their files. A
//! run interrupted anywhere leaves every kept backup whole, and what it left half removed has no
//! manifest: the next plan lists it as a leftover and removes it.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::layout::{
    self, full_backup_dirs, full_backups, skipped_layers, SkipReason, INCREMENTALS_DIR, LATEST_NAME, MANIFEST_NAME,
    PLAN_NAME, PROGRESS_DIR,
};
use crate::result::QueryResult;
pub use crate::retention::RetentionPolicy;
use crate::storage::{subdir, ExternalStorage, ExternalStorageExt};
use crate::timestamp::{Civil, Timestamp};

/// One backup (layer) of a collection as forget sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgetEntry {
    /// Its directory in the collection: `2026/11/23-101500.00` for a full backup,
    /// `2026/11/23-101500.00/incrementals/…` for an incremental.
    pub dir: String,
    /// When it ends (from its directory's name).
    pub end_time: Timestamp,
    /// Whether it is a full backup.
    pub is_full: bool,
    /// Why it is kept (empty: it is removed).
    pub reasons: Vec<String>,
}

impl ForgetEntry {
    /// Whether the plan keeps it.
    pub fn kept(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// One chain of a collection: a full backup's directory and its finished layers, each with its
/// end time, oldest first, and whether it has an unfinished layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainListing {
    /// The full backup's directory, e.g. `2026/11/23-101500.00`.
    pub full: String,
    /// `(directory relative to the collection, end time)` of each layer, the full backup first.
    pub layers: Vec<(String, Timestamp)>,
    /// Whether a layer below it has files and no manifest because a backup is running into it
    /// (or was killed): such a chain is kept whole.
    pub busy: bool,
}

/// What [`plan_forget`] decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForgetPlan {
    /// Every backup, oldest first, kept (with its reasons) or removed.
    pub entries: Vec<ForgetEntry>,
    /// Directories without a manifest and without a run's records, left by an interrupted
    /// forget (or whose manifest was lost): not backups; removed with the plan. A full backup's
    /// directory newer than every finished full backup is never one (a backup may be starting
    /// there). Do not run forget while a compaction writes into the same collection.
    pub leftovers: Vec<String>,
    /// What `LATEST` should name afterwards, when the backup it names now is removed.
    pub new_latest: Option<String>,
}

impl ForgetPlan {
    /// The backups removed, oldest first.
    pub fn removed(&self) -> impl Iterator<Item = &ForgetEntry> {
        self.entries.iter().filter(|e| !e.kept())
    }
    /// The backups kept, oldest first.
    pub fn kept(&self) -> impl Iterator<Item = &ForgetEntry> {
        self.entries.iter().filter(|e| e.kept())
    }
    /// One row per backup and leftover: `path`, `type`, `end_time`, `action`, `reasons`.
    pub fn to_result(&self) -> QueryResult {
        let mut r = QueryResult::new(&["path", "type", "end_time", "action", "reasons"]);
        for e in &self.entries {
            r.push(vec![
                format!("/{}", e.dir).into(),
                if e.is_full { "full" } else { "incremental" }.into(),
                e.end_time.to_string().into(),
                if e.kept() { "keep" } else { "remove" }.into(),
                e.reasons.join(", ").into(),
            ]);
        }
        for dir in &self.leftovers {
            r.push(vec![
                format!("/{dir}").into(),
                "leftover".into(),
                "".into(),
                "remove".into(),
                "no manifest: left by an interrupted forget, or its manifest was lost".into(),
            ]);
        }
        r
    }
}

/// The end time a full backup's directory name (`2026/11/23-101500.00`) or an incremental
/// layer's (`incrementals/2026/11/23-101500.123456789-0`) says.
pub fn time_of_dir(dir: &str) -> Option<Timestamp> {
    let name = dir.strip_prefix(&format!("{INCREMENTALS_DIR}/")).unwrap_or(dir);
    let num = |s: &str| s.parse::<u32>().ok();
    let (date, rest) = name.split_at_checked(10)?;
    let year = date.get(0..4)?.parse::<i64>().ok()?;
    let (month, day) = (num(date.get(5..7)?)?, num(date.get(8..10)?)?);
    let rest = rest.strip_prefix('-')?;
    let (hms, frac) = rest.split_once('.')?;
    if hms.len() != 6 {
        return None;
    }
    let (hour, minute, second) = (num(&hms[0..2])?, num(&hms[2..4])?, num(&hms[4..6])?);
    let (nanos, logical) = match frac.split_once('-') {
        Some((n, l)) if n.len() == 9 => (num(n)?, num(l)?),
        None if frac.len() == 2 => (num(frac)? * 10_000_000, 0),
        _ => return None,
    };
    let civil = Civil { year, month, day, hour, minute, second, nanos };
    Some(Timestamp::new(civil.to_nanos()?, logical))
}

/// The chains of the collection `root`, oldest first, with their layers' times.
pub async fn list_chains(root: &Arc<dyn ExternalStorage>) -> Result<Vec<ChainListing>> {
    let mut out = Vec::new();
    for full in full_backups(root.as_ref()).await? {
        let dir = subdir(root, &full);
        let full_time = time_of_dir(&full)
            .ok_or_else(|| Error::corrupt(format!("{}/{full}", root.describe()), "is not a dated backup directory"))?;
        let mut layers = vec![(full.clone(), full_time)];
        for layer in layout::finished_layers(dir.as_ref()).await? {
            let t = time_of_dir(&layer).ok_or_else(|| {
                Error::corrupt(format!("{}/{full}/{layer}", root.describe()), "is not a dated layer directory")
            })?;
            layers.push((format!("{full}/{layer}"), t));
        }
        layers[1..].sort_by_key(|(_, t)| *t);
        let busy = skipped_layers(dir.as_ref()).await?.iter().any(|s| s.reason == SkipReason::Unfinished)
            || dir.size(PLAN_NAME).await.is_ok();
        out.push(ChainListing { full, layers, busy });
    }
    Ok(out)
}

/// The dated directory `LATEST` of the collection `root` names (without its leading `/`).
pub async fn latest(root: &dyn ExternalStorage) -> Result<String> {
    Ok(layout::read_latest(root).await?.trim_matches('/').to_string())
}

/// The period a time falls in, per rule: `(rule name, key)`.
fn bucket(rule: usize, t: Timestamp) -> i64 {
    let c = Civil::from_nanos(t.wall);
    match rule {
        0 => i64::MAX, // keep_last: every backup its own period (see below)
        1 => (t.wall / 3_600_000_000_000) as i64,
        2 => (t.wall / 86_400_000_000_000) as i64,
        // 1970-01-01 was a Thursday: shifting by 3 days makes weeks start on Monday.
        3 => ((t.wall / 86_400_000_000_000) as i64 + 3).div_euclid(7),
        4 => c.year * 12 + c.month as i64,
        _ => c.year,
    }
}

const RULES: [&str; 6] = ["last", "hourly", "daily", "weekly", "monthly", "yearly"];

/// Decides, without IO, which backups of `chains` the policy keeps at `now`.
pub fn plan_forget(chains: &[ChainListing], policy: &RetentionPolicy, now: Timestamp) -> Result<ForgetPlan> {
    if policy.is_empty() {
        return Err(Error::invalid("forget", "no policy given: say what to keep (keep_last, keep_daily, …)"));
    }
    // Every backup, newest first: (chain, layer, time).
    let mut all: Vec<(usize, usize, Timestamp)> = chains
        .iter()
        .enumerate()
        .flat_map(|(c, chain)| chain.layers.iter().enumerate().map(move |(l, (_, t))| (c, l, *t)))
        .collect();
    // Newest first. A full backup's directory gives its time to the hundredth of a second only:
    // within one hundredth a full backup counts as newer than an incremental (a compacted
    // chain's full backup ends when the chain's last layer does, and stands for it).
    let hundredth = |t: Timestamp| t.wall / 10_000_000;
    all.sort_by_key(|&(c, l, t)| std::cmp::Reverse((hundredth(t), l == 0, t, c, l)));
    let mut reasons: BTreeMap<(usize, usize), Vec<String>> = BTreeMap::new();
    let counts = [
        policy.keep_last,
        policy.keep_hourly,
        policy.keep_daily,
        policy.keep_weekly,
        policy.keep_monthly,
        policy.keep_yearly,
    ];
    let mut left = counts;
    let mut last_bucket: [Option<i64>; 6] = [None; 6];
    for (i, &(c, l, t)) in all.iter().enumerate() {
        for rule in 0..RULES.len() {
            let key = if rule == 0 { i as i64 } else { bucket(rule, t) };
            if left[rule] > 0 && last_bucket[rule] != Some(key) {
                last_bucket[rule] = Some(key);
                left[rule] -= 1;
                reasons.entry((c, l)).or_default().push(format!("{} {}", RULES[rule], counts[rule] - left[rule]));
            }
        }
        if let Some(within) = policy.keep_within {
            if t.wall.saturating_add(within) >= now.wall {
                reasons.entry((c, l)).or_default().push("within".into());
            }
        }
    }
    let mut plan = ForgetPlan::default();
    for (c, chain) in chains.iter().enumerate() {
        let last_kept = (0..chain.layers.len()).rev().find(|l| reasons.contains_key(&(c, *l)));
        for (l, (dir, t)) in chain.layers.iter().enumerate() {
            let mut why = reasons.remove(&(c, l)).unwrap_or_default();
            if chain.busy {
                why.push("its chain has an unfinished backup".into());
            } else if let Some(k) = last_kept.filter(|k| l < *k) {
                let _ = k;
                why.push(format!("needed by {}", chain.layers[last_kept.unwrap()].0));
            }
            plan.entries.push(ForgetEntry { dir: dir.clone(), end_time: *t, is_full: l == 0, reasons: why });
        }
    }
    if !plan.entries.is_empty() && plan.kept().next().is_none() {
        return Err(Error::Precondition(format!(
            "the policy keeps none of the {} backups (none is within keep_within of {now}): refusing to remove them all",
            plan.entries.len()
        )));
    }
    Ok(plan)
}

/// Plans forgetting backups of the collection `root` by `policy` at `now`: lists its chains
/// (no key needed), decides, and finds leftovers of an interrupted run and where `LATEST` must
/// point afterwards.
pub async fn forget_plan(
    root: &Arc<dyn ExternalStorage>,
    policy: &RetentionPolicy,
    now: Timestamp,
) -> Result<ForgetPlan> {
    let chains = list_chains(root).await?;
    let mut plan = plan_forget(&chains, policy, now)?;
    // Leftovers: full backup directories without a manifest and without a run's records, and
    // layers of a chain with files and no manifest and no run's records.
    let finished: Vec<&str> = chains.iter().map(|c| c.full.as_str()).collect();
    for dir in full_backup_dirs(root.as_ref()).await? {
        let d = subdir(root, &dir);
        if finished.contains(&dir.as_str()) {
            for s in skipped_layers(d.as_ref()).await? {
                if s.reason == SkipReason::ManifestMissing {
                    plan.leftovers.push(format!("{dir}/{}", s.dir));
                }
            }
            continue;
        }
        // A new full backup writes its ENCRYPTION-INFO before its plan, into the directory of
        // its end time: newer than every finished backup. Only older directories are leftovers.
        let newest = finished.iter().max().copied().unwrap_or("");
        let running = dir.as_str() > newest
            || d.size(PLAN_NAME).await.is_ok()
            || d.size(layout::CHECKPOINT_NAME).await.is_ok()
            || !d.list(&format!("{PROGRESS_DIR}/")).await?.is_empty()
            || !d.list(&format!("{}/", layout::LEASES_DIR)).await?.is_empty();
        if !running {
            plan.leftovers.push(dir);
        }
    }
    if let Ok(latest) = layout::read_latest(root.as_ref()).await {
        let latest = latest.trim_start_matches('/').to_string();
        if plan.entries.iter().any(|e| e.is_full && e.dir == latest && !e.kept()) {
            let newest = plan.kept().filter(|e| e.is_full).map(|e| e.dir.clone()).last();
            plan.new_latest = Some(newest.unwrap_or_default());
        }
    }
    Ok(plan)
}

/// Carries out a plan on the collection `root`: points `LATEST` at a kept backup if it named a
/// removed one; deletes every removed layer's manifest, newest first (each then stops being a
/// backup); then every file of the removed layers and of the leftovers. Never touches a kept
/// layer's files. Returns how many files were deleted.
pub async fn apply_forget(root: &Arc<dyn ExternalStorage>, plan: &ForgetPlan) -> Result<usize> {
    let removed: Vec<&ForgetEntry> = plan.removed().collect();
    let kept: Vec<&str> = plan.kept().map(|e| e.dir.as_str()).collect();
    for e in &removed {
        if kept.iter().any(|k| k.starts_with(&format!("{}/", e.dir)) || *k == e.dir) {
            return Err(Error::invalid(
                "forget",
                format!("the plan removes {} but keeps a layer inside it: plans are made by forget_plan", e.dir),
            ));
        }
    }
    match plan.new_latest.as_deref() {
        Some("") => root.delete(LATEST_NAME).await?,
        Some(dir) => root.put(LATEST_NAME, format!("/{dir}").into_bytes().into()).await?,
        None => {}
    }
    let mut deleted = 0;
    // Manifests first, newest first: incrementals before the full backup they extend.
    let mut by_time = removed.clone();
    by_time.sort_by(|a, b| b.end_time.cmp(&a.end_time).then(b.dir.len().cmp(&a.dir.len())));
    for e in &by_time {
        root.delete(&format!("{}/{MANIFEST_NAME}", e.dir)).await?;
        deleted += 1;
    }
    // Each file belongs to the deepest layer directory holding it: only removed layers' and
    // leftovers' files go, never a kept layer's (nested below a removed full backup or not).
    let gone: Vec<&str> =
        by_time.iter().map(|e| e.dir.as_str()).chain(plan.leftovers.iter().map(String::as_str)).collect();
    let owner = |path: &str| {
        kept.iter()
            .map(|k| (*k, true))
            .chain(gone.iter().map(|g| (*g, false)))
            .filter(|(d, _)| path.starts_with(&format!("{d}/")))
            .max_by_key(|(d, _)| d.len())
            .map(|(_, kept)| kept)
    };
    for dir in &gone {
        for o in root.list(&format!("{dir}/")).await? {
            if owner(&o.path) == Some(false) {
                root.delete(&o.path).await?;
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}

/// Plans by `policy` at `now` and, when `prune`, carries the plan out: the library call behind
/// `strata forget` and the schedule option.
pub async fn forget(
    root: &Arc<dyn ExternalStorage>,
    policy: &RetentionPolicy,
    now: Timestamp,
    prune: bool,
) -> Result<ForgetPlan> {
    let plan = forget_plan(root, policy, now).await?;
    if prune {
        apply_forget(root, &plan).await?;
    }
    Ok(plan)
}
