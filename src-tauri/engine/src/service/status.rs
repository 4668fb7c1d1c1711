//! The state a door renders (the app's home screen) and the health report (the app's badge,
//! `driveback status`, the health watch): one place that reads the history, the settings, the
//! destination and the scheduler.

use chrono::{DateTime, Local, Utc};
use serde::Serialize;

use super::{lock, Service, UriSource};
use crate::error::{ApiResult, ErrorCode};
use crate::glance::{self, Glance, Reach};
use crate::health::DestinationProblem;
use crate::history::{self, RunRecord};
use crate::jobs::{JobInfo, JobKind};
use crate::keys::PUBLIC_KEY_FILE;
use crate::manifest::BackupStatus;
use crate::schedule::{self, ScheduleState};
use crate::scheduler::{SchedulerStatus, HEARTBEAT_FILE};
use crate::settings::{Frequency, Settings, TimeOfDay};
use crate::status::{self as report, DestinationSeen, Report};
use crate::store::drive::DriveLocation;
use crate::store::{Dest, StoredBackup};

/// How often the app asks whether the user still knows the passphrase.
pub const PASSPHRASE_CHECK_DAYS: i64 = 14;

/// A backup as a list shows it.
#[derive(Clone, Debug, Serialize)]
pub struct BackupView {
    pub id: String,
    pub file: String,
    pub bytes: u64,
    pub created: DateTime<Utc>,
    pub database: String,
    pub documents: u64,
    pub status: BackupStatus,
    pub latest: bool,
    /// Known from this device's history because the destination could not be read just now.
    pub from_history: bool,
    /// The incremental layout: the backup's place in its chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<crate::store::ChainLink>,
}

impl BackupView {
    pub fn new(b: &StoredBackup, latest: bool) -> Self {
        Self {
            id: b.id.clone(),
            file: b.file.clone(),
            bytes: b.bytes,
            created: b.created,
            database: b.database.clone(),
            documents: b.documents,
            status: b.status,
            latest,
            from_history: false,
            link: b.link.clone(),
        }
    }

    /// The newest good backup this device's history knows of.
    pub fn from_record(r: &crate::history::RunRecord) -> Option<Self> {
        Some(Self {
            id: r.backup_id.clone()?,
            file: String::new(),
            bytes: r.bytes.unwrap_or(0),
            created: r.started,
            database: r.database.clone().unwrap_or_default(),
            documents: r.documents.unwrap_or(0),
            status: BackupStatus::Complete,
            latest: true,
            from_history: true,
            link: None,
        })
    }
}

#[derive(Serialize)]
pub struct StatusView {
    pub version: String,
    pub mongo: MongoView,
    pub destination: DestinationView,
    pub drive: DriveView,
    pub schedule: ScheduleView,
    /// The line at a glance: "Backed up 2 hours ago · 61 kB · Next: tonight 02:00", and how old
    /// the newest backup is (`fresh`, `aging`, `stale`). The same line as the tray and
    /// `driveback status`.
    pub glance: Glance,
    /// What the line was made of, to say it again as time passes ([`Service::glance_again`]).
    #[serde(skip)]
    pub glance_facts: glance::Facts,
    pub last_backup: Option<BackupView>,
    pub job: Option<JobInfo>,
    pub keyring: KeyringView,
    pub passphrase_check_due: bool,
    pub tray_notice_shown: bool,
    /// The settings file could not be read: the defaults are in use (said in words).
    pub settings_problem: Option<String>,
    /// Everything the first-run steps set up is there.
    pub ready: bool,
}

#[derive(Serialize)]
pub struct MongoView {
    pub configured: bool,
    /// Hosts only, never credentials.
    pub host: Option<String>,
    pub database: Option<String>,
    pub source: Option<UriSource>,
}

#[derive(Serialize)]
pub struct DestinationView {
    /// `folder` or `drive`; none before one is chosen.
    pub kind: Option<&'static str>,
    /// As the CLI names it: `drive`, `folder:/path`.
    pub dest: Option<String>,
    /// In words: "Google Drive (hidden app folder)", or the folder's path.
    pub label: String,
    pub folder: Option<String>,
    /// A backup key exists there (the passphrase was set).
    pub has_key: bool,
    /// Problem reading the destination, in words.
    pub problem: Option<String>,
}

#[derive(Serialize)]
pub struct DriveView {
    /// Google sign-in can be used here: a keyring, and an OAuth client or the way to set one up.
    pub available: bool,
    /// An OAuth client is there to sign in with (else Connect sets one up first).
    pub client_configured: bool,
    pub connected: bool,
    pub account: Option<String>,
    /// Google no longer accepts the sign-in: the user must connect again.
    pub reconnect_needed: bool,
    /// Why Drive cannot be used, or why it needs reconnecting.
    pub problem: Option<String>,
}

