//! The chunked AES-256-GCM format of every encrypted file in a backup (data files, the manifest,
//! the run's plan and done records).
//!
//! ```text
//! file   = header | chunk 0 | chunk 1 | … | chunk n-1           (n >= 1)
//! header = magic "STRATAEN" | version: u16 LE (1) | reserved: u16 (0) | chunk_size: u32 LE | salt: [u8; 16]
//! chunk  = AES-256-GCM(file key, nonce_i, aad_i, plaintext[i*chunk_size .. (i+1)*chunk_size]) | tag (16)
//!
//! file key = HMAC-SHA256(data key, "strata file key v1" | salt)
//! nonce_i  = 0u32 | i: u64 BE
//! aad_i    = header | path | i: u64 LE | last: u8 (1 for chunk n-1, else 0)
//! salt     = first 16 bytes of HMAC-SHA256(data key, "strata file salt v1" | len(path): u32 LE | path | SHA-256(plaintext))
//! ```
//!
//! Every chunk but the last holds exactly `chunk_size` plaintext bytes; the last holds 1 to
//! `chunk_size` (0 only when the whole file is empty), so the plaintext size follows from the
//! stored size. `path` is the file's path relative to its backup layer's directory
//! (`data/….sst`, `BACKUP_MANIFEST`): a file moved to another path, chunks reordered, a file cut
//! at a chunk boundary or extended, or any bit flipped, each fails authentication.
//!
//! Each file gets its own key, derived from the chain's data key and a salt, so nonces (a chunk
//! counter) never repeat under one key. The salt is synthetic — a keyed hash of the path and the
//! plaintext — rather than random: sealing the same bytes at the same path twice writes the same
//! file (a re-run of a backup rewrites identical files, as the plain format does), and two
//! different plaintexts get different keys. It reveals only that two files at the same path are
//! identical.
//!
//! A ranged read of plaintext bytes `a..b` fetches the chunks `a / chunk_size ..= (b-1) / chunk_size`
//! with one ranged read, decrypts them and slices.

use std::ops::Range;

use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::Aes256Gcm;

use crate::crypto::DataKey;
use crate::envelope::ENCRYPTED_FILE;
use crate::error::{Error, Result};
use crate::format::manifest::sha256;

/// The magic every encrypted file starts with.
pub const MAGIC: &[u8; 8] = ENCRYPTED_FILE.magic();
/// The format version this build writes and reads.
pub const VERSION: u16 = ENCRYPTED_FILE.version();
/// Bytes of the header.
pub const HEADER_LEN: u64 = 32;
/// Bytes of a chunk's authentication tag.
pub const TAG_LEN: u64 = 16;
/// Plaintext bytes per chunk unless configured otherwise (64 KiB: 0.02% of tag overhead, and a
/// ranged read of one 32 KiB block fetches at most two chunks).
pub const DEFAULT_CHUNK_SIZE: u32 = 64 << 10;
/// Smallest chunk size accepted.
pub const MIN_CHUNK_SIZE: u32 = 64;
/// Largest chunk size accepted.
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;

/// Whether stored bytes look like an encrypted file (they start with [`MAGIC`]).
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// The per-file salt.
    pub salt: [u8; 16],
    bytes: [u8; HEADER_LEN as usize],
}

impl Header {
    fn new(chunk_size: u32, salt: [u8; 16]) -> Header {
        let mut bytes = [0u8; HEADER_LEN as usize];
        bytes[..8].copy_from_slice(MAGIC);
        bytes[8..10].copy_from_slice(&VERSION.to_le_bytes());
        bytes[12..16].copy_from_slice(&chunk_size.to_le_bytes());
        bytes[16..32].copy_from_slice(&salt);
        Header { chunk_size, salt, bytes }
    }

    /// Parses the first [`HEADER_LEN`] bytes of a file shown as `shown`.
    pub fn parse(bytes: &[u8], shown: &str) -> Result<Header> {
        if bytes.len() < HEADER_LEN as usize || !is_sealed(bytes) {
            return Err(Error::corrupt(
                shown,
                "not an encrypted strata file (no STRATAEN header), but the backup is encrypted",
            ));
        }
        ENCRYPTED_FILE.check_version(u16::from_le_bytes([bytes[8], bytes[9]]), shown)?;
        let chunk_size = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
        if bytes[10..12] != [0, 0] || !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(Error::corrupt(shown, "encrypted file header is damaged"));
        }
        let salt = bytes[16..32].try_into().expect("16 bytes");
        Ok(Header::new(chunk_size, salt))
    }
}

