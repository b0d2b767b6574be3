//! Planning a restore, as pure data: find the catalog as of the restore time in a validated
//! chain, choose what to bring back, check it against the target, give it new ids, and list the
//! files of the layers (named in the plan) that hold it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::backup::plan::expand_table_name;
use crate::catalog::{Catalog, DatabaseDescriptor, DescId, TableDescriptor};
use crate::chain::{catalog_at, layers_for, Chain};
use crate::error::{Error, Result};
use crate::format::manifest::FileInfo;
use crate::keys;
use crate::layout::MANIFEST_NAME;
use crate::span::{Span, SpanSet};
use crate::sql::{check_restore_options, RestoreStmtOptions, Targets};
use crate::timestamp::Timestamp;

/// A database the restore creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseRestore {
    /// Its id in the backup.
    pub old_id: DescId,
    /// The descriptor it gets in the target (new id, maybe new name).
    pub descriptor: DatabaseDescriptor,
}

/// A table the restore creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRestore {
    /// Its id in the backup (its keys' prefix there).
    pub old_id: DescId,
    /// The descriptor it gets in the target (new id, new parent).
    pub descriptor: TableDescriptor,
}

/// A data file of one layer of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerFile {
    /// Index of the layer in [`RestorePlan::layers`] (0 = the full backup).
    pub layer: u32,
    /// The file, relative to that layer's directory.
    pub file: FileInfo,
}

/// What a restore will do, as plain data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePlan {
    /// The time the restored data is as of.
    pub as_of: Timestamp,
    /// The layers of the chain it reads (a prefix of it), by name (see [`crate::Layer::name`]):
    /// the plan says which directories it reads, and [`crate::run_restore`] finds them in the
    /// chain it is given.
    pub layers: Vec<String>,
    /// Databases to create.
    pub databases: Vec<DatabaseRestore>,
    /// Tables to create.
    pub tables: Vec<TableRestore>,
    /// Whether the system span's state is restored too (full-cluster restore).
    pub restore_system: bool,
    /// The data files to read.
    pub files: Vec<LayerFile>,
}

impl RestorePlan {
    /// The spans, in the target, the restore writes into.
    pub fn target_spans(&self) -> Vec<Span> {
        self.tables.iter().map(|t| t.descriptor.span()).collect()
    }

    /// Backup spans to read.
    pub fn source_spans(&self) -> SpanSet {
        let mut spans: Vec<Span> = self.tables.iter().map(|t| keys::table_span(t.old_id)).collect();
        if self.restore_system {
            spans.push(keys::system_span());
        }
        SpanSet::from_spans(spans)
    }
}

enum Parent {
    /// A database restored alongside (its id in the backup).
    Restored(DescId),
    /// A database already in the target.
    Existing(DescId),
}

/// What a restore will bring back, checked against the target but not yet given ids:
/// [`RestoreSelection::ids_needed`] fresh ids turn it into a [`RestorePlan`].
pub struct RestoreSelection<'a> {
    chain: &'a Chain,
    layers: usize,
    as_of: Timestamp,
    dbs: Vec<(DatabaseDescriptor, String)>,
    tables: Vec<(TableDescriptor, Parent)>,
    restore_system: bool,
}

