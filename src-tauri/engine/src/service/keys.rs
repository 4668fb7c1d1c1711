//! The passphrase that protects the destination's backup key: set it (which makes the key),
//! check it, change it, show the key for safekeeping; and switching destination with the key.

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::Service;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::keys::{
    keyring_entry_name, BackupKey, FixedPassphrase, KeyError, PassphrasePurpose, PassphraseSource,
    PUBLIC_KEY_FILE, WRAPPED_KEY_FILE,
};
use crate::store::{self, RemoteStore};

/// Refuses a weak passphrase, saying why.
pub fn check_strength(p: &str) -> ApiResult<()> {
    match crate::keys::passphrase_weakness(p) {
        Some(why) => Err(ApiError::new(ErrorCode::WeakPassphrase, why)),
        None => Ok(()),
    }
}

/// A passphrase the door gave, or none: then the engine's request for one becomes
/// `passphrase_required` and the door asks.
pub struct GivenPassphrase(pub Option<SecretString>);

impl PassphraseSource for GivenPassphrase {
    fn passphrase(&self, _purpose: PassphrasePurpose) -> Result<SecretString, KeyError> {
        self.0
            .clone()
            .ok_or_else(|| KeyError::NoPassphrase("enter the passphrase".into()))
    }
}

#[derive(Serialize)]
pub struct KeyCreated {
    /// The key's public half (`age1...`).
    pub public_key: String,
    pub notices: Vec<String>,
}

#[derive(Serialize)]
pub struct Checked {
    pub ok: bool,
}

#[derive(Serialize)]
pub struct ShownKey {
    /// `AGE-SECRET-KEY-1...`: with it, backups can be restored without the passphrase.
    pub secret_key: String,
    pub public_key: String,
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

fn unwrap_with(store: &dyn RemoteStore, passphrase: &str) -> ApiResult<BackupKey> {
    let wrapped = store.read_file(WRAPPED_KEY_FILE)?.ok_or(KeyError::NoKey)?;
    Ok(BackupKey::unwrap(
        &wrapped,
        &SecretString::from(passphrase.to_string()),
    )?)
}

impl Service {
    /// The wrapped key of `store` opened with `passphrase` (never the keyring's copy: this checks
    /// the passphrase), checked against this device's confirmed key, and then confirmed.
    fn unwrap_checked(&self, store: &dyn RemoteStore, passphrase: &str) -> ApiResult<BackupKey> {
        let key = unwrap_with(store, passphrase)?;
        let location = store.location();
        match self.key_pins().get(&location) {
            Some(p) if p.to_string() != key.recipient().to_string() => {
                return Err(KeyError::Changed {
                    location,
                    pinned: p.to_string(),
                    found: key.recipient().to_string(),
                }
                .into())
            }
            _ => {}
        }
        let published = self.key_ring(store, &GivenPassphrase(None)).published()?;
        if published.is_some_and(|r| r.to_string() != key.recipient().to_string()) {
            return Err(KeyError::Corrupt(format!(
                "{WRAPPED_KEY_FILE} and {PUBLIC_KEY_FILE} at {location} hold different keys"
            ))
            .into());
        }
        self.key_pins().set_key(&location, &key)?;
        Ok(key)
    }

    /// The backup key of `store`: from the keyring, else opened with `passphrase`. Blocking.
    pub fn backup_key(
        &self,
        store: &dyn RemoteStore,
        passphrase: Option<String>,
    ) -> ApiResult<BackupKey> {
        let given = GivenPassphrase(passphrase.map(SecretString::from));
        let (key, notices) = self.key_ring(store, &given).identity()?;
        for n in notices {
            tracing::warn!("{n}");
        }
        Ok(key)
    }

    /// Checks that `dest` (else the configured destination) has a backup key, and makes one when
    /// it has none, asking `source` for the passphrase (the CLI: environment or prompt); unlocks
    /// the key that signs backups there for this process. What was made, if anything. Blocking.
    pub fn ensure_key(
        &self,
        dest: Option<&str>,
        source: &dyn PassphraseSource,
    ) -> ApiResult<Option<crate::keys::KeyInit>> {
        let store = match dest {
            Some(d) => self.open_dest(d)?,
            None => self.store()?,
        };
        let ring = self.key_ring(store.as_ref(), source);
        let (recipient, init) = ring.recipient_or_init()?;
        self.signer(&ring, &recipient)?;
        Ok(init)
    }

