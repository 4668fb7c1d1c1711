//! Desktop notifications: what the engine reports (a backup failed, a restore finished, ...) and
//! what the app's health watch notices (Google Drive needs reconnecting, Drive almost full, no
//! good backup for too long), in a few plain words with what to do.
//!
//! The words are chosen by pure functions ([`desktop_text`], [`alerts`]); a [`Toaster`] shows
//! them (the notification plugin in the app, a recorder in tests).

use std::collections::BTreeSet;
use std::sync::{Mutex, Weak};

use chrono::{DateTime, Utc};
use driveback_engine::health::DestinationProblem;
use driveback_engine::health::{human_bytes, human_duration, Status};
use driveback_engine::history::Outcome;
use driveback_engine::notify::{Event, Notifier};
use driveback_engine::settings::NotifySettings;
use driveback_engine::status::{DestinationSeen, Report};

use crate::state::AppState;

/// Shows a desktop notification. Must not block for long or panic.
pub trait Toaster: Send + Sync {
    fn show(&self, title: &str, body: &str);
}

/// The title and body of the desktop notification for `event`, or `None` when the user does not
/// want one (a success, unless asked for).
pub fn desktop_text(
    event: &Event,
    notify: &NotifySettings,
    now: DateTime<Utc>,
) -> Option<(String, String)> {
    match event {
        Event::BackupSucceeded { record, .. } => notify.desktop_on_success.then(|| {
            (
                "Backup complete".to_string(),
                format!(
                    "{}: {} documents, {}.",
                    record.database.as_deref().unwrap_or("your database"),
                    record.documents.unwrap_or(0),
                    human_bytes(record.bytes.unwrap_or(0))
                ),
            )
        }),
        Event::BackupFailed { record, last_good } => {
            let (code, message) = record
                .error
                .as_ref()
                .map(|e| (e.code.as_str(), e.message.as_str()))
                .unwrap_or(("", "the backup did not finish"));
            let title = if record.outcome == Outcome::Partial {
                "Backup incomplete"
            } else {
                "Backup failed"
            };
            let since = match last_good {
                Some(t) => format!(" Your last good backup is from {} ago.", human_duration(now - *t)),
                None => " There is no good backup yet.".to_string(),
            };
            Some((
                title.to_string(),
                format!("{}.{since} {}", capitalise(message.trim_end_matches('.')), what_to_do(code)),
            ))
        }
        Event::RestoreFinished {
            database,
            backup_id,
            ok,
            message,
        } => Some(if *ok {
            (
                "Restore complete".to_string(),
                format!("{database} was restored from backup {backup_id}."),
            )
        } else {
            (
                "Restore failed".to_string(),
                format!(
                    "{}. Your data was left as it was.",
                    capitalise(message.trim_end_matches('.'))
                ),
            )
        }),
        Event::ReconnectNeeded { message } => Some((
            "Google Drive needs reconnecting".to_string(),
            format!(
                "{}. Open Driveback and connect Google Drive again so that backups go on.",
                capitalise(message.trim_end_matches('.'))
            ),
        )),
        Event::DestinationAlmostFull {
            free_bytes,
            total_bytes,
        } => Some((
            "Google Drive is almost full".to_string(),
            format!(
                "{} free of {}. Free up space so that the next backups fit.",
                human_bytes(*free_bytes),
                human_bytes(*total_bytes)
            ),
        )),
        Event::NoRecentBackup { last_good } => Some((
            "No recent backup".to_string(),
            match last_good {
                Some(t) => format!(
                    "The last good backup is from {} ago. Open Driveback to see why backups stopped.",
                    human_duration(now - *t)
                ),
                None => "There is no good backup yet. Open Driveback and tap Back up.".to_string(),
            },
        )),
    }
}

