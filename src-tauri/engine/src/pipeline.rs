//! The jobs a user runs: backup, restore, verify and export. Each streams end to end with bounded
//! memory: cursor -> archive -> zstd -> age -> destination, and back.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use crate::archive::{ArchiveReader, ArchiveWriter, Header, Item, Namespace, NamespaceSummary};
use crate::container::{self, BackupReader, BackupWriter, InputKind};
use crate::error::EngineError;
use crate::incremental::{
    self,
    backup::{Decision, IndexDir, IndexState, WalkError, Walked},
    IncrementError, IncrementWriter,
};
use crate::keys::BackupKey;
use crate::manifest::{self, BackupStatus, CollectionEntry, CollectionStatus, Manifest};
use crate::mongo::{self, export, restore, MongoError};
use crate::progress::{Phase, Progress, ProgressSink};
use crate::store::drive::{DriveConfig, DriveStore};
use crate::store::{self, BackupSummary, Dest, RemoteStore, StoredBackup};

/// Channel depth between the database side and the file side: with ~1 MiB messages this bounds
/// what is in flight to a few MiB whatever the database size.
const CHANNEL_DEPTH: usize = 4;

pub struct BackupOptions {
    pub database: String,
    pub zstd_level: i32,
    /// Documents the previous backup held: the progress total (None: unknown).
    pub expected_documents: Option<u64>,
    /// The destination's backups as the caller just listed them (newest first): saves listing
    /// them again for the free-space check (`None`: list here).
    pub listed: Option<Vec<StoredBackup>>,
    /// The backup's time (its file name, manifest and listing), `None`: now. Jobs pass their
    /// clock's time, so a simulated clock dates the backups it makes.
    pub started_at: Option<DateTime<Utc>>,
    /// Signs the backup's commit mark (see [`crate::authenticity`]); `None` leaves it unsigned,
    /// which only a destination nobody else reads may take (the device's own safety backups).
    pub signer: Option<Arc<crate::authenticity::Signer>>,
    /// Looked at between every stage, on every write and just before the commit: a cancelled
    /// backup is never committed, and its upload is dropped before `backup` returns.
    pub cancel: Option<crate::jobs::CancelToken>,
    /// The incremental layout (docs/FORMAT.md); `None`: one file per backup.
    pub incremental: Option<IncrementalOptions>,
    /// The destination's lock this backup holds: looked at again just before the commit.
    pub lock: Option<crate::lock::LockCheck>,
}

/// How a destination of the incremental layout is backed up.
#[derive(Clone, Debug)]
pub struct IncrementalOptions {
    /// Where this machine keeps the per-collection indexes (`<data dir>/index`).
    pub index_root: PathBuf,
    /// Where this machine records the destination locks it takes (`<data dir>/locks`).
    pub lock_dir: PathBuf,
    /// A new chain once its increments add up to this many times its full backup
    /// (`backup.full_every`).
    pub full_every: f64,
}

/// What a backup of the incremental layout wrote, and why.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ChainReport {
    /// "full" (a new chain), "increment", or "plain" (a one-file backup: the database does not
    /// fit the layout).
    pub kind: &'static str,
    /// Why a full or one-file backup was made rather than an increment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Documents since the parent backup: changed, inserted, deleted, unchanged (a full counts
    /// every document as inserted).
    pub changed: u64,
    pub inserted: u64,
    pub deleted: u64,
    pub unchanged: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct BackupResult {
    pub backup: StoredBackup,
    pub manifest: Manifest,
    /// Things the user should know that did not stop the backup (e.g. the destination is nearly full).
    pub warnings: Vec<String>,
    /// Whether the destination compared the bytes it stored with the digest computed while
    /// writing before it committed the backup (see `UploadSink::verifies_on_commit`).
    pub verified: bool,
    /// The incremental layout: what this backup is in its chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainReport>,
}

/// How often a process looks for leftovers of interrupted uploads at one destination: the first
/// backup of a process does (a killed process's leftovers go at the next start), later ones at
/// most hourly (each look is a listing, a round trip on Google Drive).
const CLEANUP_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

fn cleanup_due(location: &str) -> bool {
    static LAST: std::sync::Mutex<Vec<(String, std::time::Instant)>> =
        std::sync::Mutex::new(Vec::new());
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let now = std::time::Instant::now();
    match last.iter_mut().find(|(l, _)| l == location) {
        Some((_, at)) if now.duration_since(*at) < CLEANUP_EVERY => false,
        Some((_, at)) => {
            *at = now;
            true
        }
        None => {
            last.push((location.to_string(), now));
            true
        }
    }
}

/// Opens a destination by its name (`folder:/path`, `drive`, `drive:appdata`, `drive:folder`).
/// Google Drive uses the account connected with `driveback connect` (tokens from the OS keyring).
/// Blocking: call it from a blocking thread.
pub fn open_destination(dest: &str) -> Result<Arc<dyn RemoteStore>, EngineError> {
    match store::parse_dest(dest)? {
        Dest::Drive(location) => {
            let tokens = crate::auth::access_tokens_from_env()?;
            let state_dir = crate::settings::data_dir()
                .map_err(|e| EngineError::Input(e.to_string()))?
                .join("drive-uploads");
            let drive = DriveStore::new(tokens, DriveConfig::new(location, state_dir))?;
            Ok(Arc::new(drive))
        }
        other => Ok(Arc::from(store::open_store(&other)?)),
    }
}

/// How many documents the newest backup of `database` at `store` holds: the progress total of
/// the next backup. Blocking.
pub fn previous_documents(store: &dyn RemoteStore, database: &str) -> Option<u64> {
    let list = store.list().ok()?;
    list.into_iter()
        .find(|b| b.database == database)
        .map(|b| b.documents)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))
}

/// A writer that stops (with an error) once its backup is cancelled, and pauses at the
/// `backup.writing` pause point on its first write (see [`crate::crash::pause_point`]).
struct Cancellable<W> {
    inner: W,
    cancel: Option<crate::jobs::CancelToken>,
    scope: String,
    started: bool,
    /// Archive bytes passed on so far (the `backup.uploading` pause point comes after 1 MiB).
    written: u64,
}

/// Where the `backup.uploading` pause point sits: part of the file is at the destination.
const UPLOADING_PAUSE_AFTER: u64 = 1 << 20;

