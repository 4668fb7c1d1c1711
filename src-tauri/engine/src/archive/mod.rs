//! The mongodump archive format, version 0.1: what `mongodump --archive` writes and
//! `mongorestore --archive` reads.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! magic 6d e2 99 81
//! header   {concurrent_collections: int32, version: "0.1", server_version, tool_version}
//! prelude  {db, collection, metadata: <canonical Extended JSON string>, size: int32, type}  (one per namespace)
//! ff ff ff ff
//! then, in any interleaving:
//!   segment  {db, collection, EOF: false, CRC: int64 0}  <BSON document>+  ff ff ff ff
//!   end      {db, collection, EOF: true,  CRC: int64 crc}                  ff ff ff ff
//! ```
//!
//! The CRC is CRC-64/XZ (Go's `crc64.ECMA`) of the concatenated raw BSON of the namespace's
//! documents, stored as the int64 with the same bits. mongorestore requires an end header for
//! every namespace of the prelude except time-series ones, and rejects a CRC that does not match.
//!
//! Documents flow through as raw bytes: the codec checks their framing (length prefix, trailing
//! 0x00) but never decodes them.

mod crc;
mod meta;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub use self::crc::{crc64, Crc64, DocSet};
pub use self::meta::{CollectionMetadata, Header, Namespace, NamespaceSummary};
pub use self::reader::{ArchiveReader, Item};
pub use self::writer::ArchiveWriter;

/// 0x8199e26d, little-endian.
pub const ARCHIVE_MAGIC: [u8; 4] = [0x6d, 0xe2, 0x99, 0x81];

/// The only archive format version there is; the header's `version`.
pub const ARCHIVE_VERSION: &str = "0.1";

/// Largest BSON document we accept from an archive (16 MiB server limit plus headroom); any larger
/// length prefix is treated as corruption, never allocated.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024 + 16 * 1024;

/// Ends the prelude and every segment; never a valid BSON length.
pub(crate) const TERMINATOR: [u8; 4] = [0xff, 0xff, 0xff, 0xff];

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("I/O error reading the archive: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a mongodump archive (bad magic number)")]
    NotAnArchive,
    #[error("unsupported mongodump archive version {0:?} (this version of Driveback reads 0.1)")]
    UnsupportedVersion(String),
    #[error("the archive is truncated at offset {offset}")]
    Truncated { offset: u64 },
    #[error("the archive is corrupt at offset {offset}: {reason}")]
    Malformed { offset: u64, reason: String },
    #[error("checksum mismatch for {namespace}: the archive is corrupt")]
    CrcMismatch { namespace: String },
    #[error(
        "the archive has data for {namespace}, which its prelude does not list (offset {offset})"
    )]
    UnknownNamespace { namespace: String, offset: u64 },
}
