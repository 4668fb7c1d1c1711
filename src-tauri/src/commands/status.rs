//! The app state the UI renders from, and small bookkeeping commands.

use chrono::{DateTime, Local, Utc};
use driveback_engine::history;
use driveback_engine::keys::PUBLIC_KEY_FILE;
use driveback_engine::schedule::{self, ScheduleState};
use driveback_engine::settings::{Frequency, Settings, TimeOfDay};
use driveback_engine::store::drive::DriveLocation;
use driveback_engine::store::Dest;
use serde::Serialize;
use tauri::State;

use super::backups::BackupView;
use super::blocking;
use crate::error::ApiResult;
use crate::jobs::JobView;
use crate::state::{Shared, UriSource};

/// How often the app asks whether the user still knows the passphrase.
pub const PASSPHRASE_CHECK_DAYS: i64 = 14;

#[derive(Serialize)]
pub struct AppStateView {
    pub version: String,
    pub mongo: MongoView,
    pub destination: DestinationView,
    pub drive: DriveView,
    pub schedule: ScheduleView,
    pub last_backup: Option<BackupView>,
    pub job: Option<JobView>,
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
    /// Google sign-in can be used here (an OAuth client and a keyring).
    pub available: bool,
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
}

#[derive(Serialize)]
pub struct KeyringView {
    pub available: bool,
    pub problem: Option<String>,
}

#[tauri::command]
pub async fn app_state(state: State<'_, Shared>) -> ApiResult<AppStateView> {
    let state = state.inner().clone();
    blocking(move || Ok(build(&state))).await
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

/// The app state. Blocking: it reads the destination (Google Drive over the network).
pub fn build(state: &Shared) -> AppStateView {
    let uri = state.mongo_uri();
    let configured = uri.is_some();
    let database = state.database();
    let dest = state.parsed_dest();
    let (mut has_key, mut last_backup, mut problem) = (false, None, None);
    if dest.is_some() {
        match state.store() {
            Ok(store) => {
                match store.read_file(PUBLIC_KEY_FILE) {
                    Ok(k) => has_key = k.is_some(),
                    Err(e) => problem = Some(crate::error::ApiError::from(e).message),
                }
                match store.list() {
                    Ok(list) => last_backup = list.first().map(|b| BackupView::new(b, true)),
                    Err(e) => problem = Some(crate::error::ApiError::from(e).message),
                }
            }
            Err(e) => problem = Some(e.message),
        }
    }
    let account = state.account();
    let drive = match state.google() {
        Err(e) => DriveView {
            available: false,
            connected: false,
            account: None,
            reconnect_needed: false,
            problem: Some(e.message),
        },
        Ok(_) => DriveView {
            available: true,
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
    let config = state.config();
    let settings = state.settings();
    let passphrase_check_due = has_key
        && config.passphrase_checked_at.is_none_or(|at| {
            chrono::Utc::now() - at > chrono::Duration::days(PASSPHRASE_CHECK_DAYS)
        });
    AppStateView {
        version: driveback_engine::VERSION.to_string(),
        mongo: MongoView {
            configured,
            host: state.uri_host(),
            database: database.clone(),
            source: uri.map(|(_, s)| s),
        },
        // A destination that cannot be read just now (offline, sign-in revoked) is a problem to
        // show on the home screen, not a reason to start the first run again.
        ready: configured && database.is_some() && dest.is_some() && (has_key || problem.is_some()),
        destination: DestinationView {
            kind: dest.as_ref().map(|d| match d {
                Dest::Folder(_) => "folder",
                Dest::Drive(_) => "drive",
            }),
            dest: state.dest(),
            label: dest_label(dest.as_ref()),
            folder: state.folder().map(|f| f.display().to_string()),
            has_key,
            problem,
        },
        drive,
        schedule: ScheduleView {
            frequency: settings.schedule.frequency,
            time: settings.schedule.time,
            text: schedule::describe(&settings.schedule),
            next_due: next_due(state, &settings),
        },
        last_backup,
        job: state.jobs.current(),
        keyring: KeyringView {
            available: state.secrets().is_some(),
            problem: state.keyring_problem().map(str::to_string),
        },
        passphrase_check_due,
        tray_notice_shown: config.tray_notice_shown,
        settings_problem: state.settings_problem(),
    }
}

/// When the next automatic backup starts: as the running scheduler sees it, else from the
/// history.
fn next_due(state: &Shared, settings: &Settings) -> Option<DateTime<Utc>> {
    if let Some(s) = state.scheduler.lock().unwrap().as_ref() {
        return s.status().next_due;
    }
    let now = Utc::now();
    let records = state.history.load().unwrap_or_default();
    schedule::next_due(
        &settings.schedule,
        &ScheduleState {
            catch_up_delay: chrono::Duration::zero(),
            ..ScheduleState::new(history::last_attempt(&records), now)
        },
        now,
        &Local,
    )
}

#[derive(Serialize)]
pub struct Ready {
    /// From process start to the UI's first paint.
    pub startup_ms: u64,
    pub pid: u32,
}

/// The UI calls this once it has painted: the time from start is logged and kept.
#[tauri::command]
pub fn ui_ready(state: State<'_, Shared>) -> Ready {
    let mut startup = state.startup_ms.lock().unwrap();
    let ms = *startup.get_or_insert_with(|| state.started.elapsed().as_millis() as u64);
    tracing::info!(startup_ms = ms, "first paint");
    Ready {
        startup_ms: ms,
        pid: std::process::id(),
    }
}

/// "Closing keeps Driveback running in the tray" was read.
#[tauri::command]
pub fn dismiss_tray_notice(state: State<'_, Shared>) -> ApiResult<()> {
    state.update_config(|c| c.tray_notice_shown = true)
}
