/// The commands the UI may call: each gets an `allow-<command>` permission, and
/// `capabilities/default.json` grants exactly these (the list in `src/lib.rs` must match).
const COMMANDS: &[&str] = &[
    "app_state",
    "ui_ready",
    "dismiss_tray_notice",
    "pause_automatic",
    "resume_automatic",
    "test_connection",
    "list_databases",
    "save_connection",
    "set_destination_folder",
    "set_passphrase",
    "check_passphrase",
    "confirm_destination_key",
    "change_passphrase",
    "show_key",
    "save_key",
    "backup_now",
    "follow_backup",
    "cancel_job",
    "list_backups",
    "verify_backup",
    "save_copy",
    "export_json",
    "prepare_restore",
    "prepare_restore_file",
    "restore",
    "connect_drive",
    "cancel_connect_drive",
    "disconnect_drive",
    "google_client_status",
    "set_google_client",
    "get_settings",
    "save_settings",
    "set_smtp_password",
    "send_test_email",
    "health",
    "acknowledge_alarms",
    "start_at_login_status",
    "set_start_at_login",
];

fn main() {
    let attrs = tauri_build::Attributes::new()
        .capabilities_path_pattern("./src-tauri/capabilities/**/*")
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    tauri_build::try_build(attrs).expect("failed to run tauri-build");
}