/// Where the chunks of an encrypted file are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// Stored (encrypted) size.
    pub stored: u64,
    /// Plaintext size.
    pub plain: u64,
    /// Number of chunks (at least one).
    pub chunks: u64,
}

impl Layout {
    /// The layout sealing `plain` bytes produces.
    pub fn of_plain(plain: u64, chunk_size: u32) -> Layout {
        let chunks = plain.div_ceil(chunk_size as u64).max(1);
        Layout { chunk_size, stored: HEADER_LEN + plain + chunks * TAG_LEN, plain, chunks }
    }

    /// The layout of a stored file of `stored` bytes, or an error if no plaintext seals to that size.
    pub fn of_stored(stored: u64, chunk_size: u32, shown: &str) -> Result<Layout> {
        let bad = || {
            Error::corrupt(
                shown,
                format!("size {stored} bytes is not the size of a whole encrypted file (chunks of {chunk_size} bytes): it was truncated or extended"),
            )
        };
        let body = stored.checked_sub(HEADER_LEN + TAG_LEN).ok_or_else(bad)? + TAG_LEN;
        let full = chunk_size as u64 + TAG_LEN;
        let chunks = body.div_ceil(full);
        let last = body - (chunks - 1) * full;
        if last < TAG_LEN || (chunks > 1 && last == TAG_LEN) {
            return Err(bad());
        }
        Ok(Layout { chunk_size, stored, plain: body - chunks * TAG_LEN, chunks })
    }

    /// The chunks holding plaintext bytes `range` (empty for an empty range).
    pub fn chunks_for(&self, range: &Range<u64>) -> Range<u64> {
        if range.start >= range.end {
            return 0..0;
        }
        let cs = self.chunk_size as u64;
        range.start / cs..(range.end - 1) / cs + 1
    }

    /// The stored bytes of `chunks`.
    pub fn stored_range(&self, chunks: &Range<u64>) -> Range<u64> {
        let full = self.chunk_size as u64 + TAG_LEN;
        let start = HEADER_LEN + chunks.start * full;
        let end = (HEADER_LEN + chunks.end * full).min(self.stored);
        start..end.max(start)
    }
}

/// Seals `plaintext` as the file at `path` (relative to its layer's directory).
pub fn seal(key: &DataKey, path: &str, plaintext: &[u8], chunk_size: u32) -> Vec<u8> {
    let digest = sha256(plaintext);
    let path_len = (path.len() as u32).to_le_bytes();
    let salt_full = key.prf(&[b"strata file salt v1", &path_len, path.as_bytes(), &digest]);
    let salt: [u8; 16] = salt_full[..16].try_into().expect("16 of 32 bytes");
    let header = Header::new(chunk_size, salt);
    let cipher = file_cipher(key, &salt);
    let layout = Layout::of_plain(plaintext.len() as u64, chunk_size);
    let mut aad = Aad::new(&header, path);
    let mut out = Vec::with_capacity(layout.stored as usize);
    out.extend_from_slice(&header.bytes);
    for i in 0..layout.chunks {
        let start = (i * chunk_size as u64) as usize;
        let end = (start + chunk_size as usize).min(plaintext.len());
        let at = out.len();
        out.extend_from_slice(&plaintext[start..end]);
        let tag = cipher
            .encrypt_in_place_detached(&nonce(i), aad.of(i, i + 1 == layout.chunks), &mut out[at..])
            .expect("AES-GCM encrypts any chunk under 64 GiB");
        out.extend_from_slice(&tag);
    }
    debug_assert_eq!(out.len() as u64, layout.stored);
    out
}

/// Decrypts the chunks of one encrypted file.
pub struct Opener {
    cipher: Aes256Gcm,
    header: Header,
    layout: Layout,
    path: String,
    shown: String,
}

impl Opener {
    /// An opener for the file at `path` (relative to its layer's directory, as sealed), shown in
    /// errors as `shown`, whose first bytes are `header` and whose stored size is `stored`.
    pub fn new(key: &DataKey, path: &str, header: &[u8], stored: u64, shown: &str) -> Result<Opener> {
        let header = Header::parse(header, shown)?;
        let layout = Layout::of_stored(stored, header.chunk_size, shown)?;
        Ok(Opener {
            cipher: file_cipher(key, &header.salt),
            header,
            layout,
            path: path.to_string(),
            shown: shown.to_string(),
        })
    }

