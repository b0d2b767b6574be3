//! Progress bars for backups and restores on stderr, drawn only when stderr is a terminal.

use std::io::IsTerminal;
use std::sync::{Arc, OnceLock};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use strata_core::{Progress, ProgressReporter};

const STEPS: u64 = 1000;

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
