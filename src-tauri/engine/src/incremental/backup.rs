//! The backup side of the incremental layout: the local index state of one database at one
//! destination ([`IndexDir`]), the choice between a new chain and an increment ([`decide`]), and
//! the writers that turn the export's stream into the chain's file while walking the previous
//! index ([`write_full`], [`write_increment`]).
//!
//! # The local state
//!
//! `<data dir>/index/<destination key>/<database>/` holds one index file per collection of the
//! newest backup this machine made there (`<collection>.idx`, see [`super::index`]) and
//! `state.json`, which names that backup (id, SHA-256 of its file) and the collections indexed.
//! A backup writes `<collection>.idx.next` files as it walks and, once its file is uploaded and
//! before it is committed, `state.next.json` naming it; after the commit both are promoted. A
//! crash between the commit and the promotion leaves a `state.next.json` that names a committed
//! backup: the next run ([`IndexDir::recover`]) promotes it. Anything else pending is deleted.
//!
//! The state is used only when it names the newest committed backup of the database at the
//! destination: another machine's backup, a lost or damaged index, or a partial backup start a
//! new chain (a full backup), which is always correct, only larger.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{
    diff::{Change, DiffCounts, DiffError, Differ},
    increment::{IncrementError, IncrementWriter, DELETED_PREFIX},
    index::{promote, set_backup_sha256, IndexError, IndexHeader, IndexReader, IndexWriter},
};
use crate::archive::{ArchiveWriter, Crc64, NamespaceSummary};
use crate::mongo::export::{documents, CollectionInfo, ExportMsg};
use crate::store::StoredBackup;

const STATE: &str = "state.json";
const STATE_NEXT: &str = "state.next.json";
const STATE_VERSION: u32 = 1;

/// What `state.json` records: the backup the index files describe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexState {
    pub version: u32,
    pub backup_id: String,
    /// SHA-256 of the backup's file, lowercase hex.
    pub sha256: String,
    /// The collections (not views) the backup held, each with its index file.
    pub collections: Vec<String>,
}

impl IndexState {
    /// The state naming backup `backup_id` (its file's SHA-256) and the collections indexed.
    pub fn new(backup_id: String, sha256: String, collections: Vec<String>) -> IndexState {
        IndexState {
            version: STATE_VERSION,
            backup_id,
            sha256,
            collections,
        }
    }
}

/// The local index files of one database at one destination.
#[derive(Clone, Debug)]
pub struct IndexDir {
    dir: PathBuf,
}

