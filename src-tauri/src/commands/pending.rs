//! Commands whose engine part is being built elsewhere: Google sign-in and the Drive store,
//! schedule/retention settings, health checks, e-mail. The UI is in place; each answers
//! `not_available` with what is missing, until its engine part lands and replaces the stub.

use serde::Deserialize;

use crate::error::{ApiError, ApiResult};

const DRIVE: &str = "Google Drive is not available in this version yet: backups go to the folder shown below for now";

#[tauri::command]
pub fn connect_drive() -> ApiResult<()> {
    Err(ApiError::not_available(DRIVE))
}

#[tauri::command]
pub fn disconnect_drive() -> ApiResult<()> {
    Err(ApiError::not_available(DRIVE))
}

/// Frequency, time, retention and notification settings.
#[tauri::command]
pub fn get_settings() -> ApiResult<serde_json::Value> {
    Err(ApiError::not_available(
        "automatic backups are not available in this version yet: use Back up to make one now",
    ))
}

#[derive(Deserialize)]
pub struct SettingsInput {
    pub frequency: Option<String>,
    pub time: Option<String>,
}

#[tauri::command]
pub fn save_settings(settings: SettingsInput) -> ApiResult<()> {
    let _ = (settings.frequency, settings.time);
    Err(ApiError::not_available(
        "automatic backups are not available in this version yet: use Back up to make one now",
    ))
}

#[tauri::command]
pub fn health() -> ApiResult<serde_json::Value> {
    Err(ApiError::not_available(
        "backup health checks are not available in this version yet",
    ))
}

#[tauri::command]
pub fn send_test_email() -> ApiResult<()> {
    Err(ApiError::not_available(
        "e-mail notifications are not available in this version yet",
    ))
}
