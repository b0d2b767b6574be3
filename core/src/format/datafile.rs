//! The data file: sorted MVCC entries in checksummed, optionally compressed blocks, with a block
//! index and a fixed-size footer, so a reader can fetch one table's blocks with ranged reads.
//!
//! ```text
//! block 0 | block 1 | … | index | footer (36 bytes)
//! block  = payload | codec: u8 | crc32(payload ‖ codec): u32 LE
//!          codec 0: payload as is; 1: LZ4 block = decompressed_len u32 LE ‖ LZ4 block format;
//!          2: zstd = decompressed_len u32 LE ‖ one zstd frame with its content size
//! payload (after decompression), version 2 = heads_len: u32 LE | head* | value*
//! head   = key_len: u32 LE | key | wall: u64 LE | logical: u32 LE | kind: u8 (0 value, 1 tombstone)
//!          | [value_len: u32 LE]              (only for kind 0; its value follows the heads, in order)
//! payload, version 1 = entry*, entry = head with its value right after its value_len
//! index  = block_count × (first_key_len u32 | first_key | last_key_len u32 | last_key
//!          | offset u64 | len u32 | entries u32)      (all LE)
//! footer = index_offset u64 | index_len u32 | index_crc u32 | entries u64 | version u16
//!          | flags u16 | magic "STRATADF"
//! ```
//! Entries are sorted by key ascending, then timestamp descending. Every integer has a fixed
//! width and little-endian byte order. Version 2 keeps a block's keys, timestamps and lengths
//! apart from its values, so that zstd sees like with like: on the bench's rows its blocks are
//! ~7% smaller than version 1's. Version 1 files (every backup before it) still read.

use bytes::Bytes;
use std::ops::Range;

use crate::envelope::DATA_FILE;
use crate::error::{Error, Result};
#[cfg(test)]
use crate::format::codec::CODEC_LZ4;
use crate::format::codec::{decompress_block, BlockCompressor, CODEC_NONE};
pub use crate::format::codec::{BlockCodec, ZSTD_DEFAULT_LEVEL};
use crate::kv::Entry;
use crate::span::Span;
use crate::timestamp::Timestamp;

/// The data file's magic, last 8 bytes of the file.
pub const DATA_FILE_MAGIC: &[u8; 8] = DATA_FILE.magic();
/// The data file format version this build writes.
pub const DATA_FILE_VERSION: u16 = DATA_FILE.version();
/// Size of the fixed footer.
pub const FOOTER_LEN: u64 = 36;

/// The most bytes a compressed (LZ4 or zstd) block decompresses to. The writer compresses a block only
/// when its payload is at most this (a bigger one, which only a single huge value makes, is
/// stored as it is), so a reader refuses an LZ4 block that claims more before allocating
/// anything: a forged size header cannot make a restore allocate more than this per block.
pub const MAX_LZ4_BLOCK_LEN: u32 = 64 << 20;
/// Bytes an entry adds to its block's payload besides its key and value (the key's length, the
/// timestamp, the kind, the value's length): a file's decoded blocks hold at most
/// `logical_bytes + ENTRY_OVERHEAD × entries` bytes ([`decode_budget`]).
/// Version 2 adds a block's 4-byte heads length, at most once per entry (a block holds one or
/// more), so it is counted per entry.
pub const ENTRY_OVERHEAD: u64 = 4 + 8 + 4 + 1 + 4 + 4;

/// The most payload bytes the blocks of a file with these statistics (as its manifest records
/// them) decode to: what a reader lets them allocate.
pub fn decode_budget(logical_bytes: u64, entries: u64) -> u64 {
    logical_bytes.saturating_add(entries.saturating_mul(ENTRY_OVERHEAD))
}

/// How data files are written.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DataFileOptions {
    /// Uncompressed bytes per block before it is closed.
    pub block_size: usize,
    /// How blocks are compressed (a compressed block is kept only where it saves at least 1/8).
    pub codec: BlockCodec,
}

impl Default for DataFileOptions {
    fn default() -> Self {
        DataFileOptions { block_size: 256 << 10, codec: BlockCodec::DEFAULT }
    }
}

impl DataFileOptions {
    /// Sets the block size.
    pub fn with_block_size(mut self, block_size: usize) -> Self {
        self.block_size = block_size.max(1);
        self
    }
    /// Compresses blocks with the default codec, or not at all.
    pub fn with_compress(mut self, compress: bool) -> Self {
        self.codec = if compress { BlockCodec::DEFAULT } else { BlockCodec::None };
        self
    }
    /// Sets the codec.
    pub fn with_codec(mut self, codec: BlockCodec) -> Self {
        self.codec = codec;
        self
    }
}

