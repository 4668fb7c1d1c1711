//! The engine's front: one [`Service`] owns the settings (shared by the app and the CLI), the
//! secrets, the destination, the run history, the clock, the notifiers and the one job manager,
//! and offers every operation a front door needs. The Tauri commands, `driveback daemon` and the
//! one-shot `driveback` commands are wiring over these operations:
//!
//! ```text
//! door -> Service -> Jobs -> pipeline (export -> archive -> store -> commit) -> retention
//!      -> history record -> notifiers (desktop, email)
//! ```
//!
//! - `backup.rs`: what a backup needs (checked before it starts), the one backup job, Backup Now
//!   and the one-shot backup;
//! - `restore.rs`: verify, prepare a restore (a plan the door shows) and execute it (safety
//!   backup, staging and swap, undo), save a copy;
//! - `keys.rs`: the passphrase and the backup key, switching destination with the key;
//! - `status.rs`: the state a door renders and the health report;
//! - `background.rs`: the scheduler, the health watch, the weekly summary and settings reload, as
//!   one handle to spawn and stop;
//! - `mongo.rs`: the MongoDB seam;
//! - `google.rs`: the Google OAuth client to sign in with (set up, shown, forgotten).

mod background;
mod backup;
mod config;
mod google;
mod keys;
pub mod memory;
pub mod mongo;
mod restore;
mod status;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Weak};

use secrecy::{ExposeSecret, SecretString};

pub use background::{alerts, AlertMemory, Background, BackgroundOptions};
pub use backup::{BackupPlan, OneShot};
pub use config::{
    drive_dest, DriveConnected, HealthView, SettingsView, TestEmailSent, DRIVE_DEST,
    DRIVE_FOLDER_DEST,
};
pub use google::GoogleClientStatus;
pub use keys::{Checked, KeyCreated, ShownKey};
pub use memory::UiMemory;
pub use mongo::{DatabaseServer, LiveCollection, MongoDriver};
pub use restore::{
    check_database_name, CollectionCount, Copied, JsonExport, PlannedCollection, RestoreChoices,
    RestorePlan, RestoreView, TestRestore, VerifyView,
};
pub use status::{
    dest_label, BackupView, DestinationView, DriveView, KeyringView, MongoView, ScheduleView,
    StatusView, PASSPHRASE_CHECK_DAYS,
};

use crate::auth::{AccessTokens, Account, GoogleAuth};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::history::History;
use crate::jobs::{Clock, Jobs, SystemClock};
use crate::notify::email::EmailNotifier;
use crate::notify::{Event, Notifier};
use crate::secrets::{self, KeyringSecretStore, SecretStore};
use crate::settings::Settings;
use crate::store::drive::{DriveConfig, DriveStore};
use crate::store::{self, folder::FolderStore, Dest, RemoteStore};

/// Defaults from the environment: the demo (`scripts/run`) and the end-to-end tests start already
/// pointed at a database and a folder.
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
            mongo_uri: crate::envsecrets::var("DRIVEBACK_MONGO_URI")
                .filter(|v| !v.trim().is_empty()),
            database: var("DRIVEBACK_DEMO_DB"),
            folder: var("DRIVEBACK_DEMO_FOLDER").map(PathBuf::from),
        }
    }
}

/// Where a connection string came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UriSource {
    Entered,
    Environment,
    Keyring,
}

/// What a service is made of.
pub struct ServiceOptions {
    /// The OS keyring (or a memory store in tests); `Err` says why there is none.
    pub secrets: Result<Arc<dyn SecretStore>, String>,
    /// Holds `settings.json` (shared by the app and the CLI), the UI's memory and the account
    /// record.
    pub config_dir: PathBuf,
    /// Holds the history, upload state and safety backups.
    pub data_dir: PathBuf,
    pub env: EnvDefaults,
    pub clock: Arc<dyn Clock>,
    pub mongo: Arc<dyn DatabaseServer>,
}

impl ServiceOptions {
    /// The product's: the folders given, the real clock and MongoDB driver.
    pub fn new(
        secrets: Result<Arc<dyn SecretStore>, String>,
        config_dir: &Path,
        data_dir: &Path,
        env: EnvDefaults,
    ) -> Self {
        ServiceOptions {
            secrets,
            config_dir: config_dir.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            env,
            clock: Arc::new(SystemClock),
            mongo: Arc::new(MongoDriver),
        }
    }
}

