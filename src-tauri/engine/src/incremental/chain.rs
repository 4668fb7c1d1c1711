//! The streaming merge of a chain (its full backup and its increments) into one plain full
//! archive ([`merge_chain`]).
//!
//! Every consumer of a backup (restore, verify, export) reads one plain mongodump archive
//! stream. Merging the chain's files into exactly the full backup of the incremental layout
//! ([`super::increment`]) that would have been taken at the time of the newest file makes a
//! chain readable by all of them, unchanged. The files come in already decrypted and
//! decompressed; the output goes to any writer (a pipe to the restore, a compressor, a file).
//!
//! # What the output is
//!
//! - The header is the newest file's.
//! - The prelude is the newest file's namespaces without its deletion namespaces: collections
//!   dropped since the full disappear, new ones appear, options and indexes are the newest.
//! - Each collection's documents are, in `_id` order, the newest version of each `_id` that no
//!   newer file deleted, taken from the files since the newest one that did not list the
//!   collection (a collection dropped and created again starts over: see the format's rules).
//!
//! # Memory
//!
//! Each file is one forward stream, and all of them have their sections in name order, so they
//! are read in lockstep, collection by collection: for output collection `C`, every file is
//! advanced to `C`'s section (skipping, and checking, the sections of collections dropped
//! since), the sections found are merged by [`ChainMerge`], and the merged documents are written
//! as they come. Because an increment's deletions and documents are interleaved in one `_id`
//! order in its stream, each file's section is one sorted source read in place: no file is
//! buffered, and [`ChainMerge`] holds at most one item (one document or one deleted key) per file.
//! With a read buffer and an [`ArchiveReader`] per file, memory is O(number of files) plus
//! O(namespaces) of prelude, never O(documents).
//!
//! # What is checked
//!
//! Every file is read to its end, whatever the output needs from it, so every namespace's CRC
//! and every end-of-namespace header is checked by [`ArchiveReader`] (a truncated or corrupt
//! file fails the merge even if the part that is wrong belongs to a collection dropped since).
//! The layout is checked as it is read: preludes in name order with each deletion namespace
//! right before its collection, sections in prelude order and not interleaved with each other,
//! the documents and deletions of a merged collection in strictly ascending `_id` order. Any
//! violation is a typed [`ChainError`]; the output is then incomplete and must be discarded.

use std::io::{BufReader, Read, Write};

use bson::RawDocument;

use super::idkey::{IdKey, IdKeyError};
use super::increment::{holds_documents, IncrementError, IncrementWriter, DELETED_PREFIX};
use super::merge::{ChainMerge, Item, MergeError};
use crate::archive::{
    ArchiveError, ArchiveReader, Header, Item as ArchiveItem, Namespace, NamespaceSummary,
};

/// Read buffer of each file of the chain.
const READ_BUFFER: usize = 64 * 1024;

/// Why a chain could not be merged. `index` is the file's position in the chain (0 is the full
/// backup, then the increments oldest to newest).
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// No file at all: a chain has at least its full backup.
    #[error("a chain needs at least its full backup")]
    NoSources,
    /// A file is not a readable archive: I/O, truncation, corruption, a CRC mismatch.
    #[error("backup {index} of the chain could not be read: {error}")]
    Archive {
        index: usize,
        #[source]
        error: ArchiveError,
    },
    /// A file holds another database than the rest of the chain (or two databases).
    #[error("backup {index} of the chain holds database {found:?}, not {expected:?}")]
    Database {
        index: usize,
        expected: String,
        found: String,
    },
    /// A file's prelude is not in name order (or lists a name twice).
    #[error("backup {index} of the chain lists {collection:?} out of name order")]
    PreludeOrder { index: usize, collection: String },
    /// A deletion namespace that is not immediately followed by its collection's namespace (or
    /// is followed by a view).
    #[error("backup {index} of the chain lists {namespace:?} without its collection right after")]
    StrayDeletions { index: usize, namespace: String },
    /// Data of a namespace where another collection's section should go on: the file's sections
    /// are not in name order, or are interleaved.
    #[error(
        "backup {index} of the chain has data of {namespace:?} inside the section of {section:?}: \
         its sections are not one after another in name order"
    )]
    SectionOrder {
        index: usize,
        namespace: String,
        section: String,
    },
    /// A collection's documents and deletions in a file are not in strictly ascending `_id`
    /// order.
    #[error("backup {index} of the chain: {collection:?} is not in strictly ascending _id order")]
    OutOfOrder { index: usize, collection: String },
    /// A document or a deletion whose `_id` cannot be ordered (none, an unsupported type,
    /// malformed BSON).
    #[error("backup {index} of the chain: a document of {collection:?}: {error}")]
    Id {
        index: usize,
        collection: String,
        #[source]
        error: IdKeyError,
    },
    /// The merged archive could not be written.
    #[error("the merged backup could not be written: {0}")]
    Output(#[source] IncrementError),
}

