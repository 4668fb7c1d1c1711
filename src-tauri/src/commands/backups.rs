//! Backup Now, following a backup, cancelling it, the list of backups, verify and "save a copy".

use driveback_engine::history::Trigger;
use driveback_engine::service::{BackupView, Copied, JsonExport, VerifyView};
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;

use super::on_service;
use crate::bridge::{self, JobEvent};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::Shared;

#[derive(Serialize)]
pub struct JobStarted {
    pub job_id: String,
    /// A backup was already running: this call joined it.
    pub attached: bool,
}

/// Starts a backup and returns at once; progress and the outcome arrive on `on_event`. While a
/// backup runs (Backup Now or a scheduled one), this joins it instead of starting another.
#[tauri::command]
pub async fn backup_now(
    state: State<'_, Shared>,
    on_event: Channel<JobEvent>,
) -> ApiResult<JobStarted> {
    let events = state.jobs().subscribe();
    let handle = state.start_backup(Trigger::Manual).await?;
    bridge::follow(state.inner(), events, handle.id.clone(), on_event);
    Ok(JobStarted {
        job_id: handle.id,
        attached: handle.attached,
    })
}

/// Follows the running backup (Backup Now or a scheduled one), if one runs; starts nothing.
#[tauri::command]
pub fn follow_backup(state: State<'_, Shared>, on_event: Channel<JobEvent>) -> Option<JobStarted> {
    let events = state.jobs().subscribe();
    let handle = state.jobs().attach()?;
    bridge::follow(state.inner(), events, handle.id.clone(), on_event);
    Some(JobStarted {
        job_id: handle.id,
        attached: true,
    })
}

/// Stops the running backup: nothing of it is kept at the destination. A verify or a restore
/// cannot be stopped half way.
#[tauri::command]
pub fn cancel_job(state: State<'_, Shared>, job_id: String) -> ApiResult<bool> {
    if state.jobs().cancel(Some(&job_id)) {
        return Ok(true);
    }
    match state.jobs().current() {
        Some(j) if j.id == job_id => Err(ApiError::new(
            ErrorCode::NotCancellable,
            "a restore or a verification cannot be stopped half way; wait for it to finish",
        )),
        _ => Ok(false),
    }
}

/// The backups at the destination, newest first.
#[tauri::command]
pub async fn list_backups(state: State<'_, Shared>) -> ApiResult<Vec<BackupView>> {
    on_service(state.inner(), |s| s.list_backups()).await
}

/// Reads a whole backup: decrypts it and checks every collection's count and checksum. Touches
/// no database. `passphrase` is needed only when the key is not in this device's keyring.
#[tauri::command]
pub async fn verify_backup(
    state: State<'_, Shared>,
    id: String,
    passphrase: Option<String>,
    on_event: Channel<JobEvent>,
) -> ApiResult<VerifyView> {
    let events = state.jobs().subscribe();
    let shared = state.inner().clone();
    state
        .verify(id, passphrase, |job| {
            bridge::follow(&shared, events, job.into(), on_event)
        })
        .await
}

/// Copies a backup's encrypted file into `folder` (it stays encrypted: the passphrase or the key
/// opens it, e.g. with `driveback restore --backup FILE`).
#[tauri::command]
pub async fn save_copy(state: State<'_, Shared>, id: String, folder: String) -> ApiResult<Copied> {
    on_service(state.inner(), move |s| s.save_copy(&id, &folder)).await
}

/// "Save as JSON": backup `id` as Extended JSON, one file per collection, in a new folder named
/// after the backup inside `folder` (an existing one is never overwritten). `passphrase` only when
/// the key is not in this device's keyring.
#[tauri::command]
pub async fn export_json(
    state: State<'_, Shared>,
    id: String,
    folder: String,
    passphrase: Option<String>,
) -> ApiResult<JsonExport> {
    on_service(state.inner(), move |s| {
        s.export_json(&id, &folder, passphrase)
    })
    .await
}
