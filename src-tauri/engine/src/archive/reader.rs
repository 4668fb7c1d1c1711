//! Streaming reader of mongodump archives.

use std::collections::HashMap;
use std::io::{self, Read};

use super::crc::Crc64;
use super::meta::{raw_document, Header, Namespace, NamespaceHeader, NamespaceSummary};
use super::{ArchiveError, ARCHIVE_MAGIC, ARCHIVE_VERSION, MAX_DOCUMENT_BYTES, TERMINATOR};

/// Largest piece of a document read (and allocated) at once.
const READ_STEP: usize = 1 << 20;

/// What [`ArchiveReader::next_item`] yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// One raw BSON document of namespace `ns` (index into [`ArchiveReader::namespaces`]), exactly as
    /// stored in the archive.
    Document { ns: usize, raw: Vec<u8> },
    /// Namespace `ns` ended and its CRC verified; no more documents will come for it.
    EndOfNamespace {
        ns: usize,
        summary: NamespaceSummary,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Unopened,
    Open,
    Ended,
}

struct ReaderNamespace {
    crc: Crc64,
    documents: u64,
    bytes: u64,
    status: Status,
}

/// Reads a mongodump archive (format 0.1) one document at a time, in bounded memory.
///
/// It issues small reads (4-byte length prefixes), so give it a buffered reader (`BufReader`, a
/// decompressor wrapped in a `BufReader`, ...). After an error every later call fails too.
pub struct ArchiveReader<R: Read> {
    inner: R,
    offset: u64,
    header: Header,
    namespaces: Vec<Namespace>,
    /// (db, collection as named in segment headers) -> namespace index.
    by_name: HashMap<(String, String), usize>,
    states: Vec<ReaderNamespace>,
    /// Namespace of the segment being read (between its header and its terminator).
    current: Option<usize>,
    finished: bool,
    failed: bool,
}