/// Where one block is, and which keys it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHandle {
    /// First key in the block.
    pub first_key: Vec<u8>,
    /// Last key in the block.
    pub last_key: Vec<u8>,
    /// Byte offset in the file.
    pub offset: u64,
    /// Length in bytes, trailer included.
    pub len: u32,
    /// Entries in the block.
    pub entries: u32,
    /// The format version of the file holding it ([`Footer::version`]): how its entries are
    /// laid out.
    pub version: u16,
}

impl BlockHandle {
    /// Whether the block may hold keys of `span`.
    pub fn overlaps(&self, span: &Span) -> bool {
        self.first_key < span.end && span.start <= self.last_key
    }

    /// The byte range of the block in the file.
    pub fn range(&self) -> Range<u64> {
        self.offset..self.offset + self.len as u64
    }
}

/// What the footer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// Where the index starts.
    pub index_offset: u64,
    /// Its length.
    pub index_len: u32,
    /// CRC-32 of the index bytes.
    pub index_crc: u32,
    /// Entries in the file.
    pub entries: u64,
    /// Format version that wrote it.
    pub version: u16,
}

/// Statistics of a written file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataFileStats {
    /// Entries written.
    pub entries: u64,
    /// Entries that carry a value (rows), tombstones excluded.
    pub rows: u64,
    /// Bytes of keys and values before encoding.
    pub logical_bytes: u64,
    /// Blocks written.
    pub blocks: u32,
}

/// Builds a data file in memory from sorted entries.
pub struct DataFileWriter {
    options: DataFileOptions,
    out: Vec<u8>,
    /// The open block's heads (keys, timestamps, kinds and value lengths).
    block: Vec<u8>,
    /// The open block's values.
    values: Vec<u8>,
    /// A closed block's payload, before compression (kept to reuse its allocation).
    payload: Vec<u8>,
    block_first: Vec<u8>,
    block_last: Vec<u8>,
    block_entries: u32,
    index: Vec<BlockHandle>,
    stats: DataFileStats,
    last_key: Option<(Vec<u8>, Timestamp)>,
    compressor: BlockCompressor,
}

impl DataFileWriter {
    /// A writer with these options.
    pub fn new(options: DataFileOptions) -> DataFileWriter {
        DataFileWriter {
            compressor: BlockCompressor::new(options.codec),
            block: Vec::with_capacity(options.block_size / 4 + 1024),
            values: Vec::with_capacity(options.block_size + 1024),
            payload: Vec::new(),
            options,
            out: Vec::new(),
            block_first: Vec::new(),
            block_last: Vec::new(),
            block_entries: 0,
            index: Vec::new(),
            stats: DataFileStats::default(),
            last_key: None,
        }
    }

    /// Appends one version. Versions must come sorted by key, then timestamp descending.
    pub fn add(&mut self, key: &[u8], ts: Timestamp, value: Option<&[u8]>) {
        debug_assert!(
            self.last_key
                .as_ref()
                .is_none_or(|(k, t)| (k.as_slice(), std::cmp::Reverse(*t)) < (key, std::cmp::Reverse(ts))),
            "data file entries out of order"
        );
        if self.block_entries == 0 {
            self.block_first.clear();
            self.block_first.extend_from_slice(key);
        }
        let b = &mut self.block;
        b.extend_from_slice(&(key.len() as u32).to_le_bytes());
        b.extend_from_slice(key);
        b.extend_from_slice(&ts.wall.to_le_bytes());
        b.extend_from_slice(&ts.logical.to_le_bytes());
        match value {
            Some(v) => {
                b.push(0);
                b.extend_from_slice(&(v.len() as u32).to_le_bytes());
                self.values.extend_from_slice(v);
                self.stats.rows += 1;
                self.stats.logical_bytes += v.len() as u64;
            }
            None => b.push(1),
        }
        self.stats.logical_bytes += key.len() as u64;
        self.stats.entries += 1;
        self.block_entries += 1;
        if cfg!(debug_assertions) {
            self.last_key = Some((key.to_vec(), ts));
        }
        if self.block.len() + self.values.len() >= self.options.block_size {
            self.block_last.clear();
            self.block_last.extend_from_slice(key);
            self.flush_block();
        } else {
            // Remember the last key cheaply only when the block closes; track it here otherwise.
            self.block_last.clear();
            self.block_last.extend_from_slice(key);
        }
    }