/// Chooses what to restore as of `as_of` (default: the chain's end) and checks it against the
/// target's catalog: a restorable time, names that already exist, a non-empty cluster, objects
/// missing from the backup. Pure; `chain` is validated (as [`Chain`]'s constructors do).
pub fn prepare_restore<'a>(
    chain: &'a Chain,
    as_of: Option<Timestamp>,
    target: &Catalog,
    targets: &Targets,
    options: &RestoreStmtOptions,
) -> Result<RestoreSelection<'a>> {
    check_restore_options(targets, options)?;
    let last = chain.last().ok_or_else(|| Error::not_found("backup", "an empty list of layers"))?;
    let t = as_of.unwrap_or(last.end_time);
    let layers = layers_for(&chain.layers, t)?;
    let backup = catalog_at(&chain.layers, layers, t);
    let mut dbs: Vec<(&DatabaseDescriptor, String)> = Vec::new();
    let mut tables: Vec<(&TableDescriptor, Parent)> = Vec::new();
    let mut restore_system = false;
    match targets {
        Targets::Cluster => {
            if !chain.layers[0].manifest.is_full_cluster {
                return Err(Error::Precondition(
                    "the backup is not a full cluster backup; use RESTORE DATABASE or RESTORE TABLE".into(),
                ));
            }
            if !target.has_no_user_objects() {
                return Err(Error::Precondition(
                    "full cluster restore can only be run on a cluster with no user-created databases or tables".into(),
                ));
            }
            restore_system = true;
            for db in backup.databases.values() {
                dbs.push((db, db.name.clone()));
            }
            for t in backup.tables.values() {
                tables.push((t, Parent::Restored(t.parent_id)));
            }
        }
        Targets::Databases(names) => {
            for name in names {
                let db = backup.database(name).ok_or_else(|| Error::not_found("database in backup", name.clone()))?;
                let new_name = options.new_db_name.clone().unwrap_or_else(|| name.clone());
                if target.database(&new_name).is_some() {
                    return Err(Error::exists("database", new_name));
                }
                dbs.push((db, new_name));
                for t in backup.tables_in(db.id) {
                    tables.push((t, Parent::Restored(db.id)));
                }
            }
        }
        Targets::Tables(names) => {
            for name in names {
                let ids = expand_table_name(&backup, name).map_err(|e| match e {
                    Error::NotFound { what, name } => Error::NotFound { what: format!("{what} in backup"), name },
                    e => e,
                })?;
                for id in ids {
                    let t = &backup.tables[&id];
                    let db_name =
                        options.into_db.clone().unwrap_or_else(|| backup.database_name(t.parent_id).to_string());
                    let db = target.database(&db_name).ok_or_else(|| {
                        Error::Precondition(format!(
                            "a database named {db_name} needs to exist to restore table {}.{} (create it, or use WITH into_db)",
                            backup.database_name(t.parent_id),
                            t.name
                        ))
                    })?;
                    if target.tables_in(db.id).any(|x| x.name == t.name) {
                        return Err(Error::exists("table", format!("{db_name}.{}", t.name)));
                    }
                    if !tables.iter().any(|(x, _)| x.id == t.id) {
                        tables.push((t, Parent::Existing(db.id)));
                    }
                }
            }
        }
    }
    Ok(RestoreSelection {
        chain,
        layers,
        as_of: t,
        dbs: dbs.into_iter().map(|(d, n)| (d.clone(), n)).collect(),
        tables: tables.into_iter().map(|(t, p)| (t.clone(), p)).collect(),
        restore_system,
    })
}

impl RestoreSelection<'_> {
    /// How many fresh descriptor ids the restore needs.
    pub fn ids_needed(&self) -> u32 {
        (self.dbs.len() + self.tables.len()) as u32
    }

    /// The plan, giving the restored objects ids `first_id..first_id + ids_needed()`.
    pub fn plan(self, first_id: DescId) -> Result<RestorePlan> {
        let mut next = first_id;
        let mut db_map = BTreeMap::new();
        let mut plan = RestorePlan {
            as_of: self.as_of,
            layers: self.chain.layers[..self.layers].iter().map(|l| l.name.clone()).collect(),
            databases: Vec::new(),
            tables: Vec::new(),
            restore_system: self.restore_system,
            files: Vec::new(),
        };
        for (db, name) in self.dbs {
            db_map.insert(db.id, next);
            plan.databases.push(DatabaseRestore {
                old_id: db.id,
                descriptor: DatabaseDescriptor { id: next, name, version: 1, modification_time: self.as_of },
            });
            next += 1;
        }
        for (t, parent) in self.tables {
            let parent_id = match parent {
                Parent::Restored(old) => *db_map.get(&old).ok_or_else(|| {
                    Error::corrupt(MANIFEST_NAME, format!("table {} has no database in the backup", t.name))
                })?,
                Parent::Existing(id) => id,
            };
            plan.tables.push(TableRestore {
                old_id: t.id,
                descriptor: TableDescriptor { id: next, parent_id, version: 1, modification_time: self.as_of, ..t },
            });
            next += 1;
        }
        let needed = plan.source_spans();
        for (layer, l) in self.chain.layers[..self.layers].iter().enumerate() {
            plan.files.extend(
                l.manifest
                    .files
                    .iter()
                    .filter(|f| needed.spans().iter().any(|s| s.overlaps(&f.span)))
                    .map(|f| LayerFile { layer: layer as u32, file: f.clone() }),
            );
        }
        Ok(plan)
    }
}
