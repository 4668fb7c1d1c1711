//! The chain merge a restore uses: one collection's documents as of the newest backup of a
//! chain, from the chain's full backup and its increments, in ascending `_id` order.
//!
//! Each backup of the chain is a *source* yielding [`Item`]s in strictly ascending key order: a
//! document (its key and raw bytes) or, for an increment, a deleted key. For each key the newest
//! source that mentions it decides: a document is the key's current version, a deletion removes
//! it. The sources are read at the same pace through a heap of their current heads, so memory is
//! one item per source whatever the size of the collection, and every document comes out once,
//! in the order the server would return it, ready to be inserted.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::idkey::IdKey;

/// One entry of a source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A document: its key and its raw BSON bytes.
    Doc(IdKey, Vec<u8>),
    /// A document deleted since the previous backup of the chain.
    Deleted(IdKey),
}

impl Item {
    /// The item's key.
    pub fn key(&self) -> &IdKey {
        match self {
            Item::Doc(key, _) | Item::Deleted(key) => key,
        }
    }
}

/// Why the merge stopped. After an error the merge yields nothing more: the restore of the
/// collection has failed.
#[derive(Debug, thiserror::Error)]
pub enum MergeError<E> {
    /// A source failed (a download, a decompression, a corrupt archive). `index` is the source's
    /// position in the chain (0 is the full backup).
    #[error("backup {index} of the chain could not be read: {error}")]
    Source {
        index: usize,
        #[source]
        error: E,
    },
    /// A source's keys are not strictly ascending: the backup is not what the chain needs (or a
    /// document and a deletion of the same key were interleaved into it).
    #[error("backup {index} of the chain is not in strictly ascending _id order")]
    OutOfOrder { index: usize },
}

