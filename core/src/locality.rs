//! Locality-aware backups: a list of URIs, each tagged `COCKROACH_LOCALITY=default` or
//! `COCKROACH_LOCALITY=key%3Dvalue`, opened as one set of [`Locations`].
//!
//! ```text
//!   BACKUP … TO ('s3://us?COCKROACH_LOCALITY=default', 's3://west?COCKROACH_LOCALITY=region%3Dus-west')
//!
//!   work unit (locality "region=us-west,zone=a") ──route──▶ 's3://west…'  FileInfo.locality = "region=us-west"
//!   work unit (locality "region=eu" or none)      ──route──▶ 's3://us…'    FileInfo.locality = None
//!   BACKUP_MANIFEST, checksum, LATEST, ENCRYPTION-INFO ───▶ 's3://us…' (the default location)
//! ```
//!
//! Every file but the data files lives in the default location ([`Locations::storage`]); a
//! subdirectory of a set of locations is the set of the same subdirectories
//! ([`Locations::subdir`]). A backup writes each data file to the location matching its work
//! unit's locality ([`Locations::route`]) and records that locality in the manifest; a restore
//! reads each from the location its `FileInfo` names ([`Locations::for_file`]). One URI is a set
//! with a default location only. (The storage trait knows nothing of localities.)

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::manifest::FileInfo;
use crate::redact::redact_uri;
use crate::storage::{subdir, ExternalStorage, StorageOpener};

/// The URI parameter that tags the URIs of a locality-aware backup.
pub const LOCALITY_PARAM: &str = "COCKROACH_LOCALITY";

/// The value of [`LOCALITY_PARAM`] that marks the default location.
pub const DEFAULT_LOCALITY: &str = "default";

/// Where a backup's files go: the default location, and one location per locality tier
/// (`region=us-west`) of a locality-aware backup. Cloning shares the storages.
#[derive(Clone)]
pub struct Locations {
    default: Arc<dyn ExternalStorage>,
    tiers: Vec<(String, Arc<dyn ExternalStorage>)>,
}

impl Locations {
    /// A default location and `(tier, location)` pairs, tiers as `key=value`.
    pub fn new(default: Arc<dyn ExternalStorage>, tiers: Vec<(String, Arc<dyn ExternalStorage>)>) -> Self {
        Locations { default, tiers }
    }

    /// One location (not locality-aware).
    pub fn single(storage: Arc<dyn ExternalStorage>) -> Self {
        Locations { default: storage, tiers: Vec::new() }
    }

    /// The default location: where everything but locality-routed data files lives.
    pub fn storage(&self) -> &Arc<dyn ExternalStorage> {
        &self.default
    }

    /// The default location's URI, secrets redacted.
    pub fn describe(&self) -> String {
        self.default.describe()
    }

    /// The same subdirectory `dir` of every location.
    pub fn subdir(&self, dir: &str) -> Locations {
        Locations {
            default: subdir(&self.default, dir),
            tiers: self.tiers.iter().map(|(t, s)| (t.clone(), subdir(s, dir))).collect(),
        }
    }

    /// The location of locality tier `tier`, if the list has one.
    pub fn tier(&self, tier: &str) -> Option<&Arc<dyn ExternalStorage>> {
        self.tiers.iter().find(|(t, _)| t == tier).map(|(_, s)| s)
    }

    /// Every location: the default one first, then each tier's.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn ExternalStorage>> {
        std::iter::once(&self.default).chain(self.tiers.iter().map(|(_, s)| s))
    }

    /// Removes `path` from every location (a data file's path names one file, wherever its
    /// locality put it).
    pub async fn delete_everywhere(&self, path: &str) -> Result<()> {
        self.default.delete(path).await?;
        for (_, location) in &self.tiers {
            location.delete(path).await?;
        }
        Ok(())
    }

    /// Where the files of a work unit go: the location of the most specific tier of `locality`
    /// (`region=us-west,zone=us-west-1a` prefers a `zone=us-west-1a` URI to a `region=us-west`
    /// one) that the list has, with that tier; otherwise the default location, with `None`.
    pub fn route(&self, locality: Option<&str>) -> (Arc<dyn ExternalStorage>, Option<String>) {
        for tier in locality.unwrap_or_default().split(',').rev().map(str::trim).filter(|t| !t.is_empty()) {
            if let Some(location) = self.tier(tier) {
                return (location.clone(), Some(tier.to_string()));
            }
        }
        (self.default.clone(), None)
    }

    /// The location holding `file` of a backup layer: the default location, or the one of its
    /// recorded locality, which the restore must have been given.
    pub fn for_file(&self, file: &FileInfo) -> Result<Arc<dyn ExternalStorage>> {
        match &file.locality {
            None => Ok(self.default.clone()),
            Some(tier) => self.tier(tier).cloned().ok_or_else(|| {
                Error::invalid(
                    "restore source",
                    format!(
                        "{} is stored in locality {tier}, but no URI with {LOCALITY_PARAM}={} was given: \
                         list the backup's URIs for every locality, as in BACKUP",
                        file.path,
                        tier.replace('=', "%3D")
                    ),
                )
            }),
        }
    }
}

