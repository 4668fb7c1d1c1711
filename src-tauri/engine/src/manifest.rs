//! The manifest written at the end of every backup file, backup ids and backup file names.
//!
//! The manifest says what a backup holds (database, collections, counts, checksums) and whether
//! the export finished for every collection. A backup file without a manifest was never finished.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

/// The version of the backup file format this build writes and the newest one it reads.
pub const FORMAT_VERSION: u32 = 1;

/// A manifest larger than this is treated as corrupt (a real one is a few hundred bytes per
/// collection).
pub const MAX_MANIFEST_BYTES: usize = 16 * 1024 * 1024;

/// A manifest listing more collections than this is treated as corrupt.
pub const MAX_COLLECTIONS: usize = 100_000;

/// File extension of a backup file.
pub const BACKUP_EXTENSION: &str = "mdbk";

const FILE_PREFIX: &str = "driveback-";
const FILE_TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";
const MAX_DB_NAME_CHARS: usize = 64;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// Version of the Driveback build that made the backup.
    pub app_version: String,
    /// Short id, 8 lowercase hex characters.
    pub backup_id: String,
    pub database: String,
    pub server_version: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// Whether all collections were read at one point in time.
    pub point_in_time: bool,
    /// How the read was made, in words (e.g. "one snapshot transaction").
    pub consistency: String,
    pub collections: Vec<CollectionEntry>,
    pub status: BackupStatus,
    /// The incremental layout: the backup's place in its chain (docs/FORMAT.md). `None`: a
    /// one-file backup. In an increment, `collections` describes the database as the whole chain
    /// restores it (documents, bytes and CRC-64 of each collection as a full backup would hold
    /// it), which is what a restore of the chain checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ManifestChain>,
}

/// A backup's place in a chain of the incremental layout, as its manifest records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestChain {
    /// "full" (the chain's first backup) or "increment".
    pub kind: String,
    /// The id of the chain's full backup.
    pub chain: String,
    /// The backup an increment holds the changes since: its id and the SHA-256 of its file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentRef {
    pub id: String,
    pub sha256: String,
}

/// File extension of an increment of a chain (docs/FORMAT.md).
pub const INCREMENT_EXTENSION: &str = "mdbi";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectionEntry {
    pub name: String,
    /// "collection" or "view".
    pub kind: String,
    pub documents: u64,
    /// Bytes of BSON exported for this collection.
    pub bytes: u64,
    /// CRC-64 of the exported BSON, 16 lowercase hex digits.
    pub crc64: String,
    pub status: CollectionStatus,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum CollectionStatus {
    Ok,
    Failed { error: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupStatus {
    /// Every collection was exported.
    Complete,
    /// At least one collection failed; the others are usable.
    Partial,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(
        "this backup was made by a newer Driveback (format version {0}); update Driveback to restore it"
    )]
    UnknownVersion(u32),
    #[error("the backup's manifest is corrupt: {0}")]
    Corrupt(String),
}

/// Only the version, read before the rest so that a newer layout is reported as such and not
/// as damage.
#[derive(Deserialize)]
struct VersionProbe {
    format_version: u32,
}

impl Manifest {
    /// Saturating: a manifest read from a file may claim anything.
    pub fn total_documents(&self) -> u64 {
        self.collections
            .iter()
            .fold(0u64, |n, c| n.saturating_add(c.documents))
    }

    /// Saturating: a manifest read from a file may claim anything.
    pub fn total_bytes(&self) -> u64 {
        self.collections
            .iter()
            .fold(0u64, |n, c| n.saturating_add(c.bytes))
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a manifest always serialises")
    }

    pub fn from_json(b: &[u8]) -> Result<Self, ManifestError> {
        if b.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::Corrupt(format!(
                "it is {} bytes long (at most {MAX_MANIFEST_BYTES} expected)",
                b.len()
            )));
        }
        let probe: VersionProbe = serde_json::from_slice(b)
            .map_err(|e| ManifestError::Corrupt(format!("unreadable format version ({e})")))?;
        if probe.format_version > FORMAT_VERSION {
            return Err(ManifestError::UnknownVersion(probe.format_version));
        }
        if probe.format_version == 0 {
            return Err(ManifestError::Corrupt("format version 0".into()));
        }
        let manifest: Manifest =
            serde_json::from_slice(b).map_err(|e| ManifestError::Corrupt(e.to_string()))?;
        if manifest.collections.len() > MAX_COLLECTIONS {
            return Err(ManifestError::Corrupt(format!(
                "it lists {} collections (at most {MAX_COLLECTIONS} expected)",
                manifest.collections.len()
            )));
        }
        Ok(manifest)
    }
}