impl<R: Read> ArchiveReader<R> {
    /// Reads magic, header and prelude. Errors: NotAnArchive (bad magic), UnsupportedVersion (header
    /// version not "0.1"), Truncated, Malformed.
    pub fn new(inner: R) -> Result<Self, ArchiveError> {
        let mut reader = ArchiveReader {
            inner,
            offset: 0,
            header: Header {
                concurrent_collections: 0,
                version: String::new(),
                server_version: String::new(),
                tool_version: String::new(),
            },
            namespaces: Vec::new(),
            by_name: HashMap::new(),
            states: Vec::new(),
            current: None,
            finished: false,
            failed: false,
        };

        let mut magic = [0u8; 4];
        if reader.fill(&mut magic)? < magic.len() {
            return Err(reader.truncated());
        }
        if magic != ARCHIVE_MAGIC {
            return Err(ArchiveError::NotAnArchive);
        }

        let start = reader.offset;
        let word = reader.read_word()?.ok_or_else(|| reader.truncated())?;
        if word == TERMINATOR {
            return Err(malformed(start, "the archive header is missing"));
        }
        let raw = reader.read_document(word, start)?;
        let header_doc = raw_document(&raw).map_err(|e| malformed(start, e))?;
        let header = Header::from_raw(header_doc)
            .map_err(|e| malformed(start, format!("archive header: {e}")))?;
        if header.version != ARCHIVE_VERSION {
            return Err(ArchiveError::UnsupportedVersion(header.version));
        }
        reader.header = header;

        loop {
            let start = reader.offset;
            let word = reader.read_word()?.ok_or_else(|| reader.truncated())?;
            if word == TERMINATOR {
                break;
            }
            let raw = reader.read_document(word, start)?;
            let doc = raw_document(&raw).map_err(|e| malformed(start, e))?;
            let ns = Namespace::from_prelude_raw(doc)
                .map_err(|e| malformed(start, format!("archive prelude: {e}")))?;
            reader.add_namespace(ns, start)?;
        }
        Ok(reader)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The namespaces listed in the prelude, in archive order; `Item`s refer to them by index.
    pub fn namespaces(&self) -> &[Namespace] {
        &self.namespaces
    }

    /// Next document or end-of-namespace. Verifies the CRC at each EOF header against the bytes read
    /// (mismatch -> CrcMismatch). None after the stream ends cleanly (EOF of the underlying reader at
    /// a segment boundary, every namespace ended). Ending mid-document/mid-header, or at a boundary
    /// while some namespace has not ended -> Truncated { offset }.
    ///
    /// Time-series namespaces are the exception mongorestore also makes: they need no end.
    pub fn next_item(&mut self) -> Result<Option<Item>, ArchiveError> {
        if self.failed {
            return Err(malformed(
                self.offset,
                "reading stopped at an earlier error".to_string(),
            ));
        }
        if self.finished {
            return Ok(None);
        }
        let result = self.read_item();
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Bytes consumed from the underlying reader so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    fn read_item(&mut self) -> Result<Option<Item>, ArchiveError> {
        loop {
            let start = self.offset;
            if let Some(ns) = self.current {
                let word = self.read_word()?.ok_or_else(|| self.truncated())?;
                if word == TERMINATOR {
                    self.current = None;
                    continue;
                }
                let raw = self.read_document(word, start)?;
                let state = &mut self.states[ns];
                state.crc.update(&raw);
                state.documents += 1;
                state.bytes += raw.len() as u64;
                return Ok(Some(Item::Document { ns, raw }));
            }

            let Some(word) = self.read_word()? else {
                return self.end_of_stream();
            };
            if word == TERMINATOR {
                return Err(malformed(
                    start,
                    "a terminator where a namespace header should be",
                ));
            }
            let raw = self.read_document(word, start)?;
            let doc = raw_document(&raw).map_err(|e| malformed(start, e))?;
            let header = NamespaceHeader::from_raw(doc)
                .map_err(|e| malformed(start, format!("namespace header: {e}")))?;
            let full_name = format!("{}.{}", header.db, header.collection);
            let ns = *self
                .by_name
                .get(&(header.db, header.collection))
                .ok_or_else(|| ArchiveError::UnknownNamespace {
                    namespace: full_name.clone(),
                    offset: start,
                })?;
            let state = &mut self.states[ns];
            if state.status == Status::Ended {
                return Err(malformed(
                    start,
                    format!("{full_name} continues after its end-of-namespace header"),
                ));
            }
            if !header.eof {
                state.status = Status::Open;
                self.current = Some(ns);
                continue;
            }

            let summary = NamespaceSummary {
                documents: state.documents,
                bytes: state.bytes,
                crc: state.crc.value(),
            };
            state.status = Status::Ended;
            let term_start = self.offset;
            let word = self.read_word()?.ok_or_else(|| self.truncated())?;
            if word != TERMINATOR {
                return Err(malformed(
                    term_start,
                    format!("the end-of-namespace header of {full_name} is followed by data"),
                ));
            }
            if summary.crc as i64 != header.crc {
                return Err(ArchiveError::CrcMismatch {
                    namespace: full_name,
                });
            }
            return Ok(Some(Item::EndOfNamespace { ns, summary }));
        }
    }

    /// Clean EOF between blocks: fine if every namespace that must end has ended.
    fn end_of_stream(&mut self) -> Result<Option<Item>, ArchiveError> {
        let unfinished = self
            .states
            .iter()
            .zip(&self.namespaces)
            .any(|(state, ns)| state.status != Status::Ended && ns.kind != "timeseries");
        if unfinished {
            return Err(self.truncated());
        }
        self.finished = true;
        Ok(None)
    }

    fn add_namespace(&mut self, ns: Namespace, start: u64) -> Result<(), ArchiveError> {
        let index = self.namespaces.len();
        // As many as a manifest may list: a crafted prelude cannot make a restore create more.
        if index >= crate::manifest::MAX_COLLECTIONS {
            return Err(malformed(
                start,
                format!(
                    "archive prelude lists more than {} namespaces",
                    crate::manifest::MAX_COLLECTIONS
                ),
            ));
        }
        let key = (ns.db.clone(), ns.collection.clone());
        if let Some(&other) = self.by_name.get(&key) {
            // Only an alias (see below) may be overridden by the real thing.
            if self.namespaces[other].collection == ns.collection {
                return Err(malformed(
                    start,
                    format!("archive prelude lists {} twice", ns.full_name()),
                ));
            }
        }
        self.by_name.insert(key, index);
        let data_collection = ns.data_collection(&self.header.server_version);
        if data_collection != ns.collection {
            // A time-series collection's documents come under its buckets collection; accept both names.
            self.by_name
                .entry((ns.db.clone(), data_collection))
                .or_insert(index);
        }
        self.namespaces.push(ns);
        self.states.push(ReaderNamespace {
            crc: Crc64::new(),
            documents: 0,
            bytes: 0,
            status: Status::Unopened,
        });
        Ok(())
    }

    /// Reads a 4-byte length prefix or terminator. None at a clean end of stream.
    fn read_word(&mut self) -> Result<Option<[u8; 4]>, ArchiveError> {
        let mut word = [0u8; 4];
        match self.fill(&mut word)? {
            0 => Ok(None),
            4 => Ok(Some(word)),
            _ => Err(self.truncated()),
        }
    }

    /// Reads the rest of a BSON document whose length prefix `word` started at `start`.
    fn read_document(&mut self, word: [u8; 4], start: u64) -> Result<Vec<u8>, ArchiveError> {
        let len = i32::from_le_bytes(word);
        if len < 5 || len as usize > MAX_DOCUMENT_BYTES {
            return Err(malformed(
                start,
                format!("{len} is neither a BSON document length nor a terminator"),
            ));
        }
        let len = len as usize;
        // Grown as bytes arrive, so a length prefix that lies costs at most one step more than
        // the bytes that are really there.
        let mut raw = Vec::with_capacity(len.min(READ_STEP));
        raw.extend_from_slice(&word);
        while raw.len() < len {
            let at = raw.len();
            raw.resize(at + (len - at).min(READ_STEP), 0);
            if self.fill(&mut raw[at..])? < raw.len() - at {
                return Err(self.truncated());
            }
        }
        if raw[len - 1] != 0 {
            return Err(malformed(
                start,
                format!("the BSON document of {len} bytes here does not end with 0x00"),
            ));
        }
        Ok(raw)
    }

    /// Fills `buf` as far as the stream allows; returns how many bytes were read (less than
    /// `buf.len()` only at the end of the stream).
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, ArchiveError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.inner.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A decompressor below us reports a cut-off stream this way.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(self.truncated()),
                Err(e) => return Err(ArchiveError::Io(e)),
            }
        }
        Ok(filled)
    }

    fn truncated(&self) -> ArchiveError {
        ArchiveError::Truncated {
            offset: self.offset,
        }
    }
}

fn malformed(offset: u64, reason: impl Into<String>) -> ArchiveError {
    ArchiveError::Malformed {
        offset,
        reason: reason.into(),
    }
}
