//! What Driveback remembers about the connected Google account that is not secret: the email,
//! the name, the scope, when it was connected, and whether the user must connect again. The
//! refresh token itself lives in the OS keyring only.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{AuthError, DriveScope};

/// File name of the account record inside the config directory.
pub const ACCOUNT_FILE: &str = "google-account.json";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub email: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub scope: DriveScope,
    /// The scopes Google granted, space-separated, as the token endpoint reported them.
    #[serde(default)]
    pub granted_scopes: String,
    pub connected_at: DateTime<Utc>,
    /// Google no longer honours the sign-in (revoked, expired): the user must connect again.
    #[serde(default)]
    pub reconnect_needed: bool,
    /// Why, in Google's words, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_reason: Option<String>,
}

/// Driveback's configuration directory: `DRIVEBACK_CONFIG_DIR`, else the platform's
/// (`~/.config/driveback` on Linux).
pub fn config_dir_from_env() -> Result<PathBuf, AuthError> {
    if let Some(d) = std::env::var_os("DRIVEBACK_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    directories::ProjectDirs::from("app", "driveback", "Driveback")
        .map(|p| p.config_dir().to_path_buf())
        .ok_or_else(|| {
            AuthError::Io(
                "no home directory to keep Driveback's settings in (set DRIVEBACK_CONFIG_DIR)"
                    .into(),
            )
        })
}

/// The account record on disk, written atomically (temporary file, then rename).
#[derive(Clone, Debug)]
pub struct AccountFile {
    path: PathBuf,
}

impl AccountFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        AccountFile { path: path.into() }
    }

    /// `ACCOUNT_FILE` inside `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self::new(dir.join(ACCOUNT_FILE))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn load(&self) -> Result<Option<Account>, AuthError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                AuthError::Io(format!(
                    "the account file {} is damaged ({e}); run `driveback disconnect` and connect again",
                    self.path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io_error("reading", e)),
        }
    }

    pub fn save(&self, account: &Account) -> Result<(), AuthError> {
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.io_error("creating the folder of", e))?;
        let mut json = serde_json::to_vec_pretty(account)
            .map_err(|e| AuthError::Io(format!("encoding the account record: {e}")))?;
        json.push(b'\n');
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ));
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            // Make the rename itself durable.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok::<_, std::io::Error>(())
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(self.io_error("writing", e));
        }
        Ok(())
    }

    /// Deleting a file that does not exist is not an error.
    pub fn delete(&self) -> Result<(), AuthError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io_error("deleting", e)),
        }
    }

    /// Record that the user must connect again (no-op without an account record).
    pub fn mark_reconnect_needed(&self, reason: &str) -> Result<(), AuthError> {
        if let Some(mut a) = self.load()? {
            if !a.reconnect_needed || a.reconnect_reason.as_deref() != Some(reason) {
                a.reconnect_needed = true;
                a.reconnect_reason = Some(reason.to_string());
                self.save(&a)?;
            }
        }
        Ok(())
    }

    fn io_error(&self, what: &str, e: std::io::Error) -> AuthError {
        AuthError::Io(format!("{what} {}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            email: "a@example.com".into(),
            display_name: Some("A".into()),
            scope: DriveScope::AppData,
            granted_scopes: "openid".into(),
            connected_at: Utc::now(),
            reconnect_needed: false,
            reconnect_reason: None,
        }
    }

    #[test]
    fn saves_loads_marks_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let f = AccountFile::in_dir(&dir.path().join("nested"));
        assert_eq!(f.load().unwrap(), None);
        f.mark_reconnect_needed("gone").unwrap(); // nothing to mark
        assert_eq!(f.load().unwrap(), None);
        let a = account();
        f.save(&a).unwrap();
        assert_eq!(f.load().unwrap(), Some(a.clone()));
        f.mark_reconnect_needed("Token has been expired or revoked.")
            .unwrap();
        let marked = f.load().unwrap().unwrap();
        assert!(marked.reconnect_needed);
        assert_eq!(
            marked.reconnect_reason.as_deref(),
            Some("Token has been expired or revoked.")
        );
        // Only the record is left behind: no temporary files.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("nested"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(ACCOUNT_FILE)]);
        f.delete().unwrap();
        f.delete().unwrap();
        assert_eq!(f.load().unwrap(), None);
    }

    #[test]
    fn a_damaged_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = AccountFile::in_dir(dir.path());
        std::fs::write(f.path(), b"{not json").unwrap();
        let e = f.load().unwrap_err().to_string();
        assert!(e.contains("damaged"), "{e}");
    }
}
