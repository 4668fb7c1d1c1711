//! Drive faults while the schedule runs: the product's job (`jobs::run_backup` through `Jobs`,
//! with an injected clock) against the real test server and the Google Drive emulator, one slot a
//! day, with a rate-limit storm, a full Drive and a Drive that keeps failing on given days. A run
//! the storm hits still succeeds; a failed run commits nothing, leaves the earlier backups and no
//! orphan on Drive, is recorded, and the next slot runs normally.

mod support_drive;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use driveback_engine::health::{self, Observations, Status};
use driveback_engine::history::{self, Outcome, Trigger};
use driveback_engine::jobs::Clock;
use driveback_engine::schedule::{self, ScheduleState};
use driveback_engine::settings::{ScheduleSettings, Settings};
use serde_json::json;
use support_drive::scheduled_drive;

#[test]
fn drive_faults_fail_one_slot_and_the_next_slot_runs() {
    let first = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
    let w = scheduled_drive(
        "faults_sched",
        Utc.from_utc_datetime(&first.and_hms_opt(2, 0, 0).unwrap()),
    );
    let (rt, emu, store, clock, history, jobs) =
        (&w.rt, &w.emu, &w.store, &w.clock, &w.history, &w.jobs);
    let schedule_settings = ScheduleSettings::default();

    // (day, what Drive does that day, the outcome, its error code)
    let storm = vec![
        json!({"route": "upload_chunk", "status": 503, "count": 2}),
        json!({"route": "upload_init", "status": 429, "count": 1, "retry_after": 1}),
        json!({"route": "list", "status": 403, "reason": "rateLimitExceeded", "count": 2}),
    ];
    let full = vec![
        json!({"route": "upload_init", "status": 403, "reason": "storageQuotaExceeded", "count": 1000}),
    ];
    let down = vec![json!({"route": "upload_chunk", "status": 500, "count": 1000})];
    let days: Vec<(Vec<serde_json::Value>, Outcome, Option<&str>)> = vec![
        (vec![], Outcome::Success, None),
        (storm, Outcome::Success, None),
        (full, Outcome::Failed, Some("destination_full")),
        (down, Outcome::Failed, Some("destination_error")),
        (vec![], Outcome::Success, None),
    ];
    let mut good = 0usize;
    for (day, (faults, outcome, code)) in days.into_iter().enumerate() {
        let today = first + Duration::days(day as i64);
        let slot = Utc.from_utc_datetime(&today.and_hms_opt(2, 0, 0).unwrap());
        // One run a slot here (the schedule is asked without the recent runs, so a failed run is
        // not retried; `month.rs` runs the retries).
        let now = clock.now();
        let due = schedule::next_due(
            &schedule_settings,
            &ScheduleState {
                catch_up_delay: Duration::zero(),
                ..ScheduleState::new(history::last_attempt(&history.load().unwrap()), now)
            },
            now,
            &Utc,
        );
        assert_eq!(due, Some(slot), "day {today}");
        clock.set(slot);
        for f in &faults {
            emu.fault(f.clone());
        }
        let run = rt.block_on(async { jobs.start(Trigger::Scheduled).wait().await });
        emu.clear_faults();
        assert_eq!(run.outcome, outcome, "day {today}: {:?}", run.error);
        assert_eq!(
            run.error.as_ref().map(|e| e.code.as_str()),
            code,
            "day {today}"
        );
        if outcome == Outcome::Success {
            good += 1;
        }
        let backups = store.list().unwrap();
        assert_eq!(
            backups.len(),
            good,
            "day {today}: only committed backups are listed"
        );
        assert!(good == 0 || backups[0].created.date_naive() <= today);
        // Nothing half-uploaded stays on Drive.
        assert_eq!(emu.file_names().len(), backups.len(), "day {today}");
        if outcome == Outcome::Failed {
            assert!(run.backup_id.is_none() && run.pruned.is_none(), "{run:?}");
            let h = health::health(
                &history.load().unwrap(),
                &Settings::default(),
                &Observations {
                    backups: Some(&backups),
                    ..Default::default()
                },
                slot + Duration::minutes(5),
                &Utc,
            );
            let last_run = h.checks.iter().find(|c| c.name == "last_run").unwrap();
            assert_ne!(
                last_run.status,
                Status::Healthy,
                "day {today}: {last_run:?}"
            );
        }
        clock.set(slot + Duration::hours(1));
    }
    let outcomes: Vec<Outcome> = history.load().unwrap().iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            Outcome::Success,
            Outcome::Success,
            Outcome::Failed,
            Outcome::Failed,
            Outcome::Success
        ]
    );
}
