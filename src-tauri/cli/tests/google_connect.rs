//! "Connect Google Drive" end to end: the real `driveback` CLI against the real `drive-emulator`
//! binary (Google's OAuth and Drive paths) and the real Secret Service.
//!
//! The "browser" is `DRIVEBACK_BROWSER`, a tiny script that records the URL it is asked to open;
//! the test then follows that URL like a browser would (consent, then the loopback redirect).
//! Tests that need the OS keyring skip without one unless `DRIVEBACK_REQUIRE_KEYRING=1`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use driveback_engine::auth::{
    AccessTokens, Account, AccountFile, AuthError, Browser, ConnectEvent, ConnectOptions,
    DriveScope, GoogleAuth, GoogleEndpoints, OAuthClient, TokenError, ACCOUNT_FILE, DEMO_CLIENT_ID,
};
use driveback_engine::secrets::{self, KeyringSecretStore, MemorySecretStore, SecretStore};
use driveback_testkit::emulator::Emulator;

mod common;
use common::{files_under, keyring_or_skip};
use secrecy::{ExposeSecret, SecretString};

const EMAIL: &str = "demo.user@example.com";

/// One test's world: an emulator, a config dir, a keyring service, a browser stub.
struct Env {
    emu: Emulator,
    dir: tempfile::TempDir,
    service: String,
    client: Option<(String, String)>,
    log: &'static str,
    extra_env: Vec<(String, String)>,
    /// Every URL the browser stub was asked to open.
    opened: std::cell::RefCell<Vec<String>>,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl From<std::process::Output> for Out {
    fn from(o: std::process::Output) -> Self {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Env {
    fn new(emu_args: &[&str]) -> Env {
        let emu = Emulator::start(&[&["--auto-consent"], emu_args].concat());
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("browser.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s' \"$1\" > '{d}/url.tmp' && mv '{d}/url.tmp' '{d}/url'\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        Env {
            emu,
            dir,
            service: format!("driveback-test-google-{:016x}", rand_u64()),
            client: None,
            log: "warn",
            extra_env: vec![],
            opened: Default::default(),
        }
    }

    fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn account_file(&self) -> AccountFile {
        AccountFile::in_dir(&self.config_dir())
    }

    fn account(&self) -> Option<Account> {
        self.account_file().load().unwrap()
    }

    fn url_file(&self) -> PathBuf {
        self.dir.path().join("url")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_driveback"));
        c.args(args)
            .env("DRIVEBACK_GOOGLE_BASE_URL", self.emu.base_url())
            .env("DRIVEBACK_CONFIG_DIR", self.config_dir())
            .env("DRIVEBACK_KEYRING_SERVICE", &self.service)
            .env("DRIVEBACK_BROWSER", self.dir.path().join("browser.sh"))
            .env("DRIVEBACK_LOG", self.log)
            .env_remove("DRIVEBACK_GOOGLE_CLIENT_ID")
            .env_remove("DRIVEBACK_GOOGLE_CLIENT_SECRET")
            .stdin(Stdio::null());
        if let Some((id, secret)) = &self.client {
            c.env("DRIVEBACK_GOOGLE_CLIENT_ID", id)
                .env("DRIVEBACK_GOOGLE_CLIENT_SECRET", secret);
        }
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Out {
        self.cmd(args).output().expect("run driveback").into()
    }

    /// `driveback connect ARGS --timeout 60`, running.
    fn spawn_connect(&self, args: &[&str]) -> Child {
        let mut all = vec!["connect", "--timeout", "60"];
        all.extend(args);
        self.cmd(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start driveback connect")
    }

    /// The URL the browser stub was asked to open.
    fn opened_url(&self, child: &mut Child) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(u) = std::fs::read_to_string(self.url_file()) {
                std::fs::remove_file(self.url_file()).unwrap();
                self.opened.borrow_mut().push(u.clone());
                return u;
            }
            if let Some(status) = child.try_wait().unwrap() {
                let out: Out = finish(child);
                panic!("connect ended ({status}) before opening a browser\n{out}");
            }
            assert!(
                Instant::now() < deadline,
                "no browser was opened within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The whole connect, with the browser stub and the test following the URL.
    fn connect(&self, args: &[&str]) -> Out {
        let mut child = self.spawn_connect(args);
        let url = self.opened_url(&mut child);
        let (status, page) = follow(&url);
        let out = finish(&mut child);
        assert_eq!(status, 200, "{page}\n{out}");
        out
    }

    fn connect_ok(&self, args: &[&str]) -> Out {
        let out = self.connect(args);
        assert_eq!(out.code, 0, "{out}");
        assert_eq!(out.stdout.trim(), format!("Connected as {EMAIL}"), "{out}");
        out
    }

    fn keyring(&self) -> KeyringSecretStore {
        KeyringSecretStore::with_service(&self.service)
    }

    fn refresh_token(&self) -> Option<String> {
        self.keyring()
            .get(secrets::GOOGLE_REFRESH_TOKEN)
            .unwrap()
            .map(|s| s.expose_secret().to_string())
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
            let _ = self.keyring().delete(secrets::GOOGLE_REFRESH_TOKEN);
            let _ = self.keyring().delete(secrets::GOOGLE_CLIENT_SECRET);
        }
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

fn finish(child: &mut Child) -> Out {
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stdout = String::new();
    let mut stderr = String::new();
    use std::io::Read;
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut stdout).unwrap();
    }
    if let Some(mut s) = child.stderr.take() {
        s.read_to_string(&mut stderr).unwrap();
    }
    Out {
        code: child.wait().unwrap().code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// GET a URL as a browser would, following redirects: (final status, body).
fn follow(url: &str) -> (u16, String) {
    let r = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("following {url}: {e}"));
    let status = r.status().as_u16();
    (status, r.text().unwrap_or_default())
}

fn get(url: &str) -> Result<(u16, String), reqwest::Error> {
    let r = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(url)
        .send()?;
    let status = r.status().as_u16();
    Ok((status, r.text().unwrap_or_default()))
}

fn query(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// The value `secret-tool` finds for the refresh token: proof it is in the Secret Service.
fn secret_tool_lookup(service: &str) -> Option<String> {
    let out = Command::new("secret-tool")
        .args([
            "lookup",
            "service",
            service,
            "username",
            secrets::GOOGLE_REFRESH_TOKEN,
        ])
        .output()
        .expect("run secret-tool");
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !v.is_empty()).then_some(v)
}

#[test]
fn connect_whoami_disconnect_end_to_end() {
    if !keyring_or_skip() {
        return;
    }
    let env = Env::new(&[]);
    let out = env.connect_ok(&[]);
    assert!(out.stderr.contains("Opening your browser"), "{out}");
    let url = env.opened.borrow()[0].clone();
    assert!(
        out.stderr.contains(&url),
        "the address is printed too: {out}"
    );
    assert!(url.starts_with(&format!("{}/o/oauth2/v2/auth?", env.emu.base_url())));
    let q = query(&url);
    assert_eq!(q["client_id"], DEMO_CLIENT_ID);
    assert!(q["redirect_uri"].starts_with("http://127.0.0.1:"), "{url}");
    assert_eq!(
        q["scope"],
        "https://www.googleapis.com/auth/drive.appdata openid email"
    );
    assert_eq!(q["access_type"], "offline");
    assert_eq!(q["prompt"], "consent");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["state"].len() >= 16);

    // What the browser was sent to: Google's authorize endpoint with PKCE and offline access.
    let state = env.emu.state();
    assert_eq!(state["grants"]["active"], 1, "{state}");
    assert_eq!(env.emu.requests("token"), 1);

    // The refresh token is in the Secret Service, and the account record holds no secret.
    let rt = env.refresh_token().expect("refresh token in the keyring");
    assert!(rt.starts_with("1//"), "an emulator refresh token");
    assert_eq!(
        secret_tool_lookup(&env.service).as_deref(),
        Some(rt.as_str())
    );
    let account = env.account().expect("account record");
    assert_eq!(account.email, EMAIL);
    assert_eq!(account.display_name.as_deref(), Some("Demo User"));
    assert_eq!(account.scope, DriveScope::AppData);
    assert!(!account.reconnect_needed);
    let raw = std::fs::read_to_string(env.config_dir().join(ACCOUNT_FILE)).unwrap();
    assert!(!raw.contains(&rt));

    let who = env.run(&["whoami"]);
    assert_eq!(who.code, 0, "{who}");
    assert!(
        who.stdout.contains(&format!("Email:         {EMAIL}")),
        "{who}"
    );
    assert!(who.stdout.contains("Demo User"), "{who}");
    assert!(who.stdout.contains("GiB"), "{who}");
    assert!(who.stdout.contains("appdata"), "{who}");

    let who = env.run(&["whoami", "--json"]);
    assert_eq!(who.code, 0, "{who}");
    let v: serde_json::Value = serde_json::from_str(&who.stdout).unwrap();
    assert_eq!(v["email"], EMAIL);
    assert_eq!(v["display_name"], "Demo User");
    assert_eq!(v["scope"], "appdata");
    assert_eq!(v["reconnect_needed"], false);
    assert_eq!(v["quota"]["used"], 0);
    assert_eq!(v["quota"]["limit"], 15u64 << 30);

    let bye = env.run(&["disconnect"]);
    assert_eq!(bye.code, 0, "{bye}");
    assert!(
        bye.stdout.contains("Google revoked Driveback's access"),
        "{bye}"
    );
    let state = env.emu.state();
    assert_eq!(env.emu.requests("revoke"), 1);
    assert_eq!(state["grants"]["active"], 0, "{state}");
    assert_eq!(state["grants"]["revoked"], 1, "{state}");
    assert_eq!(env.refresh_token(), None);
    assert_eq!(secret_tool_lookup(&env.service), None);
    assert!(env.account().is_none());

    let who = env.run(&["whoami"]);
    assert_eq!(who.code, 1, "{who}");
    assert!(who.stderr.contains("not connected"), "{who}");
    let again = env.run(&["disconnect"]);
    assert_eq!(again.code, 0, "{again}");
    assert!(again.stdout.contains("not connected"), "{again}");
}

#[test]
fn expired_access_token_is_refreshed_silently() {
    if !keyring_or_skip() {
        return;
    }
    let env = Env::new(&[]);
    env.connect_ok(&[]);
    assert_eq!(env.emu.requests("token"), 1);
    env.emu.control("expire-tokens", None);
    let who = env.run(&["whoami"]);
    assert_eq!(who.code, 0, "{who}");
    assert!(who.stdout.contains(EMAIL), "{who}");
    assert_eq!(env.emu.requests("token"), 2, "one refresh");
    // Time passing at Google expires tokens too.
    env.emu
        .control("advance-clock", Some(r#"{"seconds": 7200}"#));
    let who = env.run(&["whoami"]);
    assert_eq!(who.code, 0, "{who}");
    assert_eq!(env.emu.requests("token"), 3);
    assert!(!env.account().unwrap().reconnect_needed);
}

#[test]
fn revoked_grant_means_reconnect_needed_until_connected_again() {
    if !keyring_or_skip() {
        return;
    }
    let env = Env::new(&[]);
    env.connect_ok(&[]);
    env.emu.control("revoke-all", None);

    let who = env.run(&["whoami"]);
    assert_eq!(who.code, 4, "{who}");
    assert!(who.stdout.contains("RECONNECT NEEDED"), "{who}");
    assert!(who.stderr.contains("run `driveback connect`"), "{who}");
    let account = env.account().unwrap();
    assert!(account.reconnect_needed);
    assert!(
        account
            .reconnect_reason
            .as_deref()
            .unwrap()
            .contains("invalid_grant"),
        "{account:?}"
    );
    let token_calls = env.emu.requests("token");

    // The state is remembered: no more calls to Google until the user connects again.
    let who = env.run(&["whoami", "--json"]);
    assert_eq!(who.code, 4, "{who}");
    let v: serde_json::Value = serde_json::from_str(&who.stdout).unwrap();
    assert_eq!(v["reconnect_needed"], true);
    assert_eq!(v["email"], EMAIL);
    assert_eq!(env.emu.requests("token"), token_calls);

    env.connect_ok(&[]);
    assert!(!env.account().unwrap().reconnect_needed);
    let who = env.run(&["whoami"]);
    assert_eq!(who.code, 0, "{who}");

    // Disconnecting a grant Google already dropped still cleans up here.
    env.emu.control("revoke-all", None);
    let bye = env.run(&["disconnect"]);
    assert_eq!(bye.code, 0, "{bye}");
    assert!(bye.stdout.contains("already revoked"), "{bye}");
    assert_eq!(env.refresh_token(), None);
    assert!(env.account().is_none());
}

#[test]
fn user_who_declines_gets_a_clear_error_and_nothing_is_stored() {
    if !keyring_or_skip() {
        return;
    }
    let env = Env::new(&[]);
    env.emu.control("deny-next-consent", None);
    let out = env.connect(&[]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("you declined access"), "{out}");
    assert_eq!(env.emu.requests("token"), 0);
    assert_eq!(env.refresh_token(), None);
    assert!(files_under(&env.config_dir()).is_empty());
}

#[test]
fn forged_state_and_wrong_path_are_refused_and_the_flow_completes() {
    if !keyring_or_skip() {
        return;
    }
    let env = Env::new(&[]);
    // --no-browser: the address is printed, and something else (here the test) follows it.
    let mut child = env.spawn_connect(&["--no-browser"]);
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("connect --no-browser prints the address");
        if let Some(u) = line.trim().strip_prefix("http") {
            break format!("http{u}");
        }
    };
    let redirect = query(&url)["redirect_uri"].clone();
    assert!(redirect.starts_with("http://127.0.0.1:"), "{redirect}");
    let origin = {
        let u = url::Url::parse(&redirect).unwrap();
        format!("http://127.0.0.1:{}", u.port().unwrap())
    };

    let (status, _) = get(&format!("{origin}/favicon.ico")).unwrap();
    assert_eq!(status, 404);
    let (status, _) = get(&format!("{origin}/other?state=x&code=y")).unwrap();
    assert_eq!(status, 404);
    let (status, page) = get(&format!("{redirect}?state=forged&code=4/0Abfake")).unwrap();
    assert_eq!(status, 400, "{page}");
    let (status, _) = get(&format!("{redirect}?error=access_denied&state=forged")).unwrap();
    assert_eq!(status, 400);
    let (status, page) = follow(&url);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("You can close this tab"), "{page}");

    let mut out = finish(&mut child);
    out.stderr = reader.join().unwrap();
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.stdout.trim(), format!("Connected as {EMAIL}"));
    assert!(out.stderr.contains("refused an answer"), "{out}");
    assert!(!env.url_file().exists(), "--no-browser opened no browser");
    assert!(env.refresh_token().is_some());
    // The listener is gone: the same answer cannot be delivered twice.
    assert!(get(&format!("{redirect}?state=x&code=y")).is_err());
}

#[test]
fn token_endpoint_down_is_a_clear_error() {
    if !keyring_or_skip() {
        return;
    }
    let mut env = Env::new(&[]);
    // During connect: the code exchange fails, nothing is stored.
    env.emu.control(
        "faults",
        Some(r#"{"route": "token", "status": 503, "count": 1}"#),
    );
    let out = env.connect(&[]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("Google could not be reached"), "{out}");
    assert!(out.stderr.contains("temporarily_unavailable"), "{out}");
    assert_eq!(env.refresh_token(), None);
    assert!(env.account().is_none());

    // Connected, then the token endpoint fails on every try: not a reconnect, just unavailable.
    env.connect_ok(&[]);
    env.emu.control(
        "faults",
        Some(r#"{"route": "token", "status": 500, "count": 10}"#),
    );
    let who = env.run(&["whoami"]);
    assert_eq!(who.code, 1, "{who}");
    assert!(
        who.stderr.contains("could not refresh the Google sign-in"),
        "{who}"
    );
    assert!(!env.account().unwrap().reconnect_needed);
    env.emu.request("DELETE", "/_emulator/faults", None);
    let who = env.run(&["whoami"]);
    assert_eq!(who.code, 0, "{who}");

    // Google unreachable altogether.
    env.emu.stop();
    let who = env.run(&["whoami"]);
    assert_eq!(who.code, 1, "{who}");
    assert!(who.stderr.contains("could not reach Google"), "{who}");
    assert!(!env.account().unwrap().reconnect_needed);
    assert!(env.refresh_token().is_some(), "the sign-in is kept");
    // Disconnect still forgets the sign-in here, and says the revocation failed.
    let bye = env.run(&["disconnect"]);
    assert_eq!(bye.code, 0, "{bye}");
    assert!(bye.stderr.contains("could not be told to revoke"), "{bye}");
    assert!(
        bye.stderr.contains("myaccount.google.com/permissions"),
        "{bye}"
    );
    assert_eq!(env.refresh_token(), None);
    assert!(env.account().is_none());
}

#[cfg(target_os = "linux")]
#[test]
fn keyring_unavailable_is_a_clear_error_and_nothing_is_written() {
    let mut env = Env::new(&[]);
    let nowhere = env.dir.path().join("no-such-bus");
    env.extra_env.push((
        "DBUS_SESSION_BUS_ADDRESS".into(),
        format!("unix:path={}", nowhere.display()),
    ));
    let out = env.run(&["connect", "--timeout", "30"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("OS keyring is not available"), "{out}");
    assert!(!env.url_file().exists(), "no consent page was opened");
    assert_eq!(env.emu.requests("authorize"), 0);
    assert_eq!(env.emu.requests("token"), 0);
    assert!(files_under(&env.config_dir()).is_empty());
    assert_eq!(
        files_under(env.dir.path()),
        vec![env.dir.path().join("browser.sh")],
        "no file was written anywhere"
    );
    for cmd in ["whoami", "disconnect"] {
        let out = env.run(&[cmd]);
        assert_eq!(out.code, 1, "{cmd}: {out}");
        assert!(
            out.stderr.contains("OS keyring is not available"),
            "{cmd}: {out}"
        );
    }
}

#[test]
fn no_secret_is_printed_logged_or_written() {
    if !keyring_or_skip() {
        return;
    }
    let client_id = format!("{:016x}.apps.googleusercontent.com", rand_u64());
    let client_secret = format!("GOCSPX-{:016x}{:016x}", rand_u64(), rand_u64());
    let mut env = Env::new(&["--client-id", &client_id, "--client-secret", &client_secret]);
    env.client = Some((client_id.clone(), client_secret.clone()));
    env.log = "debug";

    let mut printed = String::new();
    let record = |printed: &mut String, o: &Out| {
        printed.push_str(&o.stdout);
        printed.push_str(&o.stderr);
    };
    let out = env.connect_ok(&["--scope", "file"]);
    assert!(out.stderr.contains("DEBUG"), "debug logging is on: {out}");
    record(&mut printed, &out);
    let rt = env.refresh_token().expect("connected");
    let url = env.opened.borrow()[0].clone();
    let q = query(&url);
    assert_eq!(q["client_id"], client_id);
    assert_eq!(
        q["scope"],
        "https://www.googleapis.com/auth/drive.file openid email"
    );
    assert_eq!(q["access_type"], "offline");
    assert_eq!(q["prompt"], "consent");
    assert_eq!(q["code_challenge_method"], "S256");
    printed.push_str(&url);
    for args in [&["whoami"][..], &["whoami", "--json"]] {
        let o = env.run(args);
        assert_eq!(o.code, 0, "{o}");
        record(&mut printed, &o);
    }
    let v: serde_json::Value =
        serde_json::from_str(&env.run(&["whoami", "--json"]).stdout).unwrap();
    assert_eq!(v["scope"], "file");
    assert!(v["granted_scopes"]
        .as_str()
        .unwrap()
        .contains("auth/drive.file"));
    env.emu.control("expire-tokens", None);
    let o = env.run(&["whoami"]);
    assert_eq!(o.code, 0, "{o}");
    record(&mut printed, &o);
    let mut files: Vec<(PathBuf, String)> = files_under(&env.config_dir())
        .into_iter()
        .map(|p| {
            let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
            (p, text)
        })
        .collect();
    assert_eq!(files.len(), 1, "only the account record: {files:?}");
    env.emu.control("revoke-all", None);
    let o = env.run(&["whoami"]);
    assert_eq!(o.code, 4, "{o}");
    record(&mut printed, &o);
    let o = env.run(&["disconnect"]);
    assert_eq!(o.code, 0, "{o}");
    record(&mut printed, &o);
    files.extend(files_under(env.dir.path()).into_iter().map(|p| {
        let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
        (p, text)
    }));

    // The emulator's access tokens all start "ya29." and its refresh tokens "1//", as Google's.
    let forbidden = [rt.as_str(), "1//", "ya29.", client_secret.as_str()];
    for f in forbidden {
        assert!(!printed.contains(f), "{f:?} was printed:\n{printed}");
        for (p, text) in &files {
            assert!(!text.contains(f), "{f:?} is in {}", p.display());
        }
    }
    // The browser was given the client id, never the secret.
    assert!(printed.contains(&client_id));
}

/// The session the Drive store uses, in process: a refresh shortly before expiry, one refresh
/// after a 401, and "reconnect needed" once the grant is revoked. No keyring needed.
#[test]
fn session_refreshes_before_expiry_and_after_a_401() {
    let emu = Emulator::start(&["--auto-consent", "--token-lifetime-secs", "4"]);
    let dir = tempfile::tempdir().unwrap();
    let secrets_store = Arc::new(MemorySecretStore::new());
    let auth = GoogleAuth::new(
        GoogleEndpoints::with_base(emu.base_url()),
        OAuthClient::new(DEMO_CLIENT_ID, SecretString::from("driveback-demo-secret")),
        secrets_store.clone(),
        AccountFile::in_dir(dir.path()),
    )
    .unwrap();
    let events = Arc::new(std::sync::Mutex::new(vec![]));
    let seen = events.clone();
    let connected = auth
        .connect(ConnectOptions {
            scope: DriveScope::AppData,
            browser: Browser::None,
            timeout: Duration::from_secs(30),
            cancel: None,
            on_event: Box::new(move |e| {
                if let ConnectEvent::AuthorizeUrl(u) = &e {
                    let u = u.clone();
                    std::thread::spawn(move || follow(&u));
                }
                seen.lock().unwrap().push(e);
            }),
        })
        .unwrap();
    assert_eq!(connected.account.email, EMAIL);
    assert_eq!(connected.about.quota_limit, Some(15 << 30));
    assert!(matches!(
        events.lock().unwrap().last(),
        Some(ConnectEvent::Exchanging)
    ));
    assert!(secrets_store
        .get(secrets::GOOGLE_REFRESH_TOKEN)
        .unwrap()
        .is_some());

    let s = connected.session.clone();
    let t1 = s.access_token().unwrap().expose_secret().to_string();
    assert_eq!(auth.about(s.as_ref()).unwrap().email, EMAIL);
    assert_eq!(s.refresh_count(), 0, "the token from the exchange is used");
    assert_eq!(emu.requests("token"), 1);

    // Google refuses the token (401): one refresh, then the call succeeds.
    emu.control("expire-tokens", None);
    assert_eq!(auth.about(s.as_ref()).unwrap().email, EMAIL);
    assert_eq!(s.refresh_count(), 1);
    let t2 = s.access_token().unwrap().expose_secret().to_string();
    assert_ne!(t1, t2);
    assert_eq!(emu.requests("token"), 2);

    // A 4 s token is refreshed 2 s before it expires, without a 401 first.
    std::thread::sleep(Duration::from_millis(2200));
    let t3 = s.access_token().unwrap().expose_secret().to_string();
    assert_ne!(t2, t3);
    assert_eq!(s.refresh_count(), 2);
    let abouts = emu.requests("about");
    assert_eq!(auth.about(s.as_ref()).unwrap().email, EMAIL);
    assert_eq!(emu.requests("about"), abouts + 1, "no 401 and retry");

    // A session from the keyring works as well (what the Drive store gets).
    let fresh: Arc<dyn AccessTokens> = auth.session().unwrap();
    assert_eq!(auth.about(fresh.as_ref()).unwrap().email, EMAIL);

    // The grant is revoked: the next refresh says "reconnect", and the record remembers it.
    emu.control("revoke-all", None);
    s.invalidate();
    let e = s.access_token().unwrap_err();
    assert!(matches!(e, TokenError::ReconnectNeeded(_)), "{e}");
    assert!(auth.account().unwrap().unwrap().reconnect_needed);
    let e = auth.session().unwrap_err();
    assert_eq!(e.code(), "reconnect_needed", "{e}");
    assert!(matches!(
        e,
        AuthError::Token(TokenError::ReconnectNeeded(_))
    ));
}

/// The product's main path: connect Google Drive, back up to it, list, restore from it; and a
/// full Drive refused with its own words, leaving nothing behind.
#[test]
fn backup_to_google_drive_and_restore_from_it() {
    if !keyring_or_skip() {
        return;
    }
    let mut env = Env::new(&[]);
    env.connect_ok(&[]);
    let data_dir = env.dir.path().join("data");
    env.extra_env = vec![
        ("DRIVEBACK_PASSPHRASE".into(), "drive passphrase".into()),
        ("DRIVEBACK_DATA_DIR".into(), data_dir.display().to_string()),
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = driveback_testkit::mongo();
    let (db, target) = (server.fresh_db("drive_src"), server.fresh_db("drive_dst"));
    let client = rt.block_on(server.client());
    rt.block_on(async {
        let docs: Vec<bson::Document> = (0..500)
            .map(|i| bson::doc! { "_id": i, "text": format!("entry {i}") })
            .collect();
        client
            .database(&db)
            .collection("entries")
            .insert_many(docs)
            .await
            .unwrap();
    });

    let out = env.run(&[
        "backup",
        "--mongo-uri",
        server.uri(),
        "--db",
        &db,
        "--dest",
        "drive",
        "--json",
    ]);
    assert_eq!(out.code, 0, "{out}");
    let backup: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let out = env.run(&["list", "--dest", "drive", "--json"]);
    assert_eq!(out.code, 0, "{out}");
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(list["backups"][0]["id"], backup["id"]);
    assert_eq!(list["backups"][0]["documents"], 500);
    // The file and the destination's key files are in the hidden app folder.
    let state = env.emu.state();
    assert!(state.to_string().contains("driveback-key.pub"), "{state}");

    let restore_latest = |env: &Env, target: &str| {
        env.run(&[
            "restore",
            "--backup",
            "latest",
            "--dest",
            "drive",
            "--mongo-uri",
            server.uri(),
            "--db",
            target,
            "--yes",
        ])
    };
    let out = restore_latest(&env, &target);
    assert_eq!(out.code, 0, "{out}");
    rt.block_on(async {
        let count = client
            .database(&target)
            .collection::<bson::Document>("entries")
            .count_documents(bson::doc! {})
            .await
            .unwrap();
        assert_eq!(count, 500);
    });

    // Google Drive's layout is incremental by default: the next day's backup holds only what
    // changed, costs a few dozen requests, and restores the whole database.
    assert_eq!(backup["chain"]["kind"], "full", "{backup}");
    rt.block_on(async {
        let entries = client.database(&db).collection::<bson::Document>("entries");
        entries
            .update_many(
                bson::doc! { "_id": { "$lt": 5 } },
                bson::doc! { "$set": { "text": "changed" } },
            )
            .await
            .unwrap();
        entries.delete_one(bson::doc! { "_id": 499 }).await.unwrap();
    });
    let requests = |env: &Env| -> u64 {
        env.emu.state()["requests"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum()
    };
    let before = requests(&env);
    let out = env.run(&[
        "backup",
        "--mongo-uri",
        server.uri(),
        "--db",
        &db,
        "--dest",
        "drive",
        "--json",
    ]);
    assert_eq!(out.code, 0, "{out}");
    let day = requests(&env) - before;
    let increment: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(increment["chain"]["kind"], "increment", "{increment}");
    assert_eq!(
        (
            increment["chain"]["changed"].as_u64(),
            increment["chain"]["deleted"].as_u64()
        ),
        (Some(5), Some(1))
    );
    println!("requests for one daily incremental backup to Google Drive: {day}");
    assert!(
        day <= 36,
        "a daily backup takes a few dozen requests, not {day}"
    );
    let target2 = server.fresh_db("drive_dst2");
    let out = restore_latest(&env, &target2);
    assert_eq!(out.code, 0, "{out}");
    rt.block_on(async {
        let restored = client
            .database(&target2)
            .collection::<bson::Document>("entries");
        assert_eq!(restored.count_documents(bson::doc! {}).await.unwrap(), 499);
        assert_eq!(
            restored
                .count_documents(bson::doc! { "text": "changed" })
                .await
                .unwrap(),
            5
        );
    });

    // `driveback status` looks at the Drive's free space (plenty in the emulator by default).
    let status = |env: &Env| -> serde_json::Value {
        let out = env.run(&["status", "--dest", "drive", "--json"]);
        assert_eq!(out.code, 0, "{out}");
        serde_json::from_str(&out.stdout).unwrap()
    };
    let check = |status: &serde_json::Value, name: &str| -> serde_json::Value {
        status["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} check in {status}"))
    };
    let st = status(&env);
    assert_eq!(check(&st, "free_space")["status"], "healthy", "{st}");
    assert_eq!(check(&st, "destination")["status"], "healthy", "{st}");

    // A full Drive: the backup fails with the Drive's own numbers and nothing new is listed.
    env.emu.control("quota", Some(r#"{"limit": 2000}"#));
    let out = env.run(&[
        "backup",
        "--mongo-uri",
        server.uri(),
        "--db",
        &db,
        "--dest",
        "drive",
    ]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("Your Google Drive is full"), "{out}");
    assert_eq!(
        out.stderr
            .lines()
            .filter(|l| l.starts_with("driveback: error"))
            .count(),
        1,
        "{out}"
    );
    let out = env.run(&["list", "--dest", "drive", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(list["backups"].as_array().unwrap().len(), 2);
    // ... and the status says the next backup does not fit.
    let st = status(&env);
    let free = check(&st, "free_space");
    assert_eq!(free["status"], "critical", "{st}");
    assert!(
        free["message"].as_str().unwrap().contains("will not fit"),
        "{st}"
    );
    assert_eq!(st["status"], "critical", "{st}");

    // A revoked grant: "reconnect" in plain words.
    env.emu.control("revoke-all", None);
    env.emu.control("expire-tokens", None);
    let out = env.run(&["list", "--dest", "drive"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.to_lowercase().contains("reconnect"), "{out}");
    let st = status(&env);
    let dest = check(&st, "destination");
    assert_eq!(dest["status"], "critical", "{st}");
    let words = dest["message"].as_str().unwrap();
    assert!(
        words.starts_with("Google Drive needs reconnecting: "),
        "{st}"
    );
    assert_eq!(words.matches("reconnecting").count(), 1, "{st}");
}

// --- The OAuth client: set up without environment variables ------------------------------------

/// A Desktop app client as Google Cloud Console makes one: (id, secret).
fn new_client() -> (String, String) {
    (
        format!(
            "{:012}-{:016x}.apps.googleusercontent.com",
            rand_u64() % 1_000_000_000_000,
            rand_u64()
        ),
        format!("GOCSPX-{:016x}{:08x}", rand_u64(), rand_u64() as u32),
    )
}

/// The file "Download JSON" gives for a client of `kind` ("installed" is a Desktop app).
fn client_file_json(kind: &str, id: &str, secret: &str) -> String {
    serde_json::json!({
        kind: {
            "client_id": id,
            "project_id": "driveback-backups-123456",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token",
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_secret": secret,
            "redirect_uris": ["http://localhost"],
        }
    })
    .to_string()
}

impl Env {
    /// An emulator where `clients` are registered, as in Google Cloud Console.
    fn with_clients(clients: &[&(String, String)]) -> Env {
        let args: Vec<String> = clients
            .iter()
            .flat_map(|(id, secret)| ["--extra-client".to_string(), format!("{id}:{secret}")])
            .collect();
        Env::new(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    fn saved_secret(&self) -> Option<String> {
        self.keyring()
            .get(secrets::GOOGLE_CLIENT_SECRET)
            .unwrap()
            .map(|s| s.expose_secret().to_string())
    }

    fn saved_id(&self) -> String {
        let out = self.run(&["config", "get", "google.client_id"]);
        assert_eq!(out.code, 0, "{out}");
        out.stdout.trim().to_string()
    }

    /// `driveback ARGS` with `input` on standard input.
    fn run_with_input(&self, args: &[&str], input: &str) -> Out {
        use std::io::Write;
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap().into()
    }

    /// Every file under the config folder, as text.
    fn config_text(&self) -> String {
        files_under(&self.config_dir())
            .iter()
            .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned())
            .collect()
    }
}

fn error_lines(out: &Out) -> usize {
    out.stderr
        .lines()
        .filter(|l| l.starts_with("driveback: error"))
        .count()
}

#[test]
fn connect_with_a_client_file_saves_the_client_and_signs_in() {
    if !keyring_or_skip() {
        return;
    }
    let client = new_client();
    let (id, secret) = &client;
    let env = Env::with_clients(&[&client]);
    let file = env.write(
        "client_secret_desktop.json",
        &client_file_json("installed", id, secret),
    );
    let out = env.connect_ok(&["--client-file", &file]);
    assert!(
        out.stderr
            .contains(&format!("Saved the Google OAuth client {id}")),
        "{out}"
    );
    assert_eq!(query(&env.opened.borrow()[0])["client_id"], *id);
    assert!(env.refresh_token().is_some());

    // The ID is in the settings, the secret in the OS keyring and nowhere on disk or on screen.
    assert_eq!(env.saved_id(), *id);
    assert_eq!(env.saved_secret().as_deref(), Some(secret.as_str()));
    let on_disk = env.config_text();
    assert!(on_disk.contains(id.as_str()), "{on_disk}");
    assert!(
        !on_disk.contains(secret.as_str()),
        "the secret is not on disk"
    );
    assert!(!out.stderr.contains(secret.as_str()) && !out.stdout.contains(secret.as_str()));

    // Later commands use the saved client: a refresh with the demo client would be refused.
    env.emu.control("expire-tokens", None);
    let who = env.run(&["whoami"]);
    assert_eq!(who.code, 0, "{who}");
    assert!(who.stdout.contains(EMAIL), "{who}");
    assert_eq!(
        env.emu.requests("token"),
        2,
        "the exchange, then one refresh"
    );

    // Connecting again needs no file.
    let out = env.connect_ok(&[]);
    assert_eq!(query(&env.opened.borrow()[1])["client_id"], *id, "{out}");
}

#[test]
fn a_client_set_with_config_commands_is_used() {
    if !keyring_or_skip() {
        return;
    }
    let client = new_client();
    let (id, secret) = &client;
    let env = Env::with_clients(&[&client]);
    let out = env.run(&["config", "set", "google.client_id", id]);
    assert_eq!(out.code, 0, "{out}");
    // The ID alone is not a client: connect says what is missing, and opens nothing.
    let out = env.run(&["connect", "--timeout", "30"]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(error_lines(&out), 1, "{out}");
    assert!(
        out.stderr.contains("its secret is not in the OS keyring"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("config set-secret google.client_secret"),
        "{out}"
    );
    assert_eq!(env.emu.requests("authorize"), 0);

    let out = env.run_with_input(
        &["config", "set-secret", "google.client_secret"],
        &format!("{secret}\n"),
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout
            .contains("google.client_secret saved in the OS keyring"),
        "{out}"
    );
    assert!(out.stderr.contains(id.as_str()), "{out}");
    assert!(!out.stdout.contains(secret.as_str()) && !out.stderr.contains(secret.as_str()));
    assert_eq!(env.saved_secret().as_deref(), Some(secret.as_str()));
    env.connect_ok(&[]);
    assert_eq!(query(&env.opened.borrow()[0])["client_id"], *id);

    // A client ID that is not one is refused and the saved one stays.
    let out = env.run(&["config", "set", "google.client_id", "GOCSPX-not-an-id"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("ends in .apps.googleusercontent.com"),
        "{out}"
    );
    assert_eq!(env.saved_id(), *id);
}

#[test]
fn bad_client_files_are_refused_and_change_nothing() {
    if !keyring_or_skip() {
        return;
    }
    let client = new_client();
    let (id, secret) = &client;
    let env = Env::with_clients(&[&client]);
    let good = env.write("good.json", &client_file_json("installed", id, secret));
    let out = env.run(&[
        "connect",
        "--client-file",
        &good,
        "--no-browser",
        "--timeout",
        "1",
    ]);
    assert!(
        out.stderr.contains("Saved the Google OAuth client"),
        "{out}"
    );
    let before = env.config_text();

    let other = new_client();
    let no_secret = serde_json::json!({"installed": {"client_id": other.0}}).to_string();
    let cases: Vec<(String, &str)> = vec![
        (
            env.write("web.json", &client_file_json("web", &other.0, &other.1)),
            "This is a Web application client; create one of type Desktop app",
        ),
        (env.write("notes.txt", "client id: 123"), "it is not JSON"),
        (
            env.write(
                "sa.json",
                r#"{"type": "service_account", "client_email": "x@y"}"#,
            ),
            "not a Google OAuth client file",
        ),
        (
            env.write("nosecret.json", &no_secret),
            "has no client secret",
        ),
        (
            env.write(
                "badid.json",
                &client_file_json("installed", "12345", &other.1),
            ),
            "ends in .apps.googleusercontent.com",
        ),
        (env.write("big.json", &" ".repeat(200_000)), "too large"),
        (
            env.dir.path().join("missing.json").display().to_string(),
            "cannot read the client file",
        ),
    ];
    for (path, words) in &cases {
        let out = env.run(&["connect", "--client-file", path, "--timeout", "30"]);
        assert_eq!(out.code, 1, "{path}: {out}");
        assert_eq!(error_lines(&out), 1, "{path}: {out}");
        assert!(out.stderr.contains(words), "{path}: {out}");
        assert!(!out.stderr.contains(&other.1), "never the secret: {out}");
        assert!(
            !env.url_file().exists(),
            "{path}: no consent page was opened"
        );
    }
    assert_eq!(env.emu.requests("authorize"), 0);
    assert_eq!(env.config_text(), before, "nothing on disk changed");
    assert_eq!(env.saved_id(), *id);
    assert_eq!(env.saved_secret().as_deref(), Some(secret.as_str()));
}

#[test]
fn environment_variables_win_over_the_saved_client() {
    if !keyring_or_skip() {
        return;
    }
    let saved = new_client();
    let from_env = new_client();
    let mut env = Env::with_clients(&[&saved, &from_env]);
    env.client = Some(from_env.clone());
    let file = env.write(
        "client.json",
        &client_file_json("installed", &saved.0, &saved.1),
    );
    let out = env.connect_ok(&["--client-file", &file]);
    assert!(
        out.stderr.contains("are used instead of the saved client"),
        "{out}"
    );
    assert_eq!(query(&env.opened.borrow()[0])["client_id"], from_env.0);
    assert_eq!(env.saved_id(), saved.0, "the file's client is still saved");
    // Without the variables, the saved client is used again.
    env.client = None;
    env.run(&["disconnect"]);
    env.connect_ok(&[]);
    assert_eq!(query(&env.opened.borrow()[1])["client_id"], saved.0);
}

#[test]
fn without_any_client_connect_says_how_to_set_one_up() {
    let env = Env::new(&[]);
    let out: Out = env
        .cmd(&["connect", "--timeout", "30"])
        .env_remove("DRIVEBACK_GOOGLE_BASE_URL")
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(error_lines(&out), 1, "{out}");
    assert!(
        out.stderr.contains("no Google OAuth client is set up"),
        "{out}"
    );
    assert!(out.stderr.contains("Desktop app"), "{out}");
    assert!(
        out.stderr.contains("driveback connect --client-file PATH"),
        "{out}"
    );
    assert!(!env.url_file().exists());
    // The emulator without its demo client is a fresh install's Google.
    let out: Out = env
        .cmd(&["connect", "--timeout", "30"])
        .env("DRIVEBACK_GOOGLE_DEMO_CLIENT", "off")
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("no Google OAuth client is set up"),
        "{out}"
    );
    assert_eq!(env.emu.requests("authorize"), 0);
}

/// Google's granular consent: the user unticks the Drive permission. Nothing half-connected
/// remains: the grant is revoked at Google, no token is kept, no account is recorded.
#[test]
fn unticked_drive_permission_leaves_nothing_connected() {
    if !keyring_or_skip() {
        return;
    }
    let env = Env::new(&[]);
    env.emu
        .control("grant-only", Some(r#"{"scopes": ["openid", "email"]}"#));
    let out = env.connect(&[]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(error_lines(&out), 1, "{out}");
    assert!(
        out.stderr
            .contains("you did not allow Driveback to use Google Drive"),
        "{out}"
    );
    assert!(out.stderr.contains("connect again"), "{out}");
    assert_eq!(env.emu.requests("token"), 1, "the code was exchanged");
    let state = env.emu.state();
    assert_eq!(state["grants"]["active"], 0, "{state}");
    assert_eq!(
        state["grants"]["revoked"], 1,
        "the unused grant is revoked: {state}"
    );
    assert_eq!(env.refresh_token(), None);
    assert_eq!(secret_tool_lookup(&env.service), None);
    assert!(env.account().is_none());
    assert!(files_under(&env.config_dir()).is_empty());
    let who = env.run(&["whoami"]);
    assert_eq!(who.code, 1, "{who}");
    assert!(who.stderr.contains("not connected"), "{who}");

    // Connect again, leaving the permission ticked: connected.
    env.connect_ok(&[]);
    assert!(env.refresh_token().is_some());
}
