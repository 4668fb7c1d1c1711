//! The app's commands through Tauri's IPC on the mock runtime, with the real engine, a real
//! MongoDB-wire server (`driveback_testkit::mongo()`), a real folder destination and, when the
//! test script provides one, the real Secret Service.

#[path = "ipc/mod.rs"]
mod ipc;
use ipc::invoke;
#[path = "records/mod.rs"]
mod records;
use records::successful_backup;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::{doc, Document};
use driveback_app::notify::Toaster;
use driveback_app::{AppState, EnvDefaults, Shared, StartOptions};
use driveback_engine::secrets::{KeyringSecretStore, MemorySecretStore, SecretStore};
use serde_json::{json, Value};
use tauri::ipc::InvokeResponseBody;
use tauri::test::{mock_builder, mock_context, noop_assets, MockRuntime};
use tauri::{App, WebviewWindow, WebviewWindowBuilder};

const PASSPHRASE: &str = "correct horse battery staple";

struct Harness {
    _app: App<MockRuntime>,
    window: WebviewWindow<MockRuntime>,
    events: Arc<Mutex<Vec<Value>>>,
    dir: tempfile::TempDir,
    secrets: Arc<dyn SecretStore>,
    state: Shared,
    /// The desktop notifications shown: (title, body).
    toasts: Arc<Toasts>,
}

#[derive(Default)]
struct Toasts(Mutex<Vec<(String, String)>>);

impl Toaster for Toasts {
    fn show(&self, title: &str, body: &str) {
        self.0.lock().unwrap().push((title.into(), body.into()));
    }
}

impl Toasts {
    fn wait_for(&self, title: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some((_, body)) = self.0.lock().unwrap().iter().find(|(t, _)| t == title) {
                return body.clone();
            }
            assert!(Instant::now() < deadline, "no notification {title:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn secrets() -> Arc<dyn SecretStore> {
    if driveback_testkit::require_keyring() {
        Arc::new(KeyringSecretStore::with_service(&format!(
            "driveback-app-test-{:08x}",
            rand_u32()
        )))
    } else {
        Arc::new(MemorySecretStore::new())
    }
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.subsec_nanos() ^ std::process::id().rotate_left(16)
}

/// The app over its own folders and keyring, with its commands, nothing started yet.
fn unstarted_harness(env: impl FnOnce(&Path) -> EnvDefaults) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let secrets = secrets();
    let state: Shared = Arc::new(AppState::new(
        Ok(secrets.clone()),
        &dir.path().join("config"),
        &dir.path().join("data"),
        env(dir.path()),
    ));
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let app = driveback_app::builder(mock_builder())
        .channel_interceptor(move |_webview, _callback, _index, body| {
            if let InvokeResponseBody::Json(json) = body {
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_str(json).unwrap());
            }
            true
        })
        .manage(state.clone())
        .build(mock_context(noop_assets()))
        .unwrap();
    let window = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    Harness {
        _app: app,
        window,
        events,
        dir,
        secrets,
        state,
        toasts: Arc::new(Toasts::default()),
    }
}

/// The app with its background work started as at launch; the scheduler only where a test
/// asks for it.
fn harness(env: impl FnOnce(&Path) -> EnvDefaults) -> Harness {
    let h = unstarted_harness(env);
    h.start(StartOptions {
        scheduler: false,
        ..StartOptions::default()
    });
    h
}

/// The app over a database on the test server and a folder, nothing started yet.
fn app_on(mongo: &driveback_testkit::TestMongo, db_name: &str) -> Harness {
    unstarted_harness(|dir| EnvDefaults {
        mongo_uri: Some(mongo.uri().to_string()),
        database: Some(db_name.to_string()),
        folder: Some(dir.join("backups")),
    })
}

impl Harness {
    fn call(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        invoke(&self.window, cmd, args)
    }

    fn ok(&self, cmd: &str, args: Value) -> Value {
        self.call(cmd, args)
            .unwrap_or_else(|e| panic!("{cmd} failed: {e}"))
    }

    fn err(&self, cmd: &str, args: Value) -> (String, String) {
        let e = self
            .call(cmd, args)
            .err()
            .unwrap_or_else(|| panic!("{cmd} succeeded"));
        (
            e["code"].as_str().unwrap().to_string(),
            e["message"].as_str().unwrap().to_string(),
        )
    }

