//! A backup streamed to Google Drive with a resumable upload.
//!
//! The sink holds one chunk (a multiple of 256 KiB). When the chunk is full it is sent with
//! `Content-Range: bytes a-b/*`; the server answers `308` with the `Range` it kept, and the sink
//! follows that, not what it sent: bytes the server did not keep stay in the buffer and go out
//! again with the next chunk. After a dropped connection, a 5xx or a rate limit, the sink waits
//! (backoff), asks the server what it has (`Content-Range: bytes */*`), and goes on from there,
//! so at most one chunk is sent twice per interruption. The last request names the total.
//!
//! The SHA-256 covers exactly the bytes the server acknowledged. On commit it is compared with
//! the server's `sha256Checksum` of the finished file; only if they match is the commit mark
//! set. A mismatch deletes the file.
//!
//! The session URI, the acknowledged offset and digests of the first request and of the
//! acknowledged bytes are kept in a small file in the state folder. A new upload of the same
//! file name (after the process was killed) finds it: if the session is still alive and the
//! bytes written to the new sink start like the old ones, the bytes the server already has are
//! only hashed, not sent again; if the session expired (404) or the content differs, the upload
//! starts over. Dropping or aborting a sink removes its record.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use reqwest::blocking::Client;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::client::{describe_transport, CallError, ErrorReply};
use super::{
    commit_properties, file_key, upload_properties, FileMeta, Shared, BACKUP_MIME, FILE_FIELDS,
    SESSION_LIFETIME,
};
use crate::store::folder::STALE_UPLOAD_AGE;
use crate::store::{BackupSummary, StoreError, StoredBackup, UploadSink};

const RECORD_PREFIX: &str = "drive-upload-";
const RECORD_SUFFIX: &str = ".json";
const RECORD_VERSION: u32 = 1;

/// What is remembered about an upload in progress.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SessionRecord {
    driveback_upload: u32,
    /// Where the backups are (`appdata:<id>` or `folder:<id>`).
    location: String,
    name: String,
    /// The resumable session URI (a credential for this one upload).
    uri: String,
    started: DateTime<Utc>,
    /// Length and SHA-256 of the first request's bytes: how a new sink recognises the same
    /// content early, while it still holds every byte since the start.
    head_len: u64,
    head_sha256: String,
    /// Bytes acknowledged by the server, and their SHA-256.
    acked: u64,
    acked_sha256: String,
}

/// Re-reading the bytes of an interrupted upload whose session is still alive.
struct Replay {
    record: SessionRecord,
    /// What the server holds.
    server_has: u64,
    /// The server finished the file before the process died.
    completed: Option<FileMeta>,
    head_checked: bool,
}

/// The answer to one request on the session.
enum Reply {
    /// 308: the server holds this many bytes.
    Incomplete(u64),
    /// 200/201: the file exists.
    Complete(FileMeta),
    /// 404/410: the session is gone.
    Expired,
    Unauthorized,
    /// Worth retrying after a wait (5xx, 429, rate limit, no answer).
    Transient {
        retry_after: Option<std::time::Duration>,
        error: CallError,
    },
    Fatal(CallError),
}

pub(crate) struct DriveUpload {
    shared: Arc<Shared>,
    name: String,
    parent: String,
    location_key: String,
    chunk: usize,
    /// Bytes not yet acknowledged, starting at `offset`.
    buf: Vec<u8>,
    offset: u64,
    /// SHA-256 of the acknowledged bytes `[0, offset)`.
    hasher: Sha256,
    started: DateTime<Utc>,
    session: Option<String>,
    record: Option<SessionRecord>,
    record_path: PathBuf,
    active_key: String,
    replay: Option<Replay>,
    completed: Option<FileMeta>,
    /// Data requests in a row that the server kept nothing of.
    stalls: u32,
    failed: Option<StoreError>,
    finished: bool,
}