    /// Makes the destination's backup key, protected by `passphrase` (a weak one is refused).
    /// Blocking.
    pub fn set_passphrase(&self, passphrase: String) -> ApiResult<KeyCreated> {
        check_strength(&passphrase)?;
        let store = self.store()?;
        let source = FixedPassphrase(SecretString::from(passphrase));
        let init = self
            .key_ring(store.as_ref(), &source)
            .init()
            .map_err(|e| match e {
                KeyError::AlreadyExists => ApiError::new(
                    ErrorCode::KeyExists,
                    "backups at this place already have a passphrase: enter it instead",
                ),
                other => other.into(),
            })?;
        let now = self.now();
        self.update_memory(|c| c.passphrase_checked_at = Some(now))?;
        Ok(KeyCreated {
            public_key: init.recipient,
            notices: init.notices,
        })
    }

    /// Whether `passphrase` opens the backup key. On success the key is kept in the keyring (a
    /// new device needs nothing else) and the periodic reminder is reset. Blocking.
    pub fn check_passphrase(&self, passphrase: String) -> ApiResult<Checked> {
        let store = self.store()?;
        let key = match self.unwrap_checked(store.as_ref(), &passphrase) {
            Ok(k) => k,
            Err(e) if e.code == ErrorCode::WrongPassphrase => return Ok(Checked { ok: false }),
            Err(e) => return Err(e),
        };
        self.keep_unlocked(&key)
    }

    /// The way out of `key_changed` when the user replaced the destination's key on purpose:
    /// `passphrase` must open the destination's wrapped key, and that key must be the one its
    /// public file names (a planted public key alone never is); it then becomes this device's
    /// confirmed key. Blocking.
    pub fn confirm_destination_key(&self, passphrase: String) -> ApiResult<Checked> {
        let store = self.store()?;
        let key = match unwrap_with(store.as_ref(), &passphrase) {
            Ok(k) => k,
            Err(e) if e.code == ErrorCode::WrongPassphrase => return Ok(Checked { ok: false }),
            Err(e) => return Err(e),
        };
        let location = store.location();
        let published = self
            .key_ring(store.as_ref(), &GivenPassphrase(None))
            .published()?;
        if published.map(|r| r.to_string()) != Some(key.recipient().to_string()) {
            return Err(KeyError::Corrupt(format!(
                "{WRAPPED_KEY_FILE} and {PUBLIC_KEY_FILE} at {location} hold different keys: \
                 the public key there was not made with your passphrase"
            ))
            .into());
        }
        self.key_pins().set_key(&location, &key)?;
        super::lock(&self.inner.signers).remove(&location);
        tracing::info!(%location, "the destination's new backup key is confirmed");
        self.keep_unlocked(&key)
    }

    /// After the passphrase opened `key`: kept in the keyring, the reminder reset, and a backup
    /// that waited for the key runs.
    fn keep_unlocked(&self, key: &BackupKey) -> ApiResult<Checked> {
        if let Some(secrets) = self.secrets() {
            if let Err(e) = secrets.set(
                &keyring_entry_name(&key.recipient()),
                &key.to_secret_string(),
            ) {
                tracing::warn!(error = %e, "could not keep the backup key in the keyring");
            }
        }
        let now = self.now();
        self.update_memory(|c| c.passphrase_checked_at = Some(now))?;
        self.retry_after_fix();
        Ok(Checked { ok: true })
    }

    /// Rewraps the backup key with a new passphrase; backups stay as they are. Blocking.
    pub fn change_passphrase(&self, current: String, new: String) -> ApiResult<()> {
        check_strength(&new)?;
        let store = self.store()?;
        let answers = Change {
            current: SecretString::from(current),
            new: SecretString::from(new),
        };
        self.key_ring(store.as_ref(), &answers)
            .change_passphrase()?;
        let now = self.now();
        self.update_memory(|c| c.passphrase_checked_at = Some(now))?;
        Ok(())
    }

