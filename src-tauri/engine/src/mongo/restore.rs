//! Restore: documents go into staging collections next to the live ones; only after every
//! collection is loaded, counted, indexed and checked against the manifest is each staging
//! collection renamed over its live collection (`dropTarget`). A failure before the swap drops the
//! staging collections and leaves live data exactly as it was.

use std::collections::HashSet;

use bson::{doc, Bson, Document, RawDocumentBuf};
use mongodb::{Client, Database};
use tokio::sync::mpsc;

use super::{cursor_command, MongoError};
use crate::archive::{Namespace, NamespaceSummary};
use crate::progress::{Phase, Progress, ProgressSink};

/// Prefix of the collections a restore loads into before swapping them in.
pub const STAGING_PREFIX: &str = "driveback_staging_";

/// Requests a restore keeps in flight by default (the setting `restore.parallel`): insert
/// batches, and each loaded collection's count and index build. Measured in docs/BENCHMARKS.md.
pub const DEFAULT_PARALLEL: usize = 3;

/// Documents on their way from the archive reader to the database.
pub enum RestoreMsg {
    Docs {
        ns: usize,
        docs: Vec<RawDocumentBuf>,
        bytes: u64,
    },
    End {
        ns: usize,
        summary: NamespaceSummary,
    },
}

/// Which namespaces of an archive to restore: all collections and views, or the named ones.
pub fn select(namespaces: &[Namespace], only: Option<&[String]>) -> Result<Vec<usize>, MongoError> {
    if let Some(names) = only {
        for n in names {
            if !namespaces.iter().any(|ns| &ns.collection == n) {
                return Err(MongoError::NoSuchCollection(n.clone()));
            }
        }
    }
    let selected: Vec<usize> = namespaces
        .iter()
        .enumerate()
        .filter(|(_, ns)| !ns.collection.starts_with("system."))
        .filter(|(_, ns)| {
            only.map(|names| names.contains(&ns.collection))
                .unwrap_or(true)
        })
        .map(|(i, _)| i)
        .collect();
    // A name the server would refuse would only fail at its swap, after others were swapped in:
    // refuse the backup before anything is loaded.
    if let Some(ns) = selected
        .iter()
        .map(|&i| &namespaces[i])
        .find(|ns| !is_valid_collection_name(&ns.collection))
    {
        return Err(MongoError::Mismatch(format!(
            "the backup holds a collection named {:?}, which MongoDB does not allow; nothing was restored",
            ns.collection
        )));
    }
    Ok(selected)
}

/// What MongoDB accepts as a collection name: not empty, no `$` or NUL, not starting with `.`.
fn is_valid_collection_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['$', '\0'])
}

struct StagedCollection {
    ns: usize,
    name: String,
    staging: String,
    options: Document,
    indexes: Vec<Document>,
    summary: Option<NamespaceSummary>,
    /// At most this many documents and bytes (the manifest's), when known.
    cap: Option<(u64, u64)>,
    loaded: (u64, u64),
    /// Insert batches sent and not yet acknowledged.
    pending: usize,
    finish: Finish,
}

/// Where a staged collection's count and index build are.
enum Finish {
    /// Still loading (or its end not seen yet).
    Loading,
    /// Loaded; waits for a free request.
    Queued,
    Running,
    Done(Result<(), MongoError>),
}

/// What a request in flight was.
enum Task {
    Insert(Result<(), MongoError>),
    Finish {
        result: Result<(), MongoError>,
        count: std::time::Duration,
        index: std::time::Duration,
    },
}

#[derive(Default)]
struct Timings {
    waiting_reader: std::time::Duration,
    waiting_server: std::time::Duration,
    count: std::time::Duration,
    index: std::time::Duration,
}

/// Takes note of a finished request: an insert that failed stops the restore; a collection whose
/// last batch is in is queued for its count and indexes.
fn settle(
    done: Result<(usize, Task), tokio::task::JoinError>,
    collections: &mut [StagedCollection],
    ready: &mut std::collections::VecDeque<usize>,
    timings: &mut Timings,
) -> Result<(), MongoError> {
    let (ci, task) = done.expect("restore task");
    let c = &mut collections[ci];
    match task {
        Task::Insert(r) => {
            r?;
            c.pending -= 1;
            if c.pending == 0 && c.summary.is_some() && matches!(c.finish, Finish::Loading) {
                c.finish = Finish::Queued;
                ready.push_back(ci);
            }
        }
        Task::Finish {
            result,
            count,
            index,
        } => {
            timings.count += count;
            timings.index += index;
            c.finish = Finish::Done(result);
        }
    }
    Ok(())
}