    /// Waits for a job event other than progress.
    fn outcome(&self, job_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(e) = self
                .events
                .lock()
                .unwrap()
                .iter()
                .find(|e| e["job_id"] == job_id && e["event"] != "progress")
            {
                return e.clone();
            }
            assert!(Instant::now() < deadline, "job {job_id} did not end");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the app's background work, as at launch.
    fn start(&self, opts: StartOptions) {
        driveback_app::start(
            self._app.handle(),
            &self.state,
            Some(self.toasts.clone()),
            opts,
        );
    }

    /// The scheduler ticking fast, a missed slot caught up a second after the start.
    fn start_scheduler(&self) {
        self.start(StartOptions {
            tick: Duration::from_millis(100),
            catch_up_delay: chrono::Duration::seconds(1),
            ..StartOptions::default()
        });
    }

    fn backups_folder(&self) -> std::path::PathBuf {
        self.dir.path().join("backups")
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

async fn seed(db: &mongodb::Database) {
    let docs: Vec<Document> = (0..2000)
        .map(|i: i32| doc! { "_id": i, "n": i, "text": format!("entry {i}") })
        .collect();
    db.collection::<Document>("entries")
        .insert_many(docs)
        .await
        .unwrap();
    db.collection::<Document>("projects")
        .insert_many((0..5).map(|i: i32| doc! { "_id": i, "name": format!("p{i}") }))
        .await
        .unwrap();
}

async fn dump(db: &mongodb::Database, coll: &str) -> Vec<Document> {
    let mut c = db
        .collection::<Document>(coll)
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .await
        .unwrap();
    let mut out = Vec::new();
    while c.advance().await.unwrap() {
        out.push(c.deserialize_current().unwrap());
    }
    out
}

/// First run, backup, list, prepare, restore (with the token only), undo, verify, save a copy.
#[test]
fn from_first_run_to_restore_and_undo() {
    let mongo = driveback_testkit::mongo();
    let rt = rt();
    let db_name = mongo.fresh_db("app_cmds");
    let client = rt.block_on(mongo.client());
    let db = client.database(&db_name);
    rt.block_on(seed(&db));
    let h = harness(|dir| EnvDefaults {
        folder: Some(dir.join("backups")),
        ..Default::default()
    });

    // Nothing is set up yet.
    let s = h.ok("app_state", json!({}));
    assert_eq!(s["ready"], false);
    assert_eq!(s["mongo"]["configured"], false);
    assert_eq!(s["destination"]["has_key"], false);
    assert_eq!(s["last_backup"], Value::Null);
    assert_eq!(
        h.err("backup_now", json!({"onEvent": "__CHANNEL__:1"})).0,
        "not_configured"
    );

    // Connect: a bad string, then the real one; the database list; saving it.
    assert_eq!(
        h.err("test_connection", json!({"uri": "nonsense://x"})).0,
        "bad_mongo_uri"
    );
    let c = h.ok("test_connection", json!({"uri": mongo.uri()}));
    assert!(c["databases"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d == &json!(db_name)));
    assert!(!c["host"].as_str().unwrap().contains("mongodb://"));
    assert_eq!(
        h.err(
            "save_connection",
            json!({"uri": mongo.uri(), "database": "no_such_db_here"})
        )
        .0,
        "not_found"
    );
    let saved = h.ok(
        "save_connection",
        json!({"uri": mongo.uri(), "database": db_name}),
    );
    assert_eq!(saved["state"]["mongo"]["configured"], true);
    assert_eq!(saved["state"]["mongo"]["source"], "entered");
    assert_eq!(saved["notice"], Value::Null);
    // The URI went to the keyring and nowhere on disk.
    let kept = h
        .secrets
        .get(driveback_engine::secrets::MONGO_URI)
        .unwrap()
        .unwrap();
    assert_eq!(secrecy::ExposeSecret::expose_secret(&kept), mongo.uri());
    let settings = std::fs::read_to_string(h.dir.path().join("config/settings.json")).unwrap();
    assert!(!settings.contains("mongodb://"), "{settings}");

    // Backup needs the passphrase first.
    assert_eq!(
        h.err("backup_now", json!({"onEvent": "__CHANNEL__:1"})).0,
        "no_key"
    );
    assert_eq!(
        h.err("set_passphrase", json!({"passphrase": "short"})).0,
        "weak_passphrase"
    );
    let key = h.ok("set_passphrase", json!({"passphrase": PASSPHRASE}));
    assert!(key["public_key"].as_str().unwrap().starts_with("age1"));
    assert_eq!(
        h.err("set_passphrase", json!({"passphrase": PASSPHRASE})).0,
        "key_exists"
    );
    let s = h.ok("app_state", json!({}));
    assert_eq!(s["ready"], true);
    assert_eq!(s["passphrase_check_due"], false);

    // Backup Now returns a job id at once; progress and the result come on the channel.
    let started = h.ok("backup_now", json!({"onEvent": "__CHANNEL__:7"}));
    let job = started["job_id"].as_str().unwrap().to_string();
    assert_eq!(started["attached"], false);
    let done = h.outcome(&job);
    assert_eq!(done["event"], "finished", "{done}");
    assert_eq!(done["result"]["documents"], 2005);
    assert!(h
        .events
        .lock()
        .unwrap()
        .iter()
        .any(|e| e["event"] == "progress" && e["job_id"] == job.as_str()));
    let list = h.ok("list_backups", json!({}));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["latest"], true);
    assert_eq!(list[0]["status"], "complete");
    let id = list[0]["id"].as_str().unwrap().to_string();
    let s = h.ok("app_state", json!({}));
    assert_eq!(s["last_backup"]["id"], id.as_str());
    assert_eq!(s["job"], Value::Null);

    // The data changes.
    let original = rt.block_on(dump(&db, "entries"));
    rt.block_on(async {
        db.collection::<Document>("entries")
            .delete_many(doc! { "n": { "$lt": 500 } })
            .await
            .unwrap();
        db.collection::<Document>("projects")
            .insert_one(doc! { "_id": 99, "name": "new" })
            .await
            .unwrap();
    });
    let changed = rt.block_on(dump(&db, "entries"));

    // Prepare: what will be replaced, counts now and in the backup; no side effects.
    let plan = h.ok("prepare_restore", json!({"id": id}));
    assert_eq!(plan["target_db"], db_name.as_str());
    assert_eq!(plan["safety_backup"], true);
    let entries = plan["collections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "entries")
        .unwrap()
        .clone();
    assert_eq!(entries["in_backup"], 2000);
    assert_eq!(entries["now"], 1500);
    assert_eq!(rt.block_on(dump(&db, "entries")), changed);

    // Restore only with the token prepare issued, once.
    assert_eq!(
        h.err(
            "restore",
            json!({"token": "forged", "onEvent": "__CHANNEL__:8"})
        )
        .0,
        "invalid_token"
    );
    assert_eq!(rt.block_on(dump(&db, "entries")), changed);
    let token = plan["token"].as_str().unwrap();
    let r = h.ok(
        "restore",
        json!({"token": token, "onEvent": "__CHANNEL__:9"}),
    );
    assert_eq!(r["documents"], 2005);
    assert_eq!(rt.block_on(dump(&db, "entries")), original);
    assert_eq!(
        h.err(
            "restore",
            json!({"token": token, "onEvent": "__CHANNEL__:11"})
        )
        .0,
        "invalid_token"
    );

    // Undo: the safety backup brings back the data from just before the restore.
    let undo = r["undo_token"].as_str().unwrap();
    let u = h.ok(
        "restore",
        json!({"token": undo, "onEvent": "__CHANNEL__:10"}),
    );
    assert_eq!(u["undo_token"], Value::Null);
    assert_eq!(rt.block_on(dump(&db, "entries")), changed);
    // The safety backup is not one of the user's backups.
    assert_eq!(h.ok("list_backups", json!({})).as_array().unwrap().len(), 1);

    // Verify and save a copy.
    let v = h.ok(
        "verify_backup",
        json!({"id": id, "onEvent": "__CHANNEL__:12"}),
    );
    assert_eq!(v["documents"], 2005);
    let copies = h.dir.path().join("copies");
    let copy = h.ok(
        "save_copy",
        json!({"id": id, "folder": copies.display().to_string()}),
    );
    let copied = std::fs::read(copy["path"].as_str().unwrap()).unwrap();
    let file = list[0]["file"].as_str().unwrap();
    assert_eq!(
        copied,
        std::fs::read(h.backups_folder().join(file)).unwrap()
    );
    assert_eq!(
        h.err("save_copy", json!({"id": id, "folder": "relative/path"}))
            .0,
        "bad_input"
    );

    rt.block_on(async { db.drop().await }).unwrap();
}

#[test]
fn passphrase_check_change_and_key() {
    let h = harness(|dir| EnvDefaults {
        folder: Some(dir.join("backups")),
        ..Default::default()
    });
    assert_eq!(
        h.err("check_passphrase", json!({"passphrase": "whatever1"}))
            .0,
        "no_key"
    );
    h.ok("set_passphrase", json!({"passphrase": PASSPHRASE}));
    assert_eq!(
        h.ok("check_passphrase", json!({"passphrase": "not it at all"}))["ok"],
        false
    );
    assert_eq!(
        h.ok("check_passphrase", json!({"passphrase": PASSPHRASE}))["ok"],
        true
    );
    assert_eq!(
        h.err("show_key", json!({"passphrase": "not it at all"})).0,
        "wrong_passphrase"
    );
    let key = h.ok("show_key", json!({"passphrase": PASSPHRASE}));
    assert!(key["secret_key"]
        .as_str()
        .unwrap()
        .starts_with("AGE-SECRET-KEY-1"));
    assert_eq!(
        h.err(
            "change_passphrase",
            json!({"current": "not it at all", "new": "another passphrase"})
        )
        .0,
        "wrong_passphrase"
    );
    h.ok(
        "change_passphrase",
        json!({"current": PASSPHRASE, "new": "another passphrase"}),
    );
    assert_eq!(
        h.ok("check_passphrase", json!({"passphrase": PASSPHRASE}))["ok"],
        false
    );
    assert_eq!(
        h.ok(
            "check_passphrase",
            json!({"passphrase": "another passphrase"})
        )["ok"],
        true
    );
    // The same key: its public half did not change.
    let again = h.ok("show_key", json!({"passphrase": "another passphrase"}));
    assert_eq!(again["public_key"], key["public_key"]);
}

/// A replaced backup key stops Backup Now (`key_changed`), and the app's way out works only
/// with the passphrase that opens the new key.
#[test]
fn a_replaced_key_stops_backups_until_the_passphrase_confirms_it() {
    use driveback_engine::keys::{BackupKey, PUBLIC_KEY_FILE, WRAPPED_KEY_FILE};
    let mongo = driveback_testkit::mongo();
    let rt = rt();
    let db_name = mongo.fresh_db("app_rekey");
    let client = rt.block_on(mongo.client());
    rt.block_on(seed(&client.database(&db_name)));
    let h = harness(|dir| EnvDefaults {
        mongo_uri: Some(mongo.uri().to_string()),
        database: Some(db_name.clone()),
        folder: Some(dir.join("backups")),
    });
    h.ok("set_passphrase", json!({"passphrase": PASSPHRASE}));
    let first = h.ok("backup_now", json!({"onEvent": "__CHANNEL__:1"}));
    assert_eq!(
        h.outcome(first["job_id"].as_str().unwrap())["event"],
        "finished"
    );

    // Someone plants their public key: backups stop, nothing is written.
    let planted = BackupKey::generate();
    let public = h.backups_folder().join(PUBLIC_KEY_FILE);
    std::fs::write(&public, format!("{}\n", planted.recipient())).unwrap();
    let files = || std::fs::read_dir(h.backups_folder()).unwrap().count();
    let before = files();
    let (code, message) = h.err("backup_now", json!({"onEvent": "__CHANNEL__:2"}));
    assert_eq!(code, "key_changed", "{message}");
    assert_eq!(files(), before);
    // The passphrase does not confirm a key it does not open.
    let (code, message) = h.err("confirm_destination_key", json!({"passphrase": PASSPHRASE}));
    assert_eq!(code, "key_error", "{message}");
    assert!(message.contains("hold different keys"), "{message}");

    // The user replaces the key on purpose (a new key, a new passphrase): that passphrase
    // confirms it, a wrong one does not, and backups go on.
    let new_key = BackupKey::generate();
    let new_pass = "a whole new passphrase";
    let wrapped = new_key
        .wrap(&secrecy::SecretString::from(new_pass.to_string()))
        .unwrap();
    std::fs::write(h.backups_folder().join(WRAPPED_KEY_FILE), wrapped).unwrap();
    std::fs::write(&public, format!("{}\n", new_key.recipient())).unwrap();
    assert_eq!(
        h.err("backup_now", json!({"onEvent": "__CHANNEL__:3"})).0,
        "key_changed"
    );
    assert_eq!(
        h.ok("confirm_destination_key", json!({"passphrase": PASSPHRASE}))["ok"],
        false
    );
    assert_eq!(
        h.ok("confirm_destination_key", json!({"passphrase": new_pass}))["ok"],
        true
    );
    let again = h.ok("backup_now", json!({"onEvent": "__CHANNEL__:4"}));
    assert_eq!(
        h.outcome(again["job_id"].as_str().unwrap())["event"],
        "finished"
    );
    // The new backup is the one listed (the old key's backups are not this key's).
    let listed = h.ok("list_backups", json!({}));
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    rt.block_on(async { client.database(&db_name).drop().await })
        .unwrap();
}

#[test]
fn environment_defaults_start_connected() {
    let mongo = driveback_testkit::mongo();
    let h = harness(|dir| EnvDefaults {
        mongo_uri: Some(mongo.uri().to_string()),
        database: Some("timetrack".into()),
        folder: Some(dir.join("demo-backups")),
    });
    let s = h.ok("app_state", json!({}));
    assert_eq!(s["mongo"]["configured"], true);
    assert_eq!(s["mongo"]["source"], "environment");
    assert_eq!(s["mongo"]["database"], "timetrack");
    assert!(s["destination"]["folder"]
        .as_str()
        .unwrap()
        .ends_with("demo-backups"));
    // Still not ready: the passphrase is the user's to choose.
    assert_eq!(s["ready"], false);
}

#[test]
fn backup_now_while_running_attaches_and_cancel_keeps_nothing() {
    let mongo = driveback_testkit::mongo();
    let rt = rt();
    let db_name = mongo.fresh_db("app_cancel");
    let client = rt.block_on(mongo.client());
    let db = client.database(&db_name);
    rt.block_on(seed(&db));
    // The backup of this database waits at its first write until it is cancelled (the pause
    // point is scoped to this test's database): the cancel lands every time.
    std::env::set_var("DRIVEBACK_PAUSE_AT", format!("backup.writing:{db_name}"));
    let h = harness(|dir| EnvDefaults {
        mongo_uri: Some(mongo.uri().to_string()),
        database: Some(db_name.clone()),
        folder: Some(dir.join("backups")),
    });
    h.ok("set_passphrase", json!({"passphrase": PASSPHRASE}));
    let first = h.ok("backup_now", json!({"onEvent": "__CHANNEL__:1"}));
    let job = first["job_id"].as_str().unwrap().to_string();
    let second = h.ok("backup_now", json!({"onEvent": "__CHANNEL__:2"}));
    assert_eq!(second["attached"], true);
    assert_eq!(second["job_id"], job.as_str());
    assert_eq!(
        h.err(
            "verify_backup",
            json!({"id": "latest", "onEvent": "__CHANNEL__:3"})
        )
        .0,
        "busy",
        "one job at a time"
    );
    assert_eq!(h.ok("cancel_job", json!({"jobId": job})), true);
    assert_eq!(h.outcome(&job)["event"], "cancelled");
    // The run ends only once its upload is dropped: nothing is listed, nothing is left.
    assert_eq!(h.ok("list_backups", json!({})).as_array().unwrap().len(), 0);
    assert_eq!(h.ok("app_state", json!({}))["job"], Value::Null);
    let left: Vec<_> = std::fs::read_dir(h.dir.path().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("driveback-key"))
        .collect();
    assert_eq!(left, Vec::<String>::new());
    rt.block_on(async { db.drop().await }).unwrap();
}

/// Schedule and SMTP settings go to the engine's settings file (shared with the CLI), a bad value
/// changes nothing, and a backup that fails is told on the desktop, recorded, and shown by the
/// health.
#[test]
fn settings_failures_notifications_and_health() {
    let mongo = driveback_testkit::mongo();
    let rt = rt();
    let db_name = mongo.fresh_db("app_health");
    let client = rt.block_on(mongo.client());
    rt.block_on(seed(&client.database(&db_name)));
    let h = harness(|dir| EnvDefaults {
        mongo_uri: Some(mongo.uri().to_string()),
        database: Some(db_name.clone()),
        folder: Some(dir.join("backups")),
    });
    let settings_file = h.dir.path().join("config/settings.json");

    let v = h.ok("get_settings", json!({}));
    assert_eq!(v["settings"]["schedule"]["frequency"], "daily");
    assert_eq!(v["settings"]["schedule"]["time"], "02:00");
    assert_eq!(v["smtp_password_set"], false);
    assert!(v["retention_text"]
        .as_str()
        .unwrap()
        .starts_with("Keeps the newest backup of each of the last 7 days"));
    let mut changed = v["settings"].clone();
    changed["schedule"]["frequency"] = json!("weekly");
    changed["schedule"]["time"] = json!("03:30");
    changed["retention"]["daily"] = json!(3);
    changed["notify"]["desktop_on_success"] = json!(true);
    // `backup` is not this command's to change.
    changed["backup"]["dest"] = json!("folder:/somewhere/else");
    let v = h.ok("save_settings", json!({"settings": changed}));
    assert_eq!(v["schedule_text"], "Every Sunday at 03:30", "{v}");
    let on_disk = driveback_engine::settings::Settings::load_from(&settings_file).unwrap();
    assert_eq!(
        on_disk.schedule.frequency,
        driveback_engine::settings::Frequency::Weekly
    );
    assert_eq!(on_disk.retention.daily, 3);
    assert_eq!(on_disk.backup.dest, None);
    let s = h.ok("app_state", json!({}));
    assert_eq!(s["schedule"]["frequency"], "weekly");
    assert_eq!(s["schedule"]["time"], "03:30");
    assert!(s["schedule"]["next_due"].is_string());

    // Bad values: named, refused, nothing changed.
    let before = std::fs::read(&settings_file).unwrap();
    let mut bad = v["settings"].clone();
    bad["schedule"]["time"] = json!("25:99");
    let (code, message) = h.err("save_settings", json!({"settings": bad}));
    assert_eq!(code, "bad_input");
    assert!(message.contains("25:99"), "{message}");
    let mut bad = v["settings"].clone();
    bad["smtp"]["host"] = json!("mail.example.com");
    bad["smtp"]["security"] = json!("none");
    let (code, message) = h.err("save_settings", json!({"settings": bad}));
    assert_eq!(code, "bad_input");
    assert!(
        message.contains("only allowed for a server on this computer"),
        "{message}"
    );
    assert_eq!(std::fs::read(&settings_file).unwrap(), before);

    // The SMTP password goes to the keyring only; a test email without a server says so.
    h.ok("set_smtp_password", json!({"password": "an-app-password"}));
    assert_eq!(h.ok("get_settings", json!({}))["smtp_password_set"], true);
    assert!(
        !String::from_utf8_lossy(&std::fs::read(&settings_file).unwrap())
            .contains("an-app-password")
    );
    let (code, message) = h.err("send_test_email", json!({}));
    assert_eq!(code, "email_not_configured", "{message}");
    assert!(message.contains("smtp.host"), "{message}");

    // A good backup: a desktop note (asked for above), recorded with its size, health healthy
    // about the last backup.
    h.ok("set_passphrase", json!({"passphrase": PASSPHRASE}));
    let job = h.ok("backup_now", json!({"onEvent": "__CHANNEL__:1"}));
    let job_id = job["job_id"].as_str().unwrap().to_string();
    assert_eq!(h.outcome(&job_id)["event"], "finished");
    let body = h.toasts.wait_for("Backup complete");
    assert!(
        body.starts_with(&format!("{db_name}: 2005 documents")),
        "{body}"
    );
    let health = h.ok("health", json!({}));
    let check = |hl: &Value, name: &str| {
        hl["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} check in {hl}"))
            .clone()
    };
    assert_eq!(
        check(&health, "last_backup")["status"],
        "healthy",
        "{health}"
    );
    assert_eq!(check(&health, "database")["status"], "healthy", "{health}");
    assert_eq!(check(&health, "verified")["status"], "healthy", "{health}");
    assert_eq!(health["recent_runs"][0]["job_id"], job_id.as_str());
    assert_eq!(health["recent_runs"][0]["outcome"], "success");

    // The database goes away: the run fails, the desktop says why and what to do, the history
    // and the health show it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    h.state
        .save_mongo_uri(&format!(
            "mongodb://127.0.0.1:{port}/?serverSelectionTimeoutMS=1000&connectTimeoutMS=1000"
        ))
        .unwrap();
    let job = h.ok("backup_now", json!({"onEvent": "__CHANNEL__:2"}));
    let failed_id = job["job_id"].as_str().unwrap().to_string();
    let ended = h.outcome(&failed_id);
    assert_eq!(ended["event"], "failed", "{ended}");
    let body = h.toasts.wait_for("Backup failed");
    assert!(
        body.ends_with(
            "Check that the database is running; Driveback tries again within the hour."
        ),
        "{body}"
    );
    let health = h.ok("health", json!({}));
    assert_eq!(check(&health, "database")["status"], "critical", "{health}");
    assert_eq!(health["status"], "critical");
    assert_eq!(health["recent_runs"][0]["outcome"], "failed");
    assert_eq!(health["metrics"]["success_rate_30d"], 0.5);
    // The backup made before is still there and still the latest.
    assert_eq!(h.ok("list_backups", json!({})).as_array().unwrap().len(), 1);
    assert!(!String::from_utf8_lossy(
        &std::fs::read(h.dir.path().join("data/history.jsonl")).unwrap()
    )
    .contains("mongodb://"));
}

/// When the destination cannot be read, the card still shows the last good backup (from this
/// computer's history), and a Backup Now that cannot start is in the history with why.
#[test]
fn an_unreadable_destination_keeps_the_last_backup_and_records_the_attempt() {
    let mongo = driveback_testkit::mongo();
    let rt = rt();
    let db_name = mongo.fresh_db("app_unreadable");
    let client = rt.block_on(mongo.client());
    rt.block_on(seed(&client.database(&db_name)));
    let h = harness(|dir| EnvDefaults {
        mongo_uri: Some(mongo.uri().to_string()),
        database: Some(db_name.clone()),
        folder: Some(dir.join("backups")),
    });
    h.ok("set_passphrase", json!({"passphrase": PASSPHRASE}));
    let first = h.ok("backup_now", json!({"onEvent": "__CHANNEL__:1"}));
    let done = h.outcome(first["job_id"].as_str().unwrap());
    assert_eq!(done["event"], "finished", "{done}");
    let made = h.ok("app_state", json!({}))["last_backup"].clone();
    assert_eq!(made["from_history"], false);

    // The folder is gone and something else is in its place.
    let folder = h.backups_folder();
    std::fs::rename(&folder, h.dir.path().join("moved")).unwrap();
    std::fs::write(&folder, b"not a folder").unwrap();
    let s = h.ok("app_state", json!({}));
    assert!(s["destination"]["problem"].is_string(), "{s}");
    assert_eq!(s["last_backup"]["id"], made["id"], "{s}");
    assert_eq!(s["last_backup"]["from_history"], true);
    assert_eq!(s["last_backup"]["documents"], made["documents"]);

    let (code, message) = h.err("backup_now", json!({"onEvent": "__CHANNEL__:2"}));
    let runs = h.state.history().load().unwrap();
    let last = runs.last().unwrap();
    assert_eq!(
        last.outcome,
        driveback_engine::history::Outcome::Failed,
        "{runs:?}"
    );
    assert_eq!(last.trigger, driveback_engine::history::Trigger::Manual);
    let error = last.error.as_ref().unwrap();
    assert_eq!(
        (error.code.as_str(), error.message.as_str()),
        (code.as_str(), message.as_str())
    );
    rt.block_on(async { client.database(&db_name).drop().await })
        .unwrap();
}

/// A scheduled backup that failed for a reason only the user can fix (the key is not on this
/// computer) is not retried by the clock; giving the passphrase runs it at once.
#[test]
fn the_passphrase_runs_a_blocked_backup_at_once() {
    let mongo = driveback_testkit::mongo();
    let rt = rt();
    let db_name = mongo.fresh_db("app_blocked");
    let client = rt.block_on(mongo.client());
    rt.block_on(seed(&client.database(&db_name)));
    let h = app_on(mongo, &db_name);
    let state = &h.state;
    let made = h.ok("set_passphrase", json!({"passphrase": PASSPHRASE}));
    // This computer's keyring loses the key (another user session, a reset keyring).
    h.secrets
        .delete(&driveback_engine::keys::keyring_entry_for(
            made["public_key"].as_str().unwrap(),
        ))
        .unwrap();
    h.start_scheduler();
    let runs = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r: Vec<_> = state
                .history()
                .load()
                .unwrap()
                .into_iter()
                .filter(|r| r.kind == driveback_engine::history::RunKind::Backup)
                .collect();
            if r.len() >= n {
                return r;
            }
            assert!(Instant::now() < deadline, "{r:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // The missed slot runs and cannot sign without the key.
    let first = runs(1);
    assert_eq!(first[0].outcome, driveback_engine::history::Outcome::Failed);
    assert_eq!(first[0].error.as_ref().unwrap().code, "passphrase_required");
    // Not retried by the clock (it would be within seconds here).
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(runs(1).len(), 1);
    // The passphrase, once: the backup runs now.
    let checked = h.ok("check_passphrase", json!({"passphrase": PASSPHRASE}));
    assert_eq!(checked["ok"], true);
    let after = runs(2);
    assert_eq!(
        after[1].outcome,
        driveback_engine::history::Outcome::Success,
        "{after:?}"
    );
    assert_eq!(
        after[1].trigger,
        driveback_engine::history::Trigger::Scheduled
    );
    rt.block_on(async { client.database(&db_name).drop().await })
        .unwrap();
}

/// Audits run on their own: with the first good backup a month old and no restore test yet, the
/// app test-restores the newest backup after its next run, records it, and the scratch database
/// is gone afterwards.
#[test]
fn a_due_restore_test_runs_after_a_backup() {
    let mongo = driveback_testkit::mongo();
    let rt = rt();
    let db_name = mongo.fresh_db("app_audit");
    let client = rt.block_on(mongo.client());
    rt.block_on(seed(&client.database(&db_name)));
    let h = app_on(mongo, &db_name);
    let state = &h.state;
    h.ok("set_passphrase", json!({"passphrase": PASSPHRASE}));
    let month_ago = chrono::Utc::now() - chrono::Duration::days(31);
    state
        .history()
        .append(&successful_backup(
            "first",
            driveback_engine::history::Trigger::Manual,
            month_ago,
            &db_name,
        ))
        .unwrap();
    h.start_scheduler();
    let deadline = Instant::now() + Duration::from_secs(120);
    let audit = loop {
        let records = state.history().load().unwrap();
        if let Some(a) = records
            .iter()
            .find(|r| r.kind == driveback_engine::history::RunKind::Audit)
        {
            break a.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no restore test ran: {records:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        audit.outcome,
        driveback_engine::history::Outcome::Success,
        "{audit:?}"
    );
    assert_eq!(audit.trigger, driveback_engine::history::Trigger::Scheduled);
    let backup = state
        .history()
        .load()
        .unwrap()
        .into_iter()
        .rev()
        .find(|r| r.is_good())
        .unwrap();
    assert_eq!(
        audit.backup_id, backup.backup_id,
        "the newest backup was tested"
    );
    assert_eq!(audit.documents, backup.documents);
    let dbs = rt
        .block_on(async { client.list_database_names().await })
        .unwrap();
    assert!(
        !dbs.contains(&format!("{db_name}_driveback_audit")),
        "{dbs:?}"
    );
    rt.block_on(async { client.database(&db_name).drop().await })
        .unwrap();
}

/// The scheduler runs in the app: a slot missed while it was closed runs once, shortly after the
/// launch, and its progress can be followed with Backup Now (which attaches instead of starting
/// a second backup).
#[test]
fn a_missed_slot_runs_once_after_launch() {
    let mongo = driveback_testkit::mongo();
    let rt = rt();
    let db_name = mongo.fresh_db("app_sched");
    let client = rt.block_on(mongo.client());
    rt.block_on(seed(&client.database(&db_name)));
    let h = app_on(mongo, &db_name);
    let state = h.state.clone();
    h.ok("set_passphrase", json!({"passphrase": PASSPHRASE}));
    // The history says the last run was three days ago: today's 02:00 slot (and the two before)
    // were missed while the app was closed.
    let old = successful_backup(
        "old",
        driveback_engine::history::Trigger::Scheduled,
        chrono::Utc::now() - chrono::Duration::days(3),
        &db_name,
    );
    state.history().append(&old).unwrap();
    h.start_scheduler();
    let deadline = Instant::now() + Duration::from_secs(60);
    let job_id = loop {
        if let Some(j) = h.ok("app_state", json!({}))["job"]["id"].as_str() {
            break j.to_string();
        }
        let records = state.history().load().unwrap();
        if records.len() > 1 {
            break records[1].job_id.clone();
        }
        assert!(Instant::now() < deadline, "the missed slot did not run");
        std::thread::sleep(Duration::from_millis(50));
    };
    let followed = h.ok("backup_now", json!({"onEvent": "__CHANNEL__:1"}));
    let deadline = Instant::now() + Duration::from_secs(60);
    while state.history().load().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "the catch-up run did not end");
        std::thread::sleep(Duration::from_millis(50));
    }
    let records = state.history().load().unwrap();
    assert_eq!(
        records[1].trigger,
        driveback_engine::history::Trigger::Scheduled
    );
    assert_eq!(
        records[1].outcome,
        driveback_engine::history::Outcome::Success,
        "{records:?}"
    );
    assert_eq!(records[1].job_id, job_id);
    if followed["attached"] == true {
        assert_eq!(followed["job_id"], job_id.as_str());
    }
    // One catch-up run for the three missed slots, not three.
    std::thread::sleep(Duration::from_millis(1500));
    let runs = state.history().load().unwrap();
    let extra = runs.len() - 2;
    assert!(
        extra == 0 || (followed["attached"] == false && extra == 1),
        "{runs:?}"
    );
    assert_eq!(
        runs.iter()
            .filter(|r| r.trigger == driveback_engine::history::Trigger::Scheduled)
            .count(),
        2,
        "{runs:?}"
    );
    let s = h.ok("app_state", json!({}));
    let next: chrono::DateTime<chrono::Utc> =
        s["schedule"]["next_due"].as_str().unwrap().parse().unwrap();
    assert!(next > chrono::Utc::now(), "the next slot is ahead: {next}");
}

#[test]
fn pause_holds_back_the_missed_slot_and_resume_lets_it_run() {
    let mongo = driveback_testkit::mongo();
    let rt = rt();
    let db_name = mongo.fresh_db("app_pause");
    let client = rt.block_on(mongo.client());
    rt.block_on(seed(&client.database(&db_name)));
    let h = app_on(mongo, &db_name);
    let state = h.state.clone();
    h.ok("set_passphrase", json!({"passphrase": PASSPHRASE}));
    // The last backup was three days ago: a slot is missed, and would run a second after launch.
    let old = driveback_engine::history::RunRecord {
        backup_id: Some("0000000a".into()),
        bytes: Some(61_000),
        ..successful_backup(
            "old",
            driveback_engine::history::Trigger::Scheduled,
            chrono::Utc::now() - chrono::Duration::days(3),
            &db_name,
        )
    };
    state.history().append(&old).unwrap();

    // Paused until tomorrow, 09:00 local time.
    let until: chrono::DateTime<chrono::Utc> = h
        .ok("pause_automatic", json!({}))
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let local = until.with_timezone(&chrono::Local);
    assert_eq!(local.format("%H:%M").to_string(), "09:00");
    assert!(
        until > chrono::Utc::now() && until - chrono::Utc::now() <= chrono::Duration::hours(34)
    );
    let s = h.ok("app_state", json!({}));
    assert_eq!(
        s["schedule"]["paused_until"],
        until
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            .as_str()
    );
    assert_eq!(
        s["schedule"]["next_due"], s["schedule"]["paused_until"],
        "{s}"
    );
    assert_eq!(
        s["glance"]["text"],
        "Backed up 3 days ago · 61 kB · Automatic backups paused until tomorrow 09:00",
        "{s}"
    );
    assert_eq!(s["glance"]["level"], "stale");
    // The health says so: critical here, as the newest backup is stale too.
    let health = h.ok("health", json!({}));
    let check = health["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "scheduler")
        .cloned()
        .unwrap_or_else(|| panic!("no scheduler check: {health}"));
    assert_eq!(check["status"], "critical", "{check}");
    assert_eq!(
        check["message"],
        "Automatic backups are paused until tomorrow 09:00; Back up still works."
    );
    assert_eq!(health["glance"], s["glance"]);

    // What a pause refuses.
    let (code, message) = h.err("pause_automatic", json!({"until": "2020-01-01T00:00:00Z"}));
    assert_eq!(code, "bad_input");
    assert_eq!(message, "a pause must end in the future: pick a later time");
    let (code, message) = h.err("pause_automatic", json!({"until": "tomorrow"}));
    assert_eq!(code, "bad_input");
    assert!(
        message.starts_with("'tomorrow' is not a date and time"),
        "{message}"
    );

    // With the scheduler running, the missed slot does not start while paused.
    h.start_scheduler();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        state.history().load().unwrap().len(),
        1,
        "nothing ran while paused"
    );
    assert!(h.ok("app_state", json!({}))["job"].is_null());

    // A settings screen saved meanwhile (without the pause in it) does not lift the pause.
    let mut settings = h.ok("get_settings", json!({}))["settings"].clone();
    settings["schedule"]
        .as_object_mut()
        .unwrap()
        .remove("paused_until");
    h.ok("save_settings", json!({ "settings": settings }));
    assert_eq!(
        h.ok("app_state", json!({}))["schedule"]["paused_until"],
        until
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            .as_str()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(state.history().load().unwrap().len(), 1, "still paused");

    // Resumed: the missed slot runs, once, as a scheduled backup.
    h.ok("resume_automatic", json!({}));
    assert!(h.ok("app_state", json!({}))["schedule"]["paused_until"].is_null());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let records = state.history().load().unwrap();
        if records.len() > 1 {
            assert_eq!(
                records[1].trigger,
                driveback_engine::history::Trigger::Scheduled
            );
            assert_eq!(
                records[1].outcome,
                driveback_engine::history::Outcome::Success,
                "{records:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot did not run after resume"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = h.ok("app_state", json!({}));
    assert!(
        s["glance"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Backed up just now · "),
        "{s}"
    );
    assert_eq!(s["glance"]["level"], "fresh");

    // Paused again, Backup Now still works.
    h.ok("pause_automatic", json!({}));
    let started = h.ok("backup_now", json!({"onEvent": "__CHANNEL__:1"}));
    let job_id = started["job_id"].as_str().unwrap().to_string();
    assert_eq!(h.outcome(&job_id)["event"], "finished");

    // With automatic backups off there is nothing to pause.
    h.ok("resume_automatic", json!({}));
    let mut settings = h.ok("get_settings", json!({}))["settings"].clone();
    settings["schedule"]["frequency"] = json!("off");
    h.ok("save_settings", json!({ "settings": settings }));
    let (code, message) = h.err("pause_automatic", json!({}));
    assert_eq!(code, "bad_input");
    assert_eq!(
        message,
        "automatic backups are off: there is nothing to pause"
    );
    assert!(h.ok("app_state", json!({}))["glance"]["text"]
        .as_str()
        .unwrap()
        .ends_with(" · Automatic backups off"));
}

#[test]
fn capability_grants_exactly_the_commands() {
    let cap: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("src-tauri/capabilities/default.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let perms: Vec<&str> = cap["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    // The app's own commands, listening to the events it sends the window, and opening the
    // system's file and folder pickers; nothing else.
    let (own, core): (Vec<&str>, Vec<&str>) = perms.iter().partition(|p| p.starts_with("allow-"));
    assert_eq!(
        core,
        [
            "core:event:allow-listen",
            "core:event:allow-unlisten",
            "dialog:allow-open",
            "dialog:allow-save"
        ]
    );
    let perms = own;
    let build =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src-tauri/build.rs"))
            .unwrap();
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src-tauri/src/lib.rs"))
            .unwrap();
    for p in &perms {
        let cmd = p.trim_start_matches("allow-").replace('-', "_");
        assert!(
            build.contains(&format!("\"{cmd}\"")),
            "{cmd} missing from build.rs"
        );
        assert!(
            lib.contains(&format!("::{cmd},")),
            "{cmd} missing from the handler"
        );
    }
    assert_eq!(
        perms.len(),
        build.matches("\",\n").count(),
        "build.rs lists other commands"
    );
}

/// The webview's capability, as the app is built with it (the real `tauri.conf.json` and
/// `capabilities/`): the app's commands and listening to events answer; anything else a page
/// could try (closing windows, emitting events, other plugins) is refused before it runs.
#[test]
fn the_webview_may_call_only_what_its_capability_grants() {
    let dir = tempfile::tempdir().unwrap();
    let state: Shared = Arc::new(AppState::new(
        Ok(Arc::new(MemorySecretStore::new())),
        &dir.path().join("config"),
        &dir.path().join("data"),
        EnvDefaults::default(),
    ));
    let mut context = tauri::generate_context!();
    context.set_assets(Box::new(noop_assets()));
    let app = driveback_app::builder(mock_builder())
        .manage(state)
        .build(context)
        .unwrap();
    let window = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    let call = |cmd: &str, args: Value| invoke(&window, cmd, args);
    assert!(call("app_state", json!({})).is_ok(), "granted");
    for (cmd, args) in [
        ("plugin:window|close", json!({"label": "main"})),
        (
            "plugin:event|emit",
            json!({"event": "state-changed", "payload": null}),
        ),
        ("plugin:webview|create_webview_window", json!({})),
        (
            "plugin:notification|notify",
            json!({"options": {"title": "x"}}),
        ),
    ] {
        let refused = call(cmd, args).expect_err(cmd);
        let text = refused.to_string();
        assert!(text.contains("not allowed"), "{cmd}: {text}");
    }
}

/// The app over `db_name` with a backup key and one backup of it; the backup's listing.
fn app_with_a_backup(mongo: &driveback_testkit::TestMongo, db_name: &str) -> (Harness, Value) {
    let h = app_on(mongo, db_name);
    h.start(StartOptions {
        scheduler: false,
        ..StartOptions::default()
    });
    h.ok("set_passphrase", json!({"passphrase": PASSPHRASE}));
    let started = h.ok("backup_now", json!({"onEvent": "__CHANNEL__:1"}));
    let done = h.outcome(started["job_id"].as_str().unwrap());
    assert_eq!(done["event"], "finished", "{done}");
    let list = h.ok("list_backups", json!({}));
    (h, list[0].clone())
}

/// Every collection of `db` (not Driveback's staging ones) with its documents in `_id` order.
async fn whole_db(db: &mongodb::Database) -> Vec<(String, Vec<Document>)> {
    let mut names = db.list_collection_names().await.unwrap();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        let docs = dump(db, &n).await;
        out.push((n, docs));
    }
    out
}

/// A plan's collection by name.
fn planned<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["collections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in the plan: {plan}"))
}

/// Restore from a file: a saved copy of a backup brings back exactly the data, through the same
/// confirmation token, safety backup and undo as a backup from the list.
#[test]
fn restore_from_a_saved_backup_file() {
    let mongo = driveback_testkit::mongo();
    let rt = rt();
    let db_name = mongo.fresh_db("app_file");
    let client = rt.block_on(mongo.client());
    let db = client.database(&db_name);
    rt.block_on(seed(&db));
    let original = rt.block_on(whole_db(&db));
    let (h, backup) = app_with_a_backup(mongo, &db_name);
    let copies = h.dir.path().join("copies");
    let copy = h.ok(
        "save_copy",
        json!({"id": backup["id"], "folder": copies.display().to_string()}),
    );
    let file = copy["path"].as_str().unwrap().to_string();

    rt.block_on(async {
        db.collection::<Document>("entries")
            .delete_many(doc! { "n": { "$gte": 100 } })
            .await
            .unwrap();
        db.collection::<Document>("extra")
            .insert_one(doc! { "_id": 1 })
            .await
            .unwrap();
    });
    let changed = rt.block_on(whole_db(&db));

    let plan = h.ok("prepare_restore_file", json!({"path": file}));
    assert_eq!(plan["source"], "file");
    assert_eq!(plan["file"], file.as_str());
    assert_eq!(plan["target_db"], db_name.as_str());
    assert_eq!(plan["backup"]["id"], backup["id"]);
    assert_eq!(plan["backup"]["documents"], 2005);
    assert_eq!(plan["safety_backup"], true);
    assert_eq!(planned(&plan, "entries")["in_backup"], 2000);
    assert_eq!(planned(&plan, "entries")["now"], 100);
    assert_eq!(plan["untouched"], json!(["extra"]));
    assert_eq!(plan["available"], json!(["entries", "projects"]), "{plan}");
    // Planning changed nothing.
    assert_eq!(rt.block_on(whole_db(&db)), changed);

    let r = h.ok(
        "restore",
        json!({"token": plan["token"], "onEvent": "__CHANNEL__:2"}),
    );
    assert_eq!(r["documents"], 2005);
    let mut want = original.clone();
    want.push(("extra".into(), vec![doc! { "_id": 1 }]));
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(rt.block_on(whole_db(&db)), want);
    let u = h.ok(
        "restore",
        json!({"token": r["undo_token"], "onEvent": "__CHANNEL__:3"}),
    );
    assert_eq!(u["undo_token"], Value::Null);
    assert_eq!(rt.block_on(whole_db(&db)), changed);
    rt.block_on(async { db.drop().await }).unwrap();
}

/// Restore from a file: the archives the real mongodump wrote (plain and gzip) restore into an
/// empty database with no key needed, every document as mongodump read it.
#[test]
fn restore_from_a_mongodump_archive() {
    let mongo = driveback_testkit::mongo();
    let rt = rt();
    let client = rt.block_on(mongo.client());
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/mongodump-100.8.0");
    for file in ["timetrack.archive", "timetrack.archive.gz"] {
        let db_name = mongo.fresh_db("app_golden");
        // No backup key yet: an archive into an empty database needs none.
        let h = app_on(mongo, &db_name);
        let path = testdata.join(file).display().to_string();
        let plan = h.ok("prepare_restore_file", json!({"path": path}));
        assert_eq!(plan["backup"]["database"], "timetrack", "{plan}");
        assert_eq!(plan["target_db"], db_name.as_str());
        assert_eq!(plan["safety_backup"], false);
        assert_eq!(plan["untouched"], json!([]));
        let r = h.ok(
            "restore",
            json!({"token": plan["token"], "onEvent": "__CHANNEL__:1"}),
        );
        assert_eq!(r["undo_token"], Value::Null);
        assert_eq!(r["documents"], plan["backup"]["documents"]);
        let db = client.database(&db_name);
        let mut compared = 0;
        for entry in std::fs::read_dir(testdata.join("expected")).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            let Some(coll) = name.strip_suffix(".ejson") else {
                continue;
            };
            let mut want: Vec<String> = std::fs::read_to_string(&p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap().to_string())
                .collect();
            let mut have: Vec<String> = rt
                .block_on(dump(&db, coll))
                .into_iter()
                .map(|d| bson::Bson::Document(d).into_canonical_extjson().to_string())
                .collect();
            want.sort();
            have.sort();
            assert_eq!(have, want, "{file}: {coll}");
            assert_eq!(
                planned(&plan, coll)["in_backup"],
                want.len(),
                "{file}: {coll}"
            );
            compared += 1;
        }
        assert!(compared >= 6, "{compared} collections compared");
        if file.ends_with(".gz") {
            // Over data that is there: the safety backup needs the backup key, so none yet is
            // an error that changes nothing; with one, the undo brings the data back.
            let before = rt.block_on(whole_db(&db));
            let (code, message) = h.err("prepare_restore_file", json!({"path": path}));
            assert_eq!(code, "no_key", "{message}");
            assert_eq!(rt.block_on(whole_db(&db)), before);
            h.ok("set_passphrase", json!({"passphrase": PASSPHRASE}));
            rt.block_on(async {
                db.collection::<Document>("users")
                    .delete_many(doc! {})
                    .await
                    .unwrap();
            });
            let emptied = rt.block_on(whole_db(&db));
            let plan = h.ok("prepare_restore_file", json!({"path": path}));
            assert_eq!(plan["safety_backup"], true);
            assert_eq!(planned(&plan, "users")["now"], 0);
            let r = h.ok(
                "restore",
                json!({"token": plan["token"], "onEvent": "__CHANNEL__:2"}),
            );
            assert_eq!(rt.block_on(whole_db(&db)), before);
            h.ok(
                "restore",
                json!({"token": r["undo_token"], "onEvent": "__CHANNEL__:3"}),
            );
            assert_eq!(rt.block_on(whole_db(&db)), emptied);
        }
        rt.block_on(async { db.drop().await }).unwrap();
    }
}

/// The confirmation's "Advanced" part: another database name and some of the collections; the
/// plan shows what that database holds now, and only the chosen collections change there.
#[test]
fn restore_from_a_backup_into_another_database_with_some_collections() {
    let mongo = driveback_testkit::mongo();
    let rt = rt();
    let db_name = mongo.fresh_db("app_adv");
    let other_name = mongo.fresh_db("app_adv_other");
    let client = rt.block_on(mongo.client());
    let db = client.database(&db_name);
    let other = client.database(&other_name);
    rt.block_on(seed(&db));
    rt.block_on(async {
        other
            .collection::<Document>("projects")
            .insert_one(doc! { "_id": 42, "name": "theirs" })
            .await
            .unwrap();
        other
            .collection::<Document>("notes")
            .insert_one(doc! { "_id": 1 })
            .await
            .unwrap();
    });
    let (h, backup) = app_with_a_backup(mongo, &db_name);
    let source_before = rt.block_on(whole_db(&db));
    let projects = rt.block_on(dump(&db, "projects"));

    // Bad choices: one line each, nothing planned.
    for (options, code, says) in [
        (
            json!({"target_db": ""}),
            "bad_input",
            "name of the database",
        ),
        (json!({"target_db": "a/b"}), "bad_input", "\"/\""),
        (json!({"target_db": "a.b"}), "bad_input", "\".\""),
        (json!({"target_db": "a b"}), "bad_input", "a space"),
        (json!({"target_db": "a$b"}), "bad_input", "\"$\""),
        (json!({"target_db": "a\"b"}), "bad_input", "\"\"\""),
        (json!({"target_db": "a\\b"}), "bad_input", "\"\\\""),
        (
            json!({"target_db": "x".repeat(64)}),
            "bad_input",
            "64 bytes",
        ),
        (json!({"collections": []}), "bad_input", "at least one"),
        (
            json!({"collections": ["nope"]}),
            "bad_input",
            "no collection \"nope\"",
        ),
    ] {
        let (c, m) = h.err(
            "prepare_restore",
            json!({"id": backup["id"], "options": options}),
        );
        assert_eq!(c, code, "{options}: {m}");
        assert!(m.contains(says), "{options}: {m}");
        assert!(!m.contains('\n'), "{m}");
    }
    // 63 bytes is a name MongoDB takes.
    let plan = h.ok(
        "prepare_restore",
        json!({"id": backup["id"], "options": {"target_db": "x".repeat(63)}}),
    );
    assert_eq!(plan["target_db"], "x".repeat(63));

    let plan = h.ok(
        "prepare_restore",
        json!({"id": backup["id"], "options": {"target_db": other_name, "collections": ["projects"]}}),
    );
    assert_eq!(plan["target_db"], other_name.as_str());
    assert_eq!(plan["collections"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(planned(&plan, "projects")["now"], 1);
    assert_eq!(planned(&plan, "projects")["in_backup"], 5);
    assert_eq!(plan["available"], json!(["entries", "projects"]));
    assert_eq!(plan["untouched"], json!(["notes"]));
    assert_eq!(plan["safety_backup"], true);
    let r = h.ok(
        "restore",
        json!({"token": plan["token"], "onEvent": "__CHANNEL__:2"}),
    );
    assert_eq!(r["database"], other_name.as_str());
    assert_eq!(r["documents"], 5);
    assert_eq!(
        rt.block_on(whole_db(&other)),
        vec![
            ("notes".to_string(), vec![doc! { "_id": 1 }]),
            ("projects".to_string(), projects.clone()),
        ]
    );
    // The configured database was not touched.
    assert_eq!(rt.block_on(whole_db(&db)), source_before);
    // The undo puts back the chosen collection as it was, and only it.
    rt.block_on(async {
        other
            .collection::<Document>("notes")
            .insert_one(doc! { "_id": 2 })
            .await
            .unwrap();
    });
    h.ok(
        "restore",
        json!({"token": r["undo_token"], "onEvent": "__CHANNEL__:3"}),
    );
    assert_eq!(
        rt.block_on(whole_db(&other)),
        vec![
            (
                "notes".to_string(),
                vec![doc! { "_id": 1 }, doc! { "_id": 2 }]
            ),
            (
                "projects".to_string(),
                vec![doc! { "_id": 42, "name": "theirs" }]
            ),
        ]
    );

    // A file restored into another database, some collections: the same choices.
    let third = mongo.fresh_db("app_adv_file");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata/mongodump-100.8.0/timetrack.archive.gz")
        .display()
        .to_string();
    let plan = h.ok(
        "prepare_restore_file",
        json!({"path": path, "options": {"target_db": third, "collections": ["users", "feedback"]}}),
    );
    h.ok(
        "restore",
        json!({"token": plan["token"], "onEvent": "__CHANNEL__:4"}),
    );
    let third_db = client.database(&third);
    let mut names = rt
        .block_on(async { third_db.list_collection_names().await })
        .unwrap();
    names.sort();
    assert_eq!(names, ["feedback", "users"]);
    for d in [db, other, client.database(&third)] {
        rt.block_on(async { d.drop().await }).unwrap();
    }
}

/// Bad files are refused with one line and change nothing: not a backup, a truncated backup or
/// archive, a backup made with another destination's key, a path that is not a file.
#[test]
fn restore_from_a_bad_file_changes_nothing() {
    let mongo = driveback_testkit::mongo();
    let rt = rt();
    let db_name = mongo.fresh_db("app_badfile");
    let client = rt.block_on(mongo.client());
    let db = client.database(&db_name);
    rt.block_on(seed(&db));
    let (h, backup) = app_with_a_backup(mongo, &db_name);
    let files = h.dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let copy = h.ok(
        "save_copy",
        json!({"id": backup["id"], "folder": files.display().to_string()}),
    );
    let good = std::fs::read(copy["path"].as_str().unwrap()).unwrap();
    rt.block_on(async {
        db.collection::<Document>("entries")
            .delete_many(doc! { "n": { "$gte": 10 } })
            .await
            .unwrap();
    });
    let before = rt.block_on(whole_db(&db));

    // Another destination with its own key: its backup is not this one's.
    let theirs_db = mongo.fresh_db("app_badfile_theirs");
    rt.block_on(seed(&client.database(&theirs_db)));
    let (them, their_backup) = app_with_a_backup(mongo, &theirs_db);
    let their_copy = them.ok(
        "save_copy",
        json!({"id": their_backup["id"], "folder": files.join("theirs").display().to_string()}),
    );

    let write = |name: &str, bytes: &[u8]| {
        let p = files.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    };
    let golden = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/testdata/mongodump-100.8.0/timetrack.archive"),
    )
    .unwrap();
    let cases: Vec<(String, &str, &str)> = vec![
        (
            write("notes.txt", b"just some text, not a backup\n"),
            "bad_input",
            "neither a Driveback backup nor a mongodump archive",
        ),
        (
            write("cut.mdbk", &good[..good.len() * 2 / 3]),
            "corrupt_backup",
            "",
        ),
        (
            write("cut.archive", &golden[..golden.len() / 2]),
            "corrupt_backup",
            "",
        ),
        (
            their_copy["path"].as_str().unwrap().to_string(),
            "wrong_key",
            "different backup key",
        ),
        (
            files.join("missing.mdbk").display().to_string(),
            "not_found",
            "there is no file",
        ),
        (files.display().to_string(), "not_found", "there is no file"),
        ("relative/file.mdbk".to_string(), "bad_input", "full path"),
    ];
    for (path, code, says) in cases {
        let (c, m) = h.err("prepare_restore_file", json!({"path": path}));
        assert_eq!(c, code, "{path}: {m}");
        assert!(m.contains(says), "{path}: {m}");
        assert!(!m.contains('\n'), "{path}: {m}");
        assert_eq!(rt.block_on(whole_db(&db)), before, "{path}");
    }

    // A file replaced after its plan is not restored.
    let swapped = write("swap.mdbk", &good);
    let plan = h.ok("prepare_restore_file", json!({"path": swapped}));
    std::fs::write(&swapped, &good[..good.len() / 2]).unwrap();
    let (c, m) = h.err(
        "restore",
        json!({"token": plan["token"], "onEvent": "__CHANNEL__:5"}),
    );
    assert_eq!(c, "bad_input", "{m}");
    assert!(m.contains("changed after the restore was prepared"), "{m}");
    assert_eq!(rt.block_on(whole_db(&db)), before);
    for d in [db_name, theirs_db] {
        rt.block_on(async { client.database(&d).drop().await })
            .unwrap();
    }
}

/// "Save as JSON": one canonical Extended JSON file per collection, in a new folder named after
/// the backup; a second export of the same backup there is refused, nothing overwritten.
#[test]
fn save_as_json_writes_a_file_per_collection() {
    let mongo = driveback_testkit::mongo();
    let rt = rt();
    let db_name = mongo.fresh_db("app_json");
    let client = rt.block_on(mongo.client());
    let db = client.database(&db_name);
    rt.block_on(seed(&db));
    let (h, backup) = app_with_a_backup(mongo, &db_name);
    let out = h.dir.path().join("exports");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("entries.ejson"), "mine\n").unwrap();
    let folder = out.display().to_string();
    let r = h.ok("export_json", json!({"id": backup["id"], "folder": folder}));
    assert_eq!(r["documents"], 2005);
    assert_eq!(r["files"], json!(["entries.ejson", "projects.ejson"]));
    let made = Path::new(r["folder"].as_str().unwrap()).to_path_buf();
    assert_eq!(made.parent().unwrap(), out);
    let file = backup["file"].as_str().unwrap();
    assert_eq!(
        made.file_name().unwrap().to_str().unwrap(),
        format!("{}-json", file.strip_suffix(".mdbk").unwrap())
    );
    // The user's own file of the same name is left alone.
    assert_eq!(
        std::fs::read_to_string(out.join("entries.ejson")).unwrap(),
        "mine\n"
    );
    for coll in ["entries", "projects"] {
        let text = std::fs::read_to_string(made.join(format!("{coll}.ejson"))).unwrap();
        let mut docs: Vec<Document> = text
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                match bson::Bson::try_from(v).unwrap() {
                    bson::Bson::Document(d) => d,
                    other => panic!("not a document: {other}"),
                }
            })
            .collect();
        docs.sort_by_key(|d| d.get_i32("_id").unwrap());
        assert_eq!(docs, rt.block_on(dump(&db, coll)), "{coll}");
        assert!(text.contains("{\"$numberInt\":"), "canonical: {text:.80}");
    }

    // The same backup again: refused, the first export intact.
    let first = std::fs::read(made.join("projects.ejson")).unwrap();
    let (c, m) = h.err("export_json", json!({"id": backup["id"], "folder": folder}));
    assert_eq!(c, "bad_input", "{m}");
    assert!(m.contains("already exists"), "{m}");
    assert_eq!(std::fs::read(made.join("projects.ejson")).unwrap(), first);
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        2,
        "nothing else written"
    );
    // Not a full path; not a folder; not a backup.
    assert_eq!(
        h.err(
            "export_json",
            json!({"id": backup["id"], "folder": "exports"})
        )
        .0,
        "bad_input"
    );
    assert_eq!(
        h.err(
            "export_json",
            json!({"id": backup["id"], "folder": out.join("nope").display().to_string()})
        )
        .0,
        "not_found"
    );
    assert_eq!(
        h.err("export_json", json!({"id": "deadbeef", "folder": folder}))
            .0,
        "not_found"
    );
    rt.block_on(async { db.drop().await }).unwrap();
}

/// The Google OAuth client set up from the app: a refused client file changes nothing; a pasted
/// client goes to the settings (its ID) and the keyring (its secret), and the state says a
/// client is there, so Connect signs in at once.
#[test]
fn google_client_is_set_up_from_the_app() {
    use secrecy::ExposeSecret;
    let h = harness(|_| EnvDefaults::default());
    let settings_file = h.dir.path().join("config").join("settings.json");
    let before = h.ok("google_client_status", json!({}));
    assert_eq!(before["configured"], false, "{before}");
    assert!(
        before["problem"]
            .as_str()
            .unwrap()
            .contains("driveback connect --client-file PATH"),
        "{before}"
    );
    let state = h.ok("app_state", json!({}));
    assert_eq!(state["drive"]["available"], true, "{state}");
    assert_eq!(state["drive"]["client_configured"], false, "{state}");

    let id = "123456789012-abcdefghij.apps.googleusercontent.com";
    let secret = "GOCSPX-app-test-secret";
    let web = json!({"web": {"client_id": id, "client_secret": secret}}).to_string();
    let (code, message) = h.err(
        "set_google_client",
        json!({"client": {"file_contents": web}}),
    );
    assert_eq!(code, "bad_input");
    assert!(
        message.starts_with("This is a Web application client; create one of type Desktop app"),
        "{message}"
    );
    assert!(!settings_file.exists(), "nothing was saved");
    assert!(h
        .secrets
        .get(driveback_engine::secrets::GOOGLE_CLIENT_SECRET)
        .unwrap()
        .is_none());

    let done = h.ok(
        "set_google_client",
        json!({"client": {"id": format!(" {id}\n"), "secret": secret}}),
    );
    assert_eq!(done["client"]["configured"], true, "{done}");
    assert_eq!(done["client"]["source"], "settings", "{done}");
    assert_eq!(done["client"]["client_id"], id, "{done}");
    assert_eq!(done["state"]["drive"]["client_configured"], true, "{done}");
    assert!(
        !done.to_string().contains(secret),
        "never the secret: {done}"
    );
    let on_disk = std::fs::read_to_string(&settings_file).unwrap();
    assert!(
        on_disk.contains(id) && !on_disk.contains(secret),
        "{on_disk}"
    );
    let kept = h
        .secrets
        .get(driveback_engine::secrets::GOOGLE_CLIENT_SECRET)
        .unwrap()
        .unwrap();
    assert_eq!(kept.expose_secret(), secret);

    // A wrong ID is refused in one sentence and the saved client stays.
    let (code, message) = h.err(
        "set_google_client",
        json!({"client": {"id": "GOCSPX-pasted-in-the-wrong-box", "secret": "x"}}),
    );
    assert_eq!(code, "bad_input");
    assert!(message.contains(".apps.googleusercontent.com"), "{message}");
    assert_eq!(h.ok("google_client_status", json!({}))["client_id"], id);
    assert_eq!(std::fs::read_to_string(&settings_file).unwrap(), on_disk);
}

/// "Save…" in the key dialog: the key lands in a new file private to the user, with its public
/// half; the passphrase is needed, an existing file is never overwritten, a relative path is
/// refused, and each refusal writes nothing.
#[test]
fn the_key_is_saved_into_a_new_private_file() {
    use std::os::unix::fs::PermissionsExt;
    let h = harness(|dir| EnvDefaults {
        folder: Some(dir.join("backups")),
        ..Default::default()
    });
    h.ok("set_passphrase", json!({"passphrase": PASSPHRASE}));
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("driveback-backup-key.txt");
    let p = path.display().to_string();
    let (code, message) = h.err(
        "save_key",
        json!({"passphrase": "not it at all", "path": p}),
    );
    assert_eq!(code, "wrong_passphrase", "{message}");
    assert!(!path.exists(), "a wrong passphrase wrote nothing");
    assert_eq!(
        h.ok("save_key", json!({"passphrase": PASSPHRASE, "path": p})),
        json!(p)
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let key = h.ok("show_key", json!({"passphrase": PASSPHRASE}));
    assert!(text.contains(key["secret_key"].as_str().unwrap()), "{text}");
    assert!(text.contains(key["public_key"].as_str().unwrap()), "{text}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only the user can read the key file");
    // Never over an existing file.
    let (code, message) = h.err("save_key", json!({"passphrase": PASSPHRASE, "path": p}));
    assert_eq!(code, "bad_input");
    assert!(message.contains("already exists"), "{message}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    let (code, message) = h.err(
        "save_key",
        json!({"passphrase": PASSPHRASE, "path": "key.txt"}),
    );
    assert_eq!(code, "bad_input");
    assert!(message.contains("not a full path"), "{message}");
}

/// The app's More settings chooses the incremental layout for the configured destination; then
/// Backup Now makes a full backup and an increment, the list shows both, the increment verifies
/// and restores (through the chain) exactly, and Save a copy saves its whole chain.
#[test]
fn the_incremental_layout_from_the_app() {
    let mongo = driveback_testkit::mongo();
    let rt = rt();
    let db_name = mongo.fresh_db("app_incr");
    let client = rt.block_on(mongo.client());
    let db = client.database(&db_name);
    rt.block_on(seed(&db));
    let h = app_on(mongo, &db_name);
    h.start(StartOptions {
        scheduler: false,
        ..StartOptions::default()
    });
    h.ok("set_passphrase", json!({"passphrase": PASSPHRASE}));
    let view = h.ok("get_settings", json!({}));
    assert_eq!(view["layout"], "files", "a folder's default");
    let dest = view["layout_dest"].as_str().unwrap().to_string();
    let mut settings = view["settings"].clone();
    settings["backup"]["layouts"] = json!({ dest.clone(): "incremental" });
    let saved = h.ok("save_settings", json!({ "settings": settings }));
    assert_eq!(saved["layout"], "incremental");

    let backup = |channel: u32| {
        let started = h.ok(
            "backup_now",
            json!({"onEvent": format!("__CHANNEL__:{channel}")}),
        );
        let done = h.outcome(started["job_id"].as_str().unwrap());
        assert_eq!(done["event"], "finished", "{done}");
    };
    backup(1);
    rt.block_on(async {
        db.collection::<Document>("entries")
            .delete_many(doc! { "n": { "$lt": 10 } })
            .await
            .unwrap();
        db.collection::<Document>("entries")
            .update_many(
                doc! { "n": { "$gte": 1990 } },
                doc! { "$set": { "changed": true } },
            )
            .await
            .unwrap();
    });
    let wanted = rt.block_on(whole_db(&db));
    backup(2);
    let list = h.ok("list_backups", json!({}));
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(
        list[0]["file"].as_str().unwrap().ends_with(".mdbi"),
        "{list:?}"
    );
    assert_eq!(list[0]["link"]["parent"], list[1]["id"]);
    let id = list[0]["id"].as_str().unwrap().to_string();

    let v = h.ok(
        "verify_backup",
        json!({"id": id, "onEvent": "__CHANNEL__:3"}),
    );
    assert_eq!(v["documents"], list[0]["documents"]);

    rt.block_on(async {
        db.collection::<Document>("entries")
            .delete_many(doc! {})
            .await
            .unwrap();
    });
    let plan = h.ok("prepare_restore", json!({"id": id}));
    h.ok(
        "restore",
        json!({"token": plan["token"], "onEvent": "__CHANNEL__:4"}),
    );
    assert_eq!(rt.block_on(whole_db(&db)), wanted);

    let copies = h.dir.path().join("chain-copy");
    let copy = h.ok(
        "save_copy",
        json!({"id": id, "folder": copies.display().to_string()}),
    );
    let mut saved: Vec<String> = std::fs::read_dir(&copies)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    saved.sort();
    let mut expected = vec![
        list[0]["file"].as_str().unwrap().to_string(),
        list[1]["file"].as_str().unwrap().to_string(),
    ];
    expected.sort();
    assert_eq!(saved, expected, "the whole chain");
    assert_eq!(
        copy["bytes"].as_u64().unwrap(),
        list[0]["bytes"].as_u64().unwrap() + list[1]["bytes"].as_u64().unwrap()
    );
}
