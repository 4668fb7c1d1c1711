//! The file format of the incremental layout's backups, and their writer ([`IncrementWriter`]).
//!
//! Both kinds of file of a chain, its full backup and its increments, are mongodump archives
//! (format 0.1, [`crate::archive`]) with the same [`Header`]. Every consumer of a backup
//! (restore, verify, export) reads one plain archive stream; [`super::chain::merge_chain`] turns
//! a chain back into one, so a chain is restorable by all of them, and each file on its own is
//! still readable by `mongorestore`.
//!
//! # Order
//!
//! "Name order" is the ascending byte order of the UTF-8 collection names (Rust's `str` order).
//! "`_id` order" is the ascending order of [`IdKey`]s, which is the server's `sort({_id: 1})`
//! order; "strictly" means no `_id` twice.
//!
//! # A full backup of the incremental layout
//!
//! A plain archive:
//!
//! - The prelude lists every namespace of the database (collections with their metadata: options
//!   and indexes; views; any other namespace with its metadata only) in name order.
//! - The data is written one namespace after another, in prelude order, never interleaved: a
//!   collection's documents in strictly ascending `_id` order, then its end-of-namespace header
//!   (with its CRC); a view only its end-of-namespace header.
//! - No namespace is named `__driveback_deleted.<...>`.
//!
//! A chain's merge ([`super::chain::merge_chain`]) writes exactly this, so a merged chain is the
//! full backup that would have been taken at the time of its newest file.
//!
//! # An increment
//!
//! - **Header**: the same [`Header`] as a full backup's.
//! - **Prelude**: every namespace of the database as of this backup, with its metadata as of this
//!   backup, in name order (so a new collection, a dropped one, and changed options or indexes
//!   are all told by the newest file's prelude alone). Immediately *before* each collection's
//!   namespace (every kind but `"view"`: the kinds that hold documents) comes that collection's
//!   **deletion namespace**, named `__driveback_deleted.<collection>`, of type `"collection"`,
//!   with empty metadata (the prelude's `metadata` string is empty).
//! - **The collection's own namespace** holds the documents inserted or changed since the
//!   previous backup of the chain, whole, as the server's raw BSON, in strictly ascending `_id`
//!   order.
//! - **Its deletion namespace** holds one document `{_id: <value>}` per `_id` deleted since the
//!   previous backup, in strictly ascending `_id` order. The value is the deleted key decoded by
//!   [`IdKey::to_bson`] (a number comes back as an int32 or int64 whatever its type was, which
//!   is enough: MongoDB matches numbers by value across types).
//! - **Every collection has its deletion namespace, even when nothing was deleted** (it is then
//!   empty: only its end-of-namespace header). Deletions are found while the collection is walked,
//!   after the prelude has been written; declaring the namespace for every collection up front is
//!   what lets the writer stream instead of walking the database twice.
//! - **Data**: collections in prelude order, one after another, never interleaved with each other.
//!   A collection's two namespaces are written together, *interleaved*: segments of the deletion
//!   namespace and of the collection's namespace alternate so that, read in stream order, the
//!   deleted `_id`s and the documents form one strictly ascending `_id` sequence (an `_id` is never
//!   both deleted and present). Both namespaces end (end-of-namespace headers with their CRCs)
//!   before the next collection's data starts. A view has no deletion namespace and gets only its
//!   end-of-namespace header.
//!
//! ## Why interleaved segments
//!
//! The backup's walk ([`super::Differ`]) finds a collection's deletions and changed documents
//! mixed, in `_id` order; the restore's merge ([`super::ChainMerge`]) consumes them mixed, in the
//! same order. The archive format allows segments of different namespaces in any interleaving
//! (mongodump writes them so when it dumps collections concurrently): every segment starts with
//! its namespace's header, mongorestore and [`crate::archive::ArchiveReader`] demultiplex by it,
//! and [`ArchiveWriter`] opens a new segment whenever the namespace changes. Writing the two
//! namespaces interleaved therefore keeps memory flat on both sides with no scratch file: the
//! writer writes each deletion as the walk finds it, and a reader gets a collection's deletions
//! and documents as one stream in key order. The price is one segment header (about 70 bytes,
//! identical every time, which the compression of the file reduces to a few) each time the
//! stream switches between deletions and documents.
//!
//! # Rules that keep a chain mergeable
//!
//! - A database collection named `__driveback_deleted.<...>` cannot be backed up incrementally:
//!   the writer refuses it ([`IncrementError::ReservedName`]) and the caller makes a plain full
//!   backup instead.
//! - An increment's collection is relative to the previous backup's collection of the same name.
//!   If the previous backup did not list it as a collection (it is new, was dropped and created
//!   again, or was a view), the increment holds all its documents, so the backup must not keep an
//!   index of a collection the previous backup did not hold. The merge relies on this: a
//!   collection's documents are merged from the newest file after which every file lists it as a
//!   collection, and anything older under that name is ignored.
//! - The newest file's prelude is the database's shape: its namespaces, their types, options and
//!   indexes.
//! - A deletion namespace doubles a collection's namespaces in the prelude: at most half of
//!   [`MAX_COLLECTIONS`] collections fit in an increment ([`IncrementError::TooManyNamespaces`]).
//!   Restored on its own by `mongorestore`, a deletion namespace becomes a collection of that
//!   name (which MongoDB refuses when `<db>.__driveback_deleted.<collection>` is longer than its
//!   255-byte namespace limit).

