//! What the app holds while it runs: where the database and the backups are, the keyring, the
//! settings file, the running job and the restore confirmations it issued.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use driveback_engine::keys::BackupKey;
use driveback_engine::secrets::{self, KeyringSecretStore, SecretStore};
use driveback_engine::store::{folder::FolderStore, RemoteStore, StoredBackup};
use secrecy::{ExposeSecret, SecretString};

use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::jobs::Jobs;

pub type Shared = Arc<AppState>;

/// Defaults from the environment: the demo (`scripts/run`) and the end-to-end tests start the app
/// already pointed at a database and a folder.
#[derive(Clone, Debug, Default)]
pub struct EnvDefaults {
    pub mongo_uri: Option<String>,
    pub database: Option<String>,
    pub folder: Option<PathBuf>,
}

impl EnvDefaults {
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Self {
            mongo_uri: var("DRIVEBACK_MONGO_URI"),
            database: var("DRIVEBACK_DEMO_DB"),
            folder: var("DRIVEBACK_DEMO_FOLDER").map(PathBuf::from),
        }
    }
}

/// How long a restore confirmation stays valid.
pub const TICKET_TTL: Duration = Duration::from_secs(15 * 60);

/// A restore the user was shown and may confirm (or the undo of one).
pub struct Ticket {
    pub store: Arc<dyn RemoteStore>,
    pub backup: StoredBackup,
    pub key: BackupKey,
    pub target_db: String,
    /// Expected documents, for the progress percentage.
    pub documents: u64,
    /// Back up the current data first (off for an undo).
    pub safety_backup: bool,
    pub issued: Instant,
}

pub struct AppState {
    secrets: Option<Arc<dyn SecretStore>>,
    keyring_problem: Option<String>,
    config: Mutex<Config>,
    config_path: PathBuf,
    data_dir: PathBuf,
    env: EnvDefaults,
    /// A connection string entered in this session (also saved to the keyring when there is one).
    uri_override: Mutex<Option<SecretString>>,
    pub jobs: Jobs,
    pub tickets: Mutex<HashMap<String, Ticket>>,
    pub started: Instant,
    pub startup_ms: Mutex<Option<u64>>,
}

impl AppState {
    /// `secrets` is the OS keyring (or a memory store in tests); `Err` says why there is none.
    pub fn new(
        secrets: Result<Arc<dyn SecretStore>, String>,
        config_dir: &Path,
        data_dir: &Path,
        env: EnvDefaults,
    ) -> Self {
        let config_path = config_dir.join("settings.json");
        let (secrets, keyring_problem) = match secrets {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        };
        Self {
            secrets,
            keyring_problem,
            config: Mutex::new(Config::load(&config_path)),
            config_path,
            data_dir: data_dir.to_path_buf(),
            env,
            uri_override: Mutex::new(None),
            jobs: Jobs::default(),
            tickets: Mutex::new(HashMap::new()),
            started: Instant::now(),
            startup_ms: Mutex::new(None),
        }
    }

    /// The OS keyring if it answers, under `DRIVEBACK_KEYRING_SERVICE` when set (tests keep
    /// their entries apart that way, as the CLI does).
    pub fn os_keyring() -> Result<Arc<dyn SecretStore>, String> {
        let service = std::env::var("DRIVEBACK_KEYRING_SERVICE")
            .unwrap_or_else(|_| secrets::SERVICE.to_string());
        let store = KeyringSecretStore::with_service(&service);
        store.check_available().map_err(|e| e.to_string())?;
        Ok(Arc::new(store))
    }

    pub fn secrets(&self) -> Option<&dyn SecretStore> {
        self.secrets.as_deref()
    }

    pub fn keyring_problem(&self) -> Option<&str> {
        self.keyring_problem.as_deref()
    }

    pub fn config(&self) -> Config {
        self.config.lock().unwrap().clone()
    }

