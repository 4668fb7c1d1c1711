//! Whether the data is safe, at a glance. Pure: the history, the settings, what the caller
//! observed (database reachable, destination connected, free space, the scheduler's heartbeat,
//! the backups at the destination) and `now` go in; a status and the checks behind it come out.
//!
//! Each check is healthy, warning or critical with a reason in plain words; the status is the
//! worst of them. A check whose input the caller does not have is left out rather than guessed.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::Serialize;

use crate::history::{self, Outcome, RunKind, RunRecord};
use crate::manifest::BackupStatus;
use crate::retention;
use crate::settings::{Frequency, Settings};
use crate::store::StoredBackup;

/// A scheduler that has not ticked for this long is not running.
pub const SCHEDULER_STALE: Duration = Duration::minutes(5);

/// Below this share of free space at the destination, a warning.
pub const LOW_FREE_SPACE: f64 = 0.10;

/// Below this share of free space at the destination, critical (a backup may fail any day).
pub const CRITICAL_FREE_SPACE: f64 = 0.02;

/// A success rate below this (over 30 days, at least [`MIN_RUNS_FOR_RATE`] runs) is a warning.
pub const LOW_SUCCESS_RATE: f64 = 0.8;
pub const MIN_RUNS_FOR_RATE: usize = 5;

/// A restore test older than this is a warning (audits run monthly by default).
pub const AUDIT_STALE: Duration = Duration::days(45);

/// This many failed runs in a row is critical.
pub const FAILURES_IN_A_ROW: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Warning,
    Critical,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    /// Stable name: `database`, `destination`, `data_loss`, `last_test_restore`, `duration`, `foreign_files`, `last_backup`, `last_run`,
    /// `verified`, `retention`, `scheduler`, `free_space`, `success_rate`, `email`.
    pub name: &'static str,
    pub status: Status,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// Backup runs started in the last 30 days (cancelled ones included).
    pub runs_30d: usize,
    /// Share of the last 30 days' runs that made a complete backup (cancelled ones not counted).
    pub success_rate_30d: Option<f64>,
    /// Mean time between the complete backups of the last 30 days, in hours.
    pub average_interval_hours: Option<f64>,
    /// Sizes of the last (up to) 10 complete backups, oldest first.
    pub size_trend: Vec<u64>,
    /// How long each of the last (up to) 10 complete backups took, in seconds, oldest first.
    pub duration_trend: Vec<f64>,
    /// When the newest complete backup was made (history or destination, whichever is newer).
    pub last_good_backup: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Health {
    pub status: Status,
    pub checks: Vec<Check>,
    pub metrics: Metrics,
}

/// Why the destination cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestinationProblem {
    /// The sign-in is gone (revoked or expired): the user must connect again. Critical.
    ReconnectNeeded(String),
    /// Could not be reached just now (offline, server error). Warning.
    Unreachable(String),
}

/// What the caller observed. Leave out what it does not know.
#[derive(Clone, Debug, Default)]
pub struct Observations<'a> {
    /// Whether the database answered a ping.
    pub database: Option<Result<(), String>>,
    /// Whether the destination (Google Drive or folder) is usable.
    pub destination: Option<Result<(), DestinationProblem>>,
    /// Free and total bytes at the destination.
    pub free_space: Option<(u64, u64)>,
    /// When the scheduler last ticked.
    pub scheduler_heartbeat: Option<DateTime<Utc>>,
    /// The backups at the destination (as `RemoteStore::list` gives them).
    pub backups: Option<&'a [StoredBackup]>,
    /// Files at the destination that look like backups but are not the user's own.
    pub ignored: &'a [crate::authenticity::Ignored],
    /// Data-loss alarms not acknowledged yet.
    pub alarms: &'a [crate::alarms::Alarm],
}

/// "12.0 KB → 14.1 KB, 30 s → 3 min over the last 10 backups": how the size and the time of
/// the last good backups went; `None` with fewer than two.
pub fn trend_text(m: &Metrics) -> Option<String> {
    let n = m.size_trend.len().max(m.duration_trend.len());
    if n < 2 {
        return None;
    }
    let secs = |s: f64| {
        if s < 60.0 {
            format!("{} s", s.round().max(1.0))
        } else {
            format!("{} min", (s / 60.0).round())
        }
    };
    let mut parts = Vec::new();
    if let (Some(a), Some(b)) = (m.size_trend.first(), m.size_trend.last()) {
        parts.push(format!("{} → {}", human_bytes(*a), human_bytes(*b)));
    }
    if let (Some(a), Some(b)) = (m.duration_trend.first(), m.duration_trend.last()) {
        parts.push(format!("{} → {}", secs(*a), secs(*b)));
    }
    Some(format!("{} over the last {n} backups", parts.join(", ")))
}

