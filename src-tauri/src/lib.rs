//! The Driveback desktop app: a thin Tauri shell over the engine's `Service`.
//!
//! - `commands/`: what the UI may call (each a few lines over one service operation);
//! - `bridge.rs`: engine job events to the UI's `tauri::ipc::Channel`s and window events;
//! - `notify.rs`: the words of desktop notifications;
//! - `state.rs`: the service, and how to reach the window and the desktop;
//! - `tray.rs`: closing the window keeps Driveback running in the tray;
//! - `autostart.rs`: the login entry, and the start from it (tray only, no window).

pub mod autostart;
pub mod bridge;
pub mod commands;
pub mod error;
pub mod notify;
pub mod state;
mod tray;

use std::sync::Arc;

use tauri::{Emitter, Manager, Runtime};

pub use driveback_engine::service::{BackgroundOptions as StartOptions, EnvDefaults};
pub use state::{AppState, Hooks, Shared};

/// Builds the app on any runtime, so command tests can use `tauri::test::mock_builder`. The
/// caller manages a [`Shared`] state.
pub fn builder<R: tauri::Runtime>(b: tauri::Builder<R>) -> tauri::Builder<R> {
    b.invoke_handler(tauri::generate_handler![
        // Every command the UI may call. `src-tauri/build.rs` lists the same names so that each
        // gets an `allow-…` permission, and the capability grants exactly these.
        commands::status::app_state,
        commands::status::ui_ready,
        commands::status::dismiss_tray_notice,
        commands::status::pause_automatic,
        commands::status::resume_automatic,
        commands::connection::test_connection,
        commands::connection::list_databases,
        commands::connection::save_connection,
        commands::connection::set_destination_folder,
        commands::passphrase::set_passphrase,
        commands::passphrase::check_passphrase,
        commands::passphrase::confirm_destination_key,
        commands::passphrase::change_passphrase,
        commands::passphrase::show_key,
        commands::passphrase::save_key,
        commands::backups::backup_now,
        commands::backups::follow_backup,
        commands::backups::cancel_job,
        commands::backups::list_backups,
        commands::backups::verify_backup,
        commands::backups::save_copy,
        commands::backups::export_json,
        commands::restore::prepare_restore,
        commands::restore::prepare_restore_file,
        commands::restore::restore,
        commands::drive::connect_drive,
        commands::drive::cancel_connect_drive,
        commands::drive::disconnect_drive,
        commands::drive::google_client_status,
        commands::drive::set_google_client,
        commands::settings::get_settings,
        commands::settings::save_settings,
        commands::settings::set_smtp_password,
        commands::settings::send_test_email,
        commands::settings::health,
        commands::settings::acknowledge_alarms,
        commands::settings::start_at_login_status,
        commands::settings::set_start_at_login,
    ])
}

/// Desktop notifications through the notification plugin. Permission is asked once, the first
/// time a notification is due (desktops grant it without asking).
struct PluginToaster<R: Runtime> {
    app: tauri::AppHandle<R>,
    asked: std::sync::Once,
}

impl<R: Runtime> notify::Toaster for PluginToaster<R> {
    fn show(&self, title: &str, body: &str) {
        use tauri_plugin_notification::{NotificationExt, PermissionState};
        let n = self.app.notification();
        self.asked.call_once(|| {
            if !matches!(n.permission_state(), Ok(PermissionState::Granted)) {
                let _ = n.request_permission();
            }
        });
        if let Err(e) = n.builder().title(title).body(body).show() {
            tracing::warn!(error = %e, "could not show a desktop notification");
        }
    }
}

