//! What the app remembers of its own screens (`app-ui.json`). What to back up, where, when and
//! whom to tell is in the engine's `settings.json`, shared with the `driveback` CLI; secrets are
//! in the OS keyring.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UiMemory {
    /// "Closing keeps Driveback running in the tray" was said.
    pub tray_notice_shown: bool,
    /// When the user last showed they still know the passphrase.
    pub passphrase_checked_at: Option<DateTime<Utc>>,
}

impl UiMemory {
    /// Reads the file; a missing or unreadable file gives the defaults (a broken file is logged
    /// and then replaced on the next save).
    pub fn load(path: &Path) -> UiMemory {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable settings");
                UiMemory::default()
            }),
            Err(_) => UiMemory::default(),
        }
    }

    /// Writes the file atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        crate::settings::write_private_atomic(path, &serde_json::to_vec_pretty(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app-ui.json");
        assert_eq!(UiMemory::load(&path), UiMemory::default());
        let c = UiMemory {
            tray_notice_shown: true,
            passphrase_checked_at: None,
        };
        c.save(&path).unwrap();
        assert_eq!(UiMemory::load(&path), c);
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(UiMemory::load(&path), UiMemory::default());
    }
}
