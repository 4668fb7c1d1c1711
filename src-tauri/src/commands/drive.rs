//! Connect Google Drive (the system browser, a loopback redirect, PKCE and state: all in the
//! engine), give up waiting, and disconnect (which revokes the grant); the OAuth client it signs
//! in with (shown, and set up from a pasted ID and secret or the downloaded client file).

use driveback_engine::auth::DriveScope;
use driveback_engine::service::{GoogleClientStatus, StatusView};
use serde::{Deserialize, Serialize};
use tauri::State;

use super::on_service;
use crate::error::{ApiError, ApiResult};
use crate::state::Shared;

#[derive(Serialize)]
pub struct DriveConnected {
    pub email: String,
    pub state: StatusView,
    pub notices: Vec<String>,
}

/// Opens Google's consent page in the system browser and waits (up to five minutes) for the
/// answer; then backups go to Google Drive's hidden app folder.
#[tauri::command]
pub async fn connect_drive(
    state: State<'_, Shared>,
    scope: Option<String>,
) -> ApiResult<DriveConnected> {
    // "appdata" (the hidden app folder, the default) or "file" (a visible folder).
    let scope = match scope.as_deref() {
        None => DriveScope::AppData,
        Some(name) => DriveScope::parse(name).ok_or_else(|| {
            ApiError::bad_input(format!(
                "unknown place in Drive '{name}': use appdata (the hidden app folder) or file (a visible folder)"
            ))
        })?,
    };
    let shared = state.inner().clone();
    // The consent page's address is shown in the waiting dialog, in case no browser opened.
    let on_url =
        move |url: &str| shared.emit("drive-connect-url", serde_json::json!({ "url": url }));
    on_service(state.inner(), move |s| {
        let done = s.connect_drive(scope, on_url)?;
        Ok(DriveConnected {
            email: done.email,
            state: s.status_view(),
            notices: done.notices,
        })
    })
    .await
}

/// Gives up a sign-in that is waiting for the browser. Whether one was waiting.
#[tauri::command]
pub fn cancel_connect_drive(state: State<'_, Shared>) -> bool {
    state.cancel_connect_drive()
}

#[derive(Serialize)]
pub struct DriveDisconnected {
    pub state: StatusView,
    pub message: String,
}

/// Revokes Driveback's access at Google and forgets the sign-in on this computer. Backups already
/// on Drive stay there; new ones need Drive connected again, or a folder.
#[tauri::command]
pub async fn disconnect_drive(state: State<'_, Shared>) -> ApiResult<DriveDisconnected> {
    on_service(state.inner(), |s| {
        let message = s.disconnect_drive()?;
        Ok(DriveDisconnected {
            state: s.status_view(),
            message,
        })
    })
    .await
}

/// Which OAuth client sign-in uses (never its secret), or how to set one up.
#[tauri::command]
pub async fn google_client_status(state: State<'_, Shared>) -> ApiResult<GoogleClientStatus> {
    on_service(state.inner(), |s| Ok(s.google_client_status())).await
}

/// A client as the setup dialog gives it: the downloaded `client_secret_*.json` (its text, read
/// in the webview), or the ID and secret pasted from Google Cloud Console.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum ClientInput {
    File { file_contents: String },
    Pasted { id: String, secret: String },
}

#[derive(Serialize)]
pub struct GoogleClientSet {
    pub client: GoogleClientStatus,
    pub state: StatusView,
}

/// Sets up the user's own OAuth client: the secret goes to the OS keyring, the ID to the
/// settings. A client that cannot be used is refused in one sentence (`bad_input`) and nothing
/// changes.
#[tauri::command]
pub async fn set_google_client(
    state: State<'_, Shared>,
    client: ClientInput,
) -> ApiResult<GoogleClientSet> {
    on_service(state.inner(), move |s| {
        let client = match client {
            ClientInput::File { file_contents } => {
                s.set_google_client_file(file_contents.as_bytes())?
            }
            ClientInput::Pasted { id, secret } => s.set_google_client(&id, &secret)?,
        };
        Ok(GoogleClientSet {
            client,
            state: s.status_view(),
        })
    })
    .await
}