/// Opens a backup's list of URIs: one URI as a single location, several as the locations of a locality-aware backup. In a list
/// every URI carries `COCKROACH_LOCALITY`, exactly one of them `default`, the others distinct
/// `key=value` tiers. A single URI may carry `COCKROACH_LOCALITY=default`, nothing else.
pub fn open_locations(opener: &dyn StorageOpener, uris: &[String]) -> Result<Locations> {
    let invalid = |message: String| Error::invalid("locality-aware backup", message);
    match uris {
        [] => Err(Error::invalid("backup location", "no URI given")),
        [one] => match locality_of(one)? {
            Some(l) if l != DEFAULT_LOCALITY => Err(invalid(format!(
                "'{}' has {LOCALITY_PARAM}={l}, but no URI of the list is the default: give a list of URIs, one with \
                 {LOCALITY_PARAM}=default",
                redact_uri(one)
            ))),
            _ => Ok(Locations::single(opener.open(one)?)),
        },
        many => {
            let mut default = None;
            let mut localities: Vec<(String, Arc<dyn ExternalStorage>)> = Vec::new();
            for uri in many {
                let Some(locality) = locality_of(uri)? else {
                    return Err(invalid(format!(
                        "'{}' has no {LOCALITY_PARAM} parameter: every URI of a list needs one \
                         ({LOCALITY_PARAM}=default for one of them, {LOCALITY_PARAM}=key%3Dvalue for the others)",
                        redact_uri(uri)
                    )));
                };
                if locality == DEFAULT_LOCALITY {
                    if default.is_some() {
                        return Err(invalid(format!("more than one URI has {LOCALITY_PARAM}=default")));
                    }
                    default = Some(opener.open(uri)?);
                    continue;
                }
                if localities.iter().any(|(l, _)| *l == locality) {
                    return Err(invalid(format!("more than one URI has {LOCALITY_PARAM}={locality}")));
                }
                localities.push((locality, opener.open(uri)?));
            }
            let default = default
                .ok_or_else(|| invalid(format!("no URI of the list has {LOCALITY_PARAM}=default; exactly one must")))?;
            Ok(Locations::new(default, localities))
        }
    }
}

