//! A destination that is a folder on a local or mounted disk (`folder:/path`).
//!
//! Layout:
//! - `.<file>.partial`: an upload in progress (or the leftover of an interrupted one);
//! - `<file>`: a backup file, renamed from its partial once fully written and synced;
//! - `<file>.json`: the sidecar, the commit mark, written last: the summary, size and SHA-256.
//!   A file without a valid sidecar is not a backup;
//! - side files such as the backup key files, replaced atomically (temporary file + rename).

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{BackupSummary, RemoteStore, StoreError, StoredBackup, UploadSink};

const PARTIAL_SUFFIX: &str = ".partial";
const SIDECAR_SUFFIX: &str = ".json";
const TEMP_SUFFIX: &str = ".tmp";
/// Sidecars and side files are small; anything larger is not ours.
const MAX_SMALL_FILE_BYTES: u64 = 1024 * 1024;
const WRITE_BUFFER_BYTES: usize = 256 * 1024;
const SIDECAR_VERSION: u32 = 1;

/// How `cleanup_incomplete` tells leftovers from uploads still running.
///
/// Uploads of this process are known exactly (they are registered while their sink lives).
/// Another process (the CLI while the app runs a scheduled backup, say) may be writing to the
/// same folder, so a partial file is only removed once nobody has written to it for this long.
/// A live upload writes far more often than that; one that stalls longer fails at commit.
pub const STALE_UPLOAD_AGE: Duration = Duration::from_secs(10 * 60);

/// Partial files being written by this process.
static ACTIVE_UPLOADS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn active_uploads() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    ACTIVE_UPLOADS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The commit mark stored next to each backup file.
#[derive(Serialize, Deserialize)]
struct Sidecar {
    driveback_sidecar: u32,
    file: String,
    bytes: u64,
    sha256: String,
    summary: BackupSummary,
}

pub struct FolderStore {
    root: PathBuf,
}

impl FolderStore {
    /// The folder need not exist yet: it is created on the first upload or side file.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder's entries; `None` while the folder does not exist yet.
    fn entries(&self) -> Result<Option<fs::ReadDir>, StoreError> {
        match fs::read_dir(&self.root) {
            Ok(entries) => Ok(Some(entries)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(
                format!("could not list the folder {}", self.root.display()),
                e,
            )),
        }
    }

    fn ensure_root(&self) -> Result<(), StoreError> {
        fs::create_dir_all(&self.root).map_err(|e| {
            StoreError::io(
                format!("could not create the folder {}", self.root.display()),
                e,
            )
        })
    }

    fn read_sidecar(&self, name: &str) -> Option<StoredBackup> {
        let path = self.root.join(name);
        let bytes = match read_small(&path) {
            Ok(Some(b)) => b,
            Ok(None) => return None,
            Err(e) => {
                tracing::debug!(file = %path.display(), error = %e, "skipping unreadable sidecar");
                return None;
            }
        };
        let sidecar: Sidecar = match serde_json::from_slice(&bytes) {
            Ok(s) => s,
            Err(_) => return None, // someone else's JSON file
        };
        let expected = name.strip_suffix(SIDECAR_SUFFIX)?;
        if sidecar.driveback_sidecar != SIDECAR_VERSION
            || sidecar.file != expected
            || check_name(&sidecar.file).is_err()
        {
            return None;
        }
        let file_path = self.root.join(&sidecar.file);
        match fs::metadata(&file_path) {
            Ok(m) if m.is_file() && m.len() == sidecar.bytes => {}
            Ok(m) => {
                tracing::warn!(
                    file = %file_path.display(),
                    recorded = sidecar.bytes,
                    actual = m.len(),
                    "backup file size does not match its sidecar; not listing it"
                );
                return None;
            }
            Err(_) => return None,
        }
        Some(StoredBackup {
            id: sidecar.summary.id,
            file: sidecar.file,
            bytes: sidecar.bytes,
            created: sidecar.summary.created,
            database: sidecar.summary.database,
            documents: sidecar.summary.documents,
            status: sidecar.summary.status,
            sha256: sidecar.sha256,
            signature: sidecar.summary.signature,
            link: sidecar.summary.link,
        })
    }