use std::io::{self, Write};

use bson::{doc, RawDocument};

use super::idkey::{IdKey, IdKeyError};
use crate::archive::{ArchiveWriter, CollectionMetadata, Header, Namespace, NamespaceSummary};
use crate::manifest::MAX_COLLECTIONS;

/// The prefix of a deletion namespace's name: `__driveback_deleted.<collection>`.
pub const DELETED_PREFIX: &str = "__driveback_deleted.";

/// The name of `collection`'s deletion namespace in an increment.
pub fn deleted_namespace(collection: &str) -> String {
    format!("{DELETED_PREFIX}{collection}")
}

/// Whether a namespace holds documents (and so, in an increment, has a deletion namespace): every
/// kind but `"view"`, as the export decides.
pub fn holds_documents(ns: &Namespace) -> bool {
    ns.kind != "view"
}

/// Which file of a chain an [`IncrementWriter`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// The chain's full backup: no deletion namespaces.
    Full,
    /// An increment: a deletion namespace before every collection.
    Increment,
}

/// Why a chain file could not be written. Every error leaves the file incomplete: the writer
/// refuses any later call ([`IncrementError::Failed`]) and the caller discards what it wrote.
#[derive(Debug, thiserror::Error)]
pub enum IncrementError {
    /// The database has a collection whose name is reserved for deletion namespaces.
    #[error(
        "collection {collection:?} cannot be backed up incrementally: names starting with \
         {DELETED_PREFIX:?} are reserved for the deletions of an increment"
    )]
    ReservedName { collection: String },
    /// Two namespaces of the same name.
    #[error("namespace {collection:?} is listed twice")]
    DuplicateNamespace { collection: String },
    /// The namespaces are not all of one database: a chain file holds one database.
    #[error("the namespaces belong to two databases, {first:?} and {other:?}")]
    MixedDatabases { first: String, other: String },
    /// More namespaces (deletion namespaces included) than an archive reader accepts.
    #[error("{count} namespaces are more than the {MAX_COLLECTIONS} a backup file may list")]
    TooManyNamespaces { count: usize },
    /// A collection that is not in the file's prelude.
    #[error("{collection:?} is not one of the namespaces of this backup")]
    UnknownCollection { collection: String },
    /// A collection begun after its turn (already written, or behind the one last begun).
    #[error(
        "{collection:?} is begun out of name order (collections are written once, in name order)"
    )]
    CollectionOrder { collection: String },
    /// A collection of the prelude left without its section: passed by a later one, or never
    /// begun before the end.
    #[error(
        "collection {collection:?} was not written (every collection is written, in name order)"
    )]
    Unwritten { collection: String },
    /// A collection is begun, or the file finished, while another collection is still open.
    #[error("collection {collection:?} is still open: end it first")]
    CollectionOpen { collection: String },
    /// A deletion, a document or an end without a begun collection.
    #[error("no collection is open")]
    NoOpenCollection,
    /// A deletion or a document given for a view.
    #[error("{collection:?} is a view: it holds no documents")]
    NotACollection { collection: String },
    /// A deletion given to a full backup.
    #[error("a full backup holds no deletions (given one for {collection:?})")]
    DeletionInFull { collection: String },
    /// A deletion or a document whose `_id` is not strictly greater than the previous one of the
    /// collection (deletions and documents together).
    #[error("item {position} of collection {collection:?} is out of _id order")]
    OutOfOrder {
        collection: String,
        /// The item's position in the collection's section (deletions and documents), from 0.
        position: u64,
    },
    /// A document without a usable `_id` (none, an unsupported type, malformed BSON).
    #[error("a document of {collection:?}: {error}")]
    Id {
        collection: String,
        #[source]
        error: IdKeyError,
    },
    /// The archive could not be written (the inner writer failed, or a document's framing is
    /// invalid).
    #[error("the backup file could not be written: {0}")]
    Write(#[from] io::Error),
    /// An earlier call failed; the file is incomplete.
    #[error("writing the backup file already failed")]
    Failed,
}

