//! Export: every collection of one database as the exact BSON the server holds, with indexes and
//! collection options, read from one snapshot where the server allows it.
//!
//! Consistency strategy (see docs/ARCHITECTURE.md): on a replica set or sharded cluster all
//! collections are read inside one multi-document transaction with read concern `snapshot`, the
//! one read that isolates on every server we support. A transaction has a lifetime limit (60 s by
//! default on MongoDB); when the server ends it, or a transient error breaks a cursor, the read
//! resumes after the last `_id` written in a new snapshot, and the manifest says the backup is not
//! point-in-time. A standalone server has no snapshots at all: the backup says so.

use std::io::Write;
use std::time::Duration;

use bson::{doc, spec::ElementType, Bson, Document, RawDocument, RawDocumentBuf};
use mongodb::{options::ReadConcern, Client, ClientSession, Database};
use tokio::sync::mpsc;

use super::{cursor_command, short_reason, MongoError, ServerInfo};
use crate::archive::{ArchiveWriter, CollectionMetadata, Namespace, NamespaceSummary};
use crate::progress::{Phase, Progress, ProgressSink};

/// What the export knows about one collection or view before reading it.
#[derive(Clone, Debug)]
pub struct CollectionInfo {
    pub name: String,
    /// "collection", "view" or "timeseries", as listCollections says.
    pub kind: String,
    pub options: Document,
    pub uuid: Option<String>,
    pub indexes: Vec<Document>,
}

impl CollectionInfo {
    fn is_data(&self) -> bool {
        self.kind != "view"
    }

    fn capped(&self) -> bool {
        self.options.get_bool("capped").unwrap_or(false)
    }

    /// Reading in `_id` order lets an interrupted read resume where it stopped; capped collections
    /// keep their natural (insertion) order instead.
    pub fn resumable(&self) -> bool {
        !self.capped() && self.indexes.iter().any(|i| i.get_str("name") == Ok("_id_"))
    }
}

