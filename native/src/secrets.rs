//! [`HostSecrets`]: the secrets statements refer to, read from this process's environment and
//! files (see `strata_core::SecretSource`).
//!
//! ```text
//!   BACKUP … INTO 's3://b?AWS_SECRET_ACCESS_KEY=${AWS_SECRET}' WITH encryption_passphrase_file = '/etc/strata/pass'
//!                                                │                                         │
//!                               std::env::var("AWS_SECRET")              std::fs::read_to_string, one trailing newline dropped
//! ```

use strata_core::sql::Secret;
use strata_core::{Error, Result, SecretResolver, SecretSource};
use zeroize::Zeroizing;

/// Reads environment variables and files for `Executor::with_secret_resolver`. Errors name the
/// variable or file and why it cannot be read, never its contents.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostSecrets;

impl SecretResolver for HostSecrets {
    fn resolve(&self, source: &SecretSource) -> Result<Secret> {
        let missing = |why: String| Error::Precondition(format!("{source}: {why}"));
        let value = match source {
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(v) => v,
                Err(std::env::VarError::NotPresent) => return Err(missing("not set in this process".into())),
                Err(std::env::VarError::NotUnicode(_)) => return Err(missing("not valid UTF-8".into())),
            },
            SecretSource::File(path) => {
                let text = Zeroizing::new(
                    std::fs::read_to_string(path).map_err(|e| missing(format!("cannot be read ({})", e.kind())))?,
                );
                let line = text.strip_suffix('\n').unwrap_or(&text);
                line.strip_suffix('\r').unwrap_or(line).to_string()
            }
        };
        if value.is_empty() {
            return Err(missing("empty".into()));
        }
        Ok(Secret(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_and_names_what_is_missing_never_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pass");
        std::fs::write(&path, "correct horse\n").unwrap();
        let file = SecretSource::File(path.display().to_string());
        assert_eq!(HostSecrets.resolve(&file).unwrap(), Secret("correct horse".into()));
        let gone = SecretSource::File(dir.path().join("nope").display().to_string());
        let e = HostSecrets.resolve(&gone).unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("cannot be read"), "{e}");
        std::fs::write(&path, "\n").unwrap();
        let e = HostSecrets.resolve(&file).unwrap_err().to_string();
        assert!(e.contains("empty") && e.contains("file "), "{e}");
        let e = HostSecrets.resolve(&SecretSource::Env("STRATA_TEST_SURELY_UNSET_VAR".into())).unwrap_err();
        assert!(e.to_string().contains("environment variable STRATA_TEST_SURELY_UNSET_VAR: not set"), "{e}");
    }
}
