//! Connecting MongoDB, choosing the database, and choosing where backups go.

use driveback_engine::service::StatusView;
use serde::Serialize;
use tauri::State;

use super::on_service;
use crate::error::ApiResult;
use crate::state::Shared;

#[derive(Serialize)]
pub struct ConnectionView {
    /// Hosts only, never credentials.
    pub host: String,
    pub databases: Vec<String>,
}

/// Tests a connection string and lists its databases; saves nothing.
#[tauri::command]
pub async fn test_connection(state: State<'_, Shared>, uri: String) -> ApiResult<ConnectionView> {
    let (host, databases) = state.list_databases(Some(uri)).await?;
    Ok(ConnectionView { host, databases })
}

/// The databases of the connected server.
#[tauri::command]
pub async fn list_databases(state: State<'_, Shared>) -> ApiResult<ConnectionView> {
    let (host, databases) = state.list_databases(None).await?;
    Ok(ConnectionView { host, databases })
}

#[derive(Serialize)]
pub struct Saved {
    pub state: StatusView,
    /// Something the user should know (e.g. no keyring: the URI is kept for this session only).
    pub notice: Option<String>,
}

/// Connects to MongoDB with `uri` (or the current connection when `None`), checks `database`
/// has collections, then keeps the URI in the OS keyring and the database name in the settings.
#[tauri::command]
pub async fn save_connection(
    state: State<'_, Shared>,
    uri: Option<String>,
    database: String,
) -> ApiResult<Saved> {
    let notice = state.save_connection(uri, database).await?;
    let view = on_service(state.inner(), |s| Ok(s.status_view())).await?;
    Ok(Saved {
        state: view,
        notice,
    })
}

/// Chooses the folder backups go to (created if missing).
#[tauri::command]
pub async fn set_destination_folder(
    state: State<'_, Shared>,
    folder: String,
) -> ApiResult<StatusView> {
    on_service(state.inner(), move |s| {
        s.set_destination_folder(&folder)?;
        Ok(s.status_view())
    })
    .await
}
