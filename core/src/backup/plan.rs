//! Planning a backup, as pure data: targets become spans, spans become export tasks, tasks
//! become work units ([`split_units`] asks the source where to cut), and the plan gets an id that
//! hashes its content. [`crate::backup::run`] executes a plan.
//!
//! A full backup exports each span from time zero. An incremental layer extends a chain: it
//! exports what changed in `(previous end, end]` — tombstones included, so deletions restore —
//! and exports spans that are new since the previous layer (tables created since) from zero.
//! With revision history every version in the window is kept, and so is every descriptor change.

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, DescId, Descriptor, TableDescriptor};
use crate::error::{Error, Result};
use crate::format::manifest::{sha256, BackupScope, DescriptorRevision, Manifest};
use crate::keys;
use crate::kv::{KvSource, MvccFilter, ScanRequest, WorkUnit};
use crate::span::{Span, SpanSet};
use crate::sql::{TableName, Targets};
use crate::timestamp::Timestamp;

/// One export: the versions of `span` in `(start, end]` that `filter` selects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportTask {
    /// The keys.
    pub span: Span,
    /// Exclusive start of the time window.
    pub start: Timestamp,
    /// Inclusive end of the time window.
    pub end: Timestamp,
    /// Latest version per key, or every version.
    pub filter: MvccFilter,
    /// Whether deletions are left out (a state exported from time zero needs none).
    pub drop_tombstones: bool,
}

/// One work unit of a plan: a piece of one task's span, with the locality its files go to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedUnit {
    /// Index of its task in [`BackupPlan::tasks`].
    pub task: u32,
    /// The keys and the locality of its data (from [`KvSource::split`]).
    pub unit: WorkUnit,
}

/// What a backup will do, as plain data: computed from the catalog, printable, serializable,
/// self-contained (its work units, where each unit's files go, which key encrypts them), and
/// executable by [`crate::run_backup`] on any machine. Its [`BackupPlan::id`] hashes its
/// content, so two runs of one plan (a resumed run, or several runners) agree on what they do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupPlan {
    /// The SHA-256 of the plan's content (everything but the id, the statement and the
    /// request), hex: its identity.
    pub id: String,
    /// What asked for it, as an opaque key (see [`BackupSpec::with_request`]): a re-run of the
    /// same request finds this plan's unfinished run and resumes it.
    pub request: String,
    /// What was targeted.
    pub scope: BackupScope,
    /// Whether the whole cluster (system span included) is backed up.
    pub is_full_cluster: bool,
    /// Exclusive start of the time window (zero for a full backup).
    pub start_time: Timestamp,
    /// Inclusive end: the time the backup is as of.
    pub end_time: Timestamp,
    /// Latest values only, or every revision.
    pub mvcc_filter: MvccFilter,
    /// Earliest restorable time of the layer (see [`Manifest::revision_start_time`]).
    pub revision_start_time: Timestamp,
    /// The spans the layer covers.
    pub spans: Vec<Span>,
    /// Spans exported from time zero because they are new in this layer.
    pub introduced_spans: Vec<Span>,
    /// The exports, in order.
    pub tasks: Vec<ExportTask>,
    /// The work units, in export order: each task's span cut where the source said.
    pub units: Vec<PlannedUnit>,
    /// The check value of the data key that encrypts the files (see
    /// [`crate::DataKey::check_value`]), or `None` for a plain backup.
    pub key_check: Option<[u8; 16]>,
    /// Descriptors of the targets and their databases at `end_time`.
    pub descriptors: Vec<Descriptor>,
    /// Descriptor changes in the window (with revision history).
    pub descriptor_changes: Vec<DescriptorRevision>,
    /// Earlier layers this one extends, oldest first.
    pub dependencies: Vec<String>,
    /// The statement, secrets redacted, for people (recorded in the manifest; not part of the
    /// plan's identity).
    pub statement: String,
}

/// The parts of a plan its id hashes.
#[derive(Serialize)]
struct Identity<'a> {
    scope: &'a BackupScope,
    is_full_cluster: bool,
    start_time: Timestamp,
    end_time: Timestamp,
    mvcc_filter: MvccFilter,
    revision_start_time: Timestamp,
    spans: &'a [Span],
    introduced_spans: &'a [Span],
    tasks: &'a [ExportTask],
    units: &'a [PlannedUnit],
    key_check: Option<[u8; 16]>,
    descriptors: &'a [Descriptor],
    descriptor_changes: &'a [DescriptorRevision],
    dependencies: &'a [String],
}