/// What was written for one collection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SectionSummary {
    /// The collection's own namespace: its inserted or changed documents (all of them in a full).
    pub documents: NamespaceSummary,
    /// Its deletion namespace: the deleted `_id`s (always zero in a full and for a view).
    pub deleted: NamespaceSummary,
}

/// One namespace of the database in the file: a collection (with its deletion namespace in an
/// increment), a view, or another namespace.
struct Unit {
    name: String,
    /// The namespace's index in the archive.
    ns: usize,
    /// The deletion namespace's index (increments, collections only).
    deleted_ns: Option<usize>,
    documents: bool,
}

/// The collection being written.
struct Open {
    unit: usize,
    /// The last key written (deletion or document), reused to avoid an allocation per item.
    last: Option<IdKey>,
    position: u64,
}

/// Writes a chain file, full or increment, as the module documentation lays it out.
///
/// Created with the database's namespaces (in any order; they are sorted), then, for each
/// collection in name order ([`IncrementWriter::collections`]): [`begin_collection`], any number
/// of [`deleted`] and [`document`] calls in strictly ascending `_id` order (mixed, as the walk
/// finds them), [`end_collection`]. Views may be begun and ended like collections or skipped:
/// a skipped view is ended empty. [`finish`] returns the inner writer.
///
/// Every misuse is a typed error, after which the writer refuses everything: a chain file is
/// either exactly in the format or discarded. Memory is one key and one small buffer, whatever
/// the collection's size. The inner writer should be buffered (see [`ArchiveWriter`]).
///
/// [`begin_collection`]: IncrementWriter::begin_collection
/// [`deleted`]: IncrementWriter::deleted
/// [`document`]: IncrementWriter::document
/// [`end_collection`]: IncrementWriter::end_collection
/// [`finish`]: IncrementWriter::finish
pub struct IncrementWriter<W: Write> {
    archive: ArchiveWriter<W>,
    kind: FileKind,
    units: Vec<Unit>,
    /// The first unit not begun yet.
    next: usize,
    open: Option<Open>,
    /// The bytes of one deletion document, reused.
    scratch: Vec<u8>,
    failed: bool,
}

impl<W: Write> IncrementWriter<W> {
    /// An increment of the database whose namespaces are `namespaces`; writes the header and the
    /// prelude (a deletion namespace before each collection).
    pub fn new(
        inner: W,
        header: &Header,
        namespaces: &[Namespace],
    ) -> Result<Self, IncrementError> {
        Self::create(inner, header, namespaces, FileKind::Increment)
    }

