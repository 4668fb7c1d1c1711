//! The tray: the glance line (the same as the home card and `driveback status`), Back up now,
//! pause or resume automatic backups, Open and Quit; the tooltip shows the glance line too.
//! Closing the window keeps Driveback running (so automatic backups go on), said once the first
//! time.
//!
//! [`menu_items`] is pure: the menu for a state. The menu is kept current: at once when a job
//! starts or ends or the state changes (`state-changed`), the words every minute (relative times
//! move on; no destination is read for that), and the destination read again every half hour.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use driveback_engine::glance::{Facts, Glance};
use driveback_engine::history::Trigger;
use driveback_engine::jobs::JobEvent;
use driveback_engine::settings::Frequency;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Listener, Manager, Runtime, Window, WindowEvent};
use tauri_plugin_notification::NotificationExt;
use tokio::sync::broadcast::error::RecvError;

use crate::state::Shared;

pub const NOTICE: &str = "Driveback is still running in the tray so that automatic backups go on. \
Quit it from the tray menu; opening Driveback again brings the window back.";

const TRAY_ID: &str = "driveback";

/// How often the words are said again (relative times move on).
const WORDS_EVERY: Duration = Duration::from_secs(60);
/// How often the destination is read again for the menu (besides after every job).
const LOOK_EVERY: u32 = 30;

/// One entry of the tray menu.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub id: &'static str,
    pub text: String,
    pub enabled: bool,
}

/// What the tray menu shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrayView {
    pub glance: Glance,
    /// A backup, verify or restore runs (Backup Now would not start one).
    pub busy: bool,
    /// Everything a backup needs is set up.
    pub ready: bool,
    pub frequency: Frequency,
    pub paused_until: Option<DateTime<Utc>>,
}

impl TrayView {
    fn paused(&self, now: DateTime<Utc>) -> bool {
        self.paused_until.is_some_and(|p| p > now)
    }
}

/// Pure: the menu for `view` at `now`, in order (a separator goes before Open).
pub fn menu_items(view: &TrayView, now: DateTime<Utc>) -> Vec<Item> {
    let item = |id, text: &str, enabled| Item {
        id,
        text: text.to_string(),
        enabled,
    };
    let toggle = if view.paused(now) {
        item("pause_toggle", "Resume automatic backups", true)
    } else {
        item(
            "pause_toggle",
            "Pause automatic backups until tomorrow",
            view.frequency != Frequency::Off,
        )
    };
    vec![
        item("glance", &view.glance.text, false),
        item("backup_now", "Back up now", view.ready && !view.busy),
        toggle,
        item("open", "Open Driveback", true),
        item("quit", "Quit Driveback", true),
    ]
}

/// The live tray: its items (updated in place) and what the line was made of.
struct Tray<R: Runtime> {
    items: Vec<MenuItem<R>>,
    /// The facts of the last full look and whether a backup could start then.
    seen: Mutex<Option<(Facts, bool)>>,
}

impl<R: Runtime> Tray<R> {
    fn show(&self, app: &AppHandle<R>, view: &TrayView) {
        for (item, want) in self.items.iter().zip(menu_items(view, Utc::now())) {
            let _ = item.set_text(&want.text);
            let _ = item.set_enabled(want.enabled);
        }
        if let Some(tray) = app.tray_by_id(TRAY_ID) {
            let _ = tray.set_tooltip(Some(format!("Driveback: {}", view.glance.text)));
        }
    }
}

fn view_of(state: &Shared, glance: Glance, ready: bool) -> TrayView {
    let settings = state.settings();
    TrayView {
        glance,
        busy: state.jobs().current().is_some(),
        ready,
        frequency: settings.schedule.frequency,
        paused_until: settings.schedule.paused_until,
    }
}

