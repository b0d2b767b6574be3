//! BACKUP, RESTORE, SHOW BACKUP, SHOW BACKUPS and ALTER BACKUP, with their options.

use super::super::ast::*;
use super::super::lexer::Tok;
use super::{Parser, SOURCE, URI};
use crate::error::Result;

/// Options of BACKUP, in the order error messages list them.
const BACKUP_OPTIONS: &[&str] = &[
    "revision_history",
    "encryption_passphrase",
    "encryption_passphrase_env",
    "encryption_passphrase_file",
    "kms",
    "detached",
];
/// Options of RESTORE.
const RESTORE_OPTIONS: &[&str] =
    &["into_db", "new_db_name", "encryption_passphrase", "kms", "skip_missing_foreign_keys", "detached"];
/// Options of SHOW BACKUP.
const SHOW_BACKUP_OPTIONS: &[&str] = &["check_files", "encryption_passphrase", "kms"];

impl Parser {
    /// After `BACKUP`.
    pub(super) fn backup(&mut self) -> Result<BackupStmt> {
        let targets = self.targets()?;
        let destination = if self.eat_kw("TO") {
            BackupDestination::To(self.uri_list(URI)?)
        } else if self.eat_kw("INTO") {
            self.destination_after_into()?
        } else if targets == Targets::Cluster {
            return Err(self.error("expected TABLE, DATABASE, TO or INTO"));
        } else {
            return Err(self.error("expected TO or INTO"));
        };
        let mut as_of = None;
        let mut incremental_from = None;
        loop {
            if self.is_kw("AS") {
                if as_of.is_some() {
                    return Err(self.error("AS OF SYSTEM TIME given twice"));
                }
                as_of = Some(self.as_of()?);
            } else if self.is_kw("INCREMENTAL") {
                if incremental_from.is_some() {
                    return Err(self.error("INCREMENTAL FROM given twice"));
                }
                self.advance();
                self.expect_kw("FROM")?;
                let mut uris = vec![self.string(URI)?];
                while self.eat_punct(',') {
                    uris.push(self.string(URI)?);
                }
                incremental_from = Some(uris);
            } else {
                break;
            }
        }
        let options = if self.eat_kw("WITH") { self.backup_options()? } else { BackupStmtOptions::default() };
        Ok(BackupStmt { targets, destination, as_of, incremental_from: incremental_from.unwrap_or_default(), options })
    }

    /// After `RESTORE`.
    pub(super) fn restore(&mut self) -> Result<RestoreStmt> {
        let targets = self.targets()?;
        if !self.eat_kw("FROM") {
            let message =
                if targets == Targets::Cluster { "expected TABLE, DATABASE or FROM" } else { "expected FROM" };
            return Err(self.error(message));
        }
        let source = self.source()?;
        let as_of = if self.is_kw("AS") { Some(self.as_of()?) } else { None };
        let options = if self.eat_kw("WITH") { self.restore_options()? } else { RestoreStmtOptions::default() };
        Ok(RestoreStmt { targets, source, as_of, options })
    }

    /// After `SHOW BACKUPS`.
    pub(super) fn show_backups(&mut self) -> Result<Vec<String>> {
        self.expect_kw("IN")?;
        self.uri_list(URI)
    }

    /// After `SHOW BACKUP`.
    pub(super) fn show_backup(&mut self) -> Result<ShowBackupStmt> {
        self.eat_kw("FROM");
        let source = self.source()?;
        let options = if self.eat_kw("WITH") { self.show_backup_options()? } else { ShowBackupOptions::default() };
        Ok(ShowBackupStmt { source, options })
    }

    /// After `ALTER`.
    pub(super) fn alter_backup(&mut self) -> Result<AlterBackupStmt> {
        self.expect_kw("BACKUP")?;
        let source = self.source()?;
        self.expect_kw("ADD")?;
        let change = if self.eat_kw("NEW_KMS") {
            let new = self.kms()?;
            self.expect_kw("WITH")?;
            self.expect_kw("OLD_KMS")?;
            KeyChange::Kms { new, old: self.kms()? }
        } else if self.eat_kw("NEW_PASSPHRASE") {
            let new = self.secret()?;
            self.expect_kw("WITH")?;
            self.expect_kw("OLD_PASSPHRASE")?;
            KeyChange::Passphrase { new, old: self.secret()? }
        } else {
            return Err(self.error("expected NEW_KMS or NEW_PASSPHRASE"));
        };
        Ok(AlterBackupStmt { source, change })
    }

