//! CREATE SCHEDULE, and PAUSE | RESUME of a schedule or a job.

use super::super::ast::*;
use super::super::lexer::Tok;
use super::{Parser, URI};
use crate::error::Result;

impl Parser {
    /// After `CREATE SCHEDULE`.
    pub(super) fn create_schedule(&mut self) -> Result<CreateScheduleStmt> {
        let if_not_exists = self.if_not_exists()?;
        let label = match self.peek() {
            _ if self.is_kw("FOR") => None,
            Tok::Str(s) => {
                let s = s.clone();
                self.advance();
                Some(s)
            }
            _ => Some(self.ident("expected a schedule label or FOR")?),
        };
        self.expect_kw("FOR")?;
        self.expect_kw("BACKUP")?;
        let targets = self.targets()?;
        if self.is_kw("TO") {
            return Err(self.error("a schedule's backup must use INTO, not TO"));
        }
        if !self.eat_kw("INTO") {
            let message =
                if targets == Targets::Cluster { "expected TABLE, DATABASE or INTO" } else { "expected INTO" };
            return Err(self.error(message));
        }
        if self.is_kw("LATEST") || self.is_kw_at(1, "IN") {
            return Err(self.error("a schedule's backup takes only the collection URI(s) after INTO"));
        }
        let uris = self.uri_list(URI)?;
        let with = self.eat_kw("WITH");
        if with && self.is_kw("SCHEDULE") {
            return Err(self.error("WITH SCHEDULE OPTIONS must come after RECURRING"));
        }
        let options = if with { self.backup_options()? } else { BackupStmtOptions::default() };
        if !self.eat_kw("RECURRING") {
            return Err(self.error(if with { "expected RECURRING" } else { "expected WITH or RECURRING" }));
        }
        let recurring = match self.peek() {
            Tok::Str(s) => Recurrence::Cron(s.clone()),
            _ if self.is_kw("NEVER") => Recurrence::Never,
            _ => return Err(self.error("expected a cron expression (string literal) or NEVER")),
        };
        self.advance();
        let full_backup = if self.eat_kw("FULL") {
            self.expect_kw("BACKUP")?;
            let full = match self.peek() {
                Tok::Str(s) => Recurrence::Cron(s.clone()),
                _ if self.is_kw("ALWAYS") => Recurrence::Always,
                _ => return Err(self.error("expected a cron expression (string literal) or ALWAYS")),
            };
            self.advance();
            Some(full)
        } else {
            None
        };
        let mut schedule_options: Vec<(String, String)> = Vec::new();
        if self.eat_kw("WITH") {
            self.expect_kw("SCHEDULE")?;
            self.expect_kw("OPTIONS")?;
            loop {
                let key = match self.peek() {
                    Tok::Word(w) => w.to_lowercase(),
                    Tok::QuotedIdent(s) => s.clone(),
                    _ => return Err(self.error("expected a schedule option name")),
                };
                if schedule_options.iter().any(|(k, _)| *k == key) {
                    return Err(self.error(format!("duplicate schedule option \"{key}\"")));
                }
                self.advance();
                // A bare name is a flag (`ignore_existing_backups`): it reads as `= 'true'`.
                let value = if self.eat_punct('=') {
                    let value = match self.peek() {
                        Tok::Str(s) | Tok::Number(s) | Tok::QuotedIdent(s) => s.clone(),
                        Tok::Word(w) => w.to_lowercase(),
                        _ => return Err(self.error("expected a value")),
                    };
                    self.advance();
                    value
                } else {
                    "true".to_string()
                };
                schedule_options.push((key, value));
                if !self.eat_punct(',') {
                    break;
                }
            }
        }
        let destination = BackupDestination::Into { subdir: None, uris };
        let backup = BackupStmt { targets, destination, as_of: None, incremental_from: Vec::new(), options };
        Ok(CreateScheduleStmt { if_not_exists, label, backup, recurring, full_backup, schedule_options })
    }

