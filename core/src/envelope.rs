//! One header for every stored format: an 8-byte magic, a format version as a little-endian
//! `u16`, the body, and (for formats that carry one) a SHA-256 of everything before it.
//!
//! ```text
//!   magic (8) │ version u16 LE (2) │ body … │ [sha256 of the bytes before it (32)]
//! ```
//!
//! Each format declares its [`Envelope`] once, as a constant in the table below, and writes and
//! reads through it, so the magic check, the version range, the digest and their error texts are
//! the same code everywhere. [`ALL`] lists every constant, and a test holds their magics distinct.
//!
//! Formats written whole through [`Envelope::wrap`] / [`Envelope::open`]:
//! - the backup manifest ([`MANIFEST`], no digest: `BACKUP_MANIFEST-CHECKSUM` beside it);
//! - `BACKUP-FILES` ([`FILES_LIST`]) and `ENCRYPTION-INFO` ([`ENCRYPTION_INFO`]), with a digest,
//!   so damage is told apart from a wrong key without any key;
//! - descriptors in the system span ([`DESCRIPTOR`]; version 1 was a 1-byte version before the
//!   postcard body, still read, see [`crate::Descriptor::decode`]).
//!
//! Two formats keep their own field order, because changing it would make every existing backup
//! unreadable, and because their headers are fixed-width fields rather than one body: they only
//! check their magic and version through their constant ([`Envelope::check_magic`],
//! [`Envelope::check_version`]), so the texts of those errors are still written once here.
//! - The encrypted file header ([`ENCRYPTED_FILE`], `crypto::aead`) has the same
//!   magic-and-LE-version start, then a reserved `u16`, the chunk size and the salt: 32 fixed
//!   bytes that are part of every chunk's AAD and need no digest (AES-GCM authenticates them).
//! - The data file ([`DATA_FILE`], `format::datafile`) keeps version and magic at the *end*, in
//!   its 36-byte footer, where one ranged read of the file's tail finds the block index.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Bytes before the body: magic and version.
pub const HEADER_LEN: usize = 10;
const DIGEST_LEN: usize = 32;

/// `BACKUP_MANIFEST` (`format::manifest`). Version 2 added `revision_start_time`, version 3 the
/// origin (source store and run ids).
pub const MANIFEST: Envelope = Envelope::new(b"STRATAMF", "backup manifest", 3).named("manifest");
/// `BACKUP-FILES`, an encrypted layer's plaintext file list (`format::files_list`). Version 2
/// added each file's locality.
pub const FILES_LIST: Envelope = Envelope::new(b"STRATAFL", "BACKUP-FILES list", 2).named("BACKUP-FILES").with_digest();
/// `ENCRYPTION-INFO`, the wrapped copies of a chain's data key (`crypto::info`).
pub const ENCRYPTION_INFO: Envelope =
    Envelope::new(b"STRATAEI", "ENCRYPTION-INFO file", 1).named("ENCRYPTION-INFO").with_digest();
/// A descriptor stored under its key in the system span (`catalog`). Version 1 was the
/// 1-byte-version form; version 2 has the same postcard body in this envelope.
pub const DESCRIPTOR: Envelope = Envelope::new(b"STRATADS", "descriptor", 2);
/// The header of an encrypted file (`crypto::aead`): magic and version only, its own fields follow.
pub const ENCRYPTED_FILE: Envelope = Envelope::new(b"STRATAEN", "encrypted file", 1).named("encryption");
/// The data file's footer (`format::datafile`): magic and version only, at the end of the file.
/// Version 2 keeps each block's heads (keys, timestamps, lengths) apart from its values.
pub const DATA_FILE: Envelope = Envelope::new(b"STRATADF", "data file", 2);
/// `BACKUP-PLAN`, the plan of a backup run in progress (`backup::resume`). Version 2 added the
/// source store's id and the id of the run that claimed the directory.
pub const BACKUP_PLAN: Envelope = Envelope::new(b"STRATAPL", "backup plan", 2);
/// A running backup's lease under `leases/` (`backup::lease`): plaintext, no secret.
pub const RUN_LEASE: Envelope = Envelope::new(b"STRATALS", "backup run lease", 1);
/// A work unit's done record under `progress/` (`backup::resume`).
pub const UNIT_RECORD: Envelope = Envelope::new(b"STRATAUR", "backup unit record", 1);
/// A detached job's record in the system span (`records`). Version 1 was the 1-byte-version
/// form; version 2 has the same postcard body in this envelope; version 3 holds the statement
/// without secrets (`secrets::StoredBackup`).
pub const JOB_RECORD: Envelope = Envelope::new(b"STRATAJB", "job record", 3);
/// A detached backup's job in a work queue: its location and plan (`exec::queued`).
pub const QUEUED_BACKUP: Envelope = Envelope::new(b"STRATAQB", "queued backup job", 1);
/// A schedule's record in the system span (`records`), versions 1 to 3 as [`JOB_RECORD`];
/// version 4 adds the schedule's retention policy (`keep_*` schedule options).
pub const SCHEDULE_RECORD: Envelope = Envelope::new(b"STRATASC", "schedule record", 4);
/// A job that is not a detached backup, in the system span (`exec::jobs::runs`): a schedule's
/// run or a detached restore.
pub const JOB_RUN_RECORD: Envelope = Envelope::new(b"STRATAJR", "job run record", 1);