/// What the merge wrote for one namespace of the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergedNamespace {
    /// The collection (or view) name.
    pub name: String,
    /// Its kind, from the newest file's prelude ("collection", "view", ...).
    pub kind: String,
    /// Its documents in the output (zero for a view).
    pub summary: NamespaceSummary,
}

/// What [`merge_chain`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainSummary {
    /// The output's header (the newest file's).
    pub header: Header,
    /// Every namespace of the output, in output (name) order.
    pub namespaces: Vec<MergedNamespace>,
    /// Bytes written to the output.
    pub bytes_written: u64,
}

impl ChainSummary {
    /// The output document count of collection `name`, if the output has it.
    pub fn documents(&self, name: &str) -> Option<u64> {
        self.namespaces
            .iter()
            .find(|n| n.name == name)
            .map(|n| n.summary.documents)
    }
}

/// Merges a chain into one plain full archive written to `out`, and returns what it wrote.
///
/// `sources` are the chain's files as plain archive streams (decrypted, decompressed): the full
/// backup first, then its increments oldest to newest. Every file is read to its end. Nothing
/// tells whether the files are given in the right order or belong to one chain (the manifests'
/// links do that); the merge checks the layout of each file and the `_id` order of what it
/// merges.
pub fn merge_chain<R: Read, W: Write>(sources: Vec<R>, out: W) -> Result<ChainSummary, ChainError> {
    if sources.is_empty() {
        return Err(ChainError::NoSources);
    }
    let mut inputs = Vec::with_capacity(sources.len());
    for (index, source) in sources.into_iter().enumerate() {
        inputs.push(Input::open(index, source)?);
    }
    check_database(&inputs)?;

    let newest = inputs.last().ok_or(ChainError::NoSources)?;
    let header = newest.reader.header().clone();
    let namespaces: Vec<Namespace> = newest
        .units
        .iter()
        .map(|u| newest.reader.namespaces()[u.ns].clone())
        .collect();

    let mut writer =
        IncrementWriter::full(out, &header, &namespaces).map_err(ChainError::Output)?;
    let mut merged = Vec::with_capacity(namespaces.len());
    for ns in &namespaces {
        let name = ns.collection.as_str();
        writer.begin_collection(name).map_err(ChainError::Output)?;
        // The files from which this collection's documents come: those after the newest file
        // that did not hold it as a collection. None for a view.
        let first = if holds_documents(ns) {
            inputs
                .iter()
                .rposition(|input| !input.holds(name))
                .map_or(0, |p| p + 1)
        } else {
            inputs.len()
        };

        let mut sections = Vec::new();
        let mut chain_index = Vec::new();
        for input in inputs.iter_mut() {
            input.skip_before(name)?;
            if input.at_section(name) {
                if input.index >= first {
                    chain_index.push(input.index);
                    sections.push(Section {
                        input,
                        collection: name,
                        done: false,
                    });
                } else {
                    input.skip_section()?;
                }
            }
        }
        for result in ChainMerge::new(sections) {
            match result {
                Ok((key, raw)) => writer
                    .document_with_key(&key, &raw)
                    .map_err(ChainError::Output)?,
                Err(MergeError::Source { error, .. }) => return Err(error),
                Err(MergeError::OutOfOrder { index }) => {
                    return Err(ChainError::OutOfOrder {
                        index: chain_index.get(index).copied().unwrap_or(index),
                        collection: name.to_owned(),
                    })
                }
            }
        }
        let summary = writer.end_collection().map_err(ChainError::Output)?;
        merged.push(MergedNamespace {
            name: name.to_owned(),
            kind: ns.kind.clone(),
            summary: summary.documents,
        });
    }

    // The sections of collections dropped since, after the last output collection, and each
    // file's end.
    for input in inputs.iter_mut() {
        input.finish()?;
    }
    let bytes_written = writer.bytes_written();
    writer.finish().map_err(ChainError::Output)?;
    Ok(ChainSummary {
        header,
        namespaces: merged,
        bytes_written,
    })
}

