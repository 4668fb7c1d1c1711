//! The local per-collection index: one (`_id` key, document hash) entry per document of the
//! backup it describes, in ascending key order.
//!
//! The next incremental backup reads it beside the collection (both in `_id` order) to find
//! what changed, and writes the next index beside it: memory stays flat whatever the size of the
//! collection, so the file is streamed in both directions and never loaded whole.
//!
//! # File layout (format version 1)
//!
//! All integers are little-endian; a varint is unsigned LEB128 in its shortest form.
//!
//! ```text
//! header   magic "DRVBKIDX" (8) | version u32 (4) | sha flag u8 (1) | backup SHA-256 (32)
//!          | varint len + backup id (UTF-8) | varint len + collection name (UTF-8)
//!          | header CRC-64 u64 (8)                      over every header byte before it
//! entries  varint key length (>= 1) | key bytes | document hash (8)     strictly ascending keys
//! end      varint 0
//! trailer  entry count u64 (8) | body CRC-64 u64 (8)    over every byte from the first entry
//!                                                        to the entry count
//! ```
//!
//! The header has its own checksum because the backup file's SHA-256 is only known once the
//! backup is uploaded, long after the walk wrote the index: [`set_backup_sha256`] fills it in place
//! (the flag says whether it is set). Together the two checksums cover every byte of the file, and
//! the trailer's count and the end of the file detect truncation. CRC-64/XZ detects every
//! accidental corruption of up to 64 bits in a row; the file lives on the machine that backs up,
//! so it only has to catch a bad disk or a torn write, not an attacker.
//!
//! # Lifecycle
//!
//! The walk writes `<collection>.idx.next` ([`IndexWriter`]); once the backup is uploaded the
//! caller records its SHA-256 ([`set_backup_sha256`]), commits the backup, then [`promote`]s the
//! file over `<collection>.idx`. A crash leaves either the old index (the next backup is computed
//! from it again) or a `.next` that names a backup, which the caller promotes if that backup is
//! committed and deletes otherwise.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crc::{Crc, Digest, Table, CRC_64_XZ};
use sha2::{Digest as _, Sha256};

use super::idkey::{IdKey, IdKeyError};

/// The first bytes of every index file.
pub const MAGIC: [u8; 8] = *b"DRVBKIDX";

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The longest key an entry may hold. An `_id` string lives in a document of at most 16 MiB,
/// and escaping can at most double it; anything longer in a file is corruption.
pub const MAX_KEY_LEN: usize = 2 * 16 * 1024 * 1024 + 16;

/// The longest backup id or collection name the header may hold (MongoDB namespaces are at most
/// 255 bytes; backup ids are short).
pub const MAX_NAME_LEN: usize = 4096;

/// Slice-by-16 tables: several GB/s, far faster than the disk the index is read from.
static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_XZ);

/// Why an index file could not be written or read. Any of these while reading means the walk
/// that used the file failed, and the caller makes a full backup.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The file system refused a read, a write, a sync or a rename.
    #[error("the index file could not be read or written: {0}")]
    Io(#[from] io::Error),
    /// The file does not start with [`MAGIC`]: not an index file.
    #[error("not a Driveback index file (bad magic)")]
    BadMagic,
    /// Written by a newer (or unknown) format version.
    #[error("index format version {0} is not supported (this version of Driveback reads {FORMAT_VERSION})")]
    UnsupportedVersion(u32),
    /// The file ends before its trailer (or before the end of its header).
    #[error("the index file is truncated")]
    Truncated,
    /// The header's checksum does not match its bytes.
    #[error("the index file's header is corrupt (checksum mismatch)")]
    HeaderChecksum,
    /// The body's checksum does not match its bytes: some entry is corrupt. Only known at the end
    /// of the stream, so every entry read before is suspect too.
    #[error("the index file is corrupt (checksum mismatch)")]
    ChecksumMismatch,
    /// A field cannot be what the writer wrote (a bad varint, a bad flag, bytes after the
    /// trailer, a name that is not UTF-8).
    #[error("the index file is corrupt: {0}")]
    Corrupt(&'static str),
    /// An entry's key bytes are not a key.
    #[error("the index file is corrupt: entry {position} holds an invalid key: {error}")]
    InvalidKey {
        /// The entry's position, from 0.
        position: u64,
        #[source]
        error: IdKeyError,
    },
    /// An entry's key is not strictly greater than the previous one (read), or a caller tried to
    /// append such a key (write).
    #[error("index entry {position} is out of order: keys must be strictly ascending")]
    OutOfOrder {
        /// The entry's position, from 0.
        position: u64,
    },
    /// The trailer's entry count differs from the entries read.
    #[error("the index trailer counts {trailer} entries but the file holds {read}")]
    CountMismatch { trailer: u64, read: u64 },
    /// A key longer than [`MAX_KEY_LEN`].
    #[error("an index key of {len} bytes is longer than the {MAX_KEY_LEN} allowed")]
    KeyTooLong { len: usize },
    /// A header name longer than [`MAX_NAME_LEN`].
    #[error(
        "the index header's {field} is {len} bytes long, more than the {MAX_NAME_LEN} allowed"
    )]
    NameTooLong { field: &'static str, len: usize },
    /// The reader already returned an error; nothing after it can be trusted.
    #[error("the index walk already failed")]
    Failed,
}

