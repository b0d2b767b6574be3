//! Hostile backups (issue 13 §5) and the replay of the fuzz corpora (§8).
//!
//! A plain backup needs no key, so anyone who can write to its storage can forge it: the
//! forgeries here recompute every checksum (block CRCs, the index CRC, the file's SHA-256 in the
//! manifest, `BACKUP_MANIFEST-CHECKSUM`, `ENCRYPTION-INFO`'s digest) to get past the integrity
//! checks, as an attacker would. Restoring any of them must fail cleanly, naming the file, before
//! anything is ingested, and peak at most twice the memory the honest restore peaks at: measured
//! by counting every allocation of this test binary (its global allocator), not by timing.
//!
//! The replay runs every target of `strata_core::fuzzing` (what the cargo-fuzz targets in
//! `fuzz/` call) over its committed corpus `fuzz/corpus/<target>/` and over inputs mutated from
//! it with a fixed seed, on the stable toolchain, checking each input returns without a panic
//! and within an allocation bound. `cargo test -p strata-tests --test hostile -- --ignored
//! write_seed_corpora` rewrites the corpora from the real writers.
//!
//! Its own test binary: the counting allocator must see only these tests, which take a lock so
//! they measure one at a time.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use futures::executor::block_on;
use strata_core::crypto::info::{EncryptionInfo, WrappedKey};
use strata_core::datafile::{
    decode_footer, decode_index, BlockCodec, BlockHandle, DataFileOptions, DataFileWriter, FOOTER_LEN,
};
use strata_core::manifest::{manifest_checksum, sha256};
use strata_core::{
    keys, Descriptor, Entropy, Executor, ExternalStorage, ExternalStorageExt, KdfParams, Manifest, MemKv, MemoryOpener,
    Result, Span, StorageOpener, StorageWrapper, Timestamp,
};

// ---------------------------------------------------------------------------------------------
// Counting every allocation.

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Counting;