/// All files hold the same single database (the first one that names any).
fn check_database<R: Read>(inputs: &[Input<R>]) -> Result<(), ChainError> {
    let mut expected: Option<&str> = None;
    for input in inputs {
        for ns in input.reader.namespaces() {
            match expected {
                None => expected = Some(&ns.db),
                Some(db) if db == ns.db => {}
                Some(db) => {
                    return Err(ChainError::Database {
                        index: input.index,
                        expected: db.to_owned(),
                        found: ns.db.clone(),
                    })
                }
            }
        }
    }
    Ok(())
}

/// One namespace of a file with its deletion namespace, if any: one section of the stream.
struct Unit {
    name: String,
    ns: usize,
    deleted_ns: Option<usize>,
    documents: bool,
}

/// What a section yields, before its key is read.
enum SectionItem {
    Document(Vec<u8>),
    Deleted(Vec<u8>),
}

/// One file of the chain, read forward section by section.
struct Input<R: Read> {
    index: usize,
    reader: ArchiveReader<BufReader<R>>,
    /// The file's sections, in prelude order.
    units: Vec<Unit>,
    /// The section being read, or the next one.
    at: usize,
    /// Whether the namespace / the deletion namespace of section `at` has ended.
    ended: bool,
    deleted_ended: bool,
}

impl<R: Read> Input<R> {
    /// Reads the file's header and prelude and checks the prelude's layout.
    fn open(index: usize, source: R) -> Result<Self, ChainError> {
        let reader = ArchiveReader::new(BufReader::with_capacity(READ_BUFFER, source))
            .map_err(|error| ChainError::Archive { index, error })?;
        let units = units_of(index, reader.namespaces())?;
        Ok(Input {
            index,
            reader,
            units,
            at: 0,
            ended: false,
            deleted_ended: false,
        })
    }

    /// Whether the file lists `name` as a namespace holding documents.
    fn holds(&self, name: &str) -> bool {
        self.units
            .binary_search_by(|u| u.name.as_str().cmp(name))
            .is_ok_and(|i| self.units[i].documents)
    }

    /// Whether the next section is `name`'s.
    fn at_section(&self, name: &str) -> bool {
        self.units.get(self.at).is_some_and(|u| u.name == name)
    }

    /// Reads through the sections before `name`'s (collections the output does not have).
    fn skip_before(&mut self, name: &str) -> Result<(), ChainError> {
        while self
            .units
            .get(self.at)
            .is_some_and(|u| u.name.as_str() < name)
        {
            self.skip_section()?;
        }
        Ok(())
    }

    /// Reads through the current section, checking it (the reader checks the CRCs).
    fn skip_section(&mut self) -> Result<(), ChainError> {
        while self.next_in_section()?.is_some() {}
        Ok(())
    }

    /// Reads through the remaining sections and checks that the file ends there.
    fn finish(&mut self) -> Result<(), ChainError> {
        while self.at < self.units.len() {
            self.skip_section()?;
        }
        match self.reader.next_item() {
            Ok(None) => Ok(()),
            Ok(Some(ArchiveItem::Document { ns, .. } | ArchiveItem::EndOfNamespace { ns, .. })) => {
                Err(ChainError::SectionOrder {
                    index: self.index,
                    namespace: self.namespace_name(ns),
                    section: "the end of the file".to_owned(),
                })
            }
            Err(error) => Err(ChainError::Archive {
                index: self.index,
                error,
            }),
        }
    }