/// A source's current item, ordered for the heap: the smallest key first, and for one key the
/// newest source first.
struct Head {
    item: Item,
    source: usize,
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap pops the greatest: reverse the keys, keep the sources.
        other
            .item
            .key()
            .cmp(self.item.key())
            .then(self.source.cmp(&other.source))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Head {}

/// The merge of a chain's sources, oldest (the full backup) first, newest (the last increment)
/// last. Yields `(key, raw document)` in ascending key order.
pub struct ChainMerge<I> {
    sources: Vec<I>,
    heap: BinaryHeap<Head>,
    started: bool,
    done: bool,
}

impl<I, E> ChainMerge<I>
where
    I: Iterator<Item = Result<Item, E>>,
{
    /// A merge of `sources`, ordered oldest to newest. Nothing is read until the first call to
    /// `next`.
    pub fn new(sources: Vec<I>) -> ChainMerge<I> {
        let k = sources.len();
        ChainMerge {
            sources,
            heap: BinaryHeap::with_capacity(k),
            started: false,
            done: false,
        }
    }

    /// Reads source `index`'s next item onto the heap, checking that its key is greater than
    /// `prev` (the key the source yielded before, if any).
    fn pull(&mut self, index: usize, prev: Option<&IdKey>) -> Result<(), MergeError<E>> {
        let Some(source) = self.sources.get_mut(index) else {
            return Ok(());
        };
        match source.next() {
            None => Ok(()),
            Some(Err(error)) => Err(MergeError::Source { index, error }),
            Some(Ok(item)) => {
                if prev.is_some_and(|p| item.key() <= p) {
                    return Err(MergeError::OutOfOrder { index });
                }
                self.heap.push(Head {
                    item,
                    source: index,
                });
                Ok(())
            }
        }
    }

    fn step(&mut self) -> Result<Option<(IdKey, Vec<u8>)>, MergeError<E>> {
        if !self.started {
            self.started = true;
            for index in 0..self.sources.len() {
                self.pull(index, None)?;
            }
        }
        loop {
            let Some(top) = self.heap.pop() else {
                return Ok(None);
            };
            self.pull(top.source, Some(top.item.key()))?;
            // Older sources' versions of the same key are superseded.
            while self
                .heap
                .peek()
                .is_some_and(|h| h.item.key() == top.item.key())
            {
                if let Some(older) = self.heap.pop() {
                    self.pull(older.source, Some(older.item.key()))?;
                }
            }
            match top.item {
                Item::Doc(key, raw) => return Ok(Some((key, raw))),
                Item::Deleted(_) => continue,
            }
        }
    }
}

impl<I, E> Iterator for ChainMerge<I>
where
    I: Iterator<Item = Result<Item, E>>,
{
    type Item = Result<(IdKey, Vec<u8>), MergeError<E>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(doc)) => Some(Ok(doc)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// One source from an increment's two sorted streams: its documents and its deleted keys, each
/// in ascending key order, interleaved into one ascending stream of [`Item`]s.
///
/// The two streams of one increment never share a key (a key is either in the collection or
/// deleted). If they do, or if either is not ascending, the interleaved stream is not strictly
/// ascending either and [`ChainMerge`] reports [`MergeError::OutOfOrder`] for the source. Errors
/// of either stream pass through.
pub fn interleave<D, K, E>(docs: D, deleted: K) -> Interleave<D::IntoIter, K::IntoIter>
where
    D: IntoIterator<Item = Result<(IdKey, Vec<u8>), E>>,
    K: IntoIterator<Item = Result<IdKey, E>>,
{
    Interleave {
        docs: docs.into_iter(),
        deleted: deleted.into_iter(),
        doc_head: None,
        deleted_head: None,
        docs_done: false,
        deleted_done: false,
    }
}

/// The iterator of [`interleave`].
pub struct Interleave<D, K> {
    docs: D,
    deleted: K,
    doc_head: Option<(IdKey, Vec<u8>)>,
    deleted_head: Option<IdKey>,
    docs_done: bool,
    deleted_done: bool,
}

impl<D, K, E> Iterator for Interleave<D, K>
where
    D: Iterator<Item = Result<(IdKey, Vec<u8>), E>>,
    K: Iterator<Item = Result<IdKey, E>>,
{
    type Item = Result<Item, E>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.doc_head.is_none() && !self.docs_done {
            match self.docs.next() {
                None => self.docs_done = true,
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(doc)) => self.doc_head = Some(doc),
            }
        }
        if self.deleted_head.is_none() && !self.deleted_done {
            match self.deleted.next() {
                None => self.deleted_done = true,
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(key)) => self.deleted_head = Some(key),
            }
        }
        // On a tie the document goes first; the merge then sees the same key twice and refuses
        // the source.
        let doc_first = match (&self.doc_head, &self.deleted_head) {
            (Some((doc_key, _)), Some(deleted_key)) => doc_key <= deleted_key,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return None,
        };
        if doc_first {
            self.doc_head
                .take()
                .map(|(key, raw)| Ok(Item::Doc(key, raw)))
        } else {
            self.deleted_head.take().map(|key| Ok(Item::Deleted(key)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::Bson;
    use std::convert::Infallible;

    fn key(v: i64) -> IdKey {
        IdKey::from_bson(&Bson::Int64(v)).expect("key")
    }

    fn doc(v: i64, body: &str) -> Item {
        Item::Doc(key(v), body.as_bytes().to_vec())
    }

    fn del(v: i64) -> Item {
        Item::Deleted(key(v))
    }

    fn source(items: Vec<Item>) -> std::vec::IntoIter<Result<Item, Infallible>> {
        items.into_iter().map(Ok).collect::<Vec<_>>().into_iter()
    }

    fn merged(sources: Vec<Vec<Item>>) -> Vec<(i64, String)> {
        ChainMerge::new(sources.into_iter().map(source).collect())
            .map(|r| {
                let (k, raw) = r.expect("merge");
                let id = match k.to_bson().expect("decode") {
                    Bson::Int32(v) => i64::from(v),
                    Bson::Int64(v) => v,
                    other => panic!("{other:?}"),
                };
                (id, String::from_utf8(raw).expect("utf8"))
            })
            .collect()
    }

    fn expect(pairs: &[(i64, &str)]) -> Vec<(i64, String)> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    #[test]
    fn the_newest_source_decides_each_key() {
        let full = vec![doc(1, "a"), doc(2, "b"), doc(3, "c"), doc(6, "f")];
        let inc1 = vec![doc(2, "b1"), del(3), doc(4, "d1"), del(6)];
        let inc2 = vec![del(2), doc(3, "c2"), doc(5, "e2")];
        assert_eq!(
            merged(vec![full.clone(), inc1.clone(), inc2.clone()]),
            expect(&[(1, "a"), (3, "c2"), (4, "d1"), (5, "e2")])
        );
        // A prefix of the chain restores that backup.
        assert_eq!(
            merged(vec![full.clone(), inc1]),
            expect(&[(1, "a"), (2, "b1"), (4, "d1")])
        );
        assert_eq!(
            merged(vec![full]),
            expect(&[(1, "a"), (2, "b"), (3, "c"), (6, "f")])
        );
    }

    #[test]
    fn edge_cases_of_empty_sources_and_deletions() {
        assert_eq!(merged(vec![]), expect(&[]));
        assert_eq!(merged(vec![vec![], vec![], vec![]]), expect(&[]));
        // Deleting a key no older source has, or deleting everything.
        assert_eq!(
            merged(vec![vec![doc(1, "a")], vec![del(0), del(1), del(9)]]),
            expect(&[])
        );
        // Deleted then inserted again.
        assert_eq!(
            merged(vec![vec![doc(1, "a")], vec![del(1)], vec![doc(1, "a2")]]),
            expect(&[(1, "a2")])
        );
        // Only increments after the full mention keys past the full's end.
        assert_eq!(
            merged(vec![vec![], vec![doc(7, "x")], vec![doc(8, "y")]]),
            expect(&[(7, "x"), (8, "y")])
        );
    }

    #[test]
    fn a_source_out_of_order_is_refused() {
        for bad in [
            vec![doc(2, "b"), doc(1, "a")],
            vec![doc(1, "a"), doc(1, "a")],
            vec![doc(1, "a"), del(1)],
        ] {
            let sources = vec![source(vec![doc(0, "z"), doc(5, "e")]), source(bad)];
            let results: Vec<_> = ChainMerge::new(sources).collect();
            let last = results.last().expect("some result");
            assert!(
                matches!(last, Err(MergeError::OutOfOrder { index: 1 })),
                "{results:?}"
            );
            assert!(results[..results.len() - 1].iter().all(|r| r.is_ok()));
        }
    }

    #[test]
    fn a_source_error_passes_through_and_ends_the_merge() {
        let failing: Vec<Result<Item, String>> = vec![Ok(doc(1, "a")), Err("disk".into())];
        let fine: Vec<Result<Item, String>> = vec![Ok(doc(0, "z")), Ok(doc(2, "b"))];
        let mut merge = ChainMerge::new(vec![fine.into_iter(), failing.into_iter()]);
        assert_eq!(merge.next().expect("first").expect("ok").0, key(0));
        match merge.next() {
            Some(Err(MergeError::Source { index: 1, error })) => assert_eq!(error, "disk"),
            other => panic!("{other:?}"),
        }
        assert!(merge.next().is_none(), "nothing after an error");
    }

    #[test]
    fn interleave_merges_documents_and_deletions_in_key_order() {
        let docs: Vec<Result<(IdKey, Vec<u8>), Infallible>> =
            vec![Ok((key(2), b"b".to_vec())), Ok((key(5), b"e".to_vec()))];
        let deleted: Vec<Result<IdKey, Infallible>> = vec![Ok(key(1)), Ok(key(3)), Ok(key(9))];
        let items: Vec<Item> = interleave(docs, deleted).map(|r| r.expect("ok")).collect();
        assert_eq!(
            items,
            vec![del(1), doc(2, "b"), del(3), doc(5, "e"), del(9)]
        );

        let docs: Vec<Result<(IdKey, Vec<u8>), &str>> = vec![Ok((key(2), b"b".to_vec()))];
        let deleted: Vec<Result<IdKey, &str>> = vec![Err("bad")];
        let first = interleave(docs, deleted).next();
        assert!(matches!(first, Some(Err("bad"))));
    }

    #[test]
    fn interleave_feeds_the_merge() {
        let full = source(vec![doc(1, "a"), doc(2, "b"), doc(3, "c")]);
        let docs: Vec<Result<(IdKey, Vec<u8>), Infallible>> = vec![Ok((key(4), b"d".to_vec()))];
        let deleted: Vec<Result<IdKey, Infallible>> = vec![Ok(key(2))];
        let inc: Box<dyn Iterator<Item = Result<Item, Infallible>>> =
            Box::new(interleave(docs, deleted));
        let sources: Vec<Box<dyn Iterator<Item = Result<Item, Infallible>>>> =
            vec![Box::new(full), inc];
        let keys: Vec<IdKey> = ChainMerge::new(sources).map(|r| r.expect("ok").0).collect();
        assert_eq!(keys, vec![key(1), key(3), key(4)]);
    }
}