fn grew(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is passed on to the system allocator unchanged; only sizes are counted.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One measuring test at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// What `f` returns, and the most bytes allocated at once while it ran, beyond what was
/// allocated when it started.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

// ---------------------------------------------------------------------------------------------
// An honest backup, and forging it.

const ROWS: u32 = 6000;

/// A store with `d.a` and `d.b` (6,000 rows of 200 compressible bytes each), backed up to `uri`.
fn backed_up(opener: &Arc<MemoryOpener>, uri: &str, options: &str, encrypted: bool) -> Executor {
    block_on(async {
        let mut exec = Executor::new(Arc::new(MemKv::new()), opener.clone());
        if encrypted {
            let n = std::sync::atomic::AtomicU8::new(1);
            exec = exec
                .with_entropy(Entropy::new(move |b| {
                    b.iter_mut().for_each(|x| *x = n.fetch_add(7, Ordering::Relaxed));
                    Ok(())
                }))
                .with_kdf_params(KdfParams::argon2id(1024, 1, 1).unwrap());
        }
        exec.execute("CREATE DATABASE d").await.unwrap();
        for t in ["a", "b"] {
            exec.execute(&format!("CREATE TABLE d.{t}")).await.unwrap();
            let id = exec.table_id("d", t, None).await.unwrap();
            let rows = (0..ROWS)
                .map(|i| (keys::table_key(id, &i.to_be_bytes()), Some(format!("{i:08}-{t}").repeat(20).into_bytes())))
                .collect();
            exec.store().write(rows).await.unwrap();
        }
        exec.execute(&format!("BACKUP DATABASE d INTO '{uri}'{options}")).await.unwrap();
        exec
    })
}

/// The files of one backup directory, as written, and the storage they are in.
struct Backup {
    storage: Arc<dyn ExternalStorage>,
    /// The backup's directory inside the storage, with a trailing `/`.
    dir: String,
    original: BTreeMap<String, Bytes>,
}

impl Backup {
    fn open(opener: &MemoryOpener, uri: &str) -> Backup {
        let storage = opener.open(uri).unwrap();
        block_on(async {
            let listed = storage.list("").await.unwrap();
            let manifest = listed.iter().map(|o| &o.path).find(|p| p.ends_with("/BACKUP_MANIFEST")).unwrap();
            let dir = manifest.trim_end_matches("BACKUP_MANIFEST").to_string();
            let mut original = BTreeMap::new();
            for o in &listed {
                original.insert(o.path.clone(), storage.get(&o.path).await.unwrap());
            }
            Backup { storage, dir, original }
        })
    }

    fn put(&self, name: &str, bytes: Vec<u8>) {
        block_on(self.storage.put(&format!("{}{name}", self.dir), Bytes::from(bytes))).unwrap();
    }

    /// Puts every file back as it was written.
    fn heal(&self) {
        for (path, bytes) in &self.original {
            block_on(self.storage.put(path, bytes.clone())).unwrap();
        }
    }

    fn manifest(&self) -> Manifest {
        Manifest::decode(&self.original[&format!("{}BACKUP_MANIFEST", self.dir)], "honest").unwrap()
    }

    /// Stores manifest bytes and a checksum that matches them.
    fn put_manifest_bytes(&self, bytes: Vec<u8>) {
        self.put("BACKUP_MANIFEST-CHECKSUM", manifest_checksum(&bytes).into_bytes());
        self.put("BACKUP_MANIFEST", bytes);
    }

    fn put_manifest(&self, m: &Manifest) {
        self.put_manifest_bytes(m.encode());
    }

    /// Replaces the manifest's first data file with what `forge` makes of it (given the file and
    /// its manifest entry), recording its new size and SHA-256 in the manifest.
    fn forge_file(&self, forge: impl FnOnce(&mut Vec<u8>, &mut strata_core::FileInfo)) -> String {
        let mut m = self.manifest();
        let info = &mut m.files[0];
        let mut bytes = self.original[&format!("{}{}", self.dir, info.path)].to_vec();
        forge(&mut bytes, info);
        info.size = bytes.len() as u64;
        info.sha256 = sha256(&bytes);
        let path = info.path.clone();
        self.put(&path, bytes);
        self.put_manifest(&m);
        path
    }
}

/// The footer, index and blocks of a data file.
fn parse(bytes: &[u8]) -> (strata_core::datafile::Footer, Vec<BlockHandle>) {
    let size = bytes.len() as u64;
    let footer = decode_footer(&bytes[(size - FOOTER_LEN) as usize..], size, "f").unwrap();
    let index = &bytes[footer.index_offset as usize..(footer.index_offset + footer.index_len as u64) as usize];
    let handles = decode_index(index, &footer, "f").unwrap();
    (footer, handles)
}

/// Rewrites a data file's index (at `index_offset`) and footer from `handles`, CRC and entry
/// total recomputed; returns the total.
fn write_index(bytes: &mut Vec<u8>, index_offset: u64, handles: &[BlockHandle]) -> u64 {
    bytes.truncate(index_offset as usize);
    for h in handles {
        for k in [&h.first_key, &h.last_key] {
            bytes.extend_from_slice(&(k.len() as u32).to_le_bytes());
            bytes.extend_from_slice(k);
        }
        bytes.extend_from_slice(&h.offset.to_le_bytes());
        bytes.extend_from_slice(&h.len.to_le_bytes());
        bytes.extend_from_slice(&h.entries.to_le_bytes());
    }
    let index_len = (bytes.len() as u64 - index_offset) as u32;
    let crc = crc32(&bytes[index_offset as usize..]);
    let total: u64 = handles.iter().map(|h| h.entries as u64).sum();
    bytes.extend_from_slice(&index_offset.to_le_bytes());
    bytes.extend_from_slice(&index_len.to_le_bytes());
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes.extend_from_slice(&total.to_le_bytes());
    // The format version the blocks were written in (a forger's raw blocks are version 1).
    bytes.extend_from_slice(&handles.first().map_or(1, |h| h.version).to_le_bytes());
    bytes.extend_from_slice(&0u16.to_le_bytes());
    bytes.extend_from_slice(b"STRATADF");
    total
}

/// Sets the size the header of the first block (LZ4 or zstd: both start with the size they
/// decompress to) claims, and fixes the block's CRC.
fn claim_size(bytes: &mut [u8], claimed: u32) {
    let (_, handles) = parse(bytes);
    let r = handles[0].range();
    let (start, end) = (r.start as usize, r.end as usize);
    assert!([1, 2].contains(&bytes[end - 5]), "the first block is compressed");
    bytes[start..start + 4].copy_from_slice(&claimed.to_le_bytes());
    let crc = crc32(&bytes[start..end - 4]);
    bytes[end - 4..end].copy_from_slice(&crc.to_le_bytes());
}

/// CRC-32 (IEEE), as the data file uses.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A forged entry: key, wall time, value (`None`: a deletion).
type RawEntry = (Vec<u8>, u64, Option<Vec<u8>>);
/// A forgery: what it is, the file its error must name, and how to make it.
type Forgery<'a> = (&'a str, &'a str, Box<dyn Fn(&Backup) + 'a>);
/// A structural case: what it is, the file its error must name, and how to make it.
type Case<'a> = (&'a str, &'a str, Box<dyn Fn() + 'a>);

