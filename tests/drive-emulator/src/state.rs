//! The emulator's state: configuration, emulated clock, files, grants, tokens, upload sessions,
//! injected faults; and its persistence to `--data-dir` (a JSON document plus one blob per file).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use axum::body::Bytes;
use chrono::{DateTime, TimeZone, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
pub const SCOPE_APPDATA: &str = "https://www.googleapis.com/auth/drive.appdata";
pub const SCOPE_FILE: &str = "https://www.googleapis.com/auth/drive.file";
pub const SCOPE_DRIVE: &str = "https://www.googleapis.com/auth/drive";
pub const SCOPE_EMAIL: &str = "https://www.googleapis.com/auth/userinfo.email";
pub const SCOPE_PROFILE: &str = "https://www.googleapis.com/auth/userinfo.profile";
pub const SCOPE_OPENID: &str = "openid";

/// Everything that can be set from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub auto_consent: bool,
    pub data_dir: Option<PathBuf>,
    pub quota_bytes: u64,
    pub token_lifetime_secs: u64,
    /// Registered OAuth clients: (client id, client secret).
    pub clients: Vec<(String, String)>,
    /// Accept any client id; its secret is bound on first use at the token endpoint.
    pub any_client: bool,
    pub user_email: String,
    pub user_name: String,
    pub session_lifetime_secs: u64,
    pub code_lifetime_secs: u64,
    /// Largest request body accepted on the upload endpoints.
    pub max_upload_body_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".into(),
            port: 0,
            auto_consent: false,
            data_dir: None,
            quota_bytes: 15 * 1024 * 1024 * 1024,
            token_lifetime_secs: 3599,
            clients: vec![(
                "driveback-demo.apps.googleusercontent.com".into(),
                "driveback-demo-secret".into(),
            )],
            any_client: false,
            user_email: "demo.user@example.com".into(),
            user_name: "Demo User".into(),
            session_lifetime_secs: 7 * 24 * 3600,
            code_lifetime_secs: 600,
            max_upload_body_bytes: 65 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Space {
    Drive,
    AppData,
}

/// One Drive file (or folder). `content` lives in memory and, with a data dir, in `blobs/ID`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileRec {
    pub id: String,
    pub name: String,
    pub mime_type: String,
    pub parents: Vec<String>,
    pub space: Space,
    /// The OAuth client that created the file (drive.file visibility, appData ownership).
    pub creator: String,
    /// Root folder or an app data folder: never listed, never deleted.
    pub system: bool,
    pub created_ms: i64,
    pub modified_ms: i64,
    pub app_properties: BTreeMap<String, String>,
    pub properties: BTreeMap<String, String>,
    pub description: Option<String>,
    pub original_filename: Option<String>,
    pub starred: bool,
    pub trashed: bool,
    pub trashed_ms: Option<i64>,
    pub version: u64,
    pub md5: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub size: Option<u64>,
    #[serde(skip)]
    pub content: Bytes,
}

