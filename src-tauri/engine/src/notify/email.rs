//! Email reports as a [`Notifier`]: each email is built and sent on its own thread, with a bounded
//! retry on transient errors, and its outcome is recorded in the history (kind `email` or
//! `email_summary`), where health shows a failure. Nothing here can fail or delay a backup.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use chrono::{DateTime, Datelike, Local, Utc, Weekday};
use secrecy::SecretString;

use super::mail::{MailError, MailTransport, Outgoing, Smtp};
use super::templates::{self, CopyNote, Mail, WeeklySummary};
use super::{Event, Notifier};
use crate::health::{human_bytes, Health};
use crate::history::{History, Outcome, RunError, RunKind, RunRecord, Trigger};
use crate::schedule::{self, ScheduleState};
use crate::settings::Settings;
use crate::store::{RemoteStore, StoredBackup};

/// Waits between attempts: three tries over about a minute and a half.
pub const DEFAULT_RETRY: [Duration; 2] = [Duration::from_secs(15), Duration::from_secs(60)];

/// Sends email reports in the background.
pub struct EmailNotifier {
    settings: Mutex<Settings>,
    password: Mutex<Option<SecretString>>,
    history: Option<Arc<History>>,
    /// Where backups are read from for an emailed copy.
    store: Mutex<Option<Arc<dyn RemoteStore>>>,
    retry: Mutex<Vec<Duration>>,
    transport: Arc<dyn MailTransport>,
    clock: Arc<dyn crate::jobs::Clock>,
    pending: Arc<(Mutex<usize>, Condvar)>,
}

/// What one delivery did.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub record: RunRecord,
}

impl EmailNotifier {
    /// `password` as [`super::mail::smtp_password`] found it.
    pub fn new(
        settings: Settings,
        password: Option<SecretString>,
        history: Option<Arc<History>>,
    ) -> Self {
        EmailNotifier {
            settings: Mutex::new(settings),
            password: Mutex::new(password),
            history,
            store: Mutex::new(None),
            retry: Mutex::new(DEFAULT_RETRY.to_vec()),
            transport: Arc::new(Smtp),
            clock: Arc::new(crate::jobs::SystemClock),
            pending: Arc::new((Mutex::new(0), Condvar::new())),
        }
    }

    /// The store backups are read from, for "email a copy".
    pub fn with_store(self, store: Arc<dyn RemoteStore>) -> Self {
        *self.store.lock().unwrap_or_else(|p| p.into_inner()) = Some(store);
        self
    }

    /// The store backups are read from, for "email a copy" (the destination changed).
    pub fn set_store(&self, store: Arc<dyn RemoteStore>) {
        *self.store.lock().unwrap_or_else(|p| p.into_inner()) = Some(store);
    }