    /// The file's layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Decrypts a whole stored file.
    pub fn open_all(&self, stored: &[u8]) -> Result<Vec<u8>> {
        if stored.len() as u64 != self.layout.stored {
            return Err(Error::corrupt(
                &self.shown,
                format!("size changed while reading: {} bytes, expected {}", stored.len(), self.layout.stored),
            ));
        }
        self.open_chunks(0, &stored[HEADER_LEN as usize..])
    }

    /// Decrypts consecutive chunks starting at chunk `first`, given their stored bytes (as
    /// [`Layout::stored_range`] locates them).
    pub fn open_chunks(&self, first: u64, stored: &[u8]) -> Result<Vec<u8>> {
        let full = (self.layout.chunk_size as u64 + TAG_LEN) as usize;
        let mut out = Vec::with_capacity(stored.len());
        let mut aad = Aad::new(&self.header, &self.path);
        for (k, piece) in stored.chunks(full).enumerate() {
            let i = first + k as u64;
            let last = i + 1 == self.layout.chunks;
            let r = self.layout.stored_range(&(i..i + 1));
            if i >= self.layout.chunks || piece.len() as u64 != r.end - r.start {
                return Err(Error::corrupt(&self.shown, format!("encrypted chunk {i} is cut short")));
            }
            let (body, tag) = piece.split_at(piece.len() - TAG_LEN as usize);
            let at = out.len();
            out.extend_from_slice(body);
            self.cipher
                .decrypt_in_place_detached(&nonce(i), aad.of(i, last), &mut out[at..], GenericArray::from_slice(tag))
                .map_err(|_| {
                    Error::corrupt(
                        &self.shown,
                        format!(
                            "encrypted chunk {i} of {} fails authentication: the file was damaged, truncated, \
                             extended or moved from another path",
                            self.layout.chunks
                        ),
                    )
                })?;
        }
        Ok(out)
    }
}

/// Decrypts a whole encrypted file read from `path`.
pub fn open(key: &DataKey, path: &str, stored: &[u8], shown: &str) -> Result<Vec<u8>> {
    Opener::new(key, path, stored, stored.len() as u64, shown)?.open_all(stored)
}

fn file_cipher(key: &DataKey, salt: &[u8; 16]) -> Aes256Gcm {
    let file_key = key.prf(&[b"strata file key v1", salt]);
    Aes256Gcm::new_from_slice(&file_key[..]).expect("32-byte key")
}

fn nonce(i: u64) -> GenericArray<u8, aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&i.to_be_bytes());
    GenericArray::clone_from_slice(&n)
}

/// The associated data of each chunk: a fixed prefix (header, path) and a rewritten tail.
struct Aad {
    buf: Vec<u8>,
    prefix: usize,
}

impl Aad {
    fn new(header: &Header, path: &str) -> Aad {
        let mut buf = Vec::with_capacity(HEADER_LEN as usize + path.len() + 9);
        buf.extend_from_slice(&header.bytes);
        buf.extend_from_slice(path.as_bytes());
        let prefix = buf.len();
        Aad { buf, prefix }
    }