/// How long a restore confirmation stays valid.
pub const TICKET_TTL: chrono::Duration = chrono::Duration::minutes(15);

/// The UI's own memory, beside the engine's `settings.json`.
pub const UI_STATE_FILE: &str = "app-ui.json";

pub(crate) struct Inner {
    secrets: Option<Arc<dyn SecretStore>>,
    keyring_problem: Option<String>,
    memory: Mutex<UiMemory>,
    memory_path: PathBuf,
    settings: Mutex<Settings>,
    settings_path: PathBuf,
    settings_problem: Mutex<Option<String>>,
    config_dir: PathBuf,
    data_dir: PathBuf,
    env: EnvDefaults,
    /// A connection string entered in this session (also saved to the keyring when there is one).
    uri_override: Mutex<Option<SecretString>>,
    /// Google sign-in with the client found (see `google.rs`), or why it cannot be used.
    google: Mutex<Result<Arc<GoogleAuth>, ApiError>>,
    /// The destination last opened, reused while its name and the sign-in stay the same.
    store_cache: Mutex<Option<(String, Arc<dyn RemoteStore>)>>,
    /// Set to give up a Google sign-in that is waiting for the browser.
    connect_cancel: Mutex<Option<Arc<AtomicBool>>>,
    clock: Arc<dyn Clock>,
    mongo: Arc<dyn DatabaseServer>,
    history: Arc<History>,
    jobs: Jobs,
    email: Arc<EmailNotifier>,
    /// The door's notifiers (the desktop's), told of restores and health alerts too.
    notifiers: Mutex<Vec<Arc<dyn Notifier>>>,
    tickets: Mutex<HashMap<String, restore::Ticket>>,
    /// The one-shot backup's request and its result (see `backup.rs`).
    one_shot: Mutex<Option<OneShot>>,
    /// What Backup Now checked just before it started the job: the job uses it rather than
    /// reading the destination's key again (each read is a round trip on Drive).
    prepared: Mutex<Option<BackupPlan>>,
    /// The backup keys this device confirmed, per destination.
    pins: Arc<crate::keys::KeyPins>,
    /// The last good counts and the open data-loss alarms.
    alarms: Arc<crate::alarms::AlarmBook>,
    /// Signing keys unlocked in this process, per destination: (recipient, signer).
    signers: Mutex<HashMap<String, (String, Arc<crate::authenticity::Signer>)>>,
    /// The destination's backups as the last backup job left them: (destination, when, list).
    seen: Mutex<
        Option<(
            String,
            chrono::DateTime<chrono::Utc>,
            Vec<crate::store::StoredBackup>,
        )>,
    >,
    results: Mutex<HashMap<String, crate::pipeline::BackupResult>>,
    pub(crate) scheduler: Mutex<Option<crate::scheduler::SchedulerHandle>>,
    background_options: Mutex<Option<BackgroundOptions>>,
}

/// The engine's front. Cheap to clone.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

