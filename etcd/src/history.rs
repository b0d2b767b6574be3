//! Keeping the [`Index`] in step with etcd: load the keys at the compaction revision, then
//! follow a watch from the revision after it; start over when the watch falls behind a
//! compaction; move to another member when the watched one fails.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{EventType, GetOptions, KeyValue, WatchOptions};
use strata_core::{Error, Result, Status};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::{is_compacted, EtcdConn};
use crate::index::Index;
use crate::keyspace::Keyspace;

/// Keys per Range page (a limited Range counts keys, not bytes: 256 values of at most 1.5 MiB
/// stay under the decode limit).
const PAGE_KEYS: i64 = 256;

/// The index and the task that keeps it current.
pub(crate) struct History {
    pub(crate) index: Arc<Mutex<Index>>,
    pub(crate) applied: watch::Receiver<i64>,
    /// Why the watch last failed (for the error of a read that waited for it in vain).
    pub(crate) last_error: Arc<Mutex<Option<String>>>,
    task: JoinHandle<()>,
}

impl Drop for History {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl History {
    /// Loads the index and starts following the watch.
    pub(crate) async fn start(conn: Arc<EtcdConn>, keyspace: Arc<Keyspace>) -> Result<History> {
        let index = load(&conn, &keyspace).await?;
        let (tx, rx) = watch::channel(index.applied);
        let index = Arc::new(Mutex::new(index));
        let last_error = Arc::new(Mutex::new(None));
        let task = tokio::spawn(follow(conn, keyspace, index.clone(), tx, last_error.clone()));
        Ok(History { index, applied: rx, last_error, task })
    }
}

/// etcd's compaction revision (0: never compacted), knowing it is at least `known`: the
/// smallest revision a Range can still read, found by bisection (one Range when it has not moved).
pub(crate) async fn compaction_revision(conn: &EtcdConn, probe_key: &[u8], known: i64) -> Result<i64> {
    let readable = |rev: i64| {
        let key = probe_key.to_vec();
        async move {
            let r = conn
                .kv("read at a revision", |mut kv| {
                    let key = key.clone();
                    async move { kv.get(key, Some(GetOptions::new().with_revision(rev).with_count_only())).await }
                })
                .await;
            match r {
                Ok(resp) => Ok((true, resp.header().map_or(0, |h| h.revision()))),
                Err(Error::Kv { message, .. }) if message.contains("required revision has been compacted") => {
                    Ok((false, 0))
                }
                Err(e) => Err(e),
            }
        }
    };
    let lo = known.max(1);
    let (ok, _) = readable(lo).await?;
    if ok {
        return Ok(known);
    }
    let (_, current) = readable(0).await?;
    // readable(lo) is false, readable(current) is true: bisect for the first readable revision.
    let (mut bad, mut good) = (lo, current);
    while good - bad > 1 {
        let mid = bad + (good - bad) / 2;
        if readable(mid).await?.0 {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Ok(good)
}

/// Every key of `[start, end)` at revision `rev` (0: now), in pages.
pub(crate) async fn range_all(conn: &EtcdConn, start: &[u8], end: &[u8], rev: i64) -> Result<Vec<KeyValue>> {
    let mut out = Vec::new();
    let mut from = start.to_vec();
    loop {
        let key = from.clone();
        let mut resp = conn
            .kv("range", |mut kv| {
                let key = key.clone();
                let options = GetOptions::new().with_range(end.to_vec()).with_revision(rev).with_limit(PAGE_KEYS);
                async move { kv.get(key, Some(options)).await }
            })
            .await?;
        let more = resp.more();
        let kvs = resp.take_kvs();
        let Some(last) = kvs.last() else { return Ok(out) };
        from = [last.key(), &[0][..]].concat();
        out.extend(kvs);
        if !more {
            return Ok(out);
        }
    }
}

/// The index at etcd's compaction revision: the keys live there, versions pruned as a
/// compaction prunes them.
async fn load(conn: &EtcdConn, keyspace: &Keyspace) -> Result<Index> {
    loop {
        let c = compaction_revision(conn, &keyspace.layout.init_key(), 0).await?;
        let mut index = Index::default();
        if c > 0 {
            let mut lost = false;
            for (start, end) in keyspace.load_ranges() {
                match range_all(conn, &start, &end, c).await {
                    Ok(kvs) => {
                        for kv in kvs {
                            if let Some(change) = keyspace.change(kv.key(), kv.mod_revision(), Some(kv.value()), true) {
                                index.apply(change);
                            }
                        }
                    }
                    Err(Error::Kv { message, .. }) if message.contains("required revision has been compacted") => {
                        lost = true;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if lost {
                continue;
            }
            index.compact(c);
            index.advance(c);
        }
        return Ok(index);
    }
}

enum WatchEnd {
    Compacted,
    Failed(Error),
}

async fn follow(
    conn: Arc<EtcdConn>,
    keyspace: Arc<Keyspace>,
    index: Arc<Mutex<Index>>,
    tx: watch::Sender<i64>,
    last_error: Arc<Mutex<Option<String>>>,
) {
    let mut failures = 0u32;
    // The watch moves between members on its own: a member that is down answers nothing (the
    // client waits for it), so each failure tries the next one.
    let mut member = conn.current();
    loop {
        let from = index.lock().expect("index lock").applied + 1;
        match watch_from(&conn, member, &keyspace, &index, &tx, from).await {
            WatchEnd::Compacted => {
                if let Ok(fresh) = load(&conn, &keyspace).await {
                    let applied = fresh.applied;
                    *index.lock().expect("index lock") = fresh;
                    let _ = tx.send(applied);
                }
            }
            WatchEnd::Failed(e) => {
                *last_error.lock().expect("error lock") = Some(e.to_string());
                member += 1;
                failures += 1;
                // A short pause between reconnections so a cluster that is down is not spun on.
                tokio::time::sleep(Duration::from_millis(50 * u64::from(failures.min(10)))).await;
            }
        }
    }
}

async fn watch_from(
    conn: &EtcdConn,
    member: usize,
    keyspace: &Keyspace,
    index: &Mutex<Index>,
    tx: &watch::Sender<i64>,
    from: i64,
) -> WatchEnd {
    let (i, mut client) = match conn.watch_client(member).await {
        Ok(c) => c,
        Err(e) => return WatchEnd::Failed(e),
    };
    let (start, end) = keyspace.watch_range();
    let options = WatchOptions::new().with_range(end).with_start_revision(from);
    let mut stream = match tokio::time::timeout(conn.request_timeout(), client.watch(start, Some(options))).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) if is_compacted(&e) => return WatchEnd::Compacted,
        Ok(Err(e)) => return WatchEnd::Failed(conn.error(i, "watch", &e)),
        Err(_) => {
            return WatchEnd::Failed(Error::Kv {
                message: format!(
                    "etcd at {}: watch: no answer within {:?}",
                    conn.endpoints()[i],
                    conn.request_timeout()
                ),
                status: Status::Temporary,
            })
        }
    };
    loop {
        let resp = match stream.message().await {
            Ok(Some(r)) => r,
            Ok(None) => {
                return WatchEnd::Failed(Error::Kv { message: "the watch ended".into(), status: Status::Temporary })
            }
            Err(e) => return WatchEnd::Failed(conn.error(i, "watch", &e)),
        };
        if resp.compact_revision() > 0 {
            return WatchEnd::Compacted;
        }
        if resp.canceled() {
            let reason = resp.cancel_reason().to_string();
            return WatchEnd::Failed(Error::Kv {
                message: format!("watch cancelled: {reason}"),
                status: Status::Temporary,
            });
        }
        if resp.events().is_empty() {
            continue;
        }
        let mut top = 0;
        {
            let mut index = index.lock().expect("index lock");
            for event in resp.events() {
                let Some(kv) = event.kv() else { continue };
                let rev = kv.mod_revision();
                let value = match event.event_type() {
                    EventType::Put => Some(kv.value()),
                    EventType::Delete => None,
                };
                if let Some(change) = keyspace.change(kv.key(), rev, value, false) {
                    index.apply(change);
                }
                top = top.max(rev);
            }
            index.advance(top);
        }
        let _ = tx.send(top);
    }
}