    pub fn update_config(&self, change: impl FnOnce(&mut Config)) -> ApiResult<()> {
        let mut c = self.config.lock().unwrap();
        let mut next = c.clone();
        change(&mut next);
        next.save(&self.config_path).map_err(|e| {
            ApiError::new(
                "io_error",
                format!(
                    "could not save the settings to {}: {e}",
                    self.config_path.display()
                ),
            )
        })?;
        *c = next;
        Ok(())
    }

    /// The connection string: entered in this session, else from the environment (the demo),
    /// else saved in the keyring.
    pub fn mongo_uri(&self) -> Option<(SecretString, UriSource)> {
        if let Some(u) = self.uri_override.lock().unwrap().clone() {
            return Some((u, UriSource::Entered));
        }
        if let Some(u) = &self.env.mongo_uri {
            return Some((SecretString::from(u.clone()), UriSource::Environment));
        }
        let saved = self.secrets()?.get(secrets::MONGO_URI).ok().flatten()?;
        Some((saved, UriSource::Keyring))
    }

    pub fn require_mongo_uri(&self) -> ApiResult<SecretString> {
        self.mongo_uri().map(|(u, _)| u).ok_or_else(|| {
            ApiError::new(
                "not_configured",
                "no MongoDB database is connected yet: connect one first",
            )
        })
    }

    /// Keeps a connection string: in the keyring when there is one, and for this session.
    /// Returns a notice when it could not be kept beyond this session.
    pub fn save_mongo_uri(&self, uri: &str) -> ApiResult<Option<String>> {
        let secret = SecretString::from(uri.to_string());
        let notice = match self.secrets() {
            Some(s) => {
                s.set(secrets::MONGO_URI, &secret)?;
                None
            }
            None => Some(format!(
                "the connection string is kept only until Driveback quits: {}",
                self.keyring_problem()
                    .unwrap_or("no OS keyring is available")
            )),
        };
        *self.uri_override.lock().unwrap() = Some(secret);
        Ok(notice)
    }

    pub fn database(&self) -> Option<String> {
        self.config().database.or_else(|| self.env.database.clone())
    }

    pub fn require_database(&self) -> ApiResult<String> {
        self.database().ok_or_else(|| {
            ApiError::new(
                "not_configured",
                "no database is chosen yet: connect to MongoDB and pick one",
            )
        })
    }

    /// Where backups go: the chosen folder, else the demo's. (Google Drive plugs in here once
    /// its store lands.)
    pub fn folder(&self) -> Option<PathBuf> {
        self.config().folder.or_else(|| self.env.folder.clone())
    }

    pub fn store(&self) -> ApiResult<Arc<dyn RemoteStore>> {
        let folder = self.folder().ok_or_else(|| {
            ApiError::new(
                "not_configured",
                "no place for backups is chosen yet: choose a folder",
            )
        })?;
        Ok(Arc::new(FolderStore::new(folder)))
    }

    /// Where the safety backup taken before a restore goes: on this device, encrypted to the
    /// same key as the destination's backups.
    pub fn safety_store(&self) -> Arc<dyn RemoteStore> {
        Arc::new(FolderStore::new(self.data_dir.join("safety-backups")))
    }

    pub fn issue_ticket(&self, ticket: Ticket) -> String {
        let token = format!("{:032x}", rand::random::<u128>());
        let mut tickets = self.tickets.lock().unwrap();
        tickets.retain(|_, t| t.issued.elapsed() < TICKET_TTL);
        tickets.insert(token.clone(), ticket);
        token
    }

    /// Takes a confirmation token: each is good for one restore, for a limited time.
    pub fn take_ticket(&self, token: &str) -> ApiResult<Ticket> {
        let ticket = self.tickets.lock().unwrap().remove(token);
        match ticket {
            Some(t) if t.issued.elapsed() < TICKET_TTL => Ok(t),
            _ => Err(ApiError::new(
                "invalid_token",
                "this restore was not confirmed, or the confirmation expired: choose the backup again",
            )),
        }
    }

    pub fn uri_host(&self) -> Option<String> {
        self.mongo_uri()
            .map(|(u, _)| driveback_engine::mongo::redact_uri(u.expose_secret()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UriSource {
    Entered,
    Environment,
    Keyring,
}