    /// A Driveback sidecar whose backup file is not there: left by a commit or a delete that
    /// was interrupted. (Cleaned up only once stale, like partial files: another process may be
    /// between writing a sidecar and renaming its file into place.)
    fn is_orphan_sidecar(&self, name: &str) -> bool {
        let Some(file) = name.strip_suffix(SIDECAR_SUFFIX) else {
            return false;
        };
        let Ok(Some(bytes)) = read_small(&self.root.join(name)) else {
            return false;
        };
        let Ok(sidecar) = serde_json::from_slice::<Sidecar>(&bytes) else {
            return false;
        };
        sidecar.driveback_sidecar == SIDECAR_VERSION
            && sidecar.file == file
            && check_name(file).is_ok()
            && !self.root.join(file).exists()
    }
}

impl RemoteStore for FolderStore {
    fn location(&self) -> String {
        format!("folder:{}", self.root.display())
    }

    fn list(&self) -> Result<Vec<StoredBackup>, StoreError> {
        let Some(entries) = self.entries()? else {
            return Ok(Vec::new());
        };
        let mut backups = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| {
                StoreError::io(
                    format!("could not list the folder {}", self.root.display()),
                    e,
                )
            })?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') || !name.ends_with(SIDECAR_SUFFIX) {
                continue;
            }
            if let Some(backup) = self.read_sidecar(&name) {
                backups.push(backup);
            }
        }
        backups.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.file.cmp(&a.file)));
        Ok(backups)
    }

    fn create(&self, file_name: &str) -> Result<Box<dyn UploadSink>, StoreError> {
        check_name(file_name)?;
        if file_name.ends_with(SIDECAR_SUFFIX) {
            return Err(bad_name(file_name, "it ends like a sidecar file"));
        }
        self.ensure_root()?;
        let final_path = self.root.join(file_name);
        let partial = self.root.join(format!(".{file_name}{PARTIAL_SUFFIX}"));
        if !active_uploads().insert(partial.clone()) {
            return Err(StoreError::io(
                format!("could not start writing {}", final_path.display()),
                io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "an upload of this file is already running",
                ),
            ));
        }
        // Created fresh and private: a file or symlink planted at the name is not followed.
        let file = match crate::settings::create_new_private(&partial) {
            Ok(f) => f,
            Err(e) => {
                active_uploads().remove(&partial);
                return Err(StoreError::io(
                    format!("could not create {}", partial.display()),
                    e,
                ));
            }
        };
        Ok(Box::new(FolderUpload {
            file: Some(BufWriter::with_capacity(WRITE_BUFFER_BYTES, file)),
            root: self.root.clone(),
            name: file_name.to_string(),
            partial,
            final_path,
            hasher: Sha256::new(),
            bytes: 0,
            finished: false,
        }))
    }

    fn open(&self, backup: &StoredBackup) -> Result<Box<dyn Read + Send>, StoreError> {
        check_name(&backup.file)?;
        let path = self.root.join(&backup.file);
        let file = File::open(&path)
            .map_err(|e| StoreError::io(format!("could not open {}", path.display()), e))?;
        Ok(Box::new(VerifyingReader {
            inner: file,
            hasher: Sha256::new(),
            seen: 0,
            expected_bytes: backup.bytes,
            expected_sha256: backup.sha256.to_ascii_lowercase(),
            state: VerifyState::Reading,
        }))
    }

    fn delete(&self, backup: &StoredBackup) -> Result<(), StoreError> {
        check_name(&backup.file)?;
        // The file first, renamed to a hidden partial name: once it is gone from its name the
        // backup is no longer listed, whatever happens next; an interruption leaves only
        // leftovers that `cleanup_incomplete` removes.
        let sidecar = self.root.join(format!("{}{SIDECAR_SUFFIX}", backup.file));
        let file = self.root.join(&backup.file);
        let doomed = self.root.join(format!(".{}{PARTIAL_SUFFIX}", backup.file));
        match fs::rename(&file, &doomed) {
            Ok(()) => sync_dir(&self.root),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::io(
                    format!("could not delete {}", file.display()),
                    e,
                ))
            }
        }
        crate::crash::crash_point("folder.delete_unlisted");
        for path in [&sidecar, &doomed] {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StoreError::io(
                        format!("could not delete {}", path.display()),
                        e,
                    ))
                }
            }
        }
        sync_dir(&self.root);
        Ok(())
    }

    fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_name(name)?;
        let path = self.root.join(name);
        read_small(&path)
    }

    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        check_name(name)?;
        self.ensure_root()?;
        write_atomic(&self.root, name, bytes)
    }

    fn list_side_files(&self, prefix: &str) -> Result<Vec<super::SideFile>, StoreError> {
        let Some(entries) = self.entries()? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(prefix) || check_name(&name).is_err() {
                continue;
            }
            // Gone since the listing: another process removed it.
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let modified = meta
                .modified()
                .map_err(|e| StoreError::io(format!("could not read the time of {name}"), e))?;
            out.push(super::SideFile {
                name,
                modified: modified.into(),
            });
        }
        Ok(out)
    }

    fn delete_side_file(&self, name: &str) -> Result<(), StoreError> {
        check_name(name)?;
        let path = self.root.join(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(
                format!("could not delete {}", path.display()),
                e,
            )),
        }
    }

    fn cleanup_incomplete(&self) -> Result<usize, StoreError> {
        let Some(entries) = self.entries()? else {
            return Ok(0);
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let leftover = if name.starts_with('.') {
                name.ends_with(PARTIAL_SUFFIX) || name.ends_with(TEMP_SUFFIX)
            } else {
                self.is_orphan_sidecar(&name)
            };
            if !leftover {
                continue;
            }
            let path = entry.path();
            if active_uploads().contains(&path) {
                continue;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let idle = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or(Duration::ZERO);
            if idle < STALE_UPLOAD_AGE {
                continue;
            }
            match fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(file = %path.display(), "removed an interrupted upload");
                    removed += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(StoreError::io(
                        format!("could not remove {}", path.display()),
                        e,
                    ))
                }
            }
        }
        Ok(removed)
    }
}

