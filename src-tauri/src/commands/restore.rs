//! Restore in two steps: `prepare_restore` shows what would be replaced and issues a one-time
//! confirmation token, with no side effects; `restore` runs only with that token, backs up the
//! current data first and offers an undo token (all in the engine's service).

use driveback_engine::service::{RestoreChoices, RestorePlan, RestoreView};
use tauri::ipc::Channel;
use tauri::State;

use crate::bridge::{self, JobEvent};
use crate::error::ApiResult;
use crate::state::Shared;

/// What restoring backup `id` would do; changes nothing. `options` (the confirmation's
/// "Advanced" part): `{target_db?, collections?}`.
#[tauri::command]
pub async fn prepare_restore(
    state: State<'_, Shared>,
    id: String,
    passphrase: Option<String>,
    options: Option<RestoreChoices>,
) -> ApiResult<RestorePlan> {
    state
        .prepare_restore(id, passphrase, options.unwrap_or_default())
        .await
}

/// What restoring the file at `path` would do (a Driveback backup file or a plain mongodump
/// archive); reads and checks the whole file, changes nothing. `restore` runs the plan's token.
#[tauri::command]
pub async fn prepare_restore_file(
    state: State<'_, Shared>,
    path: String,
    passphrase: Option<String>,
    options: Option<RestoreChoices>,
) -> ApiResult<RestorePlan> {
    state
        .prepare_restore_file(path, passphrase, options.unwrap_or_default())
        .await
}

/// Replaces the target database's collections with the backup's, as confirmed by `token` (from
/// `prepare_restore`, or the `undo_token` of an earlier restore). Progress goes to `on_event`.
#[tauri::command]
pub async fn restore(
    state: State<'_, Shared>,
    token: String,
    on_event: Channel<JobEvent>,
) -> ApiResult<RestoreView> {
    let events = state.jobs().subscribe();
    let shared = state.inner().clone();
    state
        .restore(token, |job| {
            bridge::follow(&shared, events, job.into(), on_event)
        })
        .await
}
