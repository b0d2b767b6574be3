//! Entry points for fuzzing every decoder of hostile input: one function per target, called by
//! the cargo-fuzz targets in `fuzz/` and by the stable-toolchain replay of their corpora
//! (`tests/tests/hostile.rs`), so both exercise exactly the same code.
//!
//! Each function takes arbitrary bytes and must return without panicking, hanging or allocating
//! more than the format's own bounds allow, whatever the bytes. Errors are the expected outcome;
//! where a decode succeeds, the function also checks what must then hold (a re-encoding decodes
//! to the same value), and panics if it does not — a panic is a bug the fuzzer reports.
//!
//! Not part of the stable API: the names and the list follow the formats.

use crate::backup::lease::RunLease;
use crate::backup::plan::BackupPlan;
use crate::backup::resume::{CheckpointV1, UnitRecord, PLAN_FORMAT, UNIT_RECORD_FORMAT};
use crate::catalog::Descriptor;
use crate::crypto::aead::{self, Opener, HEADER_LEN};
use crate::crypto::info::EncryptionInfo;
use crate::crypto::DataKey;
use crate::envelope::sha256;
use crate::format::datafile::{self, decode_footer, decode_index, FOOTER_LEN};
use crate::format::files_list::decode_files_list;
use crate::format::manifest::Manifest;
use crate::records::SCHEDULES;
use crate::span::Span;

/// A fuzz target: it takes any bytes.
pub type Target = fn(&[u8]);

/// Every target: its name (the directory of its corpus under `fuzz/corpus/`) and its function.
pub const TARGETS: &[(&str, Target)] = &[
    ("sql", sql),
    ("data_file", data_file),
    ("manifest", manifest),
    ("files_list", files_list),
    ("encryption_info", encryption_info),
    ("encrypted_file", encrypted_file),
    ("backup_plan", backup_plan),
    ("unit_record", unit_record),
    ("checkpoint", checkpoint),
    ("job_record", job_record),
    ("schedule_record", schedule_record),
    ("descriptor", descriptor),
    ("run_lease", run_lease),
];

/// The key [`encrypted_file`] opens files with, and the path they are sealed for.
pub const FUZZ_KEY: [u8; 32] = [7; 32];
/// See [`FUZZ_KEY`].
pub const FUZZ_PATH: &str = "data/fuzz.sst";

/// The SQL parser: any text parses or fails (its error message built too), and what parses
/// prints (secrets redacted).
pub fn sql(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match crate::sql::parse(&text) {
        Ok(statement) => drop(statement.to_string()),
        Err(e) => drop(e.to_string()),
    }
}

/// A data file held whole in memory: its footer, its index, every block, and a span read; both
/// as given and with its checksums fixed (the index's CRC in the footer, each block's CRC), so
/// that the fuzzer's mutations reach the decoders behind the checksums.
pub fn data_file(data: &[u8]) {
    read_data_file(data);
    let mut fixed = data.to_vec();
    if fix_data_file_checksums(&mut fixed) {
        read_data_file(&fixed);
    }
}

/// Recomputes the CRCs of a data file where its footer and index say they are; `false` when
/// there is nothing to fix.
fn fix_data_file_checksums(bytes: &mut [u8]) -> bool {
    let size = bytes.len();
    if size < FOOTER_LEN as usize {
        return false;
    }
    let footer_at = size - FOOTER_LEN as usize;
    let index_offset = u64::from_le_bytes(bytes[footer_at..footer_at + 8].try_into().expect("8 bytes"));
    let index_len = u32::from_le_bytes(bytes[footer_at + 8..footer_at + 12].try_into().expect("4 bytes")) as u64;
    if index_offset.checked_add(index_len) != Some(footer_at as u64) {
        return false;
    }
    let crc = crc32fast::hash(&bytes[index_offset as usize..footer_at]);
    bytes[footer_at + 12..footer_at + 16].copy_from_slice(&crc.to_le_bytes());
    let Ok(footer) = decode_footer(&bytes[footer_at..], size as u64, "fuzz.sst") else { return true };
    let Ok(index) = decode_index(&bytes[index_offset as usize..footer_at], &footer, "fuzz.sst") else { return true };
    for h in index {
        let r = h.range();
        let (start, end) = (r.start as usize, r.end as usize);
        let crc = crc32fast::hash(&bytes[start..end - 4]);
        bytes[end - 4..end].copy_from_slice(&crc.to_le_bytes());
    }
    true
}

fn read_data_file(data: &[u8]) {
    let size = data.len() as u64;
    if let Ok(entries) = datafile::read_all(data, "fuzz.sst") {
        // Sorted, and a span read returns exactly the entries in the span.
        assert!(entries
            .windows(2)
            .all(|w| (&w[0].key, std::cmp::Reverse(w[0].ts)) < (&w[1].key, std::cmp::Reverse(w[1].ts))));
        if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
            let span = Span::new(first.key.to_vec(), last.key.to_vec());
            let got = datafile::read_span(data, "fuzz.sst", Some(&span)).expect("a readable file reads in part");
            let want: Vec<_> = entries.iter().filter(|e| span.contains(&e.key)).cloned().collect();
            assert_eq!(got, want);
        }
    }
    if size >= FOOTER_LEN {
        if let Ok(footer) = decode_footer(&data[(size - FOOTER_LEN) as usize..], size, "fuzz.sst") {
            let start = footer.index_offset as usize;
            let _ = decode_index(&data[start..start + footer.index_len as usize], &footer, "fuzz.sst");
        }
    }
}