/// A data file with one uncompressed block holding `entries` as given (in any order), as a
/// forger writes one.
fn raw_data_file(entries: &[RawEntry]) -> Vec<u8> {
    let mut block = Vec::new();
    for (k, wall, v) in entries {
        block.extend_from_slice(&(k.len() as u32).to_le_bytes());
        block.extend_from_slice(k);
        block.extend_from_slice(&wall.to_le_bytes());
        block.extend_from_slice(&0u32.to_le_bytes());
        match v {
            Some(v) => {
                block.push(0);
                block.extend_from_slice(&(v.len() as u32).to_le_bytes());
                block.extend_from_slice(v);
            }
            None => block.push(1),
        }
    }
    block.push(0);
    let crc = crc32(&block);
    block.extend_from_slice(&crc.to_le_bytes());
    let handle = BlockHandle {
        first_key: entries[0].0.clone(),
        last_key: entries[entries.len() - 1].0.clone(),
        offset: 0,
        len: block.len() as u32,
        entries: entries.len() as u32,
        version: 1,
    };
    let at = block.len() as u64;
    write_index(&mut block, at, &[handle]);
    block
}

/// Restores `d` from `uri` into a fresh store: the result (as text), the peak of allocated
/// bytes, and whether any table row reached the store.
fn restore(opener: &Arc<MemoryOpener>, uri: &str, options: &str) -> (std::result::Result<(), String>, usize, bool) {
    let kv = Arc::new(MemKv::new());
    let target = Executor::new(kv.clone(), opener.clone());
    let statement = format!("RESTORE DATABASE d FROM LATEST IN '{uri}'{options}");
    let (result, peak) = peak_during(|| block_on(target.execute(&statement)).map(|_| ()).map_err(|e| e.to_string()));
    let tables = Span::new(vec![keys::TABLE_PREFIX], vec![keys::TABLE_PREFIX + 1]);
    let ingested = !kv.view_at(&tables, Timestamp::MAX).is_empty();
    (result, peak, ingested)
}

fn mib(n: usize) -> String {
    format!("{:.2} MiB", n as f64 / (1 << 20) as f64)
}

/// Restores every forgery: each must fail naming `names`, leave no row, and peak at most twice
/// the honest restore's memory.
fn check_forgeries(opener: &Arc<MemoryOpener>, uri: &str, options: &str, backup: &Backup, forgeries: Vec<Forgery<'_>>) {
    let (honest, honest_peak, ingested) = restore(opener, uri, options);
    honest.unwrap();
    assert!(ingested);
    eprintln!("{uri}: honest restore peaks at {}", mib(honest_peak));
    for (what, names, forge) in forgeries {
        forge(backup);
        let (result, peak, ingested) = restore(opener, uri, options);
        backup.heal();
        let err = result.expect_err(what);
        eprintln!("{uri}: {what}: peaks at {} ({err})", mib(peak));
        assert!(err.contains(names), "{what}: the error does not name {names}: {err}");
        assert!(!ingested, "{what}: rows were left in the store");
        assert!(peak <= 2 * honest_peak, "{what}: peaked at {}, the honest restore at {}", mib(peak), mib(honest_peak));
    }
}