    /// Reads the time from `clock` (the service's).
    pub fn with_clock(mut self, clock: Arc<dyn crate::jobs::Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sends through `transport` instead of SMTP.
    pub fn with_transport(mut self, transport: Arc<dyn MailTransport>) -> Self {
        self.transport = transport;
        self
    }

    /// Waits between attempts (tests shorten them).
    pub fn with_retry(self, delays: Vec<Duration>) -> Self {
        self.set_retry(delays);
        self
    }

    /// Waits between attempts from now on (a one-shot command waits less than a daemon).
    pub fn set_retry(&self, delays: Vec<Duration>) {
        *self.retry.lock().unwrap_or_else(|p| p.into_inner()) = delays;
    }

    /// New settings (the user changed them).
    pub fn set_settings(&self, s: Settings) {
        *self.settings.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// A new SMTP password (the user changed it), or none.
    pub fn set_password(&self, password: Option<SecretString>) {
        *self.password.lock().unwrap_or_else(|p| p.into_inner()) = password;
    }

    fn settings(&self) -> Settings {
        self.settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until no email is being sent, at most `timeout`; whether all were done.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let (lock, cv) = &*self.pending;
        let guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = cv
            .wait_timeout_while(guard, timeout, |n| *n > 0)
            .unwrap_or_else(|p| p.into_inner());
        *guard == 0
    }

    /// Whether `event` calls for an email under the current settings.
    pub fn wants(&self, event: &Event) -> bool {
        let s = self.settings();
        if !s.smtp.is_configured() {
            return false;
        }
        match event {
            // Data that went missing is mailed like a failure.
            Event::BackupSucceeded { record, .. } => {
                s.notify.email_on_success || s.notify.email_copy || !record.warnings.is_empty()
            }
            Event::BackupFailed { .. } | Event::TestRestoreFailed { .. } => {
                s.notify.email_on_failure
            }
            _ => false,
        }
    }

    /// Builds and sends the email for `event` now, on this thread, and records the outcome.
    /// `None` when the event does not call for an email.
    pub fn deliver(&self, event: &Event) -> Option<Delivery> {
        if !self.wants(event) {
            return None;
        }
        let s = self.settings();
        let started = self.clock.now();
        let (record, copy, attachment) = match event {
            Event::BackupSucceeded { record, backup } => {
                let (copy, attachment) = if s.notify.email_copy {
                    self.copy_of(backup.as_ref(), &s)
                } else {
                    (CopyNote::None, None)
                };
                (record, copy, attachment)
            }
            Event::BackupFailed { record, .. } | Event::TestRestoreFailed { record } => {
                (record, CopyNote::None, None)
            }
            _ => return None,
        };
        let mail = match event {
            Event::BackupSucceeded { record, .. } => {
                let state = ScheduleState::new(Some(record.ended), record.ended);
                let next = schedule::next_due(&s.schedule, &state, self.clock.now(), &Local);
                templates::backup_succeeded(record, next, &copy)
            }
            Event::BackupFailed {
                record, last_good, ..
            } => templates::backup_failed(record, *last_good, self.clock.now()),
            Event::TestRestoreFailed { record } => templates::test_restore_failed(record),
            _ => return None,
        };
        let attached_bytes = attachment.as_ref().map(|(_, b)| b.len() as u64);
        let result = self.send(&s, &mail, attachment);
        let (outcome, error) = match (&result, &copy) {
            (Err(e), _) => (
                Outcome::Failed,
                Some(RunError {
                    code: e.code().as_str().into(),
                    message: format!("the email report could not be sent: {e}"),
                }),
            ),
            (Ok(()), CopyNote::Skipped(why)) => (
                Outcome::Partial,
                Some(RunError {
                    code: "email_copy_skipped".into(),
                    message: format!("the report was emailed without the backup copy: {why}"),
                }),
            ),
            (Ok(()), _) => (Outcome::Success, None),
        };
        if let Err(e) = &result {
            tracing::warn!(error = %e, "email report not sent");
        }
        let rec = RunRecord {
            warnings: Vec::new(),
            job_id: record.job_id.clone(),
            kind: RunKind::Email,
            trigger: record.trigger,
            started,
            ended: self.clock.now(),
            outcome,
            database: record.database.clone(),
            dest: Some(format!("email:{}", s.smtp.recipients().join(","))),
            backup_id: record.backup_id.clone(),
            bytes: attached_bytes,
            documents: None,
            verified: None,
            pruned: None,
            error,
        };
        self.record(&rec);
        Some(Delivery { record: rec })
    }

    fn send(
        &self,
        s: &Settings,
        mail: &Mail,
        attachment: Option<(String, Vec<u8>)>,
    ) -> Result<(), MailError> {
        let password = self
            .password
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let out = Outgoing {
            mail,
            attachment: attachment.as_ref().map(|(n, b)| (n.as_str(), b.clone())),
        };
        self.transport
            .send(
                &s.smtp,
                password,
                &out,
                &self.retry.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            )
            .map(|_| ())
    }

    fn record(&self, rec: &RunRecord) {
        if let Some(h) = &self.history {
            if let Err(e) = h.append(rec) {
                tracing::warn!(error = %e, "could not record the email in the history");
            }
        }
    }

    /// The backup file to attach, or why not.
    fn copy_of(
        &self,
        backup: Option<&StoredBackup>,
        s: &Settings,
    ) -> (CopyNote, Option<(String, Vec<u8>)>) {
        let limit = u64::from(s.notify.email_copy_max_mb) * 1_000_000;
        let Some(b) = backup else {
            return (
                CopyNote::Skipped("the backup file was not at hand".into()),
                None,
            );
        };
        if b.is_increment() {
            return (
                CopyNote::Skipped(
                    "this backup is an increment: it holds only what changed since the backup before it, so it is of no use on its own. It and the rest of its chain are safe at the destination.".into(),
                ),
                None,
            );
        }
        if b.bytes > limit {
            return (
                CopyNote::Skipped(format!(
                    "the backup file is {}, more than the {} MB that fit in an email (notify.email_copy_max_mb). It is safe at the destination.",
                    human_bytes(b.bytes),
                    s.notify.email_copy_max_mb
                )),
                None,
            );
        }
        let store = self.store.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(store) = store else {
            return (
                CopyNote::Skipped("the backup destination was not at hand".into()),
                None,
            );
        };
        let read = store.open(b).map_err(|e| e.to_string()).and_then(|r| {
            let mut bytes = Vec::with_capacity(b.bytes as usize);
            std::io::Read::read_to_end(&mut std::io::Read::take(r, limit + 1), &mut bytes)
                .map_err(|e| e.to_string())?;
            Ok(bytes)
        });
        match read {
            Ok(bytes) if bytes.len() as u64 <= limit => (
                CopyNote::Attached(b.file.clone()),
                Some((b.file.clone(), bytes)),
            ),
            Ok(_) => (
                CopyNote::Skipped(format!(
                    "the backup file is larger than the {} MB that fit in an email",
                    s.notify.email_copy_max_mb
                )),
                None,
            ),
            Err(e) => (
                CopyNote::Skipped(format!("the backup file could not be read: {e}")),
                None,
            ),
        }
    }

    /// Whether the weekly summary is due at `now`: on Monday (local time) or later in the week,
    /// when none went out in the last six days.
    pub fn weekly_summary_due(&self, records: &[RunRecord], now: DateTime<Utc>) -> bool {
        let s = self.settings();
        if !s.notify.weekly_summary || !s.smtp.is_configured() {
            return false;
        }
        let recent = records.iter().rev().any(|r| {
            r.kind == RunKind::EmailSummary && r.started > now - chrono::Duration::days(6)
        });
        let any_backup = records.iter().any(|r| r.kind == RunKind::Backup);
        any_backup && !recent && now.with_timezone(&Local).weekday() == Weekday::Mon
    }

    /// Sends the summary of the seven days before `now` (on this thread) and records it.
    pub fn send_weekly_summary(
        &self,
        records: &[RunRecord],
        health: Option<&Health>,
        now: DateTime<Utc>,
    ) -> RunRecord {
        let s = self.settings();
        let summary =
            WeeklySummary::from_records(records, now - chrono::Duration::days(7), now, health);
        let mail = templates::weekly_summary(&summary);
        // Dated `now`, the week it summarises, so that the next due check counts it.
        let t0 = std::time::Instant::now();
        let result = self.send(&s, &mail, None);
        let (started, ended) = (
            now,
            now + chrono::Duration::from_std(t0.elapsed()).unwrap_or_default(),
        );
        let rec = RunRecord {
            warnings: Vec::new(),
            job_id: format!("summary-{}", now.format("%Y%m%d")),
            kind: RunKind::EmailSummary,
            trigger: Trigger::Scheduled,
            started,
            ended,
            outcome: if result.is_ok() {
                Outcome::Success
            } else {
                Outcome::Failed
            },
            database: s.backup.database.clone(),
            dest: Some(format!("email:{}", s.smtp.recipients().join(","))),
            backup_id: None,
            bytes: None,
            documents: None,
            verified: None,
            pruned: None,
            error: result.err().map(|e| RunError {
                code: e.code().as_str().into(),
                message: format!("the weekly summary could not be sent: {e}"),
            }),
        };
        self.record(&rec);
        rec
    }
}

impl EmailNotifier {
    /// Sends the weekly summary if it is due at `now` (see [`Self::weekly_summary_due`]), judged
    /// from the history; `health` is asked only then. Blocking: the caller runs it on a thread
    /// that may wait for the SMTP server. The run is recorded in the history either way.
    pub fn weekly_summary_if_due(
        &self,
        health: impl FnOnce(&[RunRecord]) -> Option<Health>,
        now: DateTime<Utc>,
    ) -> Option<RunRecord> {
        let history = self.history.as_ref()?;
        let records = match history.load() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the history for the weekly summary");
                return None;
            }
        };
        if !self.weekly_summary_due(&records, now) {
            return None;
        }
        let h = health(&records);
        Some(self.send_weekly_summary(&records, h.as_ref(), now))
    }
}

/// Decrements the pending count when a sending thread ends, even by a panic.
struct PendingGuard(Arc<(Mutex<usize>, Condvar)>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let (lock, cv) = &*self.0;
        let mut n = lock.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        cv.notify_all();
    }
}

impl Notifier for Arc<EmailNotifier> {
    fn notify(&self, event: &Event) {
        if !self.wants(event) {
            return;
        }
        {
            let (lock, _) = &*self.pending;
            *lock.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        }
        let guard = PendingGuard(self.pending.clone());
        let me = self.clone();
        let event = event.clone();
        let spawned = std::thread::Builder::new()
            .name("driveback-email".into())
            .spawn(move || {
                let _guard = guard;
                me.deliver(&event);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start sending the email report");
        }
    }
}