    /// Appends an [`Entry`].
    pub fn add_entry(&mut self, e: &Entry) {
        self.add(&e.key, e.ts, e.value.as_deref());
    }

    /// Bytes produced so far (an estimate of the file's final size).
    pub fn estimated_size(&self) -> usize {
        self.out.len() + self.block.len() + self.values.len()
    }

    /// Entries added so far.
    pub fn entries(&self) -> u64 {
        self.stats.entries
    }

    fn flush_block(&mut self) {
        if self.block_entries == 0 {
            return;
        }
        let offset = self.out.len() as u64;
        self.payload.clear();
        self.payload.extend_from_slice(&(self.block.len() as u32).to_le_bytes());
        self.payload.extend_from_slice(&self.block);
        self.payload.extend_from_slice(&self.values);
        let codec = self.compressor.compress_into(&self.payload, &mut self.out);
        if codec == CODEC_NONE {
            self.out.extend_from_slice(&self.payload);
        }
        self.out.push(codec);
        let crc = crc32fast::hash(&self.out[offset as usize..]);
        self.out.extend_from_slice(&crc.to_le_bytes());
        self.index.push(BlockHandle {
            first_key: std::mem::take(&mut self.block_first),
            last_key: self.block_last.clone(),
            offset,
            len: (self.out.len() as u64 - offset) as u32,
            entries: self.block_entries,
            version: DATA_FILE_VERSION,
        });
        self.stats.blocks += 1;
        self.block.clear();
        self.values.clear();
        self.block_entries = 0;
    }

