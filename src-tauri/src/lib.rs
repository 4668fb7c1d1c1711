//! The Driveback desktop app: a thin Tauri shell over `driveback-engine`.
//!
//! - `commands/`: what the UI may call (each a few lines over the engine);
//! - `bridge.rs`: job progress to the UI through `tauri::ipc::Channel`;
//! - `jobs.rs`: one job at a time, cancel;
//! - `state.rs`: the engine objects the app holds; `config.rs`: its non-secret settings;
//! - `tray.rs`: closing the window keeps Driveback running in the tray.

pub mod bridge;
pub mod commands;
pub mod config;
pub mod error;
pub mod jobs;
pub mod state;
mod tray;

use std::sync::Arc;

use tauri::Manager;

pub use state::{AppState, EnvDefaults, Shared};

/// Builds the app on any runtime, so command tests can use `tauri::test::mock_builder`. The
/// caller manages a [`Shared`] state.
pub fn builder<R: tauri::Runtime>(b: tauri::Builder<R>) -> tauri::Builder<R> {
    b.invoke_handler(tauri::generate_handler![
        // Every command the UI may call. `src-tauri/build.rs` lists the same names so that each
        // gets an `allow-…` permission, and the capability grants exactly these.
        commands::status::app_state,
        commands::status::ui_ready,
        commands::status::dismiss_tray_notice,
        commands::connection::test_connection,
        commands::connection::list_databases,
        commands::connection::save_connection,
        commands::connection::set_destination_folder,
        commands::passphrase::set_passphrase,
        commands::passphrase::check_passphrase,
        commands::passphrase::change_passphrase,
        commands::passphrase::show_key,
        commands::backups::backup_now,
        commands::backups::cancel_job,
        commands::backups::list_backups,
        commands::backups::verify_backup,
        commands::backups::save_copy,
        commands::restore::prepare_restore,
        commands::restore::restore,
        commands::pending::connect_drive,
        commands::pending::disconnect_drive,
        commands::pending::get_settings,
        commands::pending::save_settings,
        commands::pending::health,
        commands::pending::send_test_email,
    ])
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
    builder(tauri::Builder::default())
        // First, so that a second launch only brings the running window forward.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            tray::show_main_window(app);
        }))
        .plugin(tauri_plugin_notification::init())
        .setup(move |app| {
            let config_dir = app.path().app_config_dir()?;
            let data_dir = app.path().app_data_dir()?;
            let mut state = AppState::new(
                AppState::os_keyring(),
                &config_dir,
                &data_dir,
                EnvDefaults::from_env(),
            );
            state.started = started;
            if let Some(problem) = state.keyring_problem() {
                tracing::warn!("no OS keyring: {problem}");
            }
            app.manage::<Shared>(Arc::new(state));
            tray::create(app.handle())?;
            Ok(())
        })
        .on_window_event(tray::on_window_event)
        .run(tauri::generate_context!())
        .expect("error while running the Driveback app");
}
