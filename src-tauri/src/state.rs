//! What the app holds while it runs: the settings (shared with the `driveback` CLI), the keyring,
//! Google sign-in, the destination, the backup jobs and the scheduler, and the restore
//! confirmations it issued.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use driveback_engine::auth::{
    AccessTokens, Account, AccountFile, GoogleAuth, GoogleEndpoints, OAuthClient,
};
use driveback_engine::history::History;
use driveback_engine::keys::BackupKey;
use driveback_engine::notify::email::EmailNotifier;
use driveback_engine::scheduler::SchedulerHandle;
use driveback_engine::secrets::{self, KeyringSecretStore, SecretStore};
use driveback_engine::settings::Settings;
use driveback_engine::store::drive::{DriveConfig, DriveStore};
use driveback_engine::store::{self, folder::FolderStore, Dest, RemoteStore, StoredBackup};
use secrecy::{ExposeSecret, SecretString};

use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::jobs::Jobs;
use crate::notify::Toaster;

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

/// Sends a Tauri event to the window (name, payload).
pub type Emit = dyn Fn(&str, serde_json::Value) + Send + Sync;

/// How the app tells the webview and the desktop about things that happen without a click.
pub struct Hooks {
    pub emit: Box<Emit>,
    /// A desktop notification.
    pub toaster: Arc<dyn Toaster>,
}

pub struct AppState {
    secrets: Option<Arc<dyn SecretStore>>,
    keyring_problem: Option<String>,
    config: Mutex<Config>,
    config_path: PathBuf,
    settings: Mutex<Settings>,
    settings_path: PathBuf,
    settings_problem: Mutex<Option<String>>,
    data_dir: PathBuf,
    env: EnvDefaults,
    /// A connection string entered in this session (also saved to the keyring when there is one).
    uri_override: Mutex<Option<SecretString>>,
    google: Result<Arc<GoogleAuth>, String>,
    /// The destination last opened, reused while its name and the sign-in stay the same.
    store_cache: Mutex<Option<(String, Arc<dyn RemoteStore>)>>,
    /// Set to give up a Google sign-in that is waiting for the browser.
    pub connect_cancel: Mutex<Option<Arc<AtomicBool>>>,
    /// The one running job as the UI follows it (backup, verify or restore).
    pub jobs: Jobs,
    /// Every backup run, manual or scheduled (see `crate::runner`).
    backups: OnceLock<driveback_engine::jobs::Jobs>,
    pub history: Arc<History>,
    pub scheduler: Mutex<Option<SchedulerHandle>>,
    pub start_options: OnceLock<crate::runner::StartOptions>,
    pub email: OnceLock<Arc<EmailNotifier>>,
    hooks: OnceLock<Hooks>,
    pub tickets: Mutex<HashMap<String, Ticket>>,
    pub started: Instant,
    pub startup_ms: Mutex<Option<u64>>,
}

/// The UI's own state file, beside the engine's `settings.json`.
pub const UI_STATE_FILE: &str = "app-ui.json";

