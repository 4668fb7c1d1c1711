//! The commands the UI calls: each parses its input, calls one operation of the engine's
//! `Service` and hands on its `{ code, message }` error. Nothing else happens here.

pub mod backups;
pub mod connection;
pub mod drive;
pub mod passphrase;
pub mod restore;
pub mod settings;
pub mod status;

pub(crate) use driveback_engine::service::blocking;

use crate::state::Shared;

/// Runs `f` on the service off the async runtime (files, the keyring, Google Drive's blocking
/// client, scrypt).
pub(crate) async fn on_service<T: Send + 'static>(
    state: &Shared,
    f: impl FnOnce(&driveback_engine::service::Service) -> crate::error::ApiResult<T> + Send + 'static,
) -> crate::error::ApiResult<T> {
    let service = state.service.clone();
    blocking(move || f(&service)).await
}
