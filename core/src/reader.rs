//! Reading rows straight from a backup chain, without restoring it: [`BackupReader`] is a
//! read-only [`KvSource`] over the layers of a [`Chain`], and answers `scan`/`get` of a table as
//! of any time the chain covers with what a restore at that time would hold.
//!
//! ```text
//!   Chain ──layers_for(t)──▶ layers read ──manifest spans──▶ files overlapping the span
//!     each file: footer + index (ranged reads, cached) ──▶ only the overlapping blocks
//!       (runs of consecutive blocks in one ranged read; an encrypted file: only their chunks)
//!     merge newest-first per key ──▶ newest version ≤ t wins, deletions hide, every version
//!       in (start, end] for revision history
//! ```
//!
//! The reader never reads a whole file unless the span covers it, and never reads a layer a
//! restore at that time would not read. It checks each block's checksum (and, encrypted, each
//! chunk's authentication tag); the SHA-256 of whole files is `verify`'s job.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use crate::catalog::{Catalog, TableDescriptor};
use crate::chain::{catalog_at, layers_for, Chain};
use crate::crypto::FileReader;
use crate::error::{Error, Result};
use crate::format::datafile::{decode_block, decode_footer, decode_index, BlockHandle, FOOTER_LEN};
use crate::format::manifest::FileInfo;
use crate::keys;
use crate::kv::{check_gc_threshold, Entry, KvSource, MvccFilter, PageBuilder, ScanPage, ScanRequest};
use crate::span::Span;
use crate::storage::ExternalStorage;
use crate::timestamp::Timestamp;

/// Block indexes of data files, by (layer, path).
type IndexCache = HashMap<(usize, String), Arc<Vec<BlockHandle>>>;

/// Consecutive wanted blocks of a file, fetched with one ranged read: their bytes, and
/// `(index in the file, handle)` of each.
type BlockRun = (Range<u64>, Vec<(usize, BlockHandle)>);

/// The rows of one table as of a time, read from a backup (see [`BackupReader::scan_table`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRows {
    /// The time the rows are as of.
    pub as_of: Timestamp,
    /// The table's descriptor in the backup's catalog at that time.
    pub table: TableDescriptor,
    /// `(user key, value)` of every row, in key order (deleted rows are not there).
    pub rows: Vec<(Bytes, Bytes)>,
}

/// A read-only view of a backup chain as a versioned key-value source.
///
/// [`BackupReader::scan_table`], [`BackupReader::for_each_row`] and [`BackupReader::get`] name a
/// table as the catalog at that time does (a table dropped by then is not found; one renamed is
/// found by its name then) and return what a restore at that time would hold. As a
/// [`KvSource`], [`KvSource::scan`] returns the versions the layers hold in any span:
/// [`KvSource::now`] is the chain's end time and [`KvSource::gc_threshold`] the start of its
/// restorable window, and a scan at a time the chain cannot restore to (outside its window, or
/// between its layers' end times without revision history) is an error, never a partial answer.
///
/// ```
/// use std::sync::Arc;
/// use strata_core::sql::{BackupSource, Subdir};
/// use strata_core::{keys, BackupReader, Executor, KeyRequest, MemKv, MemoryOpener};
///
/// futures::executor::block_on(async {
///     let exec = Executor::new(Arc::new(MemKv::new()), Arc::new(MemoryOpener::default()));
///     exec.execute("CREATE DATABASE bank").await.unwrap();
///     exec.execute("CREATE TABLE bank.accounts").await.unwrap();
///     let id = exec.table_id("bank", "accounts", None).await.unwrap();
///     let before = exec.store().write(vec![(keys::table_key(id, b"alice"), Some(b"100".to_vec()))]).await.unwrap();
///     exec.execute("BACKUP DATABASE bank INTO 'memory://b' WITH revision_history").await.unwrap();
///     exec.store().write(vec![(keys::table_key(id, b"alice"), Some(b"90".to_vec()))]).await.unwrap();
///     exec.execute("BACKUP DATABASE bank INTO LATEST IN 'memory://b' WITH revision_history").await.unwrap();
///
///     let source = BackupSource { subdir: Some(Subdir::Latest), layers: vec![vec!["memory://b".into()]] };
///     let reader = BackupReader::new(exec.open_chain_with_keys(&source, KeyRequest::default()).await.unwrap());
///     let now = reader.scan_table("bank", "accounts", None).await.unwrap();
///     assert_eq!(now.rows, vec![("alice".into(), "90".into())]);
///     let then = reader.get("bank", "accounts", b"alice", Some(before)).await.unwrap();
///     assert_eq!(then.as_deref(), Some(&b"100"[..]));
/// });
/// ```
pub struct BackupReader {
    chain: Chain,
    read_bytes: u64,
    /// The block index of each file opened so far, by (layer, path): a later page of a scan
    /// does not fetch it again.
    indexes: Mutex<IndexCache>,
}

