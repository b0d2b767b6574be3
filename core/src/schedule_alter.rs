//! `ALTER BACKUP SCHEDULE` as a pure decision: what a full schedule and its incremental
//! become under the statement's commands, at `now`. No IO: the executor (`exec/schedules.rs`)
//! loads the pair, calls [`alter_schedules`], and stores (or drops) what it returns.
//!
//! CockroachDB's order is kept (`alter_backup_schedule.go`): the full backup's cadence first
//! (`ALWAYS` folds the incremental into the full; a cadence on a full-only schedule creates the
//! incremental), then `RECURRING` (the incremental's cadence when there is one), a check that
//! incrementals run at least as often as fulls, then label, destination, backup options, schedule
//! options and `EXECUTE IMMEDIATELY`.

use crate::cron::CronExpr;
use crate::error::{Error, Result};
use crate::schedule::{BackupKind, OnPreviousRunning, Schedule, ScheduleOptions, WAITING_FOR_FULL};
use crate::sql::{
    AlterScheduleCmd, BackupDestination, BackupStmt, Recurrence, ScheduleBackupOption, SecretSource, Subdir,
};

/// The schedule options `SET SCHEDULE OPTION` may change (CockroachDB leaves out `first_run`
/// and `ignore_existing_backups`, which only mean something at creation).
pub const ALTERABLE_SCHEDULE_OPTIONS: &[&str] =
    &["on_execution_failure", "on_previous_running", "updates_cluster_last_backup_time_metric"];

/// What [`alter_schedules`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Altered {
    /// The full backup schedule, changed.
    pub full: Schedule,
    /// The incremental schedule, changed or created; `None` if there is none (any more).
    pub incremental: Option<Schedule>,
    /// The incremental schedule `SET FULL BACKUP ALWAYS` removed.
    pub dropped: Option<u64>,
}

/// Applies `commands` to the pair (`full`, `incremental`) at `now`. `new_id` is the id an
/// incremental schedule created by `SET FULL BACKUP 'cron'` takes.
pub fn alter_schedules(
    mut full: Schedule,
    mut incremental: Option<Schedule>,
    commands: &[AlterScheduleCmd],
    now: u64,
    new_id: u64,
) -> Result<Altered> {
    let what = "ALTER BACKUP SCHEDULE";
    let mut seen: Vec<&str> = Vec::new();
    let mut full_backup = None;
    let mut recurring = None;
    let mut label = None;
    let mut into = None;
    let mut options = Vec::new();
    let mut schedule_options = Vec::new();
    let mut execute = None;
    for c in commands {
        let once = match c {
            AlterScheduleCmd::SetFullBackup(r) => {
                full_backup = Some(r);
                Some("SET FULL BACKUP")
            }
            AlterScheduleCmd::SetRecurring(r) => {
                recurring = Some(r);
                Some("SET RECURRING")
            }
            AlterScheduleCmd::SetLabel(l) => {
                label = Some(l);
                Some("SET LABEL")
            }
            AlterScheduleCmd::SetInto(u) => {
                into = Some(u);
                Some("SET INTO")
            }
            AlterScheduleCmd::SetWith(o) => {
                options.push(o);
                None
            }
            AlterScheduleCmd::SetScheduleOption(k, v) => {
                schedule_options.push((k.clone(), v.clone()));
                None
            }
            AlterScheduleCmd::ExecuteImmediately { full } => {
                execute = Some(*full);
                Some("EXECUTE IMMEDIATELY")
            }
        };
        if let Some(once) = once {
            if seen.contains(&once) {
                return Err(Error::invalid(what, format!("can specify {once} at most once")));
            }
            seen.push(once);
        }
    }
    let parse = |text: &str| CronExpr::parse(text);
    let mut dropped = None;

    // SET FULL BACKUP.
    match full_backup {
        None => {}
        Some(Recurrence::Never) => {
            return Err(Error::invalid("FULL BACKUP", "NEVER goes with RECURRING; use a cron expression or ALWAYS"))
        }
        Some(Recurrence::Always) => {
            if let Some(inc) = incremental.take() {
                full.cron = inc.cron.clone();
                full.paired = None;
                reschedule(&mut full, now);
                dropped = Some(inc.id);
            }
        }
        Some(Recurrence::Cron(text)) => {
            let cron = parse(text)?;
            if incremental.is_none() {
                // Create the incremental at the full's cadence, waiting for a full backup.
                let mut backup = full.backup.clone();
                let uris = destination_uris(&backup);
                backup.destination = BackupDestination::Into { subdir: Some(Subdir::Latest), uris };
                let mut inc = full.clone();
                inc.id = new_id;
                inc.kind = BackupKind::Incremental;
                inc.backup = backup;
                inc.paused = true;
                inc.status_message = Some(WAITING_FOR_FULL.into());
                inc.paired = Some(full.id);
                inc.running = Vec::new();
                inc.last_run = None;
                inc.created = now;
                inc.on_previous_running = OnPreviousRunning::Wait;
                inc.next_run = inc.next_after(now);
                full.paired = Some(new_id);
                incremental = Some(inc);
            }
            full.cron = Some(cron.text().to_string());
            reschedule(&mut full, now);
        }
    }

    // SET RECURRING: the incremental's cadence, or the full's when it runs alone.
    if let Some(text) = recurring {
        let cron = parse(text)?;
        let target = incremental.as_mut().unwrap_or(&mut full);
        target.cron = Some(cron.text().to_string());
        reschedule(target, now);
    }

    if let Some(inc) = &incremental {
        let frequency = |s: &Schedule| -> Result<u64> {
            let text = s.cron.as_deref().unwrap_or_default();
            parse(text)?.frequency(now).ok_or_else(|| Error::invalid("RECURRING", format!("'{text}' never runs")))
        };
        if full.cron.is_none() || inc.cron.is_none() {
            return Err(Error::invalid(what, "a schedule that runs once (RECURRING NEVER) has no incremental"));
        }
        if frequency(&full)? < frequency(inc)? {
            return Err(Error::invalid(what, "incremental backups must occur more often than full backups"));
        }
    }

    if let Some(label) = label {
        full.label = label.clone();
        if let Some(inc) = &mut incremental {
            inc.label = label.clone();
        }
    }

    if let Some(uris) = into {
        set_uris(&mut full.backup, uris);
        if let Some(inc) = &mut incremental {
            set_uris(&mut inc.backup, uris);
            // A new collection holds no full backup yet: the incremental waits for one, which
            // runs at once unless the incremental was paused already.
            let was_paused = inc.paused;
            inc.paused = true;
            inc.status_message = Some(WAITING_FOR_FULL.into());
            if !was_paused {
                full.next_run = Some(now);
            }
        }
    }

    for o in &options {
        set_option(&mut full.backup, o)?;
        if let Some(inc) = &mut incremental {
            set_option(&mut inc.backup, o)?;
        }
    }

    for (key, value) in &schedule_options {
        // strata's retention options (`keep_last` …): the pair forgets by one policy.
        if let option @ crate::schedule::ScheduleOption::Keep(_) =
            crate::schedule::validate_schedule_option(key, value, now)?
        {
            if let Some(inc) = &mut incremental {
                inc.set_option(option);
            }
            full.set_option(option);
            continue;
        }
        if !ALTERABLE_SCHEDULE_OPTIONS.contains(&key.as_str()) {
            return Err(Error::invalid(
                "schedule option",
                format!(
                    "{key} cannot be altered; expected one of: {}, or a keep_* retention option",
                    ALTERABLE_SCHEDULE_OPTIONS.join(", ")
                ),
            ));
        }
        // The checks and values of CREATE SCHEDULE's options.
        let parsed = ScheduleOptions::parse(&[(key.clone(), value.clone())], now)?;
        match key.as_str() {
            "on_execution_failure" => {
                full.on_failure = parsed.on_failure;
                if let Some(inc) = &mut incremental {
                    inc.on_failure = parsed.on_failure;
                }
            }
            "on_previous_running" => {
                full.on_previous_running = parsed.on_previous_running;
                // Incrementals always wait: two at once would extend the same layer.
                if let Some(inc) = &mut incremental {
                    inc.on_previous_running = OnPreviousRunning::Wait;
                }
            }
            _ => {}
        }
    }

    if let Some(run_full) = execute {
        let target = match &mut incremental {
            Some(inc) if !run_full => inc,
            _ => &mut full,
        };
        if target.paused {
            return Err(Error::Precondition(format!(
                "schedule {} is paused: cannot execute a paused schedule; use RESUME SCHEDULE instead",
                target.id
            )));
        }
        target.next_run = Some(now);
    }
    Ok(Altered { full, incremental, dropped })
}