/// The `COCKROACH_LOCALITY` of a URI, percent-decoded: `default`, a `key=value` tier, or `None`.
pub fn locality_of(uri: &str) -> Result<Option<String>> {
    let Some((_, query)) = uri.split_once('?') else { return Ok(None) };
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let is_locality = crate::redact::percent_decode_query("URI parameter name", name)
            .is_ok_and(|name| name.eq_ignore_ascii_case(LOCALITY_PARAM));
        if !is_locality {
            continue;
        }
        let value = crate::redact::percent_decode_query(&format!("URI parameter {LOCALITY_PARAM}"), value)?;
        if value == DEFAULT_LOCALITY {
            return Ok(Some(value));
        }
        let valid = value
            .split_once('=')
            .is_some_and(|(k, v)| !k.is_empty() && !v.is_empty() && !v.contains('=') && !value.contains(','));
        if !valid {
            return Err(Error::invalid(
                "locality-aware backup",
                format!(
                    "'{}': {LOCALITY_PARAM} is 'default' or one locality tier key=value (written key%3Dvalue), not {value:?}",
                    redact_uri(uri)
                ),
            ));
        }
        return Ok(Some(value));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{ExternalStorageExt, MemoryOpener};
    use bytes::Bytes;
    use futures::executor::block_on;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn file(locality: Option<String>) -> FileInfo {
        FileInfo {
            path: "data/f.sst".into(),
            span: crate::span::Span::new(vec![1], vec![2]),
            size: 1,
            sha256: [0; 32],
            entries: 1,
            rows: 1,
            logical_bytes: 1,
            locality,
        }
    }

    fn uris(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn localities_are_parsed() {
        assert_eq!(locality_of("s3://b/p").unwrap(), None);
        assert_eq!(locality_of("s3://b/p?COCKROACH_LOCALITY=default").unwrap().as_deref(), Some("default"));
        assert_eq!(
            locality_of("s3://b/p?AWS_REGION=x&cockroach_locality=region%3Dus-west").unwrap().as_deref(),
            Some("region=us-west")
        );
        for bad in ["region", "region%3D", "a%3Db%3Dc", "region%3Dus%2Czone%3Da", ""] {
            let err =
                locality_of(&format!("s3://b/p?COCKROACH_LOCALITY={bad}&AWS_SECRET_ACCESS_KEY=hunter2")).unwrap_err();
            assert!(err.to_string().contains("COCKROACH_LOCALITY is 'default' or one locality tier"), "{bad}: {err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn lists_need_exactly_one_default_and_distinct_tiers() {
        let opener = MemoryOpener::default();
        let err = |list: &[&str]| match open_locations(&opener, &uris(list)) {
            Ok(_) => panic!("{list:?} should be refused"),
            Err(e) => e.to_string(),
        };
        assert!(err(&["memory://a?COCKROACH_LOCALITY=region%3Dx"]).contains("no URI of the list is the default"));
        assert!(err(&["memory://a?COCKROACH_LOCALITY=default", "memory://b"])
            .contains("'memory://b' has no COCKROACH_LOCALITY"));
        assert!(err(&["memory://a?COCKROACH_LOCALITY=region%3Dx", "memory://b?COCKROACH_LOCALITY=region%3Dy"])
            .contains("exactly one must"));
        assert!(err(&["memory://a?COCKROACH_LOCALITY=default", "memory://b?COCKROACH_LOCALITY=default"])
            .contains("more than one URI has COCKROACH_LOCALITY=default"));
        assert!(err(&[
            "memory://a?COCKROACH_LOCALITY=default",
            "memory://b?COCKROACH_LOCALITY=region%3Dx",
            "memory://c?COCKROACH_LOCALITY=region%3Dx"
        ])
        .contains("more than one URI has COCKROACH_LOCALITY=region=x"));
        // One URI, default or untagged, is a plain location.
        for one in ["memory://a", "memory://a?COCKROACH_LOCALITY=default"] {
            let s = open_locations(&opener, &uris(&[one])).unwrap();
            assert!(s.tier("region=x").is_none());
        }
    }

    #[test]
    fn files_go_where_their_locality_says() {
        block_on(async {
            let opener = MemoryOpener::default();
            let list = uris(&[
                "memory://west?COCKROACH_LOCALITY=region%3Dus-west",
                "memory://main?COCKROACH_LOCALITY=default",
                "memory://zone?COCKROACH_LOCALITY=zone%3Dw1",
            ]);
            let root = open_locations(&opener, &list).unwrap();
            assert_eq!(root.describe(), "memory://main");
            // A subdirectory of the list is the list of the subdirectories.
            let layer = root.subdir("2026/layer");
            let cases = [
                (Some("region=us-west"), "memory://west/2026/layer", Some("region=us-west")),
                (Some("region=us-west,zone=w1"), "memory://zone/2026/layer", Some("zone=w1")),
                (Some("region=us-west,zone=w2"), "memory://west/2026/layer", Some("region=us-west")),
                (Some("region=eu"), "memory://main/2026/layer", None),
                (None, "memory://main/2026/layer", None),
            ];
            for (unit, shown, recorded) in cases {
                let (target, tier) = layer.route(unit);
                assert_eq!((target.describe().as_str(), tier.as_deref()), (shown, recorded), "{unit:?}");
                target.put("data/f.sst", Bytes::from_static(b"x")).await.unwrap();
                let file = file(tier);
                let found = layer.for_file(&file).unwrap();
                assert_eq!(found.describe(), shown);
                assert_eq!(found.get("data/f.sst").await.unwrap(), Bytes::from_static(b"x"));
            }
            // Deleting through the list removes the path everywhere.
            layer.delete_everywhere("data/f.sst").await.unwrap();
            for store in ["memory://west", "memory://zone", "memory://main"] {
                assert!(opener.open(store).unwrap().list("").await.unwrap().is_empty(), "{store}");
            }
            // A restore given fewer URIs than the backup wrote to names the missing locality.
            let partial = open_locations(&opener, &uris(&["memory://main?COCKROACH_LOCALITY=default"])).unwrap();
            let file = file(Some("zone=w1".into()));
            let err = partial.subdir("2026/layer").for_file(&file).err().unwrap();
            assert_eq!(
                err.to_string(),
                "invalid restore source: data/f.sst is stored in locality zone=w1, but no URI with \
                 COCKROACH_LOCALITY=zone%3Dw1 was given: list the backup's URIs for every locality, as in BACKUP"
            );
        });
    }
}
