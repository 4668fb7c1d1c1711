//! The history of backup runs on this device: an append-only file of JSON lines in the app's data
//! folder, each line carrying its own checksum so that a line torn by a crash (or damaged on
//! disk) is recognised and skipped instead of making the whole history unreadable.
//!
//! Line format: `<crc32 of the JSON, 8 hex digits> <JSON>\n`. Appends are one `write` with
//! `O_APPEND` followed by an fsync; the file is bounded to the last [`MAX_RECORDS`] runs (it is
//! rewritten atomically, temporary file + rename, when it grows past that by a margin).
//! One process writes at a time in practice (the app or `driveback daemon`); appends from two
//! processes interleave whole lines, but a compaction racing another process's append may drop
//! that one line.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// File name inside the data folder.
pub const HISTORY_FILE: &str = "history.jsonl";

/// How many runs are kept.
pub const MAX_RECORDS: usize = 1000;

/// The file is compacted once it holds this many more lines than [`MAX_RECORDS`].
const COMPACT_MARGIN: usize = 100;

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// What started a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The user tapped Back up (or ran the CLI).
    Manual,
    /// The scheduler (including the catch-up of a missed slot).
    Scheduled,
}

/// What kind of job ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    #[default]
    Backup,
    /// An email report about a backup run (`job_id` is the run's); `Partial` when it went out
    /// without the backup copy that was asked for.
    Email,
    /// The weekly summary email.
    EmailSummary,
    /// A test restore of a backup into a scratch database (`Failed` with the code
    /// `audit_skipped` when the server refused it).
    Audit,
    /// A scheduled full read of the newest backup (decrypt, counts, checksums).
    Verify,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A complete backup was made.
    Success,
    /// A backup was made, but some collections are missing from it.
    Partial,
    Failed,
    Cancelled,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Success => "succeeded",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// Why a run failed: a stable code for the UI and one line for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    pub code: String,
    pub message: String,
}

/// One run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub job_id: String,
    #[serde(default)]
    pub kind: RunKind,
    pub trigger: Trigger,
    pub started: DateTime<Utc>,
    pub ended: DateTime<Utc>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// Size of the backup file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documents: Option<u64>,
    /// Whether the destination checked the stored bytes against the SHA-256 computed while
    /// uploading (Google Drive does, on commit); `None` when that was not done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// How many old backups retention deleted after this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    /// What the backup's data showed (a collection that lost documents or vanished).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<crate::alarms::DataWarning>,
}

