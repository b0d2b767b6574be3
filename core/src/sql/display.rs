//! Canonical SQL for a [`Statement`]: what job descriptions and `SHOW SCHEDULES` print.
//!
//! Keywords are uppercase, strings single-quoted with `'` doubled, identifiers double-quoted only
//! when they must be, URIs passed through [`redact_uri`] and passphrases printed as `'redacted'`,
//! so the text never holds a secret. Parsing the text gives the statement back (with its secrets
//! redacted).

use std::fmt::{self, Display, Formatter};

use super::ast::*;
use super::lexer::{is_reserved, quote_string};
use crate::redact::{redact_uri, REDACTED};

/// Whether `name` reads back as itself when written bare.
fn is_bare(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '$'))
        && !is_reserved(name)
}

/// An identifier, double-quoted when it must be.
struct Ident<'a>(&'a str);

impl Display for Ident<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if is_bare(self.0) {
            f.write_str(self.0)
        } else {
            write!(f, "\"{}\"", self.0.replace('"', "\"\""))
        }
    }
}

/// A string literal.
struct Lit<'a>(&'a str);

impl Display for Lit<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&quote_string(self.0))
    }
}

/// `'uri'` or `('uri', …)`, each redacted.
struct Uris<'a>(&'a [String]);

impl Display for Uris<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "{}", Lit(&redact_uri(one))),
            many => {
                f.write_str("(")?;
                for (i, uri) in many.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", Lit(&redact_uri(uri)))?;
                }
                f.write_str(")")
            }
        }
    }
}

/// A comma-separated list.
fn list<T>(
    f: &mut Formatter<'_>,
    items: &[T],
    mut one: impl FnMut(&mut Formatter<'_>, &T) -> fmt::Result,
) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        one(f, item)?;
    }
    Ok(())
}

impl Display for TableName {
    /// `db.table`, `table` or `db.*`, quoting names where needed.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if let Some(db) = &self.database {
            write!(f, "{}.", Ident(db))?;
        }
        if self.table == "*" {
            f.write_str("*")
        } else {
            write!(f, "{}", Ident(&self.table))
        }
    }
}

/// A table that is never a wildcard (CREATE TABLE, DROP TABLE): a table named `*` is quoted.
struct OneTable<'a>(&'a TableName);

impl Display for OneTable<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if let Some(db) = &self.0.database {
            write!(f, "{}.", Ident(db))?;
        }
        write!(f, "{}", Ident(&self.0.table))
    }
}

/// ` TABLE …` / ` DATABASE …`, or nothing for the cluster.
fn targets(f: &mut Formatter<'_>, targets: &Targets) -> fmt::Result {
    match targets {
        Targets::Cluster => Ok(()),
        Targets::Databases(names) => {
            f.write_str(" DATABASE ")?;
            list(f, names, |f, n| write!(f, "{}", Ident(n)))
        }
        Targets::Tables(tables) => {
            f.write_str(" TABLE ")?;
            list(f, tables, |f, t| write!(f, "{t}"))
        }
    }
}

/// `LATEST IN ` or `'subdir' IN `.
fn subdir(f: &mut Formatter<'_>, subdir: &Option<Subdir>) -> fmt::Result {
    match subdir {
        None => Ok(()),
        Some(Subdir::Latest) => f.write_str("LATEST IN "),
        Some(Subdir::Path(p)) => write!(f, "{} IN ", Lit(p)),
    }
}

fn source(f: &mut Formatter<'_>, source: &BackupSource) -> fmt::Result {
    subdir(f, &source.subdir)?;
    list(f, &source.layers, |f, layer| write!(f, "{}", Uris(layer)))
}