/// Reads the state again (the destination too: blocking, off the async runtime) and shows it.
fn look<R: Runtime>(app: &AppHandle<R>, tray: &Arc<Tray<R>>) {
    let (Some(state), app, tray) = (
        app.try_state::<Shared>().map(|s| s.inner().clone()),
        app.clone(),
        tray.clone(),
    ) else {
        return;
    };
    tauri::async_runtime::spawn_blocking(move || {
        let v = state.status_view();
        *tray.seen.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((v.glance_facts.clone(), v.ready));
        tray.show(&app, &view_of(&state, v.glance, v.ready));
    });
}

/// Says the line again at the present time, from the last look (reads no destination).
fn reword<R: Runtime>(app: &AppHandle<R>, tray: &Tray<R>) {
    let Some(state) = app.try_state::<Shared>() else {
        return;
    };
    let seen = tray.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some((facts, ready)) = seen {
        let (facts, glance) = state.glance_again(&facts);
        tray.show(app, &view_of(state.inner(), glance, ready));
        *tray.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some((facts, ready));
    }
}

/// Tells the user, as a desktop notification, why what they chose in the tray did not happen.
fn tell<R: Runtime>(app: &AppHandle<R>, title: &str, why: &str) {
    tracing::warn!("{title}: {why}");
    if let Some(toaster) = app.try_state::<Shared>().and_then(|s| s.toaster()) {
        toaster.show(title, why);
    }
}

fn on_menu<R: Runtime>(app: &AppHandle<R>, id: &str) {
    let Some(state) = app.try_state::<Shared>().map(|s| s.inner().clone()) else {
        return;
    };
    match id {
        "open" => show_main_window(app),
        "quit" => app.exit(0),
        "backup_now" => {
            // The same service operation as the window's Backup Now; its progress and end reach
            // the window through the bridge, and the tray through the job events.
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                if let Err(e) = state.start_backup(Trigger::Manual).await {
                    tell(&app, "Driveback could not start a backup", &e.message);
                }
            });
        }
        "pause_toggle" => {
            let app = app.clone();
            tauri::async_runtime::spawn_blocking(move || {
                let paused = state
                    .settings()
                    .schedule
                    .paused_until
                    .is_some_and(|p| p > state.now());
                let done = if paused {
                    state.resume_automatic()
                } else {
                    state.pause_automatic_until_tomorrow().map(|_| ())
                };
                match done {
                    Ok(()) => state.emit("state-changed", serde_json::Value::Null),
                    Err(e) => tell(
                        &app,
                        "Driveback could not change automatic backups",
                        &e.message,
                    ),
                }
            });
        }
        _ => {}
    }
}