    /// A full backup of the incremental layout (no deletion namespaces); writes the header and
    /// the prelude.
    pub fn full(
        inner: W,
        header: &Header,
        namespaces: &[Namespace],
    ) -> Result<Self, IncrementError> {
        Self::create(inner, header, namespaces, FileKind::Full)
    }

    fn create(
        inner: W,
        header: &Header,
        namespaces: &[Namespace],
        kind: FileKind,
    ) -> Result<Self, IncrementError> {
        let mut sorted: Vec<&Namespace> = namespaces.iter().collect();
        sorted.sort_by(|a, b| a.collection.cmp(&b.collection));
        for pair in sorted.windows(2) {
            if pair[0].collection == pair[1].collection {
                return Err(IncrementError::DuplicateNamespace {
                    collection: pair[0].collection.clone(),
                });
            }
        }
        if let Some(first) = sorted.first() {
            if let Some(other) = sorted.iter().find(|ns| ns.db != first.db) {
                return Err(IncrementError::MixedDatabases {
                    first: first.db.clone(),
                    other: other.db.clone(),
                });
            }
        }
        if let Some(reserved) = sorted
            .iter()
            .find(|ns| ns.collection.starts_with(DELETED_PREFIX))
        {
            return Err(IncrementError::ReservedName {
                collection: reserved.collection.clone(),
            });
        }

        let mut prelude: Vec<Namespace> = Vec::with_capacity(sorted.len() * 2);
        let mut units = Vec::with_capacity(sorted.len());
        for ns in sorted {
            let documents = holds_documents(ns);
            let deleted_ns = if documents && kind == FileKind::Increment {
                prelude.push(Namespace {
                    db: ns.db.clone(),
                    collection: deleted_namespace(&ns.collection),
                    kind: "collection".into(),
                    size: 0,
                    metadata: CollectionMetadata::default(),
                });
                Some(prelude.len() - 1)
            } else {
                None
            };
            prelude.push(ns.clone());
            units.push(Unit {
                name: ns.collection.clone(),
                ns: prelude.len() - 1,
                deleted_ns,
                documents,
            });
        }
        if prelude.len() > MAX_COLLECTIONS {
            return Err(IncrementError::TooManyNamespaces {
                count: prelude.len(),
            });
        }

        let archive = ArchiveWriter::new(inner, header, &prelude)?;
        Ok(IncrementWriter {
            archive,
            kind,
            units,
            next: 0,
            open: None,
            scratch: Vec::with_capacity(64),
            failed: false,
        })
    }

    /// Which file this writes.
    pub fn kind(&self) -> FileKind {
        self.kind
    }

    /// The names of the namespaces that hold documents, in the order they must be written.
    pub fn collections(&self) -> impl Iterator<Item = &str> {
        self.units
            .iter()
            .filter(|u| u.documents)
            .map(|u| u.name.as_str())
    }

    /// Bytes handed to the inner writer so far.
    pub fn bytes_written(&self) -> u64 {
        self.archive.bytes_written()
    }

    /// Starts the section of `name`, which must come after every namespace begun so far. The
    /// views passed on the way are ended empty; passing a collection is an error (it would be
    /// restored empty).
    pub fn begin_collection(&mut self, name: &str) -> Result<(), IncrementError> {
        self.guard(|w| w.begin_inner(name))
    }

    fn begin_inner(&mut self, name: &str) -> Result<(), IncrementError> {
        if let Some(open) = &self.open {
            return Err(IncrementError::CollectionOpen {
                collection: self.units[open.unit].name.clone(),
            });
        }
        let Some(at) = self.units.iter().position(|u| u.name == name) else {
            return Err(IncrementError::UnknownCollection {
                collection: name.to_owned(),
            });
        };
        if at < self.next {
            return Err(IncrementError::CollectionOrder {
                collection: name.to_owned(),
            });
        }
        self.end_views_before(at)?;
        self.next = at + 1;
        self.open = Some(Open {
            unit: at,
            last: None,
            position: 0,
        });
        Ok(())
    }

