//! End to end, in the real app: under Xvfb, through tauri-driver and WebKitWebDriver, against a
//! real MongoDB-wire server and the Secret Service. `scripts/e2e` sets everything up and sets
//! `DRIVEBACK_E2E=1`; without it this test says it is skipped and passes.
//!
//! First run (connect the database, connect Google Drive on the emulator, set the passphrase, see
//! the key) -> Back up -> the list shows it -> the data changes -> Restore -> Esc and Cancel leave
//! the data as it is -> Restore -> Replace data -> the data is back as it was (read through the
//! driver) -> Undo -> Verify -> the schedule and the health -> Google revokes the grant: the backup
//! fails with the reason, the health turns critical -> Reconnect -> Back up works again ->
//! Disconnect. A screenshot of every screen; cold start and idle memory are measured and printed.

#[path = "e2e/contrast.rs"]
mod contrast;
#[path = "e2e/webdriver.rs"]
mod webdriver;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bson::{doc, Document};
use webdriver::{keys, Session};

/// Collections of the test database, each as its documents sorted by `_id`.
type Snapshot = BTreeMap<String, Vec<Document>>;

/// Every document of a collection, by `_id`.
async fn collect(coll: &mongodb::Collection<Document>) -> Vec<Document> {
    let mut cursor = coll
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .await
        .expect("find");
    let mut out = Vec::new();
    while cursor.advance().await.expect("cursor") {
        out.push(cursor.deserialize_current().expect("document"));
    }
    out
}

struct Env {
    webdriver: String,
    app: PathBuf,
    mongo_uri: String,
    screenshots: PathBuf,
    /// The Drive emulator.
    google: String,
    /// The app's config folder (XDG_CONFIG_HOME/<identifier>).
    config_dir: PathBuf,
    /// The app's data and cache folders (XDG_DATA_HOME, XDG_CACHE_HOME).
    data_dir: PathBuf,
    cache_dir: PathBuf,
}

impl Env {
    /// Calls the emulator's control API.
    fn emulator(&self, path: &str) -> Result<(), String> {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/_emulator/{path}", self.google))
            .body("{}")
            .send()
            .map_err(|e| format!("emulator {path}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("emulator {path}: {}", r.status()));
        }
        Ok(())
    }
}

impl Env {
    /// The names of the files on the emulated Drive, trashed ones left out.
    fn drive_files(&self) -> Result<Vec<String>, String> {
        let v: serde_json::Value =
            reqwest::blocking::get(format!("{}/_emulator/state", self.google))
                .and_then(|r| r.json())
                .map_err(|e| format!("emulator state: {e}"))?;
        Ok(v["files"]["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["trashed"] != serde_json::json!(true))
            .filter_map(|f| f["name"].as_str().map(str::to_string))
            .collect())
    }

    /// Forgets everything this computer knew (settings, history, the app's web storage, its
    /// keyring entries): what a new computer has, with the same Drive and database server.
    fn new_device(&self) -> Result<(), String> {
        for dir in [
            self.config_dir.clone(),
            self.data_dir.clone(),
            self.cache_dir.clone(),
        ] {
            // The last session's app and its WebKit processes may still be writing there
            // while they quit: try again for a few seconds.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(_) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(200))
                    }
                    Err(e) => return Err(format!("{}: {e}", dir.display())),
                }
            }
        }
        // `clear` answers 1 when there was nothing to clear: what is left is checked instead.
        std::process::Command::new("secret-tool")
            .args(["clear", "service", "driveback"])
            .status()
            .map_err(|e| format!("secret-tool: {e}"))?;
        let left = std::process::Command::new("secret-tool")
            .args(["search", "--all", "service", "driveback"])
            .output()
            .map_err(|e| format!("secret-tool: {e}"))?;
        if !left.stdout.is_empty() {
            return Err(format!(
                "the keyring still holds Driveback's entries: {}",
                String::from_utf8_lossy(&left.stdout)
            ));
        }
        Ok(())
    }
}