/// Collections and views of `db` (system collections left out), sorted by name.
pub async fn describe_database(db: &Database) -> Result<Vec<CollectionInfo>, MongoError> {
    let listed = cursor_command(db, doc! { "listCollections": 1 })
        .await
        .map_err(|e| MongoError::server(format!("listing the collections of {}", db.name()), e))?;
    let mut out = Vec::new();
    for spec in listed {
        let name = spec.get_str("name").unwrap_or_default().to_string();
        if name.is_empty() || name.starts_with("system.") {
            continue;
        }
        let kind = spec.get_str("type").unwrap_or("collection").to_string();
        let options = spec.get_document("options").cloned().unwrap_or_default();
        let uuid = match spec.get_document("info").ok().and_then(|i| i.get("uuid")) {
            Some(Bson::Binary(b)) => Some(hex::encode(&b.bytes)),
            _ => None,
        };
        // No counts or sizes: on some servers they cost a scan of every collection, and
        // mongodump writes size 0 as well. Progress totals come from the previous backup.
        let indexes = if kind == "view" {
            Vec::new()
        } else {
            cursor_command(db, doc! { "listIndexes": &name })
                .await
                .map_err(|e| MongoError::server(format!("listing the indexes of {name}"), e))?
                .into_iter()
                .map(|mut ix| {
                    ix.remove("ns");
                    ix
                })
                .collect()
        };
        out.push(CollectionInfo {
            name,
            kind,
            options,
            uuid,
            indexes,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The archive prelude entries for `infos`, in the same order.
pub fn namespaces(db: &str, infos: &[CollectionInfo]) -> Vec<Namespace> {
    infos
        .iter()
        .map(|c| Namespace {
            db: db.to_string(),
            collection: c.name.clone(),
            kind: c.kind.clone(),
            size: 0,
            metadata: CollectionMetadata {
                options: c.options.clone(),
                indexes: c.indexes.clone(),
                uuid: c.uuid.clone(),
                collection_name: c.name.clone(),
                kind: c.kind.clone(),
            },
        })
        .collect()
}

/// Raw documents on their way from the cursor to the archive writer.
pub enum ExportMsg {
    /// Concatenated raw BSON documents of namespace `ns`.
    Docs { ns: usize, buf: Vec<u8> },
    /// Namespace `ns` is finished (successfully or not).
    End { ns: usize },
}

/// How the data was read, for the manifest.
#[derive(Clone, Debug)]
pub struct ExportReport {
    pub point_in_time: bool,
    pub consistency: String,
    /// Namespace index -> why it could not be read completely.
    pub failures: Vec<(usize, String)>,
}

const FLUSH_BYTES: usize = 1 << 20;
const BATCH_DOCS: u32 = 2000;
const TRANSIENT_RETRIES: u32 = 3;
const SNAPSHOT_RESUMES: u32 = 10_000;

/// Reads every collection's documents into `tx`. Returns how consistent the read was.
/// `total_docs` (0 when unknown) is only for progress.
pub async fn read_data(
    client: &Client,
    db_name: &str,
    infos: &[CollectionInfo],
    server: &ServerInfo,
    total_docs: u64,
    tx: mpsc::Sender<ExportMsg>,
    progress: &dyn ProgressSink,
) -> Result<ExportReport, MongoError> {
    let db = client.database(db_name);
    let mut session = client
        .start_session()
        .await
        .map_err(|e| MongoError::server("starting a session", e))?;
    let use_txn = server.supports_snapshots;
    let mut txn_open = false;
    let mut snapshots = 0u32;
    let mut failures = Vec::new();
    let mut done_docs = 0u64;
    let mut done_bytes = 0u64;

    for (ns, info) in infos.iter().enumerate() {
        if info.is_data() {
            let mut state = CopyState::default();
            let mut transient = 0;
            let mut resumes = 0;
            loop {
                if use_txn && !txn_open {
                    session
                        .start_transaction()
                        .read_concern(ReadConcern::snapshot())
                        .await
                        .map_err(|e| MongoError::server("starting a snapshot transaction", e))?;
                    txn_open = true;
                    snapshots += 1;
                }
                let before = state.docs;
                let result = copy_collection(
                    &db,
                    info,
                    ns,
                    &mut session,
                    &mut state,
                    &tx,
                    &mut |docs, bytes| {
                        progress.report(Progress {
                            phase: Phase::Exporting,
                            collection: Some(info.name.clone()),
                            done_docs: done_docs + docs,
                            total_docs,
                            done_bytes: done_bytes + bytes,
                            total_bytes: 0,
                        })
                    },
                )
                .await;
                match result {
                    Ok(()) => break,
                    Err(CopyError::WriterGone) => return Err(writer_gone()),
                    Err(CopyError::Mongo(e)) => {
                        if txn_open {
                            let _ = session.abort_transaction().await;
                            txn_open = false;
                        }
                        let resumable = info.resumable() || state.docs == 0;
                        if use_txn
                            && is_snapshot_lost(&e)
                            && resumable
                            && resumes < SNAPSHOT_RESUMES
                        {
                            resumes += 1;
                            tracing::info!(collection = %info.name, "snapshot ended by the server; resuming in a new one");
                            continue;
                        }
                        if is_transient(&e) && resumable && transient < TRANSIENT_RETRIES {
                            transient += 1;
                            if state.docs > before {
                                transient = 1;
                            }
                            tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(transient)))
                                .await;
                            continue;
                        }
                        tracing::warn!(collection = %info.name, error = %e, "collection export failed");
                        failures.push((ns, short_reason(&e)));
                        break;
                    }
                }
            }
            done_docs += state.docs;
            done_bytes += state.bytes;
        }
        tx.send(ExportMsg::End { ns })
            .await
            .map_err(|_| writer_gone())?;
        crate::crash::crash_point("export.collection_end");
    }
    if txn_open {
        // Read-only: committing only releases the snapshot.
        let _ = session.commit_transaction().await;
    }
    let (point_in_time, consistency) = if !use_txn {
        (false, "not point-in-time: the server is a standalone mongod, which offers no snapshot reads (run it as a one-node replica set for point-in-time backups)".to_string())
    } else if snapshots <= 1 && failures.is_empty() {
        (
            true,
            "point-in-time: every collection was read in one snapshot transaction".to_string(),
        )
    } else if failures.is_empty() {
        (false, format!("not point-in-time: the server ended the snapshot, so the collections were read in {snapshots} snapshots"))
    } else {
        (
            false,
            "not point-in-time: some collections could not be read completely".to_string(),
        )
    };
    Ok(ExportReport {
        point_in_time,
        consistency,
        failures,
    })
}

fn writer_gone() -> MongoError {
    MongoError::Mismatch("the backup file writer stopped".into())
}

#[derive(Default)]
struct CopyState {
    docs: u64,
    bytes: u64,
    last_id: Option<Bson>,
}

enum CopyError {
    Mongo(mongodb::error::Error),
    WriterGone,
}

impl From<mongodb::error::Error> for CopyError {
    fn from(e: mongodb::error::Error) -> Self {
        CopyError::Mongo(e)
    }
}

async fn copy_collection(
    db: &Database,
    info: &CollectionInfo,
    ns: usize,
    session: &mut ClientSession,
    state: &mut CopyState,
    tx: &mpsc::Sender<ExportMsg>,
    on_progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<(), CopyError> {
    let coll = db.collection::<RawDocumentBuf>(&info.name);
    let filter = match &state.last_id {
        Some(last) => resume_filter(last),
        None => doc! {},
    };
    // Bounded batches keep the driver's buffer small whatever the collection size (the server
    // caps a batch at 16 MiB in any case).
    let find = coll.find(filter).batch_size(BATCH_DOCS);
    let find = if info.resumable() {
        find.sort(doc! { "_id": 1 })
            .hint(mongodb::options::Hint::Keys(doc! { "_id": 1 }))
    } else {
        find
    };
    let mut cursor = find.session(&mut *session).await?;
    let mut buf = Vec::with_capacity(FLUSH_BYTES + 64 * 1024);
    let mut last_start = 0usize;
    let mut outcome = Ok(());
    loop {
        match cursor.advance(&mut *session).await {
            Ok(true) => {
                let raw = cursor.current().as_bytes();
                last_start = buf.len();
                buf.extend_from_slice(raw);
                state.docs += 1;
                state.bytes += raw.len() as u64;
                crate::crash::crash_point("export.document");
                if buf.len() >= FLUSH_BYTES {
                    flush(tx, ns, &mut buf, last_start, state, info.resumable()).await?;
                    on_progress(state.docs, state.bytes);
                }
            }
            Ok(false) => break,
            Err(e) => {
                outcome = Err(CopyError::Mongo(e));
                break;
            }
        }
    }
    // Documents read before an error are good: keep them, and resume after the last one.
    flush(tx, ns, &mut buf, last_start, state, info.resumable()).await?;
    on_progress(state.docs, state.bytes);
    outcome
}

async fn flush(
    tx: &mpsc::Sender<ExportMsg>,
    ns: usize,
    buf: &mut Vec<u8>,
    last_start: usize,
    state: &mut CopyState,
    track_id: bool,
) -> Result<(), CopyError> {
    if buf.is_empty() {
        return Ok(());
    }
    if track_id {
        let last = RawDocument::from_bytes(&buf[last_start..])
            .ok()
            .and_then(|d| d.get("_id").ok().flatten());
        state.last_id = last.and_then(|v| v.to_raw_bson().try_into().ok());
    }
    let out = std::mem::replace(buf, Vec::with_capacity(FLUSH_BYTES + 64 * 1024));
    tx.send(ExportMsg::Docs { ns, buf: out })
        .await
        .map_err(|_| CopyError::WriterGone)
}

/// Everything that sorts after `last` in an `_id` index. `$gt` alone compares within one type
/// bracket only, so the types that sort after `last`'s type are added explicitly.
pub fn resume_filter(last: &Bson) -> Document {
    let rank = type_rank(last.element_type());
    let later: Vec<Bson> = SORT_ORDER
        .iter()
        .filter(|(_, r)| *r > rank)
        .map(|(t, _)| Bson::Int32(*t as u8 as i32))
        .collect();
    doc! { "$or": [ { "_id": { "$gt": last.clone() } }, { "_id": { "$type": later } } ] }
}

/// BSON types in MongoDB's comparison order (equal rank = compared as one bracket).
const SORT_ORDER: &[(ElementType, u8)] = &[
    (ElementType::MinKey, 0),
    (ElementType::Null, 1),
    (ElementType::Int32, 2),
    (ElementType::Int64, 2),
    (ElementType::Double, 2),
    (ElementType::Decimal128, 2),
    (ElementType::Symbol, 3),
    (ElementType::String, 3),
    (ElementType::EmbeddedDocument, 4),
    (ElementType::Array, 5),
    (ElementType::Binary, 6),
    (ElementType::ObjectId, 7),
    (ElementType::Boolean, 8),
    (ElementType::DateTime, 9),
    (ElementType::Timestamp, 10),
    (ElementType::RegularExpression, 11),
    (ElementType::MaxKey, 12),
];

fn type_rank(t: ElementType) -> u8 {
    SORT_ORDER
        .iter()
        .find(|(e, _)| *e == t)
        .map(|(_, r)| *r)
        .unwrap_or(u8::MAX)
}

/// The server ended the snapshot (transaction lifetime, snapshot history window, a killed cursor).
fn is_snapshot_lost(e: &mongodb::error::Error) -> bool {
    const CODES: &[i32] = &[43, 239, 246, 251, 290];
    e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR)
        || code_of(e).map(|c| CODES.contains(&c)).unwrap_or(false)
}

fn code_of(e: &mongodb::error::Error) -> Option<i32> {
    match e.kind.as_ref() {
        mongodb::error::ErrorKind::Command(c) => Some(c.code),
        _ => None,
    }
}

fn is_transient(e: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    matches!(
        e.kind.as_ref(),
        ErrorKind::Io(_)
            | ErrorKind::ServerSelection { .. }
            | ErrorKind::ConnectionPoolCleared { .. }
    ) || e.contains_label("RetryableError")
}

/// The raw documents of an [`ExportMsg::Docs`] buffer (concatenated BSON, each starting with
/// its length), one by one.
pub fn documents(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let len = i32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let (doc, tail) = rest.split_at(len.min(rest.len()));
        rest = tail;
        Some(doc)
    })
}

