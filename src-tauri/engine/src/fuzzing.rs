//! Entry points for the fuzz targets in `fuzz/` and for the test that replays their corpora
//! (`tests/fuzz_corpus.rs`), so both drive exactly the same code.
//!
//! Each takes arbitrary bytes, must never panic, and returns what it found so that callers can
//! count outcomes. Memory stays bounded whatever the input claims: length prefixes are checked
//! against [`MAX_DOCUMENT_BYTES`] and [`MAX_MANIFEST_BYTES`] before anything is allocated, and
//! the zstd window against [`crate::container::MAX_WINDOW_LOG`].

use std::io::{Read, Write};

use crate::archive::{ArchiveReader, Item, MAX_DOCUMENT_BYTES};
use crate::container::BackupReader;
use crate::manifest::{Manifest, MAX_COLLECTIONS, MAX_MANIFEST_BYTES};

/// Whether an input was accepted or refused (refusals are the expected outcome for most).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Refused,
}

/// Reads `data` as a mongodump archive to its end, as a restore does.
pub fn archive(data: &[u8]) -> Outcome {
    let Ok(mut reader) = ArchiveReader::new(data) else {
        return Outcome::Refused;
    };
    let namespaces = reader.namespaces().len();
    loop {
        match reader.next_item() {
            Ok(Some(Item::Document { ns, raw })) => {
                assert!(ns < namespaces, "a document of an unknown namespace");
                assert!(raw.len() <= MAX_DOCUMENT_BYTES && raw.len() <= data.len());
            }
            Ok(Some(Item::EndOfNamespace { ns, .. })) => assert!(ns < namespaces),
            Ok(None) => return Outcome::Accepted,
            Err(_) => {
                // Once failed, a reader stays failed.
                assert!(reader.next_item().is_err());
                return Outcome::Refused;
            }
        }
    }
}

/// Parses `data` as a backup manifest; what parses must write back and parse the same.
pub fn manifest(data: &[u8]) -> Outcome {
    match Manifest::from_json(data) {
        Ok(m) => {
            assert!(data.len() <= MAX_MANIFEST_BYTES && m.collections.len() <= MAX_COLLECTIONS);
            // What the app and the CLI show of a backup they are about to restore.
            let _ = (m.total_documents(), m.total_bytes());
            let again = Manifest::from_json(&m.to_json()).expect("a manifest it wrote reads back");
            assert_eq!(again, m);
            Outcome::Accepted
        }
        Err(_) => Outcome::Refused,
    }
}

/// The key the container target encrypts with, one per process (fuzzing the age header itself
/// would only fuzz the age crate: what Driveback parses is the decrypted payload).
fn fuzz_key() -> &'static age::x25519::Identity {
    static KEY: std::sync::OnceLock<age::x25519::Identity> = std::sync::OnceLock::new();
    KEY.get_or_init(age::x25519::Identity::generate)
}

/// `data` as the decrypted payload of a backup file (zstd frame + manifest frame): encrypts it
/// to a fixed key and reads it back the way a restore does, archive and manifest.
pub fn container_payload(data: &[u8]) -> Outcome {
    let identity = fuzz_key();
    let file = encrypt(data, &identity.to_public());
    let Ok(mut reader) = BackupReader::open(&file[..], identity) else {
        return Outcome::Refused;
    };
    // Through the archive reader, as a restore reads it, then the manifest.
    let mut sink = [0u8; 64 * 1024];
    loop {
        match reader.read(&mut sink) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => return Outcome::Refused,
        }
    }
    match reader.finish() {
        Ok(_) => Outcome::Accepted,
        Err(_) => Outcome::Refused,
    }
}

/// Encrypts `payload` as the age layer of a backup file.
pub fn encrypt(payload: &[u8], recipient: &age::x25519::Recipient) -> Vec<u8> {
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
            .expect("an X25519 recipient");
    let mut out = Vec::with_capacity(payload.len() + 256);
    let mut w = encryptor.wrap_output(&mut out).expect("in memory");
    w.write_all(payload).expect("in memory");
    w.finish().expect("in memory");
    out
}

/// One fuzz target's entry point.
pub type Target = fn(&[u8]) -> Outcome;

/// The fuzz targets by name, for the corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("archive", archive),
    ("manifest", manifest),
    ("container", container_payload),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container;

    #[test]
    fn a_zstd_window_beyond_the_bound_is_refused_not_allocated() {
        let frame = |window_log: u32| {
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            e.set_parameter(zstd::zstd_safe::CParameter::WindowLog(window_log))
                .unwrap();
            e.write_all(&[7u8; 100_000]).unwrap();
            e.finish().unwrap()
        };
        // The same content: accepted with the largest allowed window, refused with 128 MiB.
        let read = |payload: &[u8]| {
            let identity = fuzz_key();
            let file = encrypt(payload, &identity.to_public());
            let mut r = BackupReader::open(&file[..], identity).unwrap();
            let mut out = Vec::new();
            r.read_to_end(&mut out).map(|_| out.len())
        };
        assert_eq!(read(&frame(container::MAX_WINDOW_LOG)).unwrap(), 100_000);
        let err = read(&frame(27)).unwrap_err();
        assert!(
            matches!(
                container::ContainerError::from(err),
                container::ContainerError::Corrupt { .. }
            ),
            "a 128 MiB window is damage"
        );
    }

    #[test]
    fn lengths_claiming_terabytes_are_refused_before_allocating() {
        // An archive whose header document claims 2 GiB.
        let mut a = crate::archive::ARCHIVE_MAGIC.to_vec();
        a.extend_from_slice(&i32::MAX.to_le_bytes());
        a.extend_from_slice(&[0u8; 64]);
        assert_eq!(archive(&a), Outcome::Refused);
        // A manifest frame claiming 4 GiB.
        let mut p = zstd::encode_all(&b"x"[..], 3).unwrap();
        p.extend_from_slice(&container::MANIFEST_FRAME_MAGIC.to_le_bytes());
        p.extend_from_slice(&u32::MAX.to_le_bytes());
        p.extend_from_slice(container::MANIFEST_PREFIX);
        assert_eq!(container_payload(&p), Outcome::Refused);
    }
}
