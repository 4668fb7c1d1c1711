//! "Start Driveback when I log in": the login entry (through `tauri-plugin-autostart`) starts the
//! app with [`LOGIN_ARG`], and such a start stays in the tray with no window, so automatic backups
//! go on after a restart without the user opening anything.
//!
//! Where the entry lands: on Linux `~/.config/autostart/Driveback.desktop` (XDG autostart), on
//! macOS a Launch Agent `~/Library/LaunchAgents/Driveback.plist`, on Windows the `Driveback` value
//! of the current user's `Run` registry key.

use std::ffi::OsStr;

use tauri::{Manager, Runtime};
use tauri_plugin_autostart::AutoLaunchManager;

use crate::error::{ApiError, ApiResult, ErrorCode};

/// The argument the login entry starts Driveback with.
pub const LOGIN_ARG: &str = "--autostart";

/// The name of the login entry (and the entry's file name on Linux and macOS).
pub const ENTRY_NAME: &str = "Driveback";

/// Whether a start with these command-line arguments (the program first, as in
/// `std::env::args_os()`) keeps the window hidden: only a start from the login entry does.
pub fn starts_hidden<I, S>(args: I) -> bool
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    args.into_iter()
        .skip(1)
        .any(|a| a.as_ref() == OsStr::new(LOGIN_ARG))
}

/// The plugin that writes and removes the login entry: it starts this executable with
/// [`LOGIN_ARG`] (a Launch Agent on macOS).
pub fn plugin<R: Runtime>() -> tauri::plugin::TauriPlugin<R> {
    let b = tauri_plugin_autostart::Builder::new()
        .app_name(ENTRY_NAME)
        .arg(LOGIN_ARG);
    #[cfg(target_os = "macos")]
    let b = b.macos_launcher(tauri_plugin_autostart::MacosLauncher::LaunchAgent);
    b.build()
}

fn manager<R: Runtime, M: Manager<R>>(app: &M) -> ApiResult<tauri::State<'_, AutoLaunchManager>> {
    app.try_state::<AutoLaunchManager>().ok_or_else(|| {
        ApiError::new(
            ErrorCode::Internal,
            "Starting Driveback at login is not available in this build.",
        )
    })
}

/// Whether Driveback starts when the user logs in.
pub fn status<R: Runtime, M: Manager<R>>(app: &M) -> ApiResult<bool> {
    manager(app)?.is_enabled().map_err(|e| {
        ApiError::new(
            ErrorCode::IoError,
            format!("Could not tell whether Driveback starts at login: {e}"),
        )
    })
}

/// Adds (`true`) or removes the login entry; returns whether Driveback now starts at login.
pub fn set<R: Runtime, M: Manager<R>>(app: &M, enabled: bool) -> ApiResult<bool> {
    let m = manager(app)?;
    let done = if enabled { m.enable() } else { m.disable() };
    done.map_err(|e| {
        let what = if enabled {
            "add Driveback to the programs started at login"
        } else {
            "remove Driveback from the programs started at login"
        };
        ApiError::new(ErrorCode::IoError, format!("Could not {what}: {e}"))
    })?;
    status(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_start_from_the_login_entry_is_hidden() {
        assert!(starts_hidden(["/usr/bin/driveback-app", "--autostart"]));
        assert!(starts_hidden(["driveback-app", "--verbose", "--autostart"]));
        assert!(!starts_hidden(["/usr/bin/driveback-app"]));
        assert!(!starts_hidden(Vec::<String>::new()));
        // The program's own name is not an argument, and near misses are not the flag.
        assert!(!starts_hidden(["--autostart"]));
        assert!(!starts_hidden(["driveback-app", "--autostart=1"]));
        assert!(!starts_hidden(["driveback-app", "autostart"]));
    }
}
