//! Alarms on data loss: each backup is compared with the previous good backup of the same
//! database at the same destination. A collection that lost more than a share of its documents
//! (20% by default) or vanished raises a warning (the run's record, the app, the notification and
//! the email say "timeEntries: 41,230 -> 12,004 documents"), and the previous backup, the last
//! one made before the loss, is kept by retention until the user acknowledges the alarm.
//!
//! `compare` is pure; [`AlarmBook`] keeps the last good counts and the open alarms in
//! `alarms.json` in the data folder.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::manifest::{CollectionStatus, Manifest};

/// A collection that lost more than this share of its documents raises an alarm.
pub const DEFAULT_DROP_SHARE: f64 = 0.20;

/// One thing a run's user should know about its backup's data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataWarning {
    /// `documents_dropped` or `collection_missing`.
    pub code: String,
    pub collection: String,
    pub before: u64,
    pub after: u64,
}

impl DataWarning {
    /// "timeEntries: 41,230 -> 12,004 documents", "invoices: gone (1,200 documents before)".
    pub fn describe(&self) -> String {
        match self.code.as_str() {
            "collection_missing" => format!(
                "{}: gone ({} documents before)",
                self.collection,
                crate::health::human_count(self.before)
            ),
            _ => format!(
                "{}: {} -> {} documents",
                self.collection,
                crate::health::human_count(self.before),
                crate::health::human_count(self.after)
            ),
        }
    }
}

/// Pure: what changed from `before` to `after` (collection -> documents) beyond `share`.
pub fn compare(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    share: f64,
) -> Vec<DataWarning> {
    let mut out = Vec::new();
    for (name, &was) in before {
        match after.get(name) {
            None => out.push(DataWarning {
                code: "collection_missing".into(),
                collection: name.clone(),
                before: was,
                after: 0,
            }),
            Some(&now) if was > 0 && (was - now.min(was)) as f64 > share * was as f64 => {
                out.push(DataWarning {
                    code: "documents_dropped".into(),
                    collection: name.clone(),
                    before: was,
                    after: now,
                })
            }
            Some(_) => {}
        }
    }
    out
}

/// The documents of each collection a backup read completely.
pub fn counts(m: &Manifest) -> BTreeMap<String, u64> {
    m.collections
        .iter()
        .filter(|c| matches!(c.status, CollectionStatus::Ok))
        .map(|c| (c.name.clone(), c.documents))
        .collect()
}