/// Every stored format's envelope; their magics are distinct (tested). A new format adds its
/// constant here. (Only the test reads it.)
#[cfg(test)]
pub(crate) const ALL: &[Envelope] = &[
    MANIFEST,
    FILES_LIST,
    ENCRYPTION_INFO,
    DESCRIPTOR,
    ENCRYPTED_FILE,
    DATA_FILE,
    BACKUP_PLAN,
    UNIT_RECORD,
    JOB_RECORD,
    SCHEDULE_RECORD,
    QUEUED_BACKUP,
    RUN_LEASE,
    JOB_RUN_RECORD,
];

/// SHA-256 of bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A stored format's header: its magic, the newest version this build writes, and whether a
/// SHA-256 trailer follows the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    magic: &'static [u8; 8],
    what: &'static str,
    name: &'static str,
    current: u16,
    digest: bool,
}

impl Envelope {
    /// The format `what` (a name for messages, like `backup manifest`) with `magic`, written at
    /// version `current`; readers accept versions `1..=current`.
    pub const fn new(magic: &'static [u8; 8], what: &'static str, current: u16) -> Envelope {
        Envelope { magic, what, name: what, current, digest: false }
    }

    /// The same format with a SHA-256 trailer over the header and body.
    pub const fn with_digest(mut self) -> Envelope {
        self.digest = true;
        self
    }

    /// The same format with a shorter `name` in the messages about its version and body
    /// (`manifest format version 3 is not readable…`, `manifest does not decode…`); `what` stays
    /// in `not a strata backup manifest…`. Without it, both say `what`.
    pub const fn named(mut self, name: &'static str) -> Envelope {
        self.name = name;
        self
    }

    /// The version this build writes.
    pub const fn version(&self) -> u16 {
        self.current
    }