impl AppState {
    /// `secrets` is the OS keyring (or a memory store in tests); `Err` says why there is none.
    /// `config_dir` holds `settings.json` (the engine's, shared with the CLI) and the account
    /// record; `data_dir` the history, upload state and safety backups.
    pub fn new(
        secrets: Result<Arc<dyn SecretStore>, String>,
        config_dir: &Path,
        data_dir: &Path,
        env: EnvDefaults,
    ) -> Self {
        let config_path = config_dir.join(UI_STATE_FILE);
        let settings_path = config_dir.join("settings.json");
        let (settings, settings_problem) = match Settings::load_from(&settings_path) {
            Ok(s) => (s, None),
            Err(e) => {
                tracing::warn!(error = %e, "using the default settings");
                (Settings::default(), Some(e.to_string()))
            }
        };
        let (secrets, keyring_problem) = match secrets {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        };
        let google = match &secrets {
            None => Err(format!(
                "Google Drive needs the OS keyring to keep its sign-in: {}",
                keyring_problem.as_deref().unwrap_or("none is available")
            )),
            Some(s) => OAuthClient::from_env()
                .and_then(|client| {
                    GoogleAuth::new(
                        GoogleEndpoints::from_env(),
                        client,
                        s.clone(),
                        AccountFile::in_dir(config_dir),
                    )
                })
                .map(Arc::new)
                .map_err(|e| e.to_string()),
        };
        Self {
            secrets,
            keyring_problem,
            config: Mutex::new(Config::load(&config_path)),
            config_path,
            settings: Mutex::new(settings),
            settings_path,
            settings_problem: Mutex::new(settings_problem),
            data_dir: data_dir.to_path_buf(),
            env,
            uri_override: Mutex::new(None),
            google,
            store_cache: Mutex::new(None),
            connect_cancel: Mutex::new(None),
            jobs: Jobs::default(),
            backups: OnceLock::new(),
            history: Arc::new(History::new(data_dir.join("history.jsonl"))),
            scheduler: Mutex::new(None),
            start_options: OnceLock::new(),
            email: OnceLock::new(),
            hooks: OnceLock::new(),
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

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    // --- the UI's own state ------------------------------------------------------------------

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

    // --- the settings, shared with the CLI ----------------------------------------------------

    pub fn settings(&self) -> Settings {
        self.settings.lock().unwrap().clone()
    }

    /// Why the settings file could not be read (the defaults are in use), if it could not.
    pub fn settings_problem(&self) -> Option<String> {
        self.settings_problem.lock().unwrap().clone()
    }

    /// Changes, validates and saves the settings (atomically); the scheduler and the email
    /// reports follow at once. A change that does not validate is refused and nothing changes.
    pub fn update_settings(&self, change: impl FnOnce(&mut Settings)) -> ApiResult<Settings> {
        let next = {
            let mut s = self.settings.lock().unwrap();
            let mut next = s.clone();
            change(&mut next);
            next.validate()
                .map_err(|e| ApiError::new("bad_input", e.to_string()))?;
            next.save_to(&self.settings_path).map_err(|e| {
                ApiError::new("io_error", format!("could not save the settings: {e}"))
            })?;
            *s = next.clone();
            next
        };
        *self.settings_problem.lock().unwrap() = None;
        if let Some(sched) = self.scheduler.lock().unwrap().as_ref() {
            sched.set_schedule(next.schedule.clone());
        }
        if let Some(email) = self.email.get() {
            email.set_settings(next.clone());
        }
        Ok(next)
    }

    // --- the database ---------------------------------------------------------------------------

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
        self.settings()
            .backup
            .database
            .or_else(|| self.env.database.clone())
    }

    pub fn require_database(&self) -> ApiResult<String> {
        self.database().ok_or_else(|| {
            ApiError::new(
                "not_configured",
                "no database is chosen yet: connect to MongoDB and pick one",
            )
        })
    }

    pub fn uri_host(&self) -> Option<String> {
        self.mongo_uri()
            .map(|(u, _)| driveback_engine::mongo::redact_uri(u.expose_secret()))
    }

    // --- Google Drive ---------------------------------------------------------------------------

    /// Google sign-in, or why it cannot be used here (no OAuth client, no keyring).
    pub fn google(&self) -> ApiResult<Arc<GoogleAuth>> {
        self.google
            .clone()
            .map_err(|why| ApiError::new("drive_unavailable", why))
    }

    /// The connected account, as recorded. Blocking (reads a file).
    pub fn account(&self) -> Option<Account> {
        let google = self.google.as_ref().ok()?;
        google.account().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not read the Google account record");
            None
        })
    }

    /// Forgets the opened destination (after a sign-in change or a new destination).
    pub fn forget_store(&self) {
        *self.store_cache.lock().unwrap() = None;
    }

    // --- the destination ------------------------------------------------------------------------

    /// Where backups go, by name (`drive`, `folder:/path`): the settings, else the demo's folder.
    pub fn dest(&self) -> Option<String> {
        self.settings().backup.dest.or_else(|| {
            self.env
                .folder
                .as_ref()
                .map(|f| format!("folder:{}", f.display()))
        })
    }

    pub fn parsed_dest(&self) -> Option<Dest> {
        store::parse_dest(&self.dest()?).ok()
    }

    /// The folder backups go to, when they go to a folder.
    pub fn folder(&self) -> Option<PathBuf> {
        match self.parsed_dest()? {
            Dest::Folder(p) => Some(p),
            Dest::Drive(_) => None,
        }
    }

    /// Opens a destination by name. Blocking for Google Drive (it may refresh the sign-in).
    pub fn open_dest(&self, dest: &str) -> ApiResult<Arc<dyn RemoteStore>> {
        match store::parse_dest(dest)? {
            Dest::Drive(location) => {
                let tokens: Arc<dyn AccessTokens> = self.google()?.session()?;
                let config = DriveConfig::new(location, self.data_dir.join("drive-uploads"));
                Ok(Arc::new(DriveStore::new(tokens, config)?))
            }
            other => Ok(Arc::from(store::open_store(&other)?)),
        }
    }

    /// The destination backups go to. Blocking for Google Drive.
    pub fn store(&self) -> ApiResult<Arc<dyn RemoteStore>> {
        let dest = self.dest().ok_or_else(|| {
            ApiError::new(
                "not_configured",
                "no place for backups is chosen yet: connect Google Drive or choose a folder",
            )
        })?;
        if let Some((name, store)) = self.store_cache.lock().unwrap().as_ref() {
            if *name == dest {
                return Ok(store.clone());
            }
        }
        let store = self.open_dest(&dest)?;
        *self.store_cache.lock().unwrap() = Some((dest, store.clone()));
        Ok(store)
    }

    /// Where the safety backup taken before a restore goes: on this device, encrypted to the
    /// same key as the destination's backups.
    pub fn safety_store(&self) -> Arc<dyn RemoteStore> {
        Arc::new(FolderStore::new(self.data_dir.join("safety-backups")))
    }

    // --- jobs -----------------------------------------------------------------------------------

    /// The backup jobs (set up by `crate::start`).
    pub fn backups(&self) -> ApiResult<&driveback_engine::jobs::Jobs> {
        self.backups
            .get()
            .ok_or_else(|| ApiError::internal("the backup jobs are not started"))
    }

    pub(crate) fn set_backups(&self, jobs: driveback_engine::jobs::Jobs) {
        let _ = self.backups.set(jobs);
    }

    /// Starts a verify or a restore: refused while a backup (manual or scheduled) runs.
    pub fn start_exclusive(
        &self,
        kind: crate::bridge::JobKind,
        channel: tauri::ipc::Channel<crate::bridge::JobEvent>,
    ) -> ApiResult<Arc<crate::bridge::JobProgress>> {
        if self.backups.get().and_then(|j| j.current()).is_some() {
            return Err(crate::jobs::busy(crate::bridge::JobKind::Backup));
        }
        self.jobs.start(kind, channel)
    }

    pub(crate) fn set_hooks(&self, hooks: Hooks) {
        let _ = self.hooks.set(hooks);
    }

    /// Tells the window something happened (no-op before the app is set up).
    pub fn emit(&self, event: &str, payload: serde_json::Value) {
        if let Some(h) = self.hooks.get() {
            (h.emit)(event, payload);
        }
    }

    pub fn toaster(&self) -> Option<Arc<dyn Toaster>> {
        self.hooks.get().map(|h| h.toaster.clone())
    }

    // --- restore confirmations ------------------------------------------------------------------

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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UriSource {
    Entered,
    Environment,
    Keyring,
}