impl BackupPlan {
    /// The plan's id for its current content.
    pub fn content_id(&self) -> String {
        let identity = Identity {
            scope: &self.scope,
            is_full_cluster: self.is_full_cluster,
            start_time: self.start_time,
            end_time: self.end_time,
            mvcc_filter: self.mvcc_filter,
            revision_start_time: self.revision_start_time,
            spans: &self.spans,
            introduced_spans: &self.introduced_spans,
            tasks: &self.tasks,
            units: &self.units,
            key_check: self.key_check,
            descriptors: &self.descriptors,
            descriptor_changes: &self.descriptor_changes,
            dependencies: &self.dependencies,
        };
        hex::encode(sha256(&postcard::to_allocvec(&identity).expect("plans always serialize")))
    }

    fn sealed(mut self) -> BackupPlan {
        self.id = self.content_id();
        self
    }

    /// Whether the id matches the content (a plan read back from storage is checked with it).
    pub fn is_intact(&self) -> bool {
        self.id == self.content_id()
    }

    /// The prefix of the names of the plan's data files and done records: the first 8 hex
    /// digits of its id, so two plans' runs in one directory never name a file alike.
    pub fn file_prefix(&self) -> &str {
        &self.id[..8]
    }

    /// The same plan with its tasks cut into `units` (see [`split_units`]).
    pub fn with_units(mut self, units: Vec<PlannedUnit>) -> BackupPlan {
        self.units = units;
        self.sealed()
    }

    /// The same plan, its files encrypted with the data key whose check value is `key_check`
    /// (`None`: plain).
    pub fn with_key_check(mut self, key_check: Option<[u8; 16]>) -> BackupPlan {
        self.key_check = key_check;
        self.sealed()
    }
}

/// Cuts each task of `plan` into the work units the source suggests ([`KvSource::split`]):
/// the last step of planning, the one that asks the source.
pub async fn split_units(source: &dyn KvSource, plan: BackupPlan) -> Result<BackupPlan> {
    let mut units = Vec::new();
    let mut cut: Vec<(Span, Vec<WorkUnit>)> = Vec::new();
    for (i, task) in plan.tasks.iter().enumerate() {
        let pieces = match cut.iter().find(|(s, _)| *s == task.span) {
            Some((_, pieces)) => pieces.clone(),
            None => {
                let pieces = source.split(&task.span).await?;
                cut.push((task.span.clone(), pieces.clone()));
                pieces
            }
        };
        units.extend(pieces.into_iter().map(|unit| PlannedUnit { task: i as u32, unit }));
    }
    Ok(plan.with_units(units))
}

/// What a backup is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupSpec {
    /// What to back up.
    pub targets: Targets,
    /// The time the backup is as of.
    pub end_time: Timestamp,
    /// Whether to keep every revision (`WITH revision_history`).
    pub revision_history: bool,
    /// The statement, secrets redacted (recorded in the manifest).
    pub statement: String,
    /// What asked for the backup, as an opaque key (see [`BackupPlan::request`]).
    pub request: String,
}

impl BackupSpec {
    /// A backup of `targets` as of `end_time`, latest values only.
    pub fn new(targets: Targets, end_time: Timestamp) -> BackupSpec {
        BackupSpec { targets, end_time, revision_history: false, statement: String::new(), request: String::new() }
    }
    /// Sets the key of the request (a hash of the statement's structured parts, say), by which
    /// a re-run finds an unfinished run of the same request.
    pub fn with_request(mut self, request: impl Into<String>) -> Self {
        self.request = request.into();
        self
    }
    /// Sets revision history.
    pub fn with_revision_history(mut self, on: bool) -> Self {
        self.revision_history = on;
        self
    }
    /// Sets the recorded statement.
    pub fn with_statement(mut self, statement: impl Into<String>) -> Self {
        self.statement = statement.into();
        self
    }
}

