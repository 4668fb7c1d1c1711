//! The tray: closing the window keeps Driveback running (so automatic backups go on), said once
//! the first time; Quit is in the tray menu.

use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Runtime, Window, WindowEvent};
use tauri_plugin_notification::NotificationExt;

use crate::state::Shared;

pub const NOTICE: &str = "Driveback is still running in the tray so that automatic backups go on. \
Quit it from the tray menu; opening Driveback again brings the window back.";

pub fn create<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let open = MenuItem::with_id(app, "open", "Open Driveback", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit Driveback", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&open, &quit])?;
    let mut tray = TrayIconBuilder::with_id("driveback")
        .tooltip("Driveback")
        .menu(&menu)
        .on_menu_event(|app, event| match event.id.as_ref() {
            "open" => show_main_window(app),
            "quit" => app.exit(0),
            _ => {}
        });
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.build(app)?;
    Ok(())
}

pub fn show_main_window<R: Runtime>(app: &AppHandle<R>) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}

/// Closing the main window hides it; the first time, a notification says so.
pub fn on_window_event<R: Runtime>(window: &Window<R>, event: &WindowEvent) {
    let WindowEvent::CloseRequested { api, .. } = event else {
        return;
    };
    if window.label() != "main" {
        return;
    }
    api.prevent_close();
    let _ = window.hide();
    let app = window.app_handle();
    let Some(state) = app.try_state::<Shared>() else {
        return;
    };
    if !state.memory().tray_notice_shown {
        if let Err(e) = app
            .notification()
            .builder()
            .title("Driveback keeps running")
            .body(NOTICE)
            .show()
        {
            tracing::info!("could not show a notification: {e}");
        }
        let _ = state.update_memory(|c| c.tray_notice_shown = true);
    }
}