    /// What follows `INTO`: `LATEST IN uris`, `'subdir' IN uris`, or `uris`.
    fn destination_after_into(&mut self) -> Result<BackupDestination> {
        if self.eat_kw("LATEST") {
            self.expect_kw("IN")?;
            return Ok(BackupDestination::Into { subdir: Some(Subdir::Latest), uris: self.uri_list(URI)? });
        }
        if let (Tok::Str(path), true) = (self.peek(), self.is_kw_at(1, "IN")) {
            let subdir = Some(Subdir::Path(path.clone()));
            self.advance();
            self.advance();
            return Ok(BackupDestination::Into { subdir, uris: self.uri_list(URI)? });
        }
        Ok(BackupDestination::Into { subdir: None, uris: self.uri_list(SOURCE)? })
    }

    /// What RESTORE, SHOW BACKUP and ALTER BACKUP read: `LATEST IN uris`, `'subdir' IN uris`, or
    /// layers `'full', 'inc', …` where each layer is a URI or a parenthesized locality list.
    fn source(&mut self) -> Result<BackupSource> {
        if self.eat_kw("LATEST") {
            self.expect_kw("IN")?;
            return Ok(BackupSource { subdir: Some(Subdir::Latest), layers: vec![self.uri_list(URI)?] });
        }
        if let (Tok::Str(path), true) = (self.peek(), self.is_kw_at(1, "IN")) {
            let subdir = Some(Subdir::Path(path.clone()));
            self.advance();
            self.advance();
            return Ok(BackupSource { subdir, layers: vec![self.uri_list(URI)?] });
        }
        let mut layers = vec![self.uri_list(SOURCE)?];
        while self.eat_punct(',') {
            layers.push(self.uri_list(URI)?);
        }
        Ok(BackupSource { subdir: None, layers })
    }

    pub(super) fn backup_options(&mut self) -> Result<BackupStmtOptions> {
        let mut o = BackupStmtOptions::default();
        self.options(BACKUP_OPTIONS, |p, name| {
            match name {
                "revision_history" => o.revision_history = p.flag()?,
                "encryption_passphrase" => o.encryption_passphrase = Some(p.secret()?),
                "encryption_passphrase_env" | "encryption_passphrase_file" => {
                    let at = p.pos - 1;
                    let what = if name.ends_with("env") { "environment variable name" } else { "file path" };
                    let value = p.string_value(&format!("expected a string literal ({what})"))?;
                    if o.encryption_passphrase_from.is_some() {
                        return Err(
                            p.error_at(at, "give one of encryption_passphrase_env and encryption_passphrase_file")
                        );
                    }
                    o.encryption_passphrase_from =
                        Some(if name.ends_with("env") { SecretSource::Env(value) } else { SecretSource::File(value) });
                }
                "kms" => o.kms = p.kms()?,
                _ => o.detached = p.flag()?,
            }
            Ok(())
        })?;
        if o.encryption_passphrase.is_some() && o.encryption_passphrase_from.is_some() {
            return Err(self.error_at(
                self.pos.saturating_sub(1),
                "encryption_passphrase goes without encryption_passphrase_env or encryption_passphrase_file",
            ));
        }
        Ok(o)
    }

    fn restore_options(&mut self) -> Result<RestoreStmtOptions> {
        let mut o = RestoreStmtOptions::default();
        self.options(RESTORE_OPTIONS, |p, name| {
            match name {
                "into_db" => o.into_db = Some(p.string_value("expected a string literal (database name)")?),
                "new_db_name" => o.new_db_name = Some(p.string_value("expected a string literal (database name)")?),
                "encryption_passphrase" => o.encryption_passphrase = Some(p.secret()?),
                "kms" => o.kms = p.kms()?,
                "skip_missing_foreign_keys" => o.skip_missing_foreign_keys = p.flag()?,
                _ => o.detached = p.flag()?,
            }
            Ok(())
        })?;
        Ok(o)
    }