/// What the user can do about a failed backup, by its error code.
fn what_to_do(code: &str) -> &'static str {
    match code {
        "reconnect_needed" | "not_connected" => "Open Driveback and connect Google Drive again.",
        "destination_full" => {
            "Free up space where backups go; Driveback tries again at the next backup time."
        }
        "database_unreachable" | "database_error" => {
            "Check that the database is running; Driveback tries again at the next backup time."
        }
        "no_key" | "not_configured" => "Open Driveback to finish setting up backups.",
        _ => "Driveback tries again at the next backup time; open it for the details.",
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The alerts the health watch raises from what it saw: Google Drive needs reconnecting, the
/// destination is almost full, no good backup for longer than the threshold.
pub fn alerts(seen: &DestinationSeen, report: &Report) -> Vec<Event> {
    let mut out = Vec::new();
    if let Some(Err(DestinationProblem::ReconnectNeeded(why))) = &seen.listed {
        out.push(Event::ReconnectNeeded {
            message: why.clone(),
        });
    }
    let check = |name: &str| report.health.checks.iter().find(|c| c.name == name);
    if let (Some(c), Some(q)) = (check("free_space"), &seen.quota) {
        if c.status != Status::Healthy {
            if let (Some(free), Some(total)) = (q.free(), q.limit) {
                out.push(Event::DestinationAlmostFull {
                    free_bytes: free,
                    total_bytes: total,
                });
            }
        }
    }
    if check("last_backup").is_some_and(|c| c.status == Status::Critical) {
        out.push(Event::NoRecentBackup {
            last_good: report.health.metrics.last_good_backup,
        });
    }
    out
}

/// Which alerts were shown, so that each is shown once while its cause lasts (and again if it
/// comes back after it cleared).
#[derive(Default)]
pub struct AlertMemory(Mutex<BTreeSet<&'static str>>);

impl AlertMemory {
    /// The alerts of `now_raised` that were not raised last time.
    pub fn fresh(&self, now_raised: Vec<Event>) -> Vec<Event> {
        let mut shown = self.0.lock().unwrap();
        let names: BTreeSet<&'static str> = now_raised.iter().map(Event::name).collect();
        let fresh = now_raised
            .into_iter()
            .filter(|e| !shown.contains(e.name()))
            .collect();
        *shown = names;
        fresh
    }
}

/// Shows the desktop notification for `event`, if the settings want one.
pub fn tell(state: &AppState, event: &Event) {
    if let Some(toaster) = state.toaster() {
        if let Some((title, body)) = desktop_text(event, &state.settings().notify, Utc::now()) {
            toaster.show(&title, &body);
        }
    }
}

/// The engine's notifier for the desktop: settings are read at each event.
pub struct DesktopNotifier {
    pub state: Weak<AppState>,
}

impl Notifier for DesktopNotifier {
    fn notify(&self, event: &Event) {
        if let Some(state) = self.state.upgrade() {
            tell(&state, event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use driveback_engine::history::{RunError, RunKind, RunRecord, Trigger};

    fn record(outcome: Outcome, error: Option<(&str, &str)>) -> RunRecord {
        let t: DateTime<Utc> = "2026-05-01T02:00:00Z".parse().unwrap();
        RunRecord {
            job_id: "j".into(),
            kind: RunKind::Backup,
            trigger: Trigger::Scheduled,
            started: t,
            ended: t,
            outcome,
            database: Some("shop".into()),
            dest: Some("drive".into()),
            backup_id: Some("0000000a".into()),
            bytes: Some(12_300_000),
            documents: Some(1234),
            verified: Some(true),
            pruned: None,
            error: error.map(|(code, message)| RunError {
                code: code.into(),
                message: message.into(),
            }),
        }
    }

    #[test]
    fn words_for_each_event() {
        let now: DateTime<Utc> = "2026-05-01T08:00:00Z".parse().unwrap();
        let quiet = NotifySettings::default();
        let chatty = NotifySettings {
            desktop_on_success: true,
            ..NotifySettings::default()
        };
        let ok = Event::BackupSucceeded {
            record: record(Outcome::Success, None),
            backup: None,
        };
        assert_eq!(
            desktop_text(&ok, &quiet, now),
            None,
            "success is off by default"
        );
        let (t, b) = desktop_text(&ok, &chatty, now).unwrap();
        assert_eq!(t, "Backup complete");
        assert!(b.starts_with("shop: 1234 documents, 12.3 MB"), "{b}");

        let failed = Event::BackupFailed {
            record: record(
                Outcome::Failed,
                Some((
                    "reconnect_needed",
                    "Google Drive needs reconnecting: the grant was revoked",
                )),
            ),
            last_good: Some("2026-04-30T02:00:00Z".parse().unwrap()),
        };
        let (t, b) = desktop_text(&failed, &quiet, now).unwrap();
        assert_eq!(t, "Backup failed");
        assert!(b.contains("the grant was revoked."), "{b}");
        assert!(b.contains("from 30 hours ago"), "{b}");
        assert!(b.ends_with("connect Google Drive again."), "{b}");

        let partial = Event::BackupFailed {
            record: record(
                Outcome::Partial,
                Some((
                    "partial_backup",
                    "some collections could not be backed up: a",
                )),
            ),
            last_good: None,
        };
        let (t, b) = desktop_text(&partial, &quiet, now).unwrap();
        assert_eq!(t, "Backup incomplete");
        assert!(
            b.starts_with(
                "Some collections could not be backed up: a. There is no good backup yet."
            ),
            "{b}"
        );

        let restore = Event::RestoreFinished {
            database: "shop".into(),
            backup_id: "0000000a".into(),
            ok: false,
            message: "the backup is damaged".into(),
        };
        assert_eq!(
            desktop_text(&restore, &quiet, now).unwrap(),
            (
                "Restore failed".to_string(),
                "The backup is damaged. Your data was left as it was.".to_string()
            )
        );
        let full = Event::DestinationAlmostFull {
            free_bytes: 500_000_000,
            total_bytes: 15_000_000_000,
        };
        assert!(desktop_text(&full, &quiet, now)
            .unwrap()
            .1
            .starts_with("500.0 MB free of 15.0 GB"));
    }

    #[test]
    fn an_alert_is_shown_once_while_it_lasts() {
        let m = AlertMemory::default();
        let reconnect = || Event::ReconnectNeeded {
            message: "revoked".into(),
        };
        let stale = || Event::NoRecentBackup { last_good: None };
        assert_eq!(m.fresh(vec![reconnect()]).len(), 1);
        assert_eq!(m.fresh(vec![reconnect()]).len(), 0);
        assert_eq!(m.fresh(vec![reconnect(), stale()]), vec![stale()]);
        assert_eq!(m.fresh(vec![]).len(), 0);
        assert_eq!(m.fresh(vec![reconnect()]).len(), 1, "it came back");
    }
}
