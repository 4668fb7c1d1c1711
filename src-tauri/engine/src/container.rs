//! The backup file container (`.mdbk`).
//!
//! A backup file is an age file encrypted to the destination's backup key (X25519). Its plaintext
//! is one zstd frame holding a mongodump archive, followed by one zstd skippable frame whose
//! payload is `DRIVEBACK-MANIFEST\n` and the manifest as JSON. Standard tools can therefore
//! restore a backup without Driveback:
//!
//! ```text
//! age -d -i key.txt backup.mdbk | zstd -d | mongorestore --archive
//! ```
//!
//! (`zstd -d` skips skippable frames.) A backup is complete only when its manifest is present.

use std::io::{self, BufReader, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::manifest::{Manifest, ManifestError, MAX_MANIFEST_BYTES};

/// zstd level used for backups, chosen by `scripts/bench --levels` (docs/BENCHMARKS.md): at
/// 214k documents 0.87x the bytes of `gzip -6` (what `mongodump --gzip` writes) for 0.82x the CPU
/// of a mongodump proxy that leaves out mongodump's own decoding, and 31 MiB peak. Level 10 saved
/// 2% more bytes for 1.3x the CPU and 1.6x the memory.
pub const DEFAULT_ZSTD_LEVEL: i32 = 8;

/// Magic number of the skippable frame holding the manifest (one of the 16 values zstd reserves
/// for skippable frames).
pub const MANIFEST_FRAME_MAGIC: u32 = 0x184D_2A5D;

/// Largest zstd window a backup may use, as log2 of its size: 16 MiB, twice what level 19 uses.
pub const MAX_WINDOW_LOG: u32 = 24;

/// First bytes of the manifest frame's payload.
pub const MANIFEST_PREFIX: &[u8] = b"DRIVEBACK-MANIFEST\n";

const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";
const MONGODUMP_ARCHIVE_MAGIC: [u8; 4] = [0x6d, 0xe2, 0x99, 0x81];
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("this file is not a Driveback backup")]
    NotABackup,
    #[error(
        "this backup was encrypted with a different backup key (it belongs to another destination or an older key)"
    )]
    WrongKey,
    #[error("the backup file is corrupt or truncated at offset {offset}")]
    Corrupt { offset: u64 },
    #[error("the backup is incomplete: its manifest is missing (it was never finished)")]
    MissingManifest,
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Io(io::Error),
}

impl From<io::Error> for ContainerError {
    /// Unwraps a `ContainerError` that travelled through an `io::Error` (as [`BackupReader`]'s
    /// `Read` implementation reports them); any other I/O error stays an I/O error.
    fn from(e: io::Error) -> Self {
        if e.get_ref()
            .is_some_and(|inner| inner.is::<ContainerError>())
        {
            let inner = e.into_inner().expect("checked above");
            match inner.downcast::<ContainerError>() {
                Ok(c) => *c,
                Err(other) => ContainerError::Io(io::Error::other(other)),
            }
        } else {
            ContainerError::Io(e)
        }
    }
}

