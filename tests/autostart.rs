//! "Start Driveback when I log in", with real components: the switch writes and removes the real
//! login entry (through the autostart plugin, on the mock runtime's IPC), and the real app binary
//! started as that entry starts it (`driveback-app --autostart`, under Xvfb, on the test MongoDB
//! server, with the real Secret Service) shows no window and still runs a missed backup.
//!
//! The login entry's folder follows `HOME`, which is process-wide: the tests of this file take
//! [`ENV`] so that no other test sees it changed.

#[path = "ipc/mod.rs"]
mod ipc;
use ipc::invoke;
#[path = "records/mod.rs"]
mod records;
use records::successful_backup;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::{doc, Document};
use driveback_app::{AppState, EnvDefaults, Shared};
use driveback_engine::history::{Outcome, RunKind, Trigger};
use driveback_engine::secrets::{KeyringSecretStore, SecretStore};
use driveback_engine::settings::Settings;
use driveback_engine::store::{self, Dest};
use serde_json::{json, Value};
use tauri::test::{mock_builder, mock_context, noop_assets, MockRuntime};
use tauri::{App, WebviewWindow, WebviewWindowBuilder};

const PASSPHRASE: &str = "correct horse battery staple";

/// Held by every test that changes or relies on the process environment.
static ENV: Mutex<()> = Mutex::new(());

fn env_lock() -> std::sync::MutexGuard<'static, ()> {
    ENV.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets `HOME` and `XDG_CONFIG_HOME` for the test's span, and puts them back after.
struct HomeFor {
    old: Vec<(&'static str, Option<std::ffi::OsString>)>,
}

impl HomeFor {
    fn set(home: &Path) -> HomeFor {
        let old = ["HOME", "XDG_CONFIG_HOME"]
            .into_iter()
            .map(|k| (k, std::env::var_os(k)))
            .collect();
        std::env::set_var("HOME", home);
        std::env::set_var("XDG_CONFIG_HOME", home.join(".config"));
        HomeFor { old }
    }
}

impl Drop for HomeFor {
    fn drop(&mut self) {
        for (k, v) in &self.old {
            match v {
                Some(v) => std::env::set_var(k, v),
                None => std::env::remove_var(k),
            }
        }
    }
}

/// The app's commands on the mock runtime, with the autostart plugin as the app registers it
/// (or without it).
fn app(with_plugin: bool) -> (App<MockRuntime>, WebviewWindow<MockRuntime>) {
    let mut b = driveback_app::builder(mock_builder());
    if with_plugin {
        b = b.plugin(driveback_app::autostart::plugin());
    }
    let app = b.build(mock_context(noop_assets())).unwrap();
    let window = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    (app, window)
}

fn error_of(r: Result<Value, Value>) -> (String, String) {
    let e = r.expect_err("the command succeeded");
    (
        e["code"].as_str().unwrap().to_string(),
        e["message"].as_str().unwrap().to_string(),
    )
}

/// The switch adds the login entry that starts this program with `--autostart`, and removes it;
/// the status follows the entry.
#[test]
fn the_switch_adds_and_removes_the_login_entry() {
    let _env = env_lock();
    let home = tempfile::tempdir().unwrap();
    let _home = HomeFor::set(home.path());
    let (_app, window) = app(true);
    let entry = home.path().join(".config/autostart/Driveback.desktop");

    assert_eq!(
        invoke(&window, "start_at_login_status", json!({})),
        Ok(json!(false))
    );
    assert_eq!(
        invoke(&window, "set_start_at_login", json!({"enabled": true})),
        Ok(json!(true))
    );
    let text = std::fs::read_to_string(&entry).expect("the login entry is written");
    let exe = std::env::current_exe().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"[Desktop Entry]"), "{text}");
    assert!(lines.contains(&"Type=Application"), "{text}");
    assert!(lines.contains(&"Name=Driveback"), "{text}");
    assert!(
        lines.contains(&format!("Exec={} --autostart", exe.display()).as_str()),
        "the entry starts this program with --autostart: {text}"
    );
    assert_eq!(
        invoke(&window, "start_at_login_status", json!({})),
        Ok(json!(true))
    );
    // Switching it on again keeps the one entry.
    assert_eq!(
        invoke(&window, "set_start_at_login", json!({"enabled": true})),
        Ok(json!(true))
    );
    assert_eq!(
        std::fs::read_dir(entry.parent().unwrap()).unwrap().count(),
        1
    );

    assert_eq!(
        invoke(&window, "set_start_at_login", json!({"enabled": false})),
        Ok(json!(false))
    );
    assert!(!entry.exists(), "the login entry is removed");
    assert_eq!(
        invoke(&window, "start_at_login_status", json!({})),
        Ok(json!(false))
    );
    // Off when already off is not an error.
    assert_eq!(
        invoke(&window, "set_start_at_login", json!({"enabled": false})),
        Ok(json!(false))
    );
}