impl DriveUpload {
    pub fn start(shared: Arc<Shared>, name: &str) -> Result<Self, StoreError> {
        let parent = shared.parent(true)?.expect("created on demand");
        let location_key = shared.parent_key()?;
        let record_path = record_path(shared.state_dir(), &location_key, name);
        let active_key = format!("session:{}", record_path.display());
        if !shared.register_active(&active_key) {
            return Err(StoreError::io(
                format!("could not start uploading {name} to Google Drive"),
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "an upload of this file is already running",
                ),
            ));
        }
        let mut up = DriveUpload {
            chunk: shared.chunk_size(),
            shared,
            name: name.to_string(),
            parent,
            location_key,
            buf: Vec::new(),
            offset: 0,
            hasher: Sha256::new(),
            started: Utc::now(),
            session: None,
            record: None,
            record_path,
            active_key,
            replay: None,
            completed: None,
            stalls: 0,
            failed: None,
            finished: false,
        };
        if let Err(e) = up.pick_up_interrupted() {
            up.finished = true;
            up.shared.unregister_active(&up.active_key);
            return Err(e);
        }
        up.buf.reserve_exact(up.chunk);
        Ok(up)
    }

    /// Continues an interrupted upload of the same file, if one was recorded and its session
    /// is alive.
    fn pick_up_interrupted(&mut self) -> Result<(), StoreError> {
        let Some(rec) = read_record(&self.record_path) else {
            return Ok(());
        };
        if rec.location != self.location_key || rec.name != self.name {
            self.remove_record();
            return Ok(());
        }
        let reply = self.query_with_retries(&rec.uri, None)?;
        let (server_has, completed) = match reply {
            Reply::Incomplete(n) => (n, None),
            Reply::Complete(meta) => (meta.size().unwrap_or(0), Some(meta)),
            Reply::Expired => {
                tracing::info!(file = %self.name, "the interrupted upload's session expired; starting over");
                self.remove_record();
                return Ok(());
            }
            Reply::Unauthorized | Reply::Transient { .. } => unreachable!("handled by the query"),
            Reply::Fatal(e) => {
                return Err(self
                    .shared
                    .fail(&format!("could not resume uploading {}", self.name), e))
            }
        };
        if server_has < rec.acked || (server_has > 0 && rec.head_len == 0) {
            tracing::warn!(file = %self.name, "the interrupted upload's record does not match the server; starting over");
            self.remove_record();
            return Ok(());
        }
        tracing::info!(file = %self.name, bytes = server_has, "resuming an interrupted upload");
        self.started = rec.started;
        self.session = Some(rec.uri.clone());
        if server_has > 0 {
            self.replay = Some(Replay {
                record: rec.clone(),
                server_has,
                completed,
                head_checked: false,
            });
        }
        self.record = Some(rec);
        Ok(())
    }

    fn fail_io(&mut self, e: StoreError) -> io::Error {
        let kind = match &e {
            StoreError::Full(_) => io::ErrorKind::StorageFull,
            StoreError::Auth(_) => io::ErrorKind::PermissionDenied,
            StoreError::Corrupt(_) => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::Other,
        };
        let err = io::Error::new(kind, replicate(&e));
        self.failed = Some(e);
        err
    }

    fn check_failed(&self) -> Result<(), StoreError> {
        match &self.failed {
            Some(e) => Err(replicate(e)),
            None if self.finished => Err(StoreError::Remote(format!(
                "the upload of {} is already finished",
                self.name
            ))),
            None => Ok(()),
        }
    }

    fn write_inner(&mut self, data: &[u8]) -> Result<usize, StoreError> {
        if self.replay.is_some() {
            return self.replay_write(data);
        }
        if self.completed.is_some() {
            return Err(self.mismatch("is longer than the interrupted upload it resumes"));
        }
        while self.buf.len() >= self.chunk {
            self.send(false)?;
        }
        let n = (self.chunk - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= self.chunk {
            self.send(false)?;
        }
        Ok(n)
    }

    /// Takes bytes the server already has from an interrupted run: checks they are the same
    /// content, hashes them, sends nothing.
    fn replay_write(&mut self, data: &[u8]) -> Result<usize, StoreError> {
        let replay = self.replay.as_mut().expect("replaying");
        if !replay.head_checked {
            let head_len = replay.record.head_len as usize;
            let take = (head_len - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            if self.buf.len() == head_len {
                let digest = hex::encode(Sha256::digest(&self.buf));
                if digest == replay.record.head_sha256 {
                    replay.head_checked = true;
                    let known = (replay.server_has as usize).min(head_len);
                    self.hasher.update(&self.buf[..known]);
                    self.buf.drain(..known);
                    self.offset = known as u64;
                    self.end_replay_if_done();
                } else {
                    self.restart_fresh("its content differs from the interrupted upload's");
                }
            }
            return Ok(take);
        }
        let (server_has, acked, acked_sha) = (
            replay.server_has,
            replay.record.acked,
            replay.record.acked_sha256.clone(),
        );
        let mut take = ((server_has - self.offset) as usize).min(data.len());
        if self.offset < acked && self.offset + take as u64 >= acked {
            // Cross the recorded boundary exactly and compare the digest there.
            take = (acked - self.offset) as usize;
            self.hasher.update(&data[..take]);
            self.offset += take as u64;
            if hex::encode(self.hasher.clone().finalize()) != acked_sha {
                return Err(self.mismatch("does not match the interrupted upload it resumes"));
            }
        } else {
            self.hasher.update(&data[..take]);
            self.offset += take as u64;
        }
        self.end_replay_if_done();
        Ok(take)
    }

    fn end_replay_if_done(&mut self) {
        let done = self
            .replay
            .as_ref()
            .is_some_and(|r| r.head_checked && self.offset >= r.server_has);
        if done {
            let r = self.replay.take().expect("replaying");
            self.completed = r.completed;
            tracing::info!(file = %self.name, bytes = self.offset, "caught up with the interrupted upload");
        }
    }

    /// Gives up the interrupted session (the sink still holds every byte since the start).
    fn restart_fresh(&mut self, why: &str) {
        tracing::info!(file = %self.name, "not resuming the interrupted upload: {why}; starting over");
        self.replay = None;
        self.session = None;
        self.completed = None;
        self.remove_record();
    }

    fn mismatch(&mut self, what: &str) -> StoreError {
        self.remove_record();
        StoreError::Remote(format!(
            "could not resume uploading {}: the new upload {what}; run the backup again",
            self.name
        ))
    }

    /// Starts the resumable session.
    fn initiate(&mut self) -> Result<(), StoreError> {
        let api = self.shared.api();
        let url = api.upload_url("files");
        let meta = serde_json::json!({
            "name": self.name,
            "parents": [self.parent],
            "mimeType": BACKUP_MIME,
            "appProperties": upload_properties(self.started),
        });
        let uri = api
            .run(
                &|c: &Client| {
                    c.post(&url)
                        .query(&[("uploadType", "resumable"), ("fields", FILE_FIELDS)])
                        .header("X-Upload-Content-Type", BACKUP_MIME)
                        .json(&meta)
                },
                &|r| Ok(r.headers().get(LOCATION).cloned()),
            )
            .map_err(|e| {
                self.shared.fail(
                    &format!("could not start uploading {} to Google Drive", self.name),
                    e,
                )
            })?
            .and_then(|v| v.to_str().ok().map(str::to_string))
            .ok_or_else(|| {
                StoreError::Remote(format!(
                    "could not start uploading {} to Google Drive: the answer named no upload session",
                    self.name
                ))
            })?;
        self.session = Some(uri.clone());
        self.record = Some(SessionRecord {
            driveback_upload: RECORD_VERSION,
            location: self.location_key.clone(),
            name: self.name.clone(),
            uri,
            started: self.started,
            head_len: 0,
            head_sha256: String::new(),
            acked: 0,
            acked_sha256: hex::encode(Sha256::new().finalize()),
        });
        self.save_record();
        crate::crash::crash_point("drive.session_started");
        Ok(())
    }

    /// Sends the buffer: one full chunk, or (`last`) everything left with the total size.
    /// Returns the file once the server has finished it.
    fn send(&mut self, last: bool) -> Result<Option<FileMeta>, StoreError> {
        if self.session.is_none() {
            self.initiate()?;
        }
        let policy = self.shared.api().retry.clone();
        let mut tries = 0u32;
        let mut refreshed = false;
        let mut query = false;
        loop {
            if !last && self.buf.len() < self.chunk {
                return Ok(None);
            }
            let len = if last { self.buf.len() } else { self.chunk };
            let end = self.offset + len as u64;
            let reply = if query {
                self.put(
                    &format!(
                        "bytes */{}",
                        if last { end.to_string() } else { "*".into() }
                    ),
                    Vec::new(),
                )
            } else {
                let range = match (last, len) {
                    (true, 0) => format!("bytes */{end}"),
                    (true, _) => format!("bytes {}-{}/{end}", self.offset, end - 1),
                    (false, _) => format!("bytes {}-{}/*", self.offset, end - 1),
                };
                if self.offset == 0 {
                    self.note_head(len);
                }
                self.put(&range, self.buf[..len].to_vec())
            };
            let was_query = std::mem::replace(&mut query, false);
            match reply {
                Reply::Incomplete(n) => {
                    let before = self.offset;
                    self.ack(n)?;
                    crate::crash::crash_point("drive.chunk");
                    if self.offset > before {
                        tries = 0;
                        self.stalls = 0;
                    } else if !was_query {
                        self.stalls += 1;
                        if self.stalls >= policy.max_tries {
                            return Err(StoreError::Remote(format!(
                                "could not upload {}: Google Drive kept none of the last {} requests",
                                self.name, self.stalls
                            )));
                        }
                    }
                    // Whatever the server did not keep goes out again: with the next chunk
                    // (the loop returns for more data once less than a chunk is left), or now.
                }
                Reply::Complete(meta) => {
                    if !last {
                        return Err(StoreError::Remote(format!(
                            "could not upload {}: Google Drive finished the file before its end",
                            self.name
                        )));
                    }
                    self.ack(end)?;
                    return Ok(Some(meta));
                }
                Reply::Expired => {
                    if self.offset == 0 {
                        // Everything is still in the buffer: start a new session.
                        tracing::info!(file = %self.name, "the upload session expired; starting a new one");
                        self.remove_record();
                        self.initiate()?;
                        continue;
                    }
                    return Err(StoreError::Remote(format!(
                        "could not upload {}: the upload session on Google Drive expired after {} bytes; run the backup again",
                        self.name, self.offset
                    )));
                }
                Reply::Unauthorized => {
                    if refreshed {
                        return Err(StoreError::Auth(
                            "Google Drive needs reconnecting: Google refused the access token even after a refresh".into(),
                        ));
                    }
                    refreshed = true;
                    self.shared.api().invalidate_token();
                    query = was_query;
                }
                Reply::Transient { retry_after, error } => {
                    tries += 1;
                    if tries >= policy.max_tries {
                        return Err(StoreError::Remote(format!(
                            "could not upload {} to Google Drive: {}",
                            self.name,
                            error.with_tries(tries).describe()
                        )));
                    }
                    tracing::debug!(file = %self.name, offset = self.offset, error = %error.describe(), "upload request failed; asking the server what it has");
                    policy.wait(tries - 1, retry_after);
                    query = true;
                }
                Reply::Fatal(e) => {
                    return Err(self.shared.fail(
                        &format!("could not upload {} to Google Drive", self.name),
                        e,
                    ))
                }
            }
        }
    }

    /// Remembers the first request's bytes so that a later run can recognise the content.
    fn note_head(&mut self, len: usize) {
        if let Some(rec) = self.record.as_mut() {
            if rec.head_len == 0 && len > 0 {
                rec.head_len = len as u64;
                rec.head_sha256 = hex::encode(Sha256::digest(&self.buf[..len]));
                self.save_record();
            }
        }
    }

    /// The server holds `n` bytes: drop them from the buffer, hash them, remember the offset.
    fn ack(&mut self, n: u64) -> Result<(), StoreError> {
        let have = self.offset + self.buf.len() as u64;
        if n < self.offset || n > have {
            return Err(StoreError::Remote(format!(
                "could not upload {}: Google Drive reported {n} bytes received, but {} were acknowledged and {have} sent",
                self.name, self.offset
            )));
        }
        let k = (n - self.offset) as usize;
        if k == 0 {
            return Ok(());
        }
        self.hasher.update(&self.buf[..k]);
        self.buf.drain(..k);
        self.offset = n;
        let digest = hex::encode(self.hasher.clone().finalize());
        if let Some(rec) = self.record.as_mut() {
            rec.acked = n;
            rec.acked_sha256 = digest;
        }
        self.save_record();
        Ok(())
    }

    /// One request on the session.
    fn put(&self, range: &str, body: Vec<u8>) -> Reply {
        let uri = self.session.as_deref().expect("session started");
        put_on_session(&self.shared, uri, range, body)
    }

    /// Asks a session what it has, retrying what is worth retrying.
    fn query_with_retries(&self, uri: &str, total: Option<u64>) -> Result<Reply, StoreError> {
        let policy = self.shared.api().retry.clone();
        let range = match total {
            Some(t) => format!("bytes */{t}"),
            None => "bytes */*".to_string(),
        };
        let mut refreshed = false;
        let mut tries = 0;
        loop {
            match put_on_session(&self.shared, uri, &range, Vec::new()) {
                Reply::Unauthorized if !refreshed => {
                    refreshed = true;
                    self.shared.api().invalidate_token();
                }
                Reply::Unauthorized => {
                    return Err(StoreError::Auth(
                        "Google Drive needs reconnecting: Google refused the access token even after a refresh".into(),
                    ))
                }
                Reply::Transient { retry_after, error } => {
                    tries += 1;
                    if tries >= policy.max_tries {
                        return Err(StoreError::Remote(format!(
                            "could not resume uploading {}: {}",
                            self.name,
                            error.with_tries(tries).describe()
                        )));
                    }
                    policy.wait(tries - 1, retry_after);
                }
                other => return Ok(other),
            }
        }
    }

    fn save_record(&self) {
        let Some(rec) = &self.record else { return };
        if let Err(e) = write_record(&self.record_path, rec) {
            // Resuming after a crash is a bonus; the upload itself goes on.
            tracing::warn!(file = %self.record_path.display(), error = %e, "could not save the upload's progress");
        }
    }

    fn remove_record(&mut self) {
        self.record = None;
        match fs::remove_file(&self.record_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(file = %self.record_path.display(), error = %e, "could not remove an upload record")
            }
        }
    }

    fn commit_inner(&mut self, summary: &BackupSummary) -> Result<StoredBackup, StoreError> {
        if let Some(r) = &self.replay {
            if !r.head_checked && (self.buf.len() as u64) < r.record.head_len {
                self.restart_fresh("the new upload is shorter than its first request");
            } else {
                return Err(self.mismatch("is shorter than the interrupted upload it resumes"));
            }
        }
        let meta = match self.completed.take() {
            Some(meta) => meta,
            None => self
                .send(true)?
                .expect("the last request finishes the file"),
        };
        let file_key = file_key(&meta.id);
        self.shared.register_active(&file_key);
        let result = self.verify_and_mark(&meta, summary);
        if result.is_err() {
            if let Err(e) = self.shared.delete_file(&meta.id) {
                tracing::warn!(file = %self.name, error = %e.describe(), "could not remove an upload that failed to commit");
            }
        }
        self.shared.unregister_active(&file_key);
        self.remove_record();
        result
    }

    /// Compares the server's checksum with the digest computed while uploading, then sets the
    /// commit mark.
    fn verify_and_mark(
        &mut self,
        meta: &FileMeta,
        summary: &BackupSummary,
    ) -> Result<StoredBackup, StoreError> {
        let s = &self.shared;
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let bytes = self.offset;
        let mut meta = meta.clone();
        if meta.sha256_checksum.is_none() || meta.size().is_none() {
            let url = s
                .api()
                .drive_url(&format!("files/{}", super::path_escape(&meta.id)));
            meta = s
                .api()
                .json(&|c: &Client| c.get(&url).query(&[("fields", FILE_FIELDS)]))
                .map_err(|e| {
                    s.fail(
                        &format!("could not verify {} on Google Drive", self.name),
                        e,
                    )
                })?;
        }
        let Some(remote) = meta.sha256_checksum.as_deref().map(str::to_ascii_lowercase) else {
            return Err(StoreError::Corrupt(format!(
                "could not verify {} on Google Drive: Google reported no SHA-256 checksum for it; the upload was removed",
                self.name
            )));
        };
        if meta.size() != Some(bytes) || remote != sha256 {
            return Err(StoreError::Corrupt(format!(
                "Google Drive holds different bytes than Driveback uploaded for {} ({} bytes, SHA-256 {} there; {bytes} bytes, SHA-256 {sha256} sent); the upload was removed",
                self.name,
                meta.size().map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
                remote
            )));
        }
        // A committed backup is never replaced by a later upload of the same name.
        let existing = s.committed_named(&self.parent, &self.name).map_err(|e| {
            s.fail(
                &format!("could not commit {} on Google Drive", self.name),
                e,
            )
        })?;
        if existing.iter().any(|f| f.id != meta.id) {
            return Err(StoreError::io(
                format!("could not save {} on {}", self.name, s.location_name()),
                io::Error::new(io::ErrorKind::AlreadyExists, "a backup of that name exists"),
            ));
        }
        crate::crash::crash_point("drive.before_mark");
        let url = s
            .api()
            .drive_url(&format!("files/{}", super::path_escape(&meta.id)));
        let patch = serde_json::json!({
            "appProperties": commit_properties(summary, bytes, &sha256),
        });
        s.api()
            .empty(&|c: &Client| c.patch(&url).query(&[("fields", "id")]).json(&patch))
            .map_err(|e| {
                s.fail(
                    &format!("could not mark {} complete on Google Drive", self.name),
                    e,
                )
            })?;
        Ok(StoredBackup {
            id: summary.id.clone(),
            file: self.name.clone(),
            bytes,
            created: summary.created,
            database: summary.database.clone(),
            documents: summary.documents,
            status: summary.status,
            sha256,
            signature: summary.signature.clone(),
            link: summary.link.clone(),
        })
    }

    /// Leaves nothing behind: a finished but uncommitted file is deleted; the session, which
    /// cannot be deleted, expires on its own.
    fn discard(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        if let Some(meta) = self.completed.take() {
            let _ = self.shared.delete_file(&meta.id);
        }
        self.remove_record();
        self.shared.unregister_active(&self.active_key);
    }
}