impl BackupReader {
    /// A reader of `chain` (opened and validated, e.g. by [`Chain::open_dir`] or
    /// [`crate::Executor::open_chain_with_keys`]; an encrypted chain's key is in its codec).
    pub fn new(chain: Chain) -> BackupReader {
        BackupReader { chain, read_bytes: 4 << 20, indexes: Mutex::new(HashMap::new()) }
    }

    /// Sets the bytes of consecutive blocks one ranged read fetches at most (a larger block is
    /// fetched alone). Default 4 MiB.
    pub fn with_read_bytes(mut self, bytes: u64) -> Self {
        self.read_bytes = bytes.max(1);
        self
    }

    /// The chain read.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The times a read can be as of, `[from, to]`: from the start of the full backup's revision
    /// history (or its end time), to the last layer's end time. Without revision history only the
    /// layers' end times inside it are readable.
    pub fn window(&self) -> Result<(Timestamp, Timestamp)> {
        let (Some(first), Some(last)) = (self.chain.layers.first(), self.chain.last()) else {
            return Err(Error::not_found("backup", "an empty list of layers"));
        };
        let first = &first.manifest;
        let lo = if first.has_revision_history() { first.revision_start_time } else { first.end_time };
        Ok((lo, last.end_time))
    }

    /// `as_of`, or the chain's end time.
    fn time(&self, as_of: Option<Timestamp>) -> Result<Timestamp> {
        match as_of {
            Some(t) => Ok(t),
            None => Ok(self.window()?.1),
        }
    }

    /// The backup's catalog as of `as_of` (default: the chain's end), as a restore at that time
    /// sees it: tables dropped by then are gone, renamed ones carry their name then.
    pub fn catalog(&self, as_of: Option<Timestamp>) -> Result<Catalog> {
        let t = self.time(as_of)?;
        let layers = layers_for(&self.chain.layers, t)?;
        Ok(catalog_at(&self.chain.layers, layers, t))
    }

    /// The descriptor of table `db.table` as of `as_of` (default: the chain's end).
    pub fn table(&self, db: &str, table: &str, as_of: Option<Timestamp>) -> Result<TableDescriptor> {
        let t = self.time(as_of)?;
        let catalog = self.catalog(Some(t))?;
        catalog
            .table(db, table)
            .cloned()
            .ok_or_else(|| Error::not_found("table in backup", format!("{db}.{table} at {t}")))
    }

    /// Every row of table `db.table` as a restore as of `as_of` (default: the chain's end) would
    /// hold it.
    pub async fn scan_table(&self, db: &str, table: &str, as_of: Option<Timestamp>) -> Result<TableRows> {
        let mut rows = Vec::new();
        let (as_of, table) = self
            .for_each_row(db, table, as_of, |k, v| {
                rows.push((k, v));
                true
            })
            .await?;
        Ok(TableRows { as_of, table, rows })
    }

    /// [`BackupReader::scan_table`] without holding the rows: calls `row(user key, value)` for
    /// each, in key order, until it returns false. Returns the time read and the table's
    /// descriptor.
    pub async fn for_each_row(
        &self,
        db: &str,
        table: &str,
        as_of: Option<Timestamp>,
        mut row: impl FnMut(Bytes, Bytes) -> bool,
    ) -> Result<(Timestamp, TableDescriptor)> {
        let t = self.time(as_of)?;
        let desc = self.table(db, table, Some(t))?;
        self.merge(keys::table_span(desc.id), Timestamp::ZERO, t, MvccFilter::Latest, u64::MAX, |e| match e.value {
            Some(v) => {
                let user = keys::decode_table_key(&e.key).map_or(0, |(_, k)| e.key.len() - k.len());
                row(e.key.slice(user..), v)
            }
            None => true,
        })
        .await?;
        Ok((t, desc))
    }

    /// The value of `key` in table `db.table` as of `as_of` (default: the chain's end); `None`
    /// when the row is not there (never written, or deleted by then).
    pub async fn get(&self, db: &str, table: &str, key: &[u8], as_of: Option<Timestamp>) -> Result<Option<Bytes>> {
        let t = self.time(as_of)?;
        let desc = self.table(db, table, Some(t))?;
        let k = keys::table_key(desc.id, key);
        let mut end = k.clone();
        end.push(0);
        let mut value = None;
        self.merge(Span::new(k, end), Timestamp::ZERO, t, MvccFilter::Latest, u64::MAX, |e| {
            value = e.value;
            false
        })
        .await?;
        Ok(value)
    }