pub fn create<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let items = menu_items(
        &TrayView {
            glance: Glance {
                text: "Driveback".into(),
                level: driveback_engine::glance::Level::Fresh,
            },
            busy: false,
            ready: false,
            frequency: Frequency::Off,
            paused_until: None,
        },
        Utc::now(),
    )
    .into_iter()
    .map(|i| MenuItem::with_id(app, i.id, &i.text, i.enabled, None::<&str>))
    .collect::<tauri::Result<Vec<_>>>()?;
    let separator = PredefinedMenuItem::separator(app)?;
    let separator2 = PredefinedMenuItem::separator(app)?;
    let menu = Menu::with_items(
        app,
        &[
            &items[0],
            &separator,
            &items[1],
            &items[2],
            &separator2,
            &items[3],
            &items[4],
        ],
    )?;
    let mut builder = TrayIconBuilder::with_id(TRAY_ID)
        .tooltip("Driveback")
        .menu(&menu)
        .on_menu_event(|app, event| on_menu(app, event.id.as_ref()));
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    builder.build(app)?;
    let tray = Arc::new(Tray {
        items,
        seen: Mutex::new(None),
    });
    look(app, &tray);
    // The state changed (a setting, a pause, a job's end): look again.
    {
        let (app2, tray) = (app.clone(), tray.clone());
        app.listen_any("state-changed", move |_| look(&app2, &tray));
    }
    // A job started or ended: look again (Back up now is enabled only with no job running).
    if let Some(state) = app.try_state::<Shared>() {
        let mut events = state.jobs().subscribe();
        let (app, tray) = (app.clone(), tray.clone());
        tauri::async_runtime::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(JobEvent::Started { .. } | JobEvent::Ended { .. }) => look(&app, &tray),
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }
    // Every minute the words again; every half hour a full look.
    {
        let (app, tray) = (app.clone(), tray.clone());
        tauri::async_runtime::spawn(async move {
            let mut minutes = 0u32;
            loop {
                tokio::time::sleep(WORDS_EVERY).await;
                minutes += 1;
                if minutes == LOOK_EVERY {
                    minutes = 0;
                    look(&app, &tray);
                } else {
                    reword(&app, &tray);
                }
            }
        });
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use driveback_engine::glance::Level;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn view() -> TrayView {
        TrayView {
            glance: Glance {
                text: "Backed up 2 hours ago · 61 kB · Next: tonight 02:00".into(),
                level: Level::Fresh,
            },
            busy: false,
            ready: true,
            frequency: Frequency::Daily,
            paused_until: None,
        }
    }

    /// (id, text, enabled) of each item.
    fn shown(v: &TrayView, now: DateTime<Utc>) -> Vec<(&'static str, String, bool)> {
        menu_items(v, now)
            .into_iter()
            .map(|i| (i.id, i.text, i.enabled))
            .collect()
    }

    #[test]
    fn the_menu_for_each_state() {
        let now = at("2024-05-10T14:00:00Z");
        let text = view().glance.text;
        let line = text.as_str();
        type Case<'a> = (&'a str, TrayView, [(&'a str, bool); 5]);
        let cases: Vec<Case> = vec![
            (
                "idle",
                view(),
                [
                    (line, false),
                    ("Back up now", true),
                    ("Pause automatic backups until tomorrow", true),
                    ("Open Driveback", true),
                    ("Quit Driveback", true),
                ],
            ),
            (
                "a job running: Back up now disabled",
                TrayView {
                    busy: true,
                    ..view()
                },
                [
                    (line, false),
                    ("Back up now", false),
                    ("Pause automatic backups until tomorrow", true),
                    ("Open Driveback", true),
                    ("Quit Driveback", true),
                ],
            ),
            (
                "paused: Resume",
                TrayView {
                    paused_until: Some(at("2024-05-11T09:00:00Z")),
                    ..view()
                },
                [
                    (line, false),
                    ("Back up now", true),
                    ("Resume automatic backups", true),
                    ("Open Driveback", true),
                    ("Quit Driveback", true),
                ],
            ),
            (
                "a pause that ended: Pause again",
                TrayView {
                    paused_until: Some(at("2024-05-10T09:00:00Z")),
                    ..view()
                },
                [
                    (line, false),
                    ("Back up now", true),
                    ("Pause automatic backups until tomorrow", true),
                    ("Open Driveback", true),
                    ("Quit Driveback", true),
                ],
            ),
            (
                "automatic backups off: nothing to pause",
                TrayView {
                    frequency: Frequency::Off,
                    ..view()
                },
                [
                    (line, false),
                    ("Back up now", true),
                    ("Pause automatic backups until tomorrow", false),
                    ("Open Driveback", true),
                    ("Quit Driveback", true),
                ],
            ),
            (
                "not set up yet: no Back up now",
                TrayView {
                    ready: false,
                    ..view()
                },
                [
                    (line, false),
                    ("Back up now", false),
                    ("Pause automatic backups until tomorrow", true),
                    ("Open Driveback", true),
                    ("Quit Driveback", true),
                ],
            ),
        ];
        for (name, v, want) in cases {
            let got = shown(&v, now);
            let ids: Vec<&str> = got.iter().map(|g| g.0).collect();
            assert_eq!(
                ids,
                ["glance", "backup_now", "pause_toggle", "open", "quit"],
                "{name}"
            );
            let got: Vec<(&str, bool)> = got.iter().map(|g| (g.1.as_str(), g.2)).collect();
            assert_eq!(got, want, "{name}");
        }
    }
}