#[test]
fn forged_plain_backups_fail_cleanly_within_twice_the_honest_memory() {
    let _serial = serial();
    let opener = Arc::new(MemoryOpener::default());
    let uri = "memory://plain";
    backed_up(&opener, uri, "", false);
    let backup = Backup::open(&opener, uri);
    let data = backup.manifest().files[0].path.clone();
    let forgeries: Vec<Forgery> = vec![
        (
            "a compressed block claiming 4 GiB",
            &data,
            Box::new(|b| drop(b.forge_file(|bytes, _| claim_size(bytes, u32::MAX - 15)))),
        ),
        (
            "a compressed block claiming the most a block may hold",
            &data,
            Box::new(|b| drop(b.forge_file(|bytes, _| claim_size(bytes, strata_core::datafile::MAX_LZ4_BLOCK_LEN)))),
        ),
        (
            "a compressed block claiming 1 MiB more than it holds",
            &data,
            Box::new(|b| {
                drop(b.forge_file(|bytes, _| {
                    let (_, handles) = parse(bytes);
                    let at = handles[0].offset as usize;
                    let real = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
                    claim_size(bytes, real + (1 << 20));
                }))
            }),
        ),
        (
            "a block claiming 4 billion entries (index, footer and manifest agreeing)",
            &data,
            Box::new(|b| {
                drop(b.forge_file(|bytes, info| {
                    let (footer, mut handles) = parse(bytes);
                    handles[0].entries = u32::MAX;
                    info.entries = write_index(bytes, footer.index_offset, &handles);
                    info.logical_bytes = u64::MAX / 2;
                }))
            }),
        ),
        (
            "a manifest whose descriptor list claims 2^62 entries",
            "BACKUP_MANIFEST",
            Box::new(|b| {
                let m = b.manifest();
                let bytes = m.encode();
                // The descriptors' count follows the fields before it in postcard's order.
                let before = postcard::to_allocvec(&(
                    &m.created_by,
                    &m.start_time,
                    &m.end_time,
                    &m.mvcc_filter,
                    &m.scope,
                    &m.is_full_cluster,
                    &m.spans,
                    &m.introduced_spans,
                ))
                .unwrap();
                let at = 10 + before.len();
                assert_eq!(bytes[at] as usize, m.descriptors.len());
                let mut forged = bytes[..at].to_vec();
                forged.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f]);
                forged.extend_from_slice(&bytes[at + 1..]);
                b.put_manifest_bytes(forged);
            }),
        ),
        (
            "a manifest whose first string claims 2^63 bytes",
            "BACKUP_MANIFEST",
            Box::new(|b| {
                let bytes = b.manifest().encode();
                let mut forged = bytes[..10].to_vec();
                forged.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
                forged.extend_from_slice(&bytes[11..]);
                b.put_manifest_bytes(forged);
            }),
        ),
    ];
    check_forgeries(&opener, uri, "", &backup, forgeries);
}

/// A forged `ENCRYPTION-INFO` whose wrapped copies come before the real one.
fn with_extra_keys(b: &Backup, extra: impl Fn(&WrappedKey) -> Vec<WrappedKey>) {
    let mut info = EncryptionInfo::decode(&b.original[&format!("{}ENCRYPTION-INFO", b.dir)], "honest").unwrap();
    let mut keys = extra(&info.keys[0]);
    keys.append(&mut info.keys);
    info.keys = keys;
    b.put("ENCRYPTION-INFO", info.encode());
}

/// A copy of a passphrase entry with other KDF parameters.
fn costing(k: &WrappedKey, kdf: KdfParams) -> WrappedKey {
    let WrappedKey::Passphrase { salt, nonce, ciphertext, .. } = k.clone() else { panic!("a passphrase entry") };
    WrappedKey::Passphrase { kdf, salt, nonce, ciphertext }
}

#[test]
fn forged_encryption_info_is_refused_before_any_kdf_runs() {
    let _serial = serial();
    let opener = Arc::new(MemoryOpener::default());
    let uri = "memory://enc";
    let options = " WITH encryption_passphrase = 'pw'";
    backed_up(&opener, uri, options, true);
    let backup = Backup::open(&opener, uri);
    let forgeries: Vec<Forgery> = vec![
        ("20 extra passphrase entries", "ENCRYPTION-INFO", Box::new(|b| with_extra_keys(b, |k| vec![k.clone(); 20]))),
        (
            "4 extra passphrase entries at the most one entry may cost (1 GiB, 4 passes)",
            "ENCRYPTION-INFO",
            Box::new(|b| with_extra_keys(b, |k| vec![costing(k, KdfParams::argon2id(1 << 20, 4, 1).unwrap()); 4])),
        ),
    ];
    check_forgeries(&opener, uri, options, &backup, forgeries);

    // `SHOW BACKUP … WITH check_files` reports it as a problem of the file.
    with_extra_keys(&backup, |k| vec![k.clone(); 20]);
    let exec = Executor::new(Arc::new(MemKv::new()), opener.clone());
    let report = block_on(
        exec.execute(&format!("SHOW BACKUP LATEST IN '{uri}' WITH check_files, encryption_passphrase = 'pw'")),
    );
    let shown = format!("{report:?}");
    backup.heal();
    assert!(shown.contains("ENCRYPTION-INFO") && shown.contains("wrapped keys"), "{shown}");
}

