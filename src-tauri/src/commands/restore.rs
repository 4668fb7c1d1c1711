//! Restore in two steps: `prepare_restore` shows what would be replaced and issues a one-time
//! confirmation token, with no side effects; `restore` runs only with that token, backs up the
//! current data first and offers an undo token (all in the engine's service).

use driveback_engine::service::{RestorePlan, RestoreView};
use tauri::ipc::Channel;
use tauri::State;

use crate::bridge::{self, JobEvent};
use crate::error::ApiResult;
use crate::state::Shared;

/// What restoring backup `id` would do; changes nothing.
#[tauri::command]
pub async fn prepare_restore(
    state: State<'_, Shared>,
    id: String,
    passphrase: Option<String>,
) -> ApiResult<RestorePlan> {
    state.prepare_restore(id, passphrase).await
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
