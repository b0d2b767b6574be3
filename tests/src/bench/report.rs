//! What a run measured, and how the `bench` binary prints it: the table, the strata/restic
//! summary with issue 14's targets, and the JSON line.

use std::fmt::Write as _;

use serde::Serialize;

use super::mb_s;

/// One measured step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    /// What was done.
    pub name: String,
    /// Rows written, backed up or restored.
    pub rows: u64,
    /// Logical bytes of those rows.
    pub logical_bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Bytes on disk the step produced: the backup layer's files, or the store's directory.
    pub stored_bytes: u64,
    /// The process's `VmHWM` during the step (reset at its start), in MiB (`None` where /proc is
    /// unavailable); for restic's steps, restic's own peak RSS.
    pub rss_hwm_mib: Option<f64>,
}

impl Phase {
    /// Logical MB per second.
    pub fn mb_s(&self) -> f64 {
        mb_s(self.logical_bytes, self.seconds)
    }
}

/// The figures of the JSON line; field order is the line's key order ([`JSON_KEYS`](super::JSON_KEYS)).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// Keys in the dataset.
    pub n_keys: u64,
    /// Logical bytes of the generated dataset.
    pub logical_bytes: u64,
    /// Full backup throughput (logical MB/s).
    pub full_mb_s: f64,
    /// Full encrypted backup throughput (logical MB/s; always measured, optional for the JSON's shape).
    pub full_enc_mb_s: Option<f64>,
    /// Incremental backup time over full backup time (issue 3's target: ≤ 0.03).
    pub incr_over_full: f64,
    /// Whole-database restore throughput (logical MB/s).
    pub restore_mb_s: f64,
    /// restic's full backup throughput (logical MB/s of the same data); `None` with `--no-restic`.
    pub restic_full_mb_s: Option<f64>,
    /// Seconds of restic's backup after the same change (it rereads each changed file).
    pub restic_incr_s: Option<f64>,
    /// restic's restore throughput (logical MB/s of the restored data).
    pub restic_restore_mb_s: Option<f64>,
    /// One core hashing (SHA-256) and encrypting (AES-256-GCM) every byte: `1 / (1/sha + 1/aes)`.
    pub limit_mb_s: Option<f64>,
    /// The largest peak RSS (`VmHWM`, MiB) of the process during a backup or restore step.
    pub peak_rss_mib: Option<f64>,
    /// Seconds to generate and write the dataset.
    pub gen_s: f64,
    /// Seconds of the full backup.
    pub full_s: f64,
    /// Bytes of the full backup's files.
    pub full_stored_bytes: u64,
    /// Keys changed before the incremental.
    pub changed_keys: u64,
    /// Seconds of the incremental backup.
    pub incr_s: f64,
    /// Bytes of the incremental layer's files.
    pub incr_stored_bytes: u64,
    /// Seconds of the whole-database restore.
    pub restore_s: f64,
    /// Rows the whole-database restore produced (verified against the dataset).
    pub restore_rows: u64,
    /// Seconds of the one-table restore (`bank.customers`).
    pub restore_table_s: f64,
    /// One-table restore throughput (logical MB/s of that table).
    pub restore_table_mb_s: f64,
    /// Rows the one-table restore produced (verified).
    pub restore_table_rows: u64,
    /// Single-core SHA-256 throughput, MB/s.
    pub sha256_mb_s: Option<f64>,
    /// Single-core AES-256-GCM encryption throughput, MB/s.
    pub aes256gcm_mb_s: Option<f64>,
    /// Seconds of the full encrypted backup (its one passphrase key derivation included).
    pub full_enc_s: f64,
    /// Bytes of the full encrypted backup's files.
    pub full_enc_stored_bytes: u64,
    /// Seconds of restic's full backup.
    pub restic_full_s: Option<f64>,
    /// Bytes of restic's repository after its full backup.
    pub restic_full_stored_bytes: Option<u64>,
    /// Bytes restic's repository grew by in the backup after the change.
    pub restic_incr_stored_bytes: Option<u64>,
    /// Seconds of restic's restore.
    pub restic_restore_s: Option<f64>,
    /// The largest peak RSS of restic's commands (init, backups, restore), MiB.
    pub restic_peak_rss_mib: Option<f64>,
    /// `full_mb_s / restic_full_mb_s`.
    pub full_over_restic_full: Option<f64>,
    /// `full_enc_mb_s / restic_full_mb_s` (issue 14's target: ≥ 2).
    pub enc_over_restic_full: Option<f64>,
    /// `full_enc_mb_s / limit_mb_s` (issue 8's target: ≥ 0.5).
    pub enc_over_limit: Option<f64>,
    /// `restore_mb_s / restic_restore_mb_s` (issue 14's target: ≥ 2).
    pub restore_over_restic_restore: Option<f64>,
    /// `restic_incr_s / restic_full_s`, restic's counterpart of `incr_over_full`.
    pub restic_incr_over_full: Option<f64>,
    /// Plain write throughput of the store while generating (logical MB/s, batched writes).
    pub write_mb_s: f64,
    /// Bytes the source store's directory holds on disk after generating (allocated blocks).
    pub store_bytes: u64,
    /// Bytes the restore target's directory holds on disk after the restore (allocated blocks).
    pub restore_store_bytes: u64,
    /// The embedded store the bench ran on: `"redb"` or `"lsm"` (`--engine`).
    pub engine: &'static str,
}