    /// The format's magic.
    pub const fn magic(&self) -> &'static [u8; 8] {
        self.magic
    }

    /// Whether `bytes` start with this format's magic.
    pub fn is_this(&self, bytes: &[u8]) -> bool {
        bytes.starts_with(self.magic)
    }

    /// The stored bytes of `body` at the current version.
    pub fn wrap(&self, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + body.len() + DIGEST_LEN);
        out.extend_from_slice(self.magic);
        out.extend_from_slice(&self.current.to_le_bytes());
        out.extend_from_slice(body);
        if self.digest {
            let digest = sha256(&out);
            out.extend_from_slice(&digest);
        }
        out
    }

    /// The stored bytes of `value`, postcard-encoded, at the current version.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Vec<u8> {
        let body = postcard::to_allocvec(value).expect("stored formats always serialize");
        self.wrap(&body)
    }

    /// Checks the magic, the digest and the version of bytes read from `shown` and returns the
    /// version and the body.
    pub fn open<'a>(&self, bytes: &'a [u8], shown: &str) -> Result<(u16, &'a [u8])> {
        let min = HEADER_LEN + if self.digest { DIGEST_LEN } else { 0 };
        if bytes.len() < min || !self.is_this(bytes) {
            return Err(self.not_this(shown, "bad magic or too short"));
        }
        let body_end = if self.digest {
            let (body, digest) = bytes.split_at(bytes.len() - DIGEST_LEN);
            if sha256(body) != digest {
                return Err(Error::corrupt(shown, "SHA-256 does not match its contents: the file is damaged"));
            }
            body.len()
        } else {
            bytes.len()
        };
        let version = self.check_version(u16::from_le_bytes([bytes[8], bytes[9]]), shown)?;
        Ok((version, &bytes[HEADER_LEN..body_end]))
    }

    /// Checks a magic read from its own place in a format that keeps its own field order (the
    /// data file's footer).
    pub fn check_magic(&self, magic: &[u8], shown: &str) -> Result<()> {
        if magic != self.magic {
            return Err(self.not_this(shown, "bad magic"));
        }
        Ok(())
    }

    /// Checks that this build reads `version` (`1..=current`) of the format read from `shown`,
    /// and returns it.
    pub fn check_version(&self, version: u16, shown: &str) -> Result<u16> {
        if version == 0 || version > self.current {
            let reads = match self.current {
                1 => "reads 1".to_string(),
                n => format!("reads up to {n}"),
            };
            return Err(Error::corrupt(
                shown,
                format!("{} format version {version} is not readable by this build ({reads})", self.name),
            ));
        }
        Ok(version)
    }

    fn not_this(&self, shown: &str, why: &str) -> Error {
        Error::corrupt(shown, format!("not a strata {} ({why})", self.what))
    }

    /// The error for a body that does not decode.
    pub fn undecodable(&self, shown: &str, e: impl std::fmt::Display) -> Error {
        Error::corrupt(shown, format!("{} does not decode: {e}", self.name))
    }

    /// Opens bytes and decodes a body of the current version with postcard (for formats with
    /// one version so far).
    pub fn decode<T: serde::de::DeserializeOwned>(&self, bytes: &[u8], shown: &str) -> Result<T> {
        let (_, body) = self.open(bytes, shown)?;
        postcard::from_bytes(body).map_err(|e| self.undecodable(shown, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const PLAIN: Envelope = Envelope::new(b"STRATAXX", "test record", 2);
    const DIGESTED: Envelope = PLAIN.with_digest();

    #[test]
    fn round_trips_and_refuses_what_is_not_its_format() {
        for env in [PLAIN, DIGESTED] {
            let bytes = env.encode(&(7u32, "x".to_string()));
            assert_eq!(&bytes[..8], b"STRATAXX");
            assert_eq!(&bytes[8..10], &[2, 0], "the version is little-endian");
            assert_eq!(env.decode::<(u32, String)>(&bytes, "f").unwrap(), (7, "x".to_string()));
            let e = env.open(b"STRATAYY\x02\x00", "dir/f").unwrap_err();
            assert_eq!(e, Error::corrupt("dir/f", "not a strata test record (bad magic or too short)"));
            let mut newer = bytes.clone();
            newer[8] = 3;
            if env.digest {
                assert!(env.open(&newer, "f").unwrap_err().to_string().contains("SHA-256 does not match"));
            } else {
                assert!(env.open(&newer, "f").unwrap_err().to_string().contains("version 3 is not readable"));
            }
        }
    }

    #[test]
    fn a_digest_catches_any_flipped_byte() {
        let bytes = DIGESTED.encode(&vec![1u8, 2, 3]);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(DIGESTED.open(&bad, "f").is_err(), "byte {i}");
        }
    }

    #[test]
    fn every_format_has_its_own_magic() {
        let mut magics: Vec<&[u8; 8]> = ALL.iter().map(Envelope::magic).collect();
        assert!(magics.iter().all(|m| m.starts_with(b"STRATA")), "{magics:?}");
        magics.sort();
        magics.dedup();
        assert_eq!(magics.len(), ALL.len(), "two formats share a magic");
        // Not one list that forgot a format: each constant this module declares is in it.
        for env in [MANIFEST, FILES_LIST, ENCRYPTION_INFO, DESCRIPTOR, ENCRYPTED_FILE, DATA_FILE] {
            assert!(ALL.contains(&env), "{env:?}");
        }
    }

    #[test]
    fn version_errors_name_the_format_and_what_it_reads() {
        let e = MANIFEST.check_version(99, "b/BACKUP_MANIFEST").unwrap_err();
        assert_eq!(
            e.to_string(),
            "corrupt b/BACKUP_MANIFEST: manifest format version 99 is not readable by this build (reads up to 3)"
        );
        let e = ENCRYPTED_FILE.check_version(0, "x").unwrap_err();
        assert_eq!(e.to_string(), "corrupt x: encryption format version 0 is not readable by this build (reads 1)");
        assert_eq!(DATA_FILE.check_version(1, "x"), Ok(1));
        assert_eq!(
            DATA_FILE.check_magic(b"STRATAMF", "f.sst").unwrap_err().to_string(),
            "corrupt f.sst: not a strata data file (bad magic)"
        );
        assert_eq!(DATA_FILE.check_magic(b"STRATADF", "f.sst"), Ok(()));
    }
}