impl ContainerError {
    fn into_io(self) -> io::Error {
        match self {
            ContainerError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// What kind of file an input is, judged from its first bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum InputKind {
    /// An age file (a Driveback backup, or at least encrypted like one).
    Backup,
    /// A plain `mongodump --archive` file.
    MongodumpArchive,
    /// A `mongodump --archive --gzip` file.
    GzipMongodumpArchive,
    Unknown,
}

pub fn sniff(first_bytes: &[u8]) -> InputKind {
    // A file cut inside the age magic line is still a (truncated) backup.
    let age_prefix = first_bytes.len() >= 4 && AGE_MAGIC.starts_with(first_bytes);
    if first_bytes.starts_with(AGE_MAGIC) || age_prefix {
        InputKind::Backup
    } else if first_bytes.starts_with(&MONGODUMP_ARCHIVE_MAGIC) {
        InputKind::MongodumpArchive
    } else if first_bytes.starts_with(&GZIP_MAGIC) {
        InputKind::GzipMongodumpArchive
    } else {
        InputKind::Unknown
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Takes the mongodump archive bytes (through `Write`) and writes the encrypted backup file to
/// the sink. Memory stays bounded: zstd and age both stream.
pub struct BackupWriter<W: Write> {
    encoder: zstd::stream::write::Encoder<'static, age::stream::StreamWriter<W>>,
}

impl<W: Write> BackupWriter<W> {
    pub fn new(
        sink: W,
        recipient: &age::x25519::Recipient,
        zstd_level: i32,
    ) -> Result<Self, ContainerError> {
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
                .expect("an X25519 recipient can always wrap a file key");
        let stream = encryptor.wrap_output(sink).map_err(ContainerError::Io)?;
        let mut encoder =
            zstd::stream::write::Encoder::new(stream, zstd_level).map_err(ContainerError::Io)?;
        // The frame checksum lets `zstd -d` confirm the archive on its own as well.
        encoder.include_checksum(true).map_err(ContainerError::Io)?;
        Ok(Self { encoder })
    }

    /// Ends the archive's zstd frame, appends the manifest frame, finishes the age stream,
    /// flushes and returns the sink.
    pub fn finish(self, manifest: &Manifest) -> Result<W, ContainerError> {
        let json = manifest.to_json();
        if json.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::Corrupt(format!(
                "it would be {} bytes long (at most {MAX_MANIFEST_BYTES} allowed)",
                json.len()
            ))
            .into());
        }
        let mut stream = self.encoder.finish().map_err(ContainerError::Io)?;
        let payload_len = (MANIFEST_PREFIX.len() + json.len()) as u32;
        stream
            .write_all(&MANIFEST_FRAME_MAGIC.to_le_bytes())
            .and_then(|_| stream.write_all(&payload_len.to_le_bytes()))
            .and_then(|_| stream.write_all(MANIFEST_PREFIX))
            .and_then(|_| stream.write_all(&json))
            .map_err(ContainerError::Io)?;
        let mut sink = stream.finish().map_err(ContainerError::Io)?;
        sink.flush().map_err(ContainerError::Io)?;
        Ok(sink)
    }
}

impl<W: Write> Write for BackupWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.encoder.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Flushing ends a zstd block early and costs compression; the file is only complete
        // after `finish` anyway.
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

/// What the counting reader shares with its owner: bytes consumed from the source, and whether
/// the source itself failed (so its errors are not mistaken for damage).
#[derive(Default)]
struct SourceState {
    consumed: AtomicU64,
    failed: AtomicBool,
    /// The first bytes seen, to tell a damaged backup from a foreign file.
    head: Mutex<Vec<u8>>,
}

struct CountingReader<R> {
    inner: R,
    state: Arc<SourceState>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                if self.state.consumed.load(Ordering::Relaxed) < AGE_MAGIC.len() as u64 {
                    let mut head = self.state.head.lock().unwrap_or_else(|p| p.into_inner());
                    let take = AGE_MAGIC.len().saturating_sub(head.len()).min(n);
                    head.extend_from_slice(&buf[..take]);
                }
                self.state.consumed.fetch_add(n as u64, Ordering::Relaxed);
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.state.failed.store(true, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }
}

type PlainStream<R> = BufReader<age::stream::StreamReader<CountingReader<R>>>;

/// Yields the decrypted, decompressed mongodump archive of a backup file; [`finish`] then
/// reads the manifest at its end.
///
/// Errors from `Read` are `io::Error`s carrying a [`ContainerError`]; convert them back with
/// `ContainerError::from`.
///
/// [`finish`]: BackupReader::finish
pub struct BackupReader<R: Read> {
    decoder: zstd::stream::read::Decoder<'static, PlainStream<R>>,
    state: Arc<SourceState>,
}

impl<R: Read> BackupReader<R> {
    /// Reads and checks the age header; fails with `WrongKey` if the backup was made for
    /// another key.
    pub fn open(src: R, identity: &age::x25519::Identity) -> Result<Self, ContainerError> {
        let state = Arc::new(SourceState::default());
        let counting = CountingReader {
            inner: src,
            state: state.clone(),
        };
        let decryptor = age::Decryptor::new(counting).map_err(|e| header_error(e, &state))?;
        if decryptor.is_scrypt() {
            // Backups are never passphrase-encrypted: this is some other age file.
            return Err(ContainerError::NotABackup);
        }
        let stream = decryptor
            .decrypt(std::iter::once(identity as &dyn age::Identity))
            .map_err(|e| header_error(e, &state))?;
        let mut decoder = zstd::stream::read::Decoder::with_buffer(BufReader::new(stream))
            .map_err(ContainerError::Io)?
            .single_frame();
        // The frame header names the window the decoder allocates: bound it (level 19, the
        // highest Driveback writes, uses 8 MiB), so a crafted file cannot claim 128 MiB or more.
        decoder
            .window_log_max(MAX_WINDOW_LOG)
            .map_err(ContainerError::Io)?;
        Ok(Self { decoder, state })
    }

    /// Encrypted bytes consumed from the source so far.
    pub fn offset(&self) -> u64 {
        self.state.consumed.load(Ordering::Relaxed)
    }

    /// Reads the rest of the archive (discarding it) and then the manifest frame; checks that
    /// nothing follows it and that the age stream ends properly.
    pub fn finish(mut self) -> Result<Manifest, ContainerError> {
        io::copy(&mut self, &mut io::sink()).map_err(ContainerError::from)?;
        let state = self.state.clone();
        let mut plain = self.decoder.finish();
        let fail = |e: io::Error| classify(e, &state);

        let mut header = [0u8; 8];
        let got = read_up_to(&mut plain, &mut header).map_err(fail)?;
        if got == 0 {
            return Err(ContainerError::MissingManifest);
        }
        let corrupt = || ContainerError::Corrupt {
            offset: state.consumed.load(Ordering::Relaxed),
        };
        if got < header.len() {
            return Err(corrupt());
        }
        let magic = u32::from_le_bytes(header[..4].try_into().unwrap());
        let len = u32::from_le_bytes(header[4..].try_into().unwrap()) as usize;
        if magic != MANIFEST_FRAME_MAGIC {
            return Err(corrupt());
        }
        if len < MANIFEST_PREFIX.len() || len > MANIFEST_PREFIX.len() + MAX_MANIFEST_BYTES {
            return Err(corrupt());
        }
        // The length is bounded above; grow the buffer as bytes arrive rather than trusting it.
        let mut payload = Vec::new();
        (&mut plain)
            .take(len as u64)
            .read_to_end(&mut payload)
            .map_err(fail)?;
        if payload.len() != len || !payload.starts_with(MANIFEST_PREFIX) {
            return Err(corrupt());
        }
        // Reading to the end makes age authenticate the final chunk (and so the file's length).
        let mut rest = [0u8; 1];
        if read_up_to(&mut plain, &mut rest).map_err(fail)? != 0 {
            return Err(corrupt());
        }
        Ok(Manifest::from_json(&payload[MANIFEST_PREFIX.len()..])?)
    }
}

impl<R: Read> Read for BackupReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.decoder
            .read(buf)
            .map_err(|e| classify(e, &self.state).into_io())
    }
}

