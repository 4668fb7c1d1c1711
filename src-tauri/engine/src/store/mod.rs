//! Destinations that hold backup files: the `RemoteStore` trait and how a destination is named.
//!
//! A store holds backup files plus small side files (the backup key's public and wrapped
//! halves). An upload becomes a backup only when it is committed; interrupted uploads are never
//! listed.

pub mod drive;
pub mod folder;

use std::io::{self, Read, Write};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::manifest::BackupStatus;

/// A committed backup at a destination.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredBackup {
    /// Short backup id (8 hex characters).
    pub id: String,
    /// File name at the destination.
    pub file: String,
    /// Size of the encrypted file.
    pub bytes: u64,
    pub created: DateTime<Utc>,
    pub database: String,
    pub documents: u64,
    pub status: BackupStatus,
    /// SHA-256 of the encrypted file, lowercase hex.
    pub sha256: String,
    /// The commit mark's signature (see `authenticity`); `None`: the mark has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Where the backup sits in a chain of the incremental layout; `None`: a one-file backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<ChainLink>,
}

impl StoredBackup {
    /// Whether this holds only the changes since its parent (an increment of a chain).
    pub fn is_increment(&self) -> bool {
        self.link.as_ref().is_some_and(|l| l.parent.is_some())
    }

    /// Whether this is the backup `child` holds the changes since: the parent it names, of the
    /// same database and chain, and not newer than it.
    pub fn is_parent_of(&self, child: &StoredBackup) -> bool {
        let Some(link) = &child.link else {
            return false;
        };
        link.parent.as_deref() == Some(self.id.as_str())
            && self.database == child.database
            && self.created <= child.created
            && self.link.as_ref().is_some_and(|l| l.chain == link.chain)
    }
}

/// A backup's place in a chain of the incremental layout (docs/FORMAT.md): the chain's full
/// backup, and the backup this one holds the changes since. Signed with the rest of the commit
/// mark, so a chain cannot be reordered or spliced by someone who can only write files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    /// The id of the chain's full backup (a full backup of the layout names itself).
    pub chain: String,
    /// The id of the previous backup of the chain; `None` for the chain's full backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// A small side file at a destination, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SideFile {
    pub name: String,
    /// When it was last written, by the destination's clock.
    pub modified: DateTime<Utc>,
}

/// What the backup run knows about a backup when it commits it (from its manifest).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupSummary {
    pub id: String,
    pub created: DateTime<Utc>,
    pub database: String,
    pub documents: u64,
    pub status: BackupStatus,
    pub format_version: u32,
    /// The signature the commit mark carries (see `authenticity::Signer::commit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The backup's place in a chain of the incremental layout; `None`: a one-file backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<ChainLink>,
}

/// A destination for backups. Blocking I/O: callers run it on blocking threads.
pub trait RemoteStore: Send + Sync {
    /// Where this is, for messages, e.g. `folder:/path`.
    fn location(&self) -> String;

    /// Committed backups only, newest first; files that are not Driveback backups are ignored.
    fn list(&self) -> Result<Vec<StoredBackup>, StoreError>;

    /// Starts uploading a backup file; nothing is visible until the sink is committed.
    fn create(&self, file_name: &str) -> Result<Box<dyn UploadSink>, StoreError>;

    /// Reads a backup file.
    fn open(&self, backup: &StoredBackup) -> Result<Box<dyn Read + Send>, StoreError>;

    fn delete(&self, backup: &StoredBackup) -> Result<(), StoreError>;

    /// Reads a small side file (such as the backup key files); `None` if it does not exist.
    fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Writes a small side file, atomically replacing any previous version.
    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError>;

    /// Removes what interrupted uploads left behind; returns how many were removed.
    fn cleanup_incomplete(&self) -> Result<usize, StoreError>;

    /// The small side files whose names start with `prefix` (the lock files of
    /// [`crate::lock`]), each with when the destination last saw it written, by the
    /// destination's clock.
    fn list_side_files(&self, prefix: &str) -> Result<Vec<SideFile>, StoreError>;

    /// Deletes a small side file; one that is gone already is not an error.
    fn delete_side_file(&self, name: &str) -> Result<(), StoreError>;

    /// Writes a new small side file under a name nobody uses yet (a lock file's random name):
    /// a destination may skip looking for one to replace.
    fn create_side_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.write_file(name, bytes)
    }

    /// Space used and available, for destinations with a quota (`None`: no quota known).
    fn quota(&self) -> Result<Option<Quota>, StoreError> {
        Ok(None)
    }

    /// What the last `list` left out because it does not count as the user's backup (see
    /// `authenticity`); plain stores leave nothing out.
    fn ignored(&self) -> Vec<crate::authenticity::Ignored> {
        Vec::new()
    }

    /// Finds a backup by short id, full file name, or `latest`.
    fn find(&self, id: &str) -> Result<StoredBackup, StoreError> {
        pick(self.list()?, id).ok_or_else(|| StoreError::NotFound {
            id: id.to_string(),
            location: self.location(),
        })
    }
}