/// An alarm the user has not acknowledged yet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    pub raised: DateTime<Utc>,
    pub dest: String,
    pub database: String,
    /// The backup that showed the loss.
    pub backup_id: String,
    /// The backup before it, kept until the alarm is acknowledged.
    pub protected_id: String,
    pub warnings: Vec<DataWarning>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Baseline {
    backup_id: String,
    collections: BTreeMap<String, u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Book {
    /// "dest\ndatabase" -> the last good backup's counts.
    #[serde(default)]
    baselines: BTreeMap<String, Baseline>,
    #[serde(default)]
    open: Vec<Alarm>,
}

/// The last good counts and the open alarms, in a file.
pub struct AlarmBook {
    path: PathBuf,
    lock: Mutex<()>,
}

impl AlarmBook {
    pub fn new(path: PathBuf) -> Self {
        AlarmBook {
            path,
            lock: Mutex::new(()),
        }
    }

    fn load(&self) -> Book {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save(&self, book: &Book) {
        let bytes = serde_json::to_vec_pretty(book).expect("alarms serialise");
        if let Err(e) = crate::settings::write_private_atomic(&self.path, &bytes) {
            tracing::warn!(file = %self.path.display(), error = %e, "could not record the data-loss alarms");
        }
    }

    /// Compares a complete backup with the previous good one of its database at `dest`, records
    /// it as the new baseline, and opens an alarm when a collection lost more than `share` of its
    /// documents or vanished. Returns the warnings.
    pub fn check(
        &self,
        dest: &str,
        manifest: &Manifest,
        now: DateTime<Utc>,
        share: f64,
    ) -> Vec<DataWarning> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut book = self.load();
        let key = format!("{dest}\n{}", manifest.database);
        let after = counts(manifest);
        let warnings = match book.baselines.get(&key) {
            Some(prev) => compare(&prev.collections, &after, share),
            None => Vec::new(),
        };
        if !warnings.is_empty() {
            let protected_id = book.baselines[&key].backup_id.clone();
            book.open.push(Alarm {
                raised: now,
                dest: dest.to_string(),
                database: manifest.database.clone(),
                backup_id: manifest.backup_id.clone(),
                protected_id,
                warnings: warnings.clone(),
            });
        }
        book.baselines.insert(
            key,
            Baseline {
                backup_id: manifest.backup_id.clone(),
                collections: after,
            },
        );
        self.save(&book);
        warnings
    }

    /// The alarms not acknowledged yet.
    pub fn open(&self) -> Vec<Alarm> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.load().open
    }

    /// Backups at `dest` that retention must keep (the ones before a loss).
    pub fn protected(&self, dest: &str) -> Vec<String> {
        self.open()
            .into_iter()
            .filter(|a| a.dest == dest)
            .map(|a| a.protected_id)
            .collect()
    }

    /// The user has seen the alarms: their backups follow the retention policy again. Returns
    /// how many there were.
    pub fn acknowledge(&self) -> usize {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut book = self.load();
        let n = book.open.len();
        if n > 0 {
            book.open.clear();
            self.save(&book);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn drops_beyond_the_share_and_vanished_collections_are_named() {
        // (case, before, after, expected (code, collection, before, after))
        type Row<'a> = (
            &'a str,
            Vec<(&'a str, u64)>,
            Vec<(&'a str, u64)>,
            Vec<(&'a str, &'a str, u64, u64)>,
        );
        let rows: Vec<Row> = vec![
            (
                "growth is quiet",
                vec![("a", 100)],
                vec![("a", 150)],
                vec![],
            ),
            (
                "a 20% drop is within the share",
                vec![("a", 100)],
                vec![("a", 80)],
                vec![],
            ),
            (
                "a 21% drop is not",
                vec![("a", 100)],
                vec![("a", 79)],
                vec![("documents_dropped", "a", 100, 79)],
            ),
            (
                "a 40% drop",
                vec![("timeEntries", 41_230), ("users", 12)],
                vec![("timeEntries", 24_738), ("users", 12)],
                vec![("documents_dropped", "timeEntries", 41_230, 24_738)],
            ),
            (
                "emptied",
                vec![("a", 5)],
                vec![("a", 0)],
                vec![("documents_dropped", "a", 5, 0)],
            ),
            (
                "vanished",
                vec![("a", 5), ("b", 1)],
                vec![("b", 1)],
                vec![("collection_missing", "a", 5, 0)],
            ),
            (
                "an empty collection that stays empty",
                vec![("a", 0)],
                vec![("a", 0)],
                vec![],
            ),
            (
                "a new collection is quiet",
                vec![("a", 5)],
                vec![("a", 5), ("b", 9)],
                vec![],
            ),
        ];
        for (case, before, after, want) in rows {
            let got = compare(&m(&before), &m(&after), DEFAULT_DROP_SHARE);
            let want: Vec<DataWarning> = want
                .into_iter()
                .map(|(code, c, b, a)| DataWarning {
                    code: code.into(),
                    collection: c.into(),
                    before: b,
                    after: a,
                })
                .collect();
            assert_eq!(got, want, "{case}");
        }
        let w = DataWarning {
            code: "documents_dropped".into(),
            collection: "timeEntries".into(),
            before: 41_230,
            after: 12_004,
        };
        assert_eq!(w.describe(), "timeEntries: 41,230 -> 12,004 documents");
    }
}
