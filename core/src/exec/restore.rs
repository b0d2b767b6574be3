//! The RESTORE statement: opens the chain its source names, checks the selection against this
//! store's catalog, allocates ids, and runs the restore.

use super::{open_source_chain_noting, Context};
use crate::crypto::keyring::KeyRequest;
use crate::error::{Error, Result};
use crate::progress::{Cancel, ProgressReporter};
use crate::restore::plan::prepare_restore;
use crate::restore::run::{run_restore, RestoreRunOptions};
use crate::result::QueryResult;
use crate::sql::{RestoreStmt, Secret};
use crate::timestamp::Timestamp;

/// Runs restores with its options.
#[derive(Clone, Default)]
pub(super) struct RestoreService {
    options: RestoreRunOptions,
}

impl RestoreService {
    pub(super) fn new(options: RestoreRunOptions) -> RestoreService {
        RestoreService { options }
    }

    /// The same service reporting progress to `progress` and stopped by `cancel`.
    pub(super) fn with_control(&self, progress: ProgressReporter, cancel: Cancel) -> RestoreService {
        RestoreService { options: self.options.clone().with_progress(progress).with_cancel(cancel) }
    }

    /// Runs `RESTORE` to the end.
    pub(super) async fn run(&self, cx: &Context, r: &RestoreStmt) -> Result<QueryResult> {
        let keys = KeyRequest::new(r.options.encryption_passphrase.as_ref().map(Secret::expose), &r.options.kms);
        if r.options.detached {
            return Err(Error::unsupported("detached restore jobs"));
        }
        let (chain, skipped) = open_source_chain_noting(cx, &r.source, keys).await?;
        let as_of = match &r.as_of {
            // Bounded by the chain's window, not by this store's clock: a restore may target
            // another cluster whose clock is behind the source's.
            Some(a) => Some(Timestamp::parse_as_of(&a.0, cx.store.now().await?)?),
            None => None,
        };
        let catalog = cx.store.catalog().await?;
        // Ids are allocated only once every check has passed.
        let selection = prepare_restore(&chain, as_of, &catalog, &r.targets, &r.options)?;
        let first = match selection.ids_needed() {
            0 => 0,
            n => cx.store.allocate_ids(n).await?,
        };
        let plan = selection.plan(first)?;
        let summary = run_restore(cx.store.as_ref(), &chain, &plan, &self.options).await?;
        let mut out = QueryResult::new(&["status", "as_of", "databases", "tables", "rows", "bytes"]);
        out.push(vec![
            "succeeded".into(),
            plan.as_of.to_string().into(),
            (plan.databases.len() as u64).into(),
            (plan.tables.len() as u64).into(),
            summary.rows.into(),
            summary.bytes.into(),
        ]);
        out.notices = skipped.iter().map(|s| s.notice(&chain)).collect();
        Ok(out)
    }
}
