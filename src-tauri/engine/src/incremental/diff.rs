//! The merge-walk that finds what changed in one collection since the previous backup.
//!
//! The backup reads the collection with `sort({_id: 1})` and pushes each raw document into a
//! [`Differ`], which reads the previous backup's index ([`IndexReader`]) at the same pace and
//! writes the next one ([`IndexWriter`]). Both files are in `_id` order, so one pass over each
//! finds every change with memory that does not depend on the collection's size:
//!
//! - a key in both with the same [`doc_hash`] is [`Change::Unchanged`] (not uploaded again);
//! - a key in both with a different hash is [`Change::Changed`];
//! - a key only in the collection is [`Change::Inserted`];
//! - a key only in the old index was deleted: it is passed to the caller's callback as soon as
//!   the walk moves past it, never collected for the whole collection.
//!
//! Any error means the increment cannot be trusted: the caller discards it (and the `.next`
//! index) and backs the collection up in full.

use bson::RawDocument;

use super::idkey::{IdKey, IdKeyError};
use super::index::{doc_hash, IndexEntry, IndexError, IndexReader, IndexWriter};

/// What a pushed document is, compared with the previous backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Same `_id`, same bytes: the previous backups already hold it.
    Unchanged,
    /// Same `_id`, different bytes: the increment holds the new version.
    Changed,
    /// An `_id` the previous backup did not have.
    Inserted,
}

/// How many documents fell in each class, for the manifest and the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiffCounts {
    pub unchanged: u64,
    pub changed: u64,
    pub inserted: u64,
    pub deleted: u64,
}

impl DiffCounts {
    /// The documents in the collection now (what the new index holds).
    pub fn total(&self) -> u64 {
        self.unchanged + self.changed + self.inserted
    }
}