/// The backup `id` names in a listing (newest first): `latest`, an id or a file name.
pub fn pick(backups: Vec<StoredBackup>, id: &str) -> Option<StoredBackup> {
    if id == "latest" {
        backups.into_iter().next()
    } else {
        backups.into_iter().find(|b| b.id == id || b.file == id)
    }
}

/// An upload in progress. Dropping it without `commit` leaves no backup behind.
pub trait UploadSink: Write + Send {
    /// Makes the backup visible (the commit mark). The sink has hashed (SHA-256) and counted
    /// the bytes as they were written, so nothing is read back.
    fn commit(self: Box<Self>, summary: &BackupSummary) -> Result<StoredBackup, StoreError>;

    /// Discards the upload.
    fn abort(self: Box<Self>) -> Result<(), StoreError>;

    /// Bytes written so far and their SHA-256 (lowercase hex): what the commit mark will say.
    fn written(&self) -> (u64, String);

    /// Whether a successful `commit` means the destination checked what it stored against the
    /// size and SHA-256 computed while writing (Google Drive compares its own checksum of the
    /// file; a folder only hashes the bytes on their way to the disk).
    fn verifies_on_commit(&self) -> bool {
        false
    }
}

/// Storage used at a destination with a quota.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quota {
    /// How the destination is named in messages, e.g. "Your Google Drive".
    pub label: String,
    pub used: u64,
    /// `None` for an unlimited account.
    pub limit: Option<u64>,
}

impl Quota {
    pub fn free(&self) -> Option<u64> {
        self.limit.map(|l| l.saturating_sub(self.used))
    }
}

/// Before a backup: a warning when the destination's free space is smaller than the expected
/// size of the backup (`None`: enough space, or no quota known).
pub fn low_space_warning(
    store: &dyn RemoteStore,
    expected_bytes: u64,
) -> Result<Option<String>, StoreError> {
    let Some(q) = store.quota()? else {
        return Ok(None);
    };
    Ok(space_warning(&q, expected_bytes))
}

/// The warning of [`low_space_warning`] for a known quota.
pub fn space_warning(q: &Quota, expected_bytes: u64) -> Option<String> {
    let (free, limit) = (q.free()?, q.limit?);
    (free < expected_bytes).then(|| {
        format!(
            "{} has {} free ({} used of {}); this backup needs about {}",
            q.label,
            drive::human_bytes(free),
            drive::human_bytes(q.used),
            drive::human_bytes(limit),
            drive::human_bytes(expected_bytes)
        )
    })
}

/// A destination, as named by the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    /// `folder:/path`: a local or mounted folder.
    Folder(PathBuf),
    /// `drive` or `drive:appdata` (the hidden app folder), `drive:folder` (a visible folder):
    /// the connected Google account's Drive.
    Drive(drive::DriveLocation),
}

impl Dest {
    pub fn location(&self) -> String {
        match self {
            Dest::Folder(path) => format!("folder:{}", path.display()),
            Dest::Drive(loc) => loc.dest_name().to_string(),
        }
    }
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.location())
    }
}

const DEST_HELP: &str = "use folder:/path, drive, or drive:folder";

pub fn parse_dest(s: &str) -> Result<Dest, StoreError> {
    match s {
        "drive" | "drive:appdata" => return Ok(Dest::Drive(drive::DriveLocation::AppData)),
        "drive:folder" => return Ok(Dest::Drive(drive::DriveLocation::Folder)),
        _ => {}
    }
    if let Some(path) = s.strip_prefix("folder:") {
        if path.trim().is_empty() {
            return Err(StoreError::InvalidDest(format!(
                "destination '{s}' names no folder (use folder:/path)"
            )));
        }
        return Ok(Dest::Folder(PathBuf::from(path)));
    }
    Err(StoreError::InvalidDest(format!(
        "unknown destination '{s}' ({DEST_HELP})"
    )))
}

