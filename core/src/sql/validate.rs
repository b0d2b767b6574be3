//! Which `WITH` options apply to which form of a statement, checked before anything runs.
//!
//! The parser accepts each statement's own options (an option of another statement is an
//! `unknown option` parse error); this module refuses the combinations of an option and a form
//! it does not apply to, with CockroachDB's error text, so that no option is silently ignored:
//!
//! ```text
//!   option                      BACKUP (any form)   RESTORE TABLE   RESTORE DATABASE   RESTORE (cluster)   SHOW BACKUP   CREATE SCHEDULE
//!   into_db                     -                   yes             refused            refused             -             -
//!   new_db_name                 -                   refused         one database only  refused             -             -
//!   encryption_passphrase       yes                 yes             yes                yes                 yes           refused (typed secret)
//!     and kms together          refused             refused         refused            refused             refused       refused
//! ```
//!
//! Every other option applies to every form of its statement. `-`: not an option of that
//! statement (a parse error).

use super::ast::{RestoreStmtOptions, Statement, Targets};
use crate::error::{Error, Result};

/// CockroachDB's error for a passphrase and a KMS URI given together.
pub(crate) const BOTH_PASSPHRASE_AND_KMS: &str = "cannot have both encryption_passphrase and kms option set";

/// CockroachDB's error for `new_db_name` anywhere but a RESTORE of a single database.
const NEW_DB_NAME_FORMS: &str = "new_db_name can only be used for RESTORE DATABASE with a single target database";

/// CockroachDB's error for `into_db` in a RESTORE of databases or of the whole cluster.
const INTO_DB_FORMS: &str = "cannot use \"into_db\" option when restoring database(s)";

fn refused(statement: &str, message: &str) -> Error {
    Error::invalid(format!("{statement} options"), message)
}

/// Checks that every option of `stmt` applies to its form (see the module's table).
pub fn check_options(stmt: &Statement) -> Result<()> {
    match stmt {
        Statement::Backup(b) => check_encryption("BACKUP", b.options.passphrase_given(), &b.options.kms),
        Statement::CreateSchedule(s) => {
            check_encryption("CREATE SCHEDULE", s.backup.options.passphrase_given(), &s.backup.options.kms)
        }
        Statement::Restore(r) => check_restore_options(&r.targets, &r.options),
        Statement::ShowBackup(s) => {
            check_encryption("SHOW BACKUP", s.options.encryption_passphrase.is_some(), &s.options.kms)
        }
        _ => Ok(()),
    }
}

/// Checks RESTORE's options against what it restores: `into_db` only for tables, `new_db_name`
/// only for a single database, a passphrase or KMS URIs but not both.
pub fn check_restore_options(targets: &Targets, options: &RestoreStmtOptions) -> Result<()> {
    check_encryption("RESTORE", options.encryption_passphrase.is_some(), &options.kms)?;
    if options.new_db_name.is_some() && !matches!(targets, Targets::Databases(names) if names.len() == 1) {
        return Err(refused("RESTORE", NEW_DB_NAME_FORMS));
    }
    if options.into_db.is_some() && !matches!(targets, Targets::Tables(_)) {
        return Err(refused("RESTORE", INTO_DB_FORMS));
    }
    Ok(())
}

fn check_encryption(statement: &str, passphrase: bool, kms: &[String]) -> Result<()> {
    if passphrase && !kms.is_empty() {
        return Err(refused(statement, BOTH_PASSPHRASE_AND_KMS));
    }
    Ok(())
}

