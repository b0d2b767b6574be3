//! Every on-disk format keeps reading its older versions: these tests read committed files of
//! each format version and compare them with the values that produced them.
//!
//! Regenerate (only when adding a new version, never to make a failing test pass):
//! `STRATA_WRITE_FIXTURES=1 cargo test -p strata-core --test integration format_fixtures::`

// More fixture tests, in this one test binary (each binary costs a link and, on wasm32, a
// browser session): the legacy checkpoint, and job and schedule records.
#[path = "format_fixtures/checkpoint.rs"]
mod checkpoint;
#[path = "format_fixtures/job_runs.rs"]
mod job_runs;
#[path = "format_fixtures/records.rs"]
mod records;

use strata_core::crypto::info::EncryptionInfo;
use strata_core::datafile::{decode_footer, decode_index, read_all};
use strata_core::manifest::{sha256, BackupScope, DescriptorRevision, FileInfo, Manifest, Origin};
use strata_core::verify::{decode_files_list, encode_files_list, FilesList, ListedFile};
use strata_core::BlockCodec;
use strata_core::{
    keys, DatabaseDescriptor, Descriptor, Entry, IndexDescriptor, IndexState, MvccFilter, Span, TableDescriptor,
    Timestamp, ENCRYPTION_INFO_NAME, FILES_LIST_NAME,
};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn entries() -> Vec<Entry> {
    (0u32..300)
        .map(|i| Entry {
            key: keys::table_key(104, format!("row-{i:05}").as_bytes()).into(),
            ts: Timestamp::new(1_795_428_000_000_000_000 + i as u64, i % 3),
            value: if i % 11 == 5 {
                None
            } else {
                Some(format!("value {i} {}", "abc".repeat(i as usize % 9)).into_bytes().into())
            },
        })
        .collect()
}

/// What the v1 fixture holds (its blocks LZ4, what every build wrote before zstd); this build
/// writes version 2, so the fixture is no longer regenerated from the writer.
fn v1_data_file() -> Vec<u8> {
    include_bytes!("fixtures/datafile-v1.sst").to_vec()
}

/// The data file this build writes with `codec` (only native builds write fixtures: the wasm
/// test build reads them).
#[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
fn data_file(codec: BlockCodec) -> Vec<u8> {
    use strata_core::datafile::{DataFileOptions, DataFileWriter};
    let mut w = DataFileWriter::new(DataFileOptions::default().with_block_size(1024).with_codec(codec));
    for e in entries() {
        w.add_entry(&e);
    }
    w.finish().0
}

/// The codec byte of every block of a data file.
fn block_codecs(bytes: &[u8]) -> Vec<u8> {
    let size = bytes.len();
    let footer = decode_footer(&bytes[size - 36..], size as u64, "f").unwrap();
    let index = decode_index(&bytes[footer.index_offset as usize..size - 36], &footer, "f").unwrap();
    index.iter().map(|h| bytes[h.range().end as usize - 5]).collect()
}

fn v1_manifest(data_file: &[u8]) -> Manifest {
    let t = |w: u64| Timestamp::new(1_795_428_000_000_000_000 + w, 0);
    let db = DatabaseDescriptor { id: 100, name: "bank".into(), version: 2, modification_time: t(1) };
    let table = TableDescriptor {
        id: 104,
        name: "accounts".into(),
        parent_id: 100,
        version: 3,
        modification_time: t(2),
        indexes: vec![
            IndexDescriptor { id: 1, name: "primary".into(), unique: true, state: IndexState::Public },
            IndexDescriptor { id: 2, name: "by_balance".into(), unique: false, state: IndexState::Adding },
        ],
    };
    Manifest {
        created_by: "strata 0.1.0".into(),
        start_time: Timestamp::ZERO,
        end_time: t(500),
        mvcc_filter: MvccFilter::Latest,
        scope: BackupScope::Databases(vec![100]),
        is_full_cluster: false,
        spans: vec![keys::table_span(104)],
        introduced_spans: vec![],
        descriptors: vec![Descriptor::Database(db), Descriptor::Table(table.clone())],
        descriptor_changes: vec![DescriptorRevision { ts: t(2), id: 104, descriptor: Some(Descriptor::Table(table)) }],
        files: vec![FileInfo {
            path: "data/000000-0000.sst".into(),
            span: Span::prefix(&keys::table_prefix(104)),
            size: data_file.len() as u64,
            sha256: sha256(data_file),
            entries: 300,
            rows: 272,
            logical_bytes: 12345,
            locality: None,
        }],
        dependencies: vec![],
        statement: "BACKUP DATABASE bank TO 'nodelocal://1/fixture'".into(),
        // What a v1 manifest converts to: no revision history, so its end time.
        revision_start_time: t(500),
        origin: None,
    }
}