/// Reads a whole backup through to its manifest, discarding the archive (a quick integrity
/// check: every byte is authenticated and decompressed).
pub fn read_manifest<R: Read>(
    src: R,
    identity: &age::x25519::Identity,
) -> Result<Manifest, ContainerError> {
    BackupReader::open(src, identity)?.finish()
}

/// An error while reading: the source's own failures stay I/O errors; everything else (age
/// authentication, truncation, zstd) means the file is damaged.
fn classify(e: io::Error, state: &SourceState) -> ContainerError {
    if e.get_ref()
        .is_some_and(|inner| inner.is::<ContainerError>())
    {
        return ContainerError::from(e);
    }
    if state.failed.load(Ordering::Relaxed) {
        return ContainerError::Io(e);
    }
    let offset = state.consumed.load(Ordering::Relaxed);
    tracing::debug!(offset, error = %e, "backup file failed to decode");
    ContainerError::Corrupt { offset }
}

fn header_error(e: age::DecryptError, state: &SourceState) -> ContainerError {
    use age::DecryptError as D;
    if state.failed.load(Ordering::Relaxed) {
        if let D::Io(e) = e {
            return ContainerError::Io(e);
        }
    }
    let looks_like_age = {
        let head = state.head.lock().unwrap_or_else(|p| p.into_inner());
        // A file cut short inside the magic line still counts as a (truncated) backup.
        !head.is_empty() && (head.starts_with(AGE_MAGIC) || AGE_MAGIC.starts_with(&head))
    };
    let full_magic = state
        .head
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .starts_with(AGE_MAGIC);
    match e {
        D::NoMatchingKeys => ContainerError::WrongKey,
        _ if !looks_like_age => ContainerError::NotABackup,
        D::UnknownFormat if !full_magic => ContainerError::NotABackup,
        _ => ContainerError::Corrupt {
            offset: state.consumed.load(Ordering::Relaxed),
        },
    }
}

