//! Helpers for tests against the Google emulator: a signed-in account (the emulator's OAuth
//! endpoints driven directly: auto-consent, PKCE, refresh), direct Drive calls to set the scene,
//! the emulator's control API, and a TCP relay that can cut a connection mid-answer.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use driveback_engine::auth::{AccessTokens, GoogleEndpoints, TokenError};
use driveback_engine::store::drive::{DriveConfig, DriveLocation, DriveStore, RetryPolicy};
use driveback_testkit::emulator::Emulator;
use secrecy::SecretString;
use serde_json::{json, Value};

pub const CLIENT_ID: &str = "driveback-demo.apps.googleusercontent.com";
pub const CLIENT_SECRET: &str = "driveback-demo-secret";
pub const REDIRECT: &str = "http://127.0.0.1:53682/callback";
pub const SCOPE_APPDATA: &str = "https://www.googleapis.com/auth/drive.appdata";
pub const SCOPE_FILE: &str = "https://www.googleapis.com/auth/drive.file";
/// Small chunks so that tests make multi-chunk uploads cheaply.
pub const TEST_CHUNK: usize = 256 * 1024;

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// The emulator process plus helpers to talk to it.
pub struct Emu {
    proc: Option<Emulator>,
    attached: String,
    pub http: reqwest::blocking::Client,
}

impl Emu {
    pub fn start(extra_args: &[&str]) -> Emu {
        Emu {
            proc: Some(Emulator::start(&[&["--auto-consent"], extra_args].concat())),
            attached: String::new(),
            http: http(),
        }
    }

    pub fn base(&self) -> &str {
        match &self.proc {
            Some(p) => p.base_url(),
            None => &self.attached,
        }
    }