/// The connection string with the database in its path, as a person pastes it.
fn uri_with_database(uri: &str, db: &str) -> String {
    let (scheme, rest) = uri.split_once("://").expect("a mongodb:// URI");
    let (hosts, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let query = tail
        .trim_start_matches('/')
        .trim_start_matches(|c| c != '?');
    format!("{scheme}://{hosts}/{db}{query}")
}

/// On Google's consent page a person picks the account, then presses Allow (the emulator
/// consents for the test; the count includes these two).
const GOOGLE_CONSENT_CLICKS: usize = 2;

impl Env {
    fn from_env() -> Option<Self> {
        if std::env::var("DRIVEBACK_E2E").as_deref() != Ok("1") {
            return None;
        }
        let var = |k: &str| {
            std::env::var(k).unwrap_or_else(|_| panic!("{k} must be set (scripts/e2e sets it)"))
        };
        Some(Self {
            webdriver: var("DRIVEBACK_WEBDRIVER_URL"),
            app: PathBuf::from(var("DRIVEBACK_APP_BIN")),
            mongo_uri: var("MONGODB_TEST_URI"),
            screenshots: PathBuf::from(var("DRIVEBACK_SCREENSHOT_DIR")),
            google: var("DRIVEBACK_GOOGLE_BASE_URL"),
            config_dir: PathBuf::from(var("XDG_CONFIG_HOME")).join("app.driveback.desktop"),
            data_dir: PathBuf::from(var("XDG_DATA_HOME")).join("app.driveback.desktop"),
            cache_dir: PathBuf::from(var("XDG_CACHE_HOME")).join("app.driveback.desktop"),
        })
    }
}

const PASSPHRASE: &str = "correct horse battery staple";
const SHORT: Duration = Duration::from_secs(20);
const LONG: Duration = Duration::from_secs(180);

async fn seed(db: &mongodb::Database) {
    let projects: Vec<Document> = (0..12)
        .map(|i| doc! { "_id": i, "name": format!("Project {i}"), "client": format!("Client {}", i % 4), "active": i % 3 != 0 })
        .collect();
    db.collection::<Document>("projects")
        .insert_many(projects)
        .await
        .unwrap();
    let users: Vec<Document> = (0..8)
        .map(|i| doc! { "_id": format!("user{i}"), "email": format!("user{i}@example.com"), "rate": 40.5 + i as f64 })
        .collect();
    db.collection::<Document>("users")
        .insert_many(users)
        .await
        .unwrap();
    let entries: Vec<Document> = (0..6000)
        .map(|i: i64| {
            doc! {
                "_id": i,
                "project": (i % 12) as i32,
                "user": format!("user{}", i % 8),
                "minutes": ((i * 37) % 240) as i32,
                "note": format!("worked on task {} of the sprint, with notes that make the document a little longer", i % 97),
                "day": bson::DateTime::from_millis(1_700_000_000_000 + i * 3_600_000),
            }
        })
        .collect();
    db.collection::<Document>("entries")
        .insert_many(entries)
        .await
        .unwrap();
    db.collection::<Document>("entries")
        .create_index(
            mongodb::IndexModel::builder()
                .keys(doc! { "user": 1, "day": -1 })
                .build(),
        )
        .await
        .unwrap();
}

async fn snapshot(db: &mongodb::Database) -> Snapshot {
    let mut out = Snapshot::new();
    let mut names = db.list_collection_names().await.unwrap();
    names.sort();
    for name in names {
        if name.starts_with("system.") {
            continue;
        }
        out.insert(
            name.clone(),
            collect(&db.collection::<Document>(&name)).await,
        );
    }
    out
}

/// What a person does to their data between the backup and the restore.
async fn change_data(db: &mongodb::Database) {
    db.collection::<Document>("entries")
        .delete_many(doc! { "project": 3 })
        .await
        .unwrap();
    db.collection::<Document>("projects")
        .update_many(
            doc! {},
            doc! { "$set": { "active": false, "renamed": true } },
        )
        .await
        .unwrap();
    db.collection::<Document>("users")
        .insert_one(doc! { "_id": "intruder", "email": "oops@example.com" })
        .await
        .unwrap();
    db.collection::<Document>("scratch")
        .insert_one(doc! { "x": 1 })
        .await
        .unwrap();
}

/// Resident memory of a process and of all its descendants (WebKit's web and network
/// processes), in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    fn rss(pid: u32) -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
            // The command name is in parentheses and may hold spaces: read after the last ')'.
            if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|v| v.parse().ok()) {
                    parents.push((p, ppid));
                }
            }
        }
    }
    let mut family = vec![pid];
    let mut i = 0;
    while i < family.len() {
        let parent = family[i];
        family.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    (rss(pid), family.iter().map(|p| rss(*p)).sum())
}

/// Waits until the health badge shows `status`.
fn health_is(s: &Session, status: &str) -> Result<(), String> {
    s.wait_until(&format!("the health to be {status}"), LONG, |s| {
        let badge = s.find("#health-badge").ok()?;
        (s.attribute(&badge, "data-status").ok()??.as_str() == status).then_some(())
    })
}

/// A build without a built-in Google client: Connect Google Drive opens the setup, which refuses
/// a client ID that is not one and a Web application client's file with one sentence each, then
/// takes the `client_secret_*.json` Google's console downloads (through the real file input),
/// keeps the secret out of every file, and signs in.
#[test]
fn google_client_is_set_up_in_the_app() {
    let Some(env) = Env::from_env() else {
        eprintln!(
            "skipped: the end-to-end tests run through scripts/e2e (it sets DRIVEBACK_E2E=1)"
        );
        return;
    };
    if let Err(e) = set_up_google_client(&env) {
        panic!("{e}");
    }
    println!("driveback-e2e: ran the Google client setup");
}