    /// Merges the versions of `span` in `(start, end]` from the layers a restore as of `end`
    /// reads, in key order, newest first: each key's newest (tombstones included) for
    /// [`MvccFilter::Latest`], every version for [`MvccFilter::AllRevisions`]. Stops at the first
    /// key after `max_bytes` of keys and values, and returns it (the resume key); stops, returning
    /// `None`, when `emit` returns false.
    async fn merge(
        &self,
        span: Span,
        start: Timestamp,
        end: Timestamp,
        filter: MvccFilter,
        max_bytes: u64,
        mut emit: impl FnMut(Entry) -> bool,
    ) -> Result<Option<Vec<u8>>> {
        let layers = layers_for(&self.chain.layers, end)?;
        let mut files: Vec<(usize, &FileInfo, Span)> = Vec::new();
        for (i, layer) in self.chain.layers[..layers].iter().enumerate() {
            if layer.manifest.end_time <= start {
                continue;
            }
            for f in layer.manifest.files.iter().filter(|f| f.span.overlaps(&span)) {
                files.push((i, f, span.intersect(&f.span)));
            }
        }
        let storages = files
            .iter()
            .map(|(i, f, _)| self.chain.layers[*i].dir.for_file(f))
            .collect::<Result<Vec<Arc<dyn ExternalStorage>>>>()?;
        // A min-heap of each file's next key, ascending, then newest first, then newest layer
        // first. A file is opened only when the merge reaches the start of its part of the span
        // (its placeholder, newest of all at that key, comes first).
        let mut heap = BinaryHeap::new();
        let mut cursors: Vec<Option<Cursor<'_>>> = Vec::with_capacity(files.len());
        let mut heads: Vec<Option<Entry>> = Vec::with_capacity(files.len());
        for (i, (_, _, part)) in files.iter().enumerate() {
            heap.push(Reverse((Bytes::copy_from_slice(&part.start), Reverse(Timestamp::MAX), Reverse(i))));
            cursors.push(None);
            heads.push(None);
        }
        let mut decided: Option<Bytes> = None;
        let mut last: Option<(Bytes, Timestamp)> = None;
        let mut bytes = 0u64;
        while let Some(Reverse((_, _, Reverse(i)))) = heap.pop() {
            if cursors[i].is_none() {
                let (layer, file, part) = &files[i];
                let mut cursor = self.open(*layer, storages[i].as_ref(), file, part.clone()).await?;
                if let Some(head) = cursor.next().await? {
                    heap.push(Reverse((head.key.clone(), Reverse(head.ts), Reverse(i))));
                    heads[i] = Some(head);
                }
                cursors[i] = Some(cursor);
                continue;
            }
            let e = heads[i].take().expect("a file in the heap has its head");
            if let Some(n) = cursors[i].as_mut().expect("opened").next().await? {
                heap.push(Reverse((n.key.clone(), Reverse(n.ts), Reverse(i))));
                heads[i] = Some(n);
            }
            if e.ts > end {
                continue;
            }
            let new_key = last.as_ref().is_none_or(|(k, _)| *k != e.key) && decided.as_ref() != Some(&e.key);
            if new_key && bytes >= max_bytes {
                return Ok(Some(e.key.to_vec()));
            }
            match filter {
                MvccFilter::Latest => {
                    if decided.as_ref() == Some(&e.key) {
                        continue;
                    }
                    decided = Some(e.key.clone());
                    if e.ts <= start {
                        continue;
                    }
                }
                MvccFilter::AllRevisions => {
                    // The same version in two layers (it should not be) is returned once.
                    if e.ts <= start || last.as_ref().is_some_and(|(k, ts)| *k == e.key && *ts == e.ts) {
                        continue;
                    }
                }
            }
            bytes += e.bytes();
            last = Some((e.key.clone(), e.ts));
            if !emit(e) {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Opens one data file of layer `layer` for the keys of `span`: its footer and index (once per
    /// reader), then the runs of blocks that overlap the span.
    async fn open<'s>(
        &self,
        layer: usize,
        storage: &'s dyn ExternalStorage,
        file: &FileInfo,
        span: Span,
    ) -> Result<Cursor<'s>> {
        let shown = format!("{}/{}", storage.describe(), file.path);
        let reader = self.chain.codec.reader(storage, &file.path, file.size, &shown).await?;
        let cached = self.indexes.lock().expect("index cache lock").get(&(layer, file.path.clone())).cloned();
        let index = match cached {
            Some(index) => index,
            None => {
                let size = reader.plain_size();
                if size < FOOTER_LEN {
                    return Err(Error::corrupt(&shown, "file is too short to hold a data file footer"));
                }
                let footer_bytes = read_exact(&reader, size - FOOTER_LEN..size, &shown).await?;
                let footer = decode_footer(&footer_bytes, size, &shown)?;
                let index_range = footer.index_offset..footer.index_offset + footer.index_len as u64;
                let index_bytes = read_exact(&reader, index_range, &shown).await?;
                let index = Arc::new(decode_index(&index_bytes, &footer, &shown)?);
                self.indexes.lock().expect("index cache lock").insert((layer, file.path.clone()), index.clone());
                index
            }
        };
        let mut runs: VecDeque<BlockRun> = VecDeque::new();
        for (i, h) in index.iter().enumerate().filter(|(_, h)| h.overlaps(&span)) {
            let range = h.range();
            match runs.back_mut() {
                Some((run, blocks)) if run.end == range.start && range.end - run.start <= self.read_bytes => {
                    run.end = range.end;
                    blocks.push((i, h.clone()));
                }
                _ => runs.push_back((range, vec![(i, h.clone())])),
            }
        }
        Ok(Cursor { reader, shown, span, runs, current: VecDeque::new() })
    }
}

/// Bytes `range` of a file's contents, checking the read returned all of them.
async fn read_exact(reader: &FileReader<'_>, range: Range<u64>, shown: &str) -> Result<Bytes> {
    let data = reader.read_range(range.clone()).await?;
    if data.len() as u64 != range.end - range.start {
        return Err(Error::corrupt(shown, format!("a read of bytes {range:?} returned {} bytes", data.len())));
    }
    Ok(data)
}

/// The entries of one data file within a span, fetched a run of blocks at a time.
struct Cursor<'s> {
    reader: FileReader<'s>,
    shown: String,
    span: Span,
    runs: VecDeque<BlockRun>,
    current: VecDeque<Entry>,
}

impl Cursor<'_> {
    async fn next(&mut self) -> Result<Option<Entry>> {
        loop {
            while let Some(e) = self.current.pop_front() {
                if self.span.contains(&e.key) {
                    return Ok(Some(e));
                }
            }
            let Some((range, blocks)) = self.runs.pop_front() else { return Ok(None) };
            let data = read_exact(&self.reader, range.clone(), &self.shown).await?;
            for (i, h) in blocks {
                let r = (h.offset - range.start) as usize..(h.offset - range.start + h.len as u64) as usize;
                let current = &mut self.current;
                decode_block(&data[r], &h, i, &self.shown, |e| current.push_back(e))?;
            }
        }
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl KvSource for BackupReader {
    /// The chain's end time.
    async fn now(&self) -> Result<Timestamp> {
        Ok(self.window()?.1)
    }

    async fn scan(&self, request: ScanRequest) -> Result<ScanPage> {
        let (lo, _) = self.window()?;
        check_gc_threshold(&request, lo)?;
        let needs_start = !request.start.is_zero() || request.filter == MvccFilter::AllRevisions;
        if needs_start && !self.chain.layers[0].manifest.has_revision_history() {
            // Without revision history, a layer holds each key's newest version as of its end:
            // changes since a layer's end are exactly the later layers' contents, and nothing else.
            if request.filter == MvccFilter::AllRevisions
                || !self.chain.layers.iter().any(|l| l.manifest.end_time == request.start)
            {
                return Err(Error::InvalidTime(format!(
                    "cannot read the versions of {} in ({}, {}] from this backup: it was taken without \
                     revision_history, so it holds only the state at each layer's end time",
                    request.span, request.start, request.end
                )));
            }
        }
        let mut page = PageBuilder::with_capacity(0);
        let resume = self
            .merge(request.span, request.start, request.end, request.filter, request.target_bytes.max(1), |e| {
                page.push(&e.key, e.ts, e.value.as_deref());
                true
            })
            .await?;
        Ok(page.finish(resume))
    }

    /// The start of the chain's restorable window.
    async fn gc_threshold(&self, _span: &Span) -> Result<Timestamp> {
        Ok(self.window()?.0)
    }

    /// The catalog a restore as of `ts` sees.
    async fn catalog_at(&self, ts: Timestamp) -> Result<Catalog> {
        self.catalog(Some(ts))
    }
}
