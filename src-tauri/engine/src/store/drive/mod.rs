//! A destination on the user's Google Drive (`drive`, `drive:appdata`, `drive:folder`).
//!
//! Where: the hidden app data folder (scope `drive.appdata`, the default), or a visible folder
//! "Driveback Backups" in My Drive (scope `drive.file`), created once and found again by an app
//! property, so renaming or moving it does not lose it.
//!
//! What a backup is: a file whose app properties carry the commit mark (`driveback=backup`) and
//! the manifest summary. An upload creates the file with `driveback=upload`; only after the
//! server's SHA-256 of the content matches the one computed while uploading is the mark set. A
//! file without the mark is never listed or restored; `cleanup_incomplete` deletes stale ones.
//! Files the app did not make (or made as something else) are ignored and never deleted.
//!
//! Side files (the backup key's halves) live beside the backups under their own names.
//!
//! Uploads are resumable and stream (one chunk in memory); see `upload.rs`. Downloads stream and
//! resume with `Range`; see `download.rs`. Every call retries with backoff; see [`retry`].

mod client;
mod download;
pub mod retry;
mod upload;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::blocking::Client;
use serde::Deserialize;

use self::client::{Api, CallError};
pub use self::retry::RetryPolicy;
use super::folder::STALE_UPLOAD_AGE;
use super::{BackupSummary, Quota, RemoteStore, StoreError, StoredBackup, UploadSink};
use crate::auth::{AccessTokens, GoogleEndpoints};
use crate::manifest::BackupStatus;

/// The scope that lets an app use its hidden app data folder.
pub const SCOPE_APPDATA: &str = "https://www.googleapis.com/auth/drive.appdata";
/// The scope that lets an app use the files it created (the visible folder).
pub const SCOPE_FILE: &str = "https://www.googleapis.com/auth/drive.file";

/// The name of the visible folder, when it is created.
pub const FOLDER_NAME: &str = "Driveback Backups";
/// The app property that finds the visible folder again (whatever it is renamed to).
const FOLDER_MARK_KEY: &str = "drivebackFolder";
const FOLDER_MARK_VALUE: &str = "backups";
const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
const BACKUP_MIME: &str = "application/octet-stream";

/// The app property that says what a file is to Driveback.
const ROLE_KEY: &str = "driveback";
/// An upload that has not been verified and committed (yet).
const ROLE_UPLOAD: &str = "upload";
/// A committed backup.
const ROLE_BACKUP: &str = "backup";
/// A side file (key files).
const ROLE_FILE: &str = "file";

/// Google's limit on one app property: key and value together, in UTF-8 bytes.
pub const MAX_PROPERTY_BYTES: usize = 124;

/// Chunks of a resumable upload are multiples of this (Google's rule).
pub const CHUNK_UNIT: usize = 256 * 1024;
/// The default chunk: 8 MiB (one chunk is held in memory while uploading).
pub const DEFAULT_CHUNK_SIZE: usize = 32 * CHUNK_UNIT;

/// Side files are small; anything larger is not ours.
const MAX_SMALL_FILE_BYTES: u64 = 1024 * 1024;

/// Google keeps a resumable upload session for a week.
const SESSION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where on Google Drive the backups live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DriveLocation {
    /// The app's hidden app data folder (scope `drive.appdata`).
    AppData,
    /// A visible "Driveback Backups" folder in My Drive (scope `drive.file`).
    Folder,
}

impl DriveLocation {
    /// The OAuth scope the location needs.
    pub fn scope(self) -> &'static str {
        match self {
            DriveLocation::AppData => SCOPE_APPDATA,
            DriveLocation::Folder => SCOPE_FILE,
        }
    }

    /// How the destination is named (`drive:appdata`, `drive:folder`).
    pub fn dest_name(self) -> &'static str {
        match self {
            DriveLocation::AppData => "drive:appdata",
            DriveLocation::Folder => "drive:folder",
        }
    }

    fn spaces(self) -> &'static str {
        match self {
            DriveLocation::AppData => "appDataFolder",
            DriveLocation::Folder => "drive",
        }
    }
}

/// How a [`DriveStore`] is set up. [`DriveConfig::new`] gives the product's defaults.
#[derive(Clone, Debug)]
pub struct DriveConfig {
    /// Google's endpoints (or the emulator's, via `DRIVEBACK_GOOGLE_BASE_URL`).
    pub endpoints: GoogleEndpoints,
    pub location: DriveLocation,
    /// Where upload sessions are remembered so that an interrupted upload can be resumed.
    /// Created on demand; holds small JSON files (session URIs are credentials: mode 0600).
    pub state_dir: PathBuf,
    /// Bytes per upload request: a multiple of 256 KiB. One chunk is held in memory.
    pub chunk_size: usize,
    pub retry: RetryPolicy,
    /// Longest wait for one phase of a request (sending it, the answer, each read of a body).
    pub timeout: Duration,
    /// Files per listing page (1..=1000).
    pub page_size: u32,
}

