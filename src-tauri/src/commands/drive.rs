//! Connect Google Drive (the system browser, a loopback redirect, PKCE and state: all in the
//! engine), give up waiting, and disconnect (which revokes the grant).

use driveback_engine::service::StatusView;
use serde::Serialize;
use tauri::State;

use super::on_service;
use crate::error::ApiResult;
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
pub async fn connect_drive(state: State<'_, Shared>) -> ApiResult<DriveConnected> {
    let shared = state.inner().clone();
    // The consent page's address is shown in the waiting dialog, in case no browser opened.
    let on_url =
        move |url: &str| shared.emit("drive-connect-url", serde_json::json!({ "url": url }));
    on_service(state.inner(), move |s| {
        let done = s.connect_drive(on_url)?;
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
