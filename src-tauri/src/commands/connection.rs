//! Connecting MongoDB, choosing the database, and choosing where backups go.

use std::path::PathBuf;

use driveback_engine::keys::{PUBLIC_KEY_FILE, WRAPPED_KEY_FILE};
use driveback_engine::mongo::{self, export};
use driveback_engine::store;
use secrecy::ExposeSecret;
use serde::Serialize;
use tauri::State;

use super::status::{self, AppStateView};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Shared};

#[derive(Serialize)]
pub struct ConnectionView {
    /// Hosts only, never credentials.
    pub host: String,
    pub databases: Vec<String>,
}

/// Databases a person may back up: the server's own are left out.
const SYSTEM_DATABASES: [&str; 3] = ["admin", "local", "config"];

async fn databases(uri: &str) -> ApiResult<ConnectionView> {
    let client = mongo::connect(uri).await?;
    let mut names = client
        .list_database_names()
        .await
        .map_err(|e| ApiError::new("database_error", mongo::short_reason(&e)))?;
    names.retain(|n| !SYSTEM_DATABASES.contains(&n.as_str()));
    names.sort();
    Ok(ConnectionView {
        host: mongo::redact_uri(uri),
        databases: names,
    })
}

/// Tests a connection string and lists its databases; saves nothing.
#[tauri::command]
pub async fn test_connection(uri: String) -> ApiResult<ConnectionView> {
    databases(uri.trim()).await
}

/// The databases of the connected server.
#[tauri::command]
pub async fn list_databases(state: State<'_, Shared>) -> ApiResult<ConnectionView> {
    let uri = state.require_mongo_uri()?;
    databases(uri.expose_secret()).await
}

#[derive(Serialize)]
pub struct Saved {
    pub state: AppStateView,
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
    let uri = match uri.map(|u| u.trim().to_string()).filter(|u| !u.is_empty()) {
        Some(u) => u,
        None => state.require_mongo_uri()?.expose_secret().to_string(),
    };
    let database = database.trim().to_string();
    if database.is_empty() {
        return Err(ApiError::new("bad_input", "choose a database to back up"));
    }
    let client = mongo::connect(&uri).await?;
    if export::describe_database(&client.database(&database))
        .await?
        .is_empty()
    {
        return Err(mongo::MongoError::NoSuchDatabase(database).into());
    }
    let notice = state.save_mongo_uri(&uri)?;
    state.update_settings(|s| s.backup.database = Some(database))?;
    let state = state.inner().clone();
    let view = super::blocking(move || Ok(status::build(&state))).await?;
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
) -> ApiResult<AppStateView> {
    let path = PathBuf::from(folder.trim());
    if !path.is_absolute() {
        return Err(ApiError::new(
            "bad_input",
            "give the folder's full path, starting with /",
        ));
    }
    let state = state.inner().clone();
    super::blocking(move || {
        std::fs::create_dir_all(&path).map_err(|e| {
            ApiError::new(
                "io_error",
                format!("could not use the folder {}: {e}", path.display()),
            )
        })?;
        switch_destination(&state, &format!("folder:{}", path.display()))?;
        Ok(status::build(&state))
    })
    .await
}

/// Makes `dest` where backups go. The backup key comes along when the new place has none, so
/// that the same passphrase opens the backups in both places. Returns what the user should know.
/// Blocking.
pub fn switch_destination(state: &AppState, dest: &str) -> ApiResult<Vec<String>> {
    let mut notices = Vec::new();
    let old = state.store().ok();
    let new = state.open_dest(dest)?;
    if new.read_file(PUBLIC_KEY_FILE)?.is_none() {
        if let Some(old) = old.filter(|o| o.location() != new.location()) {
            if let (Some(public), Some(wrapped)) = (
                old.read_file(PUBLIC_KEY_FILE)?,
                old.read_file(WRAPPED_KEY_FILE)?,
            ) {
                // The wrapped key first: a public key alone would let backups be made that
                // nothing here could open.
                new.write_file(WRAPPED_KEY_FILE, &wrapped)?;
                new.write_file(PUBLIC_KEY_FILE, &public)?;
                notices.push(format!(
                    "your backup key now protects the backups at {} too: the same passphrase opens them",
                    status::dest_label(store::parse_dest(dest).ok().as_ref())
                ));
            }
        }
    }
    state.update_settings(|s| s.backup.dest = Some(dest.to_string()))?;
    state.forget_store();
    Ok(notices)
}