    /// An emulator another process started (a child test process uses its parent's).
    pub fn attach(base_url: &str) -> Emu {
        Emu {
            proc: None,
            attached: base_url.to_string(),
            http: http(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// `POST /_emulator/<path>` with a JSON body.
    pub fn control(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(self.url(&format!("/_emulator/{path}")))
            .json(&body)
            .send()
            .unwrap();
        let status = r.status();
        let text = r.text().unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    pub fn fault(&self, fault: Value) {
        self.control("faults", fault);
    }

    pub fn clear_faults(&self) {
        let r = self
            .http
            .delete(self.url("/_emulator/faults"))
            .send()
            .unwrap();
        assert!(r.status().is_success());
    }

    pub fn state(&self) -> Value {
        self.http
            .get(self.url("/_emulator/state"))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    /// Requests the emulator counted for a route (`list`, `upload_chunk`, `media`, ...).
    pub fn requests(&self, route: &str) -> u64 {
        self.state()["requests"][route].as_u64().unwrap_or(0)
    }

    pub fn upload_bytes_received(&self) -> u64 {
        self.state()["upload_bytes_received"].as_u64().unwrap()
    }

    /// Names of the user's files (not folders) in the emulator, sorted.
    pub fn file_names(&self) -> Vec<String> {
        let st = self.state();
        let mut names: Vec<String> = st["files"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["mimeType"] != "application/vnd.google-apps.folder")
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    }

    pub fn folders(&self) -> Vec<Value> {
        let st = self.state();
        st["files"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["mimeType"] == "application/vnd.google-apps.folder")
            .cloned()
            .collect()
    }

    /// Signs in through the emulator's OAuth endpoints (auto-consent, PKCE).
    pub fn login(&self, scope: &str) -> Arc<EmuTokens> {
        let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
        let r = self
            .http
            .get(self.url("/o/oauth2/v2/auth"))
            .query(&[
                ("client_id", CLIENT_ID),
                ("redirect_uri", REDIRECT),
                ("response_type", "code"),
                ("scope", scope),
                ("state", "st"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
                ("access_type", "offline"),
            ])
            .send()
            .unwrap();
        assert_eq!(r.status(), 302, "{}", r.text().unwrap_or_default());
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let url = url::Url::parse(&location).unwrap();
        let code = url
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("a code");
        let r = self
            .http
            .post(self.url("/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("code_verifier", verifier.secret().as_str()),
            ])
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().unwrap();
        Arc::new(EmuTokens {
            token_url: self.url("/token"),
            refresh_token: v["refresh_token"].as_str().unwrap().to_string(),
            current: Mutex::new(Some(v["access_token"].as_str().unwrap().to_string())),
            refreshes: AtomicU32::new(0),
            http: http(),
        })
    }

    /// A store on this emulator with fast retries and 256 KiB chunks.
    pub fn store(
        &self,
        tokens: Arc<EmuTokens>,
        location: DriveLocation,
        state_dir: &std::path::Path,
    ) -> DriveStore {
        DriveStore::new(tokens, self.config(location, state_dir)).unwrap()
    }

    pub fn config(&self, location: DriveLocation, state_dir: &std::path::Path) -> DriveConfig {
        let mut c = DriveConfig::new(location, state_dir);
        c.endpoints = GoogleEndpoints::with_base(self.base());
        c.chunk_size = TEST_CHUNK;
        c.retry = RetryPolicy::fast();
        c.timeout = Duration::from_secs(60);
        c
    }

    /// Drive calls made directly (as another app or device would), with `tokens`.
    pub fn drive<'a>(&'a self, tokens: &'a EmuTokens) -> DirectDrive<'a> {
        DirectDrive { emu: self, tokens }
    }
}

/// Access tokens from the emulator's token endpoint, refreshed with the refresh token.
pub struct EmuTokens {
    token_url: String,
    refresh_token: String,
    current: Mutex<Option<String>>,
    /// How many refreshes happened.
    pub refreshes: AtomicU32,
    http: reqwest::blocking::Client,
}

impl EmuTokens {
    pub fn current(&self) -> String {
        use secrecy::ExposeSecret;
        self.access_token().unwrap().expose_secret().to_string()
    }
}

impl AccessTokens for EmuTokens {
    fn access_token(&self) -> Result<SecretString, TokenError> {
        let mut cur = self.current.lock().unwrap();
        if let Some(t) = cur.as_ref() {
            return Ok(SecretString::from(t.clone()));
        }
        let r = self
            .http
            .post(&self.token_url)
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", self.refresh_token.as_str()),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ])
            .send()
            .map_err(|e| TokenError::Unavailable(e.to_string()))?;
        let status = r.status();
        let v: Value = r.json().unwrap_or(Value::Null);
        if status == 400 && v["error"] == "invalid_grant" {
            return Err(TokenError::ReconnectNeeded(
                v["error_description"].as_str().unwrap_or("").to_string(),
            ));
        }
        if !status.is_success() {
            return Err(TokenError::Unavailable(format!("{status}: {v}")));
        }
        let t = v["access_token"].as_str().unwrap().to_string();
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        *cur = Some(t.clone());
        Ok(SecretString::from(t))
    }

    fn invalidate(&self) {
        *self.current.lock().unwrap() = None;
    }
}

/// Plain Drive v3 calls, to put files in place the way another app or device would.
pub struct DirectDrive<'a> {
    emu: &'a Emu,
    tokens: &'a EmuTokens,
}

impl DirectDrive<'_> {
    fn auth(&self, r: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder {
        r.bearer_auth(self.tokens.current())
    }

    /// Files matching a query in a space.
    pub fn search(&self, q: &str, spaces: &str) -> Vec<Value> {
        let r = self
            .auth(self.emu.http.get(self.emu.url("/drive/v3/files")))
            .query(&[
                ("q", q),
                ("spaces", spaces),
                ("pageSize", "1000"),
                ("fields", "files(id,name,size,appProperties,createdTime)"),
            ])
            .send()
            .unwrap();
        assert!(r.status().is_success());
        let v: Value = r.json().unwrap();
        v["files"].as_array().unwrap().clone()
    }

    /// The id of the visible Driveback folder, creating it (as another device would) if needed.
    pub fn backups_folder(&self) -> String {
        let q = "mimeType = 'application/vnd.google-apps.folder' and appProperties has { key='drivebackFolder' and value='backups' } and trashed = false";
        if let Some(f) = self.search(q, "drive").first() {
            return f["id"].as_str().unwrap().to_string();
        }
        let r = self
            .auth(self.emu.http.post(self.emu.url("/drive/v3/files")))
            .json(&json!({
                "name": "Driveback Backups",
                "mimeType": "application/vnd.google-apps.folder",
                "appProperties": {"drivebackFolder": "backups"},
            }))
            .send()
            .unwrap();
        assert!(r.status().is_success());
        r.json::<Value>().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Creates a file with content in one request; `meta` is the file's metadata.
    pub fn create(&self, meta: Value, content: &[u8]) -> Value {
        let boundary = "support_boundary_7f3a";
        let mut body = format!(
            "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(content);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let r = self
            .auth(self.emu.http.post(self.emu.url("/upload/drive/v3/files")))
            .query(&[("uploadType", "multipart"), ("fields", "id,name,size")])
            .header(
                "content-type",
                format!("multipart/related; boundary={boundary}"),
            )
            .body(body)
            .send()
            .unwrap();
        let status = r.status();
        let v: Value = r.json().unwrap();
        assert!(status.is_success(), "{v}");
        v
    }

    pub fn download(&self, id: &str) -> Vec<u8> {
        let r = self
            .auth(
                self.emu
                    .http
                    .get(self.emu.url(&format!("/drive/v3/files/{id}"))),
            )
            .query(&[("alt", "media")])
            .send()
            .unwrap();
        assert!(r.status().is_success());
        r.bytes().unwrap().to_vec()
    }

    /// Replaces a file's content (keeping its metadata).
    pub fn replace_content(&self, id: &str, content: Vec<u8>) {
        let r = self
            .auth(
                self.emu
                    .http
                    .patch(self.emu.url(&format!("/upload/drive/v3/files/{id}"))),
            )
            .query(&[("uploadType", "media")])
            .body(content)
            .send()
            .unwrap();
        assert!(r.status().is_success());
    }
}

/// A TCP relay in front of the emulator. Once armed with `cut_after(n)`, it closes the
/// connection that carries the n-th byte of answers after arming (a dropped connection in the
/// middle of a download).
pub struct CutProxy {
    pub base_url: String,
    armed: Arc<AtomicBool>,
    budget: Arc<AtomicU64>,
    pub cuts: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
}

impl CutProxy {
    pub fn start(target: &str) -> CutProxy {
        let target = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let armed = Arc::new(AtomicBool::new(false));
        let budget = Arc::new(AtomicU64::new(0));
        let cuts = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, b, c, s) = (armed.clone(), budget.clone(), cuts.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let (a, b, c) = (a.clone(), b.clone(), c.clone());
                // Requests flow through untouched.
                let (mut cr, mut sw) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut cr, &mut sw);
                    let _ = sw.shutdown(Shutdown::Write);
                });
                // Answers are counted and may be cut.
                std::thread::spawn(move || {
                    let (mut sr, mut cw) = (server, client);
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        let n = match sr.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if a.load(Ordering::SeqCst) {
                            let left = b.load(Ordering::SeqCst);
                            if (n as u64) >= left {
                                let _ = cw.write_all(&buf[..left as usize]);
                                a.store(false, Ordering::SeqCst);
                                c.fetch_add(1, Ordering::SeqCst);
                                let _ = cw.shutdown(Shutdown::Both);
                                let _ = sr.shutdown(Shutdown::Both);
                                break;
                            }
                            b.fetch_sub(n as u64, Ordering::SeqCst);
                        }
                        if cw.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = cw.shutdown(Shutdown::Write);
                });
            }
        });
        CutProxy {
            base_url,
            armed,
            budget,
            cuts,
            stop,
        }
    }

    /// Cut the connection once `bytes` more bytes of answers have gone through.
    pub fn cut_after(&self, bytes: u64) {
        self.budget.store(bytes, Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.base_url.trim_start_matches("http://"));
    }
}

/// Deterministic test content.
pub fn blob(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| {
            (i.wrapping_mul(2_654_435_761)
                .wrapping_add(seed.wrapping_mul(97))
                >> 13) as u8
        })
        .collect()
}

