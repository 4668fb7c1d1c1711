//! Schedule, retention, notification and SMTP settings (the engine's `settings.json`, shared with
//! the `driveback` CLI), the SMTP password (OS keyring), the test email, and the health.

use chrono::Utc;
use driveback_engine::history::RunRecord;
use driveback_engine::notify::mail::{self, Mailer, Outgoing};
use driveback_engine::notify::templates;
use driveback_engine::schedule;
use driveback_engine::secrets;
use driveback_engine::settings::Settings;
use driveback_engine::status::Report;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tauri::State;

use super::blocking;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Shared};

#[derive(Serialize)]
pub struct SettingsView {
    pub settings: Settings,
    /// "Daily at 02:00".
    pub schedule_text: String,
    /// The retention policy in one plain sentence.
    pub retention_text: String,
    /// An SMTP password is kept in the OS keyring (or given in the environment).
    pub smtp_password_set: bool,
    /// The settings file could not be read: the defaults are shown.
    pub problem: Option<String>,
}

fn view(state: &AppState) -> SettingsView {
    let settings = state.settings();
    SettingsView {
        schedule_text: schedule::describe(&settings.schedule),
        retention_text: settings.retention.describe(),
        smtp_password_set: mail::smtp_password(state.secrets())
            .ok()
            .flatten()
            .is_some(),
        problem: state.settings_problem(),
        settings,
    }
}

#[tauri::command]
pub async fn get_settings(state: State<'_, Shared>) -> ApiResult<SettingsView> {
    let state = state.inner().clone();
    blocking(move || Ok(view(&state))).await
}

/// Saves the schedule, retention, notification and SMTP settings. What to back up and where are
/// changed elsewhere (connection, Drive, folder) and kept as they are. A value that is not valid
/// is refused with the setting named, and nothing changes.
#[tauri::command]
pub async fn save_settings(
    state: State<'_, Shared>,
    settings: serde_json::Value,
) -> ApiResult<SettingsView> {
    let given: Settings = serde_json::from_value(settings)
        .map_err(|e| ApiError::new("bad_input", format!("these settings are not valid: {e}")))?;
    let state = state.inner().clone();
    blocking(move || {
        state.update_settings(|s| {
            let (backup, version) = (s.backup.clone(), s.version);
            *s = given;
            s.backup = backup;
            s.version = version;
        })?;
        Ok(view(&state))
    })
    .await
}

/// Keeps the SMTP password in the OS keyring (`None` or empty: forgets it).
#[tauri::command]
pub async fn set_smtp_password(
    state: State<'_, Shared>,
    password: Option<String>,
) -> ApiResult<()> {
    let state = state.inner().clone();
    blocking(move || {
        let store = state.secrets().ok_or_else(|| {
            ApiError::new(
                "keyring_unavailable",
                format!(
                    "no OS keyring is available to keep the SMTP password: {}",
                    state.keyring_problem().unwrap_or("none answers")
                ),
            )
        })?;
        let password = password.filter(|p| !p.is_empty()).map(SecretString::from);
        match &password {
            Some(p) => store.set(secrets::SMTP_PASSWORD, p)?,
            None => store.delete(secrets::SMTP_PASSWORD)?,
        }
        if let Some(email) = state.email.get() {
            // The environment's password, when set, still wins (as in the CLI).
            email.set_password(
                mail::smtp_password(state.secrets())
                    .ok()
                    .flatten()
                    .or(password),
            );
        }
        Ok(())
    })
    .await
}

#[derive(Serialize)]
pub struct TestEmailSent {
    pub to: Vec<String>,
    pub server: String,
}

/// Sends the test email with the saved SMTP settings and password.
#[tauri::command]
pub async fn send_test_email(state: State<'_, Shared>) -> ApiResult<TestEmailSent> {
    let state = state.inner().clone();
    blocking(move || {
        let smtp = state.settings().smtp;
        let password = mail::smtp_password(state.secrets())
            .map_err(|e| ApiError::new(e.code(), e.to_string()))?;
        let mailer =
            Mailer::new(&smtp, password).map_err(|e| ApiError::new(e.code(), e.to_string()))?;
        let mail = templates::test_email(smtp.host.as_deref().unwrap_or(""), smtp.port, Utc::now());
        mailer
            .send(&Outgoing {
                mail: &mail,
                attachment: None,
            })
            .map_err(|e| ApiError::new(e.code(), e.to_string()))?;
        Ok(TestEmailSent {
            to: mailer.recipients(),
            server: mailer.server(),
        })
    })
    .await
}

#[derive(Serialize)]
pub struct HealthView {
    #[serde(flatten)]
    pub report: Report,
    /// The latest runs (backups and emails), newest first.
    pub recent_runs: Vec<RunRecord>,
}

/// How many runs the health shows.
const RECENT_RUNS: usize = 20;

/// The health checks (database, destination, last backup, schedule, free space, ...), metrics
/// and recent runs. Asks the database and the destination, so it takes a moment.
#[tauri::command]
pub async fn health(state: State<'_, Shared>) -> ApiResult<HealthView> {
    let database = match state.mongo_uri() {
        None => None,
        Some((uri, _)) => Some(
            match tokio::time::timeout(
                std::time::Duration::from_secs(10),
                driveback_engine::mongo::connect(uri.expose_secret()),
            )
            .await
            {
                Ok(Ok(client)) => {
                    client.shutdown().await;
                    Ok(())
                }
                Ok(Err(e)) => Err(ApiError::from(e).message),
                Err(_) => Err("the database did not answer within 10 seconds".to_string()),
            },
        ),
    };
    let state = state.inner().clone();
    blocking(move || {
        let mut recent_runs = crate::runner::load_history(&state)?;
        let (_, report) = crate::runner::health_report(&state, &recent_runs, database)?;
        recent_runs.reverse();
        recent_runs.truncate(RECENT_RUNS);
        Ok(HealthView {
            report,
            recent_runs,
        })
    })
    .await
}
