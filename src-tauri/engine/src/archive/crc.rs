//! CRC-64 as mongodump computes it for each namespace of an archive.
//!
//! mongodump uses Go's `hash/crc64` with the ECMA table. That is the catalogued CRC-64/XZ
//! (reflected ECMA-182 polynomial, initial value and final XOR all ones), whose check value over the
//! ASCII bytes `123456789` is `0x995dc9bbdf1939fa`.

use crc::{Crc, Digest, Table, CRC_64_XZ};

/// Slice-by-16 tables: several GB/s, so the checksum never limits a backup.
static CRC64_XZ: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_XZ);

/// The CRC-64/XZ of `bytes` at once.
pub fn checksum(bytes: &[u8]) -> u64 {
    CRC64_XZ.checksum(bytes)
}

/// A digest of a set of documents that does not depend on their order: the count and the
/// wrapping sum and XOR of each document's CRC-64. A restore test compares what the backup held
/// with what the server gives back, in whatever order it does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DocSet {
    pub count: u64,
    pub sum: u64,
    pub xor: u64,
}

impl DocSet {
    pub fn add(&mut self, raw: &[u8]) {
        let c = checksum(raw);
        self.count += 1;
        self.sum = self.sum.wrapping_add(c);
        self.xor ^= c.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Streaming CRC-64/XZ (Go's `crc64.ECMA`), fed the raw BSON bytes of a namespace's documents.
#[derive(Clone)]
pub struct Crc64 {
    digest: Digest<'static, u64, Table<16>>,
}

impl Crc64 {
    pub fn new() -> Self {
        Crc64 {
            digest: CRC64_XZ.digest(),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.digest.update(bytes);
    }

    /// The CRC of everything fed so far (the digest can keep being updated afterwards).
    pub fn value(&self) -> u64 {
        self.digest.clone().finalize()
    }
}

impl Default for Crc64 {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Crc64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Crc64({:#018x})", self.value())
    }
}

/// One-shot CRC-64/XZ of `bytes`.
pub fn crc64(bytes: &[u8]) -> u64 {
    CRC64_XZ.checksum(bytes)
}