    /// After `PAUSE` or `RESUME`.
    pub(super) fn schedule_or_job(
        &mut self,
        schedule: fn(u64) -> Statement,
        job: fn(u64) -> Statement,
    ) -> Result<Statement> {
        if self.eat_kw("SCHEDULE") {
            Ok(schedule(self.id("schedule")?))
        } else if self.eat_kw("JOB") {
            Ok(job(self.id("job")?))
        } else {
            Err(self.error("expected SCHEDULE or JOB"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{err, into, ok, s, v};
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn create_schedule_with_everything() {
        assert_eq!(
            ok("CREATE SCHEDULE IF NOT EXISTS Nightly FOR BACKUP DATABASE bank INTO 's3://x' \
                WITH revision_history RECURRING '@daily' FULL BACKUP '@weekly' \
                WITH SCHEDULE OPTIONS first_run = 'now', on_execution_failure = pause, ignore_existing_backups"),
            Statement::CreateSchedule(CreateScheduleStmt {
                if_not_exists: true,
                label: Some(s("nightly")),
                backup: BackupStmt {
                    targets: Targets::Databases(v(&["bank"])),
                    destination: into(&["s3://x"]),
                    as_of: None,
                    incremental_from: vec![],
                    options: BackupStmtOptions { revision_history: true, ..Default::default() },
                },
                recurring: Recurrence::Cron(s("@daily")),
                full_backup: Some(Recurrence::Cron(s("@weekly"))),
                schedule_options: vec![
                    (s("first_run"), s("now")),
                    (s("on_execution_failure"), s("pause")),
                    (s("ignore_existing_backups"), s("true")),
                ],
            })
        );
    }

    #[test]
    fn create_schedule_minimal_and_string_label() {
        let backup = BackupStmt {
            targets: Targets::Cluster,
            destination: into(&["a", "b"]),
            as_of: None,
            incremental_from: vec![],
            options: BackupStmtOptions::default(),
        };
        assert_eq!(
            ok("CREATE SCHEDULE FOR BACKUP INTO ('a', 'b') RECURRING NEVER"),
            Statement::CreateSchedule(CreateScheduleStmt {
                if_not_exists: false,
                label: None,
                backup: backup.clone(),
                recurring: Recurrence::Never,
                full_backup: None,
                schedule_options: vec![],
            })
        );
        assert_eq!(
            ok("CREATE SCHEDULE 'My Schedule' FOR BACKUP INTO ('a', 'b') RECURRING '0 * * * *' FULL BACKUP ALWAYS"),
            Statement::CreateSchedule(CreateScheduleStmt {
                if_not_exists: false,
                label: Some(s("My Schedule")),
                backup,
                recurring: Recurrence::Cron(s("0 * * * *")),
                full_backup: Some(Recurrence::Always),
                schedule_options: vec![],
            })
        );
    }

    #[test]
    fn schedule_and_job_control() {
        assert_eq!(ok("SHOW SCHEDULES"), Statement::ShowSchedules);
        assert_eq!(ok("pause schedule 42"), Statement::PauseSchedule(42));
        assert_eq!(ok("RESUME SCHEDULE 18446744073709551615"), Statement::ResumeSchedule(u64::MAX));
        assert_eq!(ok("DROP SCHEDULE 7;"), Statement::DropSchedule(7));
        assert_eq!(ok("SHOW JOBS"), Statement::ShowJobs);
        assert_eq!(ok("SHOW JOB 1"), Statement::ShowJob(1));
        assert_eq!(ok("PAUSE JOB 2"), Statement::PauseJob(2));
        assert_eq!(ok("RESUME JOB 3"), Statement::ResumeJob(3));
        assert_eq!(ok("CANCEL JOB 4"), Statement::CancelJob(4));
    }

    #[test]
    fn error_ids() {
        assert_eq!(err("PAUSE JOB abc"), (s("expected a job ID (an integer)"), 10, s("PAUSE JOB redacted")));
        assert_eq!(err("DROP SCHEDULE 18446744073709551616").0, "expected a schedule ID (an integer)");
        assert_eq!(err("SHOW JOB 1.5").0, "expected a job ID (an integer)");
        assert_eq!(err("PAUSE 1").0, "expected SCHEDULE or JOB");
    }

    #[test]
    fn error_schedules() {
        let sql = "CREATE SCHEDULE s FOR BACKUP TO 'x' RECURRING '@daily'";
        assert_eq!(
            err(sql),
            (
                s("a schedule's backup must use INTO, not TO"),
                29,
                s("CREATE SCHEDULE s FOR BACKUP TO 'redacted' RECURRING '@daily'")
            )
        );
        assert_eq!(err("CREATE SCHEDULE s FOR BACKUP INTO 'x'").0, "expected WITH or RECURRING");
        assert_eq!(
            err("CREATE SCHEDULE s FOR BACKUP INTO LATEST IN 'x' RECURRING NEVER"),
            (
                s("a schedule's backup takes only the collection URI(s) after INTO"),
                34,
                s("CREATE SCHEDULE s FOR BACKUP INTO LATEST IN 'redacted' RECURRING NEVER")
            )
        );
        assert_eq!(
            err("CREATE SCHEDULE s FOR BACKUP INTO 'sub' IN 'x' RECURRING NEVER").0,
            "a schedule's backup takes only the collection URI(s) after INTO"
        );
        assert_eq!(
            err("CREATE SCHEDULE s FOR BACKUP INTO 'x' RECURRING ALWAYS").0,
            "expected a cron expression (string literal) or NEVER"
        );
        assert_eq!(
            err("CREATE SCHEDULE s FOR BACKUP INTO 'x' RECURRING NEVER FULL BACKUP NEVER").0,
            "expected a cron expression (string literal) or ALWAYS"
        );
        assert_eq!(
            err("CREATE SCHEDULE s FOR BACKUP INTO 'x' WITH SCHEDULE OPTIONS a = 'b' RECURRING NEVER").0,
            "WITH SCHEDULE OPTIONS must come after RECURRING"
        );
        assert_eq!(
            err("CREATE SCHEDULE s FOR BACKUP INTO 'x' RECURRING NEVER WITH SCHEDULE OPTIONS a = 'b', A = 'c'").0,
            "duplicate schedule option \"a\""
        );
        assert_eq!(err("CREATE SCHEDULE FOR FOR BACKUP INTO 'x' RECURRING NEVER").0, "expected BACKUP");
        assert_eq!(err("CREATE SCHEDULE , FOR BACKUP").0, "expected a schedule label or FOR");
    }
}