    fn show_backup_options(&mut self) -> Result<ShowBackupOptions> {
        let mut o = ShowBackupOptions::default();
        self.options(SHOW_BACKUP_OPTIONS, |p, name| {
            match name {
                "check_files" => o.check_files = p.flag()?,
                "encryption_passphrase" => o.encryption_passphrase = Some(p.secret()?),
                _ => o.kms = p.kms()?,
            }
            Ok(())
        })?;
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::super::tests::{err, into, ok, s, t, v};
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn backup_database_into() {
        assert_eq!(
            ok("backup database bank INTO 'nodelocal://1/backups'"),
            Statement::Backup(BackupStmt {
                targets: Targets::Databases(v(&["bank"])),
                destination: into(&["nodelocal://1/backups"]),
                as_of: None,
                incremental_from: vec![],
                options: BackupStmtOptions::default(),
            })
        );
    }

    #[test]
    fn backup_cluster_to_with_every_clause() {
        let sql = "BACKUP TO ('s3://a?AWS_SECRET_ACCESS_KEY=k', 's3://b') AS OF SYSTEM TIME '-10s' \
                   INCREMENTAL FROM 'full', 'inc1' WITH revision_history, encryption_passphrase = 'pw', \
                   kms = ('aws:///k1', 'aws:///k2'), detached = false;";
        assert_eq!(
            ok(sql),
            Statement::Backup(BackupStmt {
                targets: Targets::Cluster,
                destination: BackupDestination::To(v(&["s3://a?AWS_SECRET_ACCESS_KEY=k", "s3://b"])),
                as_of: Some(AsOf(s("-10s"))),
                incremental_from: v(&["full", "inc1"]),
                options: BackupStmtOptions {
                    revision_history: true,
                    encryption_passphrase: Some(Secret(s("pw"))),
                    encryption_passphrase_from: None,
                    kms: v(&["aws:///k1", "aws:///k2"]),
                    detached: false,
                },
            })
        );
    }

    #[test]
    fn backup_incremental_before_as_of_and_with_options_parens() {
        assert_eq!(
            ok("BACKUP DATABASE a, \"B\" TO 'x' INCREMENTAL FROM 'f' AS OF SYSTEM TIME 1700000000000000000.0000000001 \
                WITH OPTIONS (detached, revision_history = TRUE, kms = 'k')"),
            Statement::Backup(BackupStmt {
                targets: Targets::Databases(v(&["a", "B"])),
                destination: BackupDestination::To(v(&["x"])),
                as_of: Some(AsOf(s("1700000000000000000.0000000001"))),
                incremental_from: v(&["f"]),
                options: BackupStmtOptions { revision_history: true, detached: true, kms: v(&["k"]), ..Default::default() },
            })
        );
    }

    #[test]
    fn backup_tables_into_latest() {
        assert_eq!(
            ok("BACKUP TABLE bank.accounts, \"Bank\".\"Users\", Bank.*, t, db.public.x, db.PUBLIC.*, * \
                INTO LATEST IN 's3://x' AS OF SYSTEM TIME 1700000000"),
            Statement::Backup(BackupStmt {
                targets: Targets::Tables(vec![
                    t(Some("bank"), "accounts"),
                    t(Some("Bank"), "Users"),
                    t(Some("bank"), "*"),
                    t(None, "t"),
                    t(Some("db"), "x"),
                    t(Some("db"), "*"),
                    t(None, "*"),
                ]),
                destination: BackupDestination::Into { subdir: Some(Subdir::Latest), uris: v(&["s3://x"]) },
                as_of: Some(AsOf(s("1700000000"))),
                incremental_from: vec![],
                options: BackupStmtOptions::default(),
            })
        );
    }

    #[test]
    fn backup_into_subdir() {
        assert_eq!(
            ok("BACKUP INTO '/2026/11/23-101500.00' IN ('a', 'b')"),
            Statement::Backup(BackupStmt {
                targets: Targets::Cluster,
                destination: BackupDestination::Into {
                    subdir: Some(Subdir::Path(s("/2026/11/23-101500.00"))),
                    uris: v(&["a", "b"]),
                },
                as_of: None,
                incremental_from: vec![],
                options: BackupStmtOptions::default(),
            })
        );
    }

    #[test]
    fn restore_cluster_from_latest() {
        assert_eq!(
            ok("RESTORE FROM LATEST IN 'gs://b/c'"),
            Statement::Restore(RestoreStmt {
                targets: Targets::Cluster,
                source: BackupSource { subdir: Some(Subdir::Latest), layers: vec![v(&["gs://b/c"])] },
                as_of: None,
                options: RestoreStmtOptions::default(),
            })
        );
    }

    #[test]
    fn restore_tables_from_layers_with_every_option() {
        assert_eq!(
            ok("RESTORE TABLE bank.accounts FROM 'full', 'inc1', 'inc2' AS OF SYSTEM TIME '2026-11-23 10:00:00' \
                WITH into_db = 'other', new_db_name = 'n', encryption_passphrase = 'it''s', kms = 'k', \
                skip_missing_foreign_keys, detached"),
            Statement::Restore(RestoreStmt {
                targets: Targets::Tables(vec![t(Some("bank"), "accounts")]),
                source: BackupSource { subdir: None, layers: vec![v(&["full"]), v(&["inc1"]), v(&["inc2"])] },
                as_of: Some(AsOf(s("2026-11-23 10:00:00"))),
                options: RestoreStmtOptions {
                    into_db: Some(s("other")),
                    new_db_name: Some(s("n")),
                    encryption_passphrase: Some(Secret(s("it's"))),
                    kms: v(&["k"]),
                    skip_missing_foreign_keys: true,
                    detached: true,
                },
            })
        );
    }

    #[test]
    fn restore_database_from_locality_lists_and_subdir() {
        assert_eq!(
            ok("RESTORE DATABASE bank FROM ('a', 'b'), ('c', 'd'), 'e'"),
            Statement::Restore(RestoreStmt {
                targets: Targets::Databases(v(&["bank"])),
                source: BackupSource { subdir: None, layers: vec![v(&["a", "b"]), v(&["c", "d"]), v(&["e"])] },
                as_of: None,
                options: RestoreStmtOptions::default(),
            })
        );
        assert_eq!(
            ok("RESTORE DATABASE bank FROM '/2026/11/23-101500.00' IN 'x'"),
            Statement::Restore(RestoreStmt {
                targets: Targets::Databases(v(&["bank"])),
                source: BackupSource {
                    subdir: Some(Subdir::Path(s("/2026/11/23-101500.00"))),
                    layers: vec![v(&["x"])]
                },
                as_of: None,
                options: RestoreStmtOptions::default(),
            })
        );
    }

    #[test]
    fn show_backup_and_backups() {
        assert_eq!(
            ok("SHOW BACKUP FROM LATEST IN 'x' WITH check_files, encryption_passphrase = 'p', kms = 'k'"),
            Statement::ShowBackup(ShowBackupStmt {
                source: BackupSource { subdir: Some(Subdir::Latest), layers: vec![v(&["x"])] },
                options: ShowBackupOptions {
                    check_files: true,
                    encryption_passphrase: Some(Secret(s("p"))),
                    kms: v(&["k"]),
                },
            })
        );
        assert_eq!(
            ok("show backup 'x'"),
            Statement::ShowBackup(ShowBackupStmt {
                source: BackupSource { subdir: None, layers: vec![v(&["x"])] },
                options: ShowBackupOptions::default(),
            })
        );
        assert_eq!(ok("SHOW BACKUPS IN ('a', 'b')"), Statement::ShowBackups { collection: v(&["a", "b"]) });
    }

    #[test]
    fn alter_backup() {
        assert_eq!(
            ok("ALTER BACKUP LATEST IN 's3://x' ADD NEW_KMS = ('aws:///n1', 'aws:///n2') WITH OLD_KMS = 'aws:///o'"),
            Statement::AlterBackup(AlterBackupStmt {
                source: BackupSource { subdir: Some(Subdir::Latest), layers: vec![v(&["s3://x"])] },
                change: KeyChange::Kms { new: v(&["aws:///n1", "aws:///n2"]), old: v(&["aws:///o"]) },
            })
        );
        assert_eq!(
            ok("alter backup 's3://x' add new_passphrase = 'new' with old_passphrase = 'old'"),
            Statement::AlterBackup(AlterBackupStmt {
                source: BackupSource { subdir: None, layers: vec![v(&["s3://x"])] },
                change: KeyChange::Passphrase { new: Secret(s("new")), old: Secret(s("old")) },
            })
        );
    }

    #[test]
    fn error_points_at_unexpected_keyword() {
        // A literal that is not a URI may be a secret typed in the wrong place: hidden.
        let sql = "BACKUP DATABASE bank FOO 'x'";
        assert_eq!(err(sql), (s("expected TO or INTO"), 21, s("BACKUP DATABASE bank FOO 'redacted'")));
        assert_eq!(
            parse(sql).map_err(|e| e.to_string()),
            Err(s("at or near \"FOO\": syntax error: expected TO or INTO\n\
                   BACKUP DATABASE bank FOO 'redacted'\n                     ^"))
        );
        assert_eq!(err("BACKUP FOO 'x").0, "expected TABLE, DATABASE, TO or INTO");
    }

    #[test]
    fn error_unknown_and_duplicate_options() {
        // The value of an unknown option might be a misspelled passphrase: it is not shown.
        assert_eq!(
            err("BACKUP INTO 'x' WITH revision_history, Foo = 1"),
            (
                s("unknown option \"foo\"; expected one of: revision_history, encryption_passphrase, \
                   encryption_passphrase_env, encryption_passphrase_file, kms, detached"),
                46,
                s("BACKUP INTO 'redacted' WITH revision_history, Foo = redacted")
            )
        );
        assert_eq!(
            err("RESTORE FROM 'x' WITH revision_history").0,
            "unknown option \"revision_history\"; expected one of: into_db, new_db_name, encryption_passphrase, kms, \
             skip_missing_foreign_keys, detached"
        );
        assert_eq!(err("BACKUP INTO 'x' WITH detached, DETACHED").0, "duplicate option \"detached\"");
        assert_eq!(err("BACKUP INTO 'x' WITH detached, DETACHED").1, 38);
        assert_eq!(err("BACKUP INTO 'x' WITH revision_history = maybe").0, "expected TRUE or FALSE");
        assert_eq!(err("BACKUP INTO 'x' WITH OPTIONS (detached").0, "expected ',' or ')'");
        assert_eq!(
            err("BACKUP INTO 'x' WITH").0,
            "expected an option name; expected one of: revision_history, encryption_passphrase, \
             encryption_passphrase_env, encryption_passphrase_file, kms, detached"
        );
        // Where the passphrase comes from: one place only.
        let Statement::Backup(b) = ok("BACKUP INTO 'x' WITH encryption_passphrase_env = 'PASS'") else { panic!() };
        assert_eq!(b.options.encryption_passphrase_from, Some(SecretSource::Env(s("PASS"))));
        let Statement::Backup(b) = ok("BACKUP INTO 'x' WITH encryption_passphrase_file = '/p'") else { panic!() };
        assert_eq!(b.options.encryption_passphrase_from, Some(SecretSource::File(s("/p"))));
        assert_eq!(
            err("BACKUP INTO 'x' WITH encryption_passphrase_env = 'A', encryption_passphrase_file = '/p'").0,
            "give one of encryption_passphrase_env and encryption_passphrase_file"
        );
        let (message, _, statement) =
            err("BACKUP INTO 'x' WITH encryption_passphrase = 'hunter2', encryption_passphrase_env = 'A'");
        assert_eq!(
            message,
            "encryption_passphrase goes without encryption_passphrase_env or encryption_passphrase_file"
        );
        assert!(!statement.contains("hunter2"), "{statement}");
    }
}