impl super::ast::BackupStmtOptions {
    /// Whether a passphrase is given, typed (`encryption_passphrase`) or by reference
    /// (`encryption_passphrase_env` / `_file`).
    fn passphrase_given(&self) -> bool {
        self.encryption_passphrase.is_some() || self.encryption_passphrase_from.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Every form, its statement with `{}` where `WITH options` go.
    const FORMS: &[&str] = &[
        "BACKUP TABLE d.t INTO 'memory://c' WITH {}",
        "BACKUP TABLE d.*, e.* INTO LATEST IN 'memory://c' WITH {}",
        "BACKUP DATABASE d, e TO 'memory://c' WITH {}",
        "BACKUP TO 'memory://i' INCREMENTAL FROM 'memory://f' WITH {}",
        "RESTORE TABLE d.t FROM LATEST IN 'memory://c' WITH {}",
        "RESTORE TABLE d.* FROM 'memory://f', 'memory://i' WITH {}",
        "RESTORE DATABASE d FROM LATEST IN 'memory://c' WITH {}",
        "RESTORE DATABASE d, e FROM 'memory://f' WITH {}",
        "RESTORE FROM LATEST IN 'memory://c' WITH {}",
        "SHOW BACKUP LATEST IN 'memory://c' WITH {}",
        "SHOW BACKUP 'memory://f' WITH {}",
        "CREATE SCHEDULE s FOR BACKUP TABLE d.t INTO 'memory://c' WITH {} RECURRING '@daily'",
        "CREATE SCHEDULE s FOR BACKUP DATABASE d INTO 'memory://c' WITH {} RECURRING '@daily'",
        "CREATE SCHEDULE s FOR BACKUP INTO 'memory://c' WITH {} RECURRING '@daily' FULL BACKUP ALWAYS",
    ];

    /// What each option does in each form, in [`FORMS`]' order: `.` accepted, `u` not an option
    /// of that statement (a parse error), `B` a passphrase with KMS, `N` `new_db_name` where it
    /// does not apply, `I` `into_db` where it does not apply; `|` separates the statements.
    const TABLE: &[(&str, &str)] = &[
        // (options, outcome per form: BACKUP ×4 | RESTORE ×5 | SHOW BACKUP ×2 | CREATE SCHEDULE ×3)
        ("revision_history", "....|uuuuu|uu|..."),
        ("revision_history = false", "....|uuuuu|uu|..."),
        ("encryption_passphrase = 'pw'", "....|.....|..|..."),
        ("encryption_passphrase_env = 'PW'", "....|uuuuu|uu|..."),
        ("encryption_passphrase_file = '/pw'", "....|uuuuu|uu|..."),
        ("kms = 'test-kms:///k1'", "....|.....|..|..."),
        ("kms = ('test-kms:///k1', 'test-kms:///k2')", "....|.....|..|..."),
        ("detached", "....|.....|uu|..."),
        ("into_db = 'x'", "uuuu|..III|uu|uuu"),
        ("new_db_name = 'n'", "uuuu|NN.NN|uu|uuu"),
        ("skip_missing_foreign_keys", "uuuu|.....|uu|uuu"),
        ("check_files", "uuuu|uuuuu|..|uuu"),
        ("encryption_passphrase = 'pw', kms = 'test-kms:///k1'", "BBBB|BBBBB|BB|BBB"),
        ("encryption_passphrase_env = 'PW', kms = 'test-kms:///k1'", "BBBB|uuuuu|uu|BBB"),
        ("into_db = 'x', new_db_name = 'n'", "uuuu|NNINN|uu|uuu"),
        ("detached, skip_missing_foreign_keys, into_db = 'x'", "uuuu|..III|uu|uuu"),
    ];

    fn outcome(sql: &str) -> char {
        let stmt = match parse(sql) {
            Ok(stmt) => stmt,
            Err(Error::Parse { message, .. }) if message.starts_with("unknown option") => return 'u',
            Err(e) => panic!("{sql}: {e}"),
        };
        match check_options(&stmt) {
            Ok(()) => '.',
            Err(Error::InvalidArgument { message, .. }) => match message.as_str() {
                BOTH_PASSPHRASE_AND_KMS => 'B',
                NEW_DB_NAME_FORMS => 'N',
                INTO_DB_FORMS => 'I',
                other => panic!("{sql}: unexpected message {other}"),
            },
            Err(e) => panic!("{sql}: {e:?}"),
        }
    }

    #[test]
    fn every_option_in_every_form() {
        let mut got = Vec::new();
        for (options, _) in TABLE {
            let row: String = FORMS.iter().map(|form| outcome(&form.replace("{}", options))).collect();
            got.push((*options, row));
        }
        let want: Vec<(&str, String)> = TABLE.iter().map(|(o, r)| (*o, r.replace('|', ""))).collect();
        assert_eq!(got, want);
    }
}