struct FolderUpload {
    file: Option<BufWriter<File>>,
    root: PathBuf,
    name: String,
    partial: PathBuf,
    final_path: PathBuf,
    hasher: Sha256,
    bytes: u64,
    finished: bool,
}

impl FolderUpload {
    fn writer(&mut self) -> io::Result<&mut BufWriter<File>> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("the upload is already finished"))
    }

    /// Writes out and syncs the partial file; refuses to go on if a file of the final name
    /// exists (a committed backup is never replaced).
    fn sync_partial(&mut self) -> Result<(), StoreError> {
        let ctx = |what: &str, p: &Path| format!("could not {what} {}", p.display());
        let writer = self.file.take().expect("commit runs once");
        let file = writer
            .into_inner()
            .map_err(|e| StoreError::io(ctx("write", &self.partial), e.into_error()))?;
        file.sync_all()
            .map_err(|e| StoreError::io(ctx("write", &self.partial), e))?;
        drop(file);
        crate::crash::crash_point("folder.synced");
        if self.final_path.exists() {
            return Err(StoreError::io(
                ctx("save", &self.final_path),
                io::Error::new(io::ErrorKind::AlreadyExists, "a file of that name exists"),
            ));
        }
        Ok(())
    }
}

/// Size and SHA-256 (hex) of a file, read from the disk.
fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let read = file.read(&mut buf)?;
        if read == 0 {
            break;
        }
        hasher.update(&buf[..read]);
        n += read as u64;
    }
    Ok((n, hex::encode(hasher.finalize())))
}

