//! Schedule, retention, notification and SMTP settings (the engine's `settings.json`, shared with
//! the `driveback` CLI), the SMTP password (OS keyring), the test email, the health, and whether
//! Driveback starts at login.

use driveback_engine::service::{HealthView, SettingsView, TestEmailSent};
use tauri::{AppHandle, Runtime, State};

use super::on_service;
use crate::error::ApiResult;
use crate::state::Shared;

#[tauri::command]
pub async fn get_settings(state: State<'_, Shared>) -> ApiResult<SettingsView> {
    on_service(state.inner(), |s| Ok(s.settings_view())).await
}

/// Saves the schedule, retention, notification and SMTP settings; a value that is not valid is
/// refused with the setting named, and nothing changes.
#[tauri::command]
pub async fn save_settings(
    state: State<'_, Shared>,
    settings: serde_json::Value,
) -> ApiResult<SettingsView> {
    on_service(state.inner(), move |s| s.save_settings(settings)).await
}

/// Keeps the SMTP password in the OS keyring (`None` or empty: forgets it).
#[tauri::command]
pub async fn set_smtp_password(
    state: State<'_, Shared>,
    password: Option<String>,
) -> ApiResult<()> {
    on_service(state.inner(), move |s| s.set_smtp_password(password)).await
}

/// Sends the test email with the saved SMTP settings and password.
#[tauri::command]
pub async fn send_test_email(state: State<'_, Shared>) -> ApiResult<TestEmailSent> {
    on_service(state.inner(), |s| s.send_test_email()).await
}

/// The user has seen the data-loss alarms: the backups they kept follow the policy again.
#[tauri::command]
pub async fn acknowledge_alarms(state: State<'_, Shared>) -> ApiResult<usize> {
    on_service(state.inner(), |s| Ok(s.acknowledge_alarms())).await
}

/// The health checks, metrics and recent runs (asks the database and the destination).
#[tauri::command]
pub async fn health(state: State<'_, Shared>) -> ApiResult<HealthView> {
    state.health_view().await
}

/// Whether Driveback starts when the user logs in (its login entry exists).
#[tauri::command]
pub async fn start_at_login_status<R: Runtime>(app: AppHandle<R>) -> ApiResult<bool> {
    super::blocking(move || crate::autostart::status(&app)).await
}

/// Adds or removes Driveback's login entry; returns whether it now starts at login.
#[tauri::command]
pub async fn set_start_at_login<R: Runtime>(app: AppHandle<R>, enabled: bool) -> ApiResult<bool> {
    super::blocking(move || crate::autostart::set(&app, enabled)).await
}
