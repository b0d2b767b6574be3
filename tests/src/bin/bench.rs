//! `cargo run --release -p strata-tests --bin bench -- [--keys N] [--quick] [--no-restic] [--engine redb|lsm]`:
//! strata's backup/restore benchmark on the embedded store, side by side with restic on the same
//! data. Progress goes to stderr; stdout gets an aligned table, a summary with issue 8's targets
//! and, as its last line, one JSON object with the figures.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use strata_tests::bench::{self, BenchOptions};

/// The allocator the `strata` CLI uses (see its `main.rs`): the backup frees on the CPU pool and
/// storage threads the data files it allocates on the runtime's, which glibc keeps resident.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Full backup (plain and encrypted), incremental after changing 1% of keys, whole-database and
/// one-table restore; restic's full backup, backup after the same change and restore.
#[derive(Parser)]
#[command(name = "bench")]
struct Args {
    /// Keys in the dataset (default 1,000,000; 20,000 with --quick).
    #[arg(long)]
    keys: Option<u64>,
    /// A small run: 20,000 keys and shorter crypto measurements.
    #[arg(long)]
    quick: bool,
    /// Seed of the changed keys' choice and values.
    #[arg(long)]
    seed: Option<u64>,
    /// Directory to create the temporary working directory in.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Skip the comparison with restic (its figures are null in the JSON line).
    #[arg(long)]
    no_restic: bool,
    /// The embedded store to generate the dataset in and restore into: redb (the default) or lsm.
    #[arg(long, default_value = "redb")]
    engine: bench::Engine,
}

fn main() -> ExitCode {
    // The CLI's allocator settings (mimalloc returns freed memory after 250 ms).
    strata_native::allocator::return_freed_memory_promptly();
    let args = Args::parse();
    let default_keys = if args.quick { bench::QUICK_KEYS } else { bench::DEFAULT_KEYS };
    let mut options = BenchOptions::default()
        .with_keys(args.keys.unwrap_or(default_keys))
        .with_crypto_time(Duration::from_millis(if args.quick { 250 } else { 1000 }))
        .with_restic(!args.no_restic)
        .with_engine(args.engine);
    if let Some(seed) = args.seed {
        options = options.with_seed(seed);
    }
    if let Some(dir) = args.dir {
        options = options.with_dir(dir);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench::run(&options, |line| eprintln!("{line}"))) {
        Ok(report) => {
            print!("{}", report.render());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