impl<W> Cancellable<W> {
    fn check(&self) -> std::io::Result<()> {
        match &self.cancel {
            Some(c) if c.is_cancelled() => Err(std::io::Error::other(CANCELLED)),
            _ => Ok(()),
        }
    }
}

const CANCELLED: &str = "the backup was cancelled";

impl<W: Write> Write for Cancellable<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.started {
            self.started = true;
            let cancel = self.cancel.clone();
            crate::crash::pause_point("backup.writing", &self.scope, || {
                cancel.as_ref().is_some_and(|c| c.is_cancelled())
            });
        }
        self.check()?;
        let n = self.inner.write(buf)?;
        let before = self.written;
        self.written += n as u64;
        if before < UPLOADING_PAUSE_AFTER && self.written >= UPLOADING_PAUSE_AFTER {
            let cancel = self.cancel.clone();
            crate::crash::pause_point("backup.uploading", &self.scope, || {
                cancel.as_ref().is_some_and(|c| c.is_cancelled())
            });
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.check()?;
        self.inner.flush()
    }
}

/// `Cancelled` when `cancel` says so.
fn stop_if_cancelled(cancel: &Option<crate::jobs::CancelToken>) -> Result<(), EngineError> {
    match cancel {
        Some(c) if c.is_cancelled() => Err(EngineError::Cancelled),
        _ => Ok(()),
    }
}

/// Backs up `opts.database` to `store`, encrypted to `recipient`.
pub async fn backup(
    mongo_uri: &str,
    opts: &BackupOptions,
    store: Arc<dyn RemoteStore>,
    recipient: age::x25519::Recipient,
    progress: Arc<dyn ProgressSink>,
) -> Result<BackupResult, EngineError> {
    progress.report(Progress::phase(Phase::Connecting));
    let client = mongo::connect(mongo_uri).await?;
    let mut result = backup_on(
        &client,
        opts,
        store.clone(),
        recipient.clone(),
        progress.clone(),
        false,
    )
    .await;
    if let Ok(Err(why)) = &result {
        // The increment could not be computed (an `_id` the index cannot order, a damaged
        // index): the same backup as a new chain is always possible.
        tracing::warn!(reason = %why, "the increment could not be made; making a full backup instead");
        result = backup_on(&client, opts, store, recipient, progress, true).await;
    }
    let result = result.and_then(|r| {
        r.map_err(|why| EngineError::Internal(format!("the full backup failed: {why}")))
    });
    // Close the driver's background tasks before the client goes (dropping it mid-flight races them).
    client.shutdown().await;
    result
}

/// What the writer thread makes of the export.
#[allow(clippy::large_enum_variant)] // one per backup
enum Mode {
    Plain,
    Full(IndexDir),
    Increment {
        dir: IndexDir,
        parent: StoredBackup,
        chain: String,
        state: IndexState,
    },
}