/// Starts the count and index build of loaded collections while fewer than `limit` requests are
/// in flight.
fn spawn_ready(
    db: &Database,
    collections: &mut [StagedCollection],
    ready: &mut std::collections::VecDeque<usize>,
    in_flight: &mut tokio::task::JoinSet<(usize, Task)>,
    limit: usize,
) {
    while in_flight.len() < limit {
        let Some(ci) = ready.pop_front() else { return };
        let c = &mut collections[ci];
        c.finish = Finish::Running;
        let (db, name, staging, indexes) = (
            db.clone(),
            c.name.clone(),
            c.staging.clone(),
            c.indexes.clone(),
        );
        let want = c.summary.map(|s| s.documents).unwrap_or(0);
        in_flight.spawn(async move {
            let (result, count, index) = finish(&db, &name, &staging, want, &indexes).await;
            (
                ci,
                Task::Finish {
                    result,
                    count,
                    index,
                },
            )
        });
    }
}

/// Checks that a loaded staging collection holds as many documents as the backup has, then
/// builds its indexes (once, after the load). Returns how long each took.
async fn finish(
    db: &Database,
    name: &str,
    staging: &str,
    want: u64,
    indexes: &[Document],
) -> (
    Result<(), MongoError>,
    std::time::Duration,
    std::time::Duration,
) {
    let started = std::time::Instant::now();
    // The `count` command without a filter: on a collection this restore created and loaded (not
    // sharded, no unclean shutdown since), the server's count of its documents is exact, and it
    // does not read every document as a filtered count does.
    let have = db
        .collection::<Document>(staging)
        .estimated_document_count()
        .await
        .map_err(|e| MongoError::server(format!("counting {name}"), e));
    let counted = started.elapsed();
    let checked = match have {
        Err(e) => Err(e),
        Ok(have) if have != want => Err(MongoError::Mismatch(format!(
            "collection {name} holds {have} documents after loading, the backup has {want}; nothing was replaced"
        ))),
        Ok(_) => Ok(()),
    };
    if checked.is_err() {
        return (checked, counted, std::time::Duration::ZERO);
    }
    let started = std::time::Instant::now();
    let result = async {
        let specs: Vec<Bson> = indexes
            .iter()
            .filter(|i| i.get_str("name") != Ok("_id_"))
            .map(|i| index_spec(name, i).map(Bson::Document))
            .collect::<Result<_, _>>()?;
        if specs.is_empty() {
            return Ok(());
        }
        db.run_command(doc! { "createIndexes": staging, "indexes": specs })
            .await
            .map_err(|e| MongoError::server(format!("building the indexes of {name}"), e))?;
        crate::crash::crash_point("restore.indexed");
        Ok(())
    }
    .await;
    (result, counted, started.elapsed())
}

/// This process's resident memory in MiB, where the system says (Linux).
fn resident_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Data loaded into staging collections, not yet visible.
pub struct Staged {
    db: Database,
    client: Client,
    collections: Vec<StagedCollection>,
    views: Vec<(String, Document)>,
}

/// What a finished restore did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RestoreReport {
    pub database: String,
    pub collections: Vec<RestoredCollection>,
    pub views: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct RestoredCollection {
    pub name: String,
    pub documents: u64,
}

/// The staging collection of namespace `i`: named after the collection when the name is short,
/// by its index otherwise, so that the staging name fits wherever the live one does (MongoDB
/// limits `db.collection` to 255 bytes, and the prefix adds 27).
fn staging_name(run: &str, i: usize, collection: &str) -> String {
    if collection.len() <= 64 {
        format!("{STAGING_PREFIX}{run}_{collection}")
    } else {
        format!("{STAGING_PREFIX}{run}_{i}")
    }
}

/// Drops staging collections left behind by an interrupted restore.
pub async fn drop_leftover_staging(db: &Database) -> Result<usize, MongoError> {
    let names = db
        .list_collection_names()
        .await
        .map_err(|e| MongoError::server("listing collections", e))?;
    let mut dropped = 0;
    for name in names.into_iter().filter(|n| n.starts_with(STAGING_PREFIX)) {
        db.collection::<Document>(&name)
            .drop()
            .await
            .map_err(|e| MongoError::server("dropping a staging collection", e))?;
        dropped += 1;
    }
    Ok(dropped)
}