impl FileRec {
    pub fn is_folder(&self) -> bool {
        self.mime_type == FOLDER_MIME
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    pub refresh_token: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub created_ms: i64,
    pub revoked: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessToken {
    pub grant: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub expires_ms: i64,
}

/// Metadata given when a file is created (files.create body, multipart part, resumable init).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FileInit {
    pub name: Option<String>,
    pub mime_type: Option<String>,
    pub parent: Option<String>,
    pub space: Option<Space>,
    pub app_properties: BTreeMap<String, String>,
    pub properties: BTreeMap<String, String>,
    pub description: Option<String>,
    pub starred: bool,
    pub created_ms: Option<i64>,
    pub modified_ms: Option<i64>,
    pub original_filename: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadSession {
    pub id: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    /// None: creates a file; Some(id): replaces that file's content (files.update).
    pub target: Option<String>,
    pub init: FileInit,
    /// Raw metadata patch for an update session.
    pub patch: Option<Value>,
    pub content_type: Option<String>,
    pub declared_total: Option<u64>,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub fields: Option<String>,
    pub completed: Option<String>,
    #[serde(skip)]
    pub data: Vec<u8>,
}

/// What survives a restart with `--data-dir`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Persisted {
    pub files: BTreeMap<String, FileRec>,
    pub grants: BTreeMap<String, Grant>,
    pub access_tokens: BTreeMap<String, AccessToken>,
    pub sessions: BTreeMap<String, UploadSession>,
    pub clock_offset_ms: i64,
    pub quota_limit: u64,
    pub root_id: String,
    /// App data folder id per OAuth client.
    pub appdata_ids: BTreeMap<String, String>,
    /// Secrets bound on first use with `--any-client`.
    pub bound_secrets: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub challenge: Option<(String, String)>,
    pub expires_ms: i64,
    pub used: bool,
}

/// An authorization request waiting on the consent page.
#[derive(Debug, Clone)]
pub struct PendingConsent {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub challenge: Option<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    pub route: String,
    pub status: u16,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default = "one")]
    pub count: u64,
    #[serde(default)]
    pub retry_after: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DropSpec {
    pub after_bytes: u64,
    #[serde(default = "one")]
    pub count: u64,
    #[serde(default)]
    pub store_partial: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShortStore {
    pub keep_bytes: u64,
    #[serde(default = "one")]
    pub count: u64,
}

fn one() -> u64 {
    1
}

/// Memory-only state: reset on restart.
#[derive(Debug, Default)]
pub struct Runtime {
    pub codes: HashMap<String, AuthCode>,
    pub consents: HashMap<String, PendingConsent>,
    pub faults: Vec<Fault>,
    pub drops: Vec<DropSpec>,
    pub short_stores: Vec<ShortStore>,
    pub deny_next_consent: bool,
    /// The next consent grants only these scopes (the user unticked the others), as Google's
    /// granular consent does.
    pub grant_only: Option<Vec<String>>,
    pub requests: BTreeMap<String, u64>,
    pub upload_bytes_received: u64,
    pub faults_fired: u64,
    pub connections_dropped: u64,
}

pub struct Inner {
    pub p: Persisted,
    pub rt: Runtime,
}

pub struct App {
    pub config: Config,
    pub addr: SocketAddr,
    inner: Mutex<Inner>,
}

pub fn random_string(len: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

const URLSAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A Drive-like file id: 33 URL-safe characters starting with `1`.
pub fn new_file_id() -> String {
    format!("1{}", random_string(32, URLSAFE))
}

pub fn new_token(prefix: &str, len: usize) -> String {
    format!("{prefix}{}", random_string(len, URLSAFE))
}

pub fn new_upload_id() -> String {
    format!("AFiumC{}", random_string(70, ALNUM))
}

/// RFC 3339 with milliseconds and `Z`, as Drive writes timestamps.
pub fn rfc3339(ms: i64) -> String {
    let t: DateTime<Utc> = Utc
        .timestamp_millis_opt(ms)
        .single()
        .unwrap_or_else(Utc::now);
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Parse a Drive timestamp; a missing offset means UTC.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc().timestamp_millis());
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(s, fmt) {
            return Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis());
        }
    }
    None
}

