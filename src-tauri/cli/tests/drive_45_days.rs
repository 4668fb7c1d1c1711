//! Issue 5's integration test: a daily schedule against the real MongoDB-compatible test server
//! and the Google Drive emulator, run for 45 simulated days across two month ends. The product's
//! job (`jobs::run_backup` through `Jobs`, with an injected clock that dates each backup and
//! retention's `now`) backs up and prunes; at the end Drive holds exactly the 7 daily backups and
//! the first backups of this month and the previous one, each kept for its reason, and after
//! every day there was at least one complete backup there.

mod support_drive;

use chrono::{Datelike, Duration, NaiveDate, TimeZone, Utc};
use driveback_engine::health::{self, Observations};
use driveback_engine::history::{self, Outcome, Trigger};
use driveback_engine::jobs::Clock;
use driveback_engine::manifest::BackupStatus;
use driveback_engine::retention::{self, Reason};
use driveback_engine::schedule::{self, ScheduleState};
use driveback_engine::settings::{
    Frequency, RetentionPolicy, ScheduleSettings, Settings, TimeOfDay,
};
use std::collections::BTreeSet;
use support_drive::scheduled_drive;

/// The days (UTC) whose backups the default policy keeps after the backup of `today`, when
/// there was one backup every day since `first`: the last 7 days, and the first backup of this
/// month and of the previous one.
fn expected_days(first: NaiveDate, today: NaiveDate) -> BTreeSet<NaiveDate> {
    let mut days: BTreeSet<NaiveDate> = (0..7)
        .map(|i| today - Duration::days(i))
        .filter(|d| *d >= first)
        .collect();
    let this_month = today.with_day(1).unwrap();
    let previous_month = (this_month - Duration::days(1)).with_day(1).unwrap();
    // The first backup of a month: its first day, or the first day of all if that is later
    // (and only if that day is still in the month).
    for (start, end) in [
        (this_month, today),
        (previous_month, this_month - Duration::days(1)),
    ] {
        let first_of_month = start.max(first);
        if first_of_month <= end {
            days.insert(first_of_month);
        }
    }
    days
}

#[test]
fn a_daily_schedule_for_45_days_leaves_7_dailies_and_the_monthly_on_drive() {
    let first = NaiveDate::from_ymd_opt(2026, 1, 20).unwrap();
    let w = scheduled_drive(
        "days45",
        Utc.from_utc_datetime(&first.and_hms_opt(2, 0, 0).unwrap()),
    );
    let (rt, emu, store, clock, history, jobs) =
        (&w.rt, &w.emu, &w.store, &w.clock, &w.history, &w.jobs);
    let policy = RetentionPolicy::default();
    let schedule_settings = ScheduleSettings {
        frequency: Frequency::Daily,
        time: TimeOfDay::new(2, 0).unwrap(),
        ..ScheduleSettings::default()
    };

    let list = || store.list().unwrap();

    for day in 0..45 {
        // The daily schedule says when the next backup is due; the clock goes there.
        let now = clock.now();
        let due = schedule::next_due(
            &schedule_settings,
            &ScheduleState {
                catch_up_delay: Duration::zero(),
                ..ScheduleState::new(history::last_attempt(&history.load().unwrap()), now)
            },
            now,
            &Utc,
        )
        .expect("a daily schedule always has a next slot");
        let today = first + Duration::days(day);
        assert_eq!(
            due,
            Utc.from_utc_datetime(&today.and_hms_opt(2, 0, 0).unwrap())
        );
        clock.set(due);

        let run = rt.block_on(async { jobs.start(Trigger::Scheduled).wait().await });
        assert_eq!(
            run.outcome,
            Outcome::Success,
            "day {today}: {:?}",
            run.error
        );
        assert_eq!(
            run.verified,
            Some(true),
            "Drive compared its checksum on commit"
        );

        let backups = list();
        assert!(
            backups.iter().any(|b| b.status == BackupStatus::Complete),
            "day {today}: no complete backup on Drive"
        );
        let newest = &backups[0];
        assert_eq!(
            newest.created, due,
            "the backup is dated by the job's clock"
        );
        assert_eq!(Some(newest.id.clone()), run.backup_id);
        let days: BTreeSet<NaiveDate> = backups.iter().map(|b| b.created.date_naive()).collect();
        assert_eq!(days.len(), backups.len(), "day {today}: one backup per day");
        assert_eq!(days, expected_days(first, today), "day {today}");
        // Each day's backup runs "an hour" and the clock moves on to the next morning.
        clock.set(due + Duration::hours(1));
    }

    // 45 days from 20 January: the last backup is of 5 March.
    let last = NaiveDate::from_ymd_opt(2026, 3, 5).unwrap();
    let d = |m, day| NaiveDate::from_ymd_opt(2026, m, day).unwrap();
    let backups = list();
    let days: Vec<NaiveDate> = backups.iter().map(|b| b.created.date_naive()).collect();
    assert_eq!(
        days,
        vec![
            last,
            d(3, 4),
            d(3, 3),
            d(3, 2),
            d(3, 1),
            d(2, 28),
            d(2, 27),
            d(2, 1)
        ]
    );

    // Every backup there is kept, each with its reason.
    let plan = retention::plan(&backups, &policy, clock.now(), &Utc);
    assert!(plan.iter().all(|p| p.keep), "{plan:#?}");
    let reasons = |day: NaiveDate| -> Vec<Reason> {
        plan.iter()
            .find(|p| p.backup.created.date_naive() == day)
            .unwrap()
            .reasons
            .clone()
    };
    assert!(reasons(last).contains(&Reason::NewestComplete));
    for day in [last, d(3, 4), d(3, 3), d(3, 2), d(3, 1), d(2, 28), d(2, 27)] {
        assert!(
            reasons(day).contains(&Reason::Daily { day }),
            "{day}: {:?}",
            reasons(day)
        );
    }
    assert!(reasons(d(3, 1)).contains(&Reason::Monthly {
        year: 2026,
        month: 3
    }));
    assert_eq!(
        reasons(d(2, 1)),
        vec![Reason::Monthly {
            year: 2026,
            month: 2
        }]
    );
    // The monthly backup is between about 30 and 61 days old.
    let age = clock.now() - backups.last().unwrap().created;
    assert!(
        age >= Duration::days(30) && age <= Duration::days(61),
        "{age}"
    );

    // The history holds all 45 runs, each verified, and the health is good.
    let records = history.load().unwrap();
    assert_eq!(records.len(), 45);
    let pruned: u32 = records.iter().filter_map(|r| r.pruned).sum();
    assert_eq!(pruned as usize, 45 - backups.len());
    let settings = Settings {
        schedule: schedule_settings,
        ..Settings::default()
    };
    let h = health::health(
        &records,
        &settings,
        &Observations {
            backups: Some(&backups),
            ..Default::default()
        },
        clock.now(),
        &Utc,
    );
    assert_eq!(h.status, health::Status::Healthy, "{:#?}", h.checks);
    assert!(h.checks.iter().any(|c| c.name == "verified"));
    // Nothing else is left on Drive: no uploads in flight, no orphans.
    let files = emu.file_names();
    assert_eq!(files.len(), backups.len(), "{files:?}");
}