/// A clock the test moves.
pub struct SimClock(pub Mutex<chrono::DateTime<chrono::Utc>>);

impl driveback_engine::jobs::Clock for SimClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        *self.0.lock().unwrap()
    }
}

impl SimClock {
    pub fn set(&self, t: chrono::DateTime<chrono::Utc>) {
        *self.0.lock().unwrap() = t;
    }
}

/// The product's backup job (`jobs::run_backup` through `Jobs`, default retention, UTC days) on
/// a simulated clock, against a small database on the real test server and the emulator's Drive
/// (hidden app folder, fast retries): what the schedule tests run one slot at a time.
pub struct ScheduledDrive {
    /// Its own runtime, in a plain test: the blocking HTTP clients of the store and the emulator
    /// helpers are made and dropped outside it.
    pub rt: tokio::runtime::Runtime,
    pub emu: Emu,
    pub store: Arc<dyn driveback_engine::store::RemoteStore>,
    pub clock: Arc<SimClock>,
    pub history: Arc<driveback_engine::history::History>,
    pub jobs: driveback_engine::jobs::Jobs,
    /// While set, the job's database does not answer (its connection string names a closed port).
    pub db_down: Arc<std::sync::atomic::AtomicBool>,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

pub fn scheduled_drive(prefix: &str, start: chrono::DateTime<chrono::Utc>) -> ScheduledDrive {
    use driveback_engine::history::{History, HISTORY_FILE};
    use driveback_engine::jobs::{self, BackupRequest, JobContext, Jobs};
    use driveback_engine::settings::RetentionPolicy;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = driveback_testkit::mongo();
    let db = server.fresh_db(prefix);
    rt.block_on(async {
        server
            .client()
            .await
            .database(&db)
            .collection("entries")
            .insert_many((0..50).map(|i| bson::doc! { "_id": i, "text": format!("entry {i}") }))
            .await
            .unwrap();
    });
    let emu = Emu::start(&[]);
    let state_dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn driveback_engine::store::RemoteStore> = Arc::new(emu.store(
        emu.login(SCOPE_APPDATA),
        DriveLocation::AppData,
        state_dir.path(),
    ));
    let clock = Arc::new(SimClock(Mutex::new(start)));
    let key = driveback_engine::keys::BackupKey::generate();
    let recipient = key.recipient();
    let signer = Arc::new(driveback_engine::authenticity::Signer::for_key(&key));
    let db_down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runner = {
        let (store, uri, down) = (store.clone(), server.uri().to_string(), db_down.clone());
        move |ctx: JobContext| {
            let uri = if down.load(std::sync::atomic::Ordering::SeqCst) {
                "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300&connectTimeoutMS=300"
                    .to_string()
            } else {
                uri.clone()
            };
            let req = BackupRequest {
                server: Arc::new(driveback_engine::service::MongoDriver),
                mongo_uri: SecretString::from(uri),
                database: db.clone(),
                zstd_level: 3,
                store: store.clone(),
                recipient: recipient.clone(),
                signer: Some(signer.clone()),
                retention: Some(RetentionPolicy::default()),
                alarms: None,
                tz: chrono::Utc,
                on_result: None,
                on_listing: None,
                incremental: None,
            };
            jobs::run_backup(req, ctx)
        }
    };
    let hist_dir = tempfile::tempdir().unwrap();
    let history = Arc::new(History::new(hist_dir.path().join(HISTORY_FILE)));
    let jobs = Jobs::new(runner, clock.clone(), Some(history.clone()));
    ScheduledDrive {
        rt,
        emu,
        store,
        clock,
        history,
        jobs,
        db_down,
        _dirs: (state_dir, hist_dir),
    }
}
