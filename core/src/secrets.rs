//! Where the secrets of a backup come from when it runs, and how job and schedule records keep
//! none of them.
//!
//! ```text
//!   BACKUP INTO 's3://b/p?AWS_ACCESS_KEY_ID=AKIA…&AWS_SECRET_ACCESS_KEY=${AWS_SECRET}'
//!          WITH encryption_passphrase_env = 'BACKUP_PASS'          (or _file = '/etc/strata/pass')
//!     │ record (job, schedule): the statement as written — references only, no secret
//!     ▼
//!   run ──resolve──▶ SecretResolver (the host: environment, files) ──▶ the statement with values
//! ```
//!
//! A secret written into a statement itself (`encryption_passphrase = '…'`, a secret URI parameter,
//! a `user:password@`) is used by the statement that carries it and never stored: a record keeps
//! the statement with that value replaced by `redacted` and a note of what was typed in
//! ([`without_secrets`]). A detached job holding such a note runs while its process lives; after
//! that it is "supplied on resume": running the statement again (with the secret) resumes its
//! backup. A schedule must not hold one: `CREATE SCHEDULE` asks for references instead.
//!
//! References: a KMS URI needs no secret of strata's; `encryption_passphrase_env` /
//! `encryption_passphrase_file` name where the passphrase is read; `${NAME}` as a URI parameter's
//! value or as the password of `user:password@` is the environment variable `NAME`. The core
//! reads neither the environment nor files: the host gives the executor a [`SecretResolver`].

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::kv::MaybeSendSync;
use crate::redact::env_reference;
use crate::redact::{percent_decode, redact_uri, REDACTED};
use crate::sql::SecretSource;
use crate::sql::{AsOf, BackupDestination, BackupStmt, BackupStmtOptions, Secret, Targets};

/// Reads secrets from where [`SecretSource`]s say, for [`crate::Executor::with_secret_resolver`].
///
/// # Contract
/// `resolve` returns the secret, or an error that names the source and why it cannot be read
/// (not set, not readable) and never holds the value or any part of it.
pub trait SecretResolver: MaybeSendSync {
    /// The secret `source` names.
    fn resolve(&self, source: &SecretSource) -> Result<Secret>;
}

/// The resolver of a host that reads no environment or files (the default): every reference
/// fails, naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSecrets;

impl SecretResolver for NoSecrets {
    fn resolve(&self, source: &SecretSource) -> Result<Secret> {
        Err(Error::Precondition(format!(
            "the statement reads its secret from the {source}, and this host reads no environment variables or \
             files (give the executor a SecretResolver)"
        )))
    }
}

/// Storage URI query parameters whose values are no secret (endpoints, regions, names, key ids):
/// a job or schedule record keeps them as written, and storage plugins may show them in their own
/// messages (`redact_uri` still hides them in URIs shown to users).
pub const PLAIN_PARAMS: &[&str] = &[
    "AUTH",
    "AWS_ACCESS_KEY_ID",
    "AWS_REGION",
    "AWS_ENDPOINT",
    "AWS_USE_PATH_STYLE",
    "AZURE_ACCOUNT_NAME",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_BLOB_ENDPOINT",
    "COCKROACH_LOCALITY",
];

/// A place in a URI that may hold a secret.
enum Slot<'a> {
    /// The value of query parameter `name` (as written).
    Param(&'a str),
    /// The password of `user:password@`.
    Password,
}

/// `uri` with the value of each secret [`Slot`] replaced by what `f` returns (`None`: kept).
fn map_slots(uri: &str, mut f: impl FnMut(Slot<'_>, &str) -> Result<Option<String>>) -> Result<String> {
    let (base, query) = match uri.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (uri, None),
    };
    let mut out = String::with_capacity(uri.len());
    match userinfo_password(base) {
        Some((start, end)) => {
            out.push_str(&base[..start]);
            match f(Slot::Password, &base[start..end])? {
                Some(v) => out.push_str(&v),
                None => out.push_str(&base[start..end]),
            }
            out.push_str(&base[end..]);
        }
        None => out.push_str(base),
    }
    if let Some(q) = query {
        out.push('?');
        let mut pieces = Vec::new();
        for kv in q.split('&') {
            pieces.push(match kv.split_once('=') {
                Some((k, v)) => match f(Slot::Param(k), v)? {
                    Some(new) => format!("{k}={new}"),
                    None => kv.to_string(),
                },
                None => kv.to_string(),
            });
        }
        out.push_str(&pieces.join("&"));
    }
    Ok(out)
}

