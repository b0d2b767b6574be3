//! `strata schedule run`: the scheduler daemon. It drives [`Executor::run_due_schedules`] with
//! the real clock until stopped (Ctrl-C / SIGTERM), or once with `--once`.
//!
//! The embedded store admits one process at a time, so while the daemon runs, other `strata`
//! commands on the same store wait for it to stop; create schedules first, then run the daemon.

use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use strata_core::{Executor, JobFuture, JobSpawner, JobStatus, RunOutcome, ScheduledRun};

/// How long the daemon sleeps at most between two looks at the schedules.
const MAX_SLEEP: Duration = Duration::from_secs(60);

#[derive(Subcommand)]
pub(crate) enum ScheduleCommand {
    /// Run due backup schedules (CREATE SCHEDULE … FOR BACKUP) until stopped.
    Run {
        /// Run the schedules due now, then exit.
        #[arg(long)]
        once: bool,
    },
}

/// Runs detached jobs on the daemon's thread (their futures are not `Send`).
struct LocalSpawner;

impl JobSpawner for LocalSpawner {
    fn spawn(&self, job: JobFuture) {
        tokio::task::spawn_local(job);
    }
}

pub(crate) async fn run(exec: &Executor, command: ScheduleCommand) -> anyhow::Result<()> {
    let ScheduleCommand::Run { once } = command;
    let local = tokio::task::LocalSet::new();
    local.run_until(daemon(exec.clone().with_job_spawner(Arc::new(LocalSpawner)), once)).await
}

async fn daemon(exec: Executor, once: bool) -> anyhow::Result<()> {
    // Take SIGTERM and Ctrl-C over before any work: a signal that arrives while a backup runs is
    // then kept until the run ends (and the daemon stops cleanly), instead of killing the
    // process mid-write with the default action.
    let mut stop = StopSignal::new();
    // Detached jobs recorded by `strata sql "BACKUP … WITH detached"` (pending), or left running
    // by a daemon that stopped (they resume from their checkpoints).
    let forgotten = exec.recover_schedules().await?;
    if forgotten > 0 {
        eprintln!("schedule run: {forgotten} scheduled runs of a stopped process were left unfinished");
    }
    let adopted = exec.adopt_jobs().await?;
    for id in &adopted {
        eprintln!("job {id}: started");
    }
    loop {
        let now = exec.store().now().await?;
        for r in exec.run_due_schedules(now).await? {
            report(&r);
        }
        if once {
            // Let the adopted jobs finish.
            // (Backups and restores: `job_status` knows both.)
            loop {
                let mut statuses = Vec::new();
                for id in &adopted {
                    statuses.push((*id, exec.job_status(*id).await?));
                }
                if statuses.iter().all(|(_, s)| *s != JobStatus::Running) {
                    for (id, status) in statuses {
                        eprintln!("job {id}: {}", status.as_str());
                    }
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let sleep = until_next_run(&exec).await?;
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = stop.recv() => {
                eprintln!("schedule run: stopping");
                return Ok(());
            }
        }
    }
}

/// Time until the earliest active schedule is due, at most [`MAX_SLEEP`] (schedules may be
/// added by a library host sharing the store) and at least a tenth of a second.
async fn until_next_run(exec: &Executor) -> anyhow::Result<Duration> {
    let now = exec.store().now().await?.wall;
    let next = exec.schedules().await?.iter().filter(|s| !s.paused).filter_map(|s| s.next_run).min();
    let wait = match next {
        Some(t) => Duration::from_nanos(t.saturating_sub(now)),
        None => MAX_SLEEP,
    };
    Ok(wait.clamp(Duration::from_millis(100), MAX_SLEEP))
}

/// SIGTERM or Ctrl-C, registered once when the daemon starts (see [`daemon`]).
struct StopSignal {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl StopSignal {
    fn new() -> StopSignal {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            StopSignal { term: signal(SignalKind::terminate()).ok(), interrupt: signal(SignalKind::interrupt()).ok() }
        }
        #[cfg(not(unix))]
        StopSignal {}
    }

    /// Resolves once a stop signal has arrived (at once if one arrived before).
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = next(&mut self.term) => {}
                _ = next(&mut self.interrupt) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn report(r: &ScheduledRun) {
    let what = format!("schedule {} ({}, {:?})", r.schedule_id, r.label, r.kind);
    // Labels, paths and errors may hold anything a statement or a backup did: no terminal controls.
    let what = strata_core::escape_control(&what);
    match &r.outcome {
        RunOutcome::Succeeded(result) => {
            let path = result.get(0, "path").map(|v| v.to_string()).unwrap_or_default();
            eprintln!("{what}: backup succeeded {path}");
        }
        RunOutcome::Failed(e) => eprintln!("{what}: backup failed: {}", strata_core::escape_control(&e.to_string())),
        RunOutcome::Skipped(why) => eprintln!("{what}: skipped: {}", strata_core::escape_control(why)),
        RunOutcome::Waiting => eprintln!("{what}: waiting for the previous run to finish"),
        RunOutcome::Started => eprintln!("{what}: started"),
        other => eprintln!("{what}: {other:?}"),
    }
    // After a success, a schedule with keep_* options forgot old backups of its collection.
    match &r.forgotten {
        Some(Ok(0)) | None => {}
        Some(Ok(n)) => eprintln!("{what}: forgot {n} old backups (its keep_* options)"),
        Some(Err(e)) => {
            eprintln!("{what}: forgetting old backups failed: {}", strata_core::escape_control(&e.to_string()))
        }
    }
}
