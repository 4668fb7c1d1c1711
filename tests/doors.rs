//! The three front doors run one engine: a one-shot `driveback backup`, a scheduled backup and a
//! Backup Now click produce the same history record, retention and email for the same outcome;
//! and a Backup Now to Google Drive lists the destination at most twice (counted at the emulator).
//!
//! Real components: the test MongoDB server, the real `driveback` binary, an SMTP server on
//! loopback (aiosmtpd, STARTTLS + AUTH), the Drive emulator, the app's commands over Tauri's IPC.

#[path = "ipc/mod.rs"]
mod ipc;
use ipc::invoke;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Document};
use chrono::Utc;
use driveback_app::{AppState, EnvDefaults, Shared, StartOptions};
use driveback_engine::authenticity::Signer;
use driveback_engine::history::{Outcome, RunKind, RunRecord, Trigger};
use driveback_engine::manifest::{self, BackupStatus};
use driveback_engine::secrets::{MemorySecretStore, SecretStore};
use driveback_engine::settings::Settings;
use driveback_engine::store::{self, BackupSummary, Dest};
use serde_json::{json, Value};
use tauri::test::{mock_builder, mock_context, noop_assets, MockRuntime};
use tauri::{App, WebviewWindow, WebviewWindowBuilder};

const PASSPHRASE: &str = "correct horse battery staple";
const SMTP_USER: &str = "reports@example.test";
const SMTP_PASSWORD: &str = "s3cret-App-Pa55word";