/// One backup attempt. `Ok(Err(why))`: the increment could not be computed and nothing was
/// committed; a full backup (`force_full`) can be made instead.
async fn backup_on(
    client: &mongodb::Client,
    opts: &BackupOptions,
    store: Arc<dyn RemoteStore>,
    recipient: age::x25519::Recipient,
    progress: Arc<dyn ProgressSink>,
    force_full: bool,
) -> Result<Result<BackupResult, String>, EngineError> {
    let clock_start = Utc::now();
    let started_at = opts.started_at.unwrap_or(clock_start);
    let id = manifest::new_backup_id();
    let cancel = opts.cancel.clone();
    let server = mongo::server_info(&client).await?;
    let infos = export::describe_database(&client.database(&opts.database)).await?;
    if infos.is_empty() {
        return Err(MongoError::NoSuchDatabase(opts.database.clone()).into());
    }
    stop_if_cancelled(&cancel)?;
    let namespaces = export::namespaces(&opts.database, &infos);
    let header = Header {
        concurrent_collections: 1,
        version: "0.1".into(),
        server_version: server.version.clone(),
        tool_version: format!("driveback {}", crate::VERSION),
    };

    // Leftovers of interrupted uploads go first; then a warning if the destination looks too
    // small for a backup the size of the previous one; then, in the incremental layout, whether
    // this backup is a new chain or an increment.
    // `_index_lock` holds this device's index of the database until the backup ends.
    let (sink, warnings, mode, why_full, file_name, _index_lock) = {
        let store = store.clone();
        let database = opts.database.clone();
        let listed = opts.listed.clone();
        let incremental = opts.incremental.clone();
        let infos = infos.clone();
        let id = id.clone();
        blocking(move || -> Result<_, EngineError> {
            if cleanup_due(&store.location()) {
                if let Err(e) = store.cleanup_incomplete() {
                    tracing::warn!(error = %e, "could not clean up interrupted uploads");
                }
            }
            let mut index_lock = None;
            let listed = match (listed, &incremental) {
                (Some(l), _) => Some(l),
                // The incremental layout needs the listing: a failure to list fails the backup.
                (None, Some(_)) => Some(store.list()?),
                (None, None) => store.list().ok(),
            };
            let previous_bytes = listed.as_ref().and_then(|l| {
                l.iter()
                    .filter(|b| b.database == database)
                    .max_by_key(|b| b.created)
                    .map(|b| b.bytes)
            });
            let mut warnings = Vec::new();
            if let Some(bytes) = previous_bytes {
                if let Ok(Some(w)) = store::low_space_warning(store.as_ref(), bytes) {
                    warnings.push(w);
                }
            }
            let (mode, why_full) = match incremental {
                None => (Mode::Plain, None),
                Some(inc) => {
                    let listed = listed.unwrap_or_default();
                    let dir = IndexDir::new(&inc.index_root, &store.location(), &database);
                    let guard = dir
                        .lock()
                        .map_err(|e| EngineError::io("opening this device's backup index", e))?
                        .ok_or_else(|| {
                            EngineError::Busy(format!(
                                "another Driveback on this computer is backing up {database} to {} right now",
                                store.location()
                            ))
                        })?;
                    index_lock = Some(guard);
                    dir.recover(&listed);
                    match incremental::backup::decide(
                        &dir,
                        &listed,
                        &database,
                        &infos,
                        inc.full_every,
                    ) {
                        Decision::Plain { why } => (Mode::Plain, Some(why)),
                        Decision::Full { why } => (Mode::Full(dir), Some(why)),
                        Decision::Increment { .. } if force_full => (
                            Mode::Full(dir),
                            Some("the increment could not be computed".into()),
                        ),
                        Decision::Increment {
                            parent,
                            chain,
                            state,
                        } => (
                            Mode::Increment {
                                dir,
                                parent,
                                chain,
                                state,
                            },
                            None,
                        ),
                    }
                }
            };
            let name = match &mode {
                Mode::Increment { .. } => manifest::increment_file_name(&database, started_at, &id),
                _ => manifest::backup_file_name(&database, started_at, &id),
            };
            let sink = store.create(&name)?;
            crate::crash::crash_point("backup.upload_created");
            Ok((sink, warnings, mode, why_full, name, index_lock))
        })
        .await??
    };
    let mode = Arc::new(mode);
    let verifies = sink.verifies_on_commit();
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    let level = opts.zstd_level;
    let count = namespaces.len();
    let writer_cancel = cancel.clone();
    let scope = opts.database.clone();
    let writer_mode = mode.clone();
    let writer_infos = infos.clone();
    let writer_id = id.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let cancelled = |e: std::io::Error| match &writer_cancel {
            Some(c) if c.is_cancelled() => EngineError::Cancelled,
            _ => EngineError::io("writing the backup", e),
        };
        let walk_failed = |e: WalkError| -> Result<Result<_, String>, EngineError> {
            match e {
                WalkError::Io(io) | WalkError::Increment(IncrementError::Write(io)) => {
                    Err(cancelled(io))
                }
                _ if writer_cancel.as_ref().is_some_and(|c| c.is_cancelled()) => {
                    Err(EngineError::Cancelled)
                }
                other => Ok(Err(other.to_string())),
            }
        };
        let encrypted = BackupWriter::new(sink, &recipient, level).map_err(EngineError::from)?;
        let guarded = Cancellable {
            inner: encrypted,
            cancel: writer_cancel.clone(),
            scope,
            started: false,
            written: 0,
        };
        let buffered = BufWriter::with_capacity(1 << 17, guarded);
        let (buffered, walked) = match &*writer_mode {
            Mode::Plain => {
                let archive =
                    ArchiveWriter::new(buffered, &header, &namespaces).map_err(cancelled)?;
                let (buffered, summaries) =
                    export::write_archive(rx, archive, count).map_err(cancelled)?;
                (
                    buffered,
                    Walked {
                        summaries,
                        ..Walked::default()
                    },
                )
            }
            Mode::Full(dir) => {
                let archive =
                    ArchiveWriter::new(buffered, &header, &namespaces).map_err(cancelled)?;
                let (buffered, walked) =
                    incremental::backup::write_full(rx, archive, &writer_infos, dir, &writer_id)
                        .map_err(cancelled)?;
                (buffered, walked)
            }
            Mode::Increment { dir, state, .. } => {
                let out = match IncrementWriter::new(buffered, &header, &namespaces) {
                    Ok(w) => w,
                    Err(e) => return walk_failed(e.into()),
                };
                match incremental::backup::write_increment(
                    rx,
                    out,
                    &writer_infos,
                    dir,
                    &writer_id,
                    state,
                ) {
                    Ok((buffered, walked)) => (buffered, walked),
                    Err(e) => return walk_failed(e),
                }
            }
        };
        let guarded = buffered
            .into_inner()
            .map_err(|e| cancelled(e.into_error()))?;
        Ok::<_, EngineError>(Ok((guarded.inner, walked)))
    });
    let read = {
        let reading = export::read_data(
            &client,
            &opts.database,
            &infos,
            &server,
            opts.expected_documents.unwrap_or(0),
            tx,
            progress.as_ref(),
        );
        match &cancel {
            // Stopping the read drops its channel, which ends the writer.
            Some(c) => tokio::select! {
                r = reading => r,
                _ = c.cancelled() => Err(MongoError::Mismatch(CANCELLED.into())),
            },
            None => reading.await,
        }
    };
    // Waited for in every case: the upload is dropped (and a folder's partial file removed)
    // before this returns.
    let written = writer
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    stop_if_cancelled(&cancel)?;
    // The writer's error explains a stopped export better than the export's own.
    let (encrypted, walked) = match written? {
        Ok(w) => w,
        Err(why) => return Ok(Err(why)),
    };
    let summaries = &walked.summaries;
    let report = read?;
    crate::crash::crash_point("backup.archive_written");

    let failures: std::collections::HashMap<usize, String> =
        report.failures.iter().cloned().collect();
    let collections: Vec<CollectionEntry> = infos
        .iter()
        .enumerate()
        .map(|(i, c)| CollectionEntry {
            name: c.name.clone(),
            kind: c.kind.clone(),
            documents: summaries[i].documents,
            bytes: summaries[i].bytes,
            crc64: format!("{:016x}", summaries[i].crc),
            status: match failures.get(&i) {
                Some(err) => CollectionStatus::Failed { error: err.clone() },
                None => CollectionStatus::Ok,
            },
        })
        .collect();
    let manifest = Manifest {
        format_version: manifest::FORMAT_VERSION,
        app_version: crate::VERSION.to_string(),
        backup_id: id.clone(),
        database: opts.database.clone(),
        server_version: server.version.clone(),
        started_at,
        finished_at: started_at + (Utc::now() - clock_start),
        point_in_time: report.point_in_time,
        consistency: report.consistency.clone(),
        collections,
        status: if failures.is_empty() {
            BackupStatus::Complete
        } else {
            BackupStatus::Partial
        },
        chain: match &*mode {
            Mode::Plain => None,
            Mode::Full(_) => Some(manifest::ManifestChain {
                kind: "full".into(),
                chain: id.clone(),
                parent: None,
            }),
            Mode::Increment { parent, chain, .. } => Some(manifest::ManifestChain {
                kind: "increment".into(),
                chain: chain.clone(),
                parent: Some(manifest::ParentRef {
                    id: parent.id.clone(),
                    sha256: parent.sha256.clone(),
                }),
            }),
        },
    };
    let summary = BackupSummary {
        id: id.clone(),
        created: started_at,
        database: opts.database.clone(),
        documents: manifest.total_documents(),
        status: manifest.status,
        format_version: manifest::FORMAT_VERSION,
        signature: None,
        link: manifest.chain.as_ref().map(|c| store::ChainLink {
            chain: c.chain.clone(),
            parent: c.parent.as_ref().map(|p| p.id.clone()),
        }),
    };
    let chain_report = match &*mode {
        Mode::Plain => opts.incremental.as_ref().map(|_| ChainReport {
            kind: "plain",
            why: why_full.clone(),
            changed: 0,
            inserted: 0,
            deleted: 0,
            unchanged: 0,
        }),
        Mode::Full(_) | Mode::Increment { .. } => Some(ChainReport {
            kind: if matches!(&*mode, Mode::Full(_)) {
                "full"
            } else {
                "increment"
            },
            why: why_full.clone(),
            changed: walked.counts.changed,
            inserted: walked.counts.inserted,
            deleted: walked.counts.deleted,
            unchanged: walked.counts.unchanged,
        }),
    };
    // The indexes describe this backup only if every collection was read and indexed whole.
    let index_state = match &*mode {
        Mode::Full(dir) | Mode::Increment { dir, .. } => {
            if walked.indexed && failures.is_empty() {
                Some((dir.clone(), walked.collections.clone()))
            } else {
                dir.discard_pending();
                dir.forget();
                None
            }
        }
        Mode::Plain => None,
    };
    let m = manifest.clone();
    let signer = opts.signer.clone();
    let scope = opts.database.clone();
    let backup_id = id.clone();
    let lock = opts.lock.clone();
    // The rest of the upload and the destination's checksum against ours: a phase of its own,
    // so that the last seconds of a long upload do not look stuck at 100%.
    progress.report(Progress::phase(Phase::Verifying));
    let stored = blocking(move || -> Result<StoredBackup, EngineError> {
        stop_if_cancelled(&cancel)?;
        let sink = encrypted.finish(&m)?;
        // The index of this backup is ready before it is committed, and promoted after: a crash
        // in between leaves a state that names a committed backup, which the next run promotes.
        let state = index_state.and_then(|(dir, collections)| {
            let state = IndexState::new(backup_id.clone(), sink.written().1, collections);
            match dir.prepare(&state) {
                Ok(()) => Some((dir, state)),
                Err(e) => {
                    tracing::warn!(error = %e, "could not save the index; the next backup is full");
                    dir.discard_pending();
                    dir.forget();
                    None
                }
            }
        });
        // Another process that started with this one and was not seen when the lock was taken
        // is seen now: neither commits.
        if let Some(lock) = &lock {
            lock.confirm()?;
        }
        crate::crash::crash_point("backup.before_commit");
        crate::crash::pause_point("backup.before_commit", &scope, || {
            cancel.as_ref().is_some_and(|c| c.is_cancelled())
        });
        // The last look: past it the backup is committed, whatever happens.
        stop_if_cancelled(&cancel)?;
        let stored = match signer {
            Some(signer) => signer.commit(&file_name, sink, &summary)?,
            None => sink.commit(&summary)?,
        };
        crate::crash::crash_point("backup.committed");
        if let Some((dir, state)) = state {
            if let Err(e) = dir.promote(&state) {
                tracing::warn!(error = %e, "could not save the index; the next backup is full");
                dir.forget();
            }
        }
        Ok(stored)
    })
    .await??;
    progress.report(Progress::phase(Phase::Done));
    Ok(Ok(BackupResult {
        backup: stored,
        manifest,
        warnings,
        verified: verifies,
        chain: chain_report,
    }))
}

