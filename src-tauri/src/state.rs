//! What the app holds while it runs: the engine's [`Service`] (settings shared with the CLI,
//! keyring, Google sign-in, destination, jobs, history) and how to reach the window and the
//! desktop. Background code never reaches back in here: it talks to the service.

use std::ops::Deref;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use driveback_engine::secrets::SecretStore;
use driveback_engine::service::{Background, EnvDefaults, Service, ServiceOptions};

use crate::notify::Toaster;

pub type Shared = Arc<AppState>;

/// Sends a Tauri event to the window (name, payload).
pub type Emit = dyn Fn(&str, serde_json::Value) + Send + Sync;

/// How the app tells the webview and the desktop about things that happen without a click.
pub struct Hooks {
    pub emit: Box<Emit>,
    /// A desktop notification.
    pub toaster: Arc<dyn Toaster>,
}

pub struct AppState {
    pub service: Service,
    hooks: OnceLock<Hooks>,
    pub(crate) background: Mutex<Option<Background>>,
    pub started: Instant,
    pub startup_ms: Mutex<Option<u64>>,
}

impl Deref for AppState {
    type Target = Service;

    fn deref(&self) -> &Service {
        &self.service
    }
}

impl AppState {
    /// `secrets` is the OS keyring (or a memory store in tests); `Err` says why there is none.
    /// `config_dir` holds `settings.json` (shared with the CLI) and the account record;
    /// `data_dir` the history, upload state and safety backups.
    pub fn new(
        secrets: Result<Arc<dyn SecretStore>, String>,
        config_dir: &Path,
        data_dir: &Path,
        env: EnvDefaults,
    ) -> Self {
        Self::with_service(Service::new(ServiceOptions::new(
            secrets, config_dir, data_dir, env,
        )))
    }

    pub fn with_service(service: Service) -> Self {
        AppState {
            service,
            hooks: OnceLock::new(),
            background: Mutex::new(None),
            started: Instant::now(),
            startup_ms: Mutex::new(None),
        }
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
}