/// Like `read_exact`, but stops quietly at the end of input and returns how much it read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::sample_manifest;
    use rand::RngCore;

    /// Plaintext age chunk size and its encrypted size (chunk + 16-byte tag).
    const CHUNK: usize = 64 * 1024;
    const ENCRYPTED_CHUNK: usize = CHUNK + 16;

    fn key() -> age::x25519::Identity {
        age::x25519::Identity::generate()
    }

    /// Some data with both incompressible and compressible parts.
    fn sample_archive(len: usize) -> Vec<u8> {
        let mut data = Vec::with_capacity(len);
        data.extend_from_slice(&MONGODUMP_ARCHIVE_MAGIC);
        let mut random = vec![0u8; len / 2];
        rand::thread_rng().fill_bytes(&mut random);
        data.extend_from_slice(&random);
        let mut i = 0u32;
        while data.len() < len {
            data.extend_from_slice(format!("{{\"_id\": {i}, \"name\": \"item\"}}").as_bytes());
            i += 1;
        }
        data.truncate(len);
        data
    }

    fn make_backup(
        archive: &[u8],
        identity: &age::x25519::Identity,
        manifest: &Manifest,
    ) -> Vec<u8> {
        let mut w = BackupWriter::new(Vec::new(), &identity.to_public(), 3).unwrap();
        // Write in uneven pieces, as an exporter would.
        for piece in archive.chunks(7777) {
            w.write_all(piece).unwrap();
        }
        w.finish(manifest).unwrap()
    }

    fn read_all(
        file: &[u8],
        identity: &age::x25519::Identity,
    ) -> Result<(Vec<u8>, Manifest), ContainerError> {
        let mut r = BackupReader::open(file, identity)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok((out, r.finish()?))
    }

    /// The length of the age header plus payload nonce, i.e. where the first chunk starts.
    fn payload_start(file: &[u8]) -> usize {
        let end = file.windows(4).position(|w| w == b"\n---").unwrap();
        let header_end = end + 1 + file[end + 1..].iter().position(|&b| b == b'\n').unwrap() + 1;
        header_end + 16
    }

    #[test]
    fn round_trip_restores_archive_and_manifest() {
        let id = key();
        let manifest = sample_manifest();
        for len in [0, 1, 1000, CHUNK, 3 * CHUNK + 123, 1_500_000] {
            let archive = sample_archive(len);
            let file = make_backup(&archive, &id, &manifest);
            assert_eq!(sniff(&file), InputKind::Backup);

            let mut r = BackupReader::open(&file[..], &id).unwrap();
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out.len(), archive.len());
            assert!(out == archive, "archive differs for length {len}");
            assert_eq!(r.finish().unwrap(), manifest);

            assert_eq!(read_manifest(&file[..], &id).unwrap(), manifest);
        }
    }

    #[test]
    fn finish_without_reading_the_archive_still_finds_the_manifest() {
        let id = key();
        let file = make_backup(&sample_archive(200_000), &id, &sample_manifest());
        let mut r = BackupReader::open(&file[..], &id).unwrap();
        let mut first = [0u8; 10];
        r.read_exact(&mut first).unwrap();
        assert_eq!(sniff(&first), InputKind::MongodumpArchive);
        assert_eq!(r.finish().unwrap(), sample_manifest());
    }

    #[test]
    fn offset_counts_encrypted_bytes_consumed() {
        let id = key();
        let file = make_backup(&sample_archive(300_000), &id, &sample_manifest());
        let mut r = BackupReader::open(&file[..], &id).unwrap();
        let after_header = r.offset();
        // The header (about 200 bytes) and a little read-ahead, nowhere near the whole file.
        assert!(after_header > 0 && after_header < 1024, "{after_header}");
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert!(r.offset() > after_header);
        assert!(r.offset() <= file.len() as u64);
    }

    #[test]
    fn compression_makes_compressible_archives_smaller() {
        let id = key();
        let archive: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("{{\"n\":{}}}", i % 100).into_bytes())
            .collect();
        let file = make_backup(&archive, &id, &sample_manifest());
        assert!(
            file.len() * 10 < archive.len(),
            "{} vs {}",
            file.len(),
            archive.len()
        );
    }

    #[test]
    fn another_key_is_reported_as_wrong_key() {
        let file = make_backup(b"archive", &key(), &sample_manifest());
        let err = BackupReader::open(&file[..], &key()).err().unwrap();
        assert!(matches!(err, ContainerError::WrongKey), "{err:?}");
        assert!(err.to_string().contains("different backup key"));
        assert!(matches!(
            read_manifest(&file[..], &key()),
            Err(ContainerError::WrongKey)
        ));
    }

    #[test]
    fn truncated_files_are_corrupt_at_an_offset() {
        let id = key();
        let file = make_backup(&sample_archive(8 * CHUNK + 500), &id, &sample_manifest());
        assert!(file.len() > payload_start(&file) + 3 * ENCRYPTED_CHUNK);
        let start = payload_start(&file);
        let cuts = [
            5,                               // inside the magic line
            40,                              // inside the header
            start - 3,                       // inside the nonce
            start,                           // no payload at all
            start + 100,                     // inside the first chunk
            start + ENCRYPTED_CHUNK,         // exactly at a chunk boundary
            start + 2 * ENCRYPTED_CHUNK + 1, // just after a boundary
            file.len() - 17,                 // the final chunk's tag cut off
            file.len() - 1,                  // the very last byte missing
        ];
        for cut in cuts {
            let truncated = &file[..cut];
            let err = read_all(truncated, &id)
                .err()
                .unwrap_or_else(|| panic!("cut {cut} read fine"));
            match err {
                ContainerError::Corrupt { offset } => {
                    assert!(offset <= cut as u64, "cut {cut}: offset {offset}");
                    assert!(
                        err.to_string()
                            == format!(
                                "the backup file is corrupt or truncated at offset {offset}"
                            )
                    );
                }
                other => panic!("cut {cut}: {other:?}"),
            }
            // The quick check says the same.
            assert!(matches!(
                read_manifest(truncated, &id),
                Err(ContainerError::Corrupt { .. })
            ));
        }
    }

    #[test]
    fn a_file_cut_after_its_archive_frame_is_reported_as_unfinished() {
        // What a writer that never appended the manifest would leave: a valid age stream with
        // only the archive frame.
        let id = key();
        let encryptor = age::Encryptor::with_recipients(std::iter::once(
            &id.to_public() as &dyn age::Recipient
        ))
        .unwrap();
        let stream = encryptor.wrap_output(Vec::new()).unwrap();
        let mut z = zstd::stream::write::Encoder::new(stream, 3).unwrap();
        z.write_all(b"some archive").unwrap();
        let file = z.finish().unwrap().finish().unwrap();

        let err = read_all(&file, &id).err().unwrap();
        assert!(matches!(err, ContainerError::MissingManifest), "{err:?}");
        assert_eq!(
            err.to_string(),
            "the backup is incomplete: its manifest is missing (it was never finished)"
        );
    }

    #[test]
    fn a_flipped_byte_is_corruption() {
        let id = key();
        let file = make_backup(&sample_archive(2 * CHUNK), &id, &sample_manifest());
        let start = payload_start(&file);
        for pos in [
            start + 1,
            start + CHUNK,
            file.len() / 2,
            file.len() - 30,
            file.len() - 1,
        ] {
            let mut damaged = file.clone();
            damaged[pos] ^= 0x20;
            let err = read_all(&damaged, &id).err().unwrap();
            match err {
                ContainerError::Corrupt { offset } => {
                    // The damage is found in the chunk holding it.
                    assert!(
                        offset as usize >= pos.min(file.len()) - (pos - start) % ENCRYPTED_CHUNK
                    );
                }
                other => panic!("flip at {pos}: {other:?}"),
            }
        }
        // In the header: its MAC no longer matches.
        let mut damaged = file.clone();
        let mac_pos = start - 16 - 5;
        damaged[mac_pos] ^= 0x01;
        assert!(matches!(
            BackupReader::open(&damaged[..], &id).err().unwrap(),
            ContainerError::Corrupt { .. }
        ));
    }

    #[test]
    fn foreign_files_are_not_backups() {
        let id = key();
        let plain_archive = sample_archive(1000);
        let gzip = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0];
        let passphrase_file = {
            let mut r = age::scrypt::Recipient::new("pw".into());
            r.set_work_factor(2);
            age::encrypt(&r, b"hello").unwrap()
        };
        for (what, bytes) in [
            ("empty", &b""[..]),
            ("text", &b"hello, this is a text file\n"[..]),
            ("mongodump archive", &plain_archive[..]),
            ("gzip", &gzip[..]),
            ("passphrase-encrypted age file", &passphrase_file[..]),
        ] {
            let err = BackupReader::open(bytes, &id).err().unwrap();
            assert!(matches!(err, ContainerError::NotABackup), "{what}: {err:?}");
            assert_eq!(err.to_string(), "this file is not a Driveback backup");
        }
    }

    #[test]
    fn manifest_from_a_newer_driveback_is_refused_with_advice() {
        let id = key();
        let mut manifest = sample_manifest();
        manifest.format_version = 99;
        let file = make_backup(b"archive", &id, &manifest);
        let err = read_manifest(&file[..], &id).unwrap_err();
        assert!(
            matches!(
                err,
                ContainerError::Manifest(ManifestError::UnknownVersion(99))
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "this backup was made by a newer Driveback (format version 99); update Driveback to restore it"
        );
    }

    #[test]
    fn errors_of_the_source_stay_io_errors() {
        struct Failing<'a> {
            data: &'a [u8],
            fail_at: usize,
            pos: usize,
        }
        impl Read for Failing<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.pos >= self.fail_at {
                    return Err(io::Error::other("the network went away"));
                }
                let n = buf
                    .len()
                    .min(self.fail_at - self.pos)
                    .min(self.data.len() - self.pos);
                buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
                self.pos += n;
                Ok(n)
            }
        }
        let id = key();
        let file = make_backup(&sample_archive(3 * CHUNK), &id, &sample_manifest());
        for fail_at in [10, file.len() / 2] {
            let src = Failing {
                data: &file,
                fail_at,
                pos: 0,
            };
            let err = read_manifest(src, &id).unwrap_err();
            assert!(matches!(err, ContainerError::Io(_)), "{err:?}");
            assert_eq!(err.to_string(), "the network went away");
        }
    }

    #[test]
    fn read_errors_convert_back_to_container_errors() {
        let id = key();
        let file = make_backup(&sample_archive(3 * CHUNK), &id, &sample_manifest());
        let mut damaged = file.clone();
        let mid = damaged.len() / 2;
        damaged[mid] ^= 1;
        let mut r = BackupReader::open(&damaged[..], &id).unwrap();
        let e = io::copy(&mut r, &mut io::sink()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(
            ContainerError::from(e),
            ContainerError::Corrupt { .. }
        ));
    }

    #[test]
    fn sniff_tells_inputs_apart() {
        assert_eq!(
            sniff(b"age-encryption.org/v1\n-> X25519 abc"),
            InputKind::Backup
        );
        assert_eq!(
            sniff(&[0x6d, 0xe2, 0x99, 0x81, 1, 0]),
            InputKind::MongodumpArchive
        );
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), InputKind::GzipMongodumpArchive);
        assert_eq!(sniff(b"{\"json\": true}"), InputKind::Unknown);
        assert_eq!(sniff(b""), InputKind::Unknown);
        // A backup cut inside its magic line is still recognised, so the error says "truncated".
        assert_eq!(sniff(b"age-enc"), InputKind::Backup);
        assert_eq!(sniff(b"age"), InputKind::Unknown);
        assert_eq!(sniff(b"age-encryption.org/v2\n"), InputKind::Unknown);
    }

    /// The promise that backups can be restored without Driveback: the real `age` and `zstd`
    /// command-line tools decrypt and decompress them. Fails if the tools are missing.
    #[test]
    fn standard_tools_decrypt_and_decompress_a_backup() {
        use std::process::{Command, Stdio};
        for tool in ["age", "zstd"] {
            let ok = Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "the `{tool}` command-line tool is needed for this test");
        }
        let dir = tempfile::tempdir().unwrap();
        let id = key();
        let archive = sample_archive(700_000);
        let file = make_backup(&archive, &id, &sample_manifest());
        let key_path = dir.path().join("key.txt");
        let backup_path = dir.path().join("backup.mdbk");
        std::fs::write(
            &key_path,
            format!(
                "{}\n",
                secrecy::ExposeSecret::expose_secret(&id.to_string())
            ),
        )
        .unwrap();
        std::fs::write(&backup_path, &file).unwrap();

        // age -d -i key.txt backup.mdbk | zstd -d
        let mut age_cmd = Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&key_path)
            .arg(&backup_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = Command::new("zstd")
            .args(["-d", "-q", "-c"])
            .stdin(Stdio::from(age_cmd.stdout.take().unwrap()))
            .output()
            .unwrap();
        let age_out = age_cmd.wait_with_output().unwrap();
        assert!(
            age_out.status.success(),
            "age failed: {}",
            String::from_utf8_lossy(&age_out.stderr)
        );
        assert!(
            output.status.success(),
            "zstd failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(output.stdout.len(), archive.len());
        assert!(
            output.stdout == archive,
            "the tools' output differs from the archive"
        );
    }
}
