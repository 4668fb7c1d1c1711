//! The app state the UI renders from, and small bookkeeping commands.

use driveback_engine::keys::PUBLIC_KEY_FILE;
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
    /// Google Drive: sign-in has not landed yet.
    pub drive: DriveView,
    pub last_backup: Option<BackupView>,
    pub job: Option<JobView>,
    pub keyring: KeyringView,
    pub passphrase_check_due: bool,
    pub tray_notice_shown: bool,
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
    pub kind: &'static str,
    pub folder: Option<String>,
    /// A backup key exists there (the passphrase was set).
    pub has_key: bool,
    /// Problem reading the destination, in words.
    pub problem: Option<String>,
}

#[derive(Serialize)]
pub struct DriveView {
    pub available: bool,
    pub connected: bool,
    pub account: Option<String>,
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

pub fn build(state: &Shared) -> AppStateView {
    let uri = state.mongo_uri();
    let database = state.database();
    let folder = state.folder();
    let (mut has_key, mut last_backup, mut problem) = (false, None, None);
    if let Ok(store) = state.store() {
        match store.read_file(PUBLIC_KEY_FILE) {
            Ok(k) => has_key = k.is_some(),
            Err(e) => problem = Some(crate::error::ApiError::from(e).message),
        }
        match store.list() {
            Ok(list) => last_backup = list.first().map(|b| BackupView::new(b, true)),
            Err(e) => problem = Some(crate::error::ApiError::from(e).message),
        }
    }
    let config = state.config();
    let passphrase_check_due = has_key
        && config.passphrase_checked_at.is_none_or(|at| {
            chrono::Utc::now() - at > chrono::Duration::days(PASSPHRASE_CHECK_DAYS)
        });
    AppStateView {
        version: driveback_engine::VERSION.to_string(),
        mongo: MongoView {
            configured: uri.is_some(),
            host: state.uri_host(),
            database: database.clone(),
            source: uri.map(|(_, s)| s),
        },
        ready: state.mongo_uri().is_some() && database.is_some() && folder.is_some() && has_key,
        destination: DestinationView {
            kind: "folder",
            folder: folder.map(|f| f.display().to_string()),
            has_key,
            problem,
        },
        drive: DriveView {
            available: false,
            connected: false,
            account: None,
        },
        last_backup,
        job: state.jobs.current(),
        keyring: KeyringView {
            available: state.secrets().is_some(),
            problem: state.keyring_problem().map(str::to_string),
        },
        passphrase_check_due,
        tray_notice_shown: config.tray_notice_shown,
    }
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