/// A new short backup id: 8 lowercase hex characters from the operating system's CSPRNG.
pub fn new_backup_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 4];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn is_backup_id(s: &str) -> bool {
    s.len() == 8
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn sanitize_db_name(database: &str) -> String {
    let name: String = database
        .chars()
        .take(MAX_DB_NAME_CHARS)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "_".to_string()
    } else {
        name
    }
}

/// `driveback-<db>-<yyyymmddThhmmssZ>-<id>.mdbk`; the database name is reduced to
/// `[A-Za-z0-9_.-]` (anything else becomes `_`) and at most 64 characters.
pub fn backup_file_name(database: &str, started: DateTime<Utc>, id: &str) -> String {
    format!(
        "{FILE_PREFIX}{}-{}-{id}.{BACKUP_EXTENSION}",
        sanitize_db_name(database),
        started.format(FILE_TIME_FORMAT)
    )
}

/// `driveback-<db>-<yyyymmddThhmmssZ>-<id>.mdbi`: an increment of a chain, named like a backup.
pub fn increment_file_name(database: &str, started: DateTime<Utc>, id: &str) -> String {
    let full = backup_file_name(database, started, id);
    let stem = full
        .strip_suffix(BACKUP_EXTENSION)
        .expect("a backup file name ends with its extension");
    format!("{stem}{INCREMENT_EXTENSION}")
}