/// Version 2 added `revision_start_time`; this one has revision history.
fn v2_manifest(data_file: &[u8]) -> Manifest {
    let mut m = v1_manifest(data_file);
    m.mvcc_filter = MvccFilter::AllRevisions;
    m.start_time = Timestamp::new(1_795_428_000_000_000_000, 7);
    m.revision_start_time = m.start_time;
    m.dependencies = vec!["nodelocal://1/fixture".into()];
    m
}

fn fixture(name: &str, bytes: &[u8], committed: &[u8]) {
    if std::env::var_os("STRATA_WRITE_FIXTURES").is_some() {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::write(path, bytes).unwrap();
    }
    let _ = committed;
}

#[test]
fn data_file_v1_fixture_still_reads() {
    let committed: &[u8] = include_bytes!("fixtures/datafile-v1.sst");
    fixture("datafile-v1.sst", &v1_data_file(), committed);
    assert_eq!(read_all(committed, "datafile-v1.sst").unwrap(), entries());
    assert!(block_codecs(committed).iter().all(|&c| c == 1), "the LZ4 fixture's blocks are LZ4");
}

/// A version 1 data file of zstd blocks (a layout no release wrote, kept because every
/// combination of layout and codec reads) reads in every build (the wasm build through ruzstd).
#[test]
fn data_file_v1_zstd_fixture_still_reads() {
    let committed: &[u8] = include_bytes!("fixtures/datafile-v1-zstd.sst");
    assert_eq!(read_all(committed, "datafile-v1-zstd.sst").unwrap(), entries());
    let codecs = block_codecs(committed);
    assert!(codecs.len() > 3 && codecs.iter().all(|&c| c == 2), "{codecs:?}");
}

/// Version 2 (heads apart from values), zstd blocks as native builds write them and LZ4 as the
/// wasm build writes them: both read in every build.
#[test]
fn data_file_v2_fixtures_still_read() {
    for (name, committed, codec, byte) in [
        (
            "datafile-v2-zstd.sst",
            &include_bytes!("fixtures/datafile-v2-zstd.sst")[..],
            BlockCodec::Zstd { level: 1 },
            2,
        ),
        ("datafile-v2-lz4.sst", &include_bytes!("fixtures/datafile-v2-lz4.sst")[..], BlockCodec::Lz4, 1),
    ] {
        #[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
        fixture(name, &data_file(codec), committed);
        let _ = codec;
        assert_eq!(read_all(committed, name).unwrap(), entries(), "{name}");
        let size = committed.len();
        assert_eq!(decode_footer(&committed[size - 36..], size as u64, name).unwrap().version, 2, "{name}");
        let codecs = block_codecs(committed);
        assert!(codecs.len() > 3 && codecs.iter().all(|&c| c == byte), "{name}: {codecs:?}");
    }
}