/// What restic's part of a run saw, beyond its figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ResticRun {
    /// The first line of `restic version`.
    pub version: String,
    /// Bytes of the exported files restic backed up (after the change).
    pub export_file_bytes: u64,
    /// Files restic's backup after the change found changed (and reread whole).
    pub incr_files_changed: u64,
    /// Bytes restic's backup after the change read.
    pub incr_bytes_processed: u64,
    /// Bytes of restic's cache directory at the end (not counted in its stored bytes).
    pub cache_bytes: u64,
    /// Files of restic's restore compared byte for byte with the export, all equal.
    pub restore_verified_files: u64,
}

/// One of issue 14's targets and what a run measured for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The target, as the issue states it.
    pub name: &'static str,
    /// The measured value, with what it was computed from (or why it was not measured).
    pub measured: String,
    /// Whether it was met; `None` if not measured.
    pub met: Option<bool>,
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// The options it ran with.
    pub keys: u64,
    /// The seed it ran with.
    pub seed: u64,
    /// Each measured step, in order.
    pub phases: Vec<Phase>,
    /// The figures of the JSON line.
    pub figures: Figures,
    /// restic's details; `None` if it was skipped (`--no-restic`).
    pub restic: Option<ResticRun>,
}

impl BenchReport {
    /// The JSON line: one object, keys in [`JSON_KEYS`](super::JSON_KEYS) order.
    pub fn json_line(&self) -> String {
        serde_json::to_string(&self.figures).expect("figures serialize")
    }

