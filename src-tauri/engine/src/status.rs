//! What `driveback status` and the app's health badge show: the health checks, the next
//! automatic backup and the newest backup, worked out from the history, the settings, the
//! destination and the scheduler's heartbeat.
//!
//! [`observe_destination`] does the I/O (blocking: it lists the destination and asks for its
//! quota); [`report`] is pure and takes `now`.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

use crate::error::EngineError;
use crate::glance::{self, Glance, Reach};
use crate::health::{self, DestinationProblem, Health, Observations};
use crate::history::{self, RunRecord};
use crate::schedule::{self, ScheduleState};
use crate::scheduler::SchedulerStatus;
use crate::settings::Settings;
use crate::store::{Quota, RemoteStore, StoreError, StoredBackup};

/// What the destination looked like just now.
#[derive(Clone, Debug, Default)]
pub struct DestinationSeen {
    /// `None` when no destination is chosen.
    pub listed: Option<Result<Vec<StoredBackup>, DestinationProblem>>,
    pub quota: Option<Quota>,
    /// Files at the destination that look like backups but are not the user's own.
    pub ignored: Vec<crate::authenticity::Ignored>,
    /// Data-loss alarms not acknowledged yet.
    pub alarms: Vec<crate::alarms::Alarm>,
    /// The destination is Google Drive (the glance line names it).
    pub drive: bool,
}

/// The health check words it "Google Drive needs reconnecting: why": keep only the why.
pub fn reconnect_needed(message: String) -> DestinationProblem {
    let why = message
        .strip_prefix("Google Drive needs reconnecting: ")
        .map(str::to_string)
        .unwrap_or(message);
    DestinationProblem::ReconnectNeeded(why)
}

/// Whether an error opening a destination means the user must connect Google Drive (again).
pub fn is_sign_in_problem(code: &str) -> bool {
    matches!(code, "reconnect_needed" | "not_connected")
}

/// Lists the destination and, when that works, reads its quota. A destination whose sign-in is
/// gone is a finding, not an error. Blocking.
pub fn observe_destination(
    store: Option<Result<Arc<dyn RemoteStore>, EngineError>>,
) -> Result<DestinationSeen, EngineError> {
    let store = match store {
        None => return Ok(DestinationSeen::default()),
        Some(Err(e)) if is_sign_in_problem(e.code()) => {
            return Ok(DestinationSeen {
                listed: Some(Err(reconnect_needed(e.to_string()))),
                quota: None,
                ignored: Vec::new(),
                alarms: Vec::new(),
                drive: true,
            })
        }
        Some(Err(e)) => return Err(e),
        Some(Ok(s)) => s,
    };
    let listed = store.list();
    let quota = match &listed {
        Ok(_) => store.quota().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not read the destination's quota");
            None
        }),
        Err(_) => None,
    };
    let listed = listed.map_err(|e| match e {
        StoreError::Auth(e) => reconnect_needed(e),
        e => DestinationProblem::Unreachable(e.to_string()),
    });
    Ok(DestinationSeen {
        listed: Some(listed),
        quota,
        ignored: store.ignored(),
        alarms: Vec::new(),
        drive: false,
    })
}

/// Health, schedule and newest backup, as one answer.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The line at a glance ("Backed up 2 hours ago · 61 kB · Next: tonight 02:00").
    pub glance: Glance,
    /// What the line was made of (to say it again later, or with a backup running).
    #[serde(skip)]
    pub glance_facts: glance::Facts,
    #[serde(flatten)]
    pub health: Health,
    pub schedule_text: String,
    pub retention_text: String,
    /// When the next automatic backup starts (in the past: due now); `None` when manual only.
    pub next_due: Option<DateTime<Utc>>,
    /// A scheduler ticked recently (this app or `driveback daemon`).
    pub scheduler_running: bool,
    pub latest_backup: Option<StoredBackup>,
    pub last_run: Option<RunRecord>,
    /// The last audit by test restore: when, which backup, passed or why not.
    pub last_test_restore: Option<RunRecord>,
}

