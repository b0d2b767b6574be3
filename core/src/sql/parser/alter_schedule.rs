//! ALTER BACKUP SCHEDULE, SHOW SCHEDULE and SHOW BACKUP FILES | RANGES | SCHEMAS, as
//! CockroachDB writes them.

use super::super::ast::*;
use super::super::lexer::Tok;
use super::{Parser, URI};
use crate::error::Result;

/// The backup options `SET WITH` may change, and last `detached`, refused with CockroachDB's
/// message.
const SET_WITH_OPTIONS: &[&str] = &[
    "revision_history",
    "encryption_passphrase",
    "encryption_passphrase_env",
    "encryption_passphrase_file",
    "kms",
    "detached",
];

impl Parser {
    /// After `ALTER BACKUP SCHEDULE`: `id cmd [, cmd …]`.
    pub(super) fn alter_backup_schedule(&mut self) -> Result<AlterBackupScheduleStmt> {
        let id = self.id("schedule")?;
        let mut commands = vec![self.alter_schedule_cmd()?];
        while self.eat_punct(',') {
            commands.push(self.alter_schedule_cmd()?);
        }
        Ok(AlterBackupScheduleStmt { id, commands })
    }

    fn alter_schedule_cmd(&mut self) -> Result<AlterScheduleCmd> {
        if self.eat_kw("EXECUTE") {
            let full = self.eat_kw("FULL");
            self.expect_kw("IMMEDIATELY")?;
            return Ok(AlterScheduleCmd::ExecuteImmediately { full });
        }
        if !self.eat_kw("SET") {
            return Err(self.error("expected SET or EXECUTE"));
        }
        Ok(if self.eat_kw("LABEL") {
            AlterScheduleCmd::SetLabel(self.string("expected a string literal (schedule label)")?)
        } else if self.eat_kw("INTO") {
            AlterScheduleCmd::SetInto(self.uri_list(URI)?)
        } else if self.eat_kw("WITH") {
            AlterScheduleCmd::SetWith(self.set_with_option()?)
        } else if self.eat_kw("RECURRING") {
            AlterScheduleCmd::SetRecurring(self.string("expected a cron expression (string literal)")?)
        } else if self.eat_kw("FULL") {
            self.expect_kw("BACKUP")?;
            let full = match self.peek() {
                Tok::Str(s) => Recurrence::Cron(s.clone()),
                _ if self.is_kw("ALWAYS") => Recurrence::Always,
                _ => return Err(self.error("expected a cron expression (string literal) or ALWAYS")),
            };
            self.advance();
            AlterScheduleCmd::SetFullBackup(full)
        } else if self.eat_kw("SCHEDULE") {
            self.expect_kw("OPTION")?;
            let key = match self.peek() {
                Tok::Word(w) => w.to_lowercase(),
                Tok::QuotedIdent(s) => s.clone(),
                _ => return Err(self.error("expected a schedule option name")),
            };
            self.advance();
            self.expect_punct('=', "expected '='")?;
            let value = match self.peek() {
                Tok::Str(s) | Tok::Number(s) | Tok::QuotedIdent(s) => s.clone(),
                Tok::Word(w) => w.to_lowercase(),
                _ => return Err(self.value_error("expected a value")),
            };
            self.advance();
            AlterScheduleCmd::SetScheduleOption(key, value)
        } else {
            return Err(self.error("expected LABEL, INTO, WITH, RECURRING, FULL BACKUP or SCHEDULE OPTION"));
        })
    }

    /// The one backup option of `SET WITH`.
    fn set_with_option(&mut self) -> Result<ScheduleBackupOption> {
        let expected = SET_WITH_OPTIONS[..SET_WITH_OPTIONS.len() - 1].join(", ");
        let name = match self.peek() {
            Tok::Word(w) => w.to_lowercase(),
            _ => return Err(self.error(format!("expected an option name; expected one of: {expected}"))),
        };
        if !SET_WITH_OPTIONS.contains(&name.as_str()) {
            return Err(self.error(format!("unknown option \"{name}\"; expected one of: {expected}")));
        }
        if name == "detached" {
            return Err(self.error("DETACHED is required for scheduled backups and cannot be altered"));
        }
        self.advance();
        Ok(match name.as_str() {
            "revision_history" => ScheduleBackupOption::RevisionHistory(self.flag()?),
            "encryption_passphrase" => ScheduleBackupOption::EncryptionPassphrase(self.secret()?),
            "kms" => {
                self.expect_punct('=', "expected '='")?;
                ScheduleBackupOption::Kms(self.uri_list(URI)?)
            }
            _ => {
                let env = name.ends_with("env");
                let what = if env { "environment variable name" } else { "file path" };
                let value = self.string_value(&format!("expected a string literal ({what})"))?;
                ScheduleBackupOption::EncryptionPassphraseFrom { env, value }
            }
        })
    }