impl Write for DriveUpload {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        if let Err(e) = self.check_failed() {
            return Err(io::Error::other(e));
        }
        match self.write_inner(data) {
            Ok(n) => Ok(n),
            Err(e) => Err(self.fail_io(e)),
        }
    }

    /// Nothing to do: a partial chunk cannot be sent before the end (Google's 256 KiB rule).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl UploadSink for DriveUpload {
    fn commit(mut self: Box<Self>, summary: &BackupSummary) -> Result<StoredBackup, StoreError> {
        self.check_failed()?;
        let result = self.commit_inner(summary);
        match &result {
            Ok(_) => {
                self.finished = true;
                self.shared.unregister_active(&self.active_key);
            }
            Err(_) => self.discard(),
        }
        result
    }

    /// The commit compares Google's SHA-256 and size of the file with what was sent, and
    /// fails (removing the file) when they differ.
    fn verifies_on_commit(&self) -> bool {
        true
    }

    /// The bytes the server acknowledged (hashed as they were) and those still buffered.
    fn written(&self) -> (u64, String) {
        let mut hasher = self.hasher.clone();
        hasher.update(&self.buf);
        (
            self.offset + self.buf.len() as u64,
            hex::encode(hasher.finalize()),
        )
    }

    fn abort(mut self: Box<Self>) -> Result<(), StoreError> {
        self.discard();
        Ok(())
    }
}

