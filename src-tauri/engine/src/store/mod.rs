//! Destinations that hold backup files: the `RemoteStore` trait and how a destination is named.
//!
//! A store holds backup files plus small side files (the backup key's public and wrapped
//! halves). An upload becomes a backup only when it is committed; interrupted uploads are never
//! listed.

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

    /// Finds a backup by short id, full file name, or `latest`.
    fn find(&self, id: &str) -> Result<StoredBackup, StoreError> {
        let backups = self.list()?;
        let found = if id == "latest" {
            backups.into_iter().next()
        } else {
            backups.into_iter().find(|b| b.id == id || b.file == id)
        };
        found.ok_or_else(|| StoreError::NotFound {
            id: id.to_string(),
            location: self.location(),
        })
    }
}

/// An upload in progress. Dropping it without `commit` leaves no backup behind.
pub trait UploadSink: Write + Send {
    /// Makes the backup visible (the commit mark). The sink has hashed (SHA-256) and counted
    /// the bytes as they were written, so nothing is read back.
    fn commit(self: Box<Self>, summary: &BackupSummary) -> Result<StoredBackup, StoreError>;

    /// Discards the upload.
    fn abort(self: Box<Self>) -> Result<(), StoreError>;
}

/// A destination, as named by the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dest {
    /// `folder:/path`: a local or mounted folder.
    Folder(PathBuf),
}

impl Dest {
    pub fn location(&self) -> String {
        match self {
            Dest::Folder(path) => format!("folder:{}", path.display()),
        }
    }
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.location())
    }
}

pub fn parse_dest(s: &str) -> Result<Dest, StoreError> {
    if let Some(path) = s.strip_prefix("folder:") {
        if path.trim().is_empty() {
            return Err(StoreError::InvalidDest(format!(
                "destination '{s}' names no folder (use folder:/path)"
            )));
        }
        return Ok(Dest::Folder(PathBuf::from(path)));
    }
    Err(StoreError::InvalidDest(format!(
        "unknown destination '{s}' (use folder:/path)"
    )))
}

pub fn open_store(dest: &Dest) -> Result<Box<dyn RemoteStore>, StoreError> {
    match dest {
        Dest::Folder(path) => Ok(Box::new(folder::FolderStore::new(path.clone()))),
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
        matches!(self, StoreError::Io { source, .. } if is_disk_full(source))
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
            "unknown destination 'drive:xyz' (use folder:/path)"
        );
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
    fn not_found_names_the_destination() {
        let e = StoreError::NotFound {
            id: "latest".into(),
            location: "folder:/b".into(),
        };
        assert_eq!(e.to_string(), "no backup 'latest' at folder:/b");
    }
}
