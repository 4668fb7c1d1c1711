//! Telling the user what matters without opening the app.
//!
//! The engine says *what* happened as an [`Event`]; a [`Notifier`] decides how to tell it. The
//! desktop app implements [`Notifier`] with system notifications; [`email::EmailNotifier`] sends
//! email reports over SMTP ([`mail::Mailer`]) in the background. [`crate::jobs::Jobs`] hands every
//! finished backup run to its notifiers, after the run is recorded: a notifier can neither fail nor
//! delay a backup, and `notify` must return quickly (do slow work on another thread).

pub mod email;
pub mod mail;
pub mod templates;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::history::{Outcome, RunRecord};
use crate::store::StoredBackup;

/// Something the user may want to hear about.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A complete backup was made (desktop: off by default; email: `notify.email_on_success`).
    BackupSucceeded {
        record: RunRecord,
        /// The backup as stored (for an emailed copy), when the job reported it.
        #[serde(skip_serializing_if = "Option::is_none")]
        backup: Option<StoredBackup>,
    },
    /// A backup run failed or made only a partial backup (always told).
    BackupFailed {
        record: RunRecord,
        /// When the newest complete backup was made, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        last_good: Option<DateTime<Utc>>,
    },
    /// A restore ended (`ok` false: it failed and live data was left as it was).
    RestoreFinished {
        database: String,
        backup_id: String,
        ok: bool,
        message: String,
    },
    /// A test restore found a backup that does not restore as it should (always told).
    TestRestoreFailed { record: RunRecord },
    /// Google Drive's sign-in is gone: the user must connect again.
    ReconnectNeeded { message: String },
    /// The destination is almost full.
    DestinationAlmostFull { free_bytes: u64, total_bytes: u64 },
    /// No complete backup for longer than the health threshold.
    NoRecentBackup {
        #[serde(skip_serializing_if = "Option::is_none")]
        last_good: Option<DateTime<Utc>>,
    },
}

impl Event {
    /// The event for a finished backup run; `None` for a cancelled one (the user asked for it).
    pub fn for_run(
        record: &RunRecord,
        backup: Option<StoredBackup>,
        last_good: Option<DateTime<Utc>>,
    ) -> Option<Event> {
        match record.outcome {
            Outcome::Success => Some(Event::BackupSucceeded {
                record: record.clone(),
                backup,
            }),
            Outcome::Failed | Outcome::Partial => Some(Event::BackupFailed {
                record: record.clone(),
                last_good,
            }),
            Outcome::Cancelled => None,
        }
    }

    /// A short stable name (`backup_succeeded`, ...), for settings and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Event::BackupSucceeded { .. } => "backup_succeeded",
            Event::BackupFailed { .. } => "backup_failed",
            Event::RestoreFinished { .. } => "restore_finished",
            Event::TestRestoreFailed { .. } => "test_restore_failed",
            Event::ReconnectNeeded { .. } => "reconnect_needed",
            Event::DestinationAlmostFull { .. } => "destination_almost_full",
            Event::NoRecentBackup { .. } => "no_recent_backup",
        }
    }
}

/// Tells the user about an [`Event`]. Must return quickly and never panic on a delivery problem:
/// it records or logs its own failures.
pub trait Notifier: Send + Sync {
    fn notify(&self, event: &Event);
}

/// Tells nobody.
pub struct NoNotifier;

impl Notifier for NoNotifier {
    fn notify(&self, _event: &Event) {}
}

/// Several notifiers (desktop and email) as one.
#[derive(Default, Clone)]
pub struct Notifiers(pub Vec<Arc<dyn Notifier>>);

impl Notifier for Notifiers {
    fn notify(&self, event: &Event) {
        for n in &self.0 {
            n.notify(event);
        }
    }
}
