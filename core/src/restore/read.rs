//! Reading one data file of a restore: its footer and index, then only the blocks that overlap
//! the restored span, in bounded ranged reads (the next one fetched while this one is decoded),
//! decrypted chunk by chunk and checked against the manifest's SHA-256 when read whole.

use std::collections::VecDeque;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::{maybe_done, MaybeDone};
use sha2::{Digest, Sha256};

use crate::crypto::{FileCodec, FileReader};
use crate::error::{Error, Result};
use crate::format::datafile::{
    decode_block_within, decode_budget, decode_footer, decode_index, BlockHandle, FOOTER_LEN,
};
use crate::format::manifest::FileInfo;
use crate::kv::Entry;
use crate::progress::RestoreCounter;
use crate::span::Span;
use crate::stage;
use crate::storage::ExternalStorage;
use crate::storage::ExternalStorageExt;
use crate::timestamp::Timestamp;

/// What [`FileReader::read_range`] returns, boxed to be kept while the cursor decodes.
#[cfg(not(target_arch = "wasm32"))]
type ReadFuture<'s> = futures::future::BoxFuture<'s, Result<Bytes>>;
/// What [`FileReader::read_range`] returns, boxed to be kept while the cursor decodes.
#[cfg(target_arch = "wasm32")]
type ReadFuture<'s> = futures::future::LocalBoxFuture<'s, Result<Bytes>>;

/// Consecutive wanted blocks of a data file, fetched with one ranged read.
pub(crate) struct BlockRun {
    /// Their bytes in the file's contents.
    range: Range<u64>,
    /// `(index in the file, handle)` of each.
    blocks: Vec<(usize, BlockHandle)>,
}

/// Reads one data file's entries within a span: the blocks that may hold its keys, fetched in
/// runs of up to [`RestoreRunOptions::read_bytes`], the next run while this one is decoded.
///
/// When the span covers the whole file and the file is not encrypted, the cursor fetches every
/// block in file order and checks the SHA-256 of all of it against the manifest when the last run
/// arrives, before its entries are returned. Otherwise each block's checksum (and, encrypted,
/// each chunk's authentication tag, which binds its index and the file's path) is what vouches
/// for it, as for a ranged read of one table's blocks. A restore that finds a mismatch fails,
/// and its ingested data is discarded.
pub(crate) struct FileCursor<'s> {
    path: String,
    span: Span,
    reader: Arc<FileReader<'s>>,
    /// Counts the bytes read, and says when the restore is canceled.
    counter: &'s RestoreCounter,
    /// Runs not fetched yet, in file order.
    runs: VecDeque<BlockRun>,
    /// The next run, being fetched.
    fetch: Option<(BlockRun, MaybeDone<ReadFuture<'s>>)>,
    /// Fetched blocks, not decoded yet.
    blocks: VecDeque<(usize, BlockHandle, Bytes)>,
    current: VecDeque<Entry>,
    /// For a whole plain file: the hash of the bytes fetched so far, the index and footer (the
    /// file's last bytes, fetched first) and the SHA-256 the manifest names.
    check: Option<(Sha256, Bytes, [u8; 32])>,
    /// The payload bytes its blocks may still decode to ([`decode_budget`] of the manifest's
    /// counts): a forged block cannot make the restore allocate past what the file holds.
    budget: u64,
    /// The last entry decoded, to check the order across blocks.
    last: Option<(Bytes, Timestamp)>,
}