#[test]
fn manifest_v1_fixture_still_reads() {
    // Frozen: written by format version 1, never rewritten.
    let data: &[u8] = include_bytes!("fixtures/datafile-v1.sst");
    let committed: &[u8] = include_bytes!("fixtures/manifest-v1.bin");
    assert_eq!(&committed[..8], b"STRATAMF");
    assert_eq!(u16::from_le_bytes([committed[8], committed[9]]), 1);
    assert_eq!(Manifest::decode(committed, "manifest-v1.bin").unwrap(), v1_manifest(data));
}

#[test]
fn manifest_v2_fixture_still_reads() {
    // Frozen: written by format version 2, never rewritten.
    let data: &[u8] = include_bytes!("fixtures/datafile-v1.sst");
    let committed: &[u8] = include_bytes!("fixtures/manifest-v2.bin");
    assert_eq!(u16::from_le_bytes([committed[8], committed[9]]), 2);
    assert_eq!(Manifest::decode(committed, "manifest-v2.bin").unwrap(), v2_manifest(data));
}

/// Version 3 added the origin: the source store's id and the committing run's.
fn v3_manifest(data_file: &[u8]) -> Manifest {
    let mut m = v2_manifest(data_file);
    m.origin = Some(Origin { store: Some("5e1f0a7b3c2d9e84".into()), run: "0123456789abcdef".into() });
    m
}

#[test]
fn manifest_v3_fixture_still_reads() {
    let data: &[u8] = include_bytes!("fixtures/datafile-v1.sst");
    let committed: &[u8] = include_bytes!("fixtures/manifest-v3.bin");
    fixture("manifest-v3.bin", &v3_manifest(data).encode(), committed);
    assert_eq!(u16::from_le_bytes([committed[8], committed[9]]), 3);
    assert_eq!(Manifest::decode(committed, "manifest-v3.bin").unwrap(), v3_manifest(data));
    assert_eq!(v3_manifest(data).encode(), committed, "the current version re-encodes byte for byte");
}

#[test]
fn unknown_manifest_versions_are_refused_by_name() {
    let data: &[u8] = include_bytes!("fixtures/datafile-v1.sst");
    let mut bytes = v1_manifest(data).encode();
    bytes[8] = 99;
    let err = Manifest::decode(&bytes, "b/BACKUP_MANIFEST").unwrap_err();
    assert_eq!(
        err.to_string(),
        "corrupt b/BACKUP_MANIFEST: manifest format version 99 is not readable by this build (reads up to 3)"
    );
}

/// A table descriptor with two indexes, as the system span stores it.
fn stored_descriptor() -> Descriptor {
    let t = Timestamp::new(1_795_428_000_000_000_002, 1);
    Descriptor::Table(TableDescriptor {
        id: 104,
        name: "accounts".into(),
        parent_id: 100,
        version: 3,
        modification_time: t,
        indexes: vec![
            IndexDescriptor { id: 1, name: "primary".into(), unique: true, state: IndexState::Public },
            IndexDescriptor { id: 2, name: "by_balance".into(), unique: false, state: IndexState::Dropping },
        ],
    })
}

#[test]
fn descriptor_v1_fixture_still_reads() {
    // Frozen: the 1-byte-version form (`1 | postcard`) an older store holds, written by the code
    // of that version, never rewritten.
    let committed: &[u8] = include_bytes!("fixtures/descriptor-v1.bin");
    assert_eq!(committed[0], 1);
    assert_eq!(Descriptor::decode(committed).unwrap(), stored_descriptor());
    // Version 2 keeps the body and puts it in its envelope.
    assert_eq!(stored_descriptor().encode()[10..], committed[1..]);
}

#[test]
fn descriptor_v2_fixture_still_reads_and_re_encodes_identically() {
    let committed: &[u8] = include_bytes!("fixtures/descriptor-v2.bin");
    fixture("descriptor-v2.bin", &stored_descriptor().encode(), committed);
    assert_eq!(&committed[..10], b"STRATADS\x02\x00");
    assert_eq!(Descriptor::decode(committed).unwrap(), stored_descriptor());
    assert_eq!(stored_descriptor().encode(), committed);
}

