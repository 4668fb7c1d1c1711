//! The passphrase that protects the destination's backup key: set it (which makes the key),
//! check it, change it, and show the key for safekeeping.

use std::sync::Arc;

use driveback_engine::keys::{
    keyring_entry_name, BackupKey, FixedPassphrase, KeyError, KeyRing, PassphrasePurpose,
    PassphraseSource, WRAPPED_KEY_FILE,
};
use driveback_engine::store::RemoteStore;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tauri::State;

use super::blocking;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, Shared};

/// Refuses a weak passphrase, saying why.
pub fn check_strength(p: &str) -> ApiResult<()> {
    match driveback_engine::keys::passphrase_weakness(p) {
        Some(why) => Err(ApiError::new("weak_passphrase", why)),
        None => Ok(()),
    }
}

/// A passphrase the UI gave, or none: then the engine's request for one becomes
/// `passphrase_required` and the UI asks.
pub struct GivenPassphrase(pub Option<SecretString>);

impl PassphraseSource for GivenPassphrase {
    fn passphrase(&self, _purpose: PassphrasePurpose) -> Result<SecretString, KeyError> {
        self.0
            .clone()
            .ok_or_else(|| KeyError::NoPassphrase("enter the passphrase".into()))
    }
}

/// The backup key of `store`: from the keyring, else opened with `passphrase`.
pub fn backup_key(
    state: &AppState,
    store: &dyn RemoteStore,
    passphrase: Option<String>,
) -> ApiResult<BackupKey> {
    let given = GivenPassphrase(passphrase.map(SecretString::from));
    let (key, notices) = KeyRing::new(store, state.secrets(), &given).identity()?;
    for n in notices {
        tracing::warn!("{n}");
    }
    Ok(key)
}

#[derive(Serialize)]
pub struct KeyCreated {
    /// The key's public half (`age1...`).
    pub public_key: String,
    pub notices: Vec<String>,
}

/// Makes the destination's backup key, protected by `passphrase` (the UI asks for it twice and
/// warns that a lost passphrase cannot be recovered).
#[tauri::command]
pub async fn set_passphrase(state: State<'_, Shared>, passphrase: String) -> ApiResult<KeyCreated> {
    check_strength(&passphrase)?;
    let shared = state.inner().clone();
    let created = blocking(move || {
        let state = shared;
        let store = state.store()?;
        let source = FixedPassphrase(SecretString::from(passphrase));
        let init = KeyRing::new(store.as_ref(), state.secrets(), &source)
            .init()
            .map_err(|e| match e {
                KeyError::AlreadyExists => ApiError::new(
                    "key_exists",
                    "backups at this place already have a passphrase: enter it instead",
                ),
                other => other.into(),
            })?;
        state.update_config(|c| c.passphrase_checked_at = Some(chrono::Utc::now()))?;
        Ok(KeyCreated {
            public_key: init.recipient,
            notices: init.notices,
        })
    })
    .await?;
    // Set up: automatic backups can start.
    crate::runner::ensure_scheduler(state.inner());
    Ok(created)
}

fn unwrap_with(store: &dyn RemoteStore, passphrase: &str) -> ApiResult<BackupKey> {
    let wrapped = store.read_file(WRAPPED_KEY_FILE)?.ok_or(KeyError::NoKey)?;
    Ok(BackupKey::unwrap(
        &wrapped,
        &SecretString::from(passphrase.to_string()),
    )?)
}

#[derive(Serialize)]
pub struct Checked {
    pub ok: bool,
}

/// Whether `passphrase` opens the backup key. On success the key is kept in the keyring (a new
/// device needs nothing else) and the periodic reminder is reset.
#[tauri::command]
pub async fn check_passphrase(state: State<'_, Shared>, passphrase: String) -> ApiResult<Checked> {
    let state = state.inner().clone();
    blocking(move || {
        let store = state.store()?;
        let key = match unwrap_with(store.as_ref(), &passphrase) {
            Ok(k) => k,
            Err(e) if e.code == "wrong_passphrase" => return Ok(Checked { ok: false }),
            Err(e) => return Err(e),
        };
        if let Some(secrets) = state.secrets() {
            if let Err(e) = secrets.set(
                &keyring_entry_name(&key.recipient()),
                &key.to_secret_string(),
            ) {
                tracing::warn!(error = %e, "could not keep the backup key in the keyring");
            }
        }
        state.update_config(|c| c.passphrase_checked_at = Some(chrono::Utc::now()))?;
        Ok(Checked { ok: true })
    })
    .await
}

/// Answers the engine's questions when changing the passphrase.
struct Change {
    current: SecretString,
    new: SecretString,
}

impl PassphraseSource for Change {
    fn passphrase(&self, purpose: PassphrasePurpose) -> Result<SecretString, KeyError> {
        Ok(match purpose {
            PassphrasePurpose::New => self.new.clone(),
            _ => self.current.clone(),
        })
    }
}

/// Rewraps the backup key with a new passphrase; backups stay as they are.
#[tauri::command]
pub async fn change_passphrase(
    state: State<'_, Shared>,
    current: String,
    new: String,
) -> ApiResult<()> {
    check_strength(&new)?;
    let state = state.inner().clone();
    blocking(move || {
        let store = state.store()?;
        let answers = Change {
            current: SecretString::from(current),
            new: SecretString::from(new),
        };
        KeyRing::new(store.as_ref(), state.secrets(), &answers).change_passphrase()?;
        state.update_config(|c| c.passphrase_checked_at = Some(chrono::Utc::now()))?;
        Ok(())
    })
    .await
}

#[derive(Serialize)]
pub struct ShownKey {
    /// `AGE-SECRET-KEY-1...`: with it, backups can be restored without the passphrase.
    pub secret_key: String,
    pub public_key: String,
}

/// The backup key itself, for safekeeping (asks for the passphrase every time).
#[tauri::command]
pub async fn show_key(state: State<'_, Shared>, passphrase: String) -> ApiResult<ShownKey> {
    let state: Arc<AppState> = state.inner().clone();
    blocking(move || {
        let store = state.store()?;
        let key = unwrap_with(store.as_ref(), &passphrase)?;
        Ok(ShownKey {
            secret_key: key.to_secret_string().expose_secret().to_string(),
            public_key: key.recipient().to_string(),
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passphrases_are_refused() {
        assert_eq!(
            check_strength("short1").unwrap_err().code,
            "weak_passphrase"
        );
        assert_eq!(
            check_strength("12345678").unwrap_err().code,
            "weak_passphrase"
        );
        assert!(check_strength("correct horse").is_ok());
    }
}