/// "41,230": a count with thousands separators.
pub fn human_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "3 hours", "2 days", "40 minutes".
pub fn human_duration(d: Duration) -> String {
    let mins = d.num_minutes().max(0);
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if mins < 1 {
        "less than a minute".into()
    } else if mins < 120 {
        plural(mins, "minute")
    } else if mins < 48 * 60 {
        plural(mins / 60, "hour")
    } else {
        plural(mins / (24 * 60), "day")
    }
}

pub fn human_bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.0} kB", n / 1e3)
    } else {
        format!("{n} bytes")
    }
}

/// The longest time between two slots of a schedule; `None` when backups are only manual.
pub fn schedule_period(frequency: Frequency) -> Option<Duration> {
    match frequency {
        Frequency::Daily => Some(Duration::hours(24)),
        Frequency::Weekly => Some(Duration::days(7)),
        Frequency::Monthly => Some(Duration::days(31)),
        Frequency::Off => None,
    }
}

/// How old the newest complete backup may be before the status turns critical: the schedule's
/// period and 2 hours of slack (26 hours for a daily schedule).
pub fn max_backup_age(frequency: Frequency) -> Option<Duration> {
    schedule_period(frequency).map(|p| p + Duration::hours(2))
}

/// With backups only on demand, a warning once the newest is this old.
pub const MANUAL_BACKUP_AGE_WARNING: Duration = Duration::days(7);

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => {
            f.to_uppercase().chain(c).collect::<String>() + if s.ends_with('.') { "" } else { "." }
        }
        None => "The last email report could not be sent.".into(),
    }
}

fn check(name: &'static str, status: Status, message: impl Into<String>) -> Check {
    Check {
        name,
        status,
        message: message.into(),
    }
}