/// Why the walk stopped. The caller backs the collection up in full instead.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A document's `_id` has no key (an unsupported type, or no `_id`).
    #[error(transparent)]
    Id(#[from] IdKeyError),
    /// A document's `_id` is not strictly greater than the previous document's: the documents
    /// did not come in the server's `_id` order (or a key's order differs from the server's).
    #[error("document {position} is out of _id order")]
    OutOfOrder {
        /// The document's position in the walk, from 0.
        position: u64,
    },
    /// The previous backup's index could not be read, or is corrupt.
    #[error("the previous index: {0}")]
    OldIndex(#[source] IndexError),
    /// The next index could not be written.
    #[error("the next index: {0}")]
    NewIndex(#[source] IndexError),
    /// The old index describes a different collection than the one being walked.
    #[error("the previous index describes collection {old:?}, not {new:?}")]
    CollectionMismatch { old: String, new: String },
    /// An earlier call already failed; the walk cannot go on.
    #[error("the walk already failed")]
    Failed,
}

/// The streaming comparison of one collection with its previous backup's index.
///
/// Feed [`Differ::push`] every document in ascending `_id` order, then call
/// [`Differ::finish`]. The new index gets every pushed document's key and hash. Dropping a
/// `Differ` without finishing leaves an incomplete `.next` file that reads as truncated; the
/// caller deletes it.
pub struct Differ {
    old: Option<IndexReader>,
    /// The old index's next entry, read ahead and not yet matched.
    head: Option<IndexEntry>,
    new: IndexWriter,
    counts: DiffCounts,
    pushed: u64,
    failed: bool,
}

impl Differ {
    /// A walk against `old` (the previous backup's index; `None` for the first backup, when every
    /// document is inserted) writing `new`. Refuses an old index of another collection.
    pub fn new(old: Option<IndexReader>, new: IndexWriter) -> Result<Differ, DiffError> {
        if let Some(reader) = &old {
            if reader.header().collection != new.collection() {
                return Err(DiffError::CollectionMismatch {
                    old: reader.header().collection.clone(),
                    new: new.collection().to_owned(),
                });
            }
        }
        Ok(Differ {
            old,
            head: None,
            new,
            counts: DiffCounts::default(),
            pushed: 0,
            failed: false,
        })
    }

    /// Compares one document (the next in ascending `_id` order) with the old index.
    ///
    /// Old keys smaller than the document's that were not pushed are deletions: each is passed to
    /// `on_deleted`, in ascending order, before this returns. The callback may fail (writing the
    /// deletion to the increment); its error is returned as is. `E` is the caller's error type,
    /// which holds a [`DiffError`].
    ///
    /// After any error the walk is over: every later call returns [`DiffError::Failed`].
    pub fn push<E, F>(&mut self, raw: &RawDocument, mut on_deleted: F) -> Result<Change, E>
    where
        F: FnMut(IdKey) -> Result<(), E>,
        E: From<DiffError>,
    {
        if self.failed {
            return Err(DiffError::Failed.into());
        }
        // Cleared only on success, so that any early return below leaves the walk failed.
        self.failed = true;

        let key = IdKey::from_document(raw).map_err(DiffError::from)?;
        if let Some(last) = self.new.last_key() {
            if key <= *last {
                return Err(DiffError::OutOfOrder {
                    position: self.pushed,
                }
                .into());
            }
        }
        let hash = doc_hash(raw.as_bytes());

        let change = loop {
            self.fill_head()?;
            match self.head.take() {
                None => break Change::Inserted,
                Some(entry) => match entry.key.cmp(&key) {
                    std::cmp::Ordering::Less => {
                        self.counts.deleted += 1;
                        on_deleted(entry.key)?;
                    }
                    std::cmp::Ordering::Equal if entry.hash == hash => break Change::Unchanged,
                    std::cmp::Ordering::Equal => break Change::Changed,
                    std::cmp::Ordering::Greater => {
                        self.head = Some(entry);
                        break Change::Inserted;
                    }
                },
            }
        };

        self.new.append(&key, hash).map_err(DiffError::NewIndex)?;
        match change {
            Change::Unchanged => self.counts.unchanged += 1,
            Change::Changed => self.counts.changed += 1,
            Change::Inserted => self.counts.inserted += 1,
        }
        self.pushed += 1;
        self.failed = false;
        Ok(change)
    }

    /// The counts so far.
    pub fn counts(&self) -> DiffCounts {
        self.counts
    }

    /// Ends the walk: every old key not pushed is a deletion (passed to `on_deleted`, in
    /// ascending order), the old index is read to its end (so its checksum is checked), and the
    /// new index is finished and fsynced (not promoted). Returns the counts.
    pub fn finish<E, F>(mut self, mut on_deleted: F) -> Result<DiffCounts, E>
    where
        F: FnMut(IdKey) -> Result<(), E>,
        E: From<DiffError>,
    {
        if self.failed {
            return Err(DiffError::Failed.into());
        }
        loop {
            self.fill_head()?;
            match self.head.take() {
                Some(entry) => {
                    self.counts.deleted += 1;
                    on_deleted(entry.key)?;
                }
                None => break,
            }
        }
        self.new.finish().map_err(DiffError::NewIndex)?;
        Ok(self.counts)
    }

    /// Reads the old index's next entry into `head` if it is empty. At the end of the old index
    /// (checked whole), drops the reader.
    fn fill_head(&mut self) -> Result<(), DiffError> {
        if self.head.is_some() {
            return Ok(());
        }
        if let Some(reader) = &mut self.old {
            match reader.next_entry() {
                Ok(Some(entry)) => self.head = Some(entry),
                Ok(None) => self.old = None,
                Err(e) => return Err(DiffError::OldIndex(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incremental::index::IndexHeader;
    use bson::{doc, Bson, RawDocumentBuf};
    use std::path::Path;

    fn header() -> IndexHeader {
        IndexHeader {
            backup_id: "b1".into(),
            backup_sha256: None,
            collection: "things".into(),
        }
    }

    fn docs(ids_and_values: &[(i64, &str)]) -> Vec<RawDocumentBuf> {
        ids_and_values
            .iter()
            .map(|(id, v)| {
                RawDocumentBuf::from_document(&doc! { "_id": *id, "v": *v }).expect("raw")
            })
            .collect()
    }

    fn key(v: i64) -> IdKey {
        IdKey::from_bson(&Bson::Int64(v)).expect("key")
    }

    /// Runs a whole walk; returns each document's change, the deletions in order, the counts.
    fn walk(
        old: Option<&Path>,
        new: &Path,
        documents: &[RawDocumentBuf],
    ) -> Result<(Vec<Change>, Vec<IdKey>, DiffCounts), DiffError> {
        let old = match old {
            Some(p) => Some(IndexReader::open(p).map_err(DiffError::OldIndex)?),
            None => None,
        };
        let mut differ = Differ::new(
            old,
            IndexWriter::create(new, &header()).map_err(DiffError::NewIndex)?,
        )?;
        let mut changes = Vec::new();
        let mut deleted = Vec::new();
        for d in documents {
            changes.push(differ.push(d, |k| {
                deleted.push(k);
                Ok::<(), DiffError>(())
            })?);
        }
        let counts = differ.finish(|k| {
            deleted.push(k);
            Ok::<(), DiffError>(())
        })?;
        Ok((changes, deleted, counts))
    }

    #[test]
    fn the_first_backup_inserts_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let new = dir.path().join("things.idx.next");
        let documents = docs(&[(1, "a"), (2, "b"), (3, "c")]);
        let (changes, deleted, counts) = walk(None, &new, &documents).expect("walk");
        assert_eq!(changes, vec![Change::Inserted; 3]);
        assert!(deleted.is_empty());
        assert_eq!(
            counts,
            DiffCounts {
                inserted: 3,
                ..DiffCounts::default()
            }
        );
        let entries: Vec<_> = IndexReader::open(&new)
            .expect("open")
            .map(|e| e.expect("entry"))
            .collect();
        assert_eq!(entries.len(), 3);
        for (e, d) in entries.iter().zip(&documents) {
            assert_eq!(e.key, IdKey::from_document(d).expect("key"));
            assert_eq!(e.hash, doc_hash(d.as_bytes()));
        }
    }

    #[test]
    fn a_table_of_changes_against_the_previous_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let day0 = dir.path().join("day0.idx");
        let day1 = dir.path().join("day1.idx");
        walk(
            None,
            &day0,
            &docs(&[(1, "a"), (2, "b"), (3, "c"), (5, "e"), (7, "g"), (9, "i")]),
        )
        .expect("day 0");

        // 1 deleted, 2 unchanged, 3 changed, 4 inserted, 5 and 7 deleted (between pushes),
        // 8 inserted, 9 deleted at the end.
        let (changes, deleted, counts) = walk(
            Some(&day0),
            &day1,
            &docs(&[(2, "b"), (3, "C"), (4, "d"), (8, "h")]),
        )
        .expect("day 1");
        assert_eq!(
            changes,
            vec![
                Change::Unchanged,
                Change::Changed,
                Change::Inserted,
                Change::Inserted
            ]
        );
        assert_eq!(deleted, vec![key(1), key(5), key(7), key(9)]);
        assert_eq!(
            counts,
            DiffCounts {
                unchanged: 1,
                changed: 1,
                inserted: 2,
                deleted: 4
            }
        );
        assert_eq!(counts.total(), 4);

        // Everything deleted.
        let day2 = dir.path().join("day2.idx");
        let (changes, deleted, counts) = walk(Some(&day1), &day2, &[]).expect("day 2");
        assert!(changes.is_empty());
        assert_eq!(deleted, vec![key(2), key(3), key(4), key(8)]);
        assert_eq!(counts.deleted, 4);
    }

    #[test]
    fn the_same_id_of_another_numeric_type_is_the_same_document() {
        let dir = tempfile::tempdir().expect("tempdir");
        let day0 = dir.path().join("day0.idx");
        let day1 = dir.path().join("day1.idx");
        let a = RawDocumentBuf::from_document(&doc! { "_id": 1_i32, "v": 1 }).expect("raw");
        walk(None, &day0, &[a]).expect("day 0");
        // Deleted and inserted again as 1.0 between the backups: same _id, different bytes.
        let b = RawDocumentBuf::from_document(&doc! { "_id": 1.0_f64, "v": 1 }).expect("raw");
        let (changes, deleted, _) = walk(Some(&day0), &day1, &[b]).expect("day 1");
        assert_eq!(changes, vec![Change::Changed]);
        assert!(deleted.is_empty());
    }

    #[test]
    fn out_of_order_and_duplicate_pushes_fail_the_walk() {
        let dir = tempfile::tempdir().expect("tempdir");
        for ids in [&[(2, "b"), (1, "a")][..], &[(1, "a"), (1, "b")][..]] {
            let new = dir.path().join("x.idx.next");
            let mut differ =
                Differ::new(None, IndexWriter::create(&new, &header()).expect("create"))
                    .expect("differ");
            let documents = docs(ids);
            differ
                .push(&documents[0], |_| Ok::<(), DiffError>(()))
                .expect("first");
            assert!(matches!(
                differ.push(&documents[1], |_| Ok::<(), DiffError>(())),
                Err(DiffError::OutOfOrder { position: 1 })
            ));
            // The walk is over.
            assert!(matches!(
                differ.push(&docs(&[(10, "z")])[0], |_| Ok::<(), DiffError>(())),
                Err(DiffError::Failed)
            ));
            assert!(matches!(
                differ.finish(|_| Ok::<(), DiffError>(())),
                Err(DiffError::Failed)
            ));
        }
    }

    #[test]
    fn an_unsupported_id_fails_the_walk_with_its_type() {
        let dir = tempfile::tempdir().expect("tempdir");
        let new = dir.path().join("x.idx.next");
        let bad = RawDocumentBuf::from_document(&doc! { "_id": 1.5, "v": 1 }).expect("raw");
        let err = walk(None, &new, &[bad]).expect_err("unsupported");
        assert!(
            matches!(
                err,
                DiffError::Id(IdKeyError::Unsupported {
                    bson_type: "double",
                    ..
                })
            ),
            "{err:?}"
        );
        let bad = RawDocumentBuf::from_document(&doc! { "_id": { "a": 1 } }).expect("raw");
        let err = walk(None, &new, &[bad]).expect_err("unsupported");
        assert!(err.to_string().contains("object"), "{err}");
    }

    #[test]
    fn a_corrupt_previous_index_fails_the_walk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let day0 = dir.path().join("day0.idx");
        let documents = docs(&[(1, "a"), (2, "b"), (3, "c")]);
        walk(None, &day0, &documents).expect("day 0");
        let mut bytes = std::fs::read(&day0).expect("read");
        let n = bytes.len();
        bytes[n - 20] ^= 0x04; // inside the last entry's hash
        std::fs::write(&day0, &bytes).expect("write");

        // Every document read fine, but the end of the old index shows the corruption.
        let day1 = dir.path().join("day1.idx");
        let err = walk(Some(&day0), &day1, &documents).expect_err("corrupt");
        assert!(
            matches!(err, DiffError::OldIndex(IndexError::ChecksumMismatch)),
            "{err:?}"
        );

        // Truncated: also caught.
        std::fs::write(&day0, &bytes[..n - 3]).expect("write");
        let err = walk(Some(&day0), &day1, &documents).expect_err("truncated");
        assert!(
            matches!(err, DiffError::OldIndex(IndexError::Truncated)),
            "{err:?}"
        );
    }

    #[test]
    fn an_index_of_another_collection_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let day0 = dir.path().join("day0.idx");
        walk(None, &day0, &docs(&[(1, "a")])).expect("day 0");
        let mut other = header();
        other.collection = "others".into();
        let writer = IndexWriter::create(&dir.path().join("o.idx.next"), &other).expect("create");
        let err = Differ::new(Some(IndexReader::open(&day0).expect("open")), writer)
            .err()
            .expect("mismatch");
        assert!(
            matches!(err, DiffError::CollectionMismatch { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_failing_deletion_callback_stops_the_walk() {
        #[derive(Debug)]
        enum SinkError {
            Diff(DiffError),
            Full,
        }
        impl From<DiffError> for SinkError {
            fn from(e: DiffError) -> Self {
                SinkError::Diff(e)
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let day0 = dir.path().join("day0.idx");
        walk(None, &day0, &docs(&[(1, "a"), (2, "b")])).expect("day 0");
        let mut differ = Differ::new(
            Some(IndexReader::open(&day0).expect("open")),
            IndexWriter::create(&dir.path().join("day1.idx"), &header()).expect("create"),
        )
        .expect("differ");
        let r = differ.push(&docs(&[(2, "b")])[0], |_| Err(SinkError::Full));
        assert!(matches!(r, Err(SinkError::Full)));
        assert!(matches!(
            differ.push(&docs(&[(3, "c")])[0], |_| Ok::<(), SinkError>(())),
            Err(SinkError::Diff(DiffError::Failed))
        ));
    }
}