/// The blocking side of the export: raw documents from `rx` into the archive. Returns the inner
/// writer and what was written per namespace.
pub fn write_archive<W: Write>(
    mut rx: mpsc::Receiver<ExportMsg>,
    mut archive: ArchiveWriter<W>,
    namespaces: usize,
) -> std::io::Result<(W, Vec<NamespaceSummary>)> {
    let mut summaries = vec![NamespaceSummary::default(); namespaces];
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            ExportMsg::Docs { ns, buf } => {
                for raw in documents(&buf) {
                    archive.write_document(ns, raw)?;
                }
            }
            ExportMsg::End { ns } => summaries[ns] = archive.end_namespace(ns)?,
        }
    }
    Ok((archive.finish()?, summaries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_filter_reaches_later_types() {
        let f = resume_filter(&Bson::Int32(5));
        let types = f.get_array("$or").unwrap()[1]
            .as_document()
            .unwrap()
            .get_document("_id")
            .unwrap()
            .get_array("$type")
            .unwrap()
            .clone();
        // Strings and ObjectIds sort after numbers; numbers of other widths are in the same bracket.
        assert!(types.contains(&Bson::Int32(ElementType::String as u8 as i32)));
        assert!(types.contains(&Bson::Int32(ElementType::ObjectId as u8 as i32)));
        assert!(!types.contains(&Bson::Int32(ElementType::Int64 as u8 as i32)));
        assert!(!types.contains(&Bson::Int32(ElementType::Null as u8 as i32)));
        let last = resume_filter(&Bson::MaxKey);
        assert!(last.get_array("$or").unwrap()[1]
            .as_document()
            .unwrap()
            .get_document("_id")
            .unwrap()
            .get_array("$type")
            .unwrap()
            .is_empty());
    }
}