impl DriveConfig {
    /// The defaults: endpoints from the environment, 8 MiB chunks, backoff from 1 s to 64 s.
    pub fn new(location: DriveLocation, state_dir: impl Into<PathBuf>) -> Self {
        DriveConfig {
            endpoints: GoogleEndpoints::from_env(),
            location,
            state_dir: state_dir.into(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(300),
            page_size: 1000,
        }
    }
}

/// The Google Drive destination. Cheap to clone; blocking: call it from blocking threads.
#[derive(Clone)]
pub struct DriveStore {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    api: Api,
    location: DriveLocation,
    state_dir: PathBuf,
    chunk_size: usize,
    page_size: u32,
    /// The folder's id (visible folder) or the app data folder's real id, once known.
    parent: Mutex<Option<String>>,
    /// Uploads running on this store, and files being committed: `cleanup_incomplete` leaves
    /// them alone, and the same file is not uploaded twice at once. (Another process's uploads
    /// are protected by their age instead: see `STALE_UPLOAD_AGE`.)
    active: Mutex<BTreeSet<String>>,
    /// The ids of side files (the key files) found by name: read again by id, without a listing
    /// (a file gone since is looked for by name again).
    side_ids: Mutex<std::collections::HashMap<String, String>>,
}

/// A file as Drive describes it (the fields Driveback asks for).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileMeta {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub size: Option<String>,
    #[serde(default)]
    pub created_time: Option<String>,
    #[serde(default)]
    pub modified_time: Option<String>,
    #[serde(default)]
    pub app_properties: BTreeMap<String, String>,
    #[serde(default)]
    pub sha256_checksum: Option<String>,
}

impl FileMeta {
    pub fn size(&self) -> Option<u64> {
        self.size.as_deref().and_then(|s| s.parse().ok())
    }

    fn role(&self) -> Option<&str> {
        self.app_properties.get(ROLE_KEY).map(String::as_str)
    }

    fn created(&self) -> Option<DateTime<Utc>> {
        parse_time(self.created_time.as_deref()?)
    }