/// Where a restore, verify or export reads from.
pub enum Source {
    /// A Driveback backup at a destination, and the key that opens it.
    Stored {
        store: Arc<dyn RemoteStore>,
        backup: StoredBackup,
        key: BackupKey,
    },
    /// A local file: a Driveback backup (needs `key`) or a plain mongodump archive (optionally gzip).
    File {
        path: PathBuf,
        key: Option<BackupKey>,
    },
}

/// The archive bytes of a source, and how to finish reading it.
#[allow(clippy::large_enum_variant)] // one per read
enum Opened {
    /// A Driveback backup; with the listing it was opened by, whose name the manifest must match.
    Backup(BackupReader<Box<dyn Read + Send>>, Option<StoredBackup>),
    Plain(Box<dyn Read + Send>),
    /// An increment with its chain, merged into the full archive of its state (see
    /// [`open_chain`]).
    Chain(ChainReader),
}

impl Read for Opened {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Opened::Backup(r, _) => r.read(buf),
            Opened::Plain(r) => r.read(buf),
            Opened::Chain(r) => r.read(buf),
        }
    }
}

type ChainFile = Arc<std::sync::Mutex<Option<BackupReader<Box<dyn Read + Send>>>>>;

/// One file of a chain, shared between the merge (which reads its archive) and the check of its
/// manifest afterwards.
struct SharedFile(ChainFile);

impl Read for SharedFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            Some(r) => r.read(buf),
            None => Ok(0),
        }
    }
}

/// What the merge thread sends: archive bytes, or why it stopped.
enum Piped {
    Data(Vec<u8>),
    Failed(String),
}