/// A changed cadence takes effect at once: the next run follows it (a paused schedule keeps its
/// next run until it is resumed, when it is computed again).
fn reschedule(s: &mut Schedule, now: u64) {
    if !s.paused {
        s.next_run = s.next_after(now);
    }
}

fn destination_uris(b: &BackupStmt) -> Vec<String> {
    match &b.destination {
        BackupDestination::Into { uris, .. } | BackupDestination::To(uris) => uris.clone(),
    }
}

fn set_uris(b: &mut BackupStmt, new: &[String]) {
    if let BackupDestination::Into { uris, .. } = &mut b.destination {
        *uris = new.to_vec();
    }
}

fn set_option(b: &mut BackupStmt, o: &ScheduleBackupOption) -> Result<()> {
    let options = &mut b.options;
    match o {
        ScheduleBackupOption::RevisionHistory(on) => options.revision_history = *on,
        ScheduleBackupOption::EncryptionPassphrase(p) if p.expose().is_empty() => {
            options.encryption_passphrase = None;
            options.encryption_passphrase_from = None;
        }
        ScheduleBackupOption::EncryptionPassphrase(_) => {
            return Err(Error::invalid(
                "ALTER BACKUP SCHEDULE",
                "a schedule stores no secrets, and the encryption passphrase was typed into the statement. Refer \
                 to it instead, to be read by the process that runs the schedule: SET WITH \
                 encryption_passphrase_env = 'NAME' or SET WITH encryption_passphrase_file = '/path'",
            ))
        }
        ScheduleBackupOption::EncryptionPassphraseFrom { value, .. } if value.is_empty() => {
            options.encryption_passphrase_from = None;
        }
        ScheduleBackupOption::EncryptionPassphraseFrom { env, value } => {
            options.encryption_passphrase = None;
            options.encryption_passphrase_from =
                Some(if *env { SecretSource::Env(value.clone()) } else { SecretSource::File(value.clone()) });
        }
        ScheduleBackupOption::Kms(uris) if uris.iter().all(String::is_empty) => options.kms = Vec::new(),
        ScheduleBackupOption::Kms(uris) => options.kms = uris.clone(),
    }
    Ok(())
}