/// Resolves targets against the catalog at the backup's end time.
pub fn resolve_targets(catalog: &Catalog, targets: &Targets) -> Result<(BackupScope, Vec<Descriptor>)> {
    match targets {
        Targets::Cluster => Ok((BackupScope::Cluster, catalog.descriptors())),
        Targets::Databases(names) => {
            let mut descs = Vec::new();
            let mut ids = Vec::new();
            for name in names {
                let db = catalog.require_database(name)?;
                if ids.contains(&db.id) {
                    continue;
                }
                ids.push(db.id);
                descs.push(Descriptor::Database(db.clone()));
                descs.extend(catalog.tables_in(db.id).cloned().map(Descriptor::Table));
            }
            Ok((BackupScope::Databases(ids), descs))
        }
        Targets::Tables(names) => {
            // A `db.*` target is held by its database's id: the tables it covers are those the
            // database has at each backup's time.
            let mut scope_ids: Vec<DescId> = Vec::new();
            let mut table_ids: Vec<DescId> = Vec::new();
            let mut db_ids: Vec<DescId> = Vec::new();
            for name in names {
                let (id, tables) = match (&name.database, name.table.as_str()) {
                    (Some(db), "*") => {
                        let db = catalog.require_database(db)?;
                        db_ids.push(db.id);
                        (db.id, catalog.tables_in(db.id).map(|t| t.id).collect())
                    }
                    _ => {
                        let ids = expand_table_name(catalog, name)?;
                        (ids[0], ids)
                    }
                };
                if !scope_ids.contains(&id) {
                    scope_ids.push(id);
                }
                for t in tables {
                    if !table_ids.contains(&t) {
                        table_ids.push(t);
                    }
                }
            }
            db_ids.extend(table_ids.iter().map(|t| catalog.tables[t].parent_id));
            db_ids.sort_unstable();
            db_ids.dedup();
            let descs = db_ids
                .iter()
                .filter_map(|id| catalog.databases.get(id).cloned().map(Descriptor::Database))
                .chain(table_ids.iter().map(|id| Descriptor::Table(catalog.tables[id].clone())))
                .collect();
            Ok((BackupScope::Tables(scope_ids), descs))
        }
    }
}

/// The scope strata before `db.*` targets were held by their database gave `targets`: each
/// `db.*` listed as its tables. An incremental extending such a chain keeps its form.
fn listed_tables_scope(catalog: &Catalog, targets: &Targets) -> Option<BackupScope> {
    let Targets::Tables(names) = targets else { return None };
    let mut ids: Vec<DescId> = Vec::new();
    for name in names {
        for t in expand_table_name(catalog, name).ok()? {
            if !ids.contains(&t) {
                ids.push(t);
            }
        }
    }
    Some(BackupScope::Tables(ids))
}

/// Whether `scope` covers table `t` (by its id, its database's id for `DATABASE` and `db.*`).
fn scope_has_table(scope: &BackupScope, t: &TableDescriptor) -> bool {
    match scope {
        BackupScope::Cluster => true,
        BackupScope::Databases(ids) => ids.contains(&t.parent_id),
        BackupScope::Tables(ids) => ids.contains(&t.id) || ids.contains(&t.parent_id),
    }
}

/// The ids of the tables a `TABLE` name denotes (`db.t`, or every table for `db.*`).
pub fn expand_table_name(catalog: &Catalog, name: &TableName) -> Result<Vec<DescId>> {
    let Some(db) = &name.database else {
        return Err(Error::invalid(
            "table name",
            format!("'{}' must be qualified with its database, as db.{}", name.table, name.table),
        ));
    };
    if name.table == "*" {
        let db_desc = catalog.require_database(db)?;
        let ids: Vec<DescId> = catalog.tables_in(db_desc.id).map(|t| t.id).collect();
        if ids.is_empty() {
            return Err(Error::not_found("table", format!("{db}.* (database {db} has no tables)")));
        }
        return Ok(ids);
    }
    Ok(vec![catalog.require_table(db, &name.table)?.id])
}

/// The spans of a set of descriptors: one per table (adjacent tables are not merged, so each
/// data file belongs to one table), plus the system span for a full-cluster backup.
fn spans_of(descriptors: &[Descriptor], is_full_cluster: bool) -> Vec<Span> {
    let mut spans: Vec<Span> = descriptors
        .iter()
        .filter_map(|d| match d {
            Descriptor::Table(t) => Some(t.span()),
            Descriptor::Database(_) => None,
        })
        .collect();
    if is_full_cluster {
        spans.push(keys::system_span());
    }
    spans.sort();
    spans.dedup();
    spans
}

/// The tasks exporting `span`'s state as of `base` from time zero, then (with revision history)
/// every version in `(base, end]`.
fn tasks_from_zero(span: &Span, base: Timestamp, end: Timestamp, filter: MvccFilter) -> Vec<ExportTask> {
    let task =
        |start, end, filter, drop_tombstones| ExportTask { span: span.clone(), start, end, filter, drop_tombstones };
    match filter {
        MvccFilter::Latest => vec![task(Timestamp::ZERO, end, MvccFilter::Latest, true)],
        MvccFilter::AllRevisions if base.is_zero() => vec![task(Timestamp::ZERO, end, MvccFilter::AllRevisions, false)],
        MvccFilter::AllRevisions => {
            vec![
                task(Timestamp::ZERO, base, MvccFilter::Latest, true),
                task(base, end, MvccFilter::AllRevisions, false),
            ]
        }
    }
}