    /// The backup key itself, for safekeeping (asks for the passphrase every time). Blocking.
    pub fn show_key(&self, passphrase: String) -> ApiResult<ShownKey> {
        let store = self.store()?;
        let key = self.unwrap_checked(store.as_ref(), &passphrase)?;
        Ok(ShownKey {
            secret_key: key.to_secret_string().expose_secret().to_string(),
            public_key: key.recipient().to_string(),
        })
    }

    /// Saves the backup key into a new file at `path` (chosen by the user in the system's save
    /// dialog), private to the user (0600) and never over an existing file; the passphrase is
    /// asked every time, as for showing it. Returns the path written. Blocking.
    pub fn save_key(&self, passphrase: String, path: &std::path::Path) -> ApiResult<String> {
        if !path.is_absolute() {
            return Err(ApiError::bad_input(format!(
                "{} is not a full path: choose where to save the key",
                path.display()
            )));
        }
        let shown = self.show_key(passphrase)?;
        let text = format!(
            "Driveback backup key\n\nThis key opens your Driveback backups, even without your passphrase.\nAnyone who has it can read them: keep it offline, on paper or in a password manager.\nTo use it without Driveback: age --decrypt -i THIS_FILE backup.mdbk (see the README).\n\nPublic key: {}\n{}\n",
            shown.public_key, shown.secret_key
        );
        let mut file = crate::settings::create_new_private(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                ApiError::bad_input(format!(
                    "{} already exists: choose another name (nothing was overwritten)",
                    path.display()
                ))
            } else {
                ApiError::new(
                    crate::error::ErrorCode::IoError,
                    format!("could not save the key to {}: {e}", path.display()),
                )
            }
        })?;
        std::io::Write::write_all(&mut file, text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| {
                ApiError::new(
                    crate::error::ErrorCode::IoError,
                    format!("could not save the key to {}: {e}", path.display()),
                )
            })?;
        Ok(path.display().to_string())
    }

    /// Makes `dest` where backups go. The backup key comes along when the new place has none, so
    /// that the same passphrase opens the backups in both places. Returns what the user should
    /// know. Blocking.
    pub fn switch_destination(&self, dest: &str) -> ApiResult<Vec<String>> {
        let mut notices = Vec::new();
        let old = self.store().ok();
        let new = self.open_dest(dest)?;
        if new.read_file(PUBLIC_KEY_FILE)?.is_none() {
            if let Some(old) = old.filter(|o| o.location() != new.location()) {
                let confirmed = self.key_pins().get(&old.location());
                if let (Some(public), Some(wrapped)) = (
                    confirmed.as_ref().map(|r| format!("{r}\n").into_bytes()),
                    old.read_file(WRAPPED_KEY_FILE)?,
                ) {
                    // The wrapped key first: a public key alone would let backups be made that
                    // nothing here could open.
                    new.write_file(WRAPPED_KEY_FILE, &wrapped)?;
                    new.write_file(PUBLIC_KEY_FILE, &public)?;
                    self.key_pins().copy(&old.location(), &new.location())?;
                    notices.push(format!(
                        "your backup key now protects the backups at {} too: the same passphrase opens them",
                        super::dest_label(store::parse_dest(dest).ok().as_ref())
                    ));
                }
            }
        }
        self.update_settings(|s| s.backup.dest = Some(dest.to_string()))?;
        self.forget_store();
        Ok(notices)
    }

    /// Chooses the folder backups go to (created if missing). Blocking.
    pub fn set_destination_folder(&self, folder: &str) -> ApiResult<Vec<String>> {
        let path = std::path::PathBuf::from(folder.trim());
        if !path.is_absolute() {
            return Err(ApiError::bad_input(
                "give the folder's full path, starting with /",
            ));
        }
        std::fs::create_dir_all(&path).map_err(|e| {
            ApiError::new(
                ErrorCode::IoError,
                format!("could not use the folder {}: {e}", path.display()),
            )
        })?;
        self.switch_destination(&format!("folder:{}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passphrases_are_refused() {
        assert_eq!(
            check_strength("short1").unwrap_err().code,
            ErrorCode::WeakPassphrase
        );
        assert_eq!(
            check_strength("12345678").unwrap_err().code,
            ErrorCode::WeakPassphrase
        );
        assert!(check_strength("correct horse").is_ok());
    }
}