impl Service {
    /// Needs no runtime; background work starts with [`Service::spawn_background`].
    pub fn new(opts: ServiceOptions) -> Self {
        let memory_path = opts.config_dir.join(UI_STATE_FILE);
        let settings_path = opts.config_dir.join("settings.json");
        let (settings, settings_problem) = match Settings::load_from(&settings_path) {
            Ok(s) => (s, None),
            Err(e) => {
                tracing::warn!(error = %e, "using the default settings");
                (Settings::default(), Some(e.to_string()))
            }
        };
        let (secrets, keyring_problem) = match opts.secrets {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        };
        let google = google::sign_in(
            secrets.as_ref(),
            keyring_problem.as_deref(),
            &opts.config_dir,
            &settings,
        )
        .map(|(auth, _)| auth);
        let history = Arc::new(History::new(opts.data_dir.join("history.jsonl")));
        let password = crate::notify::mail::smtp_password(secrets.as_deref()).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "email reports: no SMTP password");
            None
        });
        let email = Arc::new(
            EmailNotifier::new(settings.clone(), password, Some(history.clone()))
                .with_clock(opts.clock.clone()),
        );
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            let runner = {
                let weak = weak.clone();
                move |ctx: crate::jobs::JobContext| {
                    let weak = weak.clone();
                    async move {
                        match weak.upgrade() {
                            Some(inner) => Service { inner }.run_backup_job(ctx).await,
                            None => {
                                crate::jobs::JobOutcome::failed("internal", "Driveback is closing")
                            }
                        }
                    }
                }
            };
            let jobs = Jobs::new(runner, opts.clock.clone(), Some(history.clone()));
            jobs.add_notifier(Arc::new(EmailCopy {
                email: email.clone(),
                service: weak.clone(),
            }));
            Inner {
                secrets,
                keyring_problem,
                memory: Mutex::new(UiMemory::load(&memory_path)),
                memory_path,
                settings: Mutex::new(settings),
                settings_path,
                settings_problem: Mutex::new(settings_problem),
                config_dir: opts.config_dir.clone(),
                data_dir: opts.data_dir.clone(),
                env: opts.env,
                uri_override: Mutex::new(None),
                google: Mutex::new(google),
                store_cache: Mutex::new(None),
                connect_cancel: Mutex::new(None),
                clock: opts.clock,
                mongo: opts.mongo,
                history,
                jobs,
                email,
                notifiers: Mutex::new(Vec::new()),
                tickets: Mutex::new(HashMap::new()),
                one_shot: Mutex::new(None),
                prepared: Mutex::new(None),
                seen: Mutex::new(None),
                pins: Arc::new(crate::keys::KeyPins::in_dir(&opts.config_dir)),
                signers: Mutex::new(HashMap::new()),
                alarms: Arc::new(crate::alarms::AlarmBook::new(
                    opts.data_dir.join("alarms.json"),
                )),
                results: Mutex::new(HashMap::new()),
                scheduler: Mutex::new(None),
                background_options: Mutex::new(None),
            }
        });
        Service { inner }
    }

    /// The OS keyring if it answers, under `DRIVEBACK_KEYRING_SERVICE` when set (tests and
    /// side-by-side installs keep their entries apart that way).
    pub fn os_keyring() -> Result<Arc<dyn SecretStore>, String> {
        let service = std::env::var("DRIVEBACK_KEYRING_SERVICE")
            .unwrap_or_else(|_| secrets::SERVICE.to_string());
        let store = KeyringSecretStore::with_service(&service);
        store.check_available().map_err(|e| e.to_string())?;
        Ok(Arc::new(store))
    }

    /// The product's service: the OS folders (`DRIVEBACK_CONFIG_DIR`/`DRIVEBACK_DATA_DIR` move
    /// them), the OS keyring, the real clock and driver.
    pub fn open_default(env: EnvDefaults) -> ApiResult<Self> {
        Self::open_default_with(env, None)
    }

    /// [`Service::open_default`] with another clock (`None`: the system's).
    pub fn open_default_with(env: EnvDefaults, clock: Option<Arc<dyn Clock>>) -> ApiResult<Self> {
        let dirs =
            |e: crate::settings::SettingsError| ApiError::new(ErrorCode::IoError, e.to_string());
        let config_dir = crate::settings::config_dir().map_err(dirs)?;
        let data_dir = crate::settings::data_dir().map_err(dirs)?;
        let mut opts = ServiceOptions::new(Self::os_keyring(), &config_dir, &data_dir, env);
        if let Some(clock) = clock {
            opts.clock = clock;
        }
        Ok(Service::new(opts))
    }

    // --- what it owns ---------------------------------------------------------------------------

    pub fn jobs(&self) -> &Jobs {
        &self.inner.jobs
    }

    pub fn history(&self) -> &Arc<History> {
        &self.inner.history
    }

    /// Appends a run the service records itself (a restore test, a backup that could not
    /// start); a history that cannot be written is logged, not fatal.
    pub(crate) async fn record_run(&self, record: crate::history::RunRecord) {
        let history = self.history().clone();
        let what = record.kind;
        let written = tokio::task::spawn_blocking(move || history.append(&record)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(kind = ?what, error = %e, "could not record the run"),
            Err(e) => tracing::warn!(kind = ?what, error = %e, "could not record the run"),
        }
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.clock.now()
    }

    pub fn secrets(&self) -> Option<&dyn SecretStore> {
        self.inner.secrets.as_deref()
    }

    pub fn keyring_problem(&self) -> Option<&str> {
        self.inner.keyring_problem.as_deref()
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    pub fn config_dir(&self) -> &Path {
        &self.inner.config_dir
    }

    pub fn mongo(&self) -> &Arc<dyn DatabaseServer> {
        &self.inner.mongo
    }

    pub fn email(&self) -> &Arc<EmailNotifier> {
        &self.inner.email
    }

    /// A door's notifier (the desktop's): it hears every finished backup, restore and health
    /// alert.
    pub fn add_notifier(&self, n: Arc<dyn Notifier>) {
        self.inner.jobs.add_notifier(n.clone());
        lock(&self.inner.notifiers).push(n);
    }

    /// Tells the door's notifiers (not the email reports: those are about backups).
    /// Tells the door's notifiers (the desktop) and the email reports (which mail what their
    /// settings ask for: a failed restore test, say).
    pub(crate) fn tell(&self, event: &Event) {
        for n in lock(&self.inner.notifiers).clone() {
            n.notify(event);
        }
        self.inner.email.notify(event);
    }

    /// The backup key of `store`, with this device's keyring and confirmed keys.
    pub fn key_ring<'a>(
        &'a self,
        store: &'a dyn RemoteStore,
        passphrases: &'a dyn crate::keys::PassphraseSource,
    ) -> crate::keys::KeyRing<'a> {
        crate::keys::KeyRing::new(store, self.secrets(), passphrases).with_pins(&self.inner.pins)
    }

    /// The data-loss alarms (see [`crate::alarms`]).
    pub fn alarms(&self) -> &Arc<crate::alarms::AlarmBook> {
        &self.inner.alarms
    }

    /// The user has seen the data-loss alarms: the backups they kept follow the retention policy
    /// again. How many there were. Blocking.
    pub fn acknowledge_alarms(&self) -> usize {
        self.inner.alarms.acknowledge()
    }

    pub fn key_pins(&self) -> &crate::keys::KeyPins {
        &self.inner.pins
    }

    // --- the UI's memory -----------------------------------------------------------------------

    pub fn memory(&self) -> UiMemory {
        lock(&self.inner.memory).clone()
    }

    pub fn update_memory(&self, change: impl FnOnce(&mut UiMemory)) -> ApiResult<()> {
        let mut c = lock(&self.inner.memory);
        let mut next = c.clone();
        change(&mut next);
        next.save(&self.inner.memory_path).map_err(|e| {
            ApiError::new(
                ErrorCode::IoError,
                format!(
                    "could not save the settings to {}: {e}",
                    self.inner.memory_path.display()
                ),
            )
        })?;
        *c = next;
        Ok(())
    }

    // --- the settings, shared by the app and the CLI --------------------------------------------

    pub fn settings(&self) -> Settings {
        lock(&self.inner.settings).clone()
    }

    /// Why the settings file could not be read (the defaults are in use), if it could not.
    pub fn settings_problem(&self) -> Option<String> {
        lock(&self.inner.settings_problem).clone()
    }

    /// Changes, validates and saves the settings (atomically); the scheduler and the email
    /// reports follow at once. A change that does not validate is refused and nothing changes.
    pub fn update_settings(&self, change: impl FnOnce(&mut Settings)) -> ApiResult<Settings> {
        let next = {
            let mut s = lock(&self.inner.settings);
            let mut next = s.clone();
            change(&mut next);
            next.validate()
                .map_err(|e| ApiError::bad_input(e.to_string()))?;
            next.save_to(&self.inner.settings_path).map_err(|e| {
                ApiError::new(
                    ErrorCode::IoError,
                    format!("could not save the settings: {e}"),
                )
            })?;
            *s = next.clone();
            next
        };
        self.settings_changed(next.clone());
        Ok(next)
    }

    /// The settings file changed on disk (`driveback config set`, the other front door): take
    /// it up. Whether it differed. A file that does not read is kept out, with the reason.
    pub fn reload_settings(&self) -> Result<bool, String> {
        let new = {
            // Read under the lock: a save by this process cannot slip in between.
            let mut cur = lock(&self.inner.settings);
            let new = Settings::load_from(&self.inner.settings_path).map_err(|e| e.to_string())?;
            if *cur == new {
                return Ok(false);
            }
            let client_changed = cur.google != new.google;
            *cur = new.clone();
            (new, client_changed)
        };
        let (new, client_changed) = new;
        self.settings_changed(new);
        if client_changed {
            // `driveback config set google.client_id` or the other front door.
            self.reload_google();
        }
        Ok(true)
    }

    fn settings_changed(&self, next: Settings) {
        *lock(&self.inner.settings_problem) = None;
        if let Some(sched) = lock(&self.inner.scheduler).as_ref() {
            sched.set_schedule(next.schedule.clone());
        }
        self.inner.email.set_settings(next);
    }

    // --- the database ---------------------------------------------------------------------------

    /// The connection string: entered in this session, else from the environment, else saved in
    /// the keyring.
    pub fn mongo_uri(&self) -> Option<(SecretString, UriSource)> {
        if let Some(u) = lock(&self.inner.uri_override).clone() {
            return Some((u, UriSource::Entered));
        }
        if let Some(u) = &self.inner.env.mongo_uri {
            return Some((SecretString::from(u.clone()), UriSource::Environment));
        }
        let saved = self.secrets()?.get(secrets::MONGO_URI).ok().flatten()?;
        Some((saved, UriSource::Keyring))
    }

    pub fn require_mongo_uri(&self) -> ApiResult<SecretString> {
        self.mongo_uri().map(|(u, _)| u).ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotConfigured,
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
        *lock(&self.inner.uri_override) = Some(secret);
        Ok(notice)
    }

    pub fn database(&self) -> Option<String> {
        self.settings()
            .backup
            .database
            .or_else(|| self.inner.env.database.clone())
    }

    pub fn require_database(&self) -> ApiResult<String> {
        self.database().ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotConfigured,
                "no database is chosen yet: connect to MongoDB and pick one",
            )
        })
    }

    pub fn uri_host(&self) -> Option<String> {
        self.mongo_uri()
            .map(|(u, _)| crate::mongo::redact_uri(u.expose_secret()))
    }

    /// Tests a connection string (or the saved one) and lists its databases; saves nothing.
    pub async fn list_databases(&self, uri: Option<String>) -> ApiResult<(String, Vec<String>)> {
        let uri = match uri.map(|u| u.trim().to_string()).filter(|u| !u.is_empty()) {
            Some(u) => u,
            None => self.require_mongo_uri()?.expose_secret().to_string(),
        };
        let names = self.inner.mongo.list_databases(&uri).await?;
        Ok((crate::mongo::redact_uri(&uri), names))
    }

    /// Checks `database` has collections on the server of `uri` (or the current one), then keeps
    /// the URI in the OS keyring and the database name in the settings. A notice when the URI is
    /// kept for this session only.
    pub async fn save_connection(
        &self,
        uri: Option<String>,
        database: String,
    ) -> ApiResult<Option<String>> {
        let uri = match uri.map(|u| u.trim().to_string()).filter(|u| !u.is_empty()) {
            Some(u) => u,
            None => self.require_mongo_uri()?.expose_secret().to_string(),
        };
        let database = database.trim().to_string();
        if database.is_empty() {
            return Err(ApiError::bad_input("choose a database to back up"));
        }
        if self.inner.mongo.describe(&uri, &database).await?.is_empty() {
            return Err(crate::mongo::MongoError::NoSuchDatabase(database).into());
        }
        let notice = self.save_mongo_uri(&uri)?;
        self.update_settings(|s| s.backup.database = Some(database))?;
        Ok(notice)
    }

    // --- Google Drive ---------------------------------------------------------------------------

    /// Google sign-in, or why it cannot be used here (no OAuth client, no keyring).
    pub fn google(&self) -> ApiResult<Arc<GoogleAuth>> {
        lock(&self.inner.google).clone()
    }

    /// The connected account, as recorded. Blocking (reads a file).
    pub fn account(&self) -> Option<Account> {
        let google = self.google().ok()?;
        google.account().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not read the Google account record");
            None
        })
    }

    /// Forgets the opened destination (after a sign-in change or a new destination).
    pub fn forget_store(&self) {
        *lock(&self.inner.store_cache) = None;
    }

    pub(crate) fn connect_cancel(&self) -> &Mutex<Option<Arc<AtomicBool>>> {
        &self.inner.connect_cancel
    }

    // --- the destination ------------------------------------------------------------------------

    /// Where backups go, by name (`drive`, `folder:/path`): the settings, else the demo's folder.
    pub fn dest(&self) -> Option<String> {
        self.settings().backup.dest.or_else(|| {
            self.inner
                .env
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

    /// Opens a destination by name. Its listing holds only the backups this device can
    /// authenticate (see [`crate::authenticity`]). Blocking for Google Drive (it may refresh the
    /// sign-in).
    pub fn open_dest(&self, dest: &str) -> ApiResult<Arc<dyn RemoteStore>> {
        let raw: Arc<dyn RemoteStore> = match store::parse_dest(dest)
            .map_err(crate::error::EngineError::from)?
        {
            Dest::Drive(location) => {
                let tokens: Arc<dyn AccessTokens> = self.google()?.session()?;
                let config = DriveConfig::new(location, self.inner.data_dir.join("drive-uploads"));
                Arc::new(DriveStore::new(tokens, config).map_err(crate::error::EngineError::from)?)
            }
            other => Arc::from(store::open_store(&other).map_err(crate::error::EngineError::from)?),
        };
        let trust = Arc::new(ConfirmedKeys {
            pins: self.inner.pins.clone(),
            secrets: self.inner.secrets.clone(),
            clock: self.inner.clock.clone(),
        });
        Ok(Arc::new(crate::authenticity::AuthenticatedStore::new(
            raw, trust,
        )))
    }

    /// The destination backups go to. Blocking for Google Drive.
    pub fn store(&self) -> ApiResult<Arc<dyn RemoteStore>> {
        let dest = self.dest().ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotConfigured,
                "no place for backups is chosen yet: connect Google Drive or choose a folder",
            )
        })?;
        if let Some((name, store)) = lock(&self.inner.store_cache).as_ref() {
            if *name == dest {
                return Ok(store.clone());
            }
        }
        let store = self.open_dest(&dest)?;
        *lock(&self.inner.store_cache) = Some((dest, store.clone()));
        Ok(store)
    }

    /// Where the safety backup taken before a restore goes: on this device, encrypted to the
    /// same key as the destination's backups.
    pub fn safety_store(&self) -> Arc<dyn RemoteStore> {
        Arc::new(FolderStore::new(self.inner.data_dir.join("safety-backups")))
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs blocking engine work (files, scrypt, Drive's blocking HTTP client) off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

/// What the destinations' listings are checked against: the keys this device confirmed, and its
/// clock.
struct ConfirmedKeys {
    pins: Arc<crate::keys::KeyPins>,
    secrets: Option<Arc<dyn SecretStore>>,
    clock: Arc<dyn Clock>,
}

impl crate::authenticity::Trust for ConfirmedKeys {
    fn verifier(&self, location: &str) -> Option<crate::authenticity::Verifier> {
        if let Some(v) = self.pins.verifier(location) {
            return Some(v);
        }
        // A key confirmed before backups were signed: its signing half comes from the keyring.
        let recipient = self.pins.get(location)?;
        let key = crate::keys::keyring_key(self.secrets.as_deref()?, &recipient)?;
        if let Err(e) = self.pins.set_key(location, &key) {
            tracing::warn!(error = %e, "could not record the signing key");
        }
        Some(crate::authenticity::Signer::for_key(&key).verifier())
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}

/// The email notifier, told of the store backups are read from for "email a copy".
struct EmailCopy {
    email: Arc<EmailNotifier>,
    service: Weak<Inner>,
}

impl Notifier for EmailCopy {
    fn notify(&self, event: &Event) {
        if !self.email.wants(event) {
            return;
        }
        // Jobs calls notifiers on a blocking thread: opening the destination (which may refresh
        // the Google sign-in) is fine here; the email itself is sent on its own thread.
        if let Some(store) = self
            .service
            .upgrade()
            .and_then(|inner| Service { inner }.store().ok())
        {
            self.email.set_store(store);
        }
        Notifier::notify(&self.email, event);
    }
}