impl Write for FolderUpload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.writer()?.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        crate::crash::crash_point("folder.write");
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer()?.flush()
    }
}

impl UploadSink for FolderUpload {
    /// The sidecar first, then the rename: a backup file appears under its name only once its
    /// commit mark is there, so an interruption leaves nothing that looks like a backup, only
    /// leftovers that `cleanup_incomplete` removes (the partial file, a sidecar without a file).
    fn commit(mut self: Box<Self>, summary: &BackupSummary) -> Result<StoredBackup, StoreError> {
        self.sync_partial()?;
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        // Read the file back from the disk before it is marked committed: what is stored must be
        // what was written (a failing disk or a full network share can lose bytes silently).
        let (stored_bytes, stored_sha) = hash_file(&self.partial).map_err(|e| {
            StoreError::io(format!("could not read back {}", self.partial.display()), e)
        })?;
        if stored_bytes != self.bytes || stored_sha != sha256 {
            return Err(StoreError::Corrupt(format!(
                "{} does not read back as written ({stored_bytes} of {} bytes, or other bytes): the disk may be failing; nothing was kept",
                self.final_path.display(),
                self.bytes
            )));
        }
        let sidecar = Sidecar {
            driveback_sidecar: SIDECAR_VERSION,
            file: self.name.clone(),
            bytes: self.bytes,
            sha256: sha256.clone(),
            summary: summary.clone(),
        };
        let json = serde_json::to_vec_pretty(&sidecar).expect("a sidecar always serialises");
        let sidecar_name = format!("{}{SIDECAR_SUFFIX}", self.name);
        let sidecar_path = self.root.join(&sidecar_name);
        if sidecar_path.exists() {
            return Err(StoreError::io(
                format!("could not save {}", sidecar_path.display()),
                io::Error::new(io::ErrorKind::AlreadyExists, "a file of that name exists"),
            ));
        }
        write_atomic(&self.root, &sidecar_name, &json)?;
        crate::crash::crash_point("folder.sidecar_written");
        if let Err(e) = fs::rename(&self.partial, &self.final_path) {
            let _ = fs::remove_file(&sidecar_path);
            return Err(StoreError::io(
                format!("could not save {}", self.final_path.display()),
                e,
            ));
        }
        sync_dir(&self.root);
        self.finished = true;
        active_uploads().remove(&self.partial);
        Ok(StoredBackup {
            id: summary.id.clone(),
            file: self.name.clone(),
            bytes: self.bytes,
            created: summary.created,
            database: summary.database.clone(),
            documents: summary.documents,
            status: summary.status,
            sha256,
            signature: summary.signature.clone(),
            link: summary.link.clone(),
        })
    }

    fn verifies_on_commit(&self) -> bool {
        true
    }

    fn written(&self) -> (u64, String) {
        (self.bytes, hex::encode(self.hasher.clone().finalize()))
    }

    fn abort(mut self: Box<Self>) -> Result<(), StoreError> {
        self.file = None;
        self.finished = true;
        active_uploads().remove(&self.partial);
        match fs::remove_file(&self.partial) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(
                format!("could not remove {}", self.partial.display()),
                e,
            )),
        }
    }
}

impl Drop for FolderUpload {
    fn drop(&mut self) {
        if !self.finished {
            // Neither committed nor aborted (an error path): leave nothing behind.
            self.file = None;
            let _ = fs::remove_file(&self.partial);
            active_uploads().remove(&self.partial);
        }
    }
}

enum VerifyState {
    Reading,
    Verified,
    Mismatch,
}

/// Passes a backup file through, and at its end checks size and SHA-256 against the sidecar.
struct VerifyingReader {
    inner: File,
    hasher: Sha256,
    seen: u64,
    expected_bytes: u64,
    expected_sha256: String,
    state: VerifyState,
}