/// The byte range of the password in `scheme://user:password@host…` (before any `?`).
fn userinfo_password(base: &str) -> Option<(usize, usize)> {
    let after = base.find("://")? + 3;
    let rest = &base[after..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    // The last '@' of the authority; failing that, a later '@' with a ':' before it (a password
    // holding an unencoded '/').
    let at = rest[..authority_end].rfind('@').or_else(|| rest.rfind('@').filter(|at| rest[..*at].contains(':')))?;
    let colon = rest[..at].find(':')?;
    Some((after + colon + 1, after + at))
}

/// What a record keeps of `uri`: every secret written into it replaced by `redacted`, each noted
/// in `typed` (as `the AWS_SECRET_ACCESS_KEY of 's3://…'`); references and the parameters a run
/// needs ([`PLAIN_PARAMS`]) kept.
pub(crate) fn uri_without_secrets(uri: &str, typed: &mut Vec<String>) -> String {
    let shown = redact_uri(uri);
    map_slots(uri, |slot, value| {
        if value.is_empty() || env_reference(value).is_some() {
            return Ok(None);
        }
        let what = match slot {
            Slot::Param(name)
                if percent_decode("URI parameter name", name)
                    .is_ok_and(|name| PLAIN_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(&name))) =>
            {
                return Ok(None)
            }
            Slot::Param(name) => {
                format!("the {} of '{shown}'", percent_decode("URI parameter name", name).as_deref().unwrap_or(name))
            }
            Slot::Password => format!("the password of '{shown}'"),
        };
        if !typed.contains(&what) {
            typed.push(what);
        }
        Ok(Some(REDACTED.to_string()))
    })
    .expect("the mapping never fails")
}

/// How [`without_secrets`] notes a passphrase typed into the statement.
pub(crate) const TYPED_PASSPHRASE: &str = "the encryption passphrase";

/// The statement as a job or schedule record keeps it, and what was typed into it that the
/// record does not keep: the passphrase, and each secret URI parameter or password (see the
/// module docs).
pub fn without_secrets(b: &BackupStmt) -> (BackupStmt, Vec<String>) {
    let mut typed = Vec::new();
    let mut out = b.clone();
    if out.options.encryption_passphrase.take().is_some() {
        typed.push(TYPED_PASSPHRASE.to_string());
    }
    for_each_uri(&mut out, |uri| *uri = uri_without_secrets(uri, &mut typed));
    (out, typed)
}

fn for_each_uri(b: &mut BackupStmt, mut f: impl FnMut(&mut String)) {
    let uris = match &mut b.destination {
        BackupDestination::To(uris) | BackupDestination::Into { uris, .. } => uris,
    };
    uris.iter_mut().chain(b.incremental_from.iter_mut()).chain(b.options.kms.iter_mut()).for_each(&mut f);
}

/// What must be present when `b` runs: the sources of its passphrase and of its `${NAME}`
/// references, in order, without repeats.
pub fn required_sources(b: &BackupStmt) -> Vec<SecretSource> {
    let mut out: Vec<SecretSource> = b.options.encryption_passphrase_from.iter().cloned().collect();
    let mut b = b.clone();
    for_each_uri(&mut b, |uri| {
        let _ = map_slots(uri, |_, value| {
            if let Some(name) = env_reference(value) {
                let source = SecretSource::Env(name);
                if !out.contains(&source) {
                    out.push(source);
                }
            }
            Ok(None)
        });
    });
    out
}