impl RunRecord {
    /// Whether the run produced a complete backup.
    pub fn is_good(&self) -> bool {
        self.kind == RunKind::Backup && self.outcome == Outcome::Success
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct HistoryError {
    context: String,
    #[source]
    source: io::Error,
}

/// The history file. Cheap to share (`Arc`); appends from one process are serialised.
pub struct History {
    path: PathBuf,
    /// Lines in the file, once known.
    lines: Mutex<Option<usize>>,
}

/// Whether the file is empty or ends with a newline (a torn last line does not).
fn ends_with_newline(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = fs::File::open(path) else {
        return true;
    };
    if f.metadata().map_or(true, |m| m.len() == 0) {
        return true;
    }
    let mut last = [0u8; 1];
    f.seek(SeekFrom::End(-1))
        .and_then(|_| f.read_exact(&mut last))
        .map_or(true, |_| last[0] == b'\n')
}

fn encode(record: &RunRecord) -> String {
    let json = serde_json::to_string(record).expect("a run record always serialises");
    format!("{:08x} {json}\n", CRC32.checksum(json.as_bytes()))
}

fn decode(line: &str) -> Option<RunRecord> {
    let (sum, json) = line.split_once(' ')?;
    let sum = u32::from_str_radix(sum, 16).ok()?;
    if sum != CRC32.checksum(json.as_bytes()) {
        return None;
    }
    serde_json::from_str(json).ok()
}

impl History {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        History {
            path: path.into(),
            lines: Mutex::new(None),
        }
    }

    /// The history in the app's data folder (`settings::data_dir`).
    pub fn open_default() -> Result<Self, crate::settings::SettingsError> {
        Ok(History::new(
            crate::settings::data_dir()?.join(HISTORY_FILE),
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, what: &str, source: io::Error) -> HistoryError {
        HistoryError {
            context: format!(
                "could not {what} the backup history {}",
                self.path.display()
            ),
            source,
        }
    }

    /// Every readable run, oldest first. Damaged lines are skipped (and logged).
    pub fn load(&self) -> Result<Vec<RunRecord>, HistoryError> {
        let text = match fs::read(&self.path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(self.err("read", e)),
        };
        let mut records = Vec::new();
        let mut damaged = 0usize;
        let mut lines = 0usize;
        for line in text.split_inclusive('\n') {
            lines += 1;
            // The checksum decides, not the newline: a last line that lost only its newline
            // is whole (and the next append completes it), a torn one fails its checksum.
            match decode(line.trim_end_matches('\n')) {
                Some(r) => records.push(r),
                None => damaged += 1,
            }
        }
        if damaged > 0 {
            tracing::warn!(file = %self.path.display(), damaged, "skipped damaged lines of the backup history");
        }
        *self.lines.lock().unwrap_or_else(|p| p.into_inner()) = Some(lines);
        Ok(records)
    }

    /// Appends one run (durably: fsync before returning).
    pub fn append(&self, record: &RunRecord) -> Result<(), HistoryError> {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let known = match *lines {
            Some(n) => n,
            None => {
                drop(lines);
                self.load()?;
                lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
                lines.unwrap_or(0)
            }
        };
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(|e| self.err("create the folder of", e))?;
        }
        let line = encode(record);
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        // The history names databases and places: this user's only.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&self.path).map_err(|e| self.err("open", e))?;
        // A previous crash may have left a torn last line: start on a fresh line.
        let needs_newline = !ends_with_newline(&self.path);
        let data = if needs_newline {
            format!("\n{line}")
        } else {
            line
        };
        f.write_all(data.as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|e| self.err("write", e))?;
        let total = known + 1 + usize::from(needs_newline);
        *lines = Some(total);
        if total > MAX_RECORDS + COMPACT_MARGIN {
            drop(lines);
            self.compact()?;
        }
        Ok(())
    }

    /// Keeps only the newest [`MAX_RECORDS`] runs (and drops damaged lines).
    pub fn compact(&self) -> Result<(), HistoryError> {
        let records = self.load()?;
        let keep = &records[records.len().saturating_sub(MAX_RECORDS)..];
        let text: String = keep.iter().map(encode).collect();
        crate::settings::write_atomic(&self.path, text.as_bytes())
            .map_err(|e| self.err("rewrite", e))?;
        *self.lines.lock().unwrap_or_else(|p| p.into_inner()) = Some(keep.len());
        Ok(())
    }
}

/// When the last backup run ended (what the schedule needs), whatever its outcome.
pub fn last_attempt(records: &[RunRecord]) -> Option<DateTime<Utc>> {
    records
        .iter()
        .rev()
        .find(|r| r.kind == RunKind::Backup)
        .map(|r| r.ended)
}

/// How the latest backup runs (newest first) ended, as the schedule sees them.
pub fn attempts<'a>(
    records_newest_first: impl IntoIterator<Item = &'a RunRecord>,
) -> Vec<(DateTime<Utc>, crate::schedule::Attempt)> {
    records_newest_first
        .into_iter()
        .filter(|r| r.kind == RunKind::Backup)
        .map(|r| {
            (
                r.ended,
                crate::schedule::Attempt::of(r.outcome, r.error.as_ref().map(|e| e.code.as_str())),
            )
        })
        .take(crate::schedule::RECENT_ATTEMPTS)
        .collect()
}

/// The last run that made a complete backup.
pub fn last_success(records: &[RunRecord]) -> Option<&RunRecord> {
    records.iter().rev().find(|r| r.is_good())
}

/// Share of backup runs started since `since` that made a complete backup; runs the user
/// cancelled do not count either way. `None` when there were none.
pub fn success_rate(records: &[RunRecord], since: DateTime<Utc>) -> Option<f64> {
    let (good, all) = records
        .iter()
        .filter(|r| {
            r.kind == RunKind::Backup && r.started >= since && r.outcome != Outcome::Cancelled
        })
        .fold((0usize, 0usize), |(g, a), r| {
            (g + usize::from(r.is_good()), a + 1)
        });
    (all > 0).then(|| good as f64 / all as f64)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    pub fn record(i: i64, outcome: Outcome) -> RunRecord {
        let started = Utc.with_ymd_and_hms(2024, 1, 1, 2, 0, 0).unwrap() + Duration::days(i);
        RunRecord {
            warnings: Vec::new(),
            job_id: format!("job{i}"),
            kind: RunKind::Backup,
            trigger: Trigger::Scheduled,
            started,
            ended: started + Duration::minutes(3),
            outcome,
            database: Some("shop".into()),
            dest: Some("folder:/b".into()),
            backup_id: (outcome != Outcome::Failed).then(|| format!("{i:08x}")),
            bytes: Some(1000 + i as u64),
            documents: Some(10),
            verified: None,
            pruned: None,
            error: (outcome == Outcome::Failed).then(|| RunError {
                code: "database_unreachable".into(),
                message: "could not reach the database".into(),
            }),
        }
    }

    #[test]
    fn appends_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::new(dir.path().join("data").join(HISTORY_FILE));
        assert!(h.load().unwrap().is_empty());
        let a = record(0, Outcome::Success);
        let b = record(1, Outcome::Failed);
        h.append(&a).unwrap();
        h.append(&b).unwrap();
        assert_eq!(h.load().unwrap(), vec![a.clone(), b.clone()]);
        // A fresh handle (another launch) sees the same.
        let again = History::new(h.path());
        assert_eq!(again.load().unwrap(), vec![a, b.clone()]);
        assert_eq!(last_attempt(&again.load().unwrap()), Some(b.ended));
    }