impl App {
    pub fn new(config: Config, addr: SocketAddr) -> std::io::Result<App> {
        let p = match &config.data_dir {
            Some(dir) => load(dir, &config)?,
            None => fresh(&config),
        };
        Ok(App {
            config,
            addr,
            inner: Mutex::new(Inner {
                p,
                rt: Runtime::default(),
            }),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write the JSON document (not the blobs) if a data dir is set.
    pub fn save(&self, inner: &Inner) {
        let Some(dir) = &self.config.data_dir else {
            return;
        };
        let tmp = dir.join("state.json.tmp");
        match serde_json::to_vec_pretty(&inner.p) {
            Ok(buf) => {
                if std::fs::write(&tmp, buf).is_ok() {
                    let _ = std::fs::rename(&tmp, dir.join("state.json"));
                }
            }
            Err(e) => eprintln!("drive-emulator: cannot serialise state: {e}"),
        }
    }

    pub fn write_blob(&self, id: &str, data: &[u8]) {
        if let Some(dir) = &self.config.data_dir {
            if let Err(e) = std::fs::write(dir.join("blobs").join(id), data) {
                eprintln!("drive-emulator: cannot write blob {id}: {e}");
            }
        }
    }

    pub fn remove_blob(&self, id: &str) {
        if let Some(dir) = &self.config.data_dir {
            let _ = std::fs::remove_file(dir.join("blobs").join(id));
        }
    }

    /// Append received bytes of an upload session to `uploads/ID`.
    pub fn append_upload(&self, id: &str, data: &[u8]) {
        if let Some(dir) = &self.config.data_dir {
            use std::io::Write;
            let path = dir.join("uploads").join(id);
            let res = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(data));
            if let Err(e) = res {
                eprintln!("drive-emulator: cannot write upload {id}: {e}");
            }
        }
    }

    pub fn remove_upload(&self, id: &str) {
        if let Some(dir) = &self.config.data_dir {
            let _ = std::fs::remove_file(dir.join("uploads").join(id));
        }
    }

    /// Forget everything (files, grants, sessions, faults, clock offset, counters).
    pub fn reset(&self, inner: &mut Inner) {
        if let Some(dir) = &self.config.data_dir {
            for sub in ["blobs", "uploads"] {
                let _ = std::fs::remove_dir_all(dir.join(sub));
                let _ = std::fs::create_dir_all(dir.join(sub));
            }
        }
        inner.p = fresh(&self.config);
        inner.rt = Runtime::default();
        self.save(inner);
    }
}

fn fresh(config: &Config) -> Persisted {
    let mut p = Persisted {
        quota_limit: config.quota_bytes,
        root_id: format!("0A{}Uk9PVA", random_string(12, ALNUM)),
        ..Default::default()
    };
    let now = Utc::now().timestamp_millis();
    let root = FileRec {
        id: p.root_id.clone(),
        name: "My Drive".into(),
        mime_type: FOLDER_MIME.into(),
        parents: vec![],
        space: Space::Drive,
        creator: String::new(),
        system: true,
        created_ms: now,
        modified_ms: now,
        app_properties: BTreeMap::new(),
        properties: BTreeMap::new(),
        description: None,
        original_filename: None,
        starred: false,
        trashed: false,
        trashed_ms: None,
        version: 1,
        md5: None,
        sha1: None,
        sha256: None,
        size: None,
        content: Bytes::new(),
    };
    p.files.insert(root.id.clone(), root);
    p
}

fn load(dir: &Path, config: &Config) -> std::io::Result<Persisted> {
    std::fs::create_dir_all(dir.join("blobs"))?;
    std::fs::create_dir_all(dir.join("uploads"))?;
    let path = dir.join("state.json");
    if !path.exists() {
        return Ok(fresh(config));
    }
    let buf = std::fs::read(&path)?;
    let mut p: Persisted = serde_json::from_slice(&buf)
        .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
    for f in p.files.values_mut() {
        if !f.is_folder() && !f.system {
            f.content = std::fs::read(dir.join("blobs").join(&f.id))
                .map(Bytes::from)
                .unwrap_or_default();
        }
    }
    for s in p.sessions.values_mut() {
        s.data = std::fs::read(dir.join("uploads").join(&s.id)).unwrap_or_default();
    }
    Ok(p)
}

impl Inner {
    pub fn now_ms(&self) -> i64 {
        Utc::now().timestamp_millis() + self.p.clock_offset_ms
    }

    /// Bytes counted against the quota (trashed files count, as on Drive).
    pub fn usage(&self) -> u64 {
        self.p.files.values().filter_map(|f| f.size).sum()
    }

    pub fn usage_in_trash(&self) -> u64 {
        self.p
            .files
            .values()
            .filter(|f| self.effectively_trashed(&f.id))
            .filter_map(|f| f.size)
            .sum()
    }

    /// The app data folder of a client, created on first use.
    pub fn appdata_id(&mut self, client_id: &str) -> String {
        if let Some(id) = self.p.appdata_ids.get(client_id) {
            return id.clone();
        }
        let id = new_file_id();
        let now = self.now_ms();
        let folder = FileRec {
            id: id.clone(),
            name: "appDataFolder".into(),
            mime_type: FOLDER_MIME.into(),
            parents: vec![],
            space: Space::AppData,
            creator: client_id.to_string(),
            system: true,
            created_ms: now,
            modified_ms: now,
            app_properties: BTreeMap::new(),
            properties: BTreeMap::new(),
            description: None,
            original_filename: None,
            starred: false,
            trashed: false,
            trashed_ms: None,
            version: 1,
            md5: None,
            sha1: None,
            sha256: None,
            size: None,
            content: Bytes::new(),
        };
        self.p.files.insert(id.clone(), folder);
        self.p.appdata_ids.insert(client_id.to_string(), id.clone());
        id
    }

    /// Map the aliases `root` and `appDataFolder` to real ids.
    pub fn resolve(&mut self, id: &str, client_id: &str) -> String {
        match id {
            "root" => self.p.root_id.clone(),
            "appDataFolder" => self.appdata_id(client_id),
            _ => id.to_string(),
        }
    }

    /// Trashed itself or below a trashed folder.
    pub fn effectively_trashed(&self, id: &str) -> bool {
        let mut cur = self.p.files.get(id);
        let mut depth = 0;
        while let Some(f) = cur {
            if f.trashed {
                return true;
            }
            depth += 1;
            if depth > 64 {
                break;
            }
            cur = f.parents.first().and_then(|p| self.p.files.get(p));
        }
        false
    }

    /// The full Drive v3 file resource (before `fields` is applied).
    pub fn file_json(&self, f: &FileRec, client_id: &str, user: (&str, &str)) -> Value {
        let mut v = json!({
            "kind": "drive#file",
            "id": f.id,
            "name": f.name,
            "mimeType": f.mime_type,
            "starred": f.starred,
            "trashed": self.effectively_trashed(&f.id),
            "explicitlyTrashed": f.trashed,
            "parents": f.parents,
            "spaces": [match f.space { Space::Drive => "drive", Space::AppData => "appDataFolder" }],
            "version": f.version.to_string(),
            "createdTime": rfc3339(f.created_ms),
            "modifiedTime": rfc3339(f.modified_ms),
            "modifiedByMe": true,
            "modifiedByMeTime": rfc3339(f.modified_ms),
            "ownedByMe": true,
            "owners": [{
                "kind": "drive#user",
                "displayName": user.1,
                "emailAddress": user.0,
                "me": true,
                "permissionId": PERMISSION_ID,
            }],
            "isAppAuthorized": f.creator == client_id,
            "quotaBytesUsed": f.size.unwrap_or(0).to_string(),
            "shared": false,
            "viewedByMe": true,
            "writersCanShare": true,
            "copyRequiresWriterPermission": false,
            "hasThumbnail": false,
            "thumbnailVersion": "0",
        });
        if f.parents.is_empty() {
            v.as_object_mut().map(|o| o.remove("parents"));
        }
        if let Some(size) = f.size {
            v["size"] = json!(size.to_string());
        }
        for (key, val) in [
            ("md5Checksum", &f.md5),
            ("sha1Checksum", &f.sha1),
            ("sha256Checksum", &f.sha256),
            ("description", &f.description),
            ("originalFilename", &f.original_filename),
        ] {
            if let Some(val) = val {
                v[key] = json!(val);
            }
        }
        if let Some(ms) = f.trashed_ms {
            v["trashedTime"] = json!(rfc3339(ms));
        }
        if !f.app_properties.is_empty() {
            v["appProperties"] = json!(f.app_properties);
        }
        if !f.properties.is_empty() {
            v["properties"] = json!(f.properties);
        }
        if !f.is_folder() {
            if let Some((_, ext)) = f.name.rsplit_once('.') {
                if !ext.is_empty() {
                    v["fileExtension"] = json!(ext);
                }
            }
            if let Some((_, ext)) = f.name.split_once('.') {
                if !ext.is_empty() {
                    v["fullFileExtension"] = json!(ext);
                }
            }
            v["headRevisionId"] = json!(format!("0B{}", &f.id[1..f.id.len().min(20)]));
        }
        v
    }
}

pub const PERMISSION_ID: &str = "01234567890123456789";
