//! Model-based randomized test of incremental backups: random histories of puts, deletes, and
//! tables and databases created and dropped, interleaved with full and incremental backups —
//! with and without revision history, appended with `BACKUP TO`, into collections with
//! `INTO LATEST IN`, and chained explicitly with `INCREMENTAL FROM`. Restoring each chain at
//! every restorable time must equal the reference store's view at that time; restoring at a
//! time the chain cannot serve must fail with the right error.
//!
//! Seeded and reproducible: `STRATA_SEED=<n> cargo test -p strata-core --test integration incremental_model::`
//! replays one seed; `STRATA_MODEL_STEPS` sets the steps per seed.

use crate::common;
#[path = "manage/mod.rs"]
mod manage;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::Rng;
use futures::executor::block_on;
use strata_core::{keys, Catalog, Error, Executor, KvSource, MemKv, MemoryOpener, Timestamp};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

const DBS: [&str; 2] = ["a", "b"];
const TABLES: [&str; 3] = ["t0", "t1", "t2"];

#[derive(Debug, Clone, PartialEq)]
enum Scope {
    Cluster,
    Database(String),
    Table(String, String),
    /// `TABLE db.*`: the database's tables at each backup, none at all included.
    AllTables(String),
}

#[derive(Debug, Clone)]
enum Kind {
    /// `BACKUP … TO 'dir'` repeatedly: a full backup, then appended incrementals.
    Dir(String),
    /// `BACKUP … INTO 'coll'`, then `INTO LATEST IN 'coll'`.
    Collection(String),
    /// `BACKUP … TO 'layer-n' INCREMENTAL FROM 'layer-0', …`.
    Explicit(Vec<String>),
}

#[derive(Debug, Clone)]
struct Chain {
    kind: Kind,
    scope: Scope,
    revision_history: bool,
    /// The scope's descriptor ids when the full backup was taken (what incrementals must match).
    ids: Vec<u32>,
    /// End time of each layer.
    ends: Vec<Timestamp>,
    /// Restorable start of the full layer with revision history (the GC threshold then: zero here).
    full_revision_start: Timestamp,
}

fn targets_sql(scope: &Scope) -> String {
    match scope {
        Scope::Cluster => String::new(),
        Scope::Database(d) => format!("DATABASE {d} "),
        Scope::Table(d, t) => format!("TABLE {d}.{t} "),
        Scope::AllTables(d) => format!("TABLE {d}.* "),
    }
}

/// The descriptor ids a scope resolves to in `catalog`, or `None` if it does not resolve.
fn scope_ids(catalog: &Catalog, scope: &Scope) -> Option<Vec<u32>> {
    match scope {
        Scope::Cluster => Some(Vec::new()),
        Scope::Database(d) | Scope::AllTables(d) => catalog.database(d).map(|db| vec![db.id]),
        Scope::Table(d, t) => catalog.table(d, t).map(|t| vec![t.id]),
    }
}

/// `db.table -> rows` of the objects of `scope` in `catalog`, read from `kv` at `ts`.
fn view(kv: &MemKv, catalog: &Catalog, scope: &Scope, ts: Timestamp) -> BTreeMap<String, common::Rows> {
    common::logical_view(kv, catalog, ts, |db, t| match scope {
        Scope::Cluster => true,
        Scope::Database(d) | Scope::AllTables(d) => db == d,
        Scope::Table(d, n) => db == d && &t.name == n,
    })
}

struct Model {
    rng: Rng,
    source: MemKv,
    opener: MemoryOpener,
    exec: Executor,
    chains: Vec<Chain>,
    /// Every timestamp an operation committed at, to pick restore times from.
    times: Vec<Timestamp>,
    next_location: usize,
    log: Vec<String>,
}

impl Model {
    fn new(seed: u64) -> Model {
        let source = MemKv::new();
        let opener = MemoryOpener::default();
        let exec = Executor::new(Arc::new(source.clone()), Arc::new(opener.clone()));
        Model {
            rng: Rng(seed),
            source,
            opener,
            exec,
            chains: Vec::new(),
            times: Vec::new(),
            next_location: 0,
            log: Vec::new(),
        }
    }

    async fn sql(&mut self, statement: &str) -> Result<strata_core::QueryResult, Error> {
        self.log.push(statement.to_string());
        let r = self.exec.execute(statement).await;
        self.times.push(self.source.now().await.unwrap());
        r
    }