/// Loads the selected namespaces into staging collections of `target_db` from `rx`.
pub async fn stage(
    client: &Client,
    target_db: &str,
    namespaces: &[Namespace],
    selected: &[usize],
    expected: Option<&[crate::manifest::CollectionEntry]>,
    mut rx: mpsc::Receiver<RestoreMsg>,
    parallel: usize,
    progress: &dyn ProgressSink,
) -> Result<Staged, MongoError> {
    let parallel = parallel.max(1);
    let listed = |name: &str| expected.map(|e| e.iter().find(|c| c.name == name));
    // Every collection's and view's options are checked before anything is created, and every
    // namespace must be one the restore plan showed.
    for &i in selected {
        if let Some(None) = listed(&namespaces[i].collection) {
            return Err(MongoError::Mismatch(format!(
                "the backup holds collection {:?}, which its manifest does not list: nothing was restored",
                namespaces[i].collection
            )));
        }
        create_command(
            "check",
            &namespaces[i].collection,
            &namespaces[i].metadata.options,
        )?;
        for spec in &namespaces[i].metadata.indexes {
            index_spec(&namespaces[i].collection, spec)?;
        }
    }
    let db = client.database(target_db);
    drop_leftover_staging(&db).await?;
    let run = format!("{:08x}", rand::random::<u32>());
    let mut staged = Staged {
        db: db.clone(),
        client: client.clone(),
        collections: Vec::new(),
        views: Vec::new(),
    };
    let result = async {
        for &i in selected {
            let ns = &namespaces[i];
            if ns.kind == "view" {
                staged
                    .views
                    .push((ns.collection.clone(), ns.metadata.options.clone()));
                continue;
            }
            let staging = staging_name(&run, i, &ns.collection);
            let create = create_command(&staging, &ns.collection, &ns.metadata.options)?;
            db.run_command(create).await.map_err(|e| {
                MongoError::server(
                    format!("creating a staging collection for {}", ns.collection),
                    e,
                )
            })?;
            staged.collections.push(StagedCollection {
                ns: i,
                name: ns.collection.clone(),
                staging,
                options: ns.metadata.options.clone(),
                indexes: ns.metadata.indexes.clone(),
                summary: None,
                cap: listed(&ns.collection)
                    .flatten()
                    .map(|c| (c.documents, c.bytes)),
                loaded: (0, 0),
                pending: 0,
                finish: Finish::Loading,
            });
        }
        crate::crash::crash_point("restore.staging_created");
        if let Some(mib) = resident_mib() {
            tracing::debug!(rss_mib = mib, "restore: resident memory at the start of the load");
        }
        let (mut done_docs, mut done_bytes) = (0u64, 0u64);
        let mut in_flight: tokio::task::JoinSet<(usize, Task)> = tokio::task::JoinSet::new();
        // Loaded collections whose count and indexes wait for a free request.
        let mut ready: std::collections::VecDeque<usize> = Default::default();
        let mut timings = Timings::default();
        let load_started = std::time::Instant::now();
        loop {
            let t = std::time::Instant::now();
            let Some(msg) = rx.recv().await else { break };
            timings.waiting_reader += t.elapsed();
            match msg {
                RestoreMsg::Docs { ns, docs, bytes } => {
                    let Some(ci) = staged.collections.iter().position(|c| c.ns == ns) else {
                        continue;
                    };
                    let c = &mut staged.collections[ci];
                    c.loaded.0 += docs.len() as u64;
                    c.loaded.1 += bytes;
                    if let Some((documents, bytes)) = c.cap {
                        if c.loaded.0 > documents || c.loaded.1 > bytes {
                            return Err(MongoError::Mismatch(format!(
                                "collection {} holds more than the {documents} documents ({bytes} bytes) \
                                 its manifest lists: the restore stopped and nothing was changed",
                                c.name
                            )));
                        }
                    }
                    // Batches of one collection may load concurrently (the server then uses
                    // more than one core); a capped collection keeps its insertion order.
                    let capped = c.options.get_bool("capped").unwrap_or(false);
                    let limit = if capped { 1 } else { parallel };
                    let t = std::time::Instant::now();
                    spawn_ready(&db, &mut staged.collections, &mut ready, &mut in_flight, parallel);
                    while in_flight.len() >= limit {
                        let done = in_flight.join_next().await.expect("in flight");
                        settle(done, &mut staged.collections, &mut ready, &mut timings)?;
                        spawn_ready(&db, &mut staged.collections, &mut ready, &mut in_flight, limit);
                    }
                    timings.waiting_server += t.elapsed();
                    let c = &mut staged.collections[ci];
                    c.pending += 1;
                    let n = docs.len() as u64;
                    let coll = db.collection::<RawDocumentBuf>(&c.staging);
                    let name = c.name.clone();
                    in_flight.spawn(async move {
                        let r = coll
                            .insert_many(docs)
                            .ordered(true)
                            .bypass_document_validation(true)
                            .await
                            .map(|_| ())
                            .map_err(|e| MongoError::server(format!("loading {name}"), e));
                        (ci, Task::Insert(r))
                    });
                    crate::crash::crash_point("restore.batch");
                    done_docs += n;
                    done_bytes += bytes;
                    progress.report(Progress {
                        phase: Phase::Staging,
                        collection: Some(staged.collections[ci].name.clone()),
                        done_docs,
                        total_docs: 0,
                        done_bytes,
                        total_bytes: 0,
                    });
                }
                RestoreMsg::End { ns, summary } => {
                    if let Some(ci) = staged.collections.iter().position(|c| c.ns == ns) {
                        let c = &mut staged.collections[ci];
                        c.summary = Some(summary);
                        if c.pending == 0 {
                            ready.push_back(ci);
                        }
                    }
                }
            }
        }
        let loaded = load_started.elapsed();
        // The tail: the last batches, and the counts and indexes of what is not finished yet.
        progress.report(Progress::phase(Phase::Indexing));
        let t = std::time::Instant::now();
        loop {
            spawn_ready(&db, &mut staged.collections, &mut ready, &mut in_flight, parallel);
            let Some(done) = in_flight.join_next().await else { break };
            settle(done, &mut staged.collections, &mut ready, &mut timings)?;
        }
        tracing::debug!(
            load_s = loaded.as_secs_f64(),
            tail_s = t.elapsed().as_secs_f64(),
            waiting_for_reader_s = timings.waiting_reader.as_secs_f64(),
            waiting_for_server_s = timings.waiting_server.as_secs_f64(),
            counts_s = timings.count.as_secs_f64(),
            indexes_s = timings.index.as_secs_f64(),
            documents = done_docs,
            parallel,
            "restore timings: loading into staging, each collection counted and indexed once loaded"
        );
        Ok::<(), MongoError>(())
    }
    .await;
    match result {
        Ok(()) => Ok(staged),
        Err(e) => {
            staged.discard().await;
            Err(e)
        }
    }
}

