//! Progress bars for backups and restores on stderr, drawn only when stderr is a terminal.

use std::io::IsTerminal;
use std::sync::{Arc, OnceLock};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use strata_core::{Progress, ProgressReporter};

const STEPS: u64 = 1000;

/// A fault-injection hook for the process tests: with `STRATA_BACKUP_STOP_AFTER_FILES=N` the
/// process sends itself `SIGSTOP` once a backup has stored and recorded N data files, so a test
/// kills it (`native/tests/resume.rs`) at a known point instead of racing a backup it polls.
const STOP_AFTER_FILES: &str = "STRATA_BACKUP_STOP_AFTER_FILES";

/// The backup's reporter: [`bar`], and the fault-injection hook when it is set.
pub(crate) fn backup() -> ProgressReporter {
    let bar = bar("backup");
    let Some(stop_after) = std::env::var(STOP_AFTER_FILES).ok().and_then(|v| v.parse::<u64>().ok()) else {
        return bar;
    };
    let stopped = std::sync::atomic::AtomicBool::new(false);
    ProgressReporter::new(move |p: &Progress| {
        bar.report(p);
        if p.files >= stop_after && !stopped.swap(true, std::sync::atomic::Ordering::SeqCst) {
            crate::stop_self();
        }
    })
}

/// A reporter drawing a bar labelled `label`, or none when stderr is not a terminal.
pub(crate) fn bar(label: &'static str) -> ProgressReporter {
    if !std::io::stderr().is_terminal() {
        return ProgressReporter::default();
    }
    let cell: Arc<OnceLock<ProgressBar>> = Arc::default();
    ProgressReporter::new(move |p: &Progress| {
        let bar = cell.get_or_init(|| {
            let bar = ProgressBar::with_draw_target(Some(STEPS), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{prefix} [{bar:30}] {percent:>3}% {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(label);
            bar
        });
        if bar.is_finished() {
            return;
        }
        bar.set_position((p.fraction.clamp(0.0, 1.0) * STEPS as f64) as u64);
        bar.set_message(format!("{} rows, {}", p.rows, HumanBytes(p.bytes)));
        if p.fraction >= 1.0 {
            bar.finish_and_clear();
        }
    })
}