    fn location(&mut self) -> String {
        self.next_location += 1;
        format!("memory://backups/l{}", self.next_location)
    }

    async fn catalog(&self) -> Catalog {
        let now = self.source.now().await.unwrap();
        self.source.catalog_at(now).await.unwrap()
    }

    async fn step(&mut self) {
        let roll = self.rng.below(100);
        let db = *self.rng.pick(&DBS);
        let table = *self.rng.pick(&TABLES);
        match roll {
            0..=44 => {
                // Writes and deletes in an existing table.
                let catalog = self.catalog().await;
                let Some(t) = catalog.table(db, table) else { return };
                let id = t.id;
                let n = 1 + self.rng.below(4);
                let mut batch = Vec::new();
                for _ in 0..n {
                    let key = keys::table_key(id, format!("k{:02}", self.rng.below(30)).as_bytes());
                    let value = if self.rng.chance(25) {
                        None
                    } else {
                        Some(format!("v{}", self.rng.next() % 1000).into_bytes())
                    };
                    batch.push((key, value));
                }
                self.log.push(format!("write {n} keys into {db}.{table}"));
                self.source.write_sync(batch);
                self.times.push(self.source.now().await.unwrap());
            }
            45..=51 => {
                let _ = self.sql(&format!("CREATE DATABASE IF NOT EXISTS {db}")).await;
            }
            52..=61 => {
                let _ = self.sql(&format!("CREATE TABLE IF NOT EXISTS {db}.{table}")).await;
            }
            62..=65 => {
                let _ = self.sql(&format!("DROP TABLE IF EXISTS {db}.{table}")).await;
            }
            66..=67 => {
                let _ = self.sql(&format!("DROP DATABASE IF EXISTS {db} CASCADE")).await;
            }
            68..=77 => self.full_backup(db, table).await,
            _ => self.incremental().await,
        }
    }

    async fn full_backup(&mut self, db: &str, table: &str) {
        let scope = match self.rng.below(5) {
            0 => Scope::Cluster,
            1 => Scope::Table(db.into(), table.into()),
            2 => Scope::AllTables(db.into()),
            _ => Scope::Database(db.into()),
        };
        let catalog = self.catalog().await;
        let Some(ids) = scope_ids(&catalog, &scope) else { return };
        let revision_history = self.rng.chance(50);
        let with = if revision_history { " WITH revision_history" } else { "" };
        let loc = self.location();
        let kind = match self.rng.below(3) {
            0 => Kind::Dir(loc.clone()),
            1 => Kind::Collection(loc.clone()),
            _ => Kind::Explicit(vec![loc.clone()]),
        };
        let verb = if matches!(kind, Kind::Collection(_)) { "INTO" } else { "TO" };
        let stmt = format!("BACKUP {}{verb} '{loc}'{with}", targets_sql(&scope));
        let r = self.sql(&stmt).await.unwrap_or_else(|e| panic!("{stmt} failed: {e}"));
        let end: Timestamp = r.get(0, "end_time").unwrap().to_string().parse().unwrap();
        self.chains.push(Chain {
            kind,
            scope,
            revision_history,
            ids,
            ends: vec![end],
            full_revision_start: Timestamp::ZERO,
        });
    }

