//! Schedules that forget: `WITH SCHEDULE OPTIONS keep_last = …, keep_daily = …` (a strata
//! extension, named as restic names its `forget --keep-…` flags) forget the collection's old
//! backups after each successful run, never breaking a chain; the options are checked by one
//! function (`validate_schedule_option`), stored in the schedule's record and shown by `SHOW
//! SCHEDULES`.

use super::*;
use strata_core::{validate_schedule_option, KeepRule, ScheduleOption};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// Every backup the collection lists opens as a whole chain (full backup and every layer).
fn every_chain_opens(sim: &Sim) -> usize {
    sim.show_backups().iter().map(|b| sim.layers(b).len()).sum()
}

#[test]
fn keep_last_forgets_after_each_successful_run_and_is_stored_and_shown() {
    let start = at(2026, 5, 1, 10, 0);
    let mut sim = Sim::new(start);
    let created = sim.sql(&format!(
        "CREATE SCHEDULE d FOR BACKUP INTO '{URI}' RECURRING '@daily' FULL BACKUP ALWAYS \
         WITH SCHEDULE OPTIONS keep_last = 2, on_previous_running = 'skip'"
    ));
    let shown = "on_execution_failure = 'reschedule', on_previous_running = 'skip', keep_last = 2";
    // CREATE SCHEDULE shows CockroachDB's six columns; SHOW SCHEDULES shows the options.
    assert_eq!(created.rows.len(), 1);
    assert_eq!(sim.schedule_column("schedule_options"), vec![Value::from(shown)]);
    // Stored in the record: a restarted scheduler reads it back.
    sim.restart();
    assert_eq!(sim.schedule_column("schedule_options"), vec![Value::from(shown)]);

    let mut forgotten = Vec::new();
    for d in 0..5 {
        let t = at(2026, 5, 2, 0, 0) + d * DAY;
        for r in sim.tick(t) {
            assert!(matches!(r.outcome, RunOutcome::Succeeded(_)), "{r:?}");
            forgotten.push(r.forgotten);
        }
        assert_eq!(every_chain_opens(&sim), (d as usize + 1).min(2));
    }
    assert_eq!(forgotten, vec![Some(Ok(0)), Some(Ok(0)), Some(Ok(1)), Some(Ok(1)), Some(Ok(1))]);
    assert_eq!(sim.show_backups(), vec![dated(at(2026, 5, 5, 0, 0)), dated(at(2026, 5, 6, 0, 0))]);
    // The newest restores every row written up to its run.
    let target = Executor::new(Arc::new(MemKv::new()), sim.opener.clone());
    block_on(target.execute(&format!("RESTORE DATABASE bank FROM LATEST IN '{URI}'"))).unwrap();
    let table = block_on(target.table_id("bank", "accounts", None)).unwrap();
    assert_eq!(target_rows(&target, table), 5);

    // A schedule without keep options forgets nothing.
    let mut plain = Sim::new(start);
    plain.sql(&format!("CREATE SCHEDULE d FOR BACKUP INTO '{URI}' RECURRING '@daily' FULL BACKUP ALWAYS"));
    for d in 0..3 {
        let runs = plain.tick(at(2026, 5, 2, 0, 0) + d * DAY);
        assert_eq!(runs[0].forgotten, None);
    }
    assert_eq!(plain.show_backups().len(), 3);
}

#[test]
fn keep_daily_never_breaks_a_chain_of_incrementals() {
    // Saturday 2026-01-03 12:00: fulls on Sundays (Jan 4, Jan 11), incrementals every other midnight.
    let start = at(2026, 1, 3, 12, 0);
    let mut sim = Sim::new(start);
    let created = sim.sql(&format!(
        "CREATE SCHEDULE n FOR BACKUP DATABASE bank INTO '{URI}' RECURRING '@daily' FULL BACKUP '@weekly' \
         WITH SCHEDULE OPTIONS keep_daily = 3"
    ));
    assert_eq!(created.rows.len(), 2, "both schedules of the pair carry the policy");
    let options = sim.schedule_column("schedule_options");
    assert_eq!(options.len(), 2);
    for o in options {
        assert!(o.to_string().ends_with("keep_daily = 3"), "{o}");
    }
    let mut removed = Vec::new();
    let mut t = start;
    while t < at(2026, 1, 14, 0, 0) {
        for r in sim.tick(t) {
            if let Some(f) = r.forgotten {
                removed.push((show(t), f.unwrap()));
            }
        }
        // Whatever was forgotten, every backup left opens as a whole chain.
        every_chain_opens(&sim);
        t += HOUR;
    }
    // Until the three newest days are all in the second chain, the first one is needed whole (a
    // kept incremental keeps its full backup and every layer between); then it goes at once.
    let nonzero: Vec<_> = removed.iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(nonzero, vec![&("2026-01-13 00:00".to_string(), 7)], "{removed:?}");
    assert_eq!(removed.len(), 10, "one forget per successful run: {removed:?}");
    assert_eq!(sim.show_backups(), vec![dated(at(2026, 1, 11, 0, 0))]);
    assert_eq!(sim.layers(&dated(at(2026, 1, 11, 0, 0))).len(), 3);
}

#[test]
fn keep_options_are_checked_by_one_function_with_clear_errors() {
    assert_eq!(validate_schedule_option("keep_weekly", "4", 0).unwrap(), ScheduleOption::Keep(KeepRule::Weekly(4)));
    assert_eq!(
        validate_schedule_option("KEEP_WITHIN", "36h", 0).unwrap(),
        ScheduleOption::Keep(KeepRule::Within(Some(36 * HOUR)))
    );
    assert_eq!(validate_schedule_option("ignore_existing_backups", "true", 0).unwrap(), ScheduleOption::Ignored);
    let sim = Sim::new(at(2026, 5, 1, 10, 0));
    let create = |options: &str| {
        block_on(sim.exec.execute(&format!(
            "CREATE SCHEDULE d FOR BACKUP INTO '{URI}' RECURRING '@daily' WITH SCHEDULE OPTIONS {options}"
        )))
        .unwrap_err()
        .to_string()
    };
    assert_eq!(
        create("keep_last = 'three'"),
        "invalid keep_last: 'three': expected how many backups to keep, a whole number from 0 to 4294967295"
    );
    assert_eq!(create("keep_within = '2y'"), "invalid keep_within: '2y': the unit must be s, m, h, d or w");
    let unknown = create("keep_lastt = 3");
    assert!(unknown.contains("unknown option keep_lastt") && unknown.contains("keep_last, keep_hourly"), "{unknown}");
    let e = block_on(sim.exec.execute(
        "CREATE SCHEDULE d FOR BACKUP INTO ('memory://a?COCKROACH_LOCALITY=default', 'memory://b?COCKROACH_LOCALITY=region%3Dus') \
         RECURRING '@daily' WITH SCHEDULE OPTIONS keep_last = 3",
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("locality-aware collection"), "{e}");
    assert!(sim.schedule_column("id").is_empty(), "nothing was created");
}