    fn of(&mut self, index: u64, last: bool) -> &[u8] {
        self.buf.truncate(self.prefix);
        self.buf.extend_from_slice(&index.to_le_bytes());
        self.buf.push(last as u8);
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn key(b: u8) -> DataKey {
        DataKey::from_bytes(&[b; 32]).unwrap()
    }

    fn text(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn round_trips_every_size_around_chunk_boundaries() {
        for n in [0, 1, 63, 64, 65, 127, 128, 129, 1000] {
            let p = text(n);
            let sealed = seal(&key(1), "data/x.sst", &p, 64);
            assert_eq!(sealed.len() as u64, Layout::of_plain(n as u64, 64).stored);
            let layout = Layout::of_stored(sealed.len() as u64, 64, "x").unwrap();
            assert_eq!(layout.plain, n as u64, "size {n}");
            assert_eq!(open(&key(1), "data/x.sst", &sealed, "x").unwrap(), p);
        }
    }

    #[test]
    fn sealing_is_deterministic_per_path_and_contents() {
        let p = text(300);
        assert_eq!(seal(&key(1), "a", &p, 64), seal(&key(1), "a", &p, 64));
        assert_ne!(seal(&key(1), "a", &p, 64)[16..32], seal(&key(1), "b", &p, 64)[16..32]);
        let mut q = p.clone();
        q[299] ^= 1;
        assert_ne!(seal(&key(1), "a", &p, 64)[16..32], seal(&key(1), "a", &q, 64)[16..32]);
    }

    #[test]
    fn ranged_reads_decrypt_only_covering_chunks() {
        let p = text(1000);
        let sealed = seal(&key(2), "p", &p, 64);
        let o = Opener::new(&key(2), "p", &sealed, sealed.len() as u64, "p").unwrap();
        for (a, b) in [(0, 1), (63, 65), (100, 900), (999, 1000), (0, 1000), (64, 128)] {
            let chunks = o.layout().chunks_for(&(a..b));
            let r = o.layout().stored_range(&chunks);
            let plain = o.open_chunks(chunks.start, &sealed[r.start as usize..r.end as usize]).unwrap();
            let off = (a - chunks.start * 64) as usize;
            assert_eq!(&plain[off..off + (b - a) as usize], &p[a as usize..b as usize], "{a}..{b}");
        }
    }

    #[test]
    fn damage_of_any_kind_fails() {
        let p = text(500);
        let sealed = seal(&key(3), "data/a.sst", &p, 64);
        // Wrong key, wrong path.
        assert!(open(&key(4), "data/a.sst", &sealed, "x").is_err());
        assert!(open(&key(3), "data/b.sst", &sealed, "x").is_err());
        // Every single bit flip.
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1 << (i % 8);
            assert!(open(&key(3), "data/a.sst", &bad, "x").is_err(), "flip at {i}");
        }
        // Truncation at and between chunk boundaries, extension, chunk swap.
        let full = 64 + TAG_LEN as usize;
        for cut in [sealed.len() - 1, 32 + full * 7, 32 + full * 3, 32 + 5] {
            assert!(open(&key(3), "data/a.sst", &sealed[..cut], "x").is_err(), "cut at {cut}");
        }
        let mut longer = sealed.clone();
        longer.extend_from_slice(&sealed[32..32 + full]);
        assert!(open(&key(3), "data/a.sst", &longer, "x").is_err());
        let mut swapped = sealed.clone();
        swapped[32..32 + full].copy_from_slice(&sealed[32 + full..32 + 2 * full]);
        swapped[32 + full..32 + 2 * full].copy_from_slice(&sealed[32..32 + full]);
        assert!(open(&key(3), "data/a.sst", &swapped, "x").is_err());
    }

    proptest::proptest! {
        #[test]
        fn seal_open_and_ranged_reads_round_trip(
            plain in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            chunk in 64u32..700,
            a in 0usize..3001,
            b in 0usize..3001,
        ) {
            let sealed = seal(&key(5), "data/p.sst", &plain, chunk);
            proptest::prop_assert_eq!(open(&key(5), "data/p.sst", &sealed, "p").unwrap(), plain.clone());
            let o = Opener::new(&key(5), "data/p.sst", &sealed, sealed.len() as u64, "p").unwrap();
            proptest::prop_assert_eq!(o.layout().plain, plain.len() as u64);
            let (a, b) = (a.min(b).min(plain.len()), a.max(b).min(plain.len()));
            proptest::prop_assume!(a < b);
            let chunks = o.layout().chunks_for(&(a as u64..b as u64));
            let r = o.layout().stored_range(&chunks);
            let got = o.open_chunks(chunks.start, &sealed[r.start as usize..r.end as usize]).unwrap();
            let off = a - (chunks.start * chunk as u64) as usize;
            proptest::prop_assert_eq!(&got[off..off + (b - a)], &plain[a..b]);
        }
    }

    #[test]
    fn stored_sizes_that_no_plaintext_seals_to_are_refused() {
        assert!(Layout::of_stored(HEADER_LEN + TAG_LEN - 1, 64, "x").is_err());
        assert_eq!(Layout::of_stored(HEADER_LEN + TAG_LEN, 64, "x").unwrap().plain, 0);
        assert_eq!(Layout::of_stored(HEADER_LEN + 64 + TAG_LEN, 64, "x").unwrap().plain, 64);
        // A second chunk holding only a tag would be empty: never written.
        assert!(Layout::of_stored(HEADER_LEN + 64 + 2 * TAG_LEN, 64, "x").is_err());
        assert_eq!(Layout::of_stored(HEADER_LEN + 65 + 2 * TAG_LEN, 64, "x").unwrap().plain, 65);
    }
}