    /// Finishes the file: the bytes to store and their statistics.
    pub fn finish(mut self) -> (Vec<u8>, DataFileStats) {
        self.flush_block();
        let index_offset = self.out.len() as u64;
        for h in &self.index {
            put_bytes(&mut self.out, &h.first_key);
            put_bytes(&mut self.out, &h.last_key);
            self.out.extend_from_slice(&h.offset.to_le_bytes());
            self.out.extend_from_slice(&h.len.to_le_bytes());
            self.out.extend_from_slice(&h.entries.to_le_bytes());
        }
        let index_len = (self.out.len() as u64 - index_offset) as u32;
        let index_crc = crc32fast::hash(&self.out[index_offset as usize..]);
        self.out.extend_from_slice(&index_offset.to_le_bytes());
        self.out.extend_from_slice(&index_len.to_le_bytes());
        self.out.extend_from_slice(&index_crc.to_le_bytes());
        self.out.extend_from_slice(&self.stats.entries.to_le_bytes());
        self.out.extend_from_slice(&DATA_FILE_VERSION.to_le_bytes());
        self.out.extend_from_slice(&0u16.to_le_bytes());
        self.out.extend_from_slice(DATA_FILE_MAGIC);
        (self.out, self.stats)
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// A cursor over bytes that reports truncation as corruption of `path`.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    path: &'a str,
    what: &'a str,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.data.len() - self.pos < n {
            return Err(Error::corrupt(self.path, format!("{} is truncated", self.what)));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn done(&self) -> bool {
        self.pos == self.data.len()
    }
}

/// Reads the footer from the file's last [`FOOTER_LEN`] bytes.
pub fn decode_footer(bytes: &[u8], file_size: u64, path: &str) -> Result<Footer> {
    if bytes.len() as u64 != FOOTER_LEN || file_size < FOOTER_LEN {
        return Err(Error::corrupt(path, "file is too short to hold a data file footer"));
    }
    DATA_FILE.check_magic(&bytes[28..36], path)?;
    let mut c = Cursor { data: bytes, pos: 0, path, what: "footer" };
    let footer = Footer {
        index_offset: c.u64()?,
        index_len: c.u32()?,
        index_crc: c.u32()?,
        entries: c.u64()?,
        version: u16::from_le_bytes(c.take(2)?.try_into().expect("2 bytes")),
    };
    if c.take(2)? != [0, 0] {
        return Err(Error::corrupt(path, "data file footer has unknown flags"));
    }
    DATA_FILE.check_version(footer.version, path)?;
    if footer.index_offset.checked_add(footer.index_len as u64 + FOOTER_LEN) != Some(file_size) {
        return Err(Error::corrupt(path, "footer does not match the file's size (truncated or extended?)"));
    }
    Ok(footer)
}

/// Reads the block index.
pub fn decode_index(bytes: &[u8], footer: &Footer, path: &str) -> Result<Vec<BlockHandle>> {
    if crc32fast::hash(bytes) != footer.index_crc {
        return Err(Error::corrupt(path, "block index checksum mismatch"));
    }
    let mut c = Cursor { data: bytes, pos: 0, path, what: "block index" };
    let mut out = Vec::new();
    let mut expected_offset = 0u64;
    let mut total = 0u64;
    while !c.done() {
        let h = BlockHandle {
            first_key: c.bytes()?.to_vec(),
            last_key: c.bytes()?.to_vec(),
            offset: c.u64()?,
            len: c.u32()?,
            entries: c.u32()?,
            version: footer.version,
        };
        if h.offset != expected_offset || h.len < 5 {
            return Err(Error::corrupt(path, format!("block {} has an invalid position", out.len())));
        }
        if h.entries == 0 || h.first_key > h.last_key {
            return Err(Error::corrupt(path, format!("block {} has an invalid key range or no entries", out.len())));
        }
        if out.last().is_some_and(|p: &BlockHandle| p.last_key > h.first_key) {
            return Err(Error::corrupt(
                path,
                format!("block {} starts before the previous block ends (keys out of order)", out.len()),
            ));
        }
        expected_offset += h.len as u64;
        total += h.entries as u64;
        out.push(h);
    }
    if expected_offset != footer.index_offset || total != footer.entries {
        return Err(Error::corrupt(path, "block index does not cover the file"));
    }
    Ok(out)
}

/// Decodes one block's entries (verifying its checksum), calling `f` for each.
pub fn decode_block(bytes: &[u8], handle: &BlockHandle, index: usize, path: &str, f: impl FnMut(Entry)) -> Result<()> {
    decode_block_within(bytes, handle, index, path, u64::MAX, f).map(|_| ())
}

/// [`decode_block`], letting the block's payload take at most `max_payload` bytes (and an LZ4
/// block at most [`MAX_LZ4_BLOCK_LEN`]), checked before anything is allocated; returns the
/// payload's size. The entries must be in order (key ascending, then newest first) and start and
/// end with the keys the index gives the block.
pub fn decode_block_within(
    bytes: &[u8],
    handle: &BlockHandle,
    index: usize,
    path: &str,
    max_payload: u64,
    mut f: impl FnMut(Entry),
) -> Result<u64> {
    if bytes.len() != handle.len as usize || bytes.len() < 5 {
        return Err(Error::corrupt(path, format!("block {index} is truncated")));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(Error::corrupt(path, format!("block {index} checksum mismatch")));
    }
    let (payload, codec) = body.split_at(body.len() - 1);
    // The entries are slices of one buffer per block: no allocation per entry.
    let payload = decompress_block(codec[0], payload, index, path, max_payload)?;
    let what = format!("block {index}");
    // Version 2: the heads, then the values from `values` on, in order; version 1: each value
    // right after its head.
    let (heads, mut values) = if handle.version >= 2 {
        let mut c = Cursor { data: &payload, pos: 0, path, what: &what };
        let len = c.u32()? as usize;
        match 4usize.checked_add(len).filter(|&end| end <= payload.len()) {
            Some(end) => (&payload[..end], Some(end)),
            None => return Err(Error::corrupt(path, format!("block {index}'s heads run past its end"))),
        }
    } else {
        (&payload[..], None)
    };
    let mut c = Cursor { data: heads, pos: if values.is_some() { 4 } else { 0 }, path, what: &what };
    let mut n = 0u32;
    let mut last: Option<(Bytes, Timestamp)> = None;
    while !c.done() {
        let len = c.bytes()?.len();
        let key = payload.slice(c.pos - len..c.pos);
        let ts = Timestamp::new(c.u64()?, c.u32()?);
        let value = match c.u8()? {
            0 => match &mut values {
                Some(at) => {
                    let len = c.u32()? as usize;
                    let Some(end) = at.checked_add(len).filter(|&end| end <= payload.len()) else {
                        return Err(Error::corrupt(
                            path,
                            format!("block {index}: entry {n}'s value runs past its end"),
                        ));
                    };
                    let value = payload.slice(*at..end);
                    *at = end;
                    Some(value)
                }
                None => {
                    let len = c.bytes()?.len();
                    Some(payload.slice(c.pos - len..c.pos))
                }
            },
            1 => None,
            k => return Err(Error::corrupt(path, format!("block {index} has an entry of unknown kind {k}"))),
        };
        let in_order = match &last {
            None => key[..] == handle.first_key[..],
            Some((k, t)) => (&k[..], std::cmp::Reverse(*t)) < (&key[..], std::cmp::Reverse(ts)),
        };
        if !in_order || key[..] > handle.last_key[..] {
            return Err(Error::corrupt(
                path,
                format!("block {index}: entry {n} is out of order or outside the keys the index gives the block"),
            ));
        }
        last = Some((key.clone(), ts));
        f(Entry { key, ts, value });
        n = n.saturating_add(1);
    }
    if n != handle.entries {
        return Err(Error::corrupt(path, format!("block {index} holds {n} entries, index says {}", handle.entries)));
    }
    if values.is_some_and(|at| at != payload.len()) {
        return Err(Error::corrupt(path, format!("block {index} holds bytes after its last value")));
    }
    if last.is_some_and(|(k, _)| k[..] != handle.last_key[..]) {
        return Err(Error::corrupt(path, format!("block {index} does not end with the key the index says")));
    }
    Ok(payload.len() as u64)
}

/// Reads every entry of a whole file held in memory.
pub fn read_all(bytes: &[u8], path: &str) -> Result<Vec<Entry>> {
    read_span(bytes, path, None)
}

/// Reads the entries of `span` (or all) from a whole file held in memory.
pub fn read_span(bytes: &[u8], path: &str, span: Option<&Span>) -> Result<Vec<Entry>> {
    let size = bytes.len() as u64;
    if size < FOOTER_LEN {
        return Err(Error::corrupt(path, "file is too short to hold a data file footer"));
    }
    let footer = decode_footer(&bytes[(size - FOOTER_LEN) as usize..], size, path)?;
    let index_range = footer.index_offset as usize..(footer.index_offset + footer.index_len as u64) as usize;
    let index = decode_index(&bytes[index_range], &footer, path)?;
    let mut out = Vec::new();
    // A key's versions may straddle two blocks: they must stay newest first across them too.
    let mut last: Option<(Bytes, Timestamp)> = None;
    for (i, h) in index.iter().enumerate() {
        if span.is_some_and(|s| !h.overlaps(s)) {
            continue;
        }
        let r = h.range();
        let mut in_order = true;
        decode_block(&bytes[r.start as usize..r.end as usize], h, i, path, |e| {
            if let Some((k, t)) = last.take() {
                in_order &= (&k[..], std::cmp::Reverse(t)) < (&e.key[..], std::cmp::Reverse(e.ts));
            }
            last = Some((e.key.clone(), e.ts));
            if span.is_none_or(|s| s.contains(&e.key)) {
                out.push(e)
            }
        })?;
        if !in_order {
            return Err(Error::corrupt(path, format!("block {i} starts before the previous one ends")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn entries(n: u32) -> Vec<Entry> {
        (0..n)
            .map(|i| Entry {
                key: format!("key{i:06}").into_bytes().into(),
                ts: Timestamp::new(100 + i as u64, 0),
                value: if i % 7 == 3 {
                    None
                } else {
                    Some(format!("value-{i}-{}", "x".repeat(i as usize % 50)).into_bytes().into())
                },
            })
            .collect()
    }

    fn write(es: &[Entry], opts: DataFileOptions) -> (Vec<u8>, DataFileStats) {
        let mut w = DataFileWriter::new(opts);
        for e in es {
            w.add_entry(e);
        }
        w.finish()
    }

    #[test]
    fn round_trip_with_small_blocks() {
        let es = entries(1000);
        let (bytes, stats) = write(&es, DataFileOptions::default().with_block_size(512));
        assert!(stats.blocks > 10);
        assert_eq!(stats.entries, 1000);
        assert_eq!(stats.rows, es.iter().filter(|e| e.value.is_some()).count() as u64);
        assert_eq!(read_all(&bytes, "f").unwrap(), es);
    }

    #[test]
    fn span_reads_only_matching_entries() {
        let es = entries(1000);
        let (bytes, _) = write(&es, DataFileOptions::default().with_block_size(512));
        let span = Span::new(b"key000100".to_vec(), b"key000200".to_vec());
        let got = read_span(&bytes, "f", Some(&span)).unwrap();
        assert_eq!(got, es[100..200].to_vec());
    }

    #[test]
    fn empty_file_round_trips() {
        let (bytes, _) = write(&[], DataFileOptions::default());
        assert_eq!(bytes.len() as u64, FOOTER_LEN);
        assert!(read_all(&bytes, "f").unwrap().is_empty());
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let es = entries(40);
        let (bytes, _) = write(&es, DataFileOptions::default().with_block_size(256));
        for pos in 0..bytes.len() {
            for bit in [0u8, 3, 7] {
                let mut damaged = bytes.clone();
                damaged[pos] ^= 1 << bit;
                match read_all(&damaged, "data/x.sst") {
                    Err(Error::Corrupt { path, .. }) => assert_eq!(path, "data/x.sst"),
                    other => panic!("flip at byte {pos} bit {bit} not detected: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn truncation_and_extension_are_detected() {
        let (bytes, _) = write(&entries(100), DataFileOptions::default().with_block_size(256));
        for cut in [1, 5, 36, 100, bytes.len() - 1] {
            assert!(matches!(read_all(&bytes[..bytes.len() - cut], "f"), Err(Error::Corrupt { .. })), "cut {cut}");
        }
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0; 10]);
        assert!(matches!(read_all(&longer, "f"), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn forged_sizes_and_offsets_are_corrupt_before_anything_is_allocated() {
        let es: Vec<Entry> = (0..200u32)
            .map(|i| Entry::new(i.to_be_bytes().to_vec(), Timestamp::new(9, 0), Some(vec![7; 100])))
            .collect();
        let (bytes, _) = write(&es, DataFileOptions::default().with_block_size(4096).with_codec(BlockCodec::Lz4));
        let size = bytes.len();
        let footer = decode_footer(&bytes[size - 36..], size as u64, "f").unwrap();
        let index = decode_index(&bytes[footer.index_offset as usize..size - 36], &footer, "f").unwrap();
        let block = index[0].range();
        let (start, end) = (block.start as usize, block.end as usize);
        assert_eq!(bytes[end - 5], CODEC_LZ4);
        let real = u32::from_le_bytes(bytes[start..start + 4].try_into().unwrap());
        for (claimed, says) in [
            (u32::MAX, "more than a block holds"),
            (MAX_LZ4_BLOCK_LEN, "but its LZ4 sequences hold"),
            (real + 1, "but its LZ4 sequences hold"),
            (real - 1, "but its LZ4 sequences hold"),
        ] {
            let mut forged = bytes.clone();
            forged[start..start + 4].copy_from_slice(&claimed.to_le_bytes());
            let crc = crc32fast::hash(&forged[start..end - 4]);
            forged[end - 4..end].copy_from_slice(&crc.to_le_bytes());
            let err = read_all(&forged, "data/x.sst").unwrap_err().to_string();
            assert!(err.starts_with("corrupt data/x.sst: block 0 claims") && err.contains(says), "{claimed}: {err}");
        }
        // A budget below the block's payload refuses it before decompressing.
        let err = decode_block_within(&bytes[start..end], &index[0], 0, "f", real as u64 - 1, |_| {}).unwrap_err();
        assert!(err.to_string().contains("more than the"), "{err}");
        assert_eq!(decode_block_within(&bytes[start..end], &index[0], 0, "f", real as u64, |_| {}), Ok(real as u64));
        // An index offset that overflows with the index's length.
        let mut forged = bytes.clone();
        forged[size - 36..size - 28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(read_all(&forged, "f"), Err(Error::Corrupt { .. })));
    }

    proptest! {
        #[test]
        fn arbitrary_entries_round_trip(mut raw in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..20), any::<u64>(), any::<u32>(), prop::option::of(prop::collection::vec(any::<u8>(), 0..300))),
            0..200), block in 16usize..4096, codec in 0..4u8) {
            raw.sort_by(|a, b| (&a.0, std::cmp::Reverse((a.1, a.2))).cmp(&(&b.0, std::cmp::Reverse((b.1, b.2)))));
            raw.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1 && a.2 == b.2);
            let es: Vec<Entry> = raw.into_iter().map(|(key, w, l, value)| Entry::new(key, Timestamp::new(w, l), value)).collect();
            let codec = [BlockCodec::None, BlockCodec::Lz4, BlockCodec::Zstd { level: 1 }, BlockCodec::Zstd { level: -5 }][codec as usize];
            let (bytes, _) = write(&es, DataFileOptions::default().with_block_size(block).with_codec(codec));
            prop_assert_eq!(read_all(&bytes, "f").unwrap(), es);
        }
    }
}
