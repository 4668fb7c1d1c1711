//! Where Driveback keeps secrets on this device: the OS keyring (Secret Service on Linux,
//! Keychain on macOS, Credential Manager on Windows). There is no plaintext fallback: when no
//! keyring is available, callers ask the user again instead.

use std::collections::HashMap;
use std::sync::Mutex;

use secrecy::{ExposeSecret, SecretString};

/// Keyring service name under which Driveback's entries live.
pub const SERVICE: &str = "driveback";

/// Connection string of the MongoDB server (it may hold a password).
pub const MONGO_URI: &str = "mongo-uri";
/// OAuth refresh token for Google Drive.
pub const GOOGLE_REFRESH_TOKEN: &str = "google-refresh-token";
/// Secret of the Google OAuth client the user set up (its ID is the setting `google.client_id`).
pub const GOOGLE_CLIENT_SECRET: &str = "google-client-secret";
/// Password of the SMTP server used for failure e-mails.
pub const SMTP_PASSWORD: &str = "smtp-password";

pub trait SecretStore: Send + Sync {
    fn get(&self, key: &str) -> Result<Option<SecretString>, SecretError>;
    fn set(&self, key: &str, value: &SecretString) -> Result<(), SecretError>;
    /// Deleting an entry that does not exist is not an error.
    fn delete(&self, key: &str) -> Result<(), SecretError>;
}

#[cfg(target_os = "linux")]
const UNAVAILABLE_HINT: &str =
    " (on Linux, a Secret Service such as gnome-keyring must be running and unlocked)";
#[cfg(not(target_os = "linux"))]
const UNAVAILABLE_HINT: &str = "";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the OS keyring is not available: {0}{hint}", hint = UNAVAILABLE_HINT)]
    Unavailable(String),
    #[error("the OS keyring is locked; unlock it and try again ({0})")]
    Locked(String),
    #[error("the OS keyring failed: {0}")]
    Other(String),
}

/// The OS keyring, through the `keyring` crate.
pub struct KeyringSecretStore {
    service: String,
}

impl Default for KeyringSecretStore {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyringSecretStore {
    pub fn new() -> Self {
        Self::with_service(SERVICE)
    }

    /// A store under another service name (tests use a unique one per run).
    pub fn with_service(s: &str) -> Self {
        Self {
            service: s.to_string(),
        }
    }

    /// Ok if a keyring answers (looks up an entry that need not exist).
    pub fn check_available(&self) -> Result<(), SecretError> {
        self.get("availability-probe").map(|_| ())
    }

    fn entry(&self, key: &str) -> Result<keyring::Entry, SecretError> {
        keyring::Entry::new(&self.service, key).map_err(map_error)
    }
}

fn map_error(e: keyring::Error) -> SecretError {
    match e {
        keyring::Error::PlatformFailure(inner) => SecretError::Unavailable(inner.to_string()),
        keyring::Error::NoStorageAccess(inner) => {
            let detail = inner.to_string();
            // A Secret Service without a default collection (a fresh headless session) answers
            // every lookup of a missing entry with "no result": it cannot keep anything.
            if cfg!(target_os = "linux") && detail.contains("no result") {
                SecretError::Unavailable(format!(
                    "the Secret Service has no default keyring ({detail})"
                ))
            } else {
                SecretError::Locked(detail)
            }
        }
        other => SecretError::Other(other.to_string()),
    }
}

impl SecretStore for KeyringSecretStore {
    fn get(&self, key: &str) -> Result<Option<SecretString>, SecretError> {
        match self.entry(key)?.get_password() {
            Ok(value) => Ok(Some(SecretString::from(value))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(map_error(e)),
        }
    }

    fn set(&self, key: &str, value: &SecretString) -> Result<(), SecretError> {
        self.entry(key)?
            .set_password(value.expose_secret())
            .map_err(map_error)
    }

    fn delete(&self, key: &str) -> Result<(), SecretError> {
        match self.entry(key)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(map_error(e)),
        }
    }
}

/// Secrets held in memory only: for tests, and for processes told to keep nothing.
#[derive(Default)]
pub struct MemorySecretStore {
    entries: Mutex<HashMap<String, SecretString>>,
}

impl MemorySecretStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, SecretString>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SecretStore for MemorySecretStore {
    fn get(&self, key: &str) -> Result<Option<SecretString>, SecretError> {
        Ok(self.entries().get(key).cloned())
    }

