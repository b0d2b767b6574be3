//! One header for every stored format: an 8-byte magic, a format version as a little-endian
//! `u16`, the body, and (for formats that carry one) a SHA-256 of everything before it.
//!
//! ```text
//!   magic (8) │ version u16 LE (2) │ body … │ [sha256 of the bytes before it (32)]
//! ```
//!
//! Each format declares its [`Envelope`] once, as a constant, and writes and reads through it, so
//! the magic check, the version range and the digest are the same code for the manifest, the
//! checkpoint, `BACKUP-FILES`, `ENCRYPTION-INFO`, the per-unit done records and the records of
//! jobs and schedules. (The data file keeps its header in its footer, where ranged reads find it,
//! and the encrypted file header carries the chunk size; both use the same magic-and-LE-version
//! shape.)

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::manifest::sha256;

/// Bytes before the body: magic and version.
pub const HEADER_LEN: usize = 10;
const DIGEST_LEN: usize = 32;

/// A stored format's header: its magic, the newest version this build writes, and whether a
/// SHA-256 trailer follows the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    magic: &'static [u8; 8],
    what: &'static str,
    current: u16,
    digest: bool,
}

impl Envelope {
    /// The format `what` (a name for messages, like `backup manifest`) with `magic`, written at
    /// version `current`; readers accept versions `1..=current`.
    pub const fn new(magic: &'static [u8; 8], what: &'static str, current: u16) -> Envelope {
        Envelope { magic, what, current, digest: false }
    }

    /// The same format with a SHA-256 trailer over the header and body.
    pub const fn with_digest(mut self) -> Envelope {
        self.digest = true;
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
            return Err(Error::corrupt(shown, format!("not a strata {} (bad magic or too short)", self.what)));
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
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version == 0 || version > self.current {
            return Err(Error::corrupt(
                shown,
                format!("{} version {version} is not readable by this build (reads up to {})", self.what, self.current),
            ));
        }
        Ok((version, &bytes[HEADER_LEN..body_end]))
    }

    /// The error for a body that does not decode.
    pub fn undecodable(&self, shown: &str, e: impl std::fmt::Display) -> Error {
        Error::corrupt(shown, format!("{} does not decode: {e}", self.what))
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
}
