//! Streaming writer of mongodump archives.

use std::io::{self, Write};

use super::crc::Crc64;
use super::meta::{Header, Namespace, NamespaceHeader, NamespaceSummary};
use super::{ARCHIVE_MAGIC, ARCHIVE_VERSION, MAX_DOCUMENT_BYTES, TERMINATOR};

/// Writes a mongodump archive (format 0.1) that mongorestore accepts.
///
/// Every call ends in one or two `write_all`s on the inner writer (a namespace header goes out
/// together with the terminator before it, a document on its own), so give it a buffered writer
/// (`BufWriter`, a compressor, an encryptor) rather than a bare file or socket.
///
/// After an I/O error the writer refuses further calls: the archive on the other side is incomplete.
pub struct ArchiveWriter<W: Write> {
    inner: W,
    namespaces: Vec<WriterNamespace>,
    /// Namespace whose segment is open (its header written, its terminator not yet).
    open: Option<usize>,
    bytes_written: u64,
    scratch: Vec<u8>,
    failed: bool,
}

struct WriterNamespace {
    db: String,
    /// Collection name used in the segment headers (differs from the prelude's for time-series).
    data_collection: String,
    crc: Crc64,
    documents: u64,
    bytes: u64,
    ended: bool,
}

impl<W: Write> ArchiveWriter<W> {
    /// Writes magic, header, one metadata doc per namespace, terminator.
    ///
    /// `header.version` must be "0.1". Two namespaces with the same db and collection are refused.
    pub fn new(inner: W, header: &Header, namespaces: &[Namespace]) -> io::Result<Self> {
        if header.version != ARCHIVE_VERSION {
            return Err(invalid(format!(
                "cannot write archive version {:?}: only {ARCHIVE_VERSION:?} exists",
                header.version
            )));
        }
        let mut prelude = Vec::with_capacity(4096);
        prelude.extend_from_slice(&ARCHIVE_MAGIC);
        prelude.extend_from_slice(&header.to_bson_bytes());
        let mut states: Vec<WriterNamespace> = Vec::with_capacity(namespaces.len());
        for ns in namespaces {
            let data_collection = ns.data_collection(&header.server_version);
            if states
                .iter()
                .any(|s| s.db == ns.db && s.data_collection == data_collection)
            {
                return Err(invalid(format!(
                    "namespace {} is listed twice",
                    ns.full_name()
                )));
            }
            prelude.extend_from_slice(&ns.to_prelude_bytes());
            states.push(WriterNamespace {
                db: ns.db.clone(),
                data_collection,
                crc: Crc64::new(),
                documents: 0,
                bytes: 0,
                ended: false,
            });
        }
        prelude.extend_from_slice(&TERMINATOR);

        let mut writer = ArchiveWriter {
            inner,
            namespaces: states,
            open: None,
            bytes_written: 0,
            scratch: Vec::with_capacity(256),
            failed: false,
        };
        writer.emit(&prelude)?;
        Ok(writer)
    }

    /// Appends one raw BSON document (already valid BSON bytes; written as-is, never re-encoded) to
    /// namespace `ns` (index into `namespaces`). Keeps one segment open across consecutive documents of
    /// the same namespace; switching namespace closes the open segment (terminator) and opens another.
    ///
    /// The document is checked minimally (length prefix equal to its length, 5 to
    /// [`MAX_DOCUMENT_BYTES`] bytes, trailing 0x00); an invalid one is refused with `InvalidInput`
    /// and nothing is written.
    pub fn write_document(&mut self, ns: usize, raw: &[u8]) -> io::Result<()> {
        self.check_usable()?;
        let state = self.live_namespace(ns)?;
        check_document(raw)?;
        let (db, collection) = (state.db.clone(), state.data_collection.clone());

        if self.open != Some(ns) {
            let mut pieces = std::mem::take(&mut self.scratch);
            pieces.clear();
            if self.open.is_some() {
                pieces.extend_from_slice(&TERMINATOR);
            }
            pieces.extend_from_slice(&NamespaceHeader::bytes(&db, &collection, false, 0));
            let result = self.emit(&pieces);
            self.scratch = pieces;
            result?;
            self.open = Some(ns);
        }
        self.emit(raw)?;

        let state = &mut self.namespaces[ns];
        state.crc.update(raw);
        state.documents += 1;
        state.bytes += raw.len() as u64;
        Ok(())
    }

    /// Closes any open segment and writes the namespace's EOF header (with its CRC) + terminator.
    /// Returns what was written for it. Calling it twice for one namespace is an error.
    pub fn end_namespace(&mut self, ns: usize) -> io::Result<NamespaceSummary> {
        self.check_usable()?;
        let state = self.live_namespace(ns)?;
        let summary = NamespaceSummary {
            documents: state.documents,
            bytes: state.bytes,
            crc: state.crc.value(),
        };
        let eof_header =
            NamespaceHeader::bytes(&state.db, &state.data_collection, true, summary.crc);

        let mut pieces = std::mem::take(&mut self.scratch);
        pieces.clear();
        if self.open.is_some() {
            pieces.extend_from_slice(&TERMINATOR);
        }
        pieces.extend_from_slice(&eof_header);
        pieces.extend_from_slice(&TERMINATOR);
        let result = self.emit(&pieces);
        self.scratch = pieces;
        result?;

        self.open = None;
        self.namespaces[ns].ended = true;
        Ok(summary)
    }

    /// Ends every namespace not yet ended (in prelude order), flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        for ns in 0..self.namespaces.len() {
            if !self.namespaces[ns].ended {
                self.end_namespace(ns)?;
            }
        }
        self.check_usable()?;
        self.inner.flush()?;
        Ok(self.inner)
    }

    /// Bytes handed to the inner writer so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    fn live_namespace(&self, ns: usize) -> io::Result<&WriterNamespace> {
        let state = self.namespaces.get(ns).ok_or_else(|| {
            invalid(format!(
                "namespace index {ns} is out of range (the archive has {})",
                self.namespaces.len()
            ))
        })?;
        if state.ended {
            return Err(invalid(format!(
                "namespace {}.{} was already ended",
                state.db, state.data_collection
            )));
        }
        Ok(state)
    }

    fn check_usable(&self) -> io::Result<()> {
        if self.failed {
            Err(io::Error::other(
                "the archive writer failed earlier; the archive is incomplete",
            ))
        } else {
            Ok(())
        }
    }

    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.inner.write_all(bytes) {
            Ok(()) => {
                self.bytes_written += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

fn check_document(raw: &[u8]) -> io::Result<()> {
    if raw.len() < 5 || raw.len() > MAX_DOCUMENT_BYTES {
        return Err(invalid(format!(
            "a BSON document of {} bytes cannot go in an archive (5 to {MAX_DOCUMENT_BYTES})",
            raw.len()
        )));
    }
    let prefix = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
    if prefix != raw.len() {
        return Err(invalid(format!(
            "BSON length prefix {prefix} does not match the document's {} bytes",
            raw.len()
        )));
    }
    if raw[raw.len() - 1] != 0 {
        return Err(invalid("BSON document does not end with a 0x00 byte"));
    }
    Ok(())
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.into())
}
