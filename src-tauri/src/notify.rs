//! Desktop notifications: what the engine reports (a backup failed, a restore finished, ...) and
//! what the app's health watch notices (Google Drive needs reconnecting, Drive almost full, no
//! good backup for too long), in a few plain words with what to do.
//!
//! The words are chosen by a pure function ([`desktop_text`]); the engine decides when (after a
//! run, a restore, or when its health watch raises an alert); a [`Toaster`] shows them (the
//! notification plugin in the app, a recorder in tests).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use driveback_engine::health::{human_bytes, human_duration};
use driveback_engine::history::Outcome;
use driveback_engine::notify::{Event, Notifier};
use driveback_engine::service::Service;
use driveback_engine::settings::NotifySettings;

/// Shows a desktop notification. Must not block for long or panic.
pub trait Toaster: Send + Sync {
    fn show(&self, title: &str, body: &str);
}

/// The title and body of the desktop notification for `event`, or `None` when the user does not
/// want one (a success, unless asked for).
pub fn desktop_text(
    event: &Event,
    notify: &NotifySettings,
    automatic: bool,
    now: DateTime<Utc>,
) -> Option<(String, String)> {
    match event {
        // Data that went missing is told whatever the settings.
        Event::BackupSucceeded { record, .. } if !record.warnings.is_empty() => Some((
            format!(
                "Data went missing from {}",
                record.database.as_deref().unwrap_or("your database")
            ),
            format!(
                "{}. The backup before it is kept until you acknowledge this in Health.",
                record
                    .warnings
                    .iter()
                    .map(|w| w.describe())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        )),
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
                format!("{}.{since} {}", capitalise(message.trim_end_matches('.')), what_to_do(code, automatic)),
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
        Event::TestRestoreFailed { record } => Some((
            "A restore test failed".to_string(),
            format!(
                "Backup {} of {} did not restore as it was made: {}. Make a new backup and test it again.",
                record.backup_id.as_deref().unwrap_or("?"),
                record.database.as_deref().unwrap_or("your database"),
                record
                    .error
                    .as_ref()
                    .map(|e| e.message.trim_end_matches('.'))
                    .unwrap_or("it did not pass")
            ),
        )),
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

/// What the user can do about a failed backup, by its error code; `automatic`: backups run on a
/// schedule, which tries a failure that may pass again within the hour.
fn what_to_do(code: &str, automatic: bool) -> &'static str {
    match (code, automatic) {
        ("reconnect_needed" | "not_connected", _) => {
            "Open Driveback and connect Google Drive again."
        }
        ("destination_full", true) => {
            "Free up space where backups go; Driveback tries again once there is room."
        }
        ("destination_full", false) => "Free up space where backups go, then tap Back up.",
        ("database_unreachable" | "database_error", true) => {
            "Check that the database is running; Driveback tries again within the hour."
        }
        ("database_unreachable" | "database_error", false) => {
            "Check that the database is running, then tap Back up."
        }
        ("no_key" | "not_configured", _) => "Open Driveback to finish setting up backups.",
        (_, true) => "Driveback tries again within the hour; open it for the details.",
        (_, false) => "Open Driveback for the details, then tap Back up.",
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The engine's notifier for the desktop: settings are read at each event.
pub struct DesktopNotifier {
    pub service: Service,
    pub toaster: Arc<dyn Toaster>,
}

impl Notifier for DesktopNotifier {
    fn notify(&self, event: &Event) {
        let settings = self.service.settings();
        let automatic = settings.schedule.frequency != driveback_engine::settings::Frequency::Off;
        if let Some((title, body)) =
            desktop_text(event, &settings.notify, automatic, self.service.now())
        {
            self.toaster.show(&title, &body);
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
            warnings: Vec::new(),
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
            desktop_text(&ok, &quiet, true, now),
            None,
            "success is off by default"
        );
        let (t, b) = desktop_text(&ok, &chatty, true, now).unwrap();
        assert_eq!(t, "Backup complete");
        assert!(b.starts_with("shop: 1234 documents, 12.3 MB"), "{b}");

        // Data that went missing is told even with success notifications off.
        let mut lossy = record(Outcome::Success, None);
        lossy.warnings = vec![driveback_engine::alarms::DataWarning {
            code: "documents_dropped".into(),
            collection: "timeEntries".into(),
            before: 41_230,
            after: 12_004,
        }];
        let loss = Event::BackupSucceeded {
            record: lossy,
            backup: None,
        };
        let (t, b) = desktop_text(&loss, &quiet, true, now).unwrap();
        assert_eq!(t, "Data went missing from shop");
        assert!(
            b.starts_with("timeEntries: 41,230 -> 12,004 documents."),
            "{b}"
        );

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
        let (t, b) = desktop_text(&failed, &quiet, true, now).unwrap();
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
        let (t, b) = desktop_text(&partial, &quiet, true, now).unwrap();
        assert_eq!(t, "Backup incomplete");
        assert!(
            b.starts_with(
                "Some collections could not be backed up: a. There is no good backup yet."
            ),
            "{b}"
        );

        // A failure that may pass: tried again within the hour, or by the user without a schedule.
        let down = Event::BackupFailed {
            record: record(
                Outcome::Failed,
                Some(("database_unreachable", "the database server is unreachable")),
            ),
            last_good: None,
        };
        let (_, b) = desktop_text(&down, &quiet, true, now).unwrap();
        assert!(b.ends_with("Driveback tries again within the hour."), "{b}");
        let (_, b) = desktop_text(&down, &quiet, false, now).unwrap();
        assert!(b.ends_with("then tap Back up."), "{b}");

        let restore = Event::RestoreFinished {
            database: "shop".into(),
            backup_id: "0000000a".into(),
            ok: false,
            message: "the backup is damaged".into(),
        };
        assert_eq!(
            desktop_text(&restore, &quiet, true, now).unwrap(),
            (
                "Restore failed".to_string(),
                "The backup is damaged. Your data was left as it was.".to_string()
            )
        );
        let full = Event::DestinationAlmostFull {
            free_bytes: 500_000_000,
            total_bytes: 15_000_000_000,
        };
        assert!(desktop_text(&full, &quiet, true, now)
            .unwrap()
            .1
            .starts_with("500.0 MB free of 15.0 GB"));
    }
}