/// ` AS OF SYSTEM TIME x`: bare when `x` is a number, quoted otherwise.
fn as_of(f: &mut Formatter<'_>, as_of: &Option<AsOf>) -> fmt::Result {
    let Some(AsOf(time)) = as_of else { return Ok(()) };
    let (int, frac) = time.split_once('.').unwrap_or((time, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if digits(int) && digits(frac) {
        write!(f, " AS OF SYSTEM TIME {time}")
    } else {
        write!(f, " AS OF SYSTEM TIME {}", Lit(time))
    }
}

/// ` WITH a, b = 'x'`, or nothing when `options` is empty.
fn with(f: &mut Formatter<'_>, options: &[String]) -> fmt::Result {
    if options.is_empty() {
        return Ok(());
    }
    write!(f, " WITH {}", options.join(", "))
}

fn secret_option(options: &mut Vec<String>, name: &str, secret: &Option<Secret>) {
    if secret.is_some() {
        options.push(format!("{name} = {}", Lit(REDACTED)));
    }
}

fn kms_option(options: &mut Vec<String>, kms: &[String]) {
    if !kms.is_empty() {
        options.push(format!("kms = {}", Uris(kms)));
    }
}

fn flag_option(options: &mut Vec<String>, name: &str, on: bool) {
    if on {
        options.push(name.to_string());
    }
}

fn backup_options(o: &BackupStmtOptions) -> Vec<String> {
    let mut options = Vec::new();
    flag_option(&mut options, "revision_history", o.revision_history);
    secret_option(&mut options, "encryption_passphrase", &o.encryption_passphrase);
    match &o.encryption_passphrase_from {
        Some(SecretSource::Env(name)) => options.push(format!("encryption_passphrase_env = {}", Lit(name))),
        Some(SecretSource::File(path)) => options.push(format!("encryption_passphrase_file = {}", Lit(path))),
        None => {}
    }
    kms_option(&mut options, &o.kms);
    flag_option(&mut options, "detached", o.detached);
    options
}

fn restore_options(o: &RestoreStmtOptions) -> Vec<String> {
    let mut options = Vec::new();
    if let Some(db) = &o.into_db {
        options.push(format!("into_db = {}", Lit(db)));
    }
    if let Some(db) = &o.new_db_name {
        options.push(format!("new_db_name = {}", Lit(db)));
    }
    secret_option(&mut options, "encryption_passphrase", &o.encryption_passphrase);
    kms_option(&mut options, &o.kms);
    flag_option(&mut options, "skip_missing_foreign_keys", o.skip_missing_foreign_keys);
    flag_option(&mut options, "detached", o.detached);
    options
}

fn show_backup_options(o: &ShowBackupOptions) -> Vec<String> {
    let mut options = Vec::new();
    flag_option(&mut options, "check_files", o.check_files);
    secret_option(&mut options, "encryption_passphrase", &o.encryption_passphrase);
    kms_option(&mut options, &o.kms);
    options
}

/// Everything of a BACKUP after the keyword.
fn backup(f: &mut Formatter<'_>, b: &BackupStmt) -> fmt::Result {
    targets(f, &b.targets)?;
    match &b.destination {
        BackupDestination::To(uris) => write!(f, " TO {}", Uris(uris))?,
        BackupDestination::Into { subdir: sub, uris } => {
            f.write_str(" INTO ")?;
            subdir(f, sub)?;
            write!(f, "{}", Uris(uris))?;
        }
    }
    as_of(f, &b.as_of)?;
    if !b.incremental_from.is_empty() {
        f.write_str(" INCREMENTAL FROM ")?;
        list(f, &b.incremental_from, |f, uri| write!(f, "{}", Lit(&redact_uri(uri))))?;
    }
    with(f, &backup_options(&b.options))
}

impl Display for Recurrence {
    /// `'cron'`, `NEVER` or `ALWAYS`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Recurrence::Cron(cron) => write!(f, "{}", Lit(cron)),
            Recurrence::Never => f.write_str("NEVER"),
            Recurrence::Always => f.write_str("ALWAYS"),
        }
    }
}

fn create_schedule(f: &mut Formatter<'_>, s: &CreateScheduleStmt) -> fmt::Result {
    f.write_str("CREATE SCHEDULE")?;
    if s.if_not_exists {
        f.write_str(" IF NOT EXISTS")?;
    }
    match &s.label {
        Some(label) if is_bare(label) => write!(f, " {label}")?,
        Some(label) => write!(f, " {}", Lit(label))?,
        None => {}
    }
    f.write_str(" FOR BACKUP")?;
    backup(f, &s.backup)?;
    write!(f, " RECURRING {}", s.recurring)?;
    if let Some(full) = &s.full_backup {
        write!(f, " FULL BACKUP {full}")?;
    }
    if !s.schedule_options.is_empty() {
        f.write_str(" WITH SCHEDULE OPTIONS ")?;
        list(f, &s.schedule_options, |f, (k, v)| write!(f, "{} = {}", Ident(k), Lit(v)))?;
    }
    Ok(())
}