    /// After `SHOW BACKUP` when `FILES`, `RANGES` or `SCHEMAS` follows.
    pub(super) fn backup_details(&mut self) -> Option<BackupDetails> {
        let details = if self.is_kw("FILES") {
            BackupDetails::Files
        } else if self.is_kw("RANGES") {
            BackupDetails::Ranges
        } else if self.is_kw("SCHEMAS") {
            BackupDetails::Schemas
        } else {
            return None;
        };
        self.advance();
        Some(details)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{err, ok, s, v};
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn alter_backup_schedule_every_command() {
        use AlterScheduleCmd::*;
        assert_eq!(
            ok("ALTER BACKUP SCHEDULE 12 SET RECURRING '@hourly', SET FULL BACKUP '@daily', \
                SET SCHEDULE OPTION on_execution_failure = 'pause', SET WITH revision_history = false, \
                SET WITH kms = ('a', 'b'), SET WITH encryption_passphrase_env = 'PASS', SET LABEL 'nightly', \
                SET INTO 's3://x', EXECUTE IMMEDIATELY, EXECUTE FULL IMMEDIATELY"),
            Statement::AlterBackupSchedule(AlterBackupScheduleStmt {
                id: 12,
                commands: vec![
                    SetRecurring(s("@hourly")),
                    SetFullBackup(Recurrence::Cron(s("@daily"))),
                    SetScheduleOption(s("on_execution_failure"), s("pause")),
                    SetWith(ScheduleBackupOption::RevisionHistory(false)),
                    SetWith(ScheduleBackupOption::Kms(v(&["a", "b"]))),
                    SetWith(ScheduleBackupOption::EncryptionPassphraseFrom { env: true, value: s("PASS") }),
                    SetLabel(s("nightly")),
                    SetInto(v(&["s3://x"])),
                    ExecuteImmediately { full: false },
                    ExecuteImmediately { full: true },
                ],
            })
        );
        assert_eq!(
            ok("alter backup schedule 3 set full backup always, set schedule option on_previous_running = skip"),
            Statement::AlterBackupSchedule(AlterBackupScheduleStmt {
                id: 3,
                commands: vec![
                    SetFullBackup(Recurrence::Always),
                    SetScheduleOption(s("on_previous_running"), s("skip"))
                ],
            })
        );
    }

    #[test]
    fn alter_backup_schedule_errors() {
        assert_eq!(err("ALTER BACKUP SCHEDULE x SET RECURRING '@daily'").0, "expected a schedule ID (an integer)");
        assert_eq!(err("ALTER BACKUP SCHEDULE 1").0, "expected SET or EXECUTE");
        assert_eq!(err("ALTER BACKUP SCHEDULE 1 SET RECURRING NEVER").0, "expected a cron expression (string literal)");
        assert_eq!(
            err("ALTER BACKUP SCHEDULE 1 SET FULL BACKUP NEVER").0,
            "expected a cron expression (string literal) or ALWAYS"
        );
        assert_eq!(
            err("ALTER BACKUP SCHEDULE 1 SET WITH detached").0,
            "DETACHED is required for scheduled backups and cannot be altered"
        );
        assert!(err("ALTER BACKUP SCHEDULE 1 SET WITH into_db = 'x'").0.starts_with("unknown option \"into_db\""));
        assert_eq!(err("ALTER BACKUP SCHEDULE 1 EXECUTE NOW").0, "expected IMMEDIATELY");
        // A passphrase never shows in an error.
        let (message, _, statement) = err("ALTER BACKUP SCHEDULE 1 SET WITH encryption_passphrase = 'hunter2' x");
        assert_eq!(message, "unexpected input after end of statement");
        assert!(!statement.contains("hunter2"), "{statement}");
    }

    #[test]
    fn show_schedule_and_backup_details() {
        assert_eq!(ok("SHOW SCHEDULE 5"), Statement::ShowSchedule(5));
        assert_eq!(ok("SHOW SCHEDULES"), Statement::ShowSchedules);
        for (word, details) in
            [("FILES", BackupDetails::Files), ("ranges", BackupDetails::Ranges), ("Schemas", BackupDetails::Schemas)]
        {
            let Statement::ShowBackupDetails { details: got, show } =
                ok(&format!("SHOW BACKUP {word} FROM LATEST IN 'c' WITH encryption_passphrase = 'p'"))
            else {
                panic!("{word}")
            };
            assert_eq!(got, details);
            assert_eq!(show.source.subdir, Some(Subdir::Latest));
            assert!(show.options.encryption_passphrase.is_some());
        }
        let Statement::ShowBackupDetails { show, .. } = ok("SHOW BACKUP FILES 'a', 'b'") else { panic!() };
        assert_eq!(show.source.layers, vec![v(&["a"]), v(&["b"])]);
        assert_eq!(err("SHOW SCHEDULE").0, "expected a schedule ID (an integer)");
    }
}