fn checksum_mismatch() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "the backup file does not match its recorded checksum",
    )
}

impl Read for VerifyingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.state {
            VerifyState::Verified => return Ok(0),
            VerifyState::Mismatch => return Err(checksum_mismatch()),
            VerifyState::Reading => {}
        }
        let n = self.inner.read(buf)?;
        self.seen += n as u64;
        self.hasher.update(&buf[..n]);
        let at_end = n == 0 && !buf.is_empty();
        if self.seen > self.expected_bytes
            || (at_end
                && (self.seen != self.expected_bytes
                    || hex::encode(std::mem::take(&mut self.hasher).finalize())
                        != self.expected_sha256))
        {
            self.state = VerifyState::Mismatch;
            return Err(checksum_mismatch());
        }
        if at_end {
            self.state = VerifyState::Verified;
        }
        Ok(n)
    }
}

/// Names at a destination are plain file names: no folders, nothing hidden.
fn check_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.starts_with('.') {
        return Err(bad_name(name, "names must not be empty or start with '.'"));
    }
    if name.contains(['/', '\\', '\0', ':']) {
        return Err(bad_name(name, "names must not contain / \\ : or NUL"));
    }
    if name.ends_with(PARTIAL_SUFFIX) || name.ends_with(TEMP_SUFFIX) {
        return Err(bad_name(
            name,
            "that ending is reserved for unfinished files",
        ));
    }
    Ok(())
}

fn bad_name(name: &str, why: &str) -> StoreError {
    StoreError::io(
        format!("cannot use the file name '{name}'"),
        io::Error::new(io::ErrorKind::InvalidInput, why.to_string()),
    )
}

/// Reads a small file; `None` if it does not exist; a file too large is not one of ours.
fn read_small(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StoreError::io(
                format!("could not read {}", path.display()),
                e,
            ))
        }
    };
    let mut bytes = Vec::new();
    file.take(MAX_SMALL_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| StoreError::io(format!("could not read {}", path.display()), e))?;
    if bytes.len() as u64 > MAX_SMALL_FILE_BYTES {
        return Err(StoreError::Corrupt(format!(
            "{} is larger than expected ({MAX_SMALL_FILE_BYTES} bytes at most)",
            path.display()
        )));
    }
    Ok(Some(bytes))
}