    async fn incremental(&mut self) {
        if self.chains.is_empty() {
            return;
        }
        let i = self.rng.below(self.chains.len() as u64) as usize;
        let chain = self.chains[i].clone();
        let with = if chain.revision_history { " WITH revision_history" } else { "" };
        let targets = targets_sql(&chain.scope);
        let (stmt, new_layer) = match &chain.kind {
            Kind::Dir(d) => (format!("BACKUP {targets}TO '{d}'{with}"), None),
            Kind::Collection(c) => (format!("BACKUP {targets}INTO LATEST IN '{c}'{with}"), None),
            Kind::Explicit(layers) => {
                let dest = self.location();
                let from: Vec<String> = layers.iter().map(|l| format!("'{l}'")).collect();
                (format!("BACKUP {targets}TO '{dest}' INCREMENTAL FROM {}{with}", from.join(", ")), Some(dest))
            }
        };
        let catalog = self.catalog().await;
        let expected_ok = scope_ids(&catalog, &chain.scope).as_ref() == Some(&chain.ids);
        match (self.sql(&stmt).await, expected_ok) {
            (Ok(r), true) => {
                let end: Timestamp = r.get(0, "end_time").unwrap().to_string().parse().unwrap();
                assert_eq!(r.get(0, "backup_type").unwrap().to_string(), "incremental", "{stmt}");
                let chain = &mut self.chains[i];
                chain.ends.push(end);
                if let (Kind::Explicit(layers), Some(dest)) = (&mut chain.kind, new_layer) {
                    layers.push(dest);
                }
            }
            (Err(e), false) => {
                // The targets no longer resolve to what the chain holds.
                assert!(
                    matches!(e, Error::Precondition(_) | Error::NotFound { .. }),
                    "{stmt}: expected a targets error, got {e}"
                );
            }
            (Ok(_), false) => panic!("{stmt} succeeded although its targets changed identity"),
            (Err(e), true) => panic!("{stmt} failed: {e}"),
        }
    }

    /// The RESTORE statement for `chain` as of `t`; a TABLE restore first creates its database.
    async fn restore_sql(chain: &Chain, t: Timestamp, texec: &Executor) -> String {
        let from = Self::source_sql(chain);
        match &chain.scope {
            Scope::Cluster => format!("RESTORE FROM {from} AS OF SYSTEM TIME {t}"),
            Scope::Database(d) => format!("RESTORE DATABASE {d} FROM {from} AS OF SYSTEM TIME {t}"),
            Scope::Table(d, n) => {
                texec.execute(&format!("CREATE DATABASE {d}")).await.unwrap();
                format!("RESTORE TABLE {d}.{n} FROM {from} AS OF SYSTEM TIME {t}")
            }
            Scope::AllTables(d) => {
                texec.execute(&format!("CREATE DATABASE {d}")).await.unwrap();
                format!("RESTORE TABLE {d}.* FROM {from} AS OF SYSTEM TIME {t}")
            }
        }
    }

    fn source_sql(chain: &Chain) -> String {
        match &chain.kind {
            Kind::Dir(d) => format!("'{d}'"),
            Kind::Collection(c) => format!("LATEST IN '{c}'"),
            Kind::Explicit(layers) => layers.iter().map(|l| format!("'{l}'")).collect::<Vec<_>>().join(", "),
        }
    }

    /// Restores `chain` as of `t` into a fresh store and compares with the source's view.
    async fn check_restore(&self, chain: &Chain, t: Timestamp) {
        let target = MemKv::new();
        let texec = Executor::new(Arc::new(target.clone()), Arc::new(self.opener.clone()));
        let source_catalog = self.source.catalog_at(t).await.unwrap();
        let stmt = Self::restore_sql(chain, t, &texec).await;
        // A chain holds its targets by id: a same-named earlier or later incarnation is not in it.
        let resolves = scope_ids(&source_catalog, &chain.scope).as_ref() == Some(&chain.ids);
        match texec.execute(&stmt).await {
            Ok(_) => assert!(resolves, "{stmt} succeeded, but its targets did not exist at {t}"),
            Err(Error::NotFound { .. }) if !resolves => return,
            // `RESTORE TABLE db.*` of a time the database had no tables: nothing to restore.
            Err(Error::NotFound { .. })
                if matches!(&chain.scope, Scope::AllTables(d)
                    if view(&self.source, &source_catalog, &chain.scope, t).is_empty()
                        && source_catalog.database(d).is_some_and(|db| source_catalog.tables_in(db.id).next().is_none())) =>
            {
                return
            }
            Err(e) => panic!("{stmt} failed: {e}"),
        }
        let expected = view(&self.source, &source_catalog, &chain.scope, t);
        let now = target.now().await.unwrap();
        let restored_catalog = target.catalog_at(now).await.unwrap();
        let got = view(&target, &restored_catalog, &chain.scope, now);
        if got != expected && std::env::var_os("STRATA_MODEL_DEBUG").is_some() {
            let src = match &chain.kind {
                Kind::Collection(c) => strata_core::sql::BackupSource {
                    subdir: Some(strata_core::sql::Subdir::Latest),
                    layers: vec![vec![c.clone()]],
                },
                Kind::Dir(d) => strata_core::sql::BackupSource { subdir: None, layers: vec![vec![d.clone()]] },
                Kind::Explicit(l) => {
                    strata_core::sql::BackupSource { subdir: None, layers: l.iter().map(|x| vec![x.clone()]).collect() }
                }
            };
            let c = texec.open_chain(&src).await.unwrap();
            for (i, m) in c.layers.iter().map(|l| &l.manifest).enumerate() {
                eprintln!(
                    "layer {i}: ({}, {}] rs={} filter={:?} spans={:?} introduced={:?}",
                    m.start_time, m.end_time, m.revision_start_time, m.mvcc_filter, m.spans, m.introduced_spans
                );
                for f in &m.files {
                    eprintln!("   file {} {:?} entries={} rows={}", f.path, f.span, f.entries, f.rows);
                }
                for r in &m.descriptor_changes {
                    eprintln!("   desc {} id={} {:?}", r.ts, r.id, r.descriptor.as_ref().map(|d| d.name().to_string()));
                }
            }
            eprintln!(
                "source catalog at t: {:?}",
                source_catalog.tables.values().map(|t| (t.id, t.name.clone(), t.parent_id)).collect::<Vec<_>>()
            );
        }
        assert_eq!(got, expected, "{stmt}: restored data differs from the source at {t}; chain {chain:?}");
    }