struct SmtpServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    fn start() -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(driveback_testkit::venv_dir().join("bin/python"))
            .arg(driveback_testkit::repo_root().join("tests/python/smtp_server.py"))
            .arg(dir.path())
            .args(["--user", SMTP_USER, "--password", SMTP_PASSWORD])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP test server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("SMTP server did not start: {line:?}"))
            .parse()
            .unwrap();
        SmtpServer { child, port, dir }
    }

    /// The subjects of the messages received, oldest first.
    fn subjects(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| {
                let raw = std::fs::read_to_string(p).unwrap();
                raw.lines()
                    .find_map(|l| l.strip_prefix("Subject: "))
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The app on the mock runtime over `state`, its background work started without a scheduler.
fn app(state: &Shared) -> (App<MockRuntime>, WebviewWindow<MockRuntime>) {
    let app = driveback_app::builder(mock_builder())
        .manage(state.clone())
        .build(mock_context(noop_assets()))
        .unwrap();
    driveback_app::start(
        app.handle(),
        state,
        Some(Arc::new(NoToasts)),
        StartOptions {
            scheduler: false,
            ..StartOptions::default()
        },
    );
    let window = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .unwrap();
    (app, window)
}

struct NoToasts;

impl driveback_app::notify::Toaster for NoToasts {
    fn show(&self, _title: &str, _body: &str) {}
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn backup_runs(state: &Shared) -> Vec<RunRecord> {
    state
        .history()
        .load()
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == RunKind::Backup)
        .collect()
}

/// A committed stand-in for an earlier backup of `db` at `folder`, made at `created` and signed
/// as Driveback signs its backups.
fn old_backup(folder: &Path, signer: &Signer, db: &str, created: chrono::DateTime<Utc>, id: &str) {
    let store = store::open_store(&Dest::Folder(folder.to_path_buf())).unwrap();
    let name = manifest::backup_file_name(db, created, id);
    let mut sink = store.create(&name).unwrap();
    sink.write_all(b"an earlier backup").unwrap();
    signer
        .commit(
            &name,
            sink,
            &BackupSummary {
                id: id.into(),
                created,
                database: db.into(),
                documents: 1,
                status: BackupStatus::Complete,
                format_version: manifest::FORMAT_VERSION,
                signature: None,
                link: None,
            },
        )
        .unwrap();
}

/// What must be the same whichever door started the backup.
fn comparable(r: &RunRecord) -> Value {
    json!({
        "kind": r.kind,
        "outcome": r.outcome,
        "database": r.database,
        "dest": r.dest,
        "documents": r.documents,
        "verified": r.verified,
        "pruned": r.pruned,
        "error": r.error,
        "has_backup": r.backup_id.is_some(),
    })
}

#[test]
fn three_doors_make_the_same_record_retention_and_email() {
    // Retention's days are the local time zone's: pin it.
    std::env::set_var("TZ", "UTC");
    std::env::set_var("DRIVEBACK_SMTP_PASSWORD", SMTP_PASSWORD);
    let mongo = driveback_testkit::mongo();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = mongo.fresh_db("doors");
    rt.block_on(async {
        let client = mongo.client().await;
        let docs: Vec<Document> = (0..300).map(|i: i32| doc! {"_id": i, "n": i}).collect();
        client
            .database(&db)
            .collection::<Document>("entries")
            .insert_many(docs)
            .await
            .unwrap();
    });
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let folder = dir.path().join("backups");
    let dest = format!("folder:{}", folder.display());
    let mut settings = Settings::default();
    for (k, v) in [
        ("backup.database", db.as_str()),
        ("backup.dest", dest.as_str()),
        ("smtp.host", "localhost"),
        ("smtp.port", &smtp.port.to_string()),
        ("smtp.security", "starttls"),
        ("smtp.user", SMTP_USER),
        ("smtp.to", "alice@example.test"),
        (
            "smtp.ca_file",
            smtp.dir.path().join("ca.pem").to_str().unwrap(),
        ),
        ("notify.email_on_success", "true"),
    ] {
        settings.set_key(k, v).unwrap();
    }
    settings.save_to(&config.join("settings.json")).unwrap();
    // Two earlier backups today: each door's backup then prunes exactly one (the newest of the
    // day and the month's first stay).
    let today = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 1)
        .unwrap()
        .and_utc();
    // The destination's key, made with the CLI on this device.
    let key_command = |args: &[&str]| {
        let out = Command::new(driveback_testkit::driveback_bin())
            .args(args)
            .args(["--dest", dest.as_str()])
            .env("DRIVEBACK_CONFIG_DIR", &config)
            .env_remove("DRIVEBACK_DATA_DIR")
            .env("DRIVEBACK_PASSPHRASE", PASSPHRASE)
            .env(
                "DRIVEBACK_KEYRING_SERVICE",
                format!("driveback-doors-{:08x}", rand_u32()),
            )
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    key_command(&["key", "init"]);
    let key = driveback_engine::keys::BackupKey::from_secret_str(
        key_command(&["key", "show", "--secret"]).trim(),
    )
    .unwrap();
    let signer = Signer::for_key(&key);
    old_backup(&folder, &signer, &db, today, "0000000a");
    old_backup(
        &folder,
        &signer,
        &db,
        Utc::now() - chrono::Duration::seconds(30),
        "0000000b",
    );

    // 1. The one-shot CLI.
    let out = Command::new(driveback_testkit::driveback_bin())
        .args(["backup", "--db", &db, "--dest", &dest])
        .env("DRIVEBACK_CONFIG_DIR", &config)
        .env_remove("DRIVEBACK_DATA_DIR")
        .env("DRIVEBACK_MONGO_URI", mongo.uri())
        .env("DRIVEBACK_PASSPHRASE", PASSPHRASE)
        .env(
            "DRIVEBACK_KEYRING_SERVICE",
            format!("driveback-doors-{:08x}", rand_u32()),
        )
        .stdin(Stdio::null())
        .output()
        .expect("run the driveback CLI (built by `cargo build --workspace`)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The app, over the same settings and history, on a keyring that holds the backup key (as
    // the app's own keyring does once the key was made or unlocked in it).
    let secrets: Arc<dyn SecretStore> = Arc::new(MemorySecretStore::new());
    secrets
        .set(
            &driveback_engine::keys::keyring_entry_name(&key.recipient()),
            &key.to_secret_string(),
        )
        .unwrap();
    let state: Shared = Arc::new(AppState::new(
        Ok(secrets),
        &config,
        &config,
        EnvDefaults {
            mongo_uri: Some(mongo.uri().to_string()),
            ..EnvDefaults::default()
        },
    ));
    let (_app, window) = app(&state);
    assert_eq!(backup_runs(&state).len(), 1);

    // 2. A scheduled backup: the scheduler's call (`Jobs::start_if(Scheduled, ..)`, which starts
    // the service's one backup job) made directly, so that it does not wait for 02:00.
    let scheduled = tauri::async_runtime::block_on(async {
        state
            .jobs()
            .start_if(Trigger::Scheduled, |_| true)
            .expect("no job runs")
            .wait()
            .await
    });
    assert_eq!(scheduled.trigger, Trigger::Scheduled);

    // 3. Backup Now.
    let started = invoke(&window, "backup_now", json!({"onEvent": "__CHANNEL__:1"})).unwrap();
    assert_eq!(started["attached"], false);
    let runs = wait_for("the Backup Now run", || {
        let runs = backup_runs(&state);
        (runs.len() == 3).then_some(runs)
    });
    assert_eq!(runs[1].job_id, scheduled.job_id);
    assert_eq!(runs[2].job_id, started["job_id"].as_str().unwrap());
    assert_eq!(runs[2].trigger, Trigger::Manual);

    let want = comparable(&runs[0]);
    assert_eq!(want["outcome"], json!(Outcome::Success), "{want}");
    assert_eq!(want["pruned"], 1, "{want}");
    assert_eq!(want["documents"], 300, "{want}");
    for r in &runs[1..] {
        assert_eq!(comparable(r), want, "{r:?}");
    }
    // Retention left the month's first backup and the newest one.
    let left: Vec<String> = store::open_store(&Dest::Folder(folder.clone()))
        .unwrap()
        .list()
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(
        left,
        vec![runs[2].backup_id.clone().unwrap(), "0000000a".to_string()]
    );

    // One email report per run, alike, each recorded.
    let emails = wait_for("three email reports", || {
        let e: Vec<RunRecord> = state
            .history()
            .load()
            .unwrap()
            .into_iter()
            .filter(|r| r.kind == RunKind::Email)
            .collect();
        (e.len() == 3).then_some(e)
    });
    for (email, run) in emails.iter().zip(&runs) {
        assert_eq!(email.job_id, run.job_id);
        assert_eq!(email.outcome, Outcome::Success, "{email:?}");
    }
    let subjects = smtp.subjects();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert!(subjects.iter().all(|s| *s == subjects[0]), "{subjects:?}");
    assert!(subjects[0].contains(&db), "{subjects:?}");
}

/// Backup Now to Google Drive (the emulator): at most two listings of the destination's backups,
/// from the click to the end of retention, and two of the lock files (Drive's default layout is
/// incremental, whose backups take the destination's lock: its files are looked at when the lock
/// is taken and before the commit; the lock file itself is created and deleted by its id, without
/// a search).
#[test]
fn backup_now_to_drive_lists_at_most_twice() {
    let emulator = driveback_testkit::emulator::Emulator::start(&["--auto-consent"]);
    std::env::set_var("DRIVEBACK_GOOGLE_BASE_URL", emulator.base_url());
    std::env::set_var(
        "DRIVEBACK_BROWSER",
        driveback_testkit::repo_root().join("tests/e2e/browser.sh"),
    );
    let mongo = driveback_testkit::mongo();
    let db = mongo.fresh_db("doors_drive");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = mongo.client().await;
        client
            .database(&db)
            .collection::<Document>("entries")
            .insert_many((0..50).map(|i: i32| doc! {"_id": i}))
            .await
            .unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let secrets: Arc<dyn SecretStore> = Arc::new(MemorySecretStore::new());
    let state: Shared = Arc::new(AppState::new(
        Ok(secrets),
        &dir.path().join("config"),
        &dir.path().join("data"),
        EnvDefaults {
            mongo_uri: Some(mongo.uri().to_string()),
            database: Some(db.clone()),
            folder: None,
        },
    ));
    let (_app, window) = app(&state);
    invoke(&window, "connect_drive", json!({})).unwrap();
    invoke(&window, "set_passphrase", json!({"passphrase": PASSPHRASE})).unwrap();
    // A first backup, so that the counted one has a previous backup and retention to apply.
    let first = invoke(&window, "backup_now", json!({"onEvent": "__CHANNEL__:1"})).unwrap();
    wait_for("the first backup", || {
        (backup_runs(&state).len() == 1).then_some(())
    });
    assert_eq!(
        backup_runs(&state)[0].outcome,
        Outcome::Success,
        "{first}: {:?}",
        backup_runs(&state)[0]
    );

    let before = emulator.requests("list");
    invoke(&window, "backup_now", json!({"onEvent": "__CHANNEL__:2"})).unwrap();
    let runs = wait_for("the counted backup", || {
        let r = backup_runs(&state);
        (r.len() == 2).then_some(r)
    });
    assert_eq!(runs[1].outcome, Outcome::Success, "{:?}", runs[1]);
    assert_eq!(runs[1].dest.as_deref(), Some("drive:appdata"));
    let lists = emulator.requests("list") - before;
    eprintln!("Backup Now to Drive: {lists} list requests");
    assert!(lists <= 4, "a Backup Now listed Drive {lists} times");
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.subsec_nanos() ^ std::process::id().rotate_left(16)
}