/// Keeps the descriptor revisions that belong to the scope: its databases and tables, and the
/// deletions of descriptors that were in it (`known` holds ids already in scope).
fn revisions_in_scope(
    scope: &BackupScope,
    history: &[DescriptorRevision],
    known: &[Descriptor],
) -> Vec<DescriptorRevision> {
    let mut ids: Vec<DescId> = known.iter().map(Descriptor::id).collect();
    // The databases of the scope's tables, in any of their versions.
    let table_parents: Vec<DescId> = known
        .iter()
        .chain(history.iter().filter_map(|r| r.descriptor.as_ref()))
        .filter_map(|d| match (d, scope) {
            (Descriptor::Table(t), BackupScope::Tables(_)) if scope_has_table(scope, t) => Some(t.parent_id),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for r in history {
        let keep = match (&r.descriptor, scope) {
            (_, BackupScope::Cluster) => true,
            (Some(Descriptor::Database(d)), BackupScope::Databases(dbs)) => dbs.contains(&d.id),
            (Some(Descriptor::Table(t)), BackupScope::Databases(dbs)) => dbs.contains(&t.parent_id),
            (Some(Descriptor::Table(t)), BackupScope::Tables(_)) => scope_has_table(scope, t),
            (Some(Descriptor::Database(d)), BackupScope::Tables(ids)) => {
                ids.contains(&d.id) || table_parents.contains(&d.id)
            }
            (None, _) => ids.contains(&r.id),
        };
        if keep {
            ids.push(r.id);
            out.push(r.clone());
        }
    }
    out
}

/// Plans a backup. Without `previous` it is a full backup; with it, an incremental layer
/// extending the chain whose newest layer is `previous` (checked: same targets, same
/// revision-history setting, a later end time).
///
/// `catalog` is the source's catalog at `spec.end_time`. `history` holds the descriptor
/// revisions of the window, for revision history (see [`read_descriptor_history`]).
/// `gc_threshold` is the source's GC threshold: a full backup with revision history can restore
/// only from there on.
pub fn plan_backup(
    catalog: &Catalog,
    spec: &BackupSpec,
    previous: Option<&Manifest>,
    history: &[DescriptorRevision],
    gc_threshold: Timestamp,
    dependencies: Vec<String>,
) -> Result<BackupPlan> {
    let (mut scope, descriptors) = resolve_targets(catalog, &spec.targets)?;
    if let Some(prev) = previous.filter(|p| p.scope != scope) {
        // A chain of `db.*` targets begun by an older strata lists their tables one by one.
        if let Some(listed) = listed_tables_scope(catalog, &spec.targets).filter(|l| *l == prev.scope) {
            scope = listed;
        }
    }
    let is_full_cluster = scope == BackupScope::Cluster;
    let filter = if spec.revision_history { MvccFilter::AllRevisions } else { MvccFilter::Latest };
    let known = previous.map(|p| p.descriptors.clone()).unwrap_or_default();
    let descriptor_changes =
        if spec.revision_history { revisions_in_scope(&scope, history, &known) } else { Vec::new() };
    // With revision history, every table in scope at any moment of the window is covered — those
    // alive at its start, created in it, or dropped before its end — so that a restore to any time
    // inside the window finds their data.
    let mut covered: Vec<Descriptor> = descriptors.clone();
    if spec.revision_history {
        covered.extend(known.iter().cloned());
        covered.extend(descriptor_changes.iter().filter_map(|r| r.descriptor.clone()));
    }
    let spans = spans_of(&covered, is_full_cluster);
    let end = spec.end_time;
    let mut introduced = Vec::new();
    let mut tasks = Vec::new();
    let (start, revision_start) = match previous {
        None => {
            let base = if spec.revision_history { gc_threshold } else { end };
            for span in &spans {
                tasks.extend(tasks_from_zero(span, base, end, filter));
            }
            (Timestamp::ZERO, base)
        }
        Some(prev) => {
            check_extends(prev, &scope, catalog, filter, end)?;
            let start = prev.end_time;
            let covered = SpanSet::from_spans(prev.spans.iter().cloned());
            for span in &spans {
                if covered.covers(&SpanSet::from_spans([span.clone()])) {
                    tasks.push(ExportTask { span: span.clone(), start, end, filter, drop_tombstones: false });
                } else {
                    introduced.push(span.clone());
                    tasks.extend(tasks_from_zero(span, start, end, filter));
                }
            }
            (start, if spec.revision_history { start } else { end })
        }
    };
    let units = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| PlannedUnit { task: i as u32, unit: WorkUnit { span: t.span.clone(), locality: None } })
        .collect();
    Ok(BackupPlan {
        id: String::new(),
        request: spec.request.clone(),
        scope,
        is_full_cluster,
        start_time: start,
        end_time: end,
        mvcc_filter: filter,
        revision_start_time: revision_start,
        spans,
        introduced_spans: introduced,
        tasks,
        units,
        key_check: None,
        descriptors,
        descriptor_changes,
        dependencies,
        statement: spec.statement.clone(),
    }
    .sealed())
}

/// Plans a full backup of `targets` as of `end_time`, latest values only.
pub fn plan_full_backup(
    catalog: &Catalog,
    targets: &Targets,
    end_time: Timestamp,
    statement: String,
) -> Result<BackupPlan> {
    let spec = BackupSpec::new(targets.clone(), end_time).with_statement(statement);
    plan_backup(catalog, &spec, None, &[], Timestamp::ZERO, Vec::new())
}

fn check_extends(
    prev: &Manifest,
    scope: &BackupScope,
    catalog: &Catalog,
    filter: MvccFilter,
    end: Timestamp,
) -> Result<()> {
    if &prev.scope != scope {
        let (was, is) = (describe_scope(&prev.scope, &prev.catalog()), describe_scope(scope, catalog));
        let again = if was == is { " (objects of the same names, dropped and created again since)" } else { "" };
        return Err(Error::Precondition(format!(
            "an incremental backup must have the same targets as the backup it extends: that one covers {was}, \
             this one {is}{again}"
        )));
    }
    if prev.mvcc_filter != filter {
        let with = |f: MvccFilter| if f == MvccFilter::AllRevisions { "with" } else { "without" };
        return Err(Error::Precondition(format!(
            "the backup being extended was taken {} revision_history; an incremental must be taken {} it too",
            with(prev.mvcc_filter),
            with(prev.mvcc_filter),
        )));
    }
    if end <= prev.end_time {
        return Err(Error::InvalidTime(format!(
            "an incremental backup must end after the backup it extends (which ends at {}), not at {end}",
            prev.end_time
        )));
    }
    Ok(())
}

/// A scope in words: `the whole cluster`, `database bank`, `tables bank.accounts, shop.*, …`,
/// each object by name as `catalog` (of the scope's backup) knows it.
pub fn describe_scope(scope: &BackupScope, catalog: &Catalog) -> String {
    let name = |id: &DescId, db_suffix: &str| {
        if let Some(d) = catalog.databases.get(id) {
            return format!("{}{db_suffix}", d.name);
        }
        match catalog.tables.get(id) {
            Some(t) => format!("{}.{}", catalog.database_name(t.parent_id), t.name),
            // Not in the catalog the scope was resolved with: no name to give.
            None => format!("an object no longer in the catalog (descriptor id {id})"),
        }
    };
    let names =
        |ids: &[DescId], db_suffix: &str| ids.iter().map(|id| name(id, db_suffix)).collect::<Vec<_>>().join(", ");
    match scope {
        BackupScope::Cluster => "the whole cluster".into(),
        BackupScope::Databases(ids) => format!("database {}", names(ids, "")),
        BackupScope::Tables(ids) => format!("tables {}", names(ids, ".*")),
    }
}

/// Reads the descriptor revisions a revision-history layer records: with `base` set, the state
/// as of `base` (each descriptor's newest version at or below it), then every change in
/// `(start, end]`.
pub async fn read_descriptor_history(
    source: &dyn KvSource,
    base: Option<Timestamp>,
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<DescriptorRevision>> {
    let mut out = Vec::new();
    let mut requests = Vec::new();
    if let Some(base) = base {
        requests.push(ScanRequest::new(keys::descriptor_span(), Timestamp::ZERO, base, MvccFilter::Latest));
    }
    requests.push(ScanRequest::new(keys::descriptor_span(), start, end, MvccFilter::AllRevisions));
    for (i, mut request) in requests.into_iter().enumerate() {
        loop {
            let page = source.scan(request.clone()).await?;
            for e in page.entries {
                let Some(id) = keys::decode_descriptor_key(&e.key) else { continue };
                let descriptor = e.value.as_deref().map(Descriptor::decode).transpose()?;
                if i == 0 && base.is_some() && descriptor.is_none() {
                    continue;
                }
                out.push(DescriptorRevision { ts: e.ts, id, descriptor });
            }
            match page.resume_key {
                Some(k) => request.span.start = k,
                None => break,
            }
        }
    }
    out.sort_by_key(|r| r.ts);
    Ok(out)
}
