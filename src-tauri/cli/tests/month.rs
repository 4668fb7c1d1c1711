//! A simulated month through the product's backup job and the schedule's own decisions (the
//! scheduler's `next_due` with the recent runs), on a simulated clock, against the real test
//! server and the Google Drive emulator: nights when the machine sleeps, the network down at the
//! slot, the database down, Drive answering 500 for an hour, Drive full. Every day on which the
//! machine is awake for at least an hour after the slot ends with a good backup, except the day
//! Drive is full, which ends with the right alert after one try; retention after the month holds
//! exactly what the default policy keeps. Prints one row a day.

mod support_drive;

use std::sync::atomic::Ordering;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use driveback_engine::history::{self, Outcome, Trigger};
use driveback_engine::schedule::{self, ScheduleState};
use driveback_engine::settings::ScheduleSettings;
use serde_json::json;
use support_drive::scheduled_drive;

/// What goes wrong on a day: (from, to) windows in hours after midnight UTC.
#[derive(Clone, Default)]
struct Day {
    asleep_until: Option<f64>,
    network_down: Option<(f64, f64)>,
    db_down: Option<(f64, f64)>,
    drive_500: Option<(f64, f64)>,
    drive_full: bool,
}

fn within(w: Option<(f64, f64)>, h: f64) -> bool {
    w.is_some_and(|(a, b)| h >= a && h < b)
}

#[test]
fn a_month_of_bad_nights_ends_each_day_with_a_good_backup() {
    let first = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
    let midnight = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap());
    let w = scheduled_drive("month", midnight(first));
    let (rt, emu, store, clock, history, jobs) =
        (&w.rt, &w.emu, &w.store, &w.clock, &w.history, &w.jobs);
    let schedule_settings = ScheduleSettings::default(); // every day at 02:00

    let mut plan = vec![Day::default(); 30];
    plan[4].asleep_until = Some(8.0);
    plan[11].asleep_until = Some(7.5);
    plan[20].asleep_until = Some(9.0);
    plan[2].network_down = Some((1.5, 2.4));
    plan[8].network_down = Some((0.0, 3.0));
    plan[16].network_down = Some((2.0, 2.2));
    plan[6].db_down = Some((1.0, 2.5));
    plan[13].db_down = Some((2.0, 4.0));
    plan[18].drive_500 = Some((2.0, 3.0));
    plan[24].drive_full = true;

    let step = Duration::minutes(1);
    let mut awake_since = midnight(first);
    let mut rows = Vec::new();
    for (i, day) in plan.iter().enumerate() {
        let date = first + Duration::days(i as i64);
        let slot = midnight(date) + Duration::hours(2);
        let runs_before = history.load().unwrap().len();
        let mut fault_on: Option<&str> = None;
        let mut t = midnight(date);
        let mut was_asleep = false;
        while t < midnight(date) + Duration::days(1) {
            let h = (t - midnight(date)).num_minutes() as f64 / 60.0;
            if day.asleep_until.is_some_and(|until| h < until) {
                was_asleep = true;
                t += step;
                continue;
            }
            if was_asleep {
                // The scheduler notices the wake at its next tick.
                awake_since = t;
                was_asleep = false;
            }
            clock.set(t);
            // The day's troubles, on and off at their times.
            let want = if within(day.network_down, h) {
                Some("network")
            } else if within(day.drive_500, h) {
                Some("drive_500")
            } else if day.drive_full {
                Some("full")
            } else {
                None
            };
            if want != fault_on {
                emu.clear_faults();
                match want {
                    Some("network") => emu.fault(json!({"route": "*", "status": 503, "count": 100000})),
                    Some("drive_500") => emu.fault(json!({"route": "upload", "status": 500, "count": 100000})),
                    Some("full") => emu.fault(json!({"route": "upload_init", "status": 403, "reason": "storageQuotaExceeded", "count": 100000})),
                    _ => {}
                }
                fault_on = want;
            }
            w.db_down.store(within(day.db_down, h), Ordering::SeqCst);
            let state = ScheduleState {
                catch_up_delay: Duration::minutes(2),
                ..ScheduleState::new(None, awake_since)
            }
            .with_recent(history::attempts(&jobs.recent_runs()));
            if schedule::is_due(&schedule_settings, &state, t, &Utc) {
                rt.block_on(async { jobs.start(Trigger::Scheduled).wait().await });
            }
            t += step;
        }
        emu.clear_faults();
        w.db_down.store(false, Ordering::SeqCst);
        let runs: Vec<_> = history.load().unwrap()[runs_before..].to_vec();
        let last = runs.last().cloned();
        rows.push((date, slot, runs, last));
    }

    println!(
        "{:<11} {:<6} {:>8}  {:<8} told",
        "day", "slot", "attempts", "result"
    );
    let mut problems = Vec::new();
    for (i, (date, _slot, runs, last)) in rows.iter().enumerate() {
        let day = &plan[i];
        let result = last
            .as_ref()
            .map_or("none".to_string(), |r| r.outcome.label().to_string());
        let told = last
            .as_ref()
            .and_then(|r| r.error.as_ref())
            .map_or("backup ok".to_string(), |e| {
                e.message.chars().take(70).collect()
            });
        let times: Vec<String> = runs
            .iter()
            .map(|r| r.started.format("%H:%M").to_string())
            .collect();
        println!(
            "{date} {:<6} {:>8}  {result:<8} {told} [{}]",
            "02:00",
            runs.len(),
            times.join(" ")
        );
        if day.drive_full {
            // Not retried blindly: one try, the right alert.
            let ok = runs.len() == 1
                && last.as_ref().is_some_and(|r| {
                    r.outcome == Outcome::Failed
                        && r.error
                            .as_ref()
                            .is_some_and(|e| e.code == "destination_full")
                });
            if !ok {
                problems.push(format!("{date}: the full-Drive day was {runs:?}"));
            }
        } else if !last.as_ref().is_some_and(|r| r.outcome == Outcome::Success) {
            problems.push(format!(
                "{date}: the day ended without a good backup: {runs:?}"
            ));
        }
        // Bad luck costs retries, good days one run.
        let troubled =
            day.network_down.is_some() || day.db_down.is_some() || day.drive_500.is_some();
        // (The first launch, at midnight on day one, also catches up the slot of the day before.)
        let quiet_runs = if i == 0 { 2 } else { 1 };
        if !troubled && !day.drive_full && runs.len() != quiet_runs {
            problems.push(format!("{date}: {} runs on a quiet day", runs.len()));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");

    // Retention after the month: the 7 newest days' backups and the month's first.
    let kept: Vec<NaiveDate> = store
        .list()
        .unwrap()
        .iter()
        .map(|b| b.created.date_naive())
        .collect();
    // (daily 7, monthly 1): the newest seven days that have a backup, and June's first.
    let mut want: Vec<NaiveDate> = (0..30i64)
        .rev()
        .filter(|d| !plan[*d as usize].drive_full)
        .take(7)
        .map(|d| first + Duration::days(d))
        .collect();
    want.push(first);
    assert_eq!(kept, want);
}
