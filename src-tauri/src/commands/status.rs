//! The state the UI renders from, and small bookkeeping commands.

use chrono::{DateTime, Utc};
use driveback_engine::service::StatusView;
use serde::Serialize;
use tauri::State;

use super::on_service;
use crate::error::{ApiError, ApiResult};
use crate::state::Shared;

/// The app state (reads the destination: Google Drive over the network).
#[tauri::command]
pub async fn app_state(state: State<'_, Shared>) -> ApiResult<StatusView> {
    on_service(state.inner(), |s| Ok(s.status_view())).await
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
    state.update_memory(|c| c.tray_notice_shown = true)
}

/// Holds automatic backups back until tomorrow 09:00 local time, or until `until` (RFC 3339);
/// Backup Now still works. Answers when they start again. Refused (`bad_input`) when automatic
/// backups are off or `until` is past.
#[tauri::command]
pub async fn pause_automatic(
    state: State<'_, Shared>,
    until: Option<String>,
) -> ApiResult<DateTime<Utc>> {
    let until = match until {
        None => None,
        Some(text) => Some(
            driveback_engine::settings::parse_paused_until(&text)
                .map_err(ApiError::bad_input)?
                .ok_or_else(|| ApiError::bad_input("a pause needs the time it ends"))?,
        ),
    };
    let ends = on_service(state.inner(), move |s| match until {
        Some(t) => s.pause_automatic_until(t),
        None => s.pause_automatic_until_tomorrow(),
    })
    .await?;
    state.emit("state-changed", serde_json::Value::Null);
    Ok(ends)
}

/// Lifts a pause: automatic backups run as scheduled again.
#[tauri::command]
pub async fn resume_automatic(state: State<'_, Shared>) -> ApiResult<()> {
    on_service(state.inner(), |s| s.resume_automatic()).await?;
    state.emit("state-changed", serde_json::Value::Null);
    Ok(())
}