fn set_up_google_client(env: &Env) -> Result<(), String> {
    let var =
        |k: &str| std::env::var(k).map_err(|_| format!("{k} must be set (scripts/e2e sets it)"));
    let (id, secret) = (
        var("DRIVEBACK_E2E_CLIENT_ID")?,
        var("DRIVEBACK_E2E_CLIENT_SECRET")?,
    );
    env.new_device()?;
    let files = PathBuf::from(var("DRIVEBACK_E2E_WORK")?).join("downloads");
    std::fs::create_dir_all(&files).map_err(|e| e.to_string())?;
    let client = |kind: &str| {
        serde_json::json!({ kind: {
            "client_id": id,
            "project_id": "driveback-e2e",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token",
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_secret": secret,
            "redirect_uris": ["http://localhost"]
        }})
        .to_string()
    };
    let web = files.join("client_secret_web.apps.googleusercontent.com.json");
    let desktop = files.join(format!("client_secret_{id}.json"));
    std::fs::write(&web, client("web")).map_err(|e| e.to_string())?;
    std::fs::write(&desktop, client("installed")).map_err(|e| e.to_string())?;

    let rt = tokio::runtime::Runtime::new().unwrap();
    let db_name = format!("e2e_client_{:08x}", std::process::id());
    let db = rt
        .block_on(mongodb::Client::with_uri_str(&env.mongo_uri))
        .unwrap()
        .database(&db_name);
    rt.block_on(async {
        db.collection::<Document>("notes")
            .insert_one(doc! { "_id": 1 })
            .await
    })
    .map_err(|e| e.to_string())?;

    let mut s = Session::start(
        &var("DRIVEBACK_WEBDRIVER_OWN_CLIENT_URL")?,
        &env.app,
        &env.screenshots,
    )?;
    s.shots = 30;
    s.wait_for("#firstrun", LONG)?;
    s.type_into("#mongo-uri", &uri_with_database(&env.mongo_uri, &db_name))?;
    s.wait_for("#connection-ok", LONG)?;
    s.click_css("#drive-connect")?;
    s.wait_for("#google-setup-dialog", LONG)?;
    let steps = s.text_of("#google-setup-steps")?;
    assert!(steps.contains("Desktop app"), "{steps}");
    s.shot("google-client-setup")?;
    let mut contrast_report = Vec::new();
    contrast_both(&s, "Google client setup", &mut contrast_report)?;
    assert!(
        contrast_report.is_empty(),
        "text contrast below WCAG AA:\n{}",
        contrast_report.join("\n")
    );

    // A mistake in the pasted ID: one sentence, nothing saved.
    s.type_into("#google-client-id", "1234-abc")?;
    s.type_into("#google-client-secret", &secret)?;
    s.click_css("#google-setup-save")?;
    let problem = s.wait_for("#google-setup-problem", SHORT)?;
    let why = s.text(&problem)?;
    assert!(why.contains(".apps.googleusercontent.com"), "{why}");
    s.shot("google-client-setup-wrong-id")?;

    // The Web application client's file: its own sentence.
    s.type_into("#google-client-file", &web.display().to_string())?;
    s.wait_until("the web client to be refused", SHORT, |s| {
        let t = s.text_of("#google-setup-problem").ok()?;
        t.contains("Web application").then_some(())
    })?;
    let settings = env.config_dir.join("settings.json");
    let saved = std::fs::read_to_string(&settings).unwrap_or_default();
    assert!(!saved.contains(&id), "a refused client was saved: {saved}");

    // The desktop client's file: saved, and the sign-in follows.
    s.type_into("#google-client-file", &desktop.display().to_string())?;
    s.wait_for("#firstrun[data-step='passphrase']", LONG)?;
    let saved = std::fs::read_to_string(&settings).map_err(|e| e.to_string())?;
    assert!(
        saved.contains(&id),
        "the client ID is in the settings: {saved}"
    );
    for dir in [&env.config_dir, &env.data_dir] {
        for f in walk(dir) {
            let bytes = std::fs::read(&f).unwrap_or_default();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the client secret is written in {}",
                f.display()
            );
        }
    }
    s.shot("google-client-connected")?;
    drop(s);
    rt.block_on(async { db.drop().await }).ok();
    env.new_device()
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The package the tests run the app from (scripts/e2e bundles the build into a .deb and unpacks
/// it as dpkg does): its control fields, its desktop entry, its icon, its licence, and the CLI it
/// ships. The other test launches the app from this package.
#[test]
fn the_package_installs_the_app_and_the_cli() {
    if std::env::var("DRIVEBACK_E2E").as_deref() != Ok("1") {
        eprintln!(
            "skipped: the end-to-end tests run through scripts/e2e (it sets DRIVEBACK_E2E=1)"
        );
        return;
    }
    let var = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| panic!("{k} must be set (scripts/e2e sets it)"))
    };
    let root = PathBuf::from(var("DRIVEBACK_PACKAGE_ROOT"));
    let control = std::fs::read_to_string(var("DRIVEBACK_PACKAGE_CONTROL")).unwrap();
    let field = |name: &str| {
        control
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("the package has no {name}: {control}"))
            .to_string()
    };
    assert_eq!(field("Package"), "driveback");
    assert_eq!(field("Version"), env!("CARGO_PKG_VERSION"));
    assert_eq!(field("Section"), "utils");
    assert!(field("Description").contains("Google Drive"), "{control}");
    // Every dependency names a package this Debian has, and scripts/setup installed it.
    let depends = field("Depends");
    for dep in [
        "libwebkit2gtk-4.1-0",
        "libgtk-3-0",
        "libayatana-appindicator3-1",
    ] {
        assert!(
            depends.contains(dep),
            "{dep} is missing from Depends: {depends}"
        );
    }
    for dep in depends
        .split(',')
        .map(|d| d.split_whitespace().next().unwrap().to_string())
    {
        let out = std::process::Command::new("dpkg-query")
            .args(["-W", "-f=${Status}", &dep])
            .output()
            .expect("dpkg-query");
        let status = String::from_utf8_lossy(&out.stdout);
        assert!(
            status.contains("install ok installed"),
            "{dep} is not installed: {status}"
        );
    }

    // The desktop entry starts the installed app, with the product's name, icon and category.
    let entry =
        std::fs::read_to_string(root.join("usr/share/applications/Driveback.desktop")).unwrap();
    let key = |name: &str| {
        entry
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("the desktop entry has no {name}: {entry}"))
            .to_string()
    };
    assert_eq!(key("Name"), "Driveback");
    assert_eq!(key("Categories"), "Utility;");
    assert_eq!(key("Type"), "Application");
    let exec = key("Exec");
    let program = exec.split_whitespace().next().unwrap();
    assert!(
        root.join("usr/bin").join(program).is_file(),
        "Exec={exec} is not installed in /usr/bin"
    );
    let icon = key("Icon");
    for size in ["32x32", "128x128", "512x512"] {
        let png = root.join(format!("usr/share/icons/hicolor/{size}/apps/{icon}.png"));
        assert!(png.is_file(), "no {size} icon: {}", png.display());
    }
    let licence = std::fs::read_to_string(root.join("usr/share/doc/driveback/copyright")).unwrap();
    assert!(licence.contains("MIT License") && licence.contains("Apache License"));

    // The CLI ships in the same package and runs.
    let out = std::process::Command::new(root.join("usr/bin/driveback"))
        .arg("--help")
        .output()
        .expect("the packaged CLI starts");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && help.contains("backup") && help.contains("restore"),
        "{help}"
    );
    println!(
        "driveback-e2e: package {} checked (app, CLI, desktop entry, icons, licence)",
        var("DRIVEBACK_PACKAGE_DEB")
    );
}

