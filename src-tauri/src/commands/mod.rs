//! The commands the UI calls. Each parses its input, calls the engine (through `ops` where a
//! command does more than one thing) and maps errors to `{ code, message }`.

pub mod backups;
pub mod connection;
pub mod passphrase;
pub mod pending;
pub mod restore;
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