    /// Issue 14's targets with this run's values (but its plain writes at 2x an earlier build's:
    /// see the `write_mb_s` figure).
    pub fn targets(&self) -> Vec<Target> {
        let f = &self.figures;
        let no_restic = if self.restic.is_none() { "not measured (restic skipped)" } else { "not measured" };
        let target = |name, measured: Option<(String, bool)>, missing: &str| match measured {
            Some((m, met)) => Target { name, measured: m, met: Some(met) },
            None => Target { name, measured: missing.to_string(), met: None },
        };
        let enc = f.full_enc_mb_s.unwrap_or(0.0);
        vec![
            target(
                "full encrypted ≥ 2× restic's full backup throughput",
                f.enc_over_restic_full
                    .zip(f.restic_full_mb_s)
                    .map(|(r, restic)| (format!("{r:.2}× ({enc:.1} vs {restic:.1} MB/s)"), r >= 2.0)),
                no_restic,
            ),
            target(
                "full encrypted ≥ 50% of the hash + encrypt limit",
                f.enc_over_limit
                    .zip(f.limit_mb_s)
                    .map(|(r, limit)| (format!("{:.1}% ({enc:.1} of {limit:.1} MB/s)", r * 100.0), r >= 0.5)),
                "not measured (no crypto measurement)",
            ),
            target(
                "backup no larger than restic's repository growth",
                f.restic_full_stored_bytes.map(|restic| {
                    let ours = f.full_enc_stored_bytes;
                    let (mb, rmb) = (ours as f64 / 1e6, restic as f64 / 1e6);
                    (format!("{mb:.2} MB vs {rmb:.2} MB ({:.3}×)", ours as f64 / restic as f64), ours <= restic)
                }),
                no_restic,
            ),
            target(
                "incremental (1% changed) ≤ 3% of the full backup's time",
                Some((
                    format!("{:.2}% ({:.3} s of {:.3} s)", f.incr_over_full * 100.0, f.incr_s, f.full_s),
                    f.incr_over_full <= 0.03,
                )),
                "",
            ),
            target(
                "restore ≥ 2× restic's restore throughput",
                f.restore_over_restic_restore
                    .zip(f.restic_restore_mb_s)
                    .map(|(r, restic)| (format!("{r:.2}× ({:.1} vs {restic:.1} MB/s)", f.restore_mb_s), r >= 2.0)),
                no_restic,
            ),
            target(
                "embedded store ≤ 1.5× the logical data",
                Some({
                    let r = f.store_bytes as f64 / f.logical_bytes.max(1) as f64;
                    (format!("{r:.2}× ({:.1} MB after the writes, allocated)", f.store_bytes as f64 / 1e6), r <= 1.5)
                }),
                "",
            ),
            target(
                "peak RSS ≤ 256 MiB",
                f.peak_rss_mib.map(|m| (format!("{m:.1} MiB (largest backup/restore step)"), m <= 256.0)),
                "not measured (no /proc/self/status)",
            ),
        ]
    }

