//! The passphrase that protects the destination's backup key: set it (which makes the key),
//! check it, change it, and show the key for safekeeping.

use driveback_engine::service::{Checked, KeyCreated, ShownKey};
use tauri::State;

use super::on_service;
use crate::error::ApiResult;
use crate::state::Shared;

/// Makes the destination's backup key, protected by `passphrase` (the UI asks for it twice and
/// warns that a lost passphrase cannot be recovered). Automatic backups can start then.
#[tauri::command]
pub async fn set_passphrase(state: State<'_, Shared>, passphrase: String) -> ApiResult<KeyCreated> {
    let created = on_service(state.inner(), move |s| s.set_passphrase(passphrase)).await?;
    state.ensure_scheduler();
    Ok(created)
}

/// Whether `passphrase` opens the backup key (then it is kept in this device's keyring).
#[tauri::command]
pub async fn check_passphrase(state: State<'_, Shared>, passphrase: String) -> ApiResult<Checked> {
    on_service(state.inner(), move |s| s.check_passphrase(passphrase)).await
}

/// Confirms a destination's replaced backup key with the passphrase that opens it.
#[tauri::command]
pub async fn confirm_destination_key(
    state: State<'_, Shared>,
    passphrase: String,
) -> ApiResult<Checked> {
    on_service(state.inner(), move |s| {
        s.confirm_destination_key(passphrase)
    })
    .await
}

/// Rewraps the backup key with a new passphrase; backups stay as they are.
#[tauri::command]
pub async fn change_passphrase(
    state: State<'_, Shared>,
    current: String,
    new: String,
) -> ApiResult<()> {
    on_service(state.inner(), move |s| s.change_passphrase(current, new)).await
}

/// The backup key itself, for safekeeping (asks for the passphrase every time).
#[tauri::command]
pub async fn show_key(state: State<'_, Shared>, passphrase: String) -> ApiResult<ShownKey> {
    on_service(state.inner(), move |s| s.show_key(passphrase)).await
}

/// Saves the backup key into a new private file the user chose (asks for the passphrase every
/// time). The path written.
#[tauri::command]
pub async fn save_key(
    state: State<'_, Shared>,
    passphrase: String,
    path: String,
) -> ApiResult<String> {
    on_service(state.inner(), move |s| {
        s.save_key(passphrase, std::path::Path::new(&path))
    })
    .await
}