/// Starts the app's background work (scheduler, health watch) for `state`, with
/// events to the app's windows and desktop notifications through `toaster` (the plugin's when
/// `None`).
pub fn start<R: Runtime>(
    app: &tauri::AppHandle<R>,
    state: &Shared,
    toaster: Option<Arc<dyn notify::Toaster>>,
    opts: StartOptions,
) {
    let emitter = app.clone();
    let toaster = toaster.unwrap_or_else(|| {
        Arc::new(PluginToaster {
            app: app.clone(),
            asked: std::sync::Once::new(),
        })
    });
    state.set_hooks(Hooks {
        emit: Box::new(move |name, payload| {
            let _ = emitter.emit(name, payload);
        }),
        toaster: toaster.clone(),
    });
    state.add_notifier(Arc::new(notify::DesktopNotifier {
        service: state.service.clone(),
        toaster,
    }));
    bridge::forward_to_window(state);
    // The same background work as `driveback daemon`: scheduler, health watch, settings reload.
    let shared = state.clone();
    tauri::async_runtime::spawn(async move {
        let background = shared.spawn_background(opts);
        *shared.background.lock().unwrap() = Some(background);
    });
}

pub fn run() {
    let started = std::time::Instant::now();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DRIVEBACK_LOG")
                .unwrap_or_else(|_| "warn,driveback_app=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut context = tauri::generate_context!();
    // Started by the login entry: the main window is created hidden (no flash) and Driveback
    // stays in the tray; the tray's Open, or opening Driveback again, shows it.
    if autostart::starts_hidden(std::env::args_os()) {
        for w in context.config_mut().app.windows.iter_mut() {
            if w.label == "main" {
                w.visible = false;
            }
        }
    }
    let result = builder(tauri::Builder::default())
        // First, so that a second launch only brings the running window forward.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            tray::show_main_window(app);
        }))
        .plugin(tauri_plugin_notification::init())
        // The system's file and folder pickers; the page may open them (`dialog:allow-open`,
        // `dialog:allow-save`) and gets back only the path the user picked.
        .plugin(tauri_plugin_dialog::init())
        .plugin(autostart::plugin())
        .setup(move |app| {
            // The engine's folders (shared with the `driveback` CLI; `DRIVEBACK_CONFIG_DIR` and
            // `DRIVEBACK_DATA_DIR` move them).
            let config_dir = driveback_engine::settings::config_dir()?;
            let data_dir = driveback_engine::settings::data_dir()?;
            let mut state = AppState::new(
                driveback_engine::service::Service::os_keyring(),
                &config_dir,
                &data_dir,
                EnvDefaults::from_env(),
            );
            state.started = started;
            if let Some(problem) = state.keyring_problem() {
                tracing::warn!("no OS keyring: {problem}");
            }
            let state: Shared = Arc::new(state);
            app.manage::<Shared>(state.clone());
            start(app.handle(), &state, None, StartOptions::from_env());
            tray::create(app.handle())?;
            Ok(())
        })
        .on_window_event(tray::on_window_event)
        .run(context);
    if let Err(e) = result {
        #[cfg(target_os = "linux")]
        if let tauri::Error::PluginInitialization(plugin, message) = &e {
            if plugin == "single-instance" {
                start_again_alone(message);
            }
        }
        panic!("error while running the Driveback app: {e}");
    }
}

/// The app is single-instance: a second launch hands its arguments to the running instance over
/// D-Bus and exits. When that instance was quitting and went away without answering, the launch
/// failed; a person launching the app again just after quitting it expects a window. So the
/// process starts its own image again (same arguments, and the secrets it took from the
/// environment given back to that image alone), now most likely the only instance. At most 3
/// times.
#[cfg(target_os = "linux")]
fn start_again_alone(message: &str) {
    use std::os::unix::process::CommandExt;
    const TRIES: &str = "DRIVEBACK_INSTANCE_RETRY";
    let tries: u32 = std::env::var(TRIES)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if tries >= 3 {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    tracing::warn!(message, "the running instance went away: starting again");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut again = std::process::Command::new(exe);
    again
        .args(std::env::args_os().skip(1))
        .env(TRIES, (tries + 1).to_string());
    for name in driveback_engine::envsecrets::SECRET_VARS {
        if let Some(value) = driveback_engine::envsecrets::var(name) {
            again.env(name, value);
        }
    }
    let error = again.exec();
    tracing::warn!(%error, "could not start again");
}