    /// Records that the document of `_id` `key` was deleted since the previous backup (an
    /// increment only). Keys must be strictly ascending, together with the documents'.
    pub fn deleted(&mut self, key: &IdKey) -> Result<(), IncrementError> {
        self.guard(|w| w.deleted_inner(key))
    }

    fn deleted_inner(&mut self, key: &IdKey) -> Result<(), IncrementError> {
        let (unit, _) = self.check_next(key)?;
        let Some(ns) = self.units[unit].deleted_ns else {
            return Err(IncrementError::DeletionInFull {
                collection: self.units[unit].name.clone(),
            });
        };
        let value = key.to_bson().map_err(|error| IncrementError::Id {
            collection: self.units[unit].name.clone(),
            error,
        })?;
        self.scratch.clear();
        doc! { "_id": value }
            .to_writer(&mut self.scratch)
            .map_err(|e| IncrementError::Write(io::Error::other(e)))?;
        self.archive.write_document(ns, &self.scratch)?;
        self.advance(key);
        Ok(())
    }

    /// Writes one document of the open collection: raw BSON as the server returned it, written
    /// as is. Its `_id` must be strictly greater than everything written for the collection.
    pub fn document(&mut self, raw: &[u8]) -> Result<(), IncrementError> {
        self.guard(|w| {
            let collection = || {
                w.open
                    .as_ref()
                    .map(|o| w.units[o.unit].name.clone())
                    .unwrap_or_default()
            };
            let doc = RawDocument::from_bytes(raw).map_err(|e| IncrementError::Id {
                collection: collection(),
                error: IdKeyError::Malformed(e.to_string()),
            })?;
            let key = IdKey::from_document(doc).map_err(|error| IncrementError::Id {
                collection: collection(),
                error,
            })?;
            w.document_inner(&key, raw)
        })
    }

    /// [`IncrementWriter::document`] with the key already known (the chain merge has it). The
    /// caller guarantees that `key` is the key of `raw`'s `_id`.
    pub(crate) fn document_with_key(
        &mut self,
        key: &IdKey,
        raw: &[u8],
    ) -> Result<(), IncrementError> {
        self.guard(|w| w.document_inner(key, raw))
    }

    fn document_inner(&mut self, key: &IdKey, raw: &[u8]) -> Result<(), IncrementError> {
        let (_, ns) = self.check_next(key)?;
        self.archive.write_document(ns, raw)?;
        self.advance(key);
        Ok(())
    }

    /// Ends the open collection: its deletion namespace and its own namespace get their
    /// end-of-namespace headers. Returns what was written for it.
    pub fn end_collection(&mut self) -> Result<SectionSummary, IncrementError> {
        self.guard(|w| {
            let open = w.open.take().ok_or(IncrementError::NoOpenCollection)?;
            let unit = &w.units[open.unit];
            let (ns, deleted_ns) = (unit.ns, unit.deleted_ns);
            let deleted = match deleted_ns {
                Some(d) => w.archive.end_namespace(d)?,
                None => NamespaceSummary::default(),
            };
            let documents = w.archive.end_namespace(ns)?;
            Ok(SectionSummary { documents, deleted })
        })
    }

    /// Ends the views after the last collection and returns the inner writer, flushed. Refuses
    /// if a collection is open or was never written.
    pub fn finish(mut self) -> Result<W, IncrementError> {
        if self.failed {
            return Err(IncrementError::Failed);
        }
        if let Some(open) = &self.open {
            return Err(IncrementError::CollectionOpen {
                collection: self.units[open.unit].name.clone(),
            });
        }
        self.end_views_before(self.units.len())?;
        Ok(self.archive.finish()?)
    }