    /// The next document or deletion of the current section; `None` (once) when both its
    /// namespaces have ended, which moves to the next section.
    fn next_in_section(&mut self) -> Result<Option<SectionItem>, ChainError> {
        let Some(unit) = self.units.get(self.at) else {
            return Ok(None);
        };
        let (ns, deleted_ns) = (unit.ns, unit.deleted_ns);
        loop {
            if self.ended && (deleted_ns.is_none() || self.deleted_ended) {
                self.at += 1;
                self.ended = false;
                self.deleted_ended = false;
                return Ok(None);
            }
            let item = self
                .reader
                .next_item()
                .map_err(|error| ChainError::Archive {
                    index: self.index,
                    error,
                })?;
            match item {
                // The reader ends cleanly only when every namespace has ended.
                None => {
                    return Err(ChainError::Archive {
                        index: self.index,
                        error: ArchiveError::Truncated {
                            offset: self.reader.offset(),
                        },
                    })
                }
                Some(ArchiveItem::Document { ns: n, raw }) if n == ns && !self.ended => {
                    return Ok(Some(SectionItem::Document(raw)))
                }
                Some(ArchiveItem::Document { ns: n, raw })
                    if Some(n) == deleted_ns && !self.deleted_ended =>
                {
                    return Ok(Some(SectionItem::Deleted(raw)))
                }
                Some(ArchiveItem::EndOfNamespace { ns: n, .. }) if n == ns => self.ended = true,
                Some(ArchiveItem::EndOfNamespace { ns: n, .. }) if Some(n) == deleted_ns => {
                    self.deleted_ended = true
                }
                Some(
                    ArchiveItem::Document { ns: n, .. } | ArchiveItem::EndOfNamespace { ns: n, .. },
                ) => {
                    return Err(ChainError::SectionOrder {
                        index: self.index,
                        namespace: self.namespace_name(n),
                        section: self.units[self.at].name.clone(),
                    })
                }
            }
        }
    }

    fn namespace_name(&self, ns: usize) -> String {
        self.reader
            .namespaces()
            .get(ns)
            .map(|n| n.collection.clone())
            .unwrap_or_default()
    }
}

/// Groups a prelude into sections, checking the layout: names strictly ascending, each deletion
/// namespace right before the collection it names, which holds documents.
fn units_of(index: usize, namespaces: &[Namespace]) -> Result<Vec<Unit>, ChainError> {
    let mut units: Vec<Unit> = Vec::with_capacity(namespaces.len());
    let mut pending: Option<(usize, &str)> = None;
    for (i, ns) in namespaces.iter().enumerate() {
        if let Some(target) = ns.collection.strip_prefix(DELETED_PREFIX) {
            if pending.is_some() {
                return Err(ChainError::StrayDeletions {
                    index,
                    namespace: namespaces[i - 1].collection.clone(),
                });
            }
            pending = Some((i, target));
            continue;
        }
        let deleted_ns = match pending.take() {
            None => None,
            Some((d, target)) if target == ns.collection && holds_documents(ns) => Some(d),
            Some((d, _)) => {
                return Err(ChainError::StrayDeletions {
                    index,
                    namespace: namespaces[d].collection.clone(),
                })
            }
        };
        if units
            .last()
            .is_some_and(|last| last.name.as_str() >= ns.collection.as_str())
        {
            return Err(ChainError::PreludeOrder {
                index,
                collection: ns.collection.clone(),
            });
        }
        units.push(Unit {
            name: ns.collection.clone(),
            ns: i,
            deleted_ns,
            documents: holds_documents(ns),
        });
    }
    if let Some((d, _)) = pending {
        return Err(ChainError::StrayDeletions {
            index,
            namespace: namespaces[d].collection.clone(),
        });
    }
    Ok(units)
}

/// One file's section of one collection, as a sorted source of the chain merge: its documents
/// as [`Item::Doc`] and its deletions as [`Item::Deleted`], in stream order (which the format
/// makes `_id` order; [`ChainMerge`] checks it).
struct Section<'a, R: Read> {
    input: &'a mut Input<R>,
    collection: &'a str,
    /// Set once the section has ended (or failed): the input has moved on to the next section,
    /// which must not be read as this one.
    done: bool,
}

impl<R: Read> Section<'_, R> {
    fn key(&self, raw: &[u8]) -> Result<IdKey, ChainError> {
        let id_error = |error| ChainError::Id {
            index: self.input.index,
            collection: self.collection.to_owned(),
            error,
        };
        let doc = RawDocument::from_bytes(raw)
            .map_err(|e| id_error(IdKeyError::Malformed(e.to_string())))?;
        IdKey::from_document(doc).map_err(id_error)
    }
}

impl<R: Read> Iterator for Section<'_, R> {
    type Item = Result<Item, ChainError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = match self.input.next_in_section() {
            Ok(None) => {
                self.done = true;
                return None;
            }
            Ok(Some(SectionItem::Document(raw))) => self.key(&raw).map(|key| Item::Doc(key, raw)),
            Ok(Some(SectionItem::Deleted(raw))) => self.key(&raw).map(Item::Deleted),
            Err(e) => Err(e),
        };
        if result.is_err() {
            self.done = true;
        }
        Some(result)
    }
}

#[cfg(test)]
#[path = "chain_tests.rs"]
mod tests;