/// When the login entry cannot be written, the switch says why in one line, and the status
/// stays off.
#[test]
fn a_login_entry_that_cannot_be_written_is_an_error() {
    let _env = env_lock();
    let home = tempfile::tempdir().unwrap();
    let _home = HomeFor::set(home.path());
    // The entry's folder is taken by a file.
    std::fs::create_dir_all(home.path().join(".config")).unwrap();
    std::fs::write(home.path().join(".config/autostart"), "not a folder").unwrap();
    let (_app, window) = app(true);

    let (code, message) = error_of(invoke(
        &window,
        "set_start_at_login",
        json!({"enabled": true}),
    ));
    assert_eq!(code, "io_error");
    assert!(
        message.starts_with("Could not add Driveback to the programs started at login: "),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
    assert_eq!(
        invoke(&window, "start_at_login_status", json!({})),
        Ok(json!(false))
    );

    // Without the plugin (not the app as built), the commands answer with an error, not a panic.
    let (_bare, window) = app(false);
    let (code, _) = error_of(invoke(&window, "start_at_login_status", json!({})));
    assert_eq!(code, "internal");
}

/// With the app's real capability, the page reaches the login entry only through the app's two
/// commands: the plugin's own commands are refused.
#[test]
fn the_page_cannot_call_the_plugin_directly() {
    let _env = env_lock();
    let home = tempfile::tempdir().unwrap();
    let _home = HomeFor::set(home.path());
    let mut context = tauri::generate_context!();
    context.set_assets(Box::new(noop_assets()));
    let app = driveback_app::builder(mock_builder())
        .plugin(driveback_app::autostart::plugin())
        .build(context)
        .unwrap();
    let window = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    for cmd in [
        "plugin:autostart|enable",
        "plugin:autostart|disable",
        "plugin:autostart|is_enabled",
    ] {
        let refused = invoke(&window, cmd, json!({})).expect_err(cmd).to_string();
        assert!(refused.contains("not allowed"), "{cmd}: {refused}");
    }
    assert!(!home.path().join(".config/autostart").exists());
    assert_eq!(
        invoke(&window, "start_at_login_status", json!({})),
        Ok(json!(false))
    );
}

// ---------------------------------------------------------------------------------------------
// The real app, started as the login entry starts it.

/// A private X server (Xvfb), ended with the test.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb (the xvfb package; scripts/setup installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let n: u32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("Xvfb did not start: {line:?}"));
        Xvfb {
            child,
            display: format!(":{n}"),
        }
    }

    /// The ids of the windows titled `title` that are on screen (mapped and viewable).
    fn viewable_windows(&self, title: &str) -> Vec<String> {
        let xwininfo = |args: &[&str]| {
            let out = Command::new("xwininfo")
                .args(args)
                .env("DISPLAY", &self.display)
                .output()
                .expect("run xwininfo (the x11-utils package; scripts/setup installs it)");
            assert!(
                out.status.success(),
                "xwininfo {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let quoted = format!("\"{title}\"");
        xwininfo(&["-root", "-tree"])
            .lines()
            .filter(|l| l.contains(&quoted))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .filter(|id| xwininfo(&["-id", id]).contains("Map State: IsViewable"))
            .collect()
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `driveback-app`, killed with the test; its output goes to `log`.
struct RunningApp {
    child: Child,
    log: PathBuf,
}

impl RunningApp {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails the test when the app has ended.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the app ended ({status}); its output:\n{}", self.log());
        }
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.subsec_nanos() ^ std::process::id().rotate_left(16)
}

/// Started as the login entry starts it, the app stays in the tray with no window, and its
/// scheduler runs the slot missed while it was not running; opening Driveback again shows the
/// window.
#[test]
fn a_login_start_shows_no_window_and_runs_the_missed_backup() {
    let _env = env_lock();
    assert!(
        driveback_testkit::require_keyring(),
        "the app keeps its backup key in the Secret Service: run this test on a session bus with \
         an unlocked keyring (scripts/test does)"
    );
    let mongo = driveback_testkit::mongo();
    let db = mongo.fresh_db("autostart");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        mongo
            .client()
            .await
            .database(&db)
            .collection::<Document>("entries")
            .insert_many((0..200).map(|i: i32| doc! {"_id": i, "n": i}))
            .await
            .unwrap();
    });

    // A configured Driveback: database, folder destination, a backup key in the keyring, and a
    // last backup three days ago (the daily slots since were missed while it was not running).
    let dir = tempfile::tempdir().unwrap();
    let (config, data, folder) = (
        dir.path().join("config"),
        dir.path().join("data"),
        dir.path().join("backups"),
    );
    let mut settings = Settings::default();
    settings.set_key("backup.database", &db).unwrap();
    settings
        .set_key("backup.dest", &format!("folder:{}", folder.display()))
        .unwrap();
    settings.save_to(&config.join("settings.json")).unwrap();
    let keyring_service = format!("driveback-autostart-test-{:08x}", rand_u32());
    let secrets: Arc<dyn SecretStore> =
        Arc::new(KeyringSecretStore::with_service(&keyring_service));
    let state: Shared = Arc::new(AppState::new(
        Ok(secrets),
        &config,
        &data,
        EnvDefaults {
            mongo_uri: Some(mongo.uri().to_string()),
            ..EnvDefaults::default()
        },
    ));
    state
        .service
        .set_passphrase(PASSPHRASE.to_string())
        .expect("make the backup key");
    let three_days_ago = chrono::Utc::now() - chrono::Duration::days(3);
    state
        .history()
        .append(&successful_backup(
            "earlier",
            Trigger::Scheduled,
            three_days_ago,
            &db,
        ))
        .unwrap();
    assert!(store::open_store(&Dest::Folder(folder.clone()))
        .unwrap()
        .list()
        .unwrap()
        .is_empty());

    let x = Xvfb::start();
    let home = dir.path().join("home");
    for d in ["home", "xdg-config", "xdg-data", "xdg-cache"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let launch = |args: &[&str], log: &Path| -> Child {
        let log = std::fs::File::create(log).unwrap();
        Command::new(env!("CARGO_BIN_EXE_driveback-app"))
            .args(args)
            .env("DISPLAY", &x.display)
            .env_remove("WAYLAND_DISPLAY")
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", dir.path().join("xdg-config"))
            .env("XDG_DATA_HOME", dir.path().join("xdg-data"))
            .env("XDG_CACHE_HOME", dir.path().join("xdg-cache"))
            .env("NO_AT_BRIDGE", "1")
            .env("DRIVEBACK_CONFIG_DIR", &config)
            .env("DRIVEBACK_DATA_DIR", &data)
            .env("DRIVEBACK_KEYRING_SERVICE", &keyring_service)
            .env("DRIVEBACK_MONGO_URI", mongo.uri())
            .env_remove("DRIVEBACK_DEMO_DB")
            .env_remove("DRIVEBACK_DEMO_FOLDER")
            // The scheduler looks every 100 ms and catches a missed slot up 1 s after the start.
            .env("DRIVEBACK_SCHEDULER_TICK_MS", "100")
            .env("DRIVEBACK_CATCH_UP_SECS", "1")
            .env("DRIVEBACK_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start driveback-app")
    };

    // Started as the login entry starts it.
    let started = Instant::now();
    let log = dir.path().join("app.log");
    let mut app = RunningApp {
        child: launch(&["--autostart"], &log),
        log,
    };
    let record = loop {
        app.assert_running();
        let windows = x.viewable_windows("Driveback");
        assert!(
            windows.is_empty(),
            "a window is on screen after a login start: {windows:?}"
        );
        let runs = state.history().load().unwrap();
        if let Some(r) = runs.iter().skip(1).find(|r| r.kind == RunKind::Backup) {
            break r.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no backup ran within 120 s of the login start; the app's output:\n{}",
            app.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(record.trigger, Trigger::Scheduled, "{record:?}");
    assert_eq!(
        record.outcome,
        Outcome::Success,
        "{record:?}\n{}",
        app.log()
    );
    assert_eq!(record.documents, Some(200), "{record:?}");
    let backups = store::open_store(&Dest::Folder(folder.clone()))
        .unwrap()
        .list()
        .unwrap();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(Some(&backups[0].id), record.backup_id.as_ref());
    eprintln!(
        "the missed backup ran {:.1} s after the login start",
        started.elapsed().as_secs_f64()
    );
    // Still running, still no window, a moment later.
    std::thread::sleep(Duration::from_secs(1));
    app.assert_running();
    assert_eq!(x.viewable_windows("Driveback"), Vec::<String>::new());

    // Opening Driveback again (a second launch, no flag) brings the window up.
    // It hands over to the running app and ends.
    let log = dir.path().join("second.log");
    let mut second = RunningApp {
        child: launch(&[], &log),
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the second launch did not hand over to the running app; its output:\n{}",
            second.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "the second launch: {status}\n{}",
        second.log()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while x.viewable_windows("Driveback").is_empty() {
        app.assert_running();
        assert!(
            Instant::now() < deadline,
            "opening Driveback again did not show the window; the app's output:\n{}",
            app.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let runs = state.history().load().unwrap();
    assert_eq!(
        runs.iter().filter(|r| r.kind == RunKind::Backup).count(),
        2,
        "one catch-up run: {runs:?}"
    );
}