    fn modified(&self) -> Option<DateTime<Utc>> {
        parse_time(self.modified_time.as_deref()?)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileList {
    #[serde(default)]
    files: Vec<FileMeta>,
    #[serde(default)]
    next_page_token: Option<String>,
}

const LIST_FIELDS: &str =
    "nextPageToken,files(id,name,mimeType,size,createdTime,modifiedTime,appProperties)";
const FILE_FIELDS: &str =
    "id,name,mimeType,size,createdTime,modifiedTime,appProperties,md5Checksum,sha256Checksum";

impl DriveStore {
    /// A store on the account whose tokens `tokens` hands out. Makes no request yet.
    pub fn new(tokens: Arc<dyn AccessTokens>, config: DriveConfig) -> Result<Self, StoreError> {
        // (`is_multiple_of` would need Rust 1.87; the workspace supports 1.85.)
        #[allow(clippy::manual_is_multiple_of)]
        let aligned = config.chunk_size % CHUNK_UNIT == 0;
        if config.chunk_size == 0 || !aligned {
            return Err(StoreError::InvalidDest(format!(
                "the Google Drive chunk size must be a multiple of 256 KiB, not {} bytes",
                config.chunk_size
            )));
        }
        if !(1..=1000).contains(&config.page_size) || config.retry.max_tries == 0 {
            return Err(StoreError::InvalidDest(
                "the Google Drive page size must be 1..=1000 and tries at least 1".into(),
            ));
        }
        Ok(DriveStore {
            shared: Arc::new(Shared {
                api: Api::new(tokens, config.endpoints, config.retry, config.timeout),
                location: config.location,
                state_dir: config.state_dir,
                chunk_size: config.chunk_size,
                page_size: config.page_size,
                parent: Mutex::new(None),
                side_ids: Mutex::new(std::collections::HashMap::new()),
                active: Mutex::new(BTreeSet::new()),
            }),
        })
    }

    pub fn location_kind(&self) -> DriveLocation {
        self.shared.location
    }

    /// The account's storage: used and (unless unlimited) the limit.
    pub fn storage_quota(&self) -> Result<Quota, StoreError> {
        self.shared.storage_quota()
    }
}

impl Shared {
    fn active(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks `key` as in use; false if it already was.
    pub(crate) fn register_active(&self, key: &str) -> bool {
        self.active().insert(key.to_string())
    }

    pub(crate) fn unregister_active(&self, key: &str) {
        self.active().remove(key);
    }

    pub(crate) fn is_active(&self, key: &str) -> bool {
        self.active().contains(key)
    }

    pub(crate) fn api(&self) -> &Api {
        &self.api
    }

    pub(crate) fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    pub(crate) fn state_dir(&self) -> &std::path::Path {
        &self.state_dir
    }

    pub(crate) fn location_name(&self) -> &'static str {
        self.location.dest_name()
    }

    /// A `StoreError` for a failed call, with what was being done.
    pub(crate) fn fail(&self, context: &str, e: CallError) -> StoreError {
        match e {
            CallError::QuotaExceeded => StoreError::Full(self.full_message()),
            CallError::Auth(m) => StoreError::Auth(m),
            other => StoreError::Remote(format!("{context}: {}", other.describe())),
        }
    }

    /// "Your Google Drive is full: N GB used of M GB" (without numbers if they cannot be had).
    fn full_message(&self) -> String {
        match self.storage_quota() {
            Ok(Quota {
                used,
                limit: Some(limit),
                ..
            }) => format!(
                "Your Google Drive is full: {} used of {}",
                human_bytes(used),
                human_bytes(limit)
            ),
            _ => "Your Google Drive is full".to_string(),
        }
    }

    fn storage_quota(&self) -> Result<Quota, StoreError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct About {
            storage_quota: StorageQuota,
        }
        #[derive(Deserialize)]
        struct StorageQuota {
            limit: Option<String>,
            usage: Option<String>,
        }
        let url = self.api.drive_url("about");
        let about: About = self
            .api
            .json(&|c: &Client| {
                c.get(&url)
                    .query(&[("fields", "storageQuota(limit,usage)")])
            })
            .map_err(|e| match e {
                CallError::Auth(m) => StoreError::Auth(m),
                other => StoreError::Remote(format!(
                    "could not read the Google Drive storage quota: {}",
                    other.describe()
                )),
            })?;
        let num = |s: Option<String>| s.and_then(|s| s.parse::<u64>().ok());
        Ok(Quota {
            label: "Your Google Drive".into(),
            used: num(about.storage_quota.usage).unwrap_or(0),
            limit: num(about.storage_quota.limit),
        })
    }

    /// The folder that holds the backups: `appDataFolder`, or the visible folder's id (found,
    /// or created when `create`; `None` if it does not exist and `create` is false).
    pub(crate) fn parent(&self, create: bool) -> Result<Option<String>, StoreError> {
        match self.location {
            DriveLocation::AppData => Ok(Some("appDataFolder".to_string())),
            DriveLocation::Folder => {
                let mut cached = self.parent.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(id) = cached.as_ref() {
                    return Ok(Some(id.clone()));
                }
                let found = self.find_folder()?;
                let id = match found {
                    Some(id) => id,
                    None if create => self.create_folder()?,
                    None => return Ok(None),
                };
                *cached = Some(id.clone());
                Ok(Some(id))
            }
        }
    }

    /// A stable name for where the backups are, per account: the real id of the folder (the app
    /// data folder's alias is the same for every account, its id is not).
    pub(crate) fn parent_key(&self) -> Result<String, StoreError> {
        match self.location {
            DriveLocation::Folder => Ok(format!(
                "folder:{}",
                self.parent(true)?.expect("created on demand")
            )),
            DriveLocation::AppData => {
                let mut cached = self.parent.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(id) = cached.as_ref() {
                    return Ok(format!("appdata:{id}"));
                }
                let url = self.api.drive_url("files/appDataFolder");
                let meta: FileMeta = self
                    .api
                    .json(&|c: &Client| c.get(&url).query(&[("fields", "id")]))
                    .map_err(|e| self.fail("could not open the Google Drive app folder", e))?;
                *cached = Some(meta.id.clone());
                Ok(format!("appdata:{}", meta.id))
            }
        }
    }

    fn find_folder(&self) -> Result<Option<String>, StoreError> {
        let q = format!(
            "mimeType = '{FOLDER_MIME}' and appProperties has {{ key='{FOLDER_MARK_KEY}' and value='{FOLDER_MARK_VALUE}' }} and trashed = false"
        );
        let mut folders = self
            .list_files(&q, "drive")
            .map_err(|e| self.fail("could not find the Driveback folder on Google Drive", e))?;
        // Two runs racing may have made two; the oldest is the one.
        folders.sort_by(|a, b| a.created().cmp(&b.created()).then(a.id.cmp(&b.id)));
        Ok(folders.into_iter().next().map(|f| f.id))
    }

    fn create_folder(&self) -> Result<String, StoreError> {
        let url = self.api.drive_url("files");
        let body = serde_json::json!({
            "name": FOLDER_NAME,
            "mimeType": FOLDER_MIME,
            "appProperties": { FOLDER_MARK_KEY: FOLDER_MARK_VALUE },
        });
        let meta: FileMeta = self
            .api
            .json(&|c: &Client| c.post(&url).query(&[("fields", "id")]).json(&body))
            .map_err(|e| self.fail("could not create the Driveback folder on Google Drive", e))?;
        tracing::info!(folder = %meta.id, "created the Google Drive folder \"{FOLDER_NAME}\"");
        Ok(meta.id)
    }

    /// Every file matching `q` in `spaces`, all pages.
    fn list_files(&self, q: &str, spaces: &str) -> Result<Vec<FileMeta>, CallError> {
        let url = self.api.drive_url("files");
        let page_size = self.page_size.to_string();
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page: FileList = self.api.json(&|c: &Client| {
                let mut r = c.get(&url).query(&[
                    ("q", q),
                    ("spaces", spaces),
                    ("pageSize", page_size.as_str()),
                    ("fields", LIST_FIELDS),
                ]);
                if let Some(t) = &token {
                    r = r.query(&[("pageToken", t.as_str())]);
                }
                r
            })?;
            out.extend(page.files);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// Files in the backups' folder matching the extra condition `cond`.
    fn list_in_parent(&self, parent: &str, cond: &str) -> Result<Vec<FileMeta>, CallError> {
        let q = format!(
            "'{}' in parents and trashed = false and {cond}",
            q_escape(parent)
        );
        self.list_files(&q, self.location.spaces())
    }

    fn role_is(role: &str) -> String {
        format!("appProperties has {{ key='{ROLE_KEY}' and value='{role}' }}")
    }

    /// Committed backups named `name`.
    pub(crate) fn committed_named(
        &self,
        parent: &str,
        name: &str,
    ) -> Result<Vec<FileMeta>, CallError> {
        let cond = format!(
            "name = '{}' and {}",
            q_escape(name),
            Self::role_is(ROLE_BACKUP)
        );
        self.list_in_parent(parent, &cond)
    }

    /// Deletes a file for good (no trash). A file already gone is fine.
    pub(crate) fn delete_file(&self, id: &str) -> Result<(), CallError> {
        let url = self.api.drive_url(&format!("files/{}", path_escape(id)));
        match self.api.empty(&|c: &Client| c.delete(&url)) {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Finds the Drive file of a committed backup.
    fn backup_file(&self, backup: &StoredBackup) -> Result<Option<FileMeta>, StoreError> {
        let Some(parent) = self.parent(false)? else {
            return Ok(None);
        };
        let files = self.committed_named(&parent, &backup.file).map_err(|e| {
            self.fail(
                &format!("could not find {} on Google Drive", backup.file),
                e,
            )
        })?;
        Ok(files
            .into_iter()
            .find(|f| f.app_properties.get(P_ID).map(String::as_str) == Some(backup.id.as_str())))
    }

    /// Side files named `name`, newest first.
    fn side_files(&self, parent: &str, name: &str) -> Result<Vec<FileMeta>, CallError> {
        let cond = format!(
            "name = '{}' and mimeType != '{FOLDER_MIME}'",
            q_escape(name)
        );
        let mut files = self.list_in_parent(parent, &cond)?;
        files.retain(|f| matches!(f.role(), None | Some(ROLE_FILE)));
        files.sort_by(|a, b| b.modified().cmp(&a.modified()).then(b.id.cmp(&a.id)));
        Ok(files)
    }

    /// Downloads a small file whole.
    fn download_small(&self, id: &str) -> Result<Vec<u8>, CallError> {
        let url = self.api.drive_url(&format!("files/{}", path_escape(id)));
        self.api
            .run(&|c: &Client| c.get(&url).query(&[("alt", "media")]), &|r| {
                r.bytes().map(|b| b.to_vec())
            })
    }
}

impl RemoteStore for DriveStore {
    fn location(&self) -> String {
        self.shared.location.dest_name().to_string()
    }

    fn list(&self) -> Result<Vec<StoredBackup>, StoreError> {
        let s = &self.shared;
        let Some(parent) = s.parent(false)? else {
            return Ok(Vec::new());
        };
        let files = s
            .list_in_parent(&parent, &Shared::role_is(ROLE_BACKUP))
            .map_err(|e| s.fail("could not list the backups on Google Drive", e))?;
        let mut backups: Vec<StoredBackup> = files.iter().filter_map(backup_from).collect();
        backups.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.file.cmp(&a.file)));
        Ok(backups)
    }

    fn create(&self, file_name: &str) -> Result<Box<dyn UploadSink>, StoreError> {
        check_name(file_name)?;
        Ok(Box::new(upload::DriveUpload::start(
            self.shared.clone(),
            file_name,
        )?))
    }

    fn open(&self, backup: &StoredBackup) -> Result<Box<dyn Read + Send>, StoreError> {
        check_name(&backup.file)?;
        let meta = self
            .shared
            .backup_file(backup)?
            .ok_or_else(|| StoreError::NotFound {
                id: backup.file.clone(),
                location: self.location(),
            })?;
        Ok(Box::new(download::DriveReader::new(
            self.shared.clone(),
            meta.id,
            backup.file.clone(),
            backup.bytes,
            backup.sha256.to_ascii_lowercase(),
        )))
    }

    fn delete(&self, backup: &StoredBackup) -> Result<(), StoreError> {
        check_name(&backup.file)?;
        let Some(meta) = self.shared.backup_file(backup)? else {
            return Ok(());
        };
        self.shared.delete_file(&meta.id).map_err(|e| {
            self.shared
                .fail(&format!("could not delete {}", backup.file), e)
        })
    }

    fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_name(name)?;
        let s = &self.shared;
        let Some(parent) = s.parent(false)? else {
            return Ok(None);
        };
        let context = format!("could not read {name} on Google Drive");
        let known = s
            .side_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned();
        let bytes = match known.map(|id| s.download_small(&id)) {
            Some(Ok(bytes)) => bytes,
            Some(Err(e)) if e.status() != Some(reqwest::StatusCode::NOT_FOUND) => {
                return Err(s.fail(&context, e))
            }
            // Not looked for yet, or gone since: by name.
            _ => {
                let files = s
                    .side_files(&parent, name)
                    .map_err(|e| s.fail(&context, e))?;
                let Some(file) = files.into_iter().next() else {
                    s.side_ids
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(name);
                    return Ok(None);
                };
                if file.size().unwrap_or(0) > MAX_SMALL_FILE_BYTES {
                    return Err(StoreError::Corrupt(format!(
                        "{name} on Google Drive is larger than expected ({MAX_SMALL_FILE_BYTES} bytes at most)"
                    )));
                }
                let bytes = s
                    .download_small(&file.id)
                    .map_err(|e| s.fail(&context, e))?;
                s.side_ids
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name.to_string(), file.id);
                bytes
            }
        };
        if bytes.len() as u64 > MAX_SMALL_FILE_BYTES {
            return Err(StoreError::Corrupt(format!(
                "{name} on Google Drive is larger than expected ({MAX_SMALL_FILE_BYTES} bytes at most)"
            )));
        }
        Ok(Some(bytes))
    }

    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        check_name(name)?;
        let s = &self.shared;
        let parent = s.parent(true)?.expect("created on demand");
        let context = format!("could not write {name} on Google Drive");
        s.side_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        let existing = s
            .side_files(&parent, name)
            .map_err(|e| s.fail(&context, e))?;
        match existing.split_first() {
            Some((newest, older)) => {
                // Replacing the content is one request: readers see the old or the new file.
                let url = s
                    .api
                    .upload_url(&format!("files/{}", path_escape(&newest.id)));
                s.api
                    .empty(&|c: &Client| {
                        c.patch(&url)
                            .query(&[("uploadType", "media"), ("fields", "id")])
                            .header(reqwest::header::CONTENT_TYPE, BACKUP_MIME)
                            .body(bytes.to_vec())
                    })
                    .map_err(|e| s.fail(&context, e))?;
                for extra in older {
                    if let Err(e) = s.delete_file(&extra.id) {
                        tracing::warn!(file = name, error = %e.describe(), "could not remove an older copy");
                    }
                }
            }
            None => return self.create_side_file(name, bytes),
        }
        Ok(())
    }

    fn list_side_files(&self, prefix: &str) -> Result<Vec<super::SideFile>, StoreError> {
        let s = &self.shared;
        let Some(parent) = s.parent(false)? else {
            return Ok(Vec::new());
        };
        let cond = format!(
            "name contains '{}' and mimeType != '{FOLDER_MIME}'",
            q_escape(prefix)
        );
        let files = s
            .list_in_parent(&parent, &cond)
            .map_err(|e| s.fail("could not list the lock files on Google Drive", e))?;
        Ok(files
            .into_iter()
            .filter(|f| f.name.starts_with(prefix) && matches!(f.role(), None | Some(ROLE_FILE)))
            .filter_map(|f| {
                Some(super::SideFile {
                    modified: f.modified()?,
                    name: f.name,
                })
            })
            .collect())
    }

    fn create_side_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        check_name(name)?;
        let s = &self.shared;
        let parent = s.parent(true)?.expect("created on demand");
        let context = format!("could not write {name} on Google Drive");
        let meta = serde_json::json!({
            "name": name,
            "parents": [parent],
            "mimeType": BACKUP_MIME,
            "appProperties": { ROLE_KEY: ROLE_FILE },
        });
        let (content_type, body) = multipart_body(&meta, bytes);
        let url = s.api.upload_url("files");
        let created: FileMeta = s
            .api
            .json(&|c: &Client| {
                c.post(&url)
                    .query(&[("uploadType", "multipart"), ("fields", "id")])
                    .header(reqwest::header::CONTENT_TYPE, content_type.as_str())
                    .body(body.clone())
            })
            .map_err(|e| s.fail(&context, e))?;
        // Kept, so that deleting it needs no search.
        s.side_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), created.id);
        Ok(())
    }

    fn delete_side_file(&self, name: &str) -> Result<(), StoreError> {
        check_name(name)?;
        let s = &self.shared;
        let context = format!("could not delete {name} on Google Drive");
        let known = s
            .side_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        if let Some(id) = known {
            return s.delete_file(&id).map_err(|e| s.fail(&context, e));
        }
        let Some(parent) = s.parent(false)? else {
            return Ok(());
        };
        for f in s
            .side_files(&parent, name)
            .map_err(|e| s.fail(&context, e))?
        {
            s.delete_file(&f.id).map_err(|e| s.fail(&context, e))?;
        }
        Ok(())
    }

    fn cleanup_incomplete(&self) -> Result<usize, StoreError> {
        let s = &self.shared;
        let mut removed = upload::cleanup_sessions(s);
        let Some(parent) = s.parent(false)? else {
            return Ok(removed);
        };
        let context = "could not clean up interrupted uploads on Google Drive";
        let files = s
            .list_in_parent(&parent, &Shared::role_is(ROLE_UPLOAD))
            .map_err(|e| s.fail(context, e))?;
        let now = Utc::now();
        let stale = chrono::Duration::from_std(STALE_UPLOAD_AGE).expect("small");
        for f in files {
            if s.is_active(&file_key(&f.id)) {
                continue;
            }
            // Another process may be between finishing an upload and committing it.
            let old = f
                .created()
                .or_else(|| f.modified())
                .is_some_and(|t| now - t >= stale);
            if !old {
                continue;
            }
            s.delete_file(&f.id).map_err(|e| s.fail(context, e))?;
            tracing::info!(file = %f.name, "removed an interrupted upload from Google Drive");
            removed += 1;
        }
        Ok(removed)
    }

    fn quota(&self) -> Result<Option<Quota>, StoreError> {
        self.shared.storage_quota().map(Some)
    }
}