/// Opens a destination that needs nothing but its name. A Google Drive destination needs the
/// connected account: open it with [`drive::DriveStore::new`].
pub fn open_store(dest: &Dest) -> Result<Box<dyn RemoteStore>, StoreError> {
    match dest {
        Dest::Folder(path) => Ok(Box::new(folder::FolderStore::new(path.clone()))),
        Dest::Drive(_) => Err(StoreError::InvalidDest(format!(
            "{dest} needs a connected Google account"
        ))),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no backup '{id}' at {location}")]
    NotFound { id: String, location: String },
    #[error("{context}: {}", describe_io(source))]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    InvalidDest(String),
    #[error("{0}")]
    Corrupt(String),
    /// The destination's account must be connected again (e.g. "Google Drive needs
    /// reconnecting: ...").
    #[error("{0}")]
    Auth(String),
    /// The destination's storage is full (e.g. "Your Google Drive is full: N GB used of M GB").
    #[error("{0}")]
    Full(String),
    /// A remote destination failed, with what was being done.
    #[error("{0}")]
    Remote(String),
}

impl StoreError {
    /// An I/O error with what was being done, e.g. "could not write /backups/x.mdbk".
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        StoreError::Io {
            context: context.into(),
            source,
        }
    }

    /// Whether the destination ran out of space.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => is_disk_full(source),
            StoreError::Full(_) => true,
            _ => false,
        }
    }
}

fn is_disk_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
}

fn describe_io(e: &io::Error) -> String {
    if is_disk_full(e) {
        "the destination disk is full".to_string()
    } else if e.kind() == io::ErrorKind::QuotaExceeded {
        "the destination's disk quota is exceeded".to_string()
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse() {
        assert_eq!(
            parse_dest("folder:/var/backups").unwrap(),
            Dest::Folder(PathBuf::from("/var/backups"))
        );
        assert_eq!(
            parse_dest("folder:/var/backups").unwrap().to_string(),
            "folder:/var/backups"
        );
        let err = parse_dest("drive:xyz").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown destination 'drive:xyz' (use folder:/path, drive, or drive:folder)"
        );
        use drive::DriveLocation;
        assert_eq!(
            parse_dest("drive").unwrap(),
            Dest::Drive(DriveLocation::AppData)
        );
        assert_eq!(
            parse_dest("drive:appdata").unwrap(),
            Dest::Drive(DriveLocation::AppData)
        );
        assert_eq!(
            parse_dest("drive:folder").unwrap(),
            Dest::Drive(DriveLocation::Folder)
        );
        assert_eq!(parse_dest("drive").unwrap().to_string(), "drive:appdata");
        assert_eq!(
            parse_dest("drive:folder").unwrap().to_string(),
            "drive:folder"
        );
        assert!(matches!(
            open_store(&parse_dest("drive").unwrap()),
            Err(StoreError::InvalidDest(_))
        ));
        assert!(matches!(
            parse_dest("folder:"),
            Err(StoreError::InvalidDest(_))
        ));
        assert!(matches!(
            parse_dest("/just/a/path"),
            Err(StoreError::InvalidDest(_))
        ));
    }

    #[test]
    fn a_full_disk_is_named_as_such() {
        let e = StoreError::io(
            "could not write /b/x.mdbk",
            io::Error::from(io::ErrorKind::StorageFull),
        );
        assert!(e.is_disk_full());
        assert_eq!(
            e.to_string(),
            "could not write /b/x.mdbk: the destination disk is full"
        );
        #[cfg(target_os = "linux")]
        {
            // ENOSPC as the OS reports it.
            let e = StoreError::io("could not write /b", io::Error::from_raw_os_error(28));
            assert_eq!(
                e.to_string(),
                "could not write /b: the destination disk is full"
            );
        }
        let e = StoreError::io(
            "could not read /b",
            io::Error::from(io::ErrorKind::NotFound),
        );
        assert!(!e.is_disk_full());
        assert!(e.to_string().starts_with("could not read /b: "));
    }

    #[test]
    fn low_space_is_warned_about() {
        let q = Quota {
            label: "Your Google Drive".into(),
            used: 14 << 30,
            limit: Some(15 << 30),
        };
        assert_eq!(space_warning(&q, 512 << 20), None);
        assert_eq!(
            space_warning(&q, 3 << 30).unwrap(),
            "Your Google Drive has 1 GB free (14 GB used of 15 GB); this backup needs about 3 GB"
        );
        let unlimited = Quota { limit: None, ..q };
        assert_eq!(space_warning(&unlimited, u64::MAX), None);
        assert!(StoreError::Full("Your Google Drive is full".into()).is_disk_full());
    }

    #[test]
    fn not_found_names_the_destination() {
        let e = StoreError::NotFound {
            id: "latest".into(),
            location: "folder:/b".into(),
        };
        assert_eq!(e.to_string(), "no backup 'latest' at folder:/b");
    }
}
