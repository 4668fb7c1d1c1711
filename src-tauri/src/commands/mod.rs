//! The commands the UI calls. Each parses its input, calls the engine (through `ops` where a
//! command does more than one thing) and maps errors to `{ code, message }`.

pub mod backups;
pub mod connection;
pub mod drive;
pub mod passphrase;
pub mod restore;
pub mod settings;
pub mod status;

use crate::error::{ApiError, ApiResult};

/// Runs blocking engine work (files, scrypt) off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

/// The destination backups go to, opened off the async runtime (Google Drive may refresh its
/// sign-in first).
pub(crate) async fn store_of(
    state: &crate::state::Shared,
) -> ApiResult<std::sync::Arc<dyn driveback_engine::store::RemoteStore>> {
    let state = state.clone();
    blocking(move || state.store()).await
}