/// What an index file describes: the backup whose documents it lists, and the collection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexHeader {
    /// The id of the backup the index describes (the id in the backup's file name).
    pub backup_id: String,
    /// The SHA-256 of that backup's file, once known (see [`set_backup_sha256`]). A backup is
    /// identified by id *and* content, so an index never describes a different upload under the
    /// same name.
    pub backup_sha256: Option<[u8; 32]>,
    /// The collection's name.
    pub collection: String,
}

/// One document of the described backup: its `_id` key and [`doc_hash`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub key: IdKey,
    pub hash: [u8; 8],
}

/// The first 8 bytes of the SHA-256 of a document's raw BSON bytes.
///
/// Two versions of a document with the same hash are taken to be the same: 64 bits make a
/// collision between a document's old and new versions about 1 in 10^19, and SHA-256 is what the
/// measurement ran (60 MiB hashed in well under a second of CPU).
pub fn doc_hash(raw_doc_bytes: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(raw_doc_bytes);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// Writes an index file, entry by entry, in ascending key order.
///
/// The file is incomplete (and reads as [`IndexError::Truncated`]) until [`IndexWriter::finish`];
/// a writer dropped before that leaves such a file, which the caller deletes.
pub struct IndexWriter {
    out: BufWriter<File>,
    path: PathBuf,
    collection: String,
    crc: Digest<'static, u64, Table<16>>,
    last: Option<IdKey>,
    count: u64,
}

impl IndexWriter {
    /// Creates (or truncates) the file at `path_next` (by convention `<collection>.idx.next`)
    /// and writes the header.
    pub fn create(path_next: &Path, header: &IndexHeader) -> Result<IndexWriter, IndexError> {
        let head = encode_header(header)?;
        let mut out = BufWriter::with_capacity(64 * 1024, File::create(path_next)?);
        out.write_all(&head)?;
        out.write_all(&CRC64.checksum(&head).to_le_bytes())?;
        Ok(IndexWriter {
            out,
            path: path_next.to_path_buf(),
            collection: header.collection.clone(),
            crc: CRC64.digest(),
            last: None,
            count: 0,
        })
    }

    /// Appends one entry. The key must be strictly greater than the previous one: the next walk
    /// relies on the order, so a writer that cannot keep it refuses rather than write a file that
    /// would mislead the next backup.
    pub fn append(&mut self, key: &IdKey, hash: [u8; 8]) -> Result<(), IndexError> {
        let len = key.as_bytes().len();
        if len > MAX_KEY_LEN {
            return Err(IndexError::KeyTooLong { len });
        }
        if let Some(last) = &self.last {
            if key <= last {
                return Err(IndexError::OutOfOrder {
                    position: self.count,
                });
            }
        }
        let mut varint = [0u8; 10];
        let n = encode_varint(len as u64, &mut varint);
        self.put(&varint[..n])?;
        self.put(key.as_bytes())?;
        self.put(&hash)?;
        match &mut self.last {
            Some(last) => last.clone_from(key),
            None => self.last = Some(key.clone()),
        }
        self.count += 1;
        Ok(())
    }

    /// The key of the last entry appended, if any.
    pub fn last_key(&self) -> Option<&IdKey> {
        self.last.as_ref()
    }

    /// The entries appended so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The collection named in the header.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// Writes the end marker and the trailer, flushes and fsyncs the file. Returns the number of
    /// entries. The file is then complete but not yet in place: see [`promote`].
    pub fn finish(mut self) -> Result<u64, IndexError> {
        self.put(&[0])?;
        let count = self.count.to_le_bytes();
        self.put(&count)?;
        let crc = self.crc.finalize();
        self.out.write_all(&crc.to_le_bytes())?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(self.count)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), IndexError> {
        self.crc.update(bytes);
        self.out.write_all(bytes)?;
        Ok(())
    }
}

/// Records the SHA-256 of the backup an index file describes, in place, once the backup is
/// uploaded and its SHA-256 known. Checks the header first (magic, version, checksum), rewrites
/// it with the new SHA-256 and checksum, and fsyncs. The entries are not read.
pub fn set_backup_sha256(path: &Path, sha256: &[u8; 32]) -> Result<(), IndexError> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut header = {
        let mut reader = BufReader::new(&mut file);
        read_header(&mut reader)?
    };
    header.backup_sha256 = Some(*sha256);
    let head = encode_header(&header)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&head)?;
    file.write_all(&CRC64.checksum(&head).to_le_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Moves a finished index (`next`) over the current one (`final_path`) atomically, and makes
/// the rename durable (on unix, by fsyncing the directory), so that after a crash the index is
/// either the old one or the new one, whole.
pub fn promote(next: &Path, final_path: &Path) -> Result<(), IndexError> {
    std::fs::rename(next, final_path)?;
    #[cfg(unix)]
    {
        let dir = match final_path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Where a reader is in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadState {
    Entries,
    Done,
    Failed,
}

/// Reads an index file as a stream of entries, checking it as it goes.
///
/// [`IndexReader::open`] checks the header. Each entry is checked for order and key validity as
/// it is read; the body checksum, the entry count and the end of the file can only be checked at
/// the end, so the call that reaches the end returns the error if there is one (and `Ok(None)`
/// only for an intact file). A caller must therefore treat everything it did with the entries as
/// void unless the walk reached `Ok(None)`. After an error every further call returns
/// [`IndexError::Failed`] (the [`Iterator`] returns `None`).
pub struct IndexReader {
    input: BufReader<File>,
    header: IndexHeader,
    crc: Digest<'static, u64, Table<16>>,
    /// The previous entry's key, to check the order (its buffer is reused).
    prev: Option<IdKey>,
    read: u64,
    state: ReadState,
}

impl IndexReader {
    /// Opens an index file and checks its header.
    pub fn open(path: &Path) -> Result<IndexReader, IndexError> {
        let mut input = BufReader::with_capacity(64 * 1024, File::open(path)?);
        let header = read_header(&mut input)?;
        Ok(IndexReader {
            input,
            header,
            crc: CRC64.digest(),
            prev: None,
            read: 0,
            state: ReadState::Entries,
        })
    }

    /// The header: which backup and collection the file describes.
    pub fn header(&self) -> &IndexHeader {
        &self.header
    }

    /// The entries read so far.
    pub fn entries_read(&self) -> u64 {
        self.read
    }

    /// The next entry, `Ok(None)` at the end of an intact file, or the error that stops the walk.
    pub fn next_entry(&mut self) -> Result<Option<IndexEntry>, IndexError> {
        match self.state {
            ReadState::Entries => {}
            ReadState::Done => return Ok(None),
            ReadState::Failed => return Err(IndexError::Failed),
        }
        match self.read_entry() {
            Ok(Some(entry)) => Ok(Some(entry)),
            Ok(None) => {
                self.state = ReadState::Done;
                Ok(None)
            }
            Err(e) => {
                self.state = ReadState::Failed;
                Err(e)
            }
        }
    }

    fn read_entry(&mut self) -> Result<Option<IndexEntry>, IndexError> {
        let len = self.read_varint()?;
        if len == 0 {
            return self.read_trailer().map(|()| None);
        }
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= MAX_KEY_LEN)
            .ok_or(IndexError::Corrupt("a key length is out of range"))?;
        // Read through `take` so that a corrupt length cannot make us allocate more than the file
        // actually holds.
        let mut key = Vec::with_capacity(len.min(256));
        (&mut self.input)
            .take(len as u64)
            .read_to_end(&mut key)
            .map_err(eof_is_truncation)?;
        if key.len() < len {
            return Err(IndexError::Truncated);
        }
        self.crc.update(&key);
        let mut hash = [0u8; 8];
        self.read_exact(&mut hash)?;

        let position = self.read;
        let key =
            IdKey::from_bytes(key).map_err(|error| IndexError::InvalidKey { position, error })?;
        match &mut self.prev {
            Some(prev) if key <= *prev => return Err(IndexError::OutOfOrder { position }),
            Some(prev) => prev.clone_from(&key),
            None => self.prev = Some(key.clone()),
        }
        self.read += 1;
        Ok(Some(IndexEntry { key, hash }))
    }

    fn read_trailer(&mut self) -> Result<(), IndexError> {
        let mut count = [0u8; 8];
        self.read_exact(&mut count)?;
        let computed = std::mem::replace(&mut self.crc, CRC64.digest()).finalize();
        let mut stored = [0u8; 8];
        self.input
            .read_exact(&mut stored)
            .map_err(eof_is_truncation)?;
        if u64::from_le_bytes(stored) != computed {
            return Err(IndexError::ChecksumMismatch);
        }
        let trailer = u64::from_le_bytes(count);
        if trailer != self.read {
            return Err(IndexError::CountMismatch {
                trailer,
                read: self.read,
            });
        }
        let mut extra = [0u8; 1];
        if self.input.read(&mut extra)? != 0 {
            return Err(IndexError::Corrupt("bytes after the trailer"));
        }
        Ok(())
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), IndexError> {
        self.input.read_exact(buf).map_err(eof_is_truncation)?;
        self.crc.update(buf);
        Ok(())
    }

    fn read_varint(&mut self) -> Result<u64, IndexError> {
        let input = &mut self.input;
        let crc = &mut self.crc;
        read_varint(|| {
            let mut b = [0u8; 1];
            input.read_exact(&mut b).map_err(eof_is_truncation)?;
            crc.update(&b);
            Ok(b[0])
        })
    }
}

impl Iterator for IndexReader {
    type Item = Result<IndexEntry, IndexError>;

    /// The entries, then `None` at the end of an intact file; an error is returned once, then
    /// `None`.
    fn next(&mut self) -> Option<Self::Item> {
        if self.state == ReadState::Failed {
            return None;
        }
        self.next_entry().transpose()
    }
}

/// The header's bytes, without its checksum.
fn encode_header(header: &IndexHeader) -> Result<Vec<u8>, IndexError> {
    for (field, value) in [
        ("backup id", &header.backup_id),
        ("collection name", &header.collection),
    ] {
        if value.len() > MAX_NAME_LEN {
            return Err(IndexError::NameTooLong {
                field,
                len: value.len(),
            });
        }
    }
    let mut out = Vec::with_capacity(64 + header.backup_id.len() + header.collection.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    match &header.backup_sha256 {
        Some(sha) => {
            out.push(1);
            out.extend_from_slice(sha);
        }
        None => {
            out.push(0);
            out.extend_from_slice(&[0; 32]);
        }
    }
    let mut varint = [0u8; 10];
    for value in [&header.backup_id, &header.collection] {
        let n = encode_varint(value.len() as u64, &mut varint);
        out.extend_from_slice(&varint[..n]);
        out.extend_from_slice(value.as_bytes());
    }
    Ok(out)
}

/// Reads and checks a header, up to and including its checksum.
fn read_header<R: Read>(input: &mut R) -> Result<IndexHeader, IndexError> {
    let mut raw = Vec::with_capacity(64);

    // The magic first, byte by byte: a short file that is not an index says "bad magic", a short
    // prefix of an index says "truncated".
    let mut magic = [0u8; 8];
    let got = read_up_to(input, &mut magic)?;
    if magic[..got] != MAGIC[..got] {
        return Err(IndexError::BadMagic);
    }
    if got < MAGIC.len() {
        return Err(IndexError::Truncated);
    }
    raw.extend_from_slice(&magic);

    let mut version = [0u8; 4];
    input.read_exact(&mut version).map_err(eof_is_truncation)?;
    raw.extend_from_slice(&version);
    let version = u32::from_le_bytes(version);
    if version != FORMAT_VERSION {
        return Err(IndexError::UnsupportedVersion(version));
    }

    let mut sha = [0u8; 33];
    input.read_exact(&mut sha).map_err(eof_is_truncation)?;
    raw.extend_from_slice(&sha);
    let (flag, digest) = sha.split_at(1);
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(digest);
    let backup_sha256 = match flag[0] {
        0 if sha256 == [0; 32] => None,
        1 => Some(sha256),
        _ => return Err(IndexError::Corrupt("bad SHA-256 flag")),
    };

    let mut names = Vec::with_capacity(2);
    for field in ["backup id", "collection name"] {
        let len = read_varint(|| {
            let mut b = [0u8; 1];
            input.read_exact(&mut b).map_err(eof_is_truncation)?;
            raw.push(b[0]);
            Ok(b[0])
        })?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= MAX_NAME_LEN)
            .ok_or(IndexError::NameTooLong {
                field,
                len: usize::try_from(len).unwrap_or(usize::MAX),
            })?;
        let mut bytes = vec![0u8; len];
        input.read_exact(&mut bytes).map_err(eof_is_truncation)?;
        raw.extend_from_slice(&bytes);
        names.push(bytes);
    }

    let mut stored = [0u8; 8];
    input.read_exact(&mut stored).map_err(eof_is_truncation)?;
    if u64::from_le_bytes(stored) != CRC64.checksum(&raw) {
        return Err(IndexError::HeaderChecksum);
    }

    let mut names = names.into_iter().map(|b| {
        String::from_utf8(b).map_err(|_| IndexError::Corrupt("a header name is not UTF-8"))
    });
    let backup_id = names.next().ok_or(IndexError::Corrupt("no backup id"))??;
    let collection = names
        .next()
        .ok_or(IndexError::Corrupt("no collection name"))??;
    Ok(IndexHeader {
        backup_id,
        backup_sha256,
        collection,
    })
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_up_to<R: Read>(input: &mut R, buf: &mut [u8]) -> Result<usize, IndexError> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(got)
}

/// Writes `v` as LEB128 into `buf`; returns the length (at most 10).
fn encode_varint(mut v: u64, buf: &mut [u8; 10]) -> usize {
    let mut n = 0;
    loop {
        let byte = (v & 0x7F) as u8;
        v >>= 7;
        if v == 0 {
            buf[n] = byte;
            return n + 1;
        }
        buf[n] = byte | 0x80;
        n += 1;
    }
}

/// Reads a LEB128 varint in its shortest form from `next_byte`.
fn read_varint(mut next_byte: impl FnMut() -> Result<u8, IndexError>) -> Result<u64, IndexError> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let byte = next_byte()?;
        let bits = u64::from(byte & 0x7F);
        if i == 9 && byte > 1 {
            return Err(IndexError::Corrupt("a varint overflows 64 bits"));
        }
        v |= bits << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err(IndexError::Corrupt("a varint is not in its shortest form"));
            }
            return Ok(v);
        }
    }
    Err(IndexError::Corrupt("a varint is longer than 10 bytes"))
}