struct PipeWriter(std::sync::mpsc::SyncSender<Piped>);

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .send(Piped::Data(buf.to_vec()))
            .map_err(|_| std::io::Error::other("the restore stopped reading"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The merged archive of a chain as one stream; [`ChainReader::finish`] checks every file's
/// manifest and link and returns the newest file's manifest.
struct ChainReader {
    rx: std::sync::mpsc::Receiver<Piped>,
    pending: Vec<u8>,
    at: usize,
    merge: Option<std::thread::JoinHandle<Result<Manifest, EngineError>>>,
}

impl Read for ChainReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at >= self.pending.len() {
            match self.rx.recv() {
                Ok(Piped::Data(d)) => {
                    self.pending = d;
                    self.at = 0;
                }
                Ok(Piped::Failed(why)) => {
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why))
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl ChainReader {
    fn finish(mut self) -> Result<Option<Manifest>, EngineError> {
        std::io::copy(&mut self, &mut std::io::sink())
            .map_err(|e| EngineError::Verification(e.to_string()))?;
        let merge = self.merge.take().expect("joined once");
        drop(self.rx);
        match merge.join() {
            Ok(Ok(m)) => Ok(Some(m)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(EngineError::Internal("the chain's merge stopped".into())),
        }
    }
}

/// The files of `backup`'s chain, its full backup first and `backup` last, from the
/// destination's listing. Each link must be listed (committed and, at an authenticated
/// destination, signed: the signature covers the link).
pub fn chain_files(
    listed: &[StoredBackup],
    backup: &StoredBackup,
) -> Result<Vec<StoredBackup>, EngineError> {
    let mut chain = vec![backup.clone()];
    let mut at = backup.clone();
    while let Some(parent_id) = at.link.as_ref().and_then(|l| l.parent.clone()) {
        let parent = listed
            .iter()
            .find(|p| p.is_parent_of(&at))
            .ok_or_else(|| {
                EngineError::Verification(format!(
                    "backup {} holds only the changes since backup {parent_id}, which is not at the destination: it cannot be restored",
                    backup.id
                ))
            })?;
        if chain.len() > listed.len() {
            return Err(EngineError::Verification(format!(
                "the chain of backup {} loops",
                backup.id
            )));
        }
        chain.push(parent.clone());
        at = parent.clone();
    }
    if at.link.as_ref().is_some_and(|l| l.chain != at.id) {
        return Err(EngineError::Verification(format!(
            "backup {} starts a chain that is not its own",
            at.id
        )));
    }
    chain.reverse();
    Ok(chain)
}

/// Checks a chain file's manifest against its place in the chain: an increment names the
/// previous file (id and SHA-256) as its parent, a full backup starts its own chain.
fn check_link(
    m: &Manifest,
    listed: &StoredBackup,
    previous: Option<&StoredBackup>,
) -> Result<(), EngineError> {
    let ok = match (&m.chain, previous) {
        (Some(c), None) => c.kind == "full" && c.chain == listed.id && c.parent.is_none(),
        (Some(c), Some(p)) => {
            c.kind == "increment"
                && listed.link.as_ref().is_some_and(|l| l.chain == c.chain)
                && c.parent
                    .as_ref()
                    .is_some_and(|r| r.id == p.id && r.sha256 == p.sha256)
        }
        (None, _) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(EngineError::Verification(format!(
            "{} is not the link of its chain that its listing says: someone may have replaced it; nothing was restored from it",
            listed.file
        )))
    }
}

/// Opens `files` (a chain, full backup first) and merges them, on a thread of its own, into the
/// full archive of the newest file's state.
fn open_chain(
    store: &Arc<dyn RemoteStore>,
    files: Vec<StoredBackup>,
    key: &BackupKey,
) -> Result<Opened, EngineError> {
    let mut shared: Vec<ChainFile> = Vec::with_capacity(files.len());
    for b in &files {
        let raw = store.open(b)?;
        let reader = BackupReader::open(raw, key.identity())?;
        shared.push(Arc::new(std::sync::Mutex::new(Some(reader))));
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(8);
    let sources: Vec<SharedFile> = shared.iter().map(|s| SharedFile(s.clone())).collect();
    let merge = std::thread::spawn(move || -> Result<Manifest, EngineError> {
        let out = BufWriter::with_capacity(1 << 16, PipeWriter(tx.clone()));
        let merged = incremental::merge_chain(sources, out);
        let result = (|| {
            merged.map_err(|e| {
                EngineError::Verification(format!("the backup's chain cannot be read: {e}"))
            })?;
            let mut newest = None;
            let mut previous: Option<&StoredBackup> = None;
            for (file, listed) in shared.iter().zip(&files) {
                let reader = file
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .ok_or_else(|| EngineError::Internal("a chain file read twice".into()))?;
                let m = reader.finish()?;
                check_identity(&m, listed)?;
                check_link(&m, listed, previous)?;
                previous = Some(listed);
                newest = Some(m);
            }
            newest.ok_or_else(|| EngineError::Internal("an empty chain".into()))
        })();
        if let Err(e) = &result {
            let _ = tx.send(Piped::Failed(e.to_string()));
        }
        result
    });
    Ok(Opened::Chain(ChainReader {
        rx,
        pending: Vec::new(),
        at: 0,
        merge: Some(merge),
    }))
}

impl Opened {
    /// After the archive is read: the manifest (None for a plain archive).
    fn finish(self) -> Result<Option<Manifest>, EngineError> {
        match self {
            Opened::Backup(r, listed) => {
                let m = r.finish()?;
                if let Some(b) = &listed {
                    check_identity(&m, b)?;
                } else if let Some(parent) = m.chain.as_ref().and_then(|c| c.parent.as_ref()) {
                    return Err(increment_alone(&parent.id));
                }
                Ok(Some(m))
            }
            Opened::Chain(r) => r.finish(),
            Opened::Plain(mut r) => {
                // Whatever follows a plain archive is ignored, but it must be readable.
                std::io::copy(&mut r, &mut std::io::sink())
                    .map_err(|e| EngineError::io("reading the archive", e))?;
                Ok(None)
            }
        }
    }
}

/// An increment read on its own: it holds only the changes since `parent`.
fn increment_alone(parent: &str) -> EngineError {
    EngineError::Input(format!(
        "this file is an increment: it holds only the changes since {parent}; restore it from its destination, where the rest of its chain is, or rebuild it with the recipe in docs/FORMAT.md"
    ))
}

/// Whether a file is a Driveback backup (it needs the backup key) or a plain archive.
pub fn file_kind(path: &Path) -> Result<InputKind, EngineError> {
    let mut head = [0u8; 32];
    let mut f =
        File::open(path).map_err(|e| EngineError::io(format!("opening {}", path.display()), e))?;
    let n = read_up_to(&mut f, &mut head)
        .map_err(|e| EngineError::io(format!("reading {}", path.display()), e))?;
    Ok(container::sniff(&head[..n]))
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn open_source(source: Source) -> Result<Opened, EngineError> {
    match source {
        Source::Stored { store, backup, key } if backup.is_increment() => {
            let files = chain_files(&store.list()?, &backup)?;
            open_chain(&store, files, &key)
        }
        Source::Stored { store, backup, key } => {
            let raw = store.open(&backup)?;
            Ok(Opened::Backup(
                BackupReader::open(raw, key.identity())?,
                Some(backup),
            ))
        }
        Source::File { path, key } => {
            if path
                .extension()
                .is_some_and(|x| x == manifest::INCREMENT_EXTENSION)
            {
                return Err(increment_alone("the previous backup of its chain"));
            }
            let kind = file_kind(&path)?;
            let f = File::open(&path)
                .map_err(|e| EngineError::io(format!("opening {}", path.display()), e))?;
            let raw: Box<dyn Read + Send> = Box::new(BufReader::with_capacity(1 << 16, f));
            match kind {
                InputKind::Backup => {
                    let key = key.ok_or_else(|| {
                        EngineError::Input(
                            "this file is a Driveback backup: the backup key is needed to open it"
                                .into(),
                        )
                    })?;
                    Ok(Opened::Backup(
                        BackupReader::open(raw, key.identity())?,
                        None,
                    ))
                }
                InputKind::MongodumpArchive => Ok(Opened::Plain(raw)),
                InputKind::GzipMongodumpArchive => Ok(Opened::Plain(Box::new(
                    flate2::read::MultiGzDecoder::new(raw),
                ))),
                InputKind::Unknown => Err(EngineError::Input(format!(
                    "{} is neither a Driveback backup nor a mongodump archive",
                    path.display()
                ))),
            }
        }
    }
}

/// Checks that a backup is the one its listing names: the manifest inside (which only the backup
/// key opens) must give the same id, database and time as the file name and commit mark. Anyone
/// who can write to the destination can rename or copy files; this keeps an old backup from
/// passing as a new one, and a backup from passing as another database's.
pub fn check_identity(m: &Manifest, listed: &StoredBackup) -> Result<(), EngineError> {
    let named = if m.chain.as_ref().is_some_and(|c| c.kind == "increment") {
        manifest::increment_file_name(&m.database, m.started_at, &m.backup_id)
    } else {
        manifest::backup_file_name(&m.database, m.started_at, &m.backup_id)
    };
    if m.backup_id == listed.id && m.database == listed.database && named == listed.file {
        return Ok(());
    }
    Err(EngineError::Verification(format!(
        "{} holds backup {} of database {:?} made {}, not what its name and listing say: \
         someone may have renamed or replaced it; nothing was restored from it",
        listed.file,
        m.backup_id,
        m.database,
        m.started_at.format("%Y-%m-%d %H:%M:%S UTC")
    )))
}

/// Checks what the archive held against the manifest: every collection the manifest lists as
/// complete must be there with the same count and checksum.
fn check_against_manifest(
    manifest: &Manifest,
    seen: &[(String, Option<NamespaceSummary>)],
) -> Result<(), EngineError> {
    for entry in manifest.collections.iter().filter(|c| c.kind != "view") {
        let Some((_, found)) = seen.iter().find(|(n, _)| n == &entry.name) else {
            continue;
        };
        let Some(s) = found else {
            return Err(EngineError::Verification(format!(
                "the backup ends before collection {} is complete",
                entry.name
            )));
        };
        if matches!(entry.status, CollectionStatus::Ok)
            && (s.documents != entry.documents || format!("{:016x}", s.crc) != entry.crc64)
        {
            return Err(EngineError::Verification(format!(
                "collection {} does not match the backup's manifest ({} documents, checksum {:016x}; the manifest says {} and {})",
                entry.name, s.documents, s.crc, entry.documents, entry.crc64
            )));
        }
    }
    Ok(())
}

pub struct RestoreOptions {
    pub target_db: String,
    pub collections: Option<Vec<String>>,
    /// The collections the user was shown (the manifest read when the restore was planned): a
    /// namespace they do not list is refused before anything is created, and a collection that
    /// holds more documents or bytes than listed stops the load (staging is dropped).
    pub expected: Option<Vec<crate::manifest::CollectionEntry>>,
    /// Requests kept in flight on the server (the setting `restore.parallel`).
    pub parallel: usize,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct RestoreResult {
    pub report: restore::RestoreReport,
    pub manifest: Option<Manifest>,
    /// For a restore test only ([`restore_with`]): what the backup held, per collection and view,
    /// in an order-independent digest of its documents, and the names of the indexes it asked for
    /// (the test compares them with what the server gives back). None after a plain [`restore`],
    /// which does not compute the digests: its checks are the archive's CRC-64 and counts.
    #[serde(skip)]
    pub contents: Option<Vec<(Namespace, crate::archive::DocSet)>>,
}

/// Restores `source` into `opts.target_db`: verified in staging first, then swapped in.
pub async fn restore(
    mongo_uri: &str,
    source: Source,
    opts: &RestoreOptions,
    progress: Arc<dyn ProgressSink>,
) -> Result<RestoreResult, EngineError> {
    progress.report(Progress::phase(Phase::Connecting));
    let client = mongo::connect(mongo_uri).await?;
    let result = restore_on(&client, source, opts, progress, false).await;
    client.shutdown().await;
    result
}

/// [`restore`] on a client the caller holds, for a restore test: it also keeps an
/// order-independent digest of each namespace's documents in [`RestoreResult::contents`], which
/// the test compares with what the server gives back.
pub async fn restore_with(
    client: &mongodb::Client,
    source: Source,
    opts: &RestoreOptions,
    progress: Arc<dyn ProgressSink>,
) -> Result<RestoreResult, EngineError> {
    restore_on(client, source, opts, progress, true).await
}

async fn restore_on(
    client: &mongodb::Client,
    source: Source,
    opts: &RestoreOptions,
    progress: Arc<dyn ProgressSink>,
    digests: bool,
) -> Result<RestoreResult, EngineError> {
    progress.report(Progress::phase(Phase::Downloading));
    let (prelude_tx, prelude_rx) = oneshot::channel::<Vec<Namespace>>();
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    let reader =
        tokio::task::spawn_blocking(move || read_into_channel(source, prelude_tx, tx, digests));
    let namespaces = match prelude_rx.await {
        Ok(ns) => ns,
        Err(_) => {
            // The reader failed before the prelude: its error says why.
            reader
                .await
                .map_err(|e| EngineError::Internal(e.to_string()))??;
            return Err(EngineError::Internal("the backup reader stopped".into()));
        }
    };
    let selected = restore::select(&namespaces, opts.collections.as_deref())?;
    let staged = restore::stage(
        &client,
        &opts.target_db,
        &namespaces,
        &selected,
        opts.expected.as_deref(),
        rx,
        opts.parallel,
        progress.as_ref(),
    )
    .await;
    let read = reader
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?;
    // A reader error (corrupt file, wrong key) explains a stopped load better than the load's own.
    let (mut staged, (manifest, sets)) = match (staged, read) {
        (Ok(s), Ok(m)) => (s, m),
        (Ok(s), Err(e)) => {
            s.discard().await;
            return Err(e);
        }
        // The reader stopped because the loader did: the loader's error is the cause.
        (Err(e), Err(EngineError::Internal(_))) | (Err(e), Ok(_)) => return Err(e.into()),
        (Err(_), Err(e)) => return Err(e),
    };
    let mut warnings = Vec::new();
    if let Some(m) = &manifest {
        if let Err(e) = check_against_manifest(m, &staged.summaries()) {
            staged.discard().await;
            return Err(e);
        }
        let failed: HashSet<String> = m
            .collections
            .iter()
            .filter_map(|c| match &c.status {
                CollectionStatus::Failed { error } => {
                    warnings.push(format!("collection {} was not restored: the backup could not read it completely ({error})", c.name));
                    Some(c.name.clone())
                }
                CollectionStatus::Ok => None,
            })
            .collect();
        staged.exclude(&failed).await;
    }
    if let Some((name, _)) = staged.summaries().iter().find(|(_, s)| s.is_none()) {
        let name = name.clone();
        staged.discard().await;
        return Err(EngineError::Verification(format!(
            "the backup ends before collection {name} is complete"
        )));
    }
    crate::crash::crash_point("restore.verified");
    let mut report = staged.finalize(progress.as_ref()).await?;
    report.warnings.splice(0..0, warnings);
    progress.report(Progress::phase(Phase::Done));
    let contents = sets.map(|sets| namespaces.into_iter().zip(sets).collect());
    Ok(RestoreResult {
        report,
        manifest,
        contents,
    })
}

/// Documents per message from the reader to the loader, and bytes.
const BATCH_DOCS: usize = 1000;
const BATCH_BYTES: u64 = 4 << 20;

/// The blocking side of a restore: decrypt, decompress, parse and check CRCs, batching documents
/// into the channel. Returns the manifest once the whole file was read, and with `digests` (a
/// restore test) each namespace's documents as an order-independent digest.
#[allow(clippy::type_complexity)]
fn read_into_channel(
    source: Source,
    prelude: oneshot::Sender<Vec<Namespace>>,
    tx: mpsc::Sender<restore::RestoreMsg>,
    digests: bool,
) -> Result<(Option<Manifest>, Option<Vec<crate::archive::DocSet>>), EngineError> {
    let opened = open_source(source)?;
    let mut archive = ArchiveReader::new(BufReader::with_capacity(1 << 16, opened))?;
    if prelude.send(archive.namespaces().to_vec()).is_err() {
        return Err(EngineError::Internal("the restore stopped".into()));
    }
    let started = std::time::Instant::now();
    let mut blocked = std::time::Duration::ZERO;
    let mut sets =
        digests.then(|| vec![crate::archive::DocSet::default(); archive.namespaces().len()]);
    let mut batch: Vec<bson::RawDocumentBuf> = Vec::new();
    let mut batch_ns = usize::MAX;
    let mut batch_bytes = 0u64;
    let gone = || EngineError::Internal("the restore stopped".into());
    while let Some(item) = archive.next_item()? {
        match item {
            Item::Document { ns, raw } => {
                if let Some(sets) = &mut sets {
                    sets[ns].add(&raw);
                }
                if ns != batch_ns || batch.len() >= BATCH_DOCS || batch_bytes >= BATCH_BYTES {
                    if !batch.is_empty() {
                        let docs = std::mem::take(&mut batch);
                        let t = std::time::Instant::now();
                        tx.blocking_send(restore::RestoreMsg::Docs {
                            ns: batch_ns,
                            docs,
                            bytes: batch_bytes,
                        })
                        .map_err(|_| gone())?;
                        blocked += t.elapsed();
                    }
                    batch_ns = ns;
                    batch_bytes = 0;
                }
                batch_bytes += raw.len() as u64;
                let doc = bson::RawDocumentBuf::from_bytes(raw).map_err(|e| {
                    EngineError::Verification(format!(
                        "a document in the backup is not valid BSON: {e}"
                    ))
                })?;
                batch.push(doc);
            }
            Item::EndOfNamespace { ns, summary } => {
                if !batch.is_empty() {
                    let docs = std::mem::take(&mut batch);
                    tx.blocking_send(restore::RestoreMsg::Docs {
                        ns: batch_ns,
                        docs,
                        bytes: batch_bytes,
                    })
                    .map_err(|_| gone())?;
                    batch_bytes = 0;
                }
                tx.blocking_send(restore::RestoreMsg::End { ns, summary })
                    .map_err(|_| gone())?;
            }
        }
    }
    if !batch.is_empty() {
        tx.blocking_send(restore::RestoreMsg::Docs {
            ns: batch_ns,
            docs: batch,
            bytes: batch_bytes,
        })
        .map_err(|_| gone())?;
    }
    drop(tx);
    let opened = archive.into_inner().into_inner();
    let finished = opened.finish()?;
    tracing::debug!(
        total_s = started.elapsed().as_secs_f64(),
        waiting_for_loader_s = blocked.as_secs_f64(),
        "restore reader timings (decrypt, decompress, parse and check; waiting for the loader)"
    );
    Ok((finished, sets))
}

#[derive(Clone, Debug)]
pub struct VerifyResult {
    pub manifest: Option<Manifest>,
    pub collections: Vec<(String, NamespaceSummary)>,
}

/// Reads a whole backup without touching any database: decrypts, decompresses, checks every
/// collection's CRC and the counts against the manifest.
pub fn verify(source: Source, progress: &dyn ProgressSink) -> Result<VerifyResult, EngineError> {
    read_all(source, progress, |_, _| Ok(()), |_| Ok(()))
}

/// Reads a whole source like [`verify`], and answers also every namespace its archive lists
/// (collections and views, with their options), for a restore plan of a file.
pub fn inspect(
    source: Source,
    progress: &dyn ProgressSink,
) -> Result<(VerifyResult, Vec<Namespace>), EngineError> {
    let mut listed = Vec::new();
    let result = read_all_listing(source, progress, &mut listed, |_, _| Ok(()), |_| Ok(()))?;
    Ok((result, listed))
}

/// Reads a source to its end, handing each document to `on_doc` and each finished namespace to
/// `on_end`; verifies CRCs and the manifest.
fn read_all(
    source: Source,
    progress: &dyn ProgressSink,
    on_doc: impl FnMut(&Namespace, &[u8]) -> Result<(), EngineError>,
    on_end: impl FnMut(&Namespace) -> Result<(), EngineError>,
) -> Result<VerifyResult, EngineError> {
    read_all_listing(source, progress, &mut Vec::new(), on_doc, on_end)
}

/// [`read_all`], putting the archive's namespaces into `listed`.
fn read_all_listing(
    source: Source,
    progress: &dyn ProgressSink,
    listed: &mut Vec<Namespace>,
    mut on_doc: impl FnMut(&Namespace, &[u8]) -> Result<(), EngineError>,
    mut on_end: impl FnMut(&Namespace) -> Result<(), EngineError>,
) -> Result<VerifyResult, EngineError> {
    let opened = open_source(source)?;
    let mut archive = ArchiveReader::new(BufReader::with_capacity(1 << 16, opened))?;
    let namespaces = archive.namespaces().to_vec();
    listed.clone_from(&namespaces);
    let mut seen: Vec<Option<NamespaceSummary>> = vec![None; namespaces.len()];
    let (mut docs, mut bytes) = (0u64, 0u64);
    while let Some(item) = archive.next_item()? {
        match item {
            Item::Document { ns, raw } => {
                on_doc(&namespaces[ns], &raw)?;
                docs += 1;
                bytes += raw.len() as u64;
                if docs % 10_000 == 0 {
                    progress.report(Progress {
                        phase: Phase::Verifying,
                        collection: Some(namespaces[ns].collection.clone()),
                        done_docs: docs,
                        total_docs: 0,
                        done_bytes: bytes,
                        total_bytes: 0,
                    });
                }
            }
            Item::EndOfNamespace { ns, summary } => {
                on_end(&namespaces[ns])?;
                seen[ns] = Some(summary);
            }
        }
    }
    let manifest = archive.into_inner().into_inner().finish()?;
    let named: Vec<(String, Option<NamespaceSummary>)> = namespaces
        .iter()
        .zip(&seen)
        .map(|(n, s)| (n.collection.clone(), *s))
        .collect();
    if let Some(m) = &manifest {
        check_against_manifest(m, &named)?;
    }
    progress.report(Progress::phase(Phase::Done));
    Ok(VerifyResult {
        manifest,
        collections: named
            .into_iter()
            .filter_map(|(n, s)| s.map(|s| (n, s)))
            .collect(),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// The decrypted mongodump archive (`mongorestore --archive=PATH` reads it).
    Archive,
    /// One canonical Extended JSON v2 file per collection, one document per line.
    Ejson,
}

/// Writes a backup out in a portable form. `out` is a file (archive) or a folder (ejson).
pub fn export_to(
    source: Source,
    out: &Path,
    format: ExportFormat,
    progress: &dyn ProgressSink,
) -> Result<VerifyResult, EngineError> {
    match format {
        ExportFormat::Archive => {
            let tmp = out.with_extension("partial");
            let file = crate::settings::replace_private(&tmp)
                .map_err(|e| EngineError::io(format!("creating {}", tmp.display()), e))?;
            let mut w = BufWriter::new(file);
            // Copy exactly the archive bytes while the reader checks them.
            let result = {
                let opened = open_source(source)?;
                let tee = TeeReader {
                    inner: opened,
                    out: &mut w,
                };
                let mut archive = ArchiveReader::new(BufReader::with_capacity(1 << 16, tee))?;
                while archive.next_item()?.is_some() {}
                let tee = archive.into_inner().into_inner();
                tee.inner.finish()?
            };
            w.flush()
                .map_err(|e| EngineError::io(format!("writing {}", tmp.display()), e))?;
            drop(w);
            std::fs::rename(&tmp, out)
                .map_err(|e| EngineError::io(format!("writing {}", out.display()), e))?;
            let _ = progress;
            Ok(VerifyResult {
                manifest: result,
                collections: Vec::new(),
            })
        }
        ExportFormat::Ejson => {
            std::fs::create_dir_all(out)
                .map_err(|e| EngineError::io(format!("creating {}", out.display()), e))?;
            let files: std::cell::RefCell<std::collections::HashMap<String, BufWriter<File>>> =
                Default::default();
            let result = read_all(
                source,
                progress,
                |ns, raw| {
                    let mut files = files.borrow_mut();
                    let w = match files.entry(ns.collection.clone()) {
                        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(open_ejson(out, &ns.collection)?)
                        }
                    };
                    let doc = bson::RawDocument::from_bytes(raw)
                        .and_then(|d| d.to_owned().to_document())
                        .map_err(|e| {
                            EngineError::Verification(format!(
                                "a document in the backup is not valid BSON: {e}"
                            ))
                        })?;
                    let line = bson::Bson::Document(doc)
                        .into_canonical_extjson()
                        .to_string();
                    writeln!(w, "{line}").map_err(|e| EngineError::io("writing JSON", e))
                },
                |ns| {
                    let mut files = files.borrow_mut();
                    if ns.kind != "view" && !files.contains_key(&ns.collection) {
                        files.insert(ns.collection.clone(), open_ejson(out, &ns.collection)?);
                    }
                    Ok(())
                },
            )?;
            for (_, mut w) in files.into_inner() {
                w.flush().map_err(|e| EngineError::io("writing JSON", e))?;
            }
            Ok(result)
        }
    }
}

/// A collection's file name inside an export folder: path separators and dots that could escape
/// the folder are replaced, and a long name is shortened to fit a file name. A name that had to
/// change ends with `~` and 8 hex digits of its SHA-256, so two collections never share a file
/// (`a/b` and `a_b`).
pub fn safe_file_stem(collection: &str) -> String {
    const MAX_STEM_BYTES: usize = 200;
    let mut s: String = collection
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c == '\0' {
                '_'
            } else {
                c
            }
        })
        .collect();
    if s.starts_with('.') {
        s.insert(0, '_');
    }
    if s == collection && s.len() <= MAX_STEM_BYTES {
        return s;
    }
    let mut cut = MAX_STEM_BYTES.min(s.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(collection.as_bytes()));
    format!("{s}~{}", &digest[..8])
}

fn open_ejson(dir: &Path, collection: &str) -> Result<BufWriter<File>, EngineError> {
    let path = dir.join(format!("{}.ejson", safe_file_stem(collection)));
    crate::settings::replace_private(&path)
        .map(BufWriter::new)
        .map_err(|e| EngineError::io(format!("creating {}", path.display()), e))
}

struct TeeReader<'a, R: Read, W: Write> {
    inner: R,
    out: &'a mut W,
}

impl<R: Read, W: Write> Read for TeeReader<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}