    #[test]
    fn a_torn_or_damaged_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        let h = History::new(&path);
        let a = record(0, Outcome::Success);
        let b = record(1, Outcome::Success);
        h.append(&a).unwrap();
        h.append(&b).unwrap();
        // Damage the first line (one character) and tear a third one mid-write.
        let mut text = fs::read_to_string(&path).unwrap();
        text = text.replacen("\"shop\"", "\"shoq\"", 1);
        let c = encode(&record(2, Outcome::Success));
        text.push_str(&c[..c.len() / 2]);
        fs::write(&path, text).unwrap();
        let h = History::new(&path);
        assert_eq!(h.load().unwrap(), vec![b.clone()]);
        // The next append starts on a new line: nothing else is lost.
        let d = record(3, Outcome::Partial);
        h.append(&d).unwrap();
        assert_eq!(History::new(&path).load().unwrap(), vec![b, d]);
    }

    #[test]
    fn a_kill_at_any_byte_of_an_append_loses_only_that_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        let (a, b, c) = (
            record(0, Outcome::Success),
            record(1, Outcome::Failed),
            record(2, Outcome::Partial),
        );
        let h = History::new(&path);
        h.append(&a).unwrap();
        let good = fs::metadata(&path).unwrap().len();
        h.append(&b).unwrap();
        let full = fs::read(&path).unwrap();
        // Cut the file anywhere inside the second line, as a crash mid-write would: that run
        // is skipped (unless only its newline is missing: then it is whole), and the next
        // append is read back after it.
        for cut in good..full.len() as u64 {
            fs::write(&path, &full[..cut as usize]).unwrap();
            let before = if cut + 1 == full.len() as u64 {
                vec![a.clone(), b.clone()]
            } else {
                vec![a.clone()]
            };
            let h = History::new(&path);
            assert_eq!(h.load().unwrap(), before, "cut at {cut}");
            h.append(&c).unwrap();
            let mut after = before;
            after.push(c.clone());
            assert_eq!(History::new(&path).load().unwrap(), after, "cut at {cut}");
        }
    }

    #[test]
    fn the_file_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HISTORY_FILE);
        // Start from a big file written directly (faster than 1100 fsyncs).
        let text: String = (0..(MAX_RECORDS + COMPACT_MARGIN) as i64)
            .map(|i| encode(&record(i, Outcome::Success)))
            .collect();
        fs::write(&path, text).unwrap();
        let h = History::new(&path);
        h.append(&record(5000, Outcome::Failed)).unwrap();
        let all = h.load().unwrap();
        assert_eq!(all.len(), MAX_RECORDS);
        assert_eq!(all.last().unwrap().job_id, "job5000");
        assert_eq!(all[0].job_id, format!("job{}", COMPACT_MARGIN + 1));
    }

    #[test]
    fn success_rate_and_last_success() {
        let records = vec![
            record(0, Outcome::Success),
            record(1, Outcome::Failed),
            record(2, Outcome::Cancelled),
            record(3, Outcome::Partial),
            record(4, Outcome::Success),
        ];
        let since = records[0].started;
        assert_eq!(success_rate(&records, since), Some(0.5));
        assert_eq!(success_rate(&records, records[4].started), Some(1.0));
        assert_eq!(
            success_rate(&records, records[4].started + Duration::days(1)),
            None
        );
        assert_eq!(last_success(&records).unwrap().job_id, "job4");
        assert_eq!(last_success(&records[..4]).unwrap().job_id, "job0");
    }
}