impl Display for Statement {
    /// Canonical SQL that never holds a secret; see the module doc.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Statement::Backup(b) => {
                f.write_str("BACKUP")?;
                backup(f, b)
            }
            Statement::Restore(r) => {
                f.write_str("RESTORE")?;
                targets(f, &r.targets)?;
                f.write_str(" FROM ")?;
                source(f, &r.source)?;
                as_of(f, &r.as_of)?;
                with(f, &restore_options(&r.options))
            }
            Statement::ShowBackup(s) => {
                f.write_str("SHOW BACKUP ")?;
                source(f, &s.source)?;
                with(f, &show_backup_options(&s.options))
            }
            Statement::ShowBackups { collection } => write!(f, "SHOW BACKUPS IN {}", Uris(collection)),
            Statement::AlterBackup(a) => {
                f.write_str("ALTER BACKUP ")?;
                source(f, &a.source)?;
                match &a.change {
                    KeyChange::Kms { new, old } => {
                        write!(f, " ADD NEW_KMS = {} WITH OLD_KMS = {}", Uris(new), Uris(old))
                    }
                    KeyChange::Passphrase { .. } => {
                        write!(f, " ADD NEW_PASSPHRASE = {} WITH OLD_PASSPHRASE = {}", Lit(REDACTED), Lit(REDACTED))
                    }
                }
            }
            Statement::CreateSchedule(s) => create_schedule(f, s),
            Statement::ShowSchedules => f.write_str("SHOW SCHEDULES"),
            Statement::PauseSchedule(id) => write!(f, "PAUSE SCHEDULE {id}"),
            Statement::ResumeSchedule(id) => write!(f, "RESUME SCHEDULE {id}"),
            Statement::DropSchedule(id) => write!(f, "DROP SCHEDULE {id}"),
            Statement::ShowJobs => f.write_str("SHOW JOBS"),
            Statement::ShowJob(id) => write!(f, "SHOW JOB {id}"),
            Statement::PauseJob(id) => write!(f, "PAUSE JOB {id}"),
            Statement::ResumeJob(id) => write!(f, "RESUME JOB {id}"),
            Statement::CancelJob(id) => write!(f, "CANCEL JOB {id}"),
            Statement::CreateDatabase { name, if_not_exists } => {
                let ine = if *if_not_exists { "IF NOT EXISTS " } else { "" };
                write!(f, "CREATE DATABASE {ine}{}", Ident(name))
            }
            Statement::CreateTable { name, if_not_exists } => {
                let ine = if *if_not_exists { "IF NOT EXISTS " } else { "" };
                write!(f, "CREATE TABLE {ine}{}", OneTable(name))
            }
            Statement::DropDatabase { name, if_exists, cascade } => {
                let ie = if *if_exists { "IF EXISTS " } else { "" };
                let cascade = if *cascade { " CASCADE" } else { "" };
                write!(f, "DROP DATABASE {ie}{}{cascade}", Ident(name))
            }
            Statement::DropTable { name, if_exists } => {
                let ie = if *if_exists { "IF EXISTS " } else { "" };
                write!(f, "DROP TABLE {ie}{}", OneTable(name))
            }
            Statement::ShowDatabases => f.write_str("SHOW DATABASES"),
            Statement::ShowTables { database: None } => f.write_str("SHOW TABLES"),
            Statement::ShowTables { database: Some(db) } => write!(f, "SHOW TABLES FROM {}", Ident(db)),
            Statement::ShowBackupDetails { details, show } => {
                let details = match details {
                    BackupDetails::Files => "FILES",
                    BackupDetails::Ranges => "RANGES",
                    BackupDetails::Schemas => "SCHEMAS",
                };
                write!(f, "SHOW BACKUP {details} ")?;
                source(f, &show.source)?;
                with(f, &show_backup_options(&show.options))
            }
            Statement::ShowSchedule(id) => write!(f, "SHOW SCHEDULE {id}"),
            Statement::AlterBackupSchedule(a) => {
                write!(f, "ALTER BACKUP SCHEDULE {} ", a.id)?;
                list(f, &a.commands, alter_schedule_cmd)
            }
        }
    }
}