/// Replaces `dir/name` with `bytes` so that readers see the old or the new content, never a
/// mix: write a temporary file, sync it, rename it over the old one.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let target = dir.join(name);
    // An unpredictable name, created fresh: nothing planted at it is followed.
    let temp = dir.join(format!(
        ".{name}.{:016x}{TEMP_SUFFIX}",
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut f = crate::settings::create_new_private(&temp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        crate::crash::crash_point("folder.side_file_temp");
        fs::rename(&temp, &target)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(StoreError::io(
            format!("could not write {}", target.display()),
            e,
        ));
    }
    sync_dir(dir);
    Ok(())
}

/// Makes a rename durable (best effort: not every platform can sync a directory).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::BackupStatus;
    use crate::store::{open_store, parse_dest};
    use chrono::{TimeZone, Utc};

    fn summary(id: &str, hour: u32) -> BackupSummary {
        BackupSummary {
            id: id.into(),
            created: Utc.with_ymd_and_hms(2024, 6, 1, hour, 0, 0).unwrap(),
            database: "shop".into(),
            documents: 42,
            status: BackupStatus::Complete,
            format_version: 1,
            signature: None,
            link: None,
        }
    }

    fn upload(store: &dyn RemoteStore, name: &str, data: &[u8], s: &BackupSummary) -> StoredBackup {
        let mut sink = store.create(name).unwrap();
        for piece in data.chunks(1000) {
            sink.write_all(piece).unwrap();
        }
        sink.commit(s).unwrap()
    }

    fn read_all(store: &dyn RemoteStore, b: &StoredBackup) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        store.open(b).unwrap().read_to_end(&mut out)?;
        Ok(out)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    fn make_old(path: &Path) {
        let f = File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - STALE_UPLOAD_AGE - Duration::from_secs(60))
            .unwrap();
    }

    #[test]
    fn create_commit_list_find_open_delete() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("backups"); // created on demand
        let store =
            open_store(&parse_dest(&format!("folder:{}", root.display())).unwrap()).unwrap();
        assert_eq!(store.location(), format!("folder:{}", root.display()));
        assert!(store.list().unwrap().is_empty());

        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let s = summary("0000aaaa", 1);
        let stored = upload(store.as_ref(), "driveback-shop-a.mdbk", &data, &s);
        assert_eq!(stored.bytes, data.len() as u64);
        assert_eq!(stored.sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(stored.id, "0000aaaa");
        assert_eq!(stored.documents, 42);
        assert_eq!(
            names(&root),
            vec!["driveback-shop-a.mdbk", "driveback-shop-a.mdbk.json"]
        );

        assert_eq!(store.list().unwrap(), vec![stored.clone()]);
        assert_eq!(store.find("0000aaaa").unwrap(), stored);
        assert_eq!(store.find("driveback-shop-a.mdbk").unwrap(), stored);
        assert_eq!(store.find("latest").unwrap(), stored);
        let err = store.find("ffffffff").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("no backup 'ffffffff' at folder:{}", root.display())
        );

        assert_eq!(read_all(store.as_ref(), &stored).unwrap(), data);

        store.delete(&stored).unwrap();
        assert!(store.list().unwrap().is_empty());
        assert!(names(&root).is_empty());
        assert!(matches!(
            store.find("latest"),
            Err(StoreError::NotFound { .. })
        ));
        // Deleting again is harmless.
        store.delete(&stored).unwrap();
    }

    #[test]
    fn list_is_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path());
        upload(&store, "b.mdbk", b"two", &summary("00000002", 2));
        upload(&store, "a.mdbk", b"three", &summary("00000003", 3));
        upload(&store, "c.mdbk", b"one", &summary("00000001", 1));
        let ids: Vec<String> = store.list().unwrap().into_iter().map(|b| b.id).collect();
        assert_eq!(ids, ["00000003", "00000002", "00000001"]);
        assert_eq!(store.find("latest").unwrap().id, "00000003");
    }

    #[test]
    fn uncommitted_uploads_are_never_listed_and_are_cleaned_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path());

        // An upload in progress: invisible, and safe from cleanup even when idle for long.
        let mut running = store.create("running.mdbk").unwrap();
        running.write_all(b"half a backup").unwrap();
        running.flush().unwrap();
        let running_partial = dir.path().join(".running.mdbk.partial");
        make_old(&running_partial);

        // Leftovers of a crashed process: an old partial and an old temporary side file.
        let crashed = dir.path().join(".crashed.mdbk.partial");
        fs::write(&crashed, b"never finished").unwrap();
        make_old(&crashed);
        let old_temp = dir.path().join(".driveback-key.age.999.tmp");
        fs::write(&old_temp, b"x").unwrap();
        make_old(&old_temp);
        // A partial another process may still be writing (recently modified).
        let recent = dir.path().join(".other-process.mdbk.partial");
        fs::write(&recent, b"being written").unwrap();

        assert!(store.list().unwrap().is_empty());
        assert_eq!(store.cleanup_incomplete().unwrap(), 2);
        assert!(!crashed.exists());
        assert!(!old_temp.exists());
        assert!(recent.exists());
        assert!(running_partial.exists());

        // Aborting removes the partial; so does dropping an upload without committing.
        running.abort().unwrap();
        assert!(!running_partial.exists());
        let mut dropped = store.create("dropped.mdbk").unwrap();
        dropped.write_all(b"abc").unwrap();
        drop(dropped);
        assert!(!dir.path().join(".dropped.mdbk.partial").exists());
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn a_tampered_file_fails_its_checksum_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path());
        let data = vec![7u8; 100_000];
        let stored = upload(&store, "x.mdbk", &data, &summary("0000000a", 1));

        // Same size, one byte changed: still listed, but reading it to the end fails.
        let path = dir.path().join("x.mdbk");
        let mut bytes = fs::read(&path).unwrap();
        bytes[50_000] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(store.list().unwrap().len(), 1);
        let err = read_all(&store, &stored).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            err.to_string(),
            "the backup file does not match its recorded checksum"
        );

        // A file that grew or shrank no longer matches its sidecar and is not listed.
        fs::write(&path, &bytes[..1000]).unwrap();
        assert!(store.list().unwrap().is_empty());
        let err = read_all(&store, &stored).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn foreign_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path());
        let stored = upload(&store, "real.mdbk", b"data", &summary("0000000b", 1));
        fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
        fs::write(dir.path().join("other.mdbk"), b"no sidecar").unwrap();
        fs::write(dir.path().join("config.json"), br#"{"a": 1}"#).unwrap();
        fs::write(dir.path().join("broken.json"), b"{not json").unwrap();
        fs::write(
            dir.path().join("orphan.mdbk.json"),
            fs::read(dir.path().join("real.mdbk.json")).unwrap(),
        )
        .unwrap();
        fs::create_dir(dir.path().join("sub.json")).unwrap();
        assert_eq!(store.list().unwrap(), vec![stored]);
    }

    #[test]
    fn side_files_are_read_and_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("new-folder");
        let store = FolderStore::new(&root);
        assert_eq!(store.read_file("driveback-key.pub").unwrap(), None);
        store.write_file("driveback-key.pub", b"age1first").unwrap();
        store
            .write_file("driveback-key.pub", b"age1second")
            .unwrap();
        assert_eq!(
            store.read_file("driveback-key.pub").unwrap().unwrap(),
            b"age1second"
        );
        assert_eq!(names(&root), vec!["driveback-key.pub"]);
        for bad in ["../escape", "a/b", ".hidden", "", "x.partial"] {
            assert!(store.write_file(bad, b"x").is_err(), "{bad}");
            assert!(store.read_file(bad).is_err(), "{bad}");
        }
        fs::write(root.join("huge"), vec![0u8; 2 * 1024 * 1024]).unwrap();
        assert!(matches!(
            store.read_file("huge"),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_planted_at_an_upload_name_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim.txt");
        fs::write(&victim, b"precious").unwrap();
        let root = dir.path().join("dest");
        fs::create_dir_all(&root).unwrap();
        let name = "driveback-shop-20240601T010000Z-0000abcd.mdbk";
        std::os::unix::fs::symlink(&victim, root.join(format!(".{name}{PARTIAL_SUFFIX}"))).unwrap();
        let store = FolderStore::new(&root);
        assert!(
            store.create(name).is_err(),
            "an upload through the planted link"
        );
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        // Side files go through fresh, unpredictable temporary names, private to the user.
        store
            .write_file("driveback-key.pub", b"age1example\n")
            .unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(root.join("driveback-key.pub"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }

    #[test]
    fn the_same_file_cannot_be_uploaded_twice_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::new(dir.path());
        let first = store.create("same.mdbk").unwrap();
        assert!(store.create("same.mdbk").is_err());
        first.abort().unwrap();
        let second = store.create("same.mdbk").unwrap();
        second.commit(&summary("0000000c", 1)).unwrap();
        // A committed backup is not overwritten by a later upload of the same name.
        let mut third = store.create("same.mdbk").unwrap();
        third.write_all(b"other").unwrap();
        assert!(third.commit(&summary("0000000d", 2)).is_err());
        assert_eq!(store.list().unwrap().len(), 1);
        assert_eq!(store.list().unwrap()[0].id, "0000000c");
    }
}