pub(crate) fn file_key(id: &str) -> String {
    format!("file:{id}")
}

// The commit mark: app properties of a committed backup.
const P_FORMAT: &str = "format";
const P_ID: &str = "backupId";
const P_DATABASE: &str = "database";
const P_CREATED: &str = "created";
const P_DOCUMENTS: &str = "documents";
const P_BYTES: &str = "bytes";
const P_STATUS: &str = "status";
const P_SHA256: &str = "sha256";
const P_STARTED: &str = "started";
const P_SIGNATURE: &str = "sig";
/// The chain of the incremental layout a backup belongs to (its full backup's id), and the
/// backup it holds the changes since.
const P_CHAIN: &str = "chain";
const P_PARENT: &str = "parent";

/// What an upload is created with: marked as an upload, not yet a backup.
pub(crate) fn upload_properties(started: DateTime<Utc>) -> BTreeMap<String, String> {
    BTreeMap::from([
        (ROLE_KEY.to_string(), ROLE_UPLOAD.to_string()),
        (P_STARTED.to_string(), format_time(started)),
    ])
}

/// The commit mark with the manifest summary. Every key + value fits Google's 124 bytes; a
/// database name too long for that (MongoDB allows 64 characters, UTF-8 may make that 256
/// bytes) is shortened at a character boundary: the full name is in the backup's manifest.
pub(crate) fn commit_properties(
    summary: &BackupSummary,
    bytes: u64,
    sha256: &str,
) -> BTreeMap<String, String> {
    let status = match summary.status {
        BackupStatus::Complete => "complete",
        BackupStatus::Partial => "partial",
    };
    const _: () = assert!(
        crate::authenticity::MARKED_DATABASE_BYTES + P_DATABASE.len() <= MAX_PROPERTY_BYTES
    );
    let database = crate::authenticity::marked_database(&summary.database).to_string();
    let mut props = BTreeMap::from([
        (ROLE_KEY.to_string(), ROLE_BACKUP.to_string()),
        (P_FORMAT.to_string(), summary.format_version.to_string()),
        (P_ID.to_string(), summary.id.clone()),
        (P_DATABASE.to_string(), database),
        (P_CREATED.to_string(), format_time(summary.created)),
        (P_DOCUMENTS.to_string(), summary.documents.to_string()),
        (P_BYTES.to_string(), bytes.to_string()),
        (P_STATUS.to_string(), status.to_string()),
        (P_SHA256.to_string(), sha256.to_string()),
    ]);
    if let Some(sig) = &summary.signature {
        props.insert(P_SIGNATURE.to_string(), sig.clone());
    }
    if let Some(link) = &summary.link {
        props.insert(P_CHAIN.to_string(), link.chain.clone());
        if let Some(parent) = &link.parent {
            props.insert(P_PARENT.to_string(), parent.clone());
        }
    }
    props
}

