//! Connect Google Drive (the system browser, a loopback redirect, PKCE and state: all in the
//! engine's `GoogleAuth::connect`), give up waiting, and disconnect (which revokes the grant).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use driveback_engine::auth::{
    Browser, ConnectEvent, ConnectOptions, DriveScope, Revocation, DEFAULT_CONNECT_TIMEOUT,
};
use serde::Serialize;
use tauri::State;

use super::blocking;
use super::connection::switch_destination;
use super::status::{self, AppStateView};
use crate::error::{ApiError, ApiResult};
use crate::state::Shared;

/// Where backups go once Drive is connected: its hidden app folder.
pub const DRIVE_DEST: &str = "drive";

#[derive(Serialize)]
pub struct DriveConnected {
    pub email: String,
    pub state: AppStateView,
    pub notices: Vec<String>,
}

/// Opens Google's consent page in the system browser and waits (up to five minutes) for the
/// answer on a loopback address; then backups go to Google Drive's hidden app folder.
#[tauri::command]
pub async fn connect_drive(state: State<'_, Shared>) -> ApiResult<DriveConnected> {
    let google = state.google()?;
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let mut waiting = state.connect_cancel.lock().unwrap();
        if waiting.is_some() {
            return Err(ApiError::new(
                "busy",
                "a Google sign-in is already waiting for the browser: finish it there, or cancel it",
            ));
        }
        *waiting = Some(cancel.clone());
    }
    let shared = state.inner().clone();
    let connected = blocking(move || {
        let emitter = shared.clone();
        google
            .connect(ConnectOptions {
                scope: DriveScope::AppData,
                browser: Browser::from_env(false),
                timeout: DEFAULT_CONNECT_TIMEOUT,
                cancel: Some(cancel),
                on_event: Box::new(move |e| match e {
                    // Shown in the waiting dialog, in case no browser opened.
                    ConnectEvent::AuthorizeUrl(url) => {
                        emitter.emit("drive-connect-url", serde_json::json!({ "url": url }))
                    }
                    ConnectEvent::BrowserFailed(why) => {
                        tracing::warn!(%why, "could not open the browser for Google sign-in")
                    }
                    ConnectEvent::Refused(why) => {
                        tracing::warn!(%why, "refused an answer that was not for this sign-in")
                    }
                    ConnectEvent::BrowserOpened | ConnectEvent::Exchanging => {}
                }),
            })
            .map_err(ApiError::from)
    })
    .await;
    *state.connect_cancel.lock().unwrap() = None;
    let connected = connected?;
    let shared = state.inner().clone();
    blocking(move || {
        shared.forget_store();
        let notices = switch_destination(&shared, DRIVE_DEST)?;
        Ok(DriveConnected {
            email: connected.account.email,
            state: status::build(&shared),
            notices,
        })
    })
    .await
}

/// Gives up a sign-in that is waiting for the browser. Whether one was waiting.
#[tauri::command]
pub fn cancel_connect_drive(state: State<'_, Shared>) -> bool {
    match state.connect_cancel.lock().unwrap().as_ref() {
        Some(c) => {
            c.store(true, Ordering::SeqCst);
            true
        }
        None => false,
    }
}

#[derive(Serialize)]
pub struct DriveDisconnected {
    pub state: AppStateView,
    pub message: String,
}

/// Revokes Driveback's access at Google and forgets the sign-in on this computer. Backups already
/// on Drive stay there; new ones need Drive connected again, or a folder.
#[tauri::command]
pub async fn disconnect_drive(state: State<'_, Shared>) -> ApiResult<DriveDisconnected> {
    let google = state.google()?;
    let shared = state.inner().clone();
    blocking(move || {
        let done = google.disconnect().map_err(ApiError::from)?;
        shared.forget_store();
        // Backups still go to Drive: the home screen says it is not connected, with Connect and
        // "Use a folder" next to it, and the health says no backup can be made.
        let who = done.email.unwrap_or_else(|| "the Google account".into());
        let message = match done.revocation {
            None | Some(Revocation::Revoked) | Some(Revocation::AlreadyRevoked) => {
                format!("Disconnected {who}: Driveback's access to Google Drive is revoked.")
            }
            Some(Revocation::Failed(why)) => format!(
                "Disconnected {who} on this computer, but Google could not be told ({why}): remove Driveback at https://myaccount.google.com/permissions"
            ),
        };
        Ok(DriveDisconnected {
            state: status::build(&shared),
            message,
        })
    })
    .await
}