impl Drop for DriveUpload {
    fn drop(&mut self) {
        self.discard();
    }
}

/// One PUT on a session URI (a chunk, or a status query with an empty body).
fn put_on_session(shared: &Shared, uri: &str, range: &str, body: Vec<u8>) -> Reply {
    let api = shared.api();
    let http = match api.http() {
        Ok(h) => h,
        Err(e) => return Reply::Fatal(e),
    };
    let token = match api.token() {
        Ok(t) => t,
        Err(e @ CallError::TokenUnavailable(_)) => {
            return Reply::Transient {
                retry_after: None,
                error: e,
            }
        }
        Err(e) => return Reply::Fatal(e),
    };
    let len = body.len();
    let sent = http
        .put(uri)
        .bearer_auth(token)
        .header(CONTENT_RANGE, range)
        .header(CONTENT_LENGTH, len)
        .header(CONTENT_TYPE, BACKUP_MIME)
        .body(body)
        .send();
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            return Reply::Transient {
                retry_after: None,
                error: CallError::Transport {
                    error: describe_transport(&e),
                    tries: 1,
                },
            }
        }
    };
    match resp.status() {
        StatusCode::PERMANENT_REDIRECT => {
            let range = resp
                .headers()
                .get(RANGE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match range.as_deref().map(parse_range) {
                None => Reply::Incomplete(0),
                Some(Some(n)) => Reply::Incomplete(n),
                Some(None) => Reply::Fatal(CallError::Status {
                    status: StatusCode::PERMANENT_REDIRECT,
                    reason: None,
                    message: format!("an unreadable Range header ({})", range.unwrap_or_default()),
                    tries: 1,
                }),
            }
        }
        StatusCode::OK | StatusCode::CREATED => match resp.bytes() {
            Ok(b) => match serde_json::from_slice::<FileMeta>(&b) {
                Ok(meta) => Reply::Complete(meta),
                Err(e) => Reply::Fatal(CallError::Status {
                    status: StatusCode::OK,
                    reason: None,
                    message: format!("an answer Driveback does not understand ({e})"),
                    tries: 1,
                }),
            },
            Err(e) => Reply::Transient {
                retry_after: None,
                error: CallError::Transport {
                    error: describe_transport(&e),
                    tries: 1,
                },
            },
        },
        StatusCode::NOT_FOUND | StatusCode::GONE => Reply::Expired,
        StatusCode::UNAUTHORIZED => Reply::Unauthorized,
        _ => {
            let reply = ErrorReply::read(resp);
            if reply.is_retryable() {
                Reply::Transient {
                    retry_after: reply.retry_after,
                    error: reply.into_error(1),
                }
            } else {
                Reply::Fatal(reply.into_error(1))
            }
        }
    }
}