/// Reads back the (sanitised) database name, start time and id from a backup (`.mdbk`) or
/// increment (`.mdbi`) file name.
pub fn parse_backup_file_name(name: &str) -> Option<(String, DateTime<Utc>, String)> {
    let rest = name.strip_prefix(FILE_PREFIX)?;
    let rest = rest
        .strip_suffix(BACKUP_EXTENSION)
        .or_else(|| rest.strip_suffix(INCREMENT_EXTENSION))?
        .strip_suffix('.')?;
    let (rest, id) = rest.rsplit_once('-')?;
    let (db, time) = rest.rsplit_once('-')?;
    if !is_backup_id(id) || db.is_empty() || db.chars().count() > MAX_DB_NAME_CHARS {
        return None;
    }
    if !db
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return None;
    }
    let started = NaiveDateTime::parse_from_str(time, FILE_TIME_FORMAT)
        .ok()?
        .and_utc();
    Some((db.to_string(), started, id.to_string()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    pub(crate) fn sample_manifest() -> Manifest {
        let started = Utc.with_ymd_and_hms(2024, 5, 17, 9, 30, 5).unwrap();
        Manifest {
            format_version: FORMAT_VERSION,
            app_version: crate::VERSION.to_string(),
            backup_id: "0a1b2c3d".into(),
            database: "shop".into(),
            server_version: "7.0.12".into(),
            started_at: started,
            finished_at: started + chrono::Duration::seconds(42),
            point_in_time: true,
            consistency: "one snapshot transaction".into(),
            collections: vec![
                CollectionEntry {
                    name: "orders".into(),
                    kind: "collection".into(),
                    documents: 1200,
                    bytes: 345_678,
                    crc64: "00112233445566ff".into(),
                    status: CollectionStatus::Ok,
                },
                CollectionEntry {
                    name: "big_orders".into(),
                    kind: "view".into(),
                    documents: 0,
                    bytes: 0,
                    crc64: "0000000000000000".into(),
                    status: CollectionStatus::Ok,
                },
                CollectionEntry {
                    name: "logs".into(),
                    kind: "collection".into(),
                    documents: 7,
                    bytes: 900,
                    crc64: "ffeeddccbbaa9988".into(),
                    status: CollectionStatus::Failed {
                        error: "cursor killed".into(),
                    },
                },
            ],
            status: BackupStatus::Partial,
            chain: None,
        }
    }

    #[test]
    fn json_round_trip_and_totals() {
        let m = sample_manifest();
        let json = m.to_json();
        assert_eq!(Manifest::from_json(&json).unwrap(), m);
        assert_eq!(m.total_documents(), 1207);
        assert_eq!(m.total_bytes(), 346_578);
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["status"], "partial");
        assert_eq!(v["collections"][0]["status"]["state"], "ok");
        assert_eq!(v["collections"][2]["status"]["state"], "failed");
        assert_eq!(v["collections"][2]["status"]["error"], "cursor killed");
    }

    #[test]
    fn newer_format_version_is_refused_with_a_clear_message() {
        // A newer layout may not even parse as this version's struct: the version is checked
        // first.
        let json = br#"{"format_version": 99, "something_new": [1, 2, 3]}"#;
        let err = Manifest::from_json(json).unwrap_err();
        assert!(matches!(err, ManifestError::UnknownVersion(99)));
        assert_eq!(
            err.to_string(),
            "this backup was made by a newer Driveback (format version 99); update Driveback to restore it"
        );
    }

    #[test]
    fn damaged_or_oversized_manifests_are_corrupt() {
        assert!(matches!(
            Manifest::from_json(b"{\"format_version\": 1, \"datab"),
            Err(ManifestError::Corrupt(_))
        ));
        assert!(matches!(
            Manifest::from_json(b"not json"),
            Err(ManifestError::Corrupt(_))
        ));
        let huge = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(matches!(
            Manifest::from_json(&huge),
            Err(ManifestError::Corrupt(_))
        ));

        let mut m = sample_manifest();
        let entry = m.collections[0].clone();
        m.collections = vec![entry; MAX_COLLECTIONS + 1];
        let json = m.to_json();
        assert!(json.len() <= MAX_MANIFEST_BYTES);
        let err = Manifest::from_json(&json).unwrap_err();
        assert!(err.to_string().contains("collections"), "{err}");
    }

    #[test]
    fn backup_ids_are_short_random_hex() {
        let a = new_backup_id();
        let b = new_backup_id();
        assert!(is_backup_id(&a), "{a}");
        assert!(is_backup_id(&b), "{b}");
        assert_ne!(a, b);
    }

    #[test]
    fn file_names_round_trip() {
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        let name = backup_file_name("my-shop.prod", t, "deadbeef");
        assert_eq!(
            name,
            "driveback-my-shop.prod-20240102T030405Z-deadbeef.mdbk"
        );
        assert_eq!(
            parse_backup_file_name(&name),
            Some(("my-shop.prod".to_string(), t, "deadbeef".to_string()))
        );
        let increment = increment_file_name("my-shop.prod", t, "deadbeef");
        assert_eq!(
            increment,
            "driveback-my-shop.prod-20240102T030405Z-deadbeef.mdbi"
        );
        assert_eq!(
            parse_backup_file_name(&increment),
            Some(("my-shop.prod".to_string(), t, "deadbeef".to_string()))
        );
    }

    #[test]
    fn file_names_sanitise_database_names() {
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        let name = backup_file_name("a/b c\\ü$", t, "00000000");
        assert_eq!(name, "driveback-a_b_c___-20240102T030405Z-00000000.mdbk");
        let long = "x".repeat(100);
        let name = backup_file_name(&long, t, "00000000");
        let (db, _, _) = parse_backup_file_name(&name).unwrap();
        assert_eq!(db, "x".repeat(64));
        assert_eq!(
            backup_file_name("", t, "00000000"),
            "driveback-_-20240102T030405Z-00000000.mdbk"
        );
    }

    #[test]
    fn foreign_names_do_not_parse() {
        for name in [
            "notes.txt",
            "driveback-key.pub",
            "driveback-key.age",
            "driveback-shop-20240102T030405Z-deadbeef.mdbk.json",
            "driveback-shop-20240102T030405Z-DEADBEEF.mdbk",
            "driveback-shop-20240102T030405Z-deadbee.mdbk",
            "driveback--20240102T030405Z-deadbeef.mdbk",
            "driveback-shop-20241302T030405Z-deadbeef.mdbk",
            "driveback-shop-2024-deadbeef.mdbk",
            ".driveback-shop-20240102T030405Z-deadbeef.mdbk.partial",
        ] {
            assert_eq!(parse_backup_file_name(name), None, "{name}");
        }
    }
}