impl<'s> FileCursor<'s> {
    /// Reads the footer and the index of `file` (stored in `storage`) and starts fetching the
    /// first run of the blocks that may hold keys of `span`. Encrypted files are read with
    /// `codec`, only the chunks covering the wanted bytes.
    pub(crate) async fn open(
        storage: &'s dyn ExternalStorage,
        file: &FileInfo,
        span: Span,
        codec: &FileCodec,
        read_bytes: u64,
        counter: &'s RestoreCounter,
    ) -> Result<FileCursor<'s>> {
        counter.opened();
        let path = format!("{}/{}", storage.describe(), file.path);
        let size = storage.size(&file.path).await.map_err(|e| match e {
            Error::NotFound { .. } => Error::corrupt(&path, "data file named by the manifest is missing"),
            e => e,
        })?;
        if size != file.size {
            return Err(Error::corrupt(&path, format!("size is {size} bytes, the manifest says {}", file.size)));
        }
        let reader = Arc::new(codec.reader(storage, &file.path, size, &path).await?);
        let size = reader.plain_size();
        if size < FOOTER_LEN {
            return Err(Error::corrupt(&path, "file is too short to hold a data file footer"));
        }
        let footer_bytes = reader.read_range(size - FOOTER_LEN..size).await?;
        let footer = decode_footer(&footer_bytes, size, &path)?;
        let index_bytes = reader.read_range(footer.index_offset..footer.index_offset + footer.index_len as u64).await?;
        counter.fetched(footer_bytes.len() + index_bytes.len())?;
        if footer.entries != file.entries {
            return Err(Error::corrupt(
                &path,
                format!("the footer counts {} entries, the manifest says {}", footer.entries, file.entries),
            ));
        }
        let index = decode_index(&index_bytes, &footer, &path)?;
        if let (Some(first), Some(last)) = (index.first(), index.last()) {
            if first.first_key < file.span.start || last.last_key >= file.span.end {
                return Err(Error::corrupt(&path, "holds keys outside the span the manifest gives it"));
            }
        }
        let whole = span.start <= file.span.start && file.span.end <= span.end;
        let check = if whole && !codec.is_encrypted() {
            // Every block, in file order, and then the index and the footer: the whole file, if
            // the blocks tile it up to the index, as the writer lays them out.
            let mut at = 0;
            for h in &index {
                if h.offset != at {
                    return Err(Error::corrupt(&path, format!("a block starts at byte {}, expected {at}", h.offset)));
                }
                at += h.len as u64;
            }
            if at != footer.index_offset {
                return Err(Error::corrupt(
                    &path,
                    format!("the blocks end at byte {at}, the index starts at {}", footer.index_offset),
                ));
            }
            Some((Sha256::new(), Bytes::from([index_bytes, footer_bytes].concat()), file.sha256))
        } else {
            None
        };
        let mut runs: VecDeque<BlockRun> = VecDeque::new();
        for (i, h) in index.into_iter().enumerate().filter(|(_, h)| whole || h.overlaps(&span)) {
            let range = h.range();
            match runs.back_mut() {
                Some(run) if run.range.end == range.start && range.end - run.range.start <= read_bytes => {
                    run.range.end = range.end;
                    run.blocks.push((i, h));
                }
                _ => runs.push_back(BlockRun { range, blocks: vec![(i, h)] }),
            }
        }
        let mut cursor = FileCursor {
            path,
            span,
            reader,
            counter,
            runs,
            fetch: None,
            blocks: VecDeque::new(),
            current: VecDeque::new(),
            check,
            budget: decode_budget(file.logical_bytes, file.entries),
            last: None,
        };
        cursor.fetch_next_run().await;
        Ok(cursor)
    }

    /// Starts fetching the next run, if any: the first poll starts the read.
    async fn fetch_next_run(&mut self) {
        let Some(run) = self.runs.pop_front() else { return };
        let reader = self.reader.clone();
        let range = run.range.clone();
        let read: ReadFuture<'s> = Box::pin(async move { reader.read_range(range).await });
        self.fetch = Some((run, maybe_done(read)));
        self.poll_fetch().await;
    }

    /// Polls the run being fetched once, without waiting.
    pub(crate) async fn poll_fetch(&mut self) {
        if let Some((_, fetch)) = &mut self.fetch {
            stage::start(Pin::new(fetch)).await;
        }
    }

    /// The next entry inside the span, decoding the next block, and waiting for the next run,
    /// when needed.
    pub(crate) async fn next(&mut self) -> Result<Option<Entry>> {
        loop {
            while let Some(e) = self.current.pop_front() {
                if self.span.contains(&e.key) {
                    return Ok(Some(e));
                }
            }
            if let Some((i, handle, data)) = self.blocks.pop_front() {
                let current = &mut self.current;
                let used = decode_block_within(&data, &handle, i, &self.path, self.budget, |e| current.push_back(e))?;
                self.budget -= used;
                // Blocks are in key order (the index says so, and each block's entries match
                // its keys); a key whose versions straddle two blocks must stay newest first.
                if let (Some((key, ts)), Some(first)) = (&self.last, self.current.front()) {
                    if (&key[..], std::cmp::Reverse(*ts)) >= (&first.key[..], std::cmp::Reverse(first.ts)) {
                        return Err(Error::corrupt(
                            &self.path,
                            format!("block {i} starts before the previous one ends"),
                        ));
                    }
                }
                self.last = self.current.back().map(|e| (e.key.clone(), e.ts));
                continue;
            }
            let Some((run, mut fetch)) = self.fetch.take() else { return Ok(None) };
            let data = stage::output(Pin::new(&mut fetch)).await?;
            self.counter.fetched(data.len())?;
            if data.len() as u64 != run.range.end - run.range.start {
                return Err(Error::corrupt(
                    &self.path,
                    format!("a read of bytes {:?} returned {} bytes", run.range, data.len()),
                ));
            }
            if let Some((hash, _, _)) = &mut self.check {
                hash.update(&data);
            }
            for (i, h) in run.blocks {
                let r = (h.offset - run.range.start) as usize..(h.offset - run.range.start + h.len as u64) as usize;
                self.blocks.push_back((i, h, data.slice(r)));
            }
            self.fetch_next_run().await;
            if self.fetch.is_none() {
                if let Some((mut hash, tail, expected)) = self.check.take() {
                    hash.update(&tail);
                    if <[u8; 32]>::from(hash.finalize()) != expected {
                        return Err(Error::corrupt(&self.path, "SHA-256 does not match the manifest"));
                    }
                }
            }
        }
    }
}