impl Staged {
    /// What the archive held for each staged collection (None: its end was never seen).
    pub fn summaries(&self) -> Vec<(String, Option<NamespaceSummary>)> {
        self.collections
            .iter()
            .map(|c| (c.name.clone(), c.summary))
            .collect()
    }

    /// Leaves out collections (e.g. ones the manifest marks as failed) before finalising.
    pub async fn exclude(&mut self, names: &HashSet<String>) {
        let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.collections)
            .into_iter()
            .partition(|c| names.contains(&c.name));
        self.collections = keep;
        for c in gone {
            let _ = self.db.collection::<Document>(&c.staging).drop().await;
        }
    }

    /// Drops every staging collection; live data is untouched.
    pub async fn discard(self) {
        for c in &self.collections {
            if let Err(e) = self.db.collection::<Document>(&c.staging).drop().await {
                tracing::warn!(collection = %c.staging, error = %e, "could not drop a staging collection");
            }
        }
    }

    /// Checks counts, builds indexes, then swaps every staging collection in. Fails before the
    /// first swap -> nothing live changed.
    pub async fn finalize(
        mut self,
        progress: &dyn ProgressSink,
    ) -> Result<RestoreReport, MongoError> {
        let mut report = RestoreReport {
            database: self.db.name().to_string(),
            ..Default::default()
        };
        if let Err(e) = self.prepare(progress).await {
            self.discard().await;
            return Err(e);
        }
        let swap_started = std::time::Instant::now();
        progress.report(Progress::phase(Phase::Swapping));
        crate::crash::crash_point("restore.before_swap");
        let admin = self.client.database("admin");
        let dbn = self.db.name().to_string();
        for (i, c) in self.collections.iter().enumerate() {
            let swap = admin
                .run_command(doc! {
                    "renameCollection": format!("{dbn}.{}", c.staging),
                    "to": format!("{dbn}.{}", c.name),
                    "dropTarget": true,
                })
                .await;
            if let Err(e) = swap {
                // Collections already swapped hold the backup's data, the rest their old data.
                for rest in &self.collections[i..] {
                    let _ = self.db.collection::<Document>(&rest.staging).drop().await;
                }
                let done: Vec<_> = self.collections[..i]
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect();
                return Err(MongoError::server(
                    format!(
                        "replacing {} (already replaced: {}; the others keep their current data)",
                        c.name,
                        if done.is_empty() {
                            "none".into()
                        } else {
                            done.join(", ")
                        }
                    ),
                    e,
                ));
            }
            crate::crash::crash_point("restore.swapped");
            report.warnings.extend(self.restore_options(c).await?);
            report.collections.push(RestoredCollection {
                name: c.name.clone(),
                documents: c.summary.map(|s| s.documents).unwrap_or(0),
            });
        }
        for (name, options) in &self.views {
            let existing = self
                .db
                .list_collection_names()
                .filter(doc! { "name": name })
                .await
                .map_err(|e| MongoError::server("listing collections", e))?;
            if !existing.is_empty() {
                self.db
                    .collection::<Document>(name)
                    .drop()
                    .await
                    .map_err(|e| MongoError::server(format!("replacing view {name}"), e))?;
            }
            let create = create_command(name, name, options)?;
            self.db
                .run_command(create)
                .await
                .map_err(|e| MongoError::server(format!("creating view {name}"), e))?;
            report.views.push(name.clone());
        }
        tracing::debug!(
            swap_s = swap_started.elapsed().as_secs_f64(),
            "restore timings: swap (renames, options put back, views)"
        );
        Ok(report)
    }

    /// The count and indexes of every collection not finished while loading (a collection
    /// finished then with an error stops the restore here).
    async fn prepare(&mut self, progress: &dyn ProgressSink) -> Result<(), MongoError> {
        progress.report(Progress::phase(Phase::Verifying));
        let started = std::time::Instant::now();
        for c in &mut self.collections {
            match std::mem::replace(&mut c.finish, Finish::Loading) {
                Finish::Done(Ok(())) => {}
                Finish::Done(Err(e)) => return Err(e),
                _ => {
                    let want = c.summary.map(|s| s.documents).unwrap_or(0);
                    finish(&self.db, &c.name, &c.staging, want, &c.indexes)
                        .await
                        .0?;
                }
            }
            c.finish = Finish::Done(Ok(()));
        }
        tracing::debug!(
            s = started.elapsed().as_secs_f64(),
            "restore timings: collections counted and indexed after the load"
        );
        Ok(())
    }

    /// Some servers drop collection options on rename (MongoDB keeps them): put back what `collMod`
    /// can restore and report what it cannot.
    async fn restore_options(&self, c: &StagedCollection) -> Result<Vec<String>, MongoError> {
        let listed = cursor_command(
            &self.db,
            doc! { "listCollections": 1, "filter": { "name": &c.name } },
        )
        .await
        .map_err(|e| MongoError::server("listing collections", e))?;
        let now = listed
            .first()
            .and_then(|d| d.get_document("options").ok())
            .cloned()
            .unwrap_or_default();
        let mut warnings = Vec::new();
        let mut coll_mod = doc! { "collMod": &c.name };
        for key in ["validator", "validationLevel", "validationAction"] {
            if let Some(v) = c.options.get(key) {
                if now.get(key) != Some(v) {
                    coll_mod.insert(key, v.clone());
                }
            }
        }
        if coll_mod.len() > 1 {
            self.db.run_command(coll_mod).await.map_err(|e| {
                MongoError::server(format!("restoring the validator of {}", c.name), e)
            })?;
        }
        if c.options.get_bool("capped").unwrap_or(false) && !now.get_bool("capped").unwrap_or(false)
        {
            warnings.push(format!("the server dropped the capped option of {} when it was swapped in; it is restored as a normal collection", c.name));
        }
        Ok(warnings)
    }
}