fn eof_is_truncation(e: io::Error) -> IndexError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        IndexError::Truncated
    } else {
        IndexError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::Bson;

    fn int_key(v: i64) -> IdKey {
        IdKey::from_bson(&Bson::Int64(v)).expect("key")
    }

    fn header() -> IndexHeader {
        IndexHeader {
            backup_id: "20261204T020000Z-ab12cd34".into(),
            backup_sha256: None,
            collection: "timeEntries".into(),
        }
    }

    fn sample_entries() -> Vec<IndexEntry> {
        let mut entries: Vec<IndexEntry> = [-5_i64, 0, 1, 2, 300, 1 << 40]
            .iter()
            .map(|&v| IndexEntry {
                key: int_key(v),
                hash: doc_hash(&v.to_le_bytes()),
            })
            .collect();
        for s in ["", "a", "a\0", "ab", "é"] {
            entries.push(IndexEntry {
                key: IdKey::from_bson(&Bson::String(s.into())).expect("key"),
                hash: doc_hash(s.as_bytes()),
            });
        }
        entries
    }

    fn write(path: &Path, header: &IndexHeader, entries: &[IndexEntry]) -> u64 {
        let mut w = IndexWriter::create(path, header).expect("create");
        for e in entries {
            w.append(&e.key, e.hash).expect("append");
        }
        w.finish().expect("finish")
    }

    /// Reads the whole file: the entries, or the first error.
    fn read_all(path: &Path) -> Result<(IndexHeader, Vec<IndexEntry>), IndexError> {
        let mut r = IndexReader::open(path)?;
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            out.push(e);
        }
        Ok((r.header().clone(), out))
    }

    #[test]
    fn entries_round_trip_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("timeEntries.idx.next");
        let entries = sample_entries();
        assert_eq!(write(&path, &header(), &entries), entries.len() as u64);
        let (h, read) = read_all(&path).expect("read");
        assert_eq!(h, header());
        assert_eq!(read, entries);

        // The iterator gives the same, and stops.
        let r = IndexReader::open(&path).expect("open");
        let via_iter: Vec<IndexEntry> = r.map(|e| e.expect("entry")).collect();
        assert_eq!(via_iter, entries);
    }

    #[test]
    fn an_empty_index_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("empty.idx");
        assert_eq!(write(&path, &header(), &[]), 0);
        let (h, read) = read_all(&path).expect("read");
        assert_eq!(h, header());
        assert!(read.is_empty());
    }

    #[test]
    fn the_backup_sha256_is_set_in_place_and_promotion_replaces_the_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let next = dir.path().join("c.idx.next");
        let current = dir.path().join("c.idx");
        write(&current, &header(), &sample_entries()[..2]);
        let entries = sample_entries();
        write(&next, &header(), &entries);

        let sha = [0xAB; 32];
        set_backup_sha256(&next, &sha).expect("set sha");
        promote(&next, &current).expect("promote");
        assert!(!next.exists());
        let (h, read) = read_all(&current).expect("read");
        assert_eq!(h.backup_sha256, Some(sha));
        assert_eq!(h.backup_id, header().backup_id);
        assert_eq!(read, entries);

        // Setting it again (a retry) is fine.
        set_backup_sha256(&current, &[1; 32]).expect("set again");
        assert_eq!(
            read_all(&current).expect("read").0.backup_sha256,
            Some([1; 32])
        );
    }

    #[test]
    fn the_writer_refuses_out_of_order_and_duplicate_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = IndexWriter::create(&dir.path().join("x.idx"), &header()).expect("create");
        w.append(&int_key(5), [0; 8]).expect("first");
        assert!(matches!(
            w.append(&int_key(5), [1; 8]),
            Err(IndexError::OutOfOrder { position: 1 })
        ));
        assert!(matches!(
            w.append(&int_key(4), [1; 8]),
            Err(IndexError::OutOfOrder { position: 1 })
        ));
        w.append(&int_key(6), [0; 8]).expect("greater is fine");
        assert_eq!(w.count(), 2);
        assert_eq!(w.last_key(), Some(&int_key(6)));
        assert_eq!(w.finish().expect("finish"), 2);
    }

    #[test]
    fn names_that_are_too_long_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut h = header();
        h.collection = "c".repeat(MAX_NAME_LEN + 1);
        assert!(matches!(
            IndexWriter::create(&dir.path().join("x.idx"), &h),
            Err(IndexError::NameTooLong { .. })
        ));
    }

    #[test]
    fn wrong_magic_and_unknown_version_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.idx");
        write(&path, &header(), &sample_entries());
        let good = std::fs::read(&path).expect("read");

        let mut bytes = good.clone();
        bytes[0] = b'X';
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(
            IndexReader::open(&path),
            Err(IndexError::BadMagic)
        ));
        assert!(matches!(
            set_backup_sha256(&path, &[0; 32]),
            Err(IndexError::BadMagic)
        ));

        std::fs::write(&path, b"{\"json\": true}").expect("write");
        assert!(matches!(
            IndexReader::open(&path),
            Err(IndexError::BadMagic)
        ));

        let mut bytes = good.clone();
        bytes[8..12].copy_from_slice(&2_u32.to_le_bytes());
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(
            IndexReader::open(&path),
            Err(IndexError::UnsupportedVersion(2))
        ));
    }

    #[test]
    fn a_flipped_entry_byte_fails_at_the_end_of_the_walk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.idx");
        let entries = sample_entries();
        write(&path, &header(), &entries);
        let mut bytes = std::fs::read(&path).expect("read");
        // The last byte of the first entry's hash: the entries still read, in order, but the
        // checksum at the end does not match.
        let header_len = encode_header(&header()).expect("header").len() + 8;
        let first_entry_len = 1 + entries[0].key.as_bytes().len() + 8;
        bytes[header_len + first_entry_len - 1] ^= 0x01;
        std::fs::write(&path, &bytes).expect("write");

        let mut r = IndexReader::open(&path).expect("header is intact");
        for _ in 0..entries.len() {
            r.next_entry().expect("entries read").expect("an entry");
        }
        assert!(matches!(r.next_entry(), Err(IndexError::ChecksumMismatch)));
        assert!(matches!(r.next_entry(), Err(IndexError::Failed)));
        assert!(r.next().is_none(), "the iterator ends after the error");
    }

    #[test]
    fn a_flipped_header_byte_fails_the_header_checksum() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.idx");
        write(&path, &header(), &sample_entries());
        let mut bytes = std::fs::read(&path).expect("read");
        let at = encode_header(&header()).expect("header").len() - 3; // in the collection name
        bytes[at] ^= 0x20;
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(
            IndexReader::open(&path),
            Err(IndexError::HeaderChecksum)
        ));
    }

    #[test]
    fn every_flipped_byte_makes_the_walk_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.idx");
        write(&path, &header(), &sample_entries());
        let good = std::fs::read(&path).expect("read");
        for i in 0..good.len() {
            for flip in [0x01_u8, 0x80, 0xFF] {
                let mut bytes = good.clone();
                bytes[i] ^= flip;
                std::fs::write(&path, &bytes).expect("write");
                assert!(
                    read_all(&path).is_err(),
                    "byte {i} xor {flip:#x} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn every_truncation_makes_the_walk_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.idx");
        write(&path, &header(), &sample_entries());
        let good = std::fs::read(&path).expect("read");
        for len in 0..good.len() {
            std::fs::write(&path, &good[..len]).expect("write");
            match read_all(&path) {
                Err(IndexError::Truncated) => {}
                other => panic!("truncated to {len} bytes: {other:?}"),
            }
        }
        // Bytes appended after the trailer are refused too.
        let mut longer = good.clone();
        longer.push(0);
        std::fs::write(&path, &longer).expect("write");
        assert!(matches!(
            read_all(&path),
            Err(IndexError::Corrupt("bytes after the trailer"))
        ));
    }

    #[test]
    fn an_unfinished_index_reads_as_truncated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.idx.next");
        {
            let mut w = IndexWriter::create(&path, &header()).expect("create");
            w.append(&int_key(1), [0; 8]).expect("append");
            // Dropped without finish: the BufWriter flushes what it has.
        }
        assert!(matches!(read_all(&path), Err(IndexError::Truncated)));
    }

    #[test]
    fn out_of_order_entries_in_a_file_are_reported() {
        // A file whose checksums are right but whose entries are not ascending can only come
        // from a bug; the reader still refuses it. Build one by hand.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.idx");
        let head = encode_header(&header()).expect("header");
        let mut body = Vec::new();
        for v in [2_i64, 1] {
            let k = int_key(v);
            body.push(k.as_bytes().len() as u8);
            body.extend_from_slice(k.as_bytes());
            body.extend_from_slice(&[0; 8]);
        }
        body.push(0);
        body.extend_from_slice(&2_u64.to_le_bytes());
        let mut file = head.clone();
        file.extend_from_slice(&CRC64.checksum(&head).to_le_bytes());
        file.extend_from_slice(&body);
        file.extend_from_slice(&CRC64.checksum(&body).to_le_bytes());
        std::fs::write(&path, &file).expect("write");
        assert!(matches!(
            read_all(&path),
            Err(IndexError::OutOfOrder { position: 1 })
        ));
    }

    #[test]
    fn varints_round_trip_and_refuse_bad_forms() {
        for v in [
            0_u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut buf = [0u8; 10];
            let n = encode_varint(v, &mut buf);
            let mut it = buf[..n].iter().copied();
            let back = read_varint(|| it.next().ok_or(IndexError::Truncated)).expect("varint");
            assert_eq!(back, v);
        }
        for bad in [
            &[0x80, 0x00][..],                                                 // not shortest
            &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02][..], // overflow
        ] {
            let mut it = bad.iter().copied();
            assert!(matches!(
                read_varint(|| it.next().ok_or(IndexError::Truncated)),
                Err(IndexError::Corrupt(_))
            ));
        }
    }

    #[test]
    fn doc_hash_is_the_sha256_prefix() {
        // SHA-256("abc") = ba7816bf 8f01cfea ...
        assert_eq!(
            doc_hash(b"abc"),
            [0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea]
        );
    }
}