#[derive(Serialize)]
pub struct ScheduleView {
    pub frequency: Frequency,
    pub time: TimeOfDay,
    /// "Daily at 02:00".
    pub text: String,
    /// When the next automatic backup starts (in the past while one is due).
    pub next_due: Option<DateTime<Utc>>,
    /// Automatic backups are paused until then (only while that is ahead).
    pub paused_until: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
pub struct KeyringView {
    pub available: bool,
    pub problem: Option<String>,
}

/// The label of a destination, in words.
pub fn dest_label(dest: Option<&Dest>) -> String {
    match dest {
        None => "Not chosen".into(),
        Some(Dest::Drive(DriveLocation::AppData)) => "Google Drive (hidden app folder)".into(),
        Some(Dest::Drive(DriveLocation::Folder)) => {
            "Google Drive (Driveback Backups folder)".into()
        }
        Some(Dest::Folder(p)) => p.display().to_string(),
    }
}

impl Service {
    /// The state a door renders. Blocking: it reads the destination (Google Drive over the
    /// network).
    pub fn status_view(&self) -> StatusView {
        let uri = self.mongo_uri();
        let configured = uri.is_some();
        let database = self.database();
        let dest = self.parsed_dest();
        let (mut has_key, mut last_backup, mut problem) = (false, None, None);
        // What the glance line needs: the listing, or why there is none.
        let reach_of = |e: &crate::error::ApiError| {
            if e.code.as_str() == "not_connected" {
                Reach::NotConnected
            } else if report::is_sign_in_problem(e.code.as_str()) {
                Reach::ReconnectNeeded
            } else {
                Reach::Unreachable
            }
        };
        let mut listed: Option<Result<Vec<StoredBackup>, Reach>> = None;
        if dest.is_some() {
            match self.store() {
                Ok(store) => {
                    match store.read_file(PUBLIC_KEY_FILE) {
                        Ok(k) => has_key = k.is_some(),
                        Err(e) => problem = Some(crate::error::ApiError::from(e).message),
                    }
                    match store.list() {
                        Ok(list) => {
                            last_backup = list.first().map(|b| BackupView::new(b, true));
                            listed = Some(Ok(list));
                        }
                        Err(e) => {
                            let e = crate::error::ApiError::from(e);
                            listed = Some(Err(reach_of(&e)));
                            problem = Some(e.message);
                        }
                    }
                }
                Err(e) => {
                    listed = Some(Err(reach_of(&e)));
                    problem = Some(e.message);
                }
            }
        }
        let records = self.history().load().unwrap_or_default();
        // The destination cannot be read just now: the last good backup is still known here.
        if problem.is_some() && last_backup.is_none() {
            last_backup = crate::history::last_success(&records).and_then(BackupView::from_record);
        }
        let account = self.account();
        let drive = match self.google() {
            Err(e) => DriveView {
                // Without a client yet, one can be set up here (then sign-in works).
                available: e.code == ErrorCode::NotConfigured,
                client_configured: false,
                connected: false,
                account: None,
                reconnect_needed: false,
                problem: Some(e.message),
            },
            Ok(_) => DriveView {
                available: true,
                client_configured: true,
                connected: account.is_some(),
                account: account.as_ref().map(|a| a.email.clone()),
                reconnect_needed: account.as_ref().is_some_and(|a| a.reconnect_needed),
                problem: account.as_ref().filter(|a| a.reconnect_needed).map(|a| {
                    a.reconnect_reason
                        .clone()
                        .unwrap_or_else(|| "Google no longer accepts the sign-in".into())
                }),
            },
        };
        let memory = self.memory();
        let settings = self.settings();
        let now = self.now();
        let next_due = self.next_due(&settings);
        let job = self.jobs().current();
        let glance_facts = glance::facts(
            &records,
            listed
                .as_ref()
                .map(|l| l.as_ref().map(Vec::as_slice).map_err(|r| *r)),
            matches!(dest, Some(Dest::Drive(_))),
            &settings.schedule,
            next_due,
            job.as_ref().is_some_and(|j| j.kind == JobKind::Backup),
        );
        let passphrase_check_due = has_key
            && memory
                .passphrase_checked_at
                .is_none_or(|at| now - at > chrono::Duration::days(PASSPHRASE_CHECK_DAYS));
        StatusView {
            version: crate::VERSION.to_string(),
            mongo: MongoView {
                configured,
                host: self.uri_host(),
                database: database.clone(),
                source: uri.map(|(_, s)| s),
            },
            // A destination that cannot be read just now (offline, sign-in revoked) is a problem
            // to show on the home screen, not a reason to start the first run again.
            ready: configured
                && database.is_some()
                && dest.is_some()
                && (has_key || problem.is_some()),
            destination: DestinationView {
                kind: dest.as_ref().map(|d| match d {
                    Dest::Folder(_) => "folder",
                    Dest::Drive(_) => "drive",
                }),
                dest: self.dest(),
                label: dest_label(dest.as_ref()),
                folder: self.folder().map(|f| f.display().to_string()),
                has_key,
                problem,
            },
            drive,
            schedule: ScheduleView {
                frequency: settings.schedule.frequency,
                time: settings.schedule.time,
                text: schedule::describe(&settings.schedule),
                next_due,
                paused_until: settings.schedule.paused_until.filter(|p| *p > now),
            },
            glance: glance::glance(&glance_facts, now, &Local),
            glance_facts,
            last_backup,
            job,
            keyring: KeyringView {
                available: self.secrets().is_some(),
                problem: self.keyring_problem().map(str::to_string),
            },
            passphrase_check_due,
            tray_notice_shown: memory.tray_notice_shown,
            settings_problem: self.settings_problem(),
        }
    }