/// `bytes=0-N` -> N + 1 bytes held.
fn parse_range(v: &str) -> Option<u64> {
    let (first, last) = v.trim().strip_prefix("bytes=")?.split_once('-')?;
    if first.trim() != "0" {
        return None;
    }
    last.trim().parse::<u64>().ok()?.checked_add(1)
}

fn record_path(dir: &Path, location: &str, name: &str) -> PathBuf {
    let mut h = Sha256::new();
    h.update(location.as_bytes());
    h.update([0]);
    h.update(name.as_bytes());
    let id = hex::encode(&h.finalize()[..12]);
    dir.join(format!("{RECORD_PREFIX}{id}{RECORD_SUFFIX}"))
}

fn read_record(path: &Path) -> Option<SessionRecord> {
    let bytes = fs::read(path).ok()?;
    let rec: SessionRecord = serde_json::from_slice(&bytes).ok()?;
    (rec.driveback_upload == RECORD_VERSION).then_some(rec)
}

fn write_record(path: &Path, rec: &SessionRecord) -> io::Result<()> {
    let dir = path.parent().expect("records live in a folder");
    fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    let json = serde_json::to_vec_pretty(rec).expect("a record always serialises");
    let result = (|| {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes records of uploads that cannot be resumed any more: not running in this process,
/// untouched for a while, and either older than a session lives or answered 404. Returns how
/// many were removed.
pub(crate) fn cleanup_sessions(shared: &Shared) -> usize {
    let Ok(entries) = fs::read_dir(shared.state_dir()) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !name.starts_with(RECORD_PREFIX) || !name.ends_with(RECORD_SUFFIX) {
            continue;
        }
        let path = entry.path();
        if shared.is_active(&format!("session:{}", path.display())) {
            continue;
        }
        let idle = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if idle < STALE_UPLOAD_AGE {
            continue;
        }
        let gone = match read_record(&path) {
            None => true,
            Some(rec) => {
                let age = (Utc::now() - rec.started).to_std().unwrap_or_default();
                age >= SESSION_LIFETIME
                    || matches!(
                        put_on_session(shared, &rec.uri, "bytes */*", Vec::new()),
                        Reply::Expired
                    )
            }
        };
        if gone && fs::remove_file(&path).is_ok() {
            tracing::info!(file = %path.display(), "removed the record of an interrupted upload");
            removed += 1;
        }
    }
    removed
}

/// The same error again (a failed sink answers every later call with its first error).
fn replicate(e: &StoreError) -> StoreError {
    match e {
        StoreError::NotFound { id, location } => StoreError::NotFound {
            id: id.clone(),
            location: location.clone(),
        },
        StoreError::Io { context, source } => StoreError::io(
            context.clone(),
            io::Error::new(source.kind(), source.to_string()),
        ),
        StoreError::InvalidDest(m) => StoreError::InvalidDest(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::Auth(m) => StoreError::Auth(m.clone()),
        StoreError::Full(m) => StoreError::Full(m.clone()),
        StoreError::Remote(m) => StoreError::Remote(m.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledged_ranges_parse() {
        assert_eq!(parse_range("bytes=0-262143"), Some(262_144));
        assert_eq!(parse_range("bytes=0-0"), Some(1));
        assert_eq!(parse_range(" bytes=0-99 "), Some(100));
        assert_eq!(parse_range("bytes=5-99"), None);
        assert_eq!(parse_range("bytes 0-99"), None);
        assert_eq!(parse_range("bytes=0-"), None);
    }

    #[test]
    fn records_are_named_per_location_and_file_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = record_path(dir.path(), "appdata:1", "x.mdbk");
        assert_eq!(a, record_path(dir.path(), "appdata:1", "x.mdbk"));
        assert_ne!(a, record_path(dir.path(), "appdata:2", "x.mdbk"));
        assert_ne!(a, record_path(dir.path(), "appdata:1", "y.mdbk"));
        let rec = SessionRecord {
            driveback_upload: RECORD_VERSION,
            location: "appdata:1".into(),
            name: "x.mdbk".into(),
            uri: "http://127.0.0.1/upload?upload_id=abc".into(),
            started: Utc::now(),
            head_len: 262_144,
            head_sha256: "00".repeat(32),
            acked: 524_288,
            acked_sha256: "11".repeat(32),
        };
        let nested = dir.path().join("state").join("uploads");
        let p = record_path(&nested, "appdata:1", "x.mdbk");
        write_record(&p, &rec).unwrap();
        let back = read_record(&p).unwrap();
        assert_eq!(back.uri, rec.uri);
        assert_eq!(back.acked, 524_288);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        fs::write(&p, b"{not json").unwrap();
        assert!(read_record(&p).is_none());
    }

    #[test]
    fn a_failed_sink_repeats_its_error() {
        let e = StoreError::Full("Your Google Drive is full: 15 GB used of 15 GB".into());
        assert_eq!(replicate(&e).to_string(), e.to_string());
        let e = StoreError::io("could not x", io::Error::from(io::ErrorKind::AlreadyExists));
        let r = replicate(&e);
        assert_eq!(r.to_string(), e.to_string());
    }
}