/// Checks the text contrast of the screen shown, in the light and in the dark theme (axe-core's
/// `color-contrast`, WCAG AA), and adds what falls short to `report`.
fn contrast_both(s: &Session, screen: &str, report: &mut Vec<String>) -> Result<(), String> {
    for theme in ["", "dark"] {
        s.execute(
            "document.documentElement.dataset.theme = arguments[0];",
            vec![serde_json::json!(theme)],
        )?;
        for v in contrast::contrast_violations(s)? {
            let theme = if theme.is_empty() { "light" } else { theme };
            report.push(format!("{screen} ({theme}): {v}"));
        }
    }
    s.execute("document.documentElement.dataset.theme = '';", vec![])?;
    Ok(())
}

#[test]
fn first_run_backup_and_restore_in_the_real_app() {
    let Some(env) = Env::from_env() else {
        eprintln!(
            "skipped: the end-to-end tests run through scripts/e2e (it sets DRIVEBACK_E2E=1)"
        );
        return;
    };
    if let Err(e) = run(&env) {
        panic!("{e}");
    }
    println!("driveback-e2e: ran");
}

fn run(env: &Env) -> Result<(), String> {
    // Whatever ran before, this starts on a computer that has never run Driveback.
    env.new_device()?;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db_name = format!("e2e_{:08x}", std::process::id());
    let client = rt
        .block_on(mongodb::Client::with_uri_str(&env.mongo_uri))
        .unwrap();
    let db = client.database(&db_name);
    rt.block_on(seed(&db));
    let original = rt.block_on(snapshot(&db));

    // --- Start: cold start to the first screen ---------------------------------------------------
    let t0 = Instant::now();
    let mut s = Session::start(&env.webdriver, &env.app, &env.screenshots)?;
    s.wait_for("#firstrun", LONG)?;
    let to_first_screen = t0.elapsed();
    let body = s.find("body")?;
    let (startup_ms, pid) = s.wait_until("the app's first-paint report", SHORT, |s| {
        let ms = s.attribute(&body, "data-startup-ms").ok()??;
        let pid = s.attribute(&body, "data-pid").ok()??;
        Some((ms.parse::<u64>().ok()?, pid.parse::<u32>().ok()?))
    })?;

    // --- First run: the database (tested as it is typed) and Google Drive, counting the clicks ----
    s.shot("first-run")?;
    let clicks_at_start = s.clicks();
    s.type_into("#mongo-uri", &uri_with_database(&env.mongo_uri, &db_name))?;
    s.wait_for("#connection-ok", LONG)?;
    let select = s.find("#database-select")?;
    assert_eq!(
        s.property(&select, "value")?.as_deref(),
        Some(db_name.as_str()),
        "the database the string names is preselected"
    );
    s.shot("first-run-database-chosen")?;
    let mut contrast_report = Vec::new();
    contrast_both(&s, "first run: database and Drive", &mut contrast_report)?;
    // Connect Google Drive (the emulator consents at once, as a person would with two clicks on
    // Google's page); the app moves on by itself.
    s.click_css("#drive-connect")?;
    s.wait_for("#firstrun[data-step='passphrase']", LONG)?;

    // --- First run: the passphrase; the warning's acknowledgement starts the first backup ---------
    let warning = s.text_of("#passphrase-warning")?;
    assert!(warning.contains("cannot be restored"), "{warning}");
    s.type_into("#passphrase", PASSPHRASE)?;
    s.type_into("#passphrase-repeat", PASSPHRASE)?;
    s.shot("first-run-passphrase")?;
    contrast_both(&s, "first run: passphrase", &mut contrast_report)?;
    s.click_css("#passphrase-create")?;

    // --- Home: the first backup runs, and lands on Drive --------------------------------------------
    s.wait_for("#home", LONG)?;
    if s.wait_for("#backup-progress:not([hidden])", Duration::from_secs(5))
        .is_ok()
    {
        let _ = s.shot("backing-up");
    }
    s.wait_until("the first backup to finish", LONG, |s| {
        let t = s.text_of("#last-backup").ok()?;
        t.contains("today").then_some(t)
    })?;
    let first_backup_clicks = s.clicks() - clicks_at_start + GOOGLE_CONSENT_CLICKS;
    let on_drive = env.drive_files()?;
    assert!(
        on_drive
            .iter()
            .any(|n| n.starts_with(&format!("driveback-{db_name}-")) && n.ends_with(".mdbk")),
        "the first backup is on Drive: {on_drive:?}"
    );
    assert!(
        first_backup_clicks <= 5,
        "{first_backup_clicks} clicks to a first backup"
    );
    health_is(&s, "healthy")?;
    assert_eq!(s.text_of("#drive-account")?.contains('@'), true);
    assert!(s.text_of("#destination-folder")?.contains("Google Drive"));
    let frequency = s.find("#frequency")?;
    s.wait_until("the schedule", SHORT, |s| {
        (s.property(&frequency, "value").ok()?.as_deref() == Some("daily")).then_some(())
    })?;
    s.shot("home-after-backup")?;
    contrast_both(&s, "home", &mut contrast_report)?;
    s.click_css("#more-settings")?;
    s.wait_for("#settings-dialog #start-at-login", LONG)?;
    s.shot("more-settings")?;
    contrast_both(&s, "more settings", &mut contrast_report)?;
    s.send_keys(&s.active_element()?, keys::ESCAPE)?;
    s.wait_gone("#settings-dialog", SHORT)?;

    // The first run set Driveback to start at login (ticked by default): the entry starts the
    // installed app in the tray.
    let login_entry = std::fs::read_to_string(
        PathBuf::from(std::env::var("DRIVEBACK_E2E_HOME").unwrap())
            .join(".config/autostart/Driveback.desktop"),
    )
    .map_err(|e| format!("the login entry: {e}"))?;
    assert!(
        login_entry.contains(&format!("Exec={} --autostart", env.app.display())),
        "{login_entry}"
    );

    // --- The backup key, offered on the home screen once -----------------------------------------------
    s.click_css("#show-key-button")?;
    s.type_into("#ask-passphrase", PASSPHRASE)?;
    s.click_css("#ask-passphrase-ok")?;
    let key = s.wait_for("#secret-key", LONG)?;
    let key_text = s.text(&key)?;
    assert!(key_text.starts_with("AGE-SECRET-KEY-1"), "{key_text}");
    s.shot("backup-key")?;
    contrast_both(&s, "the backup key", &mut contrast_report)?;
    s.click_css("#key-close")?;
    s.wait_gone("#key-dialog", SHORT)?;
    s.wait_gone("#key-offer", SHORT)?;
    std::thread::sleep(Duration::from_secs(3));
    let (app_rss, all_rss) = rss_kib(pid);

    // --- The list shows it --------------------------------------------------------------------------
    s.click_css("#view-backups")?;
    s.wait_for(".backup-row", SHORT)?;
    let rows = s.find_all(".backup-row")?;
    assert_eq!(rows.len(), 1, "one backup in the list");
    let row_text = s.text(&rows[0])?;
    assert!(
        row_text.contains("Latest") && row_text.contains("6,020 documents"),
        "{row_text}"
    );
    s.shot("backup-list")?;
    contrast_both(&s, "the backup list", &mut contrast_report)?;

    // --- The data changes; Esc and Cancel on the confirmation change nothing ----------------------
    rt.block_on(change_data(&db));
    let changed = rt.block_on(snapshot(&db));
    assert_ne!(changed, original);

    s.click_css(".restore-button")?;
    s.wait_for("#restore-dialog", LONG)?;
    let summary = s.text_of("#restore-summary")?;
    assert!(summary.contains(&db_name), "{summary}");
    let plan = s.text_of("#restore-plan")?;
    assert!(
        plan.contains("entries") && plan.contains("6,000 in the backup"),
        "{plan}"
    );
    let active = s.active_element()?;
    assert_eq!(
        s.attribute(&active, "id")?.as_deref(),
        Some("restore-cancel"),
        "Cancel has the focus"
    );
    s.shot("restore-confirmation")?;
    contrast_both(&s, "the restore confirmation", &mut contrast_report)?;
    s.send_keys(&active, keys::ESCAPE)?;
    s.wait_gone("#restore-dialog", SHORT)?;
    assert_eq!(rt.block_on(snapshot(&db)), changed, "Esc changed the data");

    s.click_css(".restore-button")?;
    s.wait_for("#restore-dialog", LONG)?;
    s.click_css("#restore-cancel")?;
    s.wait_gone("#restore-dialog", SHORT)?;
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        rt.block_on(snapshot(&db)),
        changed,
        "Cancel changed the data"
    );

    // --- Restore: Replace data -------------------------------------------------------------------------
    s.click_css(".restore-button")?;
    s.wait_for("#restore-dialog", LONG)?;
    s.click_css("#restore-replace")?;
    s.wait_for("#restore-result", LONG)?;
    s.shot("restore-done")?;
    contrast_both(&s, "a restore done", &mut contrast_report)?;
    let mut restored = rt.block_on(snapshot(&db));
    // A collection the backup did not have is left as it is (the confirmation says so).
    assert_eq!(restored.remove("scratch").map(|d| d.len()), Some(1));
    assert_eq!(restored, original, "the data is back as it was");

    // --- Undo brings back the data from before the restore -----------------------------------------
    s.click_css("#restore-undo")?;
    s.wait_until("the undo to finish", LONG, |s| {
        let t = s.text_of("#restore-dialog h2").ok()?;
        (t == "Restore undone").then_some(())
    })?;
    assert_eq!(
        rt.block_on(snapshot(&db)),
        changed,
        "undo restored the data from before"
    );
    s.click_css("#restore-close")?;
    s.wait_gone("#restore-dialog", SHORT)?;

    // --- Verify ---------------------------------------------------------------------------------------
    // Verify and the copies are in the row's menu; Restore stays outside it.
    s.click_css(".backup-row .row-menu summary")?;
    s.click_css(".verify-button")?;
    let ok = s.wait_for(".verify-ok", LONG)?;
    assert!(s.text(&ok)?.contains("6,020 documents"));
    s.shot("backup-verified")?;

    // --- Restore from a file: a plain mongodump archive, into another database (Advanced) ---------
    // The system file dialog cannot be driven: the page's hook takes the path it would answer.
    let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/mongodump-100.8.0");
    let golden_db = format!("{db_name}_golden");
    s.execute(
        "window.drivebackRestoreFromFile(arguments[0]);",
        vec![serde_json::json!(golden.join("timetrack.archive.gz"))],
    )?;
    s.wait_for("#restore-dialog", LONG)?;
    s.click_css("#restore-advanced summary")?;
    s.execute(
        "const i = document.querySelector('#restore-target-db'); i.value = arguments[0]; i.dispatchEvent(new Event('input', { bubbles: true }));",
        vec![serde_json::json!(golden_db)],
    )?;
    s.click_css("#restore-advanced-apply")?;
    s.wait_until("the plan for the other database", LONG, |s| {
        let t = s.text_of("#restore-summary").ok()?;
        t.contains(&golden_db).then_some(())
    })?;
    s.shot("restore-from-file-advanced")?;
    contrast_both(&s, "restore from a file", &mut contrast_report)?;
    s.click_css("#restore-replace")?;
    s.wait_for("#restore-result", LONG)?;
    let expected: usize = std::fs::read_dir(golden.join("expected"))
        .map_err(|e| e.to_string())?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "ejson"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap().lines().count())
        .sum();
    let restored_golden: usize = rt
        .block_on(snapshot(&client.database(&golden_db)))
        .values()
        .map(Vec::len)
        .sum();
    assert_eq!(
        restored_golden, expected,
        "the archive's documents, all of them"
    );
    assert_eq!(
        rt.block_on(snapshot(&db)),
        changed,
        "the database backed up is left as it was"
    );
    s.click_css("#restore-close")?;
    s.wait_gone("#restore-dialog", SHORT)?;
    rt.block_on(async { client.database(&golden_db).drop().await })
        .map_err(|e| e.to_string())?;

    // --- The schedule: weekly, saved where the CLI reads it too -----------------------------------
    s.click_css("#backups-back")?;
    s.wait_for("#home", SHORT)?;
    s.click_css("#frequency option[value='weekly']")?;
    s.wait_until("the schedule note", SHORT, |s| {
        let t = s.text_of("#schedule-note").ok()?;
        t.contains("Every Sunday").then_some(t)
    })?;
    let saved = std::fs::read_to_string(env.config_dir.join("settings.json"))
        .map_err(|e| format!("the settings file: {e}"))?;
    assert!(saved.contains("\"weekly\""), "{saved}");
    s.click_css("#health-badge")?;
    s.wait_for(
        "#health-dialog .check[data-name='last_backup'][data-status='healthy']",
        LONG,
    )?;
    s.shot("health")?;
    contrast_both(&s, "health", &mut contrast_report)?;
    s.send_keys(&s.active_element()?, keys::ESCAPE)?;
    s.wait_gone("#health-dialog", SHORT)?;

    // --- Google revokes the grant: the backup fails and says why; the health turns critical -------
    env.emulator("revoke-all")?;
    env.emulator("expire-tokens")?;
    s.click_css("#backup-now")?;
    let error = s.wait_for("#backup-error", LONG)?;
    let why = s.text(&error)?;
    assert!(why.to_lowercase().contains("reconnect"), "{why}");
    s.shot("backup-failed-reconnect")?;
    contrast_both(&s, "a failed backup", &mut contrast_report)?;
    health_is(&s, "critical")?;
    s.wait_for("#drive-reconnect-banner", LONG)?;
    // The card still shows the last good backup, and its one action is to sign in again; Back up
    // waits for it.
    s.wait_for("#card-sign-in", LONG)?;
    let last = s.text_of("#last-backup")?;
    assert!(last.contains("today"), "{last}");
    let back_up = s.find("#backup-now")?;
    assert!(
        s.attribute(&back_up, "disabled")?.is_some(),
        "Back up waits for the sign-in"
    );
    assert_eq!(
        s.find_all("#backup-card button.primary")?.len(),
        1,
        "one call to action"
    );
    s.click_css("#health-badge")?;
    let critical = "#health-dialog .check[data-name='destination'][data-status='critical']";
    s.wait_for(critical, LONG)?;
    // The failed attempt is in the recent runs.
    s.wait_for("#history-table tr[data-outcome='failed']", LONG)?;
    // The home screen may still be redrawing after the failed backup: let it settle.
    std::thread::sleep(Duration::from_secs(2));
    s.wait_for(critical, LONG)?;
    s.execute(
        "document.querySelector(arguments[0]).scrollIntoView({block: 'center'});",
        vec![serde_json::json!(critical)],
    )?;
    s.shot("health-critical")?;
    contrast_both(&s, "health, critical", &mut contrast_report)?;
    s.send_keys(&s.active_element()?, keys::ESCAPE)?;
    s.wait_gone("#health-dialog", SHORT)?;

    // --- Reconnect, and backups work again --------------------------------------------------------
    s.click_css("#card-sign-in")?;
    s.wait_gone("#drive-reconnect-banner", LONG)?;
    s.wait_gone("#card-sign-in", LONG)?;
    s.click_css("#backup-now")?;
    // The data is as it was changed (the undo brought it back): 5,522 documents.
    s.wait_until("the second backup", LONG, |s| {
        let t = s.text_of("#last-backup-detail").ok()?;
        t.contains("5,522 documents").then_some(())
    })?;
    health_is(&s, "healthy")?;

    // --- Dark theme ------------------------------------------------------------------------------------
    s.execute("document.documentElement.dataset.theme = 'dark';", vec![])?;
    s.shot("home-dark")?;
    s.click_css("#view-backups")?;
    s.wait_for(".backup-row", SHORT)?;
    s.shot("backup-list-dark")?;
    s.click_css("#backups-back")?;
    s.wait_for("#home", SHORT)?;
    s.execute("document.documentElement.dataset.theme = '';", vec![])?;

    // --- Disconnect asks first; Cancel has the focus -----------------------------------------------
    s.click_css("#drive-disconnect")?;
    s.wait_for("#drive-disconnect-dialog", SHORT)?;
    let active = s.active_element()?;
    assert_eq!(
        s.attribute(&active, "id")?.as_deref(),
        Some("drive-disconnect-cancel")
    );
    s.shot("drive-disconnect")?;
    s.click_css("#drive-disconnect-confirm")?;
    // Home says Drive is not connected, with Connect and "Use a folder" next to it.
    s.wait_for("#home #drive-connect", LONG)?;
    // The card still shows the last backup; its one action is to connect Drive again.
    let action = s.wait_for("#card-sign-in", LONG)?;
    assert_eq!(s.text(&action)?, "Connect Google Drive");
    let last = s.text_of("#last-backup")?;
    assert!(last.contains("today"), "{last}");
    let back_up = s.find("#backup-now")?;
    assert!(
        s.attribute(&back_up, "disabled")?.is_some(),
        "Back up waits for Drive"
    );
    s.shot("drive-disconnected")?;
    contrast_both(&s, "Drive disconnected", &mut contrast_report)?;

    // --- A new device: the same Drive and database server, nothing else -----------------------------
    // The latest backup holds the data as it was changed; then a disaster empties a collection.
    let latest = changed.clone();
    let shots = s.shots;
    drop(s);
    env.new_device()?;
    rt.block_on(async {
        db.collection::<Document>("entries")
            .delete_many(doc! {})
            .await
    })
    .map_err(|e| e.to_string())?;
    let mut s = Session::start(&env.webdriver, &env.app, &env.screenshots)?;
    s.shots = shots;
    s.wait_for("#firstrun", LONG)?;
    let clicks_at_start = s.clicks();
    s.type_into("#mongo-uri", &uri_with_database(&env.mongo_uri, &db_name))?;
    s.wait_for("#connection-ok", LONG)?;
    s.click_css("#drive-connect")?;
    // The Drive holds backups and their key: the passphrase is asked once.
    s.wait_for("#unlock-title", LONG)?;
    s.type_into("#passphrase", PASSPHRASE)?;
    s.shot("new-device-passphrase")?;
    contrast_both(&s, "a new device: passphrase", &mut contrast_report)?;
    s.click_css("#unlock-restore")?;
    s.wait_for("#restore-dialog", LONG)?;
    let plan = s.text_of("#restore-plan")?;
    assert!(plan.contains("5,500 in the backup"), "{plan}");
    s.shot("new-device-restore-confirmation")?;
    s.click_css("#restore-replace")?;
    let restore_clicks = s.clicks() - clicks_at_start + GOOGLE_CONSENT_CLICKS;
    s.wait_for("#restore-result", LONG)?;
    assert_eq!(
        rt.block_on(snapshot(&db)),
        latest,
        "the new device restored the latest backup"
    );
    assert!(restore_clicks <= 5, "{restore_clicks} clicks to a restore");
    assert!(
        contrast_report.is_empty(),
        "text contrast below WCAG AA:\n{}",
        contrast_report.join("\n")
    );
    s.shot("new-device-restored")?;

    // --- Progress a person can read: a backup of a larger database shows its phases and bytes ----
    s.click_css("#restore-close")?;
    s.wait_gone("#restore-dialog", SHORT)?;
    s.click_css("#backups-back")?;
    s.wait_for("#home", LONG)?;
    rt.block_on(async {
        let bulk = db.collection::<Document>("bulk");
        for chunk in 0..40i64 {
            let docs: Vec<Document> = (0..1000i64)
                .map(|i| {
                    let n = chunk * 1000 + i;
                    doc! { "_id": n, "text": format!("{:0>1200}", format!("{:x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15u64 as i64))) }
                })
                .collect();
            bulk.insert_many(docs).await?;
        }
        Ok::<_, mongodb::error::Error>(())
    })
    .map_err(|e| e.to_string())?;
    // Every line the progress shows, however short it stays on screen.
    s.execute(
        "window.__progressSeen = []; new MutationObserver(() => { const t = document.querySelector('#progress-text')?.textContent; if (t && window.__progressSeen.at(-1) !== t) window.__progressSeen.push(t); }).observe(document.body, { subtree: true, childList: true, characterData: true });",
        vec![],
    )?;
    s.click_css("#backup-now")?;
    s.wait_until("the larger backup", LONG, |s| {
        let t = s.text_of("#last-backup-detail").ok()?;
        t.contains("45,522 documents").then_some(())
    })?;
    let seen: Vec<String> =
        serde_json::from_value(s.execute("return window.__progressSeen;", vec![])?)
            .map_err(|e| e.to_string())?;
    let phases: std::collections::BTreeSet<&str> =
        seen.iter().filter_map(|l| l.split(" · ").next()).collect();
    assert!(phases.len() >= 2, "the phases shown: {seen:?}");
    assert!(
        seen.iter().any(|l| l.contains(" MB") || l.contains(" KB")),
        "a byte count was shown: {seen:?}"
    );
    println!("driveback-e2e: progress shown during a 40 MB backup: {seen:?}");
    println!(
        "driveback-e2e: clicks (typing excluded, {GOOGLE_CONSENT_CLICKS} of them on Google's consent page): first launch to a first backup on Drive: {first_backup_clicks}; fresh install on a new device to a restore started: {restore_clicks}"
    );

    println!(
        "driveback-e2e: cold start to first paint: {startup_ms} ms in the app (process start to the UI's first frame); {} ms from the WebDriver session request to the first screen",
        to_first_screen.as_millis()
    );
    println!(
        "driveback-e2e: idle memory (RSS): {:.1} MiB the app process, {:.1} MiB with its WebKit processes",
        app_rss as f64 / 1024.0,
        all_rss as f64 / 1024.0
    );
    rt.block_on(async { db.drop().await }).ok();
    Ok(())
}
