//! Document-level incremental backups: the pure logic (docs/INCREMENTAL.md, "Design sketch of
//! the chosen layout").
//!
//! The first backup of a chain is full; each next backup holds only the documents whose bytes
//! changed or that are new since the previous backup, plus the `_id`s deleted since. To find them
//! without keeping anything at the destination, the machine that backs up keeps, per collection,
//! an index of the previous backup: each document's `_id` and the first 8 bytes of its SHA-256,
//! in `_id` order. A restore merges the chain back, per collection, in `_id` order.
//!
//! - [`idkey`]: the `_id` as bytes whose order is the server's `{_id: 1}` order ([`IdKey`]).
//! - [`index`]: the index file, streamed in both directions ([`IndexWriter`], [`IndexReader`]).
//! - [`diff`]: the backup's merge-walk of the collection and the previous index ([`Differ`]).
//! - [`merge`]: the merge of one collection across a chain's backups ([`ChainMerge`]).
//! - [`increment`]: the file format of a chain's full backup and increments ([`IncrementWriter`]).
//! - [`chain`]: a chain of files merged into one plain archive of its newest state
//!   ([`merge_chain`]), which restore, verify and export read like any backup.
//!
//! Everything here streams: memory does not grow with the collection. Every error is typed, and
//! every error on the backup side has the same remedy: back the collection up in full.

pub mod backup;
pub mod chain;
pub mod diff;
pub mod idkey;
pub mod increment;
pub mod index;
pub mod merge;

#[cfg(test)]
mod model_test;

pub use chain::{merge_chain, ChainError, ChainSummary, MergedNamespace};
pub use diff::{Change, DiffCounts, DiffError, Differ};
pub use idkey::{IdKey, IdKeyError};
pub use increment::{
    deleted_namespace, holds_documents, FileKind, IncrementError, IncrementWriter, SectionSummary,
    DELETED_PREFIX,
};
pub use index::{
    doc_hash, promote, set_backup_sha256, IndexEntry, IndexError, IndexHeader, IndexReader,
    IndexWriter,
};
pub use merge::{interleave, ChainMerge, Interleave, Item, MergeError};