    async fn verify(&mut self) -> usize {
        let mut checks = 0;
        for chain in self.chains.clone() {
            // Every layer's end time.
            for &end in &chain.ends {
                self.check_restore(&chain, end).await;
                checks += 1;
            }
            let lo = chain.ends[0];
            let hi = *chain.ends.last().unwrap();
            let inside: Vec<Timestamp> = self.times.iter().copied().filter(|t| *t > lo && *t < hi).collect();
            if chain.revision_history {
                // Any time inside the chain, including inside the full backup's own window.
                for _ in 0..3 {
                    let pool: Vec<Timestamp> =
                        self.times.iter().copied().filter(|t| *t > chain.full_revision_start && *t <= hi).collect();
                    if pool.is_empty() {
                        break;
                    }
                    let t = *self.rng.pick(&pool);
                    self.check_restore(&chain, t).await;
                    checks += 1;
                }
            } else if let Some(&t) = inside.iter().find(|t| !chain.ends.contains(t)) {
                let err = self.restore_error(&chain, t).await;
                assert!(err.to_string().contains("requires a backup taken WITH revision_history"), "{err}");
            }
            // Outside the window.
            let err = self.restore_error(&chain, hi.next()).await;
            assert!(matches!(err, Error::InvalidTime(_)), "{err}");
        }
        checks
    }

    async fn restore_error(&self, chain: &Chain, t: Timestamp) -> Error {
        let texec = Executor::new(Arc::new(MemKv::new()), Arc::new(self.opener.clone()));
        let stmt = Self::restore_sql(chain, t, &texec).await;
        texec.execute(&stmt).await.expect_err(&format!("{stmt} should fail"))
    }
}

fn run_seed(seed: u64, steps: usize) -> (usize, usize) {
    block_on(async {
        let mut m = Model::new(seed);
        for _ in 0..steps {
            m.step().await;
        }
        let checks = m.verify().await;
        let layers = m.chains.iter().map(|c| c.ends.len()).sum();
        (layers, checks)
    })
}

#[test]
fn restores_equal_the_model_at_every_restorable_time() {
    let steps: usize = std::env::var("STRATA_MODEL_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(400);
    let seeds: Vec<u64> = match std::env::var("STRATA_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => (1..=8).map(|i| 0x5eed_0000 + i).collect(),
    };
    let (mut layers, mut checks) = (0, 0);
    for seed in seeds {
        println!("incremental model: seed {seed}, {steps} steps (replay with STRATA_SEED={seed})");
        let result = std::panic::catch_unwind(|| run_seed(seed, steps));
        match result {
            Ok((l, c)) => {
                layers += l;
                checks += c;
            }
            Err(e) => {
                eprintln!("incremental model FAILED with seed {seed}; replay with STRATA_SEED={seed}");
                std::panic::resume_unwind(e);
            }
        }
    }
    println!("incremental model: {layers} backup layers, {checks} restores checked");
    assert!(layers > 50 && checks > 50, "the model exercised too little: {layers} layers, {checks} checks");
}