#[test]
fn files_list_v2_fixture_still_reads_and_re_encodes_identically() {
    let data: &[u8] = include_bytes!("fixtures/datafile-v1.sst");
    let committed: &[u8] = include_bytes!("fixtures/files-list-v2.bin");
    let manifest = v2_manifest(data);
    fixture("files-list-v2.bin", &encode_files_list(&manifest), committed);
    assert_eq!(&committed[..10], b"STRATAFL\x02\x00");
    let list = decode_files_list(committed, "files-list-v2.bin").unwrap();
    // v2_manifest is an incremental layer (its start time is not zero).
    assert_eq!(list, FilesList { full: false, files: manifest.files.iter().map(ListedFile::from).collect() });
    assert_eq!(encode_files_list(&manifest), committed);
}

/// The objects of the committed encrypted backup (`encryption.rs` packs them: `u32 LE path
/// length | path | u64 LE size | bytes` each).
fn encrypted_backup_objects() -> Vec<(String, Vec<u8>)> {
    let mut b: &[u8] = include_bytes!("fixtures/encrypted-backup-v1.bin");
    let mut out = Vec::new();
    while !b.is_empty() {
        let n = u32::from_le_bytes(b[..4].try_into().unwrap()) as usize;
        let path = String::from_utf8(b[4..4 + n].to_vec()).unwrap();
        let size = u64::from_le_bytes(b[4 + n..12 + n].try_into().unwrap()) as usize;
        out.push((path, b[12 + n..12 + n + size].to_vec()));
        b = &b[12 + n + size..];
    }
    out
}

#[test]
fn the_committed_encrypted_backup_keeps_its_plaintext_files_readable() {
    let objects = encrypted_backup_objects();
    let get = |name: &str| &objects.iter().find(|(p, _)| p == name).unwrap_or_else(|| panic!("{name}")).1;
    // ENCRYPTION-INFO v1 is the current version: it re-encodes byte for byte.
    let info_bytes = get(ENCRYPTION_INFO_NAME);
    let info = EncryptionInfo::decode(info_bytes, "fixture").unwrap();
    assert_eq!(info.keys.len(), 1);
    assert_eq!(&info.encode(), info_bytes);
    // Its BACKUP-FILES lists are version 1 (no localities), read through the frozen struct.
    let lists: Vec<_> = objects.iter().filter(|(p, _)| p.ends_with(FILES_LIST_NAME)).collect();
    assert_eq!(lists.len(), 2);
    for (path, bytes) in lists {
        assert_eq!(&bytes[..10], b"STRATAFL\x01\x00");
        let list = decode_files_list(bytes, path).unwrap();
        assert_eq!(list.full, path == FILES_LIST_NAME, "{path}");
        assert_eq!(list.files.len(), 1);
        let data = &list.files[0];
        assert!(data.path.starts_with("data/") && data.locality.is_none(), "{data:?}");
        let dir = path.strip_suffix(FILES_LIST_NAME).unwrap();
        let stored = get(&format!("{dir}{}", data.path));
        assert_eq!((stored.len() as u64, sha256(stored)), (data.size, data.sha256));
    }
}

/// A manifest naming a data file outside its backup (`..`, an absolute path, an empty segment)
/// is refused when decoded, whatever storage would resolve the name (issue 13: hostile input).
#[test]
fn manifests_naming_files_outside_their_backup_are_refused() {
    let data: &[u8] = include_bytes!("fixtures/datafile-v1.sst");
    for path in ["../LATEST", "data/../../x.sst", "/etc/passwd", "data//x.sst", "./data/x.sst", "data\\..\\x", ""] {
        let mut m = v3_manifest(data);
        m.files[0].path = path.into();
        let err = Manifest::decode(&m.encode(), "b/BACKUP_MANIFEST").unwrap_err().to_string();
        assert!(err.contains("not a relative path inside the backup"), "{path:?}: {err}");
    }
}