/// A committed backup from its Drive file, or `None` if the file is not one (or is damaged).
fn backup_from(f: &FileMeta) -> Option<StoredBackup> {
    let p = &f.app_properties;
    if f.role() != Some(ROLE_BACKUP) || check_name(&f.name).is_err() {
        return None;
    }
    let parsed = (|| {
        let bytes: u64 = p.get(P_BYTES)?.parse().ok()?;
        let sha256 = p.get(P_SHA256)?.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let status = match p.get(P_STATUS)?.as_str() {
            "complete" => BackupStatus::Complete,
            "partial" => BackupStatus::Partial,
            _ => return None,
        };
        Some(StoredBackup {
            id: p.get(P_ID)?.clone(),
            file: f.name.clone(),
            bytes,
            created: parse_time(p.get(P_CREATED)?)?,
            database: p.get(P_DATABASE)?.clone(),
            documents: p.get(P_DOCUMENTS)?.parse().ok()?,
            status,
            sha256,
            signature: p.get(P_SIGNATURE).cloned(),
            link: p.get(P_CHAIN).map(|chain| crate::store::ChainLink {
                chain: chain.clone(),
                parent: p.get(P_PARENT).cloned(),
            }),
        })
    })();
    let Some(backup) = parsed else {
        tracing::debug!(file = %f.name, "skipping a Drive file with an unreadable commit mark");
        return None;
    };
    if f.size() != Some(backup.bytes) {
        tracing::warn!(
            file = %f.name,
            recorded = backup.bytes,
            actual = ?f.size(),
            "backup file size on Google Drive does not match its commit mark; not listing it"
        );
        return None;
    }
    Some(backup)
}

fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A string literal inside a Drive search query.
fn q_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

/// A file id inside a URL path (ids are URL-safe; this keeps a strange one from escaping).
fn path_escape(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// A `multipart/related` body: JSON metadata, then the content.
fn multipart_body(meta: &serde_json::Value, content: &[u8]) -> (String, Vec<u8>) {
    let boundary = loop {
        let b = format!("driveback_{:032x}", rand::random::<u128>());
        if !content.windows(b.len()).any(|w| w == b.as_bytes()) {
            break b;
        }
    };
    let mut body = Vec::with_capacity(content.len() + 512);
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n--{boundary}\r\nContent-Type: {BACKUP_MIME}\r\n\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/related; boundary={boundary}"), body)
}

/// Names at a destination are plain file names: no folders, nothing hidden.
fn check_name(name: &str) -> Result<(), StoreError> {
    let bad = |why: &str| {
        StoreError::io(
            format!("cannot use the file name '{name}'"),
            io::Error::new(io::ErrorKind::InvalidInput, why.to_string()),
        )
    };
    if name.is_empty() || name.starts_with('.') {
        return Err(bad("names must not be empty or start with '.'"));
    }
    if name.contains(['/', '\\', '\0', ':']) || name.chars().any(char::is_control) {
        return Err(bad("names must not contain / \\ : or control characters"));
    }
    if name.len() > 255 {
        return Err(bad("names must be at most 255 bytes"));
    }
    Ok(())
}

/// Bytes for people, in Google's units (1 GB = 2^30 bytes, as Drive shows quotas).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TB", 1 << 40),
        ("GB", 1 << 30),
        ("MB", 1 << 20),
        ("KB", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if n >= size {
            let v = n as f64 / size as f64;
            let text = if v >= 100.0 {
                format!("{v:.0}")
            } else {
                let t = format!("{v:.1}");
                t.strip_suffix(".0").map(str::to_string).unwrap_or(t)
            };
            return format!("{text} {unit}");
        }
    }
    format!("{n} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn summary(database: &str) -> BackupSummary {
        BackupSummary {
            id: "0a1b2c3d".into(),
            created: Utc.with_ymd_and_hms(2024, 6, 1, 12, 30, 5).unwrap(),
            database: database.into(),
            documents: 202_850,
            status: BackupStatus::Partial,
            format_version: 1,
            signature: None,
            link: None,
        }
    }

    fn meta(name: &str, size: u64, props: BTreeMap<String, String>) -> FileMeta {
        FileMeta {
            id: "1abc".into(),
            name: name.into(),
            size: Some(size.to_string()),
            app_properties: props,
            ..Default::default()
        }
    }

    #[test]
    fn the_commit_mark_round_trips_and_fits_googles_limits() {
        let sha = "ab".repeat(32);
        let props = commit_properties(&summary("shop"), 12345, &sha);
        assert!(props.len() <= 30, "at most 30 private properties per app");
        for (k, v) in &props {
            assert!(k.len() + v.len() <= MAX_PROPERTY_BYTES, "{k}");
        }
        assert_eq!(props["created"], "2024-06-01T12:30:05Z");
        let b = backup_from(&meta("driveback-shop.mdbk", 12345, props)).unwrap();
        assert_eq!(
            b,
            StoredBackup {
                id: "0a1b2c3d".into(),
                file: "driveback-shop.mdbk".into(),
                bytes: 12345,
                created: summary("shop").created,
                database: "shop".into(),
                documents: 202_850,
                status: BackupStatus::Partial,
                sha256: sha.clone(),
                signature: None,
                link: None,
            }
        );
        // Sub-second times survive.
        let mut s = summary("shop");
        s.created = Utc.timestamp_millis_opt(1_717_245_005_123).unwrap();
        let props = commit_properties(&s, 1, &sha);
        assert_eq!(
            backup_from(&meta("x.mdbk", 1, props)).unwrap().created,
            s.created
        );
    }

    #[test]
    fn a_long_database_name_is_shortened_at_a_character_boundary() {
        let sha = "00".repeat(32);
        let long = "é".repeat(63); // 126 bytes
        let props = commit_properties(&summary(&long), 1, &sha);
        let db = &props["database"];
        assert!("database".len() + db.len() <= MAX_PROPERTY_BYTES);
        assert!(long.starts_with(db.as_str()));
        assert_eq!(db.len(), 116);
    }

    #[test]
    fn files_without_a_valid_mark_are_not_backups() {
        let sha = "cd".repeat(32);
        let good = commit_properties(&summary("shop"), 10, &sha);
        assert!(backup_from(&meta("a.mdbk", 10, good.clone())).is_some());
        // Uploads not committed, foreign files, other roles.
        assert!(backup_from(&meta("a.mdbk", 10, upload_properties(Utc::now()))).is_none());
        assert!(backup_from(&meta("a.mdbk", 10, BTreeMap::new())).is_none());
        let mut side = BTreeMap::new();
        side.insert(ROLE_KEY.to_string(), ROLE_FILE.to_string());
        assert!(backup_from(&meta("driveback-key.pub", 10, side)).is_none());
        // Size differs from the mark.
        assert!(backup_from(&meta("a.mdbk", 11, good.clone())).is_none());
        // Damaged values.
        for (k, v) in [
            ("sha256", "xyz"),
            ("bytes", "ten"),
            ("status", "done"),
            ("created", "yesterday"),
            ("documents", "-1"),
        ] {
            let mut p = good.clone();
            p.insert(k.into(), v.into());
            assert!(backup_from(&meta("a.mdbk", 10, p)).is_none(), "{k}");
        }
        let mut p = good;
        p.remove("backupId");
        assert!(backup_from(&meta("a.mdbk", 10, p)).is_none());
    }

    #[test]
    fn search_literals_are_escaped() {
        assert_eq!(q_escape("it's"), "it\\'s");
        assert_eq!(q_escape("a\\b"), "a\\\\b");
        assert_eq!(path_escape("1aZ-_"), "1aZ-_");
        assert_eq!(path_escape("a/b?c"), "a%2Fb%3Fc");
    }

    #[test]
    fn sizes_read_like_drive_shows_them() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(1023), "1023 bytes");
        assert_eq!(human_bytes(1536), "1.5 KB");
        assert_eq!(human_bytes(15 << 30), "15 GB");
        assert_eq!(human_bytes((149 << 30) / 10), "14.9 GB");
        assert_eq!(human_bytes(2 << 40), "2 TB");
        assert_eq!(human_bytes(200 << 20), "200 MB");
    }

    #[test]
    fn multipart_bodies_have_two_parts() {
        let (ct, body) = multipart_body(&serde_json::json!({"name": "k"}), b"hello");
        let boundary = ct.strip_prefix("multipart/related; boundary=").unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.ends_with(&format!("\r\nhello\r\n--{boundary}--\r\n")));
        assert_eq!(text.matches(boundary).count(), 3);
    }

    #[test]
    fn names_are_checked() {
        for bad in ["", ".hidden", "a/b", "a\\b", "c:d", "x\ny"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("driveback-shop-20240601T123005Z-0a1b2c3d.mdbk").unwrap();
        check_name("driveback-key.pub").unwrap();
    }
}