/// `b` with its references read through `resolver`: the passphrase from its source, and every
/// `${NAME}` of its URIs replaced by the variable's value (percent-encoded). An error names
/// the reference that could not be read, never a value.
pub fn resolve_backup(b: &BackupStmt, resolver: &dyn SecretResolver) -> Result<BackupStmt> {
    let mut out = b.clone();
    if let Some(source) = out.options.encryption_passphrase_from.take() {
        out.options.encryption_passphrase = Some(resolver.resolve(&source)?);
    }
    let mut failed = None;
    for_each_uri(&mut out, |uri| {
        if failed.is_some() {
            return;
        }
        match map_slots(uri, |_, value| match env_reference(value) {
            Some(name) => Ok(Some(percent_encode(resolver.resolve(&SecretSource::Env(name))?.expose()))),
            None => Ok(None),
        }) {
            Ok(resolved) => *uri = resolved,
            Err(e) => failed = Some(e),
        }
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// `uri` with every `${NAME}` replaced by the variable's value read through `resolver`
/// (percent-encoded), as [`resolve_backup`] does for a BACKUP's URIs.
pub(crate) fn resolve_uri(uri: &str, resolver: &dyn SecretResolver) -> Result<String> {
    map_slots(uri, |_, value| match env_reference(value) {
        Some(name) => Ok(Some(percent_encode(resolver.resolve(&SecretSource::Env(name))?.expose()))),
        None => Ok(None),
    })
}

/// A BACKUP statement as job and schedule records store it: no secret, only references, and
/// the list of secrets that were typed in and not kept ([`without_secrets`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredBackup {
    targets: Targets,
    destination: BackupDestination,
    as_of: Option<AsOf>,
    incremental_from: Vec<String>,
    revision_history: bool,
    passphrase_from: Option<SecretSource>,
    kms: Vec<String>,
    /// What was typed in and is not kept, as `the encryption passphrase`.
    typed_secrets: Vec<String>,
}

impl StoredBackup {
    /// The stored form of `b` (its `detached` dropped).
    pub(crate) fn new(b: &BackupStmt) -> StoredBackup {
        let (b, typed_secrets) = without_secrets(b);
        StoredBackup {
            targets: b.targets,
            destination: b.destination,
            as_of: b.as_of,
            incremental_from: b.incremental_from,
            revision_history: b.options.revision_history,
            passphrase_from: b.options.encryption_passphrase_from,
            kms: b.options.kms,
            typed_secrets,
        }
    }

    /// Notes secrets typed in besides those of its statement (a record read from an older form).
    pub(crate) fn add_typed(&mut self, typed: &[String]) {
        for t in typed {
            if !self.typed_secrets.contains(t) {
                self.typed_secrets.push(t.clone());
            }
        }
    }

    /// The statement (without the secrets that were typed in), and what those were.
    pub(crate) fn statement(&self) -> (BackupStmt, Vec<String>) {
        let options = BackupStmtOptions {
            revision_history: self.revision_history,
            encryption_passphrase: None,
            encryption_passphrase_from: self.passphrase_from.clone(),
            kms: self.kms.clone(),
            detached: false,
        };
        let b = BackupStmt {
            targets: self.targets.clone(),
            destination: self.destination.clone(),
            as_of: self.as_of.clone(),
            incremental_from: self.incremental_from.clone(),
            options,
        };
        (b, self.typed_secrets.clone())
    }
}

/// A BACKUP statement as records before version 3 stored it, the passphrase in clear. Read
/// only to be converted ([`LegacyBackup::stored`]), which drops every secret it holds.
#[derive(Deserialize)]
pub(crate) struct LegacyBackup {
    targets: Targets,
    destination: BackupDestination,
    as_of: Option<AsOf>,
    incremental_from: Vec<String>,
    options: LegacyBackupOptions,
}

#[derive(Deserialize)]
struct LegacyBackupOptions {
    revision_history: bool,
    encryption_passphrase: Option<String>,
    kms: Vec<String>,
    #[allow(dead_code)]
    detached: bool,
}

impl LegacyBackup {
    /// The stored form: what was typed in is noted, not kept.
    pub(crate) fn stored(self) -> StoredBackup {
        let b = BackupStmt {
            targets: self.targets,
            destination: self.destination,
            as_of: self.as_of,
            incremental_from: self.incremental_from,
            options: BackupStmtOptions {
                revision_history: self.options.revision_history,
                encryption_passphrase: self.options.encryption_passphrase.map(Secret),
                encryption_passphrase_from: None,
                kms: self.options.kms,
                detached: false,
            },
        };
        StoredBackup::new(&b)
    }
}

/// The error of a job or schedule (`what`) that cannot run from its record because secrets were
/// typed into its statement (`typed`), naming them and what to do.
pub(crate) fn typed_secrets_error(what: &str, typed: &[String]) -> Error {
    let verb = if typed.len() == 1 { "was" } else { "were" };
    Error::Precondition(format!(
        "{what} cannot run from its record: {} {verb} typed into its statement, and strata never stores \
         secrets. Run the statement again with them (it resumes the backup), or write references: \
         encryption_passphrase_env = 'NAME' or encryption_passphrase_file = '/path', a kms URI, and ${{NAME}} \
         (an environment variable) as a URI parameter's value or password",
        typed.join(", ")
    ))
}

/// Every byte but unreserved ones (`A-Z a-z 0-9 - . _ ~`) as `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::marker::PhantomData;

    use super::*;
    use crate::sql::{parse, Statement};
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// `Probe::<T>::serializable()` is true exactly when `T: Serialize` (an inherent method wins
    /// over the trait's, and exists only with the bound).
    struct Probe<T>(PhantomData<T>);
    impl<T: Serialize> Probe<T> {
        fn serializable(&self) -> bool {
            true
        }
    }
    trait NotSerializable {
        fn serializable(&self) -> bool {
            false
        }
    }
    impl<T> NotSerializable for Probe<T> {}

    /// The same for `Deserialize`.
    struct DeProbe<T>(PhantomData<T>);
    impl<T: serde::de::DeserializeOwned> DeProbe<T> {
        fn deserializable(&self) -> bool {
            true
        }
    }
    trait NotDeserializable {
        fn deserializable(&self) -> bool {
            false
        }
    }
    impl<T> NotDeserializable for DeProbe<T> {}

    macro_rules! never_serialized {
        ($($t:ty),* $(,)?) => {$(
            assert!(!Probe::<$t>(PhantomData).serializable(), "{} is Serialize", stringify!($t));
            assert!(!DeProbe::<$t>(PhantomData).deserializable(), "{} is Deserialize", stringify!($t));
        )*};
    }

    #[test]
    fn no_type_holding_a_secret_can_be_serialized() {
        use crate::sql::*;
        // The probe itself answers both ways.
        assert!(Probe::<SecretSource>(PhantomData).serializable());
        assert!(DeProbe::<SecretSource>(PhantomData).deserializable());
        never_serialized!(
            Secret,
            Option<Secret>,
            BackupStmtOptions,
            BackupStmt,
            RestoreStmtOptions,
            RestoreStmt,
            ShowBackupOptions,
            ShowBackupStmt,
            CreateScheduleStmt,
            KeyChange,
            AlterBackupStmt,
            Statement,
            crate::Job,
            crate::Schedule,
        );
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "Secret('redacted')");
        let Statement::Backup(b) = parse("BACKUP INTO 'x' WITH encryption_passphrase = 'hunter2'").unwrap() else {
            panic!()
        };
        assert!(!format!("{b:?}").contains("hunter2"));
    }

    fn backup(sql: &str) -> BackupStmt {
        match parse(sql) {
            Ok(Statement::Backup(b)) => b,
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn records_keep_references_and_plain_parameters_never_typed_secrets() {
        let b = backup(
            "BACKUP INTO ('s3://b/p?AWS_ACCESS_KEY_ID=AKIA&AWS_SECRET_ACCESS_KEY=s3cr3t&AWS_REGION=eu-west-1\
             &COCKROACH_LOCALITY=default', 'https://u:pa55@dav/x?AWS_SESSION_TOKEN=${TOKEN}') \
             WITH encryption_passphrase = 'hunter2', kms = 'aws-kms:///k?AZURE_ACCOUNT_KEY=k3y'",
        );
        let (stored, typed) = without_secrets(&b);
        let text = format!("{stored:?}");
        for secret in ["s3cr3t", "pa55", "hunter2", "k3y"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let BackupDestination::Into { uris, .. } = &stored.destination else { panic!() };
        assert_eq!(
            uris,
            &[
                "s3://b/p?AWS_ACCESS_KEY_ID=AKIA&AWS_SECRET_ACCESS_KEY=redacted&AWS_REGION=eu-west-1\
                 &COCKROACH_LOCALITY=default",
                "https://u:redacted@dav/x?AWS_SESSION_TOKEN=${TOKEN}",
            ]
        );
        assert_eq!(typed.len(), 4, "{typed:?}");
        assert_eq!(typed[0], "the encryption passphrase");
        assert!(typed[1].starts_with("the AWS_SECRET_ACCESS_KEY of 's3://b/p?"), "{typed:?}");
        assert_eq!(stored.options.encryption_passphrase, None);
        assert_eq!(required_sources(&stored), [SecretSource::Env("TOKEN".into())]);
        // References alone: nothing typed, everything kept.
        let b = backup(
            "BACKUP INTO 'https://u:${DAV_PASSWORD}@dav/x' WITH encryption_passphrase_file = '/etc/strata/pass'",
        );
        let (stored, typed) = without_secrets(&b);
        assert!(typed.is_empty(), "{typed:?}");
        assert_eq!(stored, b);
        assert_eq!(
            required_sources(&b),
            [SecretSource::File("/etc/strata/pass".into()), SecretSource::Env("DAV_PASSWORD".into())]
        );
    }

    struct Vars(&'static [(&'static str, &'static str)]);

    impl SecretResolver for Vars {
        fn resolve(&self, source: &SecretSource) -> Result<Secret> {
            let SecretSource::Env(name) = source else {
                return Err(Error::Precondition(format!("{source} is not readable")));
            };
            match self.0.iter().find(|(n, _)| n == name) {
                Some((_, v)) => Ok(Secret(v.to_string())),
                None => Err(Error::Precondition(format!("{source} is not set"))),
            }
        }
    }

    #[test]
    fn references_resolve_percent_encoded_and_missing_ones_are_named() {
        let b = backup(
            "BACKUP INTO 'https://u:${DAV}@dav/x?AWS_SECRET_ACCESS_KEY=%24%7BKEY%7D' \
             WITH encryption_passphrase_env = 'PASS'",
        );
        let vars = Vars(&[("DAV", "p@ss/w:rd"), ("KEY", "a+b&c"), ("PASS", "hunter2")]);
        let r = resolve_backup(&b, &vars).unwrap();
        assert_eq!(r.options.encryption_passphrase, Some(Secret("hunter2".into())));
        assert_eq!(r.options.encryption_passphrase_from, None);
        let BackupDestination::Into { uris, .. } = &r.destination else { panic!() };
        assert_eq!(uris[0], "https://u:p%40ss%2Fw%3Ard@dav/x?AWS_SECRET_ACCESS_KEY=a%2Bb%26c");
        let e = resolve_backup(&b, &Vars(&[("DAV", "x"), ("PASS", "hunter2")])).unwrap_err();
        assert_eq!(e.to_string(), Error::Precondition("environment variable KEY is not set".into()).to_string());
        let e = resolve_backup(&b, &NoSecrets).unwrap_err();
        assert!(e.to_string().contains("environment variable PASS"), "{e}");
        assert_eq!(env_reference("${A_1}"), Some("A_1".into()));
        for no in ["$A", "${}", "${1A}", "${A-B}", "x${A}", "${A}x"] {
            assert_eq!(env_reference(no), None, "{no}");
        }
    }
}