/// One command of ALTER BACKUP SCHEDULE (a passphrase shows as `'redacted'`, an empty one as `''`).
fn alter_schedule_cmd(f: &mut Formatter<'_>, c: &AlterScheduleCmd) -> fmt::Result {
    match c {
        AlterScheduleCmd::SetLabel(label) => write!(f, "SET LABEL {}", Lit(label)),
        AlterScheduleCmd::SetInto(uris) => write!(f, "SET INTO {}", Uris(uris)),
        AlterScheduleCmd::SetRecurring(cron) => write!(f, "SET RECURRING {}", Lit(cron)),
        AlterScheduleCmd::SetFullBackup(r) => write!(f, "SET FULL BACKUP {r}"),
        AlterScheduleCmd::SetScheduleOption(k, v) => write!(f, "SET SCHEDULE OPTION {} = {}", Ident(k), Lit(v)),
        AlterScheduleCmd::ExecuteImmediately { full: false } => f.write_str("EXECUTE IMMEDIATELY"),
        AlterScheduleCmd::ExecuteImmediately { full: true } => f.write_str("EXECUTE FULL IMMEDIATELY"),
        AlterScheduleCmd::SetWith(o) => match o {
            ScheduleBackupOption::RevisionHistory(on) => write!(f, "SET WITH revision_history = {on}"),
            ScheduleBackupOption::EncryptionPassphrase(p) if p.expose().is_empty() => {
                f.write_str("SET WITH encryption_passphrase = ''")
            }
            ScheduleBackupOption::EncryptionPassphrase(_) => {
                write!(f, "SET WITH encryption_passphrase = {}", Lit(REDACTED))
            }
            ScheduleBackupOption::EncryptionPassphraseFrom { env, value } => {
                let name = if *env { "encryption_passphrase_env" } else { "encryption_passphrase_file" };
                write!(f, "SET WITH {name} = {}", Lit(value))
            }
            ScheduleBackupOption::Kms(uris) => write!(f, "SET WITH kms = {}", Uris(uris)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn s(x: &str) -> String {
        x.to_string()
    }

    fn backup_stmt(targets: Targets, destination: BackupDestination) -> BackupStmt {
        BackupStmt {
            targets,
            destination,
            as_of: None,
            incremental_from: vec![],
            options: BackupStmtOptions::default(),
        }
    }

    #[test]
    fn prints_backup_canonically_without_secrets() {
        let stmt = Statement::Backup(BackupStmt {
            targets: Targets::Tables(vec![
                TableName { database: Some(s("bank")), table: s("accounts") },
                TableName { database: Some(s("Bank")), table: s("*") },
                TableName { database: None, table: s("from") },
            ]),
            destination: BackupDestination::Into {
                subdir: Some(Subdir::Latest),
                uris: vec![s("s3://a?AWS_SECRET_ACCESS_KEY=k&AWS_REGION=r"), s("s3://b")],
            },
            as_of: Some(AsOf(s("1700000000000000000.0000000001"))),
            incremental_from: vec![s("https://u:pw@h/full")],
            options: BackupStmtOptions {
                revision_history: true,
                encryption_passphrase: Some(Secret(s("hunter2"))),
                encryption_passphrase_from: None,
                kms: vec![s("aws:///k")],
                detached: true,
            },
        });
        assert_eq!(
            stmt.to_string(),
            "BACKUP TABLE bank.accounts, \"Bank\".*, \"from\" INTO LATEST IN \
             ('s3://a?AWS_SECRET_ACCESS_KEY=redacted&AWS_REGION=redacted', 's3://b') \
             AS OF SYSTEM TIME 1700000000000000000.0000000001 INCREMENTAL FROM 'https://u:redacted@h/full' \
             WITH revision_history, encryption_passphrase = 'redacted', kms = 'aws:///k', detached"
        );
        let stmt = Statement::Backup(BackupStmt {
            as_of: Some(AsOf(s("-10s"))),
            ..backup_stmt(Targets::Databases(vec![s("it's"), s("b")]), BackupDestination::To(vec![s("o'k")]))
        });
        assert_eq!(stmt.to_string(), "BACKUP DATABASE \"it's\", b TO 'o''k' AS OF SYSTEM TIME '-10s'");
    }

    #[test]
    fn prints_restore_show_and_alter() {
        let stmt = Statement::Restore(RestoreStmt {
            targets: Targets::Cluster,
            source: BackupSource { subdir: None, layers: vec![vec![s("a"), s("b")], vec![s("c")]] },
            as_of: None,
            options: RestoreStmtOptions {
                into_db: Some(s("x")),
                new_db_name: Some(s("y")),
                encryption_passphrase: Some(Secret(s("pw"))),
                kms: vec![],
                skip_missing_foreign_keys: true,
                detached: false,
            },
        });
        assert_eq!(
            stmt.to_string(),
            "RESTORE FROM ('a', 'b'), 'c' WITH into_db = 'x', new_db_name = 'y', \
             encryption_passphrase = 'redacted', skip_missing_foreign_keys"
        );
        let source = BackupSource { subdir: Some(Subdir::Path(s("/2026/11"))), layers: vec![vec![s("u")]] };
        let stmt = Statement::ShowBackup(ShowBackupStmt {
            source: source.clone(),
            options: ShowBackupOptions { check_files: true, encryption_passphrase: None, kms: vec![s("k1"), s("k2")] },
        });
        assert_eq!(stmt.to_string(), "SHOW BACKUP '/2026/11' IN 'u' WITH check_files, kms = ('k1', 'k2')");
        let stmt = Statement::AlterBackup(AlterBackupStmt {
            source,
            change: KeyChange::Passphrase { new: Secret(s("n")), old: Secret(s("o")) },
        });
        assert_eq!(
            stmt.to_string(),
            "ALTER BACKUP '/2026/11' IN 'u' ADD NEW_PASSPHRASE = 'redacted' WITH OLD_PASSPHRASE = 'redacted'"
        );
    }

    #[test]
    fn prints_schedules_and_ddl() {
        let stmt = Statement::CreateSchedule(CreateScheduleStmt {
            if_not_exists: true,
            label: Some(s("Nightly backup")),
            backup: backup_stmt(
                Targets::Cluster,
                BackupDestination::Into { subdir: None, uris: vec![s("s3://x?AWS_SESSION_TOKEN=t")] },
            ),
            recurring: Recurrence::Cron(s("@daily")),
            full_backup: Some(Recurrence::Always),
            schedule_options: vec![(s("first_run"), s("now")), (s("Odd Key"), s("it's"))],
        });
        assert_eq!(
            stmt.to_string(),
            "CREATE SCHEDULE IF NOT EXISTS 'Nightly backup' FOR BACKUP INTO 's3://x?AWS_SESSION_TOKEN=redacted' \
             RECURRING '@daily' FULL BACKUP ALWAYS WITH SCHEDULE OPTIONS first_run = 'now', \"Odd Key\" = 'it''s'"
        );
        let stmt = Statement::CreateSchedule(CreateScheduleStmt {
            if_not_exists: false,
            label: Some(s("nightly")),
            backup: backup_stmt(
                Targets::Databases(vec![s("bank")]),
                BackupDestination::Into { subdir: None, uris: vec![s("x")] },
            ),
            recurring: Recurrence::Never,
            full_backup: None,
            schedule_options: vec![],
        });
        assert_eq!(stmt.to_string(), "CREATE SCHEDULE nightly FOR BACKUP DATABASE bank INTO 'x' RECURRING NEVER");
        let t = TableName { database: Some(s("db")), table: s("My \"T\"") };
        let cases = [
            (Statement::CreateDatabase { name: s("if"), if_not_exists: true }, "CREATE DATABASE IF NOT EXISTS \"if\""),
            (Statement::CreateTable { name: t.clone(), if_not_exists: false }, "CREATE TABLE db.\"My \"\"T\"\"\""),
            (
                Statement::DropDatabase { name: s("a$1"), if_exists: true, cascade: true },
                "DROP DATABASE IF EXISTS a$1 CASCADE",
            ),
            (Statement::DropTable { name: t, if_exists: false }, "DROP TABLE db.\"My \"\"T\"\"\""),
            (Statement::ShowTables { database: Some(s("Bank")) }, "SHOW TABLES FROM \"Bank\""),
            (
                Statement::DropTable { name: TableName { database: None, table: s("*") }, if_exists: false },
                "DROP TABLE \"*\"",
            ),
            (Statement::ShowTables { database: None }, "SHOW TABLES"),
            (Statement::ShowDatabases, "SHOW DATABASES"),
            (Statement::ShowBackups { collection: vec![s("a")] }, "SHOW BACKUPS IN 'a'"),
            (Statement::ShowSchedules, "SHOW SCHEDULES"),
            (Statement::PauseSchedule(1), "PAUSE SCHEDULE 1"),
            (Statement::ResumeSchedule(2), "RESUME SCHEDULE 2"),
            (Statement::DropSchedule(3), "DROP SCHEDULE 3"),
            (Statement::ShowJobs, "SHOW JOBS"),
            (Statement::ShowJob(4), "SHOW JOB 4"),
            (Statement::PauseJob(5), "PAUSE JOB 5"),
            (Statement::ResumeJob(6), "RESUME JOB 6"),
            (Statement::CancelJob(7), "CANCEL JOB 7"),
        ];
        for (stmt, sql) in cases {
            assert_eq!(stmt.to_string(), sql);
        }
    }
}