#[test]
fn structurally_forged_backups_fail_naming_the_file_before_anything_is_ingested() {
    let _serial = serial();
    let opener = Arc::new(MemoryOpener::default());
    let uri = "memory://structure";
    backed_up(&opener, uri, "", false);
    let backup = Backup::open(&opener, uri);
    let honest = backup.manifest();
    let table = |m: &mut Manifest, name: &str| -> usize {
        m.descriptors.iter().position(|d| matches!(d, Descriptor::Table(t) if t.name == name)).unwrap()
    };
    let edit = |f: &dyn Fn(&mut Manifest)| {
        let mut m = honest.clone();
        f(&mut m);
        backup.put_manifest(&m);
    };
    let set_table = |m: &mut Manifest, name: &str, f: &dyn Fn(&mut strata_core::TableDescriptor)| {
        let i = table(m, name);
        if let Descriptor::Table(t) = &mut m.descriptors[i] {
            f(t)
        }
    };
    let a_id = honest.descriptors.iter().find(|d| d.name() == "a").unwrap().id();
    let file = honest.files[0].clone();
    let cases: Vec<Case> = vec![
        ("two tables named a", "BACKUP_MANIFEST", Box::new(|| edit(&|m| set_table(m, "b", &|t| t.name = "a".into())))),
        ("two tables with one id", "BACKUP_MANIFEST", Box::new(|| edit(&|m| set_table(m, "b", &|t| t.id = a_id)))),
        ("a table with id 0", "BACKUP_MANIFEST", Box::new(|| edit(&|m| set_table(m, "b", &|t| t.id = 0)))),
        (
            "a table with id u32::MAX",
            "BACKUP_MANIFEST",
            Box::new(|| edit(&|m| set_table(m, "b", &|t| t.id = u32::MAX))),
        ),
        (
            "a data file outside the backup's spans",
            "BACKUP_MANIFEST",
            Box::new(|| edit(&|m| m.files[0].span = keys::system_span())),
        ),
        (
            "a footer count that disagrees with the manifest",
            &file.path,
            Box::new(|| edit(&|m| m.files[0].entries += 1)),
        ),
        (
            "keys out of order",
            &file.path,
            Box::new(|| {
                drop(backup.forge_file(|bytes, info| {
                    let id = keys::decode_table_key(&file.span.start).unwrap().0;
                    let k = |i: u32| keys::table_key(id, &i.to_be_bytes());
                    *bytes = raw_data_file(&[(k(2), 5, Some(b"new".to_vec())), (k(1), 9, Some(b"old".to_vec()))]);
                    (info.entries, info.rows) = (2, 2);
                }))
            }),
        ),
        (
            "an older version before a newer one",
            &file.path,
            Box::new(|| {
                drop(backup.forge_file(|bytes, info| {
                    let k = keys::table_key(keys::decode_table_key(&file.span.start).unwrap().0, &1u32.to_be_bytes());
                    *bytes = raw_data_file(&[(k.clone(), 5, Some(b"old".to_vec())), (k, 9, Some(b"new".to_vec()))]);
                    (info.entries, info.rows) = (2, 2);
                }))
            }),
        ),
        (
            "keys outside the file's span",
            &file.path,
            Box::new(|| {
                drop(backup.forge_file(|bytes, info| {
                    let k = keys::table_key(u32::MAX - 1, b"elsewhere");
                    *bytes = raw_data_file(&[(k, 5, Some(b"x".to_vec()))]);
                    (info.entries, info.rows) = (1, 1);
                }))
            }),
        ),
    ];
    let (honest_result, _, _) = restore(&opener, uri, "");
    honest_result.unwrap();
    for (what, names, forge) in cases {
        forge();
        let (result, _, ingested) = restore(&opener, uri, "");
        backup.heal();
        let err = result.expect_err(what);
        assert!(err.contains(names), "{what}: the error does not name {names}: {err}");
        assert!(!ingested, "{what}: rows were left in the store");
    }
}

// ---------------------------------------------------------------------------------------------
// The fuzz corpora, replayed on the stable toolchain.

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// splitmix64, seeded: the same inputs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A mutation of `seed` as a fuzzer makes them: flipped bits, bytes set to edge values,
/// lengths made huge, cut, spliced or repeated pieces.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        let last = out.len().saturating_sub(1);
        match rng.below(7) {
            0 if !out.is_empty() => out[at.min(last)] ^= 1 << rng.below(8),
            1 if !out.is_empty() => out[at.min(last)] = [0, 1, 0x7f, 0x80, 0xff][rng.below(5)],
            2 => {
                let huge: &[u8] =
                    [&[0xff, 0xff, 0xff, 0xff, 0x0f][..], &[0xff; 9], &[0xff, 0xff, 0xff, 0x7f]][rng.below(3)];
                out.splice(at..at, huge.iter().copied());
            }
            3 => out.truncate(at),
            4 if !out.is_empty() => {
                let (from, len) = (rng.below(out.len()), rng.below(64));
                let piece: Vec<u8> = out[from..(from + len).min(out.len())].to_vec();
                out.splice(at..at, piece);
            }
            5 => out.extend((0..rng.below(32)).map(|_| rng.next() as u8)),
            _ if at + 4 <= out.len() => out[at..at + 4].copy_from_slice(&(rng.next() as u32).to_le_bytes()),
            _ => {}
        }
    }
    out
}