/// The options `create` takes, as `listCollections` reports them (MongoDB's documentation of
/// `create`). A backup is untrusted input: anything else in its metadata (a `create` or `$db`
/// key that would rename the target, a write concern, an unknown field) is refused.
const CREATE_OPTIONS: &[&str] = &[
    "capped",
    "size",
    "max",
    "autoIndexId",
    "timeseries",
    "expireAfterSeconds",
    "clusteredIndex",
    "changeStreamPreAndPostImages",
    "storageEngine",
    "validator",
    "validationLevel",
    "validationAction",
    "indexOptionDefaults",
    "viewOn",
    "pipeline",
    "collation",
    "encryptedFields",
];

/// The fields of an index specification `createIndexes` takes (MongoDB's documentation of
/// `createIndexes`, and what `listIndexes` reports). Anything else is refused.
const INDEX_FIELDS: &[&str] = &[
    "key",
    "name",
    "v",
    "unique",
    "sparse",
    "partialFilterExpression",
    "expireAfterSeconds",
    "hidden",
    "storageEngine",
    "collation",
    "weights",
    "default_language",
    "language_override",
    "textIndexVersion",
    "2dsphereIndexVersion",
    "bits",
    "min",
    "max",
    "bucketSize",
    "wildcardProjection",
    "prepareUnique",
    "clustered",
    "background",
];