/// `BACKUP_MANIFEST`: decoded and structurally checked; a decoded one re-encodes to itself.
pub fn manifest(data: &[u8]) {
    if let Ok(m) = Manifest::decode(data, "fuzz/BACKUP_MANIFEST") {
        let again = Manifest::decode(&m.encode(), "re-encoded").expect("a decoded manifest re-encodes");
        assert_eq!(again, m);
    }
}

/// `data` as given, and with its trailing SHA-256 recomputed (what a forger does), so the
/// fuzzer's mutations reach the decoder behind the digest.
fn with_and_without_digest(data: &[u8], mut f: impl FnMut(&[u8])) {
    f(data);
    if data.len() >= 32 {
        let (body, _) = data.split_at(data.len() - 32);
        f(&[body, &sha256(body)[..]].concat());
    }
}

/// `BACKUP-FILES`.
pub fn files_list(data: &[u8]) {
    with_and_without_digest(data, |data| {
        let _ = decode_files_list(data, "fuzz/BACKUP-FILES");
    });
}

/// `ENCRYPTION-INFO`: decoded and bounded (no KDF runs here: its cost is what the bounds cap).
pub fn encryption_info(data: &[u8]) {
    with_and_without_digest(data, |data| {
        if let Ok(info) = EncryptionInfo::decode(data, "fuzz/ENCRYPTION-INFO") {
            assert!(info.check_bounds().is_ok());
            assert_eq!(EncryptionInfo::decode(&info.encode(), "re-encoded").expect("re-encodes"), info);
        }
    });
}

/// An encrypted file: its header, its layout, a whole-file open and a ranged open of its chunks,
/// with [`FUZZ_KEY`] (a seed corpus sealed with it reaches the chunks' decryption).
pub fn encrypted_file(data: &[u8]) {
    let key = DataKey::from_bytes(&FUZZ_KEY).expect("32 bytes");
    let whole = aead::open(&key, FUZZ_PATH, data, "fuzz");
    if let Ok(opener) = Opener::new(&key, FUZZ_PATH, data, data.len() as u64, "fuzz") {
        let layout = *opener.layout();
        let chunks = layout.chunks_for(&(layout.plain / 2..layout.plain));
        let r = layout.stored_range(&chunks);
        let part = opener.open_chunks(chunks.start, &data[r.start as usize..r.end as usize]);
        if let (Ok(whole), Ok(part)) = (&whole, &part) {
            let from = (chunks.start * layout.chunk_size as u64) as usize;
            assert_eq!(&whole[from..from + part.len()], &part[..]);
        }
    } else {
        assert!(whole.is_err() || data.len() < HEADER_LEN as usize);
    }
}

/// `BACKUP-PLAN`.
pub fn backup_plan(data: &[u8]) {
    if let Ok(plan) = PLAN_FORMAT.decode::<BackupPlan>(data, "fuzz/BACKUP-PLAN") {
        let _ = plan.is_intact();
    }
}

/// A unit's done record under `progress/`.
pub fn unit_record(data: &[u8]) {
    let _ = UNIT_RECORD_FORMAT.decode::<UnitRecord>(data, "fuzz/progress/unit");
}

/// An older strata's `BACKUP-CHECKPOINT`.
pub fn checkpoint(data: &[u8]) {
    if let Ok(c) = CheckpointV1::decode(data, "fuzz/BACKUP-CHECKPOINT") {
        let _ = c.file_prefix();
    }
}

/// A detached job's record (either stored form).
pub fn job_record(data: &[u8]) {
    let _ = crate::exec::decode_job_record(data);
}

/// A schedule's record (either stored form), and what a cluster restore makes of it.
pub fn schedule_record(data: &[u8]) {
    let _ = SCHEDULES.decode(data);
    let key = crate::keys::system_key(b"schedule/\0\0\0\0\0\0\0\x01");
    let _ = crate::records::restored_system_value(&key, data.to_vec());
}

/// A descriptor stored in the system span (either form).
pub fn descriptor(data: &[u8]) {
    if let Ok(d) = Descriptor::decode(data) {
        assert_eq!(Descriptor::decode(&d.encode()).expect("re-encodes"), d);
    }
}

/// A running backup's lease under `leases/` (plaintext): what decodes re-encodes to itself.
pub fn run_lease(data: &[u8]) {
    if let Ok(lease) = RunLease::decode(data, "fuzz/leases/run") {
        assert_eq!(RunLease::decode(&lease.encode(), "fuzz/leases/run").expect("re-encodes"), lease);
    }
}

/// Seals `plain` as [`encrypted_file`] opens it: for seed corpora.
pub fn seal_for_fuzzing(plain: &[u8], chunk_size: u32) -> Vec<u8> {
    aead::seal(&DataKey::from_bytes(&FUZZ_KEY).expect("32 bytes"), FUZZ_PATH, plain, chunk_size)
}

/// Runs the target called `target` on `data`; `false` when there is no such target.
pub fn run(target: &str, data: &[u8]) -> bool {
    match TARGETS.iter().find(|(name, _)| *name == target) {
        Some((_, f)) => {
            f(data);
            true
        }
        None => false,
    }
}