impl IndexDir {
    /// `<root>/<destination key>/<database>`: the destination's location is hashed (it may be a
    /// path), the database name made safe for a file name.
    pub fn new(root: &Path, location: &str, database: &str) -> IndexDir {
        use sha2::Digest;
        let dest = hex::encode(&sha2::Sha256::digest(location.as_bytes())[..8]);
        IndexDir {
            dir: root
                .join(dest)
                .join(crate::pipeline::safe_file_stem(database)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Holds the index for one backup: a second Driveback process on this machine backing up
    /// the same database to the same destination at the same time is refused (its `.next` files
    /// would be the same files). Released when the guard is dropped.
    pub fn lock(&self) -> std::io::Result<Option<std::fs::File>> {
        std::fs::create_dir_all(&self.dir)?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("lock"))?;
        match f.try_lock() {
            Ok(()) => Ok(Some(f)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn index_path(&self, collection: &str) -> PathBuf {
        self.dir.join(format!(
            "{}.idx",
            crate::pipeline::safe_file_stem(collection)
        ))
    }

    fn next_path(&self, collection: &str) -> PathBuf {
        self.dir.join(format!(
            "{}.idx.next",
            crate::pipeline::safe_file_stem(collection)
        ))
    }

    fn read_state(&self, name: &str) -> Option<IndexState> {
        let bytes = std::fs::read(self.dir.join(name)).ok()?;
        let state: IndexState = serde_json::from_slice(&bytes).ok()?;
        (state.version == STATE_VERSION).then_some(state)
    }

    /// The backup the index files describe, if they are whole.
    pub fn state(&self) -> Option<IndexState> {
        self.read_state(STATE)
    }

    /// Finishes what an interrupted run left: a `state.next.json` naming a committed backup
    /// (`listed`) is promoted with its index files; anything else pending is deleted.
    pub fn recover(&self, listed: &[StoredBackup]) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let pending: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "next"))
            .collect();
        if let Some(next) = self.read_state(STATE_NEXT) {
            let committed = listed
                .iter()
                .any(|b| b.id == next.backup_id && b.sha256 == next.sha256);
            if committed {
                tracing::info!(backup = %next.backup_id, "promoting the index of a backup committed before an interruption");
                if let Err(e) = self.promote(&next) {
                    tracing::warn!(error = %e, "could not promote the index; the next backup is full");
                    self.forget();
                }
                return;
            }
        }
        for p in pending {
            let _ = std::fs::remove_file(p);
        }
        let _ = std::fs::remove_file(self.dir.join(STATE_NEXT));
    }

    /// Forgets the index (the next backup is full).
    pub fn forget(&self) {
        let _ = std::fs::remove_file(self.dir.join(STATE));
    }

    /// Before the commit: records the uploaded file's SHA-256 in every new index file and writes
    /// `state.next.json`.
    pub fn prepare(&self, state: &IndexState) -> Result<(), IndexError> {
        let sha: [u8; 32] = hex::decode(&state.sha256)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(IndexError::Corrupt(
                "the backup's SHA-256 is not 32 bytes of hex",
            ))?;
        for c in &state.collections {
            set_backup_sha256(&self.next_path(c), &sha)?;
        }
        write_json(&self.dir, STATE_NEXT, state)?;
        Ok(())
    }

    /// After the commit: the new index files and state replace the old ones; index files of
    /// collections the backup did not hold are removed.
    pub fn promote(&self, state: &IndexState) -> Result<(), IndexError> {
        // The old state goes first: a crash midway leaves no state, so the next backup is full
        // rather than computed from a mix of old and new index files.
        let _ = std::fs::remove_file(self.dir.join(STATE));
        for c in &state.collections {
            promote(&self.next_path(c), &self.index_path(c))?;
        }
        let keep: HashSet<PathBuf> = state
            .collections
            .iter()
            .map(|c| self.index_path(c))
            .collect();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for p in entries.filter_map(|e| e.ok().map(|e| e.path())) {
                let stale =
                    p.extension().is_some_and(|x| x == "idx" || x == "next") && !keep.contains(&p);
                if stale {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
        promote(&self.dir.join(STATE_NEXT), &self.dir.join(STATE))?;
        Ok(())
    }

    /// Deletes the `.next` files of a run that did not commit.
    pub fn discard_pending(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for p in entries.filter_map(|e| e.ok().map(|e| e.path())) {
                if p.extension().is_some_and(|x| x == "next") {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
    }
}

fn write_json(dir: &Path, name: &str, value: &impl Serialize) -> Result<(), IndexError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(value).expect("state serialises"))?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    Ok(())
}

/// What the next backup of a database is, in the incremental layout.
#[allow(clippy::large_enum_variant)] // one per backup
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// A new chain: a full backup of the layout, indexed for the next one.
    Full { why: String },
    /// The changes since `parent`, the newest backup of chain `chain`.
    Increment {
        parent: StoredBackup,
        chain: String,
        state: IndexState,
    },
    /// A one-file backup outside any chain: the database cannot be read in `_id` order.
    Plain { why: String },
}

/// Chooses between a full backup and an increment. `listed` is the destination's committed
/// backups (any order); `full_every` is `backup.full_every`: a new full backup once the chain's
/// increments add up to that many times its full backup. Pure apart from reading the state.
pub fn decide(
    dir: &IndexDir,
    listed: &[StoredBackup],
    database: &str,
    infos: &[CollectionInfo],
    full_every: f64,
) -> Decision {
    if let Some(c) = infos.iter().find(|c| c.kind != "view" && !c.resumable()) {
        return Decision::Plain {
            why: format!(
                "collection {} cannot be read in _id order (capped, time-series or without an _id index)",
                c.name
            ),
        };
    }
    if let Some(c) = infos.iter().find(|c| c.name.starts_with(DELETED_PREFIX)) {
        return Decision::Plain {
            why: format!("collection {} has a name the layout reserves", c.name),
        };
    }
    decide_chain(dir.state(), listed, database, full_every)
}

/// [`decide`] once the database is known to fit the layout: pure.
pub fn decide_chain(
    state: Option<IndexState>,
    listed: &[StoredBackup],
    database: &str,
    full_every: f64,
) -> Decision {
    let full = |why: &str| Decision::Full { why: why.into() };
    let Some(newest) = listed
        .iter()
        .filter(|b| b.database == database)
        .max_by(|a, b| a.created.cmp(&b.created).then_with(|| a.file.cmp(&b.file)))
    else {
        return full("the first backup of this database here");
    };
    let Some(link) = &newest.link else {
        return full("the newest backup is a one-file backup");
    };
    if newest.status != crate::manifest::BackupStatus::Complete {
        return full("the newest backup is partial");
    }
    let Some(state) = state else {
        return full("this device holds no index of the newest backup");
    };
    if state.backup_id != newest.id || state.sha256 != newest.sha256 {
        return full("the newest backup was not made from this device's index");
    }
    let Some(chain_full) = listed
        .iter()
        .find(|b| b.id == link.chain && !b.is_increment())
    else {
        return full("the chain's full backup is not listed");
    };
    let increments: u64 = listed
        .iter()
        .filter(|b| b.is_increment() && b.link.as_ref().is_some_and(|l| l.chain == link.chain))
        .map(|b| b.bytes)
        .sum();
    if increments as f64 >= full_every * chain_full.bytes as f64 {
        return Decision::Full {
            why: format!(
                "the chain's increments add up to {increments} bytes, {:.2} times its full backup",
                increments as f64 / chain_full.bytes.max(1) as f64
            ),
        };
    }
    Decision::Increment {
        parent: newest.clone(),
        chain: link.chain.clone(),
        state,
    }
}

/// Why writing a chain file stopped.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error(transparent)]
    Diff(#[from] DiffError),
    #[error(transparent)]
    Increment(#[from] IncrementError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What a chain file's walk found, for the manifest and the report.
#[derive(Clone, Debug, Default)]
pub struct Walked {
    /// Per namespace (the export's order): the collection as a full backup holds it.
    pub summaries: Vec<NamespaceSummary>,
    /// Whether every collection was indexed (else the next backup is full).
    pub indexed: bool,
    /// The collections indexed, for the state.
    pub collections: Vec<String>,
    /// What changed since the parent (an increment), or what the full holds.
    pub counts: DiffCounts,
}

/// One collection's walk: the full-state summary and the index.
struct Collection {
    name: String,
    crc: Crc64,
    summary: NamespaceSummary,
    differ: Option<Differ>,
}

impl Collection {
    fn add(&mut self, raw: &[u8]) {
        self.crc.update(raw);
        self.summary.documents += 1;
        self.summary.bytes += raw.len() as u64;
    }
}

fn new_index(
    dir: &IndexDir,
    backup_id: &str,
    name: &str,
    old: Option<IndexReader>,
) -> Result<Differ, WalkError> {
    let writer = IndexWriter::create(
        &dir.next_path(name),
        &IndexHeader {
            backup_id: backup_id.to_string(),
            backup_sha256: None,
            collection: name.to_string(),
        },
    )?;
    Ok(Differ::new(old, writer)?)
}

/// The full backup of a new chain: the export's documents into `archive` as today's backup
/// writes them (the export reads every collection in `_id` order), each collection indexed on
/// the way. A collection that cannot be indexed (an `_id` the index cannot order) is still
/// backed up; only the next backup is full again.
pub fn write_full<W: Write>(
    mut rx: mpsc::Receiver<ExportMsg>,
    mut archive: ArchiveWriter<W>,
    infos: &[CollectionInfo],
    dir: &IndexDir,
    backup_id: &str,
) -> std::io::Result<(W, Walked)> {
    let mut summaries = vec![NamespaceSummary::default(); infos.len()];
    let mut indexing = std::fs::create_dir_all(dir.path()).is_ok();
    dir.discard_pending();
    let mut open: Option<(usize, Option<Differ>)> = None;
    let mut walked = Walked::default();
    let open_index = |ns: usize, indexing: bool| -> Option<Differ> {
        if !indexing || infos[ns].kind == "view" {
            return None;
        }
        match new_index(dir, backup_id, &infos[ns].name, None) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(collection = %infos[ns].name, error = %e, "could not index a collection; the next backup is full");
                None
            }
        }
    };
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            ExportMsg::Docs { ns, buf } => {
                if open.as_ref().map(|(n, _)| *n) != Some(ns) {
                    open = Some((ns, open_index(ns, indexing)));
                }
                let (_, differ) = open.as_mut().expect("opened above");
                for raw in documents(&buf) {
                    archive.write_document(ns, raw)?;
                    if let Some(d) = differ.as_mut() {
                        let pushed = bson::RawDocument::from_bytes(raw)
                            .map_err(|e| {
                                WalkError::Diff(DiffError::Id(super::IdKeyError::Malformed(
                                    e.to_string(),
                                )))
                            })
                            .and_then(|doc| d.push::<WalkError, _>(doc, |_| Ok(())));
                        if let Err(e) = pushed {
                            tracing::info!(collection = %infos[ns].name, error = %e, "this collection cannot be indexed; the next backup is full");
                            *differ = None;
                            indexing = false;
                        }
                    }
                }
            }
            ExportMsg::End { ns } => {
                summaries[ns] = archive.end_namespace(ns)?;
                let differ = match open.take() {
                    Some((n, d)) if n == ns => d,
                    _ => open_index(ns, indexing),
                };
                if infos[ns].kind != "view" {
                    match differ.map(|d| d.finish::<WalkError, _>(|_| Ok(()))) {
                        Some(Ok(counts)) => {
                            walked.counts.inserted += counts.inserted;
                            walked.collections.push(infos[ns].name.clone());
                        }
                        Some(Err(e)) => {
                            tracing::info!(collection = %infos[ns].name, error = %e, "this collection cannot be indexed; the next backup is full");
                            indexing = false;
                        }
                        None => indexing = false,
                    }
                }
            }
        }
    }
    walked.summaries = summaries;
    walked.indexed = indexing;
    Ok((archive.finish()?, walked))
}

/// An increment: the export's documents walked against the previous backup's index, the changed
/// and inserted ones and the deleted `_id`s written to `writer`. Any error means the increment
/// cannot be trusted; unless the output failed, the caller makes a full backup instead.
pub fn write_increment<W: Write>(
    mut rx: mpsc::Receiver<ExportMsg>,
    mut writer: IncrementWriter<W>,
    infos: &[CollectionInfo],
    dir: &IndexDir,
    backup_id: &str,
    previous: &IndexState,
) -> Result<(W, Walked), WalkError> {
    dir.discard_pending();
    let mut summaries = vec![NamespaceSummary::default(); infos.len()];
    let mut walked = Walked::default();
    let mut open: Option<(usize, Collection)> = None;
    let begin = |ns: usize, writer: &mut IncrementWriter<W>| -> Result<Collection, WalkError> {
        let name = &infos[ns].name;
        writer.begin_collection(name)?;
        let old = if previous.collections.iter().any(|c| c == name) {
            let reader = IndexReader::open(&dir.index_path(name))?;
            // The file must describe the backup the state names, whole: an index left by another
            // run is not one to compute an increment from.
            let h = reader.header();
            let sha = h.backup_sha256.map(hex::encode);
            if h.backup_id != previous.backup_id || sha.as_deref() != Some(previous.sha256.as_str())
            {
                return Err(IndexError::Corrupt("the index describes another backup").into());
            }
            Some(reader)
        } else {
            None
        };
        Ok(Collection {
            name: name.clone(),
            crc: Crc64::new(),
            summary: NamespaceSummary::default(),
            differ: Some(new_index(dir, backup_id, name, old)?),
        })
    };
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            ExportMsg::Docs { ns, buf } => {
                if open.as_ref().map(|(n, _)| *n) != Some(ns) {
                    open = Some((ns, begin(ns, &mut writer)?));
                }
                let (_, c) = open.as_mut().expect("opened above");
                for raw in documents(&buf) {
                    let doc = bson::RawDocument::from_bytes(raw)
                        .map_err(|e| DiffError::Id(super::IdKeyError::Malformed(e.to_string())))?;
                    let differ = c.differ.as_mut().expect("open until the end");
                    let change = differ.push::<WalkError, _>(doc, |k| Ok(writer.deleted(&k)?))?;
                    if change != Change::Unchanged {
                        writer.document(raw)?;
                    }
                    c.add(raw);
                }
            }
            ExportMsg::End { ns } => {
                if infos[ns].kind == "view" {
                    continue;
                }
                let mut c = match open.take() {
                    Some((n, c)) if n == ns => c,
                    _ => begin(ns, &mut writer)?,
                };
                let differ = c.differ.take().expect("open until the end");
                let counts = differ.finish::<WalkError, _>(|k| Ok(writer.deleted(&k)?))?;
                writer.end_collection()?;
                c.summary.crc = c.crc.value();
                summaries[ns] = c.summary;
                walked.counts.unchanged += counts.unchanged;
                walked.counts.changed += counts.changed;
                walked.counts.inserted += counts.inserted;
                walked.counts.deleted += counts.deleted;
                walked.collections.push(c.name);
            }
        }
    }
    walked.summaries = summaries;
    walked.indexed = true;
    Ok((writer.finish()?, walked))
}