/// An index specification of the backup as `createIndexes` gets it: only index fields (the
/// namespace field older servers report is left out, as mongorestore does), with a key and a name.
pub(crate) fn index_spec(collection: &str, spec: &Document) -> Result<Document, MongoError> {
    let mut out = Document::new();
    for (k, v) in spec.iter() {
        match k.as_str() {
            "ns" => {}
            k if INDEX_FIELDS.contains(&k) => {
                out.insert(k, v.clone());
            }
            other => {
                return Err(MongoError::Mismatch(format!(
                    "an index of {collection:?} in the backup holds {other:?}, which is not an \
                     index option: this file was not written by Driveback or mongodump; nothing \
                     was changed"
                )))
            }
        }
    }
    if out.get_document("key").is_err() || out.get_str("name").is_err() {
        return Err(MongoError::Mismatch(format!(
            "an index of {collection:?} in the backup has no key or no name: nothing was changed"
        )));
    }
    Ok(out)
}

/// `{ create: name, ...options }` for a collection or view of the backup, with only the options
/// `create` knows.
pub(crate) fn create_command(
    name: &str,
    collection: &str,
    options: &Document,
) -> Result<Document, MongoError> {
    let mut create = doc! { "create": name };
    for (k, v) in options.iter() {
        if !CREATE_OPTIONS.contains(&k.as_str()) {
            return Err(MongoError::Mismatch(format!(
                "the backup's options for {collection:?} hold {k:?}, which is not a collection \
                 option: this file was not written by Driveback or mongodump; nothing was changed"
            )));
        }
        create.insert(k.clone(), v.clone());
    }
    Ok(create)
}

#[cfg(test)]
mod create_tests {
    use super::*;

    #[test]
    fn only_collection_options_reach_create() {
        let ok = doc! { "capped": true, "size": 4096_i64, "validator": { "a": 1 } };
        let c = create_command("staging_x", "x", &ok).unwrap();
        assert_eq!(c.get_str("create").unwrap(), "staging_x");
        assert_eq!(c.get_bool("capped").unwrap(), true);
        let spec = doc! { "v": 2, "key": { "a": 1 }, "name": "a_1", "ns": "db.x", "unique": true };
        let built = index_spec("x", &spec).unwrap();
        assert_eq!(
            built,
            doc! { "v": 2, "key": { "a": 1 }, "name": "a_1", "unique": true }
        );
        for bad in [
            doc! { "key": { "a": 1 }, "name": "a_1", "commitQuorum": 0 },
            doc! { "key": { "a": 1 }, "name": "a_1", "$db": "admin" },
            doc! { "name": "a_1" },
            doc! { "key": { "a": 1 } },
        ] {
            assert!(index_spec("x", &bad).is_err(), "{bad}");
        }
        for bad in [
            doc! { "create": "admin_users" },
            doc! { "$db": "admin" },
            doc! { "writeConcern": { "w": 0 } },
        ] {
            let e = create_command("staging_x", "x", &bad).unwrap_err();
            assert!(e.to_string().contains("not a collection option"), "{e}");
        }
    }
}