/// Runs a target on one input: no panic, and no more allocated at once than a small constant
/// plus a multiple of the input (the decoders' bounds; an LZ4 block decodes to at most 255 bytes
/// per stored byte).
fn run_bounded(name: &str, f: fn(&[u8]), input: &[u8]) {
    let (result, peak) = peak_during(|| std::panic::catch_unwind(|| f(input)));
    let show = || hex(&input[..input.len().min(256)]);
    assert!(result.is_ok(), "target {name} panicked on an input of {} bytes starting {}", input.len(), show());
    // The embedded store's target opens a store: its page cache and threads come on top.
    let fixed = if name == "store_layout" { 64 << 20 } else { 8 << 20 };
    let bound = fixed + 300 * input.len();
    assert!(peak <= bound, "target {name} allocated {} on an input of {} bytes: {}", mib(peak), input.len(), show());
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Mutated inputs per target and run of the test.
const MUTATIONS: usize = 400;

#[test]
fn fuzz_corpora_replay_and_mutations_stay_bounded() {
    let _serial = serial();
    let root = corpus_root();
    let mut seed = 0x5eed_u64;
    let native: &[(&str, strata_core::fuzzing::Target)] = &[("store_layout", strata_native::fuzzing::store_layout)];
    for (name, f) in strata_core::fuzzing::TARGETS.iter().chain(native) {
        let dir = root.join(name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("no corpus for target {name} at {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let seeds: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
        assert!(!seeds.is_empty(), "the corpus of {name} is empty");
        for s in &seeds {
            run_bounded(name, *f, s);
        }
        seed = seed.wrapping_mul(31).wrapping_add(name.len() as u64);
        let mut rng = Rng(seed);
        // Each input of the embedded store's target creates and opens a store file.
        let mutations = if *name == "store_layout" { MUTATIONS / 10 } else { MUTATIONS };
        for _ in 0..mutations {
            let input = mutate(&seeds[rng.below(seeds.len())], &mut rng);
            run_bounded(name, *f, &input);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writing the seed corpora from the real writers.

/// A storage that keeps what a backup deletes when it finishes (its plan and progress records).
struct KeepAll(Arc<dyn ExternalStorage>);

#[async_trait::async_trait]
impl StorageWrapper for KeepAll {
    fn inner(&self) -> &dyn ExternalStorage {
        self.0.as_ref()
    }
    async fn delete(&self, _path: &str) -> Result<()> {
        Ok(())
    }
}

struct KeepAllOpener(Arc<MemoryOpener>);

impl StorageOpener for KeepAllOpener {
    fn open(&self, uri: &str) -> Result<Arc<dyn ExternalStorage>> {
        Ok(Arc::new(KeepAll(self.0.open(uri)?)))
    }
}

fn write_seed(corpus: &mut BTreeMap<String, Vec<u8>>, target: &str, name: &str, bytes: &[u8]) {
    corpus.insert(format!("{target}/{name}"), bytes.to_vec());
}

#[test]
#[ignore = "rewrites fuzz/corpus from the real writers; run by hand"]
fn write_seed_corpora() {
    let _serial = serial();
    let mut corpus = BTreeMap::new();
    let memory = Arc::new(MemoryOpener::default());
    block_on(async {
        let n = std::sync::atomic::AtomicU8::new(1);
        let exec = Executor::new(Arc::new(MemKv::new()), Arc::new(KeepAllOpener(memory.clone())))
            .with_entropy(Entropy::new(move |b| {
                b.iter_mut().for_each(|x| *x = n.fetch_add(7, Ordering::Relaxed));
                Ok(())
            }))
            .with_kdf_params(KdfParams::argon2id(64, 1, 1).unwrap());
        exec.execute("CREATE DATABASE d").await.unwrap();
        exec.execute("CREATE TABLE d.t").await.unwrap();
        let id = exec.table_id("d", "t", None).await.unwrap();
        let rows = (0..60u32)
            .map(|i| (keys::table_key(id, &i.to_be_bytes()), Some(format!("{i}").repeat(i as usize % 9))))
            .collect::<Vec<_>>();
        exec.store().write(rows.into_iter().map(|(k, v)| (k, v.map(String::into_bytes))).collect()).await.unwrap();
        exec.store().write(vec![(keys::table_key(id, &3u32.to_be_bytes()), None)]).await.unwrap();
        exec.execute("BACKUP DATABASE d INTO 'memory://plain' WITH revision_history").await.unwrap();
        exec.execute("BACKUP DATABASE d INTO 'memory://enc' WITH encryption_passphrase = 'pw'").await.unwrap();
        exec.execute("CREATE SCHEDULE s FOR BACKUP DATABASE d INTO 'memory://sched' RECURRING '@daily'").await.unwrap();
        for (uri, tag) in [("memory://plain", "plain"), ("memory://enc", "enc")] {
            let storage = memory.open(uri).unwrap();
            for o in storage.list("").await.unwrap() {
                let bytes = storage.get(&o.path).await.unwrap();
                let file = o.path.rsplit('/').next().unwrap();
                let target = match file {
                    "BACKUP_MANIFEST" if tag == "plain" => "manifest",
                    "BACKUP-FILES" => "files_list",
                    "ENCRYPTION-INFO" => "encryption_info",
                    "BACKUP-PLAN" if tag == "plain" => "backup_plan",
                    _ if o.path.contains("progress/") && tag == "plain" => "unit_record",
                    _ if file.ends_with(".sst") && tag == "plain" => "data_file",
                    _ => continue,
                };
                write_seed(&mut corpus, target, &format!("{tag}-{}", hex(&sha256(&bytes)[..4])), &bytes);
            }
        }
        let system = strata_core::read_span(exec.store().as_ref(), keys::system_span(), Timestamp::MAX).await.unwrap();
        for (k, v) in system {
            let target = if k.starts_with(&keys::system_key(b"schedule/")) {
                "schedule_record"
            } else if keys::descriptor_span().contains(&k) {
                "descriptor"
            } else {
                continue;
            };
            write_seed(&mut corpus, target, &format!("written-{}", hex(&sha256(&v)[..4])), &v);
        }
    });
    // Data files (version 2) of several LZ4 and zstd blocks, versions and tombstones; the
    // version 1 seed `lz4-blocks` stays as it was written.
    for (name, codec) in [("lz4-blocks-v2", BlockCodec::Lz4), ("zstd-blocks-v2", BlockCodec::Zstd { level: 1 })] {
        let mut w = DataFileWriter::new(DataFileOptions::default().with_block_size(256).with_codec(codec));
        for i in 0..40u32 {
            let key = keys::table_key(100, &(i / 2).to_be_bytes());
            let value = (i % 5 != 0).then(|| vec![b'x' + (i % 3) as u8; 100]);
            w.add(&key, Timestamp::new(100 - (i % 2) as u64, 0), value.as_deref());
        }
        write_seed(&mut corpus, "data_file", name, &w.finish().0);
    }
    // Sealed files the encrypted_file target opens, around chunk boundaries.
    for (plain, chunk) in [(0usize, 64u32), (100, 64), (128, 64), (1000, 256)] {
        let text: Vec<u8> = (0..plain).map(|i| i as u8).collect();
        write_seed(
            &mut corpus,
            "encrypted_file",
            &format!("sealed-{plain}-{chunk}"),
            &strata_core::fuzzing::seal_for_fuzzing(&text, chunk),
        );
    }
    // A run's lease, as a run writes it.
    let lease = strata_core::RunLease {
        run: "0123456789abcdef".into(),
        store: Some("fedcba9876543210".into()),
        started: Timestamp::new(1_700_000_000_000_000_000, 0),
        refreshed: Timestamp::new(1_700_000_300_000_000_000, 2),
        stale_after_secs: 1800,
    };
    write_seed(&mut corpus, "run_lease", "written", &lease.encode());
    // The committed fixtures of older versions.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/fixtures");
    for (file, target) in [
        ("checkpoint-v1.bin", "checkpoint"),
        ("datafile-v1.sst", "data_file"),
        ("descriptor-v1.bin", "descriptor"),
        ("descriptor-v2.bin", "descriptor"),
        ("files-list-v2.bin", "files_list"),
        ("job-record-v1.bin", "job_record"),
        ("manifest-v1.bin", "manifest"),
        ("manifest-v2.bin", "manifest"),
        ("schedule-record-v1.bin", "schedule_record"),
    ] {
        write_seed(&mut corpus, target, &format!("fixture-{file}"), &std::fs::read(fixtures.join(file)).unwrap());
    }
    // A job record in the envelope form: the version-1 body behind the envelope's header.
    let v1 = std::fs::read(fixtures.join("job-record-v1.bin")).unwrap();
    write_seed(&mut corpus, "job_record", "envelope", &[&b"STRATAJB\x02\x00"[..], &v1[1..]].concat());
    // Stores: rows of the embedded store's tables (see strata_native's fuzzing module), at the
    // current layout version and at the older ones a store is upgraded from.
    let row = |table: u8, key: &[u8], value: &[u8]| {
        [&[table, key.len() as u8][..], key, &[value.len() as u8], value].concat()
    };
    let at = |key: &[u8], wall: u64| [key, &(u64::MAX - wall).to_be_bytes(), &u32::MAX.to_be_bytes()].concat();
    let change = |key: &[u8], wall: u64| [key, &wall.to_be_bytes(), &0u32.to_be_bytes()].concat();
    let db = strata_core::DatabaseDescriptor {
        id: 100,
        name: "d".into(),
        version: 1,
        modification_time: Timestamp::new(5, 0),
    };
    let db = [&[1u8][..], &Descriptor::Database(db).encode()].concat();
    let k = keys::table_key(101, b"k");
    for version in [4u32, 3, 2, 1] {
        let rows = [
            row(3, &[0], &version.to_be_bytes()),
            row(3, &[1], &[&20u64.to_be_bytes()[..], &0u32.to_be_bytes()].concat()),
            row(3, &[2], &[&1u64.to_be_bytes()[..], &0u32.to_be_bytes()].concat()),
            row(0, &at(&keys::descriptor_key(100), 5), &db),
            row(1, &change(&keys::descriptor_key(100), 5), &db),
            row(0, &at(&k, 7), b"\x01value"),
            row(0, &at(&k, 9), b"\x00"),
            row(1, &change(&k, 9), b"\x00"),
            row(2, &change(&k, 11), &keys::table_key(102, b"")),
        ]
        .concat();
        write_seed(&mut corpus, "store_layout", &format!("layout-v{version}"), &rows);
    }
    // Statements.
    for (i, sql) in [
        "BACKUP INTO 'nodelocal://1/c' AS OF SYSTEM TIME '-10s' WITH revision_history, detached",
        "BACKUP DATABASE bank, shop INTO LATEST IN 's3://b/p?AWS_ACCESS_KEY_ID=a&AWS_SECRET_ACCESS_KEY=s' WITH encryption_passphrase = 'x'",
        "BACKUP TABLE bank.accounts, bank.* INTO ('nodelocal://1/a?COCKROACH_LOCALITY=default', 'nodelocal://2/b?COCKROACH_LOCALITY=region%3Deu')",
        "RESTORE DATABASE bank FROM LATEST IN 'nodelocal://1/c' AS OF SYSTEM TIME '2024-01-02 03:04:05' WITH new_db_name = 'b2', kms = 'file-kms:///k'",
        "RESTORE TABLE bank.accounts FROM '2024/01/02-030405.00' IN 'nodelocal://1/c' WITH into_db = 'x', skip_missing_foreign_keys",
        "SHOW BACKUPS IN 'nodelocal://1/c'",
        "SHOW BACKUP LATEST IN 'nodelocal://1/c' WITH check_files, encryption_passphrase = 'p'",
        "CREATE SCHEDULE IF NOT EXISTS s FOR BACKUP INTO 'nodelocal://1/c' RECURRING '*/5 * * * *' FULL BACKUP '@weekly' WITH SCHEDULE OPTIONS first_run = 'now', on_execution_failure = 'pause'",
        "ALTER BACKUP 'nodelocal://1/c' ADD NEW_PASSPHRASE = 'n' WITH OLD_PASSPHRASE = 'o'",
        "SHOW JOBS; PAUSE SCHEDULE 1; DROP SCHEDULE 2; CANCEL JOB 3",
        "CREATE TABLE bank.accounts; CREATE DATABASE \"we\"\"ird\"; SHOW TABLES FROM bank; SELECT 'unterminated",
    ]
    .iter()
    .enumerate()
    {
        write_seed(&mut corpus, "sql", &format!("statement-{i:02}"), sql.as_bytes());
    }
    let root = corpus_root();
    for (name, bytes) in &corpus {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
    let total: usize = corpus.values().map(Vec::len).sum();
    eprintln!("{} seeds, {total} bytes", corpus.len());
    for name in strata_core::fuzzing::TARGETS.iter().map(|t| t.0).chain(["store_layout"]) {
        assert!(corpus.keys().any(|k| k.starts_with(&format!("{name}/"))), "no seed for {name}");
    }
}