    fn set(&self, key: &str, value: &SecretString) -> Result<(), SecretError> {
        self.entries().insert(key.to_string(), value.clone());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<(), SecretError> {
        self.entries().remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(store: &dyn SecretStore, key: &str) {
        assert!(store.get(key).unwrap().is_none());
        store.delete(key).unwrap(); // missing: fine
        store.set(key, &SecretString::from("first")).unwrap();
        assert_eq!(store.get(key).unwrap().unwrap().expose_secret(), "first");
        store
            .set(key, &SecretString::from("second, with ünicode"))
            .unwrap();
        assert_eq!(
            store.get(key).unwrap().unwrap().expose_secret(),
            "second, with ünicode"
        );
        store.delete(key).unwrap();
        assert!(store.get(key).unwrap().is_none());
        store.delete(key).unwrap();
    }

    #[test]
    fn memory_store_keeps_secrets_until_deleted() {
        let store = MemorySecretStore::new();
        exercise(&store, MONGO_URI);
        store.set("a", &SecretString::from("1")).unwrap();
        store.set("b", &SecretString::from("2")).unwrap();
        assert_eq!(store.get("a").unwrap().unwrap().expose_secret(), "1");
        assert_eq!(store.get("b").unwrap().unwrap().expose_secret(), "2");
    }

    #[test]
    fn unavailable_keyring_message_says_what_to_do() {
        let msg = SecretError::Unavailable("no D-Bus session".into()).to_string();
        assert!(msg.starts_with("the OS keyring is not available: no D-Bus session"));
        #[cfg(target_os = "linux")]
        assert!(msg.contains("Secret Service"), "{msg}");
    }

    /// A keyring store under a service name unique to this run, if a keyring answers.
    ///
    /// Without a session bus the test has nothing to talk to and is skipped, unless
    /// `DRIVEBACK_REQUIRE_KEYRING=1` says a keyring must be there: then it fails.
    fn keyring_store() -> Option<KeyringSecretStore> {
        let required = std::env::var("DRIVEBACK_REQUIRE_KEYRING").is_ok_and(|v| v == "1");
        let service = format!("driveback-test-{}", crate::manifest::new_backup_id());
        let store = KeyringSecretStore::with_service(&service);
        let has_bus = cfg!(not(target_os = "linux"))
            || std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some();
        let probe = if has_bus {
            store.check_available()
        } else {
            Err(SecretError::Unavailable(
                "DBUS_SESSION_BUS_ADDRESS is not set".into(),
            ))
        };
        match probe {
            Ok(()) => Some(store),
            Err(e) if required => panic!("DRIVEBACK_REQUIRE_KEYRING=1 but {e}"),
            Err(e) => {
                eprintln!("skipping OS keyring test: {e}");
                None
            }
        }
    }

    #[test]
    fn os_keyring_stores_reads_and_deletes() {
        let Some(store) = keyring_store() else {
            return;
        };
        exercise(&store, "roundtrip");
        // Entries of one service do not leak into another.
        store.set(SMTP_PASSWORD, &SecretString::from("x")).unwrap();
        let other = KeyringSecretStore::with_service(&format!("{}-other", store.service));
        assert!(other.get(SMTP_PASSWORD).unwrap().is_none());
        store.delete(SMTP_PASSWORD).unwrap();
    }

    #[test]
    fn os_keyring_holds_a_backup_key_sized_secret() {
        let Some(store) = keyring_store() else {
            return;
        };
        let key = crate::keys::BackupKey::generate();
        let name = format!("backup-key:{}", key.recipient());
        store.set(&name, &key.to_secret_string()).unwrap();
        let back = store.get(&name).unwrap().unwrap();
        assert_eq!(back.expose_secret(), key.to_secret_string().expose_secret());
        store.delete(&name).unwrap();
    }

    #[test]
    fn os_keyring_spares_the_passphrase_on_restore() {
        use crate::keys::{keyring_entry_name, FixedPassphrase, KeyError, KeyRing};
        use crate::keys::{PassphrasePurpose, PassphraseSource};
        let Some(secrets) = keyring_store() else {
            return;
        };
        struct NoPrompt;
        impl PassphraseSource for NoPrompt {
            fn passphrase(&self, _: PassphrasePurpose) -> Result<SecretString, KeyError> {
                Err(KeyError::NoPassphrase("no passphrase in this test".into()))
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::folder::FolderStore::new(dir.path());
        let pass = FixedPassphrase(SecretString::from("pass"));
        let init = KeyRing::new(&store, Some(&secrets), &pass).init().unwrap();
        assert!(init.notices.is_empty(), "{:?}", init.notices);

        let (key, notices) = KeyRing::new(&store, Some(&secrets), &NoPrompt)
            .identity()
            .unwrap();
        assert_eq!(key.recipient().to_string(), init.recipient);
        assert!(notices.is_empty());
        secrets
            .delete(&keyring_entry_name(&key.recipient()))
            .unwrap();
    }
}