pub fn health<Tz: TimeZone>(
    records: &[RunRecord],
    settings: &Settings,
    obs: &Observations,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Health {
    let runs: Vec<&RunRecord> = records
        .iter()
        .filter(|r| r.kind == RunKind::Backup)
        .collect();
    let mut checks = Vec::new();

    if let Some(db) = &obs.database {
        checks.push(match db {
            Ok(()) => check("database", Status::Healthy, "The database answers."),
            Err(e) => check(
                "database",
                Status::Critical,
                format!("The database cannot be reached: {e}"),
            ),
        });
    }

    if let Some(dest) = &obs.destination {
        checks.push(match dest {
            Ok(()) => check(
                "destination",
                Status::Healthy,
                "The backup destination is connected.",
            ),
            Err(DestinationProblem::ReconnectNeeded(e)) => check(
                "destination",
                Status::Critical,
                format!("Google Drive needs reconnecting: {e}"),
            ),
            Err(DestinationProblem::Unreachable(e)) => check(
                "destination",
                Status::Warning,
                format!("The backup destination cannot be reached right now: {e}"),
            ),
        });
    }

    for a in obs.alarms {
        checks.push(check(
            "data_loss",
            Status::Warning,
            format!(
                "Data went missing from {} on {}: {}. The backup before it is kept until you \
                 acknowledge this.",
                a.database,
                a.raised.format("%Y-%m-%d"),
                a.warnings
                    .iter()
                    .map(|w| w.describe())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ));
    }

    if let Some(v) = records
        .iter()
        .rev()
        .find(|r| matches!(r.kind, RunKind::Audit | RunKind::Verify))
        .filter(|r| r.kind == RunKind::Verify && r.outcome != Outcome::Success)
    {
        if v.error.as_ref().map(|e| e.code.as_str()) != Some(crate::audit::SKIPPED_CODE) {
            checks.push(check(
                "last_verify",
                Status::Critical,
                format!(
                    "The scheduled check of the newest backup ({} ago) failed: {}",
                    human_duration(now - v.ended),
                    v.error.as_ref().map(|e| e.message.as_str()).unwrap_or("")
                ),
            ));
        }
    }
    if let Some(a) = records.iter().rev().find(|r| r.kind == RunKind::Audit) {
        let ago = human_duration(now - a.ended);
        let why = a.error.as_ref().map(|e| e.message.as_str()).unwrap_or("");
        checks.push(
            match (a.outcome, a.error.as_ref().map(|e| e.code.as_str())) {
                (crate::history::Outcome::Success, _) if now - a.ended > AUDIT_STALE => check(
                    "last_test_restore",
                    Status::Warning,
                    format!("The last restore test passed, {ago} ago: test a newer backup."),
                ),
                (crate::history::Outcome::Success, _) => check(
                    "last_test_restore",
                    Status::Healthy,
                    format!("Last restore test: {ago} ago, passed."),
                ),
                (_, Some(crate::audit::SKIPPED_CODE)) => check(
                    "last_test_restore",
                    Status::Warning,
                    format!("The last restore test ({ago} ago) could not run: {why}"),
                ),
                _ => check(
                    "last_test_restore",
                    Status::Critical,
                    format!("The last restore test ({ago} ago) failed: {why}"),
                ),
            },
        );
    }

    if let Some(first) = obs.ignored.first() {
        let others = match obs.ignored.len() - 1 {
            0 => String::new(),
            1 => " and 1 other file".to_string(),
            n => format!(" and {n} other files"),
        };
        checks.push(check(
            "foreign_files",
            Status::Warning,
            format!(
                "{}{others} at the backup destination {} not your backups ({}): Driveback ignores \
                 them. Someone else may be able to write there; see SECURITY.md.",
                first.file,
                if obs.ignored.len() == 1 { "is" } else { "are" },
                first.reason
            ),
        ));
    }

    // The newest complete backup: from this device's history or from the destination.
    let from_history = history::last_success(records).map(|r| r.ended);
    let from_dest = obs.backups.and_then(|bs| {
        bs.iter()
            .filter(|b| b.status == BackupStatus::Complete)
            .map(|b| b.created)
            .max()
    });
    let last_good = from_history.max(from_dest);
    checks.push(
        match (last_good, max_backup_age(settings.schedule.frequency)) {
            (None, _) => check(
                "last_backup",
                Status::Critical,
                "There is no complete backup yet.",
            ),
            (Some(t), limit) => {
                let age = now - t;
                let text = format!("The newest complete backup is {} old.", human_duration(age));
                match limit {
                    Some(limit) if age > limit => check(
                        "last_backup",
                        Status::Critical,
                        format!(
                            "{text} With a {} schedule it should be less than {}.",
                            settings.schedule.frequency,
                            human_duration(limit)
                        ),
                    ),
                    None if age > MANUAL_BACKUP_AGE_WARNING => check(
                        "last_backup",
                        Status::Warning,
                        format!("{text} Automatic backups are off: tap Back up, or turn them on."),
                    ),
                    _ => check("last_backup", Status::Healthy, text),
                }
            }
        },
    );

    if let Some(last) = runs.last() {
        let failed_in_a_row = runs
            .iter()
            .rev()
            .take_while(|r| r.outcome == Outcome::Failed)
            .count();
        let error = last
            .error
            .as_ref()
            .map(|e| e.message.clone())
            .unwrap_or_default();
        checks.push(match last.outcome {
            Outcome::Success => check("last_run", Status::Healthy, "The last backup succeeded."),
            Outcome::Failed if failed_in_a_row >= FAILURES_IN_A_ROW => check(
                "last_run",
                Status::Critical,
                format!("The last {failed_in_a_row} backups failed. The last error: {error}"),
            ),
            Outcome::Failed => check(
                "last_run",
                Status::Warning,
                format!("The last backup failed: {error}"),
            ),
            Outcome::Partial => check(
                "last_run",
                Status::Warning,
                if error.is_empty() {
                    "The last backup is partial: some collections are missing from it.".into()
                } else {
                    format!("The last backup is partial: {error}")
                },
            ),
            Outcome::Cancelled => check(
                "last_run",
                Status::Warning,
                "The last backup was cancelled; it runs again at the next scheduled time.",
            ),
        });
    }

    if let Some(good) = history::last_success(records) {
        match good.verified {
            Some(true) => checks.push(check(
                "verified",
                Status::Healthy,
                "The destination confirmed the newest backup's checksum.",
            )),
            Some(false) => checks.push(check(
                "verified",
                Status::Critical,
                "The newest backup failed its check: it may not restore.",
            )),
            None => {}
        }
    }

    if let Some(backups) = obs.backups {
        let plan = retention::plan(backups, &settings.retention, now, tz);
        let waiting = plan.iter().filter(|d| !d.keep).count();
        checks.push(if waiting == 0 {
            check(
                "retention",
                Status::Healthy,
                format!(
                    "The destination holds what the policy keeps ({} backups).",
                    plan.len()
                ),
            )
        } else {
            check(
                "retention",
                Status::Warning,
                format!(
                    "{waiting} old backup{} the policy does not keep {} still at the destination.",
                    if waiting == 1 { "" } else { "s" },
                    if waiting == 1 { "is" } else { "are" }
                ),
            )
        });
    }

    let paused = settings
        .schedule
        .paused_until
        .filter(|until| *until > now && settings.schedule.frequency != Frequency::Off);
    if let Some(until) = paused {
        // A pause the user chose is a warning; with the newest backup stale as well, critical.
        let stale = crate::glance::level(settings.schedule.frequency, last_good, now)
            == crate::glance::Level::Stale;
        checks.push(check(
            "scheduler",
            if stale {
                Status::Critical
            } else {
                Status::Warning
            },
            format!(
                "Automatic backups are paused until {}; Back up still works.",
                crate::glance::when(until, now, tz)
            ),
        ));
    } else if settings.schedule.frequency == Frequency::Off {
        checks.push(check(
            "scheduler",
            Status::Healthy,
            "Automatic backups are off: backups run when you tap Back up.",
        ));
    } else if let Some(beat) = obs.scheduler_heartbeat {
        let since = now - beat;
        checks.push(if since > SCHEDULER_STALE {
            check(
                "scheduler",
                Status::Warning,
                format!(
                    "Automatic backups are not running (last seen {} ago): keep Driveback open, or run `driveback daemon`.",
                    human_duration(since)
                ),
            )
        } else {
            check(
                "scheduler",
                Status::Healthy,
                "Automatic backups are running.",
            )
        });
    }

    if let Some((free, total)) = obs.free_space {
        // The size of the newest complete backup: from the history, or else the destination.
        let last_size = history::last_success(records)
            .and_then(|r| r.bytes)
            .or_else(|| {
                obs.backups?
                    .iter()
                    .filter(|b| b.status == BackupStatus::Complete)
                    .max_by_key(|b| b.created)
                    .map(|b| b.bytes)
            });
        let share = if total == 0 {
            0.0
        } else {
            free as f64 / total as f64
        };
        checks.push(match last_size {
            Some(size) if free < size => check(
                "free_space",
                Status::Critical,
                format!(
                    "The next backup will not fit: {} free, the last backup took {}.",
                    human_bytes(free),
                    human_bytes(size)
                ),
            ),
            _ if share < CRITICAL_FREE_SPACE => check(
                "free_space",
                Status::Critical,
                format!(
                    "The destination is almost full: only {:.1}% of its space is free ({}).",
                    share * 100.0,
                    human_bytes(free)
                ),
            ),
            _ if share < LOW_FREE_SPACE => check(
                "free_space",
                Status::Warning,
                format!(
                    "Only {:.0}% of the destination's space is free ({}).",
                    share * 100.0,
                    human_bytes(free)
                ),
            ),
            _ => check(
                "free_space",
                Status::Healthy,
                format!(
                    "{:.0}% of the destination's space is free ({}).",
                    share * 100.0,
                    human_bytes(free)
                ),
            ),
        });
    }

    let month_ago = now - Duration::days(30);
    let recent: Vec<&RunRecord> = runs
        .iter()
        .copied()
        .filter(|r| r.started >= month_ago)
        .collect();
    let counted: Vec<&&RunRecord> = recent
        .iter()
        .filter(|r| r.outcome != Outcome::Cancelled)
        .collect();
    // The newest email report (per-run report or weekly summary), when email is used.
    if let Some(mail) = records
        .iter()
        .rev()
        .find(|r| matches!(r.kind, RunKind::Email | RunKind::EmailSummary))
    {
        let why = mail
            .error
            .as_ref()
            .map(|e| e.message.as_str())
            .unwrap_or("");
        checks.push(match mail.outcome {
            Outcome::Success => check("email", Status::Healthy, "The last email report was sent."),
            Outcome::Partial => check(
                "email",
                Status::Warning,
                format!(
                    "The last email report was sent, but {}",
                    why.trim_start_matches("the report was emailed ")
                ),
            ),
            _ => check(
                "email",
                Status::Warning,
                format!(
                    "{} Check the email settings and run `driveback test-email`.",
                    capitalise(why)
                ),
            ),
        });
    }

    let rate = history::success_rate(records, month_ago);
    if let Some(rate) = rate {
        let good = counted.iter().filter(|r| r.is_good()).count();
        let text = format!(
            "{good} of {} backups in the last 30 days succeeded.",
            counted.len()
        );
        checks.push(
            if counted.len() >= MIN_RUNS_FOR_RATE && rate < LOW_SUCCESS_RATE {
                check("success_rate", Status::Warning, format!("Only {text}"))
            } else {
                check("success_rate", Status::Healthy, text)
            },
        );
    }

    let goods: Vec<&RunRecord> = runs.iter().copied().filter(|r| r.is_good()).collect();
    let recent_goods: Vec<DateTime<Utc>> = goods
        .iter()
        .filter(|r| r.started >= month_ago)
        .map(|r| r.ended)
        .collect();
    let average_interval_hours = (recent_goods.len() >= 2).then(|| {
        let span = *recent_goods.last().expect("two or more") - recent_goods[0];
        span.num_seconds() as f64 / 3600.0 / (recent_goods.len() - 1) as f64
    });
    let duration_trend: Vec<f64> = goods
        .iter()
        .rev()
        .take(10)
        .rev()
        .map(|r| (r.ended - r.started).num_milliseconds().max(0) as f64 / 1000.0)
        .collect();
    if let Some((last, before)) = duration_trend.split_last() {
        if before.len() >= 3 {
            let mut sorted = before.to_vec();
            sorted.sort_by(|a, b| a.total_cmp(b));
            let median = sorted[sorted.len() / 2];
            // Seconds are noise for small databases: a minute at least before it is news.
            if *last > 2.0 * median && *last - median >= 60.0 {
                checks.push(check(
                    "duration",
                    Status::Warning,
                    format!(
                        "The last backup took {}, more than twice the usual {} (the median of the \
                         ones before): the database grew, or the server or the network is slow.",
                        human_duration(Duration::seconds(*last as i64)),
                        human_duration(Duration::seconds(median as i64))
                    ),
                ));
            }
        }
    }
    let metrics = Metrics {
        runs_30d: recent.len(),
        success_rate_30d: rate,
        average_interval_hours,
        size_trend: goods
            .iter()
            .rev()
            .take(10)
            .rev()
            .filter_map(|r| r.bytes)
            .collect(),
        duration_trend,
        last_good_backup: last_good,
        last_error: runs
            .iter()
            .rev()
            .find_map(|r| r.error.as_ref().map(|e| e.message.clone())),
    };

    Health {
        status: checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Healthy),
        checks,
        metrics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::tests::record;
    use crate::history::RunError;
    use crate::schedule::testzone::utc;
    use crate::settings::RetentionPolicy;

    fn settings(frequency: Frequency) -> Settings {
        let mut s = Settings::default();
        s.schedule.frequency = frequency;
        s
    }

    /// Runs on consecutive days from 2024-01-01 02:00, each lasting 3 minutes.
    fn runs(outcomes: &[Outcome]) -> Vec<RunRecord> {
        outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| record(i as i64, *o))
            .collect()
    }

    fn status_of(h: &Health, name: &str) -> Option<(Status, String)> {
        h.checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| (c.status, c.message.clone()))
    }

    use Outcome::*;

    #[test]
    fn status_tables() {
        let s_daily = settings(Frequency::Daily);
        // The last run (index n-1) started 2024-01-01 + (n-1) days at 02:00 and ended 3 min later.
        let cases: &[(&str, Vec<Outcome>, &Settings, &str, Status)] = &[
            (
                "all good, 1 hour after the last",
                vec![Success, Success, Success],
                &s_daily,
                "2024-01-03 03:03",
                Status::Healthy,
            ),
            (
                "just under 26 hours",
                vec![Success],
                &s_daily,
                "2024-01-02 04:02",
                Status::Healthy,
            ),
            (
                "over 26 hours: critical",
                vec![Success],
                &s_daily,
                "2024-01-02 04:04",
                Status::Critical,
            ),
            (
                "the last run failed: warning",
                vec![Success, Failed],
                &s_daily,
                "2024-01-02 03:00",
                Status::Warning,
            ),
            (
                "the last run was partial: warning",
                vec![Success, Partial],
                &s_daily,
                "2024-01-02 03:00",
                Status::Warning,
            ),
            (
                "the last run was cancelled: warning",
                vec![Success, Cancelled],
                &s_daily,
                "2024-01-02 03:00",
                Status::Warning,
            ),
            (
                "three failures in a row: critical",
                vec![Success, Success, Success, Failed, Failed, Failed],
                &s_daily,
                "2024-01-04 03:00",
                Status::Critical,
            ),
            (
                "never a backup: critical",
                vec![],
                &s_daily,
                "2024-01-01 00:00",
                Status::Critical,
            ),
            (
                "only failures: critical",
                vec![Failed],
                &s_daily,
                "2024-01-01 03:00",
                Status::Critical,
            ),
            (
                "weekly, 6 days old: healthy",
                vec![Success],
                &settings(Frequency::Weekly),
                "2024-01-07 02:00",
                Status::Healthy,
            ),
            (
                "weekly, 8 days old: critical",
                vec![Success],
                &settings(Frequency::Weekly),
                "2024-01-09 02:00",
                Status::Critical,
            ),
            (
                "monthly, 30 days old: healthy",
                vec![Success],
                &settings(Frequency::Monthly),
                "2024-01-31 02:00",
                Status::Healthy,
            ),
            (
                "monthly, 32 days old: critical",
                vec![Success],
                &settings(Frequency::Monthly),
                "2024-02-02 02:00",
                Status::Critical,
            ),
            (
                "manual only, 5 days old: healthy",
                vec![Success],
                &settings(Frequency::Off),
                "2024-01-06 02:00",
                Status::Healthy,
            ),
            (
                "manual only, 8 days old: warning",
                vec![Success],
                &settings(Frequency::Off),
                "2024-01-09 02:00",
                Status::Warning,
            ),
        ];
        for (name, outcomes, s, now, want) in cases {
            let h = health(&runs(outcomes), s, &Observations::default(), utc(now), &Utc);
            assert_eq!(h.status, *want, "{name}: {:#?}", h.checks);
        }
    }

    #[test]
    fn messages_in_plain_words() {
        let s = settings(Frequency::Daily);
        let h = health(
            &runs(&[Success]),
            &s,
            &Observations::default(),
            utc("2024-01-02 05:03"),
            &Utc,
        );
        assert_eq!(
            status_of(&h, "last_backup").unwrap(),
            (Status::Critical, "The newest complete backup is 27 hours old. With a daily schedule it should be less than 26 hours.".into())
        );
        let mut r = runs(&[Success, Failed, Failed, Failed, Failed]);
        r[4].error = Some(RunError {
            code: "database_unreachable".into(),
            message: "could not connect to db:27017".into(),
        });
        let h = health(
            &r,
            &s,
            &Observations::default(),
            utc("2024-01-05 03:00"),
            &Utc,
        );
        assert_eq!(
            status_of(&h, "last_run").unwrap(),
            (
                Status::Critical,
                "The last 4 backups failed. The last error: could not connect to db:27017".into()
            )
        );
        assert_eq!(
            status_of(&h, "success_rate").unwrap(),
            (
                Status::Warning,
                "Only 1 of 5 backups in the last 30 days succeeded.".into()
            )
        );
        assert_eq!(
            h.metrics.last_error.as_deref(),
            Some("could not connect to db:27017")
        );
        assert_eq!(h.metrics.success_rate_30d, Some(0.2));
        // Too few runs to judge a rate: 1 of 3 is no warning by itself.
        let h = health(
            &runs(&[Success, Failed, Success]),
            &s,
            &Observations::default(),
            utc("2024-01-03 03:00"),
            &Utc,
        );
        assert_eq!(
            status_of(&h, "success_rate").unwrap(),
            (
                Status::Healthy,
                "2 of 3 backups in the last 30 days succeeded.".into()
            )
        );
    }

    #[test]
    fn observations_from_the_caller() {
        let s = settings(Frequency::Daily);
        let mut r = runs(&[Success]);
        r[0].bytes = Some(5_000_000);
        r[0].verified = Some(true);
        let now = utc("2024-01-01 04:00");
        let base = health(&r, &s, &Observations::default(), now, &Utc);
        assert_eq!(base.status, Status::Healthy);
        assert_eq!(
            base.checks.iter().map(|c| c.name).collect::<Vec<_>>(),
            ["last_backup", "last_run", "verified", "success_rate"]
        );
        let forged = [crate::authenticity::Ignored {
            file: "driveback-shop-20260301T020000Z-0000000f.mdbk".into(),
            id: "0000000f".into(),
            reason: "it is not signed by your backup key".into(),
        }];
        let loss = [crate::alarms::Alarm {
            raised: now,
            dest: "drive:appdata".into(),
            database: "shop".into(),
            backup_id: "0000000b".into(),
            protected_id: "0000000a".into(),
            warnings: vec![crate::alarms::DataWarning {
                code: "documents_dropped".into(),
                collection: "orders".into(),
                before: 100,
                after: 60,
            }],
        }];
        let cases: Vec<(&str, Observations, &str, Status)> = vec![
            (
                "an alarm on data loss",
                Observations {
                    alarms: &loss,
                    ..Default::default()
                },
                "data_loss",
                Status::Warning,
            ),
            (
                "a file that is not the user's backup",
                Observations {
                    ignored: &forged,
                    ..Default::default()
                },
                "foreign_files",
                Status::Warning,
            ),
            (
                "database down",
                Observations {
                    database: Some(Err("connection refused".into())),
                    ..Default::default()
                },
                "database",
                Status::Critical,
            ),
            (
                "database up",
                Observations {
                    database: Some(Ok(())),
                    ..Default::default()
                },
                "database",
                Status::Healthy,
            ),
            (
                "drive revoked",
                Observations {
                    destination: Some(Err(DestinationProblem::ReconnectNeeded(
                        "the sign-in was revoked".into(),
                    ))),
                    ..Default::default()
                },
                "destination",
                Status::Critical,
            ),
            (
                "drive offline",
                Observations {
                    destination: Some(Err(DestinationProblem::Unreachable("no network".into()))),
                    ..Default::default()
                },
                "destination",
                Status::Warning,
            ),
            (
                "drive connected",
                Observations {
                    destination: Some(Ok(())),
                    ..Default::default()
                },
                "destination",
                Status::Healthy,
            ),
            (
                "9% free",
                Observations {
                    free_space: Some((9_000_000, 100_000_000)),
                    ..Default::default()
                },
                "free_space",
                Status::Warning,
            ),
            (
                "1.5% free (still more than a backup)",
                Observations {
                    free_space: Some((15_000_000, 1_000_000_000)),
                    ..Default::default()
                },
                "free_space",
                Status::Critical,
            ),
            (
                "2.5% free",
                Observations {
                    free_space: Some((25_000_000, 1_000_000_000)),
                    ..Default::default()
                },
                "free_space",
                Status::Warning,
            ),
            (
                "50% free",
                Observations {
                    free_space: Some((50_000_000, 100_000_000)),
                    ..Default::default()
                },
                "free_space",
                Status::Healthy,
            ),
            (
                "less than a backup free",
                Observations {
                    free_space: Some((4_000_000, 10_000_000)),
                    ..Default::default()
                },
                "free_space",
                Status::Critical,
            ),
            (
                "scheduler ticking",
                Observations {
                    scheduler_heartbeat: Some(now - Duration::seconds(30)),
                    ..Default::default()
                },
                "scheduler",
                Status::Healthy,
            ),
            (
                "scheduler stopped",
                Observations {
                    scheduler_heartbeat: Some(now - Duration::minutes(20)),
                    ..Default::default()
                },
                "scheduler",
                Status::Warning,
            ),
        ];
        for (name, obs, check_name, want) in cases {
            let h = health(&r, &s, &obs, now, &Utc);
            assert_eq!(status_of(&h, check_name).map(|c| c.0), Some(want), "{name}");
            assert_eq!(h.status, want.max(Status::Healthy), "{name}");
        }
        let h = health(
            &r,
            &s,
            &Observations {
                free_space: Some((4_000_000, 10_000_000)),
                ..Default::default()
            },
            now,
            &Utc,
        );
        assert_eq!(
            status_of(&h, "free_space").unwrap().1,
            "The next backup will not fit: 4.0 MB free, the last backup took 5.0 MB."
        );
        r[0].verified = Some(false);
        assert_eq!(
            health(&r, &s, &Observations::default(), now, &Utc).status,
            Status::Critical
        );
    }

    #[test]
    fn paused_automatic_backups_are_a_warning_unless_the_backup_is_stale() {
        use crate::schedule::testzone::utc;
        // One backup, ended 2024-01-01 02:03; daily at 02:00.
        let r = runs(&[Success]);
        let paused = |until: &str| {
            let mut s = settings(Frequency::Daily);
            s.schedule.paused_until = Some(utc(until));
            s
        };
        let beat = |now| Observations {
            scheduler_heartbeat: Some(now),
            ..Default::default()
        };
        let cases: &[(&str, Settings, &str, Status, &str)] = &[
            (
                "paused, the backup fresh: a warning",
                paused("2024-01-02 09:00"),
                "2024-01-01 22:00",
                Status::Warning,
                "Automatic backups are paused until tomorrow 09:00; Back up still works.",
            ),
            (
                "paused, the backup stale: critical",
                paused("2024-01-03 09:00"),
                "2024-01-02 09:00",
                Status::Critical,
                "Automatic backups are paused until tomorrow 09:00; Back up still works.",
            ),
            (
                "a pause that ended: running as usual",
                paused("2024-01-01 09:00"),
                "2024-01-01 22:00",
                Status::Healthy,
                "Automatic backups are running.",
            ),
        ];
        for (name, s, now, want, text) in cases {
            let now = utc(now);
            let h = health(&r, s, &beat(now), now, &Utc);
            assert_eq!(
                status_of(&h, "scheduler"),
                Some((*want, text.to_string())),
                "{name}"
            );
        }
    }

    #[test]
    fn retention_and_backups_at_the_destination() {
        let s = settings(Frequency::Daily);
        let b = |id: &str, t: &str, status| StoredBackup {
            id: id.into(),
            file: crate::manifest::backup_file_name("shop", utc(t), id),
            bytes: 10,
            created: utc(t),
            database: "shop".into(),
            documents: 1,
            status,
            sha256: String::new(),
            signature: None,
            link: None,
        };
        // 1 to 10 March, and one from January.
        let mut backups: Vec<StoredBackup> = (1..=10)
            .rev()
            .map(|d| {
                b(
                    &format!("{d:08x}"),
                    &format!("2024-03-{d:02} 02:00"),
                    BackupStatus::Complete,
                )
            })
            .collect();
        backups.push(b("0000000f", "2024-01-09 02:00", BackupStatus::Complete));
        let obs = Observations {
            backups: Some(&backups),
            ..Default::default()
        };
        // No history on this device, but a good backup at the destination from another one.
        let h = health(&[], &s, &obs, utc("2024-03-10 12:00"), &Utc);
        assert_eq!(
            status_of(&h, "last_backup").unwrap(),
            (
                Status::Healthy,
                "The newest complete backup is 10 hours old.".into()
            )
        );
        // Kept: 4 to 10 March (daily) and 1 March (monthly); 2 and 3 March and January are not.
        assert_eq!(
            status_of(&h, "retention").unwrap(),
            (
                Status::Warning,
                "3 old backups the policy does not keep are still at the destination.".into()
            )
        );
        let s2 = Settings {
            retention: RetentionPolicy {
                daily: 10,
                weekly: 0,
                monthly: 2,
                keep_last: 1,
            },
            ..s.clone()
        };
        let h = health(&[], &s2, &obs, utc("2024-03-10 12:00"), &Utc);
        assert_eq!(
            status_of(&h, "retention").unwrap(),
            (
                Status::Healthy,
                "The destination holds what the policy keeps (11 backups).".into()
            )
        );
        assert_eq!(h.status, Status::Healthy);
    }

    #[test]
    fn a_backup_twice_as_slow_as_usual_is_a_warning() {
        // (case, seconds each good run took (oldest first), warned)
        let rows: [(&str, &[i64], bool); 5] = [
            ("steady", &[600, 660, 540, 600, 720], false),
            ("twice the median", &[600, 660, 540, 600, 1500], true),
            ("just under twice", &[600, 660, 540, 600, 1140], false),
            ("too few to judge", &[600, 600, 1800], false),
            ("seconds are noise", &[10, 10, 10, 10, 40], false),
        ];
        for (case, seconds, warned) in rows {
            let mut r = runs(&vec![Success; seconds.len()]);
            for (rec, x) in r.iter_mut().zip(seconds) {
                rec.ended = rec.started + Duration::seconds(*x);
            }
            let now = r.last().unwrap().ended + Duration::minutes(5);
            let h = health(
                &r,
                &settings(Frequency::Daily),
                &Observations::default(),
                now,
                &Utc,
            );
            assert_eq!(
                status_of(&h, "duration").is_some(),
                warned,
                "{case}: {:?}",
                h.checks
            );
            assert_eq!(h.metrics.duration_trend.len(), seconds.len(), "{case}");
        }
    }

    #[test]
    fn metrics() {
        let mut r = runs(&[Success, Success, Failed, Success, Cancelled, Success]);
        for (i, rec) in r.iter_mut().enumerate() {
            rec.bytes = Some(100 * (i as u64 + 1));
        }
        let h = health(
            &r,
            &settings(Frequency::Daily),
            &Observations::default(),
            utc("2024-01-06 03:00"),
            &Utc,
        );
        assert_eq!(h.metrics.runs_30d, 6);
        assert_eq!(h.metrics.success_rate_30d, Some(0.8));
        // Good runs on days 0, 1, 3 and 5: 5 days over 3 intervals.
        assert_eq!(h.metrics.average_interval_hours, Some(40.0));
        assert_eq!(h.metrics.size_trend, vec![100, 200, 400, 600]);
        assert_eq!(
            trend_text(&h.metrics).unwrap(),
            "100 bytes → 600 bytes, 3 min → 3 min over the last 4 backups"
        );
        assert_eq!(h.metrics.last_good_backup, Some(utc("2024-01-06 02:03")));
        assert_eq!(human_duration(Duration::seconds(20)), "less than a minute");
        assert_eq!(human_duration(Duration::minutes(1)), "1 minute");
        assert_eq!(human_duration(Duration::minutes(119)), "119 minutes");
        assert_eq!(human_duration(Duration::hours(47)), "47 hours");
        assert_eq!(human_duration(Duration::hours(49)), "2 days");
    }
}