    /// Runs `f` unless the writer failed before; marks it failed if `f` fails.
    fn guard<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, IncrementError>,
    ) -> Result<T, IncrementError> {
        if self.failed {
            return Err(IncrementError::Failed);
        }
        let result = f(self);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Ends (empty) the views from `self.next` up to `until` (excluded); a collection among them
    /// was not written: an error.
    fn end_views_before(&mut self, until: usize) -> Result<(), IncrementError> {
        for i in self.next..until {
            let unit = &self.units[i];
            if unit.documents {
                return Err(IncrementError::Unwritten {
                    collection: unit.name.clone(),
                });
            }
            let ns = unit.ns;
            self.archive.end_namespace(ns)?;
            self.next = i + 1;
        }
        Ok(())
    }

    /// Checks that an item of `_id` `key` may come next in the open collection; returns the
    /// unit and its namespace index.
    fn check_next(&self, key: &IdKey) -> Result<(usize, usize), IncrementError> {
        let open = self.open.as_ref().ok_or(IncrementError::NoOpenCollection)?;
        let unit = &self.units[open.unit];
        if !unit.documents {
            return Err(IncrementError::NotACollection {
                collection: unit.name.clone(),
            });
        }
        if open.last.as_ref().is_some_and(|last| key <= last) {
            return Err(IncrementError::OutOfOrder {
                collection: unit.name.clone(),
                position: open.position,
            });
        }
        Ok((open.unit, unit.ns))
    }

    fn advance(&mut self, key: &IdKey) {
        if let Some(open) = &mut self.open {
            match &mut open.last {
                Some(last) => last.clone_from(key),
                None => open.last = Some(key.clone()),
            }
            open.position += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{ArchiveReader, Item};
    use bson::{Bson, Document};

    fn header() -> Header {
        Header {
            concurrent_collections: 1,
            version: "0.1".into(),
            server_version: "8.0.4".into(),
            tool_version: "driveback-test".into(),
        }
    }

    fn ns(name: &str, kind: &str) -> Namespace {
        Namespace {
            db: "app".into(),
            collection: name.into(),
            kind: kind.into(),
            size: 0,
            metadata: CollectionMetadata {
                collection_name: name.into(),
                kind: kind.into(),
                ..CollectionMetadata::default()
            },
        }
    }

    fn raw(d: &Document) -> Vec<u8> {
        let mut out = Vec::new();
        d.to_writer(&mut out).expect("serialize");
        out
    }

    fn key(v: i32) -> IdKey {
        IdKey::from_bson(&Bson::Int32(v)).expect("key")
    }

    fn namespaces() -> Vec<Namespace> {
        vec![
            ns("b", "collection"),
            ns("v", "view"),
            ns("a", "collection"),
        ]
    }

    #[test]
    fn the_prelude_is_in_name_order_with_each_deletion_namespace_before_its_collection() {
        let mut w = IncrementWriter::new(Vec::new(), &header(), &namespaces()).expect("new");
        assert_eq!(w.kind(), FileKind::Increment);
        assert_eq!(w.collections().collect::<Vec<_>>(), vec!["a", "b"]);
        w.begin_collection("a").expect("a");
        w.deleted(&key(1)).expect("del 1");
        w.document(&raw(&doc! { "_id": 2, "x": 1 })).expect("doc 2");
        w.deleted(&key(3)).expect("del 3");
        let a = w.end_collection().expect("end a");
        assert_eq!((a.documents.documents, a.deleted.documents), (1, 2));
        w.begin_collection("b").expect("b");
        let b = w.end_collection().expect("end b");
        assert_eq!(b, SectionSummary::default());
        let bytes = w.finish().expect("finish");

        let mut reader = ArchiveReader::new(bytes.as_slice()).expect("read");
        let names: Vec<(&str, &str)> = reader
            .namespaces()
            .iter()
            .map(|n| (n.collection.as_str(), n.kind.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("__driveback_deleted.a", "collection"),
                ("a", "collection"),
                ("__driveback_deleted.b", "collection"),
                ("b", "collection"),
                ("v", "view"),
            ]
        );
        assert_eq!(
            reader.namespaces()[0].metadata,
            CollectionMetadata::default()
        );
        let mut items = Vec::new();
        while let Some(item) = reader.next_item().expect("item") {
            items.push(match item {
                Item::Document { ns, raw } => {
                    let d = RawDocument::from_bytes(&raw).expect("raw");
                    format!("{ns}:{}", d.get_i32("_id").expect("_id"))
                }
                Item::EndOfNamespace { ns, .. } => format!("{ns}:end"),
            });
        }
        // a's deletions and documents interleaved in _id order, both ended before b; the view
        // ended last, in prelude order.
        assert_eq!(
            items,
            vec!["0:1", "1:2", "0:3", "0:end", "1:end", "2:end", "3:end", "4:end"]
        );
    }

    #[test]
    fn a_full_backup_has_no_deletion_namespaces_and_refuses_deletions() {
        let mut w = IncrementWriter::full(Vec::new(), &header(), &namespaces()).expect("full");
        w.begin_collection("a").expect("a");
        assert!(matches!(
            w.deleted(&key(1)),
            Err(IncrementError::DeletionInFull { collection }) if collection == "a"
        ));
        assert!(matches!(w.end_collection(), Err(IncrementError::Failed)));

        let mut w = IncrementWriter::full(Vec::new(), &header(), &namespaces()).expect("full");
        for name in ["a", "b"] {
            w.begin_collection(name).expect("begin");
            w.document(&raw(&doc! { "_id": 1 })).expect("doc");
            w.end_collection().expect("end");
        }
        let bytes = w.finish().expect("finish");
        let reader = ArchiveReader::new(bytes.as_slice()).expect("read");
        let names: Vec<&str> = reader
            .namespaces()
            .iter()
            .map(|n| n.collection.as_str())
            .collect();
        assert_eq!(names, vec!["a", "b", "v"]);
    }

    #[test]
    fn a_reserved_collection_name_is_refused() {
        for full in [false, true] {
            let mut nss = namespaces();
            nss.push(ns("__driveback_deleted.x", "collection"));
            let r = if full {
                IncrementWriter::full(Vec::new(), &header(), &nss)
            } else {
                IncrementWriter::new(Vec::new(), &header(), &nss)
            };
            assert!(matches!(
                r,
                Err(IncrementError::ReservedName { collection }) if collection == "__driveback_deleted.x"
            ));
        }
    }

    #[test]
    fn duplicate_names_and_two_databases_are_refused() {
        let mut nss = namespaces();
        nss.push(ns("a", "view"));
        assert!(matches!(
            IncrementWriter::new(Vec::new(), &header(), &nss),
            Err(IncrementError::DuplicateNamespace { collection }) if collection == "a"
        ));
        let mut nss = namespaces();
        nss[1].db = "other".into();
        assert!(matches!(
            IncrementWriter::new(Vec::new(), &header(), &nss),
            Err(IncrementError::MixedDatabases { .. })
        ));
    }

    /// Runs `steps` on a fresh increment writer; returns the first error.
    fn misuse(
        steps: impl FnOnce(&mut IncrementWriter<Vec<u8>>) -> Result<(), IncrementError>,
    ) -> IncrementError {
        let mut w = IncrementWriter::new(Vec::new(), &header(), &namespaces()).expect("new");
        let err = steps(&mut w).expect_err("misuse is refused");
        // Every later call is refused too.
        assert!(matches!(
            w.begin_collection("b"),
            Err(IncrementError::Failed)
        ));
        assert!(matches!(w.finish(), Err(IncrementError::Failed)));
        err
    }

    #[test]
    fn out_of_order_use_is_refused_with_a_typed_error() {
        let e = misuse(|w| w.begin_collection("zz"));
        assert!(
            matches!(e, IncrementError::UnknownCollection { .. }),
            "{e:?}"
        );

        let e = misuse(|w| w.begin_collection("b"));
        assert!(
            matches!(&e, IncrementError::Unwritten { collection } if collection == "a"),
            "{e:?}"
        );

        let e = misuse(|w| {
            w.begin_collection("a")?;
            w.end_collection()?;
            w.begin_collection("a")
        });
        assert!(matches!(e, IncrementError::CollectionOrder { .. }), "{e:?}");

        let e = misuse(|w| {
            w.begin_collection("a")?;
            w.begin_collection("b")
        });
        assert!(matches!(e, IncrementError::CollectionOpen { .. }), "{e:?}");

        let e = misuse(|w| w.deleted(&key(1)));
        assert!(matches!(e, IncrementError::NoOpenCollection), "{e:?}");
        let e = misuse(|w| w.end_collection().map(|_| ()));
        assert!(matches!(e, IncrementError::NoOpenCollection), "{e:?}");

        let e = misuse(|w| {
            w.begin_collection("a")?;
            w.deleted(&key(2))?;
            w.deleted(&key(2))
        });
        assert!(
            matches!(e, IncrementError::OutOfOrder { position: 1, .. }),
            "{e:?}"
        );

        let e = misuse(|w| {
            w.begin_collection("a")?;
            w.document(&raw(&doc! { "_id": 5 }))?;
            w.deleted(&key(4))
        });
        assert!(matches!(e, IncrementError::OutOfOrder { .. }), "{e:?}");

        let e = misuse(|w| {
            w.begin_collection("a")?;
            w.deleted(&key(5))?;
            w.document(&raw(&doc! { "_id": 5i64 }))
        });
        assert!(matches!(e, IncrementError::OutOfOrder { .. }), "{e:?}");

        let e = misuse(|w| {
            w.begin_collection("a")?;
            w.document(&raw(&doc! { "x": 1 }))
        });
        assert!(
            matches!(
                e,
                IncrementError::Id {
                    error: IdKeyError::MissingId,
                    ..
                }
            ),
            "{e:?}"
        );

        let e = misuse(|w| {
            w.begin_collection("a")?;
            w.document(&raw(&doc! { "_id": 1.5 }))
        });
        assert!(
            matches!(
                e,
                IncrementError::Id {
                    error: IdKeyError::Unsupported { .. },
                    ..
                }
            ),
            "{e:?}"
        );

        let e = misuse(|w| {
            w.begin_collection("a")?;
            w.end_collection()?;
            w.begin_collection("b")?;
            w.end_collection()?;
            w.begin_collection("v")?;
            w.document(&raw(&doc! { "_id": 1 }))
        });
        assert!(matches!(e, IncrementError::NotACollection { .. }), "{e:?}");
    }

    #[test]
    fn finishing_needs_every_collection_written_and_none_open() {
        let mut w = IncrementWriter::new(Vec::new(), &header(), &namespaces()).expect("new");
        w.begin_collection("a").expect("a");
        w.end_collection().expect("end");
        assert!(matches!(
            w.finish(),
            Err(IncrementError::Unwritten { collection }) if collection == "b"
        ));

        let mut w = IncrementWriter::new(Vec::new(), &header(), &namespaces()).expect("new");
        w.begin_collection("a").expect("a");
        assert!(matches!(
            w.finish(),
            Err(IncrementError::CollectionOpen { collection }) if collection == "a"
        ));

        // An empty database.
        let w = IncrementWriter::new(Vec::new(), &header(), &[]).expect("new");
        let bytes = w.finish().expect("finish");
        let mut reader = ArchiveReader::new(bytes.as_slice()).expect("read");
        assert!(reader.namespaces().is_empty());
        assert!(reader.next_item().expect("end").is_none());
    }

    #[test]
    fn a_failing_inner_writer_fails_the_file() {
        struct Full(usize);
        impl Write for Full {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if self.0 < buf.len() {
                    return Err(io::Error::other("disk full"));
                }
                self.0 -= buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let probe = IncrementWriter::new(Vec::new(), &header(), &namespaces()).expect("new");
        let prelude = probe.bytes_written() as usize;
        let mut w = IncrementWriter::new(Full(prelude + 10), &header(), &namespaces())
            .expect("the prelude fits");
        w.begin_collection("a").expect("a");
        assert!(matches!(
            w.document(&raw(&doc! { "_id": 1, "pad": "0123456789" })),
            Err(IncrementError::Write(_))
        ));
        assert!(matches!(w.end_collection(), Err(IncrementError::Failed)));
    }
}