    /// The glance line again at the present time, from `facts` a [`Service::status_view`] gave:
    /// the destination as it was then, the schedule, the pause, the next backup and a running
    /// backup as they are now. Reads no destination (cheap enough to call every minute).
    pub fn glance_again(&self, facts: &glance::Facts) -> (glance::Facts, Glance) {
        let settings = self.settings();
        let job = self.jobs().current();
        let facts = glance::Facts {
            frequency: settings.schedule.frequency,
            paused_until: settings.schedule.paused_until,
            next_due: self.next_due(&settings),
            backing_up: job.is_some_and(|j| j.kind == JobKind::Backup),
            ..facts.clone()
        };
        let g = glance::glance(&facts, self.now(), &Local);
        (facts, g)
    }

    /// When the next automatic backup starts: as the running scheduler works it out now, else
    /// from the history.
    fn next_due(&self, settings: &Settings) -> Option<DateTime<Utc>> {
        if let Some(s) = lock(&self.inner.scheduler).as_ref() {
            return s.next_due_now();
        }
        let now = self.now();
        let records = self.history().load().unwrap_or_default();
        schedule::next_due(
            &settings.schedule,
            &ScheduleState {
                catch_up_delay: chrono::Duration::zero(),
                ..ScheduleState::new(history::last_attempt(&records), now)
            }
            .with_recent(history::attempts(records.iter().rev())),
            now,
            &Local,
        )
    }

    /// The run history, oldest first. Blocking.
    pub fn load_history(&self) -> ApiResult<Vec<RunRecord>> {
        self.history().load().map_err(|e| {
            crate::error::ApiError::new(crate::error::ErrorCode::IoError, e.to_string())
        })
    }

    /// The health report now: history, settings, the destination (`dest`, else the configured
    /// one: listed, with its quota) and the scheduler's heartbeat. `database` is the result of a
    /// database check, when one was made. Blocking.
    pub fn health_report(
        &self,
        records: &[RunRecord],
        dest: Option<&str>,
        database: Option<Result<(), String>>,
    ) -> ApiResult<(DestinationSeen, Report)> {
        self.health_report_with(records, dest, database, false)
    }

    /// [`Service::health_report`]; with `after_run`, the listing the backup job that just
    /// succeeded left stands for listing the destination again.
    pub(crate) fn health_report_with(
        &self,
        records: &[RunRecord],
        dest: Option<&str>,
        database: Option<Result<(), String>>,
        after_run: bool,
    ) -> ApiResult<(DestinationSeen, Report)> {
        let settings = self.settings();
        let opened = match dest {
            Some(d) => Some(self.open_dest(d)),
            None => self.dest().map(|_| self.store()),
        };
        // A destination that cannot be opened is a finding of the health, not an error here.
        // What the last backup job saw a moment ago stands for a listing (plus the quota).
        let fresh = if after_run && dest.is_none() {
            lock(&self.inner.seen).clone().and_then(|(d, at, list)| {
                (Some(&d) == self.dest().as_ref() && self.now() - at < chrono::Duration::minutes(2))
                    .then_some(list)
            })
        } else {
            None
        };
        let seen = match opened {
            None => DestinationSeen::default(),
            Some(Ok(store)) if fresh.is_some() => DestinationSeen {
                listed: fresh.map(Ok),
                quota: store.quota().unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "could not read the destination's quota");
                    None
                }),
                ignored: store.ignored(),
                alarms: Vec::new(),
                drive: false,
            },
            Some(Ok(store)) => report::observe_destination(Some(Ok(store)))?,
            Some(Err(e)) => DestinationSeen {
                listed: Some(Err(if report::is_sign_in_problem(e.code.as_str()) {
                    report::reconnect_needed(e.message)
                } else {
                    DestinationProblem::Unreachable(e.message)
                })),
                quota: None,
                ignored: Vec::new(),
                alarms: Vec::new(),
                drive: false,
            },
        };
        let mut seen = seen;
        seen.alarms = self.inner.alarms.open();
        seen.drive = match dest {
            Some(d) => matches!(crate::store::parse_dest(d), Ok(Dest::Drive(_))),
            None => matches!(self.parsed_dest(), Some(Dest::Drive(_))),
        };
        let heartbeat = SchedulerStatus::read(&self.data_dir().join(HEARTBEAT_FILE));
        let mut report = report::report(
            records,
            &settings,
            &seen,
            database,
            heartbeat.as_ref(),
            self.now(),
            &Local,
        );
        // A backup running in this process: the line says so.
        if self
            .jobs()
            .current()
            .is_some_and(|j| j.kind == JobKind::Backup)
        {
            report.glance_facts.backing_up = true;
            report.glance = glance::glance(&report.glance_facts, self.now(), &Local);
        }
        Ok((seen, report))
    }
}