    /// What the `bench` binary prints: an aligned table, a summary, then the JSON line last.
    pub fn render(&self) -> String {
        let f = &self.figures;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "strata bench: {} keys, {:.2} MB logical (MB = 10^6 bytes), seed {:#x}, engine {}",
            f.n_keys,
            f.logical_bytes as f64 / 1e6,
            self.seed,
            f.engine
        );
        match &self.restic {
            Some(r) => {
                let _ = writeln!(out, "restic: {}, repository format 2 (compression auto)\n", r.version);
            }
            None => {
                let _ = writeln!(out, "restic: skipped (--no-restic)\n");
            }
        }
        let header = ["phase", "rows", "logical MB", "seconds", "MB/s", "stored bytes", "stored MB", "VmHWM MiB"];
        let rows: Vec<[String; 8]> = self
            .phases
            .iter()
            .map(|p| {
                [
                    p.name.clone(),
                    p.rows.to_string(),
                    format!("{:.2}", p.logical_bytes as f64 / 1e6),
                    format!("{:.3}", p.seconds),
                    format!("{:.2}", p.mb_s()),
                    p.stored_bytes.to_string(),
                    format!("{:.2}", p.stored_bytes as f64 / 1e6),
                    p.rss_hwm_mib.map_or("n/a".into(), |m| format!("{m:.1}")),
                ]
            })
            .collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0))
            .collect();
        let line = |cells: &[String]| -> String {
            let parts: Vec<String> = cells
                .iter()
                .enumerate()
                .map(
                    |(i, c)| if i == 0 { format!("{c:<w$}", w = widths[i]) } else { format!("{c:>w$}", w = widths[i]) },
                )
                .collect();
            format!(" {}", parts.join(" | "))
        };
        let _ = writeln!(out, "{}", line(&header.map(String::from)));
        let _ = writeln!(out, "{}", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+"));
        for r in &rows {
            let _ = writeln!(out, "{}", line(r));
        }
        let opt = |v: Option<f64>, unit: &str| v.map_or("not measured".to_string(), |v| format!("{v:.1} {unit}"));
        let _ = writeln!(out);

        let enc = f.full_enc_mb_s.unwrap_or(0.0);
        let _ = writeln!(out, " strata / restic, same logical data");
        match &self.restic {
            Some(r) => {
                let x = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}×"));
                let _ = writeln!(
                    out,
                    "   full backup        strata {:.1} MB/s plain, {enc:.1} MB/s encrypted; restic {}: {} plain, {} encrypted",
                    f.full_mb_s,
                    opt(f.restic_full_mb_s, "MB/s"),
                    x(f.full_over_restic_full),
                    x(f.enc_over_restic_full)
                );
                let _ = writeln!(
                    out,
                    "   after the change   strata {:.3} s ({:.2}% of its full); restic {:.3} s ({:.1}% of its full; \
                     it reread {} changed files, {:.1} MB)",
                    f.incr_s,
                    f.incr_over_full * 100.0,
                    f.restic_incr_s.unwrap_or(0.0),
                    f.restic_incr_over_full.unwrap_or(0.0) * 100.0,
                    r.incr_files_changed,
                    r.incr_bytes_processed as f64 / 1e6
                );
                let _ = writeln!(
                    out,
                    "   restore database   strata {:.1} MB/s; restic {}: {} (restic's restore verified byte for byte, {} files)",
                    f.restore_mb_s,
                    opt(f.restic_restore_mb_s, "MB/s"),
                    x(f.restore_over_restic_restore),
                    r.restore_verified_files
                );
                let _ = writeln!(
                    out,
                    "   stored after full  strata {:.2} MB plain, {:.2} MB encrypted; restic {:.2} MB \
                     (exported files: {:.2} MB; its cache, not counted: {:.2} MB)",
                    f.full_stored_bytes as f64 / 1e6,
                    f.full_enc_stored_bytes as f64 / 1e6,
                    f.restic_full_stored_bytes.unwrap_or(0) as f64 / 1e6,
                    r.export_file_bytes as f64 / 1e6,
                    r.cache_bytes as f64 / 1e6
                );
                let _ = writeln!(
                    out,
                    "   peak RSS           strata {} (its largest backup/restore step); restic {} (its largest command)",
                    opt(f.peak_rss_mib, "MiB"),
                    opt(f.restic_peak_rss_mib, "MiB")
                );
            }
            None => {
                let _ = writeln!(out, "   restic: skipped (--no-restic); its figures are null in the JSON");
            }
        }

        let targets = self.targets();
        let (wn, wm) =
            targets.iter().fold((0, 0), |(n, m), t| (n.max(t.name.chars().count()), m.max(t.measured.chars().count())));
        let _ = writeln!(out, " issue 14's targets");
        for t in &targets {
            let status = match t.met {
                Some(true) => "met",
                Some(false) => "NOT met",
                None => "n/a",
            };
            let _ = writeln!(out, "   {:<wn$}  {:<wm$}  {status}", t.name, t.measured);
        }
        let _ = writeln!(
            out,
            " embedded store            {:.1} MB/s plain writes; {:.1} MB on disk after them ({:.2}× the logical \
             data), {:.1} MB after the restore (allocated blocks)",
            f.write_mb_s,
            f.store_bytes as f64 / 1e6,
            f.store_bytes as f64 / f.logical_bytes.max(1) as f64,
            f.restore_store_bytes as f64 / 1e6
        );
        let _ = writeln!(out, " SHA-256, one core         {}", opt(f.sha256_mb_s, "MB/s"));
        let _ = writeln!(out, " AES-256-GCM, one core     {}", opt(f.aes256gcm_mb_s, "MB/s"));
        let _ = writeln!(
            out,
            " hash + encrypt limit      {} (one core doing both: 1/(1/sha + 1/aes))",
            opt(f.limit_mb_s, "MB/s")
        );
        let _ = writeln!(
            out,
            " VmHWM MiB: strata's rows = this process's peak during the step (VmHWM reset at its start through \
             /proc/self/clear_refs; it starts from the RSS the process holds); restic's rows = restic's own process \
             peak (wait4's ru_maxrss)"
        );
        let _ = writeln!(
            out,
            " stored bytes: strata's backups = the layer's files in the backup directory; restic = its repository's \
             growth; generate / change / restores = the store's directory (restic's restore: its files)"
        );
        let _ = writeln!(
            out,
            " logical MB/s count key (with its 5-byte table prefix) + value bytes for strata and restic alike; \
             exporting the tables to files for restic is not timed"
        );
        out.push_str(&self.json_line());
        out.push('\n');
        out
    }
}