/// Pure: the report for `records` (oldest first) and what was observed, at `now`.
pub fn report<Tz: TimeZone>(
    records: &[RunRecord],
    settings: &Settings,
    seen: &DestinationSeen,
    database: Option<Result<(), String>>,
    heartbeat: Option<&SchedulerStatus>,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Report {
    let backups = seen.listed.as_ref().and_then(|l| l.as_ref().ok());
    let obs = Observations {
        database,
        destination: seen
            .listed
            .as_ref()
            .map(|l| l.as_ref().map(|_| ()).map_err(Clone::clone)),
        free_space: seen
            .quota
            .as_ref()
            .and_then(|q| Some((q.free()?, q.limit?))),
        scheduler_heartbeat: heartbeat.map(|h| h.alive_at),
        backups: backups.map(|v| v.as_slice()),
        ignored: &seen.ignored,
        alarms: &seen.alarms,
    };
    let health = health::health(records, settings, &obs, now, tz);
    let scheduler_running =
        heartbeat.is_some_and(|beat| now - beat.alive_at <= health::SCHEDULER_STALE);
    let next_due = match heartbeat {
        Some(beat) if scheduler_running => beat.next_due,
        _ => schedule::next_due(
            &settings.schedule,
            &ScheduleState {
                catch_up_delay: chrono::Duration::zero(),
                ..ScheduleState::new(history::last_attempt(records), now)
            }
            .with_recent(history::attempts(records.iter().rev())),
            now,
            tz,
        ),
    };
    let mut health = health;
    // A failed run that will be tried again says when, and which try that will be.
    let backup_runs: Vec<&RunRecord> = records
        .iter()
        .filter(|r| r.kind == crate::history::RunKind::Backup)
        .collect();
    if let (Some(last), Some(due)) = (backup_runs.last(), next_due) {
        let attempt = |r: &RunRecord| {
            schedule::Attempt::of(r.outcome, r.error.as_ref().map(|e| e.code.as_str()))
        };
        let next_slot = schedule::next_slot(&settings.schedule, last.ended, tz);
        if attempt(last) == schedule::Attempt::Failed
            && due > last.ended
            && next_slot.is_none_or(|n| due < n)
        {
            let tries = backup_runs
                .iter()
                .rev()
                .take_while(|r| attempt(r) == schedule::Attempt::Failed)
                .count();
            if let Some(c) = health.checks.iter_mut().find(|c| c.name == "last_run") {
                c.message = format!(
                    "Retrying at {} (attempt {}): {}",
                    due.with_timezone(tz).naive_local().format("%H:%M"),
                    tries + 1,
                    last.error
                        .as_ref()
                        .map(|e| e.message.as_str())
                        .unwrap_or("the last backup failed")
                );
            }
        }
    }
    let listed = seen.listed.as_ref().map(|l| match l {
        Ok(list) => Ok(list.as_slice()),
        Err(DestinationProblem::ReconnectNeeded(_)) => Err(Reach::ReconnectNeeded),
        Err(DestinationProblem::Unreachable(_)) => Err(Reach::Unreachable),
    });
    let glance_facts = glance::facts(
        records,
        listed,
        seen.drive,
        &settings.schedule,
        next_due,
        false,
    );
    Report {
        glance: glance::glance(&glance_facts, now, tz),
        glance_facts,
        health,
        schedule_text: schedule::describe(&settings.schedule),
        retention_text: settings.retention.describe(),
        next_due,
        scheduler_running,
        latest_backup: backups.and_then(|v| v.first().cloned()),
        last_run: records
            .iter()
            .rev()
            .find(|r| r.kind == crate::history::RunKind::Backup)
            .or(records.last())
            .cloned(),
        last_test_restore: records
            .iter()
            .rev()
            .find(|r| r.kind == crate::history::RunKind::Audit)
            .cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Status;
    use crate::history::{Outcome, RunKind, Trigger};
    use crate::settings::Frequency;
    use chrono::Duration;

    fn run(started: DateTime<Utc>, outcome: Outcome) -> RunRecord {
        RunRecord {
            warnings: Vec::new(),
            job_id: started.to_rfc3339(),
            kind: RunKind::Backup,
            trigger: Trigger::Scheduled,
            started,
            ended: started + Duration::minutes(1),
            outcome,
            database: Some("shop".into()),
            dest: Some("drive".into()),
            backup_id: Some("0000000a".into()),
            bytes: Some(1000),
            documents: Some(10),
            verified: Some(true),
            pruned: None,
            error: None,
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-03-10T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_revoked_sign_in_is_critical_and_the_next_slot_comes_from_the_history() {
        let settings = Settings::default();
        let records = vec![run(now() - Duration::hours(10), Outcome::Success)];
        let seen = DestinationSeen {
            listed: Some(Err(reconnect_needed(
                "Google Drive needs reconnecting: the grant was revoked".into(),
            ))),
            quota: None,
            ignored: Vec::new(),
            alarms: Vec::new(),
            drive: true,
        };
        let r = report(&records, &settings, &seen, None, None, now(), &Utc);
        assert_eq!(r.health.status, Status::Critical);
        // The line still knows the backup (from the history) and says why Drive cannot be read.
        assert_eq!(
            r.glance.text,
            "Backed up 9 hours ago · 1 kB · Next: tonight 02:00 · Google Drive needs reconnecting"
        );
        assert_eq!(r.glance.level, glance::Level::Fresh);
        let dest = r
            .health
            .checks
            .iter()
            .find(|c| c.name == "destination")
            .unwrap();
        assert!(dest.message.contains("the grant was revoked"), "{dest:?}");
        assert!(!r.scheduler_running);
        // Daily at 02:00 (UTC here), last run at 02:00 today: the next is tomorrow 02:00.
        assert_eq!(r.next_due, Some("2026-03-11T02:00:00Z".parse().unwrap()));
        assert_eq!(r.last_run, records.last().cloned());
    }

    #[test]
    fn a_failed_run_says_when_it_is_tried_again() {
        let settings = Settings::default(); // daily at 02:00 UTC here
        let slot: DateTime<Utc> = "2026-03-10T02:00:00Z".parse().unwrap();
        let failed = |at: DateTime<Utc>| {
            let mut r = run(at, Outcome::Failed);
            r.error = Some(crate::history::RunError {
                code: "database_unreachable".into(),
                message: "the database server at db.example.net is unreachable".into(),
            });
            r
        };
        // Two failures since the slot (ended 02:01 and 02:07): the third try 15 min after.
        let records = vec![
            run(slot - Duration::days(1), Outcome::Success),
            failed(slot),
            failed(slot + Duration::minutes(6)),
        ];
        let now = slot + Duration::minutes(8);
        let r = report(
            &records,
            &settings,
            &DestinationSeen::default(),
            None,
            None,
            now,
            &Utc,
        );
        assert_eq!(r.next_due, Some(slot + Duration::minutes(22)));
        let last_run = r
            .health
            .checks
            .iter()
            .find(|c| c.name == "last_run")
            .unwrap();
        assert_eq!(
            last_run.message,
            "Retrying at 02:22 (attempt 3): the database server at db.example.net is unreachable"
        );
        // One the user must fix is not retried: it says what failed, not a time.
        let mut blocked = failed(slot);
        blocked.error.as_mut().unwrap().code = "reconnect_needed".into();
        let r = report(
            &[blocked],
            &settings,
            &DestinationSeen::default(),
            None,
            None,
            now,
            &Utc,
        );
        let last_run = r
            .health
            .checks
            .iter()
            .find(|c| c.name == "last_run")
            .unwrap();
        assert!(!last_run.message.starts_with("Retrying"), "{last_run:?}");
    }

    #[test]
    fn a_live_scheduler_says_when_the_next_backup_is() {
        let mut settings = Settings::default();
        settings.schedule.frequency = Frequency::Weekly;
        let beat = SchedulerStatus {
            alive_at: now() - Duration::seconds(20),
            awake_since: now() - Duration::hours(1),
            next_due: Some(now() + Duration::hours(30)),
            pid: 1,
        };
        let r = report(
            &[],
            &settings,
            &DestinationSeen::default(),
            None,
            Some(&beat),
            now(),
            &Utc,
        );
        assert!(r.scheduler_running);
        assert_eq!(r.next_due, beat.next_due);
        let stale = SchedulerStatus {
            alive_at: now() - Duration::hours(2),
            ..beat
        };
        let r = report(
            &[],
            &settings,
            &DestinationSeen::default(),
            None,
            Some(&stale),
            now(),
            &Utc,
        );
        assert!(!r.scheduler_running);
        assert_ne!(r.next_due, stale.next_due);
    }
}
