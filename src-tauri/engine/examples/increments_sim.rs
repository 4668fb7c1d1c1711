//! The measurement that chooses the incremental layout (issue 18; results in docs/INCREMENTAL.md).
//!
//! A deterministic simulation (seeded RNG, no server, no network) of a TimeTrack-like database
//! over 30 days: 200,000 time entries of about 300 bytes of BSON each, shaped like the
//! `timeEntries` of scripts/seed.py and kept in `_id` order; each day 1% of the documents are
//! updated at random (a field or two and `updatedAt`, same `_id`), 0.5% inserted (new ObjectIds,
//! which sort last) and 0.1% deleted; then every candidate layout "backs up" the day's state, the
//! engine's own retention plan (`retention::plan`, the default policy unless `--policy`) picks
//! the backups to keep, and each candidate deletes or merges what the retained set no longer
//! needs. Every day the newest backup of every candidate is restored in memory and compared byte
//! for byte with the database.
//!
//! Candidates:
//! - `full-L10`, `full-L3`: today's layout, one zstd stream of all documents per backup.
//! - `doc-incr T keep|merge`: the first backup full; each next one holds the documents whose
//!   bytes changed or are new since the previous backup and the deleted `_id`s, found by
//!   comparing 8 bytes of SHA-256 per document with a local index in `_id` order; a new full when
//!   the chain's increments add up to T x the chain's full. A forgotten backup that a retained one
//!   depends on is kept unlisted (`keep`) or merged into its successor (`merge`, re-uploaded).
//! - `cdc A`: the documents in `_id` order cut into content-defined chunks (fastcdc v2020, average
//!   A, min A/4, max 4A, each cut moved to the next document boundary), each chunk compressed
//!   alone and stored once by its SHA-256, packed into files of at most 16 MiB; a backup is its
//!   list of chunk hashes, plus an index delta (hash, pack, offset, length of the new chunks).
//!   Held bytes count only the chunks the retained backups reference (exact garbage collection:
//!   a lower bound, real packs hold more until they are repacked).
//!
//! Sizes are those of the files at the destination: the compressed payload, plus a 1 KiB manifest
//! per backup file, plus age's exact overhead (checked against the age crate at start).
//!
//! Run (release; about two minutes on 2 cores):
//!   cargo run --release -p driveback-engine --example increments_sim [-- --days 30 --docs 200000
//!     --policy 7,0,1 --seed 42 --candidates full-L10,doc-incr,cdc]
//! `--policy daily,weekly,monthly` overrides the engine's default retention policy.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::time::Instant;

use bson::{oid::ObjectId, Bson, DateTime as BsonDateTime, Document};
use chrono::{DateTime, Duration, TimeZone, Utc};
use driveback_engine::manifest::{self, BackupStatus};
use driveback_engine::retention;
use driveback_engine::settings::RetentionPolicy;
use driveback_engine::store::StoredBackup;
use fastcdc::v2020::FastCDC;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

/// An ObjectId's 12 bytes: compared bytewise they sort like MongoDB sorts ObjectIds.
type Id = [u8; 12];

const MIB: f64 = 1024.0 * 1024.0;
/// The manifest frame every backup file carries (about 1 KiB of JSON).
const MANIFEST_BYTES: usize = 1024;
/// The zstd level of today's backups (`settings`' default) and of every increment and chunk.
const LEVEL: i32 = 10;
/// CDC pack files: new chunks are appended to packs of at most this many bytes.
const PACK_BYTES: usize = 16 << 20;
/// One entry of a CDC index: SHA-256, pack number, offset, length.
const CDC_INDEX_ENTRY: usize = 32 + 8 + 4 + 4;
/// One entry of the per-document index: the ObjectId and 8 bytes of the document's SHA-256.
const DOC_INDEX_ENTRY: usize = 12 + 8;

/// The size of an age v1 file with one X25519 recipient holding `payload` bytes: the header
/// (version line, one stanza, a random "grease" stanza of 0-200 bytes counted as its mean, MAC
/// line), the 16-byte nonce, a 16-byte tag per 64 KiB chunk.
fn age_size(payload: usize) -> u64 {
    let chunks = payload.div_ceil(64 * 1024).max(1);
    (168 + GREASE as usize + 16 + payload + 16 * chunks) as u64
}
const GREASE: u64 = 100;

/// `age_size` checked against the age crate the engine encrypts with.
fn check_age_size() {
    let key = age::x25519::Identity::generate();
    let recipient = key.to_public();
    for n in [0usize, 1, 1000, 65536, 65537, 300_000] {
        let mut out = Vec::new();
        let enc =
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .expect("recipient");
        let mut w = enc.wrap_output(&mut out).expect("wrap");
        w.write_all(&vec![7u8; n]).expect("write");
        w.finish().expect("finish");
        let len = out.len() as u64;
        assert!(
            len + GREASE >= age_size(n) && len <= age_size(n) + GREASE,
            "age size of {n} bytes: {len}, expected {} +- {GREASE}",
            age_size(n)
        );
    }
}

/// CPU seconds of this thread (the simulation is single-threaded).
#[cfg(unix)]
fn cpu_now() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
#[cfg(not(unix))]
fn cpu_now() -> f64 {
    use std::sync::OnceLock;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// The `_id` of a document this simulation wrote: the first element, an ObjectId.
fn doc_id(doc: &[u8]) -> Id {
    debug_assert_eq!(&doc[4..9], b"\x07_id\0");
    doc[9..21].try_into().unwrap()
}

/// Splits concatenated BSON documents.
fn split_docs(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        if data.is_empty() {
            return None;
        }
        let n = u32::from_le_bytes(data[..4].try_into().unwrap()) as usize;
        let (doc, rest) = data.split_at(n);
        data = rest;
        Some(doc)
    })
}

fn hash8(doc: &[u8]) -> u64 {
    u64::from_le_bytes(Sha256::digest(doc)[..8].try_into().unwrap())
}

fn compressor(level: i32) -> zstd::bulk::Compressor<'static> {
    let mut c = zstd::bulk::Compressor::new(level).expect("zstd");
    c.include_checksum(true).expect("zstd checksum");
    c
}

fn decompress(data: &[u8], capacity: usize) -> Vec<u8> {
    zstd::bulk::decompress(data, capacity).expect("decompress")
}

// ---------------------------------------------------------------------------------------------
// The database

/// The database as a backup reads it: the documents in `_id` order, concatenated.
struct Snapshot {
    data: Vec<u8>,
    /// `_id` and byte range of each document, in `_id` order.
    docs: Vec<(Id, usize, usize)>,
}

const PROJECTS: [&str; 7] = [
    "Website",
    "Mobile app",
    "Research",
    "Support",
    "Admin",
    "Marketing",
    "Infra",
];
const TAGS: [&str; 7] = [
    "deep-work",
    "meeting",
    "review",
    "bug",
    "planning",
    "call",
    "writing",
];
const NOTES: [&str; 10] = [
    "",
    "Follow up tomorrow.",
    "Waiting on review from the team.",
    "Focused morning, meetings after lunch.",
    "Blocked by the staging deploy.",
    "Pairing session with design.",
    "Customer call, notes in the ticket.",
    "Quick fix, needs a test.",
    "Planning for next sprint.",
    "Interrupted twice, moved the rest to Friday.",
];
const SOURCES: [&str; 3] = ["web", "mobile", "timer"];

struct Database {
    rng: StdRng,
    docs: BTreeMap<Id, Vec<u8>>,
    /// The same `_id`s in no order, to pick at random.
    ids: Vec<Id>,
    users: Vec<ObjectId>,
    projects: Vec<ObjectId>,
    counter: u32,
    serial: u64,
}

/// What one day changed (ground truth, to check the candidates against).
struct DayChange {
    /// Updated and inserted `_id`s, in `_id` order.
    changed: Vec<Id>,
    deleted: Vec<Id>,
}

impl Database {
    fn new(seed: u64, entries: usize, now: DateTime<Utc>) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let users_n = (entries / 200).max(10);
        let oid_at = |t: i64, c: u32| ObjectId::from_bytes(make_id(t as u32, c));
        let base = now - Duration::days(365);
        let users = (0..users_n as u32)
            .map(|i| oid_at(base.timestamp() + i as i64 * 60, i))
            .collect();
        let projects = (0..PROJECTS.len() as u32)
            .map(|i| oid_at(base.timestamp() + i as i64, 1_000_000 + i))
            .collect();
        let mut db = Database {
            rng: StdRng::seed_from_u64(rng.gen()),
            docs: BTreeMap::new(),
            ids: Vec::with_capacity(entries * 2),
            users,
            projects,
            counter: 2_000_000,
            serial: 0,
        };
        // Entries written over the past year, in time (so in `_id`) order.
        let span = 365 * 86_400 - 3_600;
        for i in 0..entries {
            let t = base.timestamp() + (i as i64 * span) / entries as i64;
            db.insert_at(t);
        }
        db
    }

    fn insert_at(&mut self, t: i64) {
        self.counter = (self.counter + 1) & 0x00ff_ffff;
        let id = make_id(t as u32, self.counter);
        let doc = self.entry(id, t);
        self.ids.push(id);
        assert!(self.docs.insert(id, doc).is_none());
    }

    /// A time entry like scripts/seed.py's, with refs, dates, a duration and a short note.
    fn entry(&mut self, id: Id, created: i64) -> Vec<u8> {
        let rng = &mut self.rng;
        let serial = self.serial;
        self.serial += 1;
        let p = rng.gen_range(0..PROJECTS.len());
        let start_ms = (created - rng.gen_range(0..8 * 3600)) * 1000;
        let minutes: i32 = rng.gen_range(5..=240);
        let mut tags: Vec<&str> = TAGS.to_vec();
        tags.shuffle(rng);
        tags.truncate(rng.gen_range(0..=3));
        let words: Vec<&str> = (0..rng.gen_range(1..=4))
            .map(|_| *TAGS.choose(rng).unwrap())
            .collect();
        let mut d = Document::new();
        d.insert("_id", ObjectId::from_bytes(id));
        d.insert("userId", *self.users.choose(rng).unwrap());
        d.insert("projectId", self.projects[p]);
        d.insert("project", PROJECTS[p]);
        d.insert(
            "description",
            format!("Task {}: {}", serial % 997, words.join(" ")),
        );
        d.insert("start", BsonDateTime::from_millis(start_ms));
        d.insert(
            "end",
            BsonDateTime::from_millis(start_ms + minutes as i64 * 60_000),
        );
        d.insert("durationMinutes", minutes);
        d.insert("billable", rng.gen_bool(0.6));
        d.insert("tags", tags);
        d.insert("note", *NOTES.choose(rng).unwrap());
        d.insert("source", *SOURCES.choose(rng).unwrap());
        d.insert("createdAt", BsonDateTime::from_millis(created * 1000));
        d.insert("updatedAt", BsonDateTime::from_millis(created * 1000));
        bson::to_vec(&d).expect("bson")
    }

    /// Updates 1%, inserts 0.5% and deletes 0.1% of the documents.
    fn day(&mut self, now: DateTime<Utc>) -> DayChange {
        let n = self.ids.len();
        let (updates, inserts, deletes) = (n / 100, n / 200, n / 1000);
        let picked = sample(&mut self.rng, n, updates + deletes).into_vec();
        let mut changed = BTreeSet::new();
        for &i in &picked[..updates] {
            let id = self.ids[i];
            let old = self.docs[&id].clone();
            let mut d = Document::from_reader(&old[..]).expect("bson");
            self.update(&mut d, now);
            let new = bson::to_vec(&d).expect("bson");
            assert_ne!(new, old);
            self.docs.insert(id, new);
            changed.insert(id);
        }
        let mut deleted = Vec::new();
        let mut gone: Vec<usize> = picked[updates..].to_vec();
        gone.sort_unstable_by(|a, b| b.cmp(a));
        for i in gone {
            let id = self.ids.swap_remove(i);
            self.docs.remove(&id);
            changed.remove(&id);
            deleted.push(id);
        }
        // Today's inserts: ObjectIds of today, after every existing one.
        let day_start = now.timestamp() - 86_400;
        let mut times: Vec<i64> = (0..inserts)
            .map(|_| day_start + self.rng.gen_range(0..86_400 - 7_200))
            .collect();
        times.sort_unstable();
        for t in times {
            self.insert_at(t);
            changed.insert(*self.ids.last().unwrap());
        }
        deleted.sort_unstable();
        DayChange {
            changed: changed.into_iter().collect(),
            deleted,
        }
    }

    /// Changes a field or two, and `updatedAt`.
    fn update(&mut self, d: &mut Document, now: DateTime<Utc>) {
        let rng = &mut self.rng;
        for _ in 0..rng.gen_range(1..=2) {
            match rng.gen_range(0..5) {
                0 => {
                    let minutes: i32 = rng.gen_range(5..=240);
                    let start = d.get_datetime("start").unwrap().timestamp_millis();
                    d.insert("durationMinutes", minutes);
                    d.insert(
                        "end",
                        BsonDateTime::from_millis(start + minutes as i64 * 60_000),
                    );
                }
                1 => {
                    let b = d.get_bool("billable").unwrap();
                    d.insert("billable", !b);
                }
                2 => {
                    d.insert("note", *NOTES.choose(rng).unwrap());
                }
                3 => {
                    let mut tags: Vec<&str> = TAGS.to_vec();
                    tags.shuffle(rng);
                    tags.truncate(rng.gen_range(0..=3));
                    d.insert("tags", tags);
                }
                _ => {
                    let p = rng.gen_range(0..PROJECTS.len());
                    d.insert("projectId", self.projects[p]);
                    d.insert("project", PROJECTS[p]);
                }
            }
        }
        let ms = now.timestamp_millis() - rng.gen_range(0..86_400_000);
        d.insert("updatedAt", Bson::DateTime(BsonDateTime::from_millis(ms)));
    }

    fn snapshot(&self) -> Snapshot {
        let bytes: usize = self.docs.values().map(Vec::len).sum();
        let mut data = Vec::with_capacity(bytes);
        let mut docs = Vec::with_capacity(self.docs.len());
        for (id, doc) in &self.docs {
            let start = data.len();
            data.extend_from_slice(doc);
            docs.push((*id, start, data.len()));
        }
        Snapshot { data, docs }
    }
}

fn make_id(ts: u32, counter: u32) -> Id {
    let mut b = [0u8; 12];
    b[..4].copy_from_slice(&ts.to_be_bytes());
    b[4..9].copy_from_slice(&[0x65, 0x3a, 0x9c, 0x11, 0x7e]);
    b[9..].copy_from_slice(&counter.to_be_bytes()[1..]);
    b
}

// ---------------------------------------------------------------------------------------------
// Candidates

/// What one backup (or one retention pass) cost at the destination.
#[derive(Default, Clone, Copy)]
struct Io {
    uploaded: u64,
    writes: u32,
    deletes: u32,
}

trait Candidate {
    fn name(&self) -> String;
    fn backup(&mut self, day: usize, snap: &Snapshot, io: &mut Io);
    /// Forgets the backups not in `keep` (the retention plan's kept set, newest included).
    fn retain(&mut self, keep: &BTreeSet<usize>, io: &mut Io);
    fn held(&self) -> u64;
    /// Restores the newest backup: its documents concatenated in `_id` order, and the bytes
    /// downloaded to do so.
    fn restore_newest(&self) -> (Vec<u8>, u64);
    /// What its indexes cost, for the summary.
    fn notes(&self, docs: usize) -> String;
    /// What the day really changed, for a candidate that finds it itself to check against.
    fn set_truth(&mut self, _changed: &[Id], _deleted: &[Id]) {}
}

/// Today's layout: one file per backup, each the whole database.
struct Full {
    level: i32,
    comp: zstd::bulk::Compressor<'static>,
    sizes: BTreeMap<usize, u64>,
    newest: Vec<u8>,
    raw: usize,
}

impl Full {
    fn new(level: i32) -> Self {
        Full {
            level,
            comp: compressor(level),
            sizes: BTreeMap::new(),
            newest: Vec::new(),
            raw: 0,
        }
    }
}

impl Candidate for Full {
    fn name(&self) -> String {
        format!("full-L{}", self.level)
    }
    fn backup(&mut self, day: usize, snap: &Snapshot, io: &mut Io) {
        self.newest = self.comp.compress(&snap.data).expect("zstd");
        self.raw = snap.data.len();
        let size = age_size(self.newest.len() + MANIFEST_BYTES);
        self.sizes.insert(day, size);
        io.uploaded += size;
        io.writes += 1;
    }
    fn retain(&mut self, keep: &BTreeSet<usize>, io: &mut Io) {
        let before = self.sizes.len();
        self.sizes.retain(|d, _| keep.contains(d));
        io.deletes += (before - self.sizes.len()) as u32;
    }
    fn held(&self) -> u64 {
        self.sizes.values().sum()
    }
    fn restore_newest(&self) -> (Vec<u8>, u64) {
        let size = *self.sizes.values().next_back().unwrap();
        (decompress(&self.newest, self.raw), size)
    }
    fn notes(&self, _docs: usize) -> String {
        "no index".into()
    }
}

/// A document-level backup: a full one, or the changes since the previous backup.
struct DocBackup {
    full: bool,
    /// The day of its chain's full backup.
    base: usize,
    /// Compressed payload: a full is the documents; an increment is
    /// `u32 n, n deleted _ids, changed documents`.
    blob: Vec<u8>,
    raw: usize,
    size: u64,
}

struct DocIncr {
    threshold: f64,
    merge: bool,
    comp: zstd::bulk::Compressor<'static>,
    /// The local index: `_id` and 8 bytes of SHA-256 of each document of the previous backup.
    index: Vec<(Id, u64)>,
    backups: BTreeMap<usize, DocBackup>,
    /// The backups the retention plan keeps (the listed ones); the others in `backups` are kept
    /// only because a listed one depends on them.
    listed: BTreeSet<usize>,
    chain_sum: u64,
    /// Ground truth of the day, checked against what the index finds.
    truth: Option<(Vec<Id>, Vec<Id>)>,
}

impl DocIncr {
    fn new(threshold: f64, merge: bool) -> Self {
        DocIncr {
            threshold,
            merge,
            comp: compressor(LEVEL),
            index: Vec::new(),
            backups: BTreeMap::new(),
            listed: BTreeSet::new(),
            chain_sum: 0,
            truth: None,
        }
    }

    fn encode_increment(&mut self, deleted: &[Id], changed: &[&[u8]]) -> (Vec<u8>, usize) {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(deleted.len() as u32).to_le_bytes());
        for id in deleted {
            raw.extend_from_slice(id);
        }
        for doc in changed {
            raw.extend_from_slice(doc);
        }
        (self.comp.compress(&raw).expect("zstd"), raw.len())
    }
}

/// An increment's deleted `_id`s and changed documents.
fn decode_increment(b: &DocBackup) -> (Vec<Id>, Vec<u8>) {
    let raw = decompress(&b.blob, b.raw);
    let n = u32::from_le_bytes(raw[..4].try_into().unwrap()) as usize;
    let ids = raw[4..4 + 12 * n]
        .chunks_exact(12)
        .map(|c| c.try_into().unwrap())
        .collect();
    (ids, raw[4 + 12 * n..].to_vec())
}

impl Candidate for DocIncr {
    fn name(&self) -> String {
        format!(
            "doc-incr {} {}",
            self.threshold,
            if self.merge { "merge" } else { "keep" }
        )
    }

    fn backup(&mut self, day: usize, snap: &Snapshot, io: &mut Io) {
        // Walk the documents and the index together, both in `_id` order.
        let mut index = Vec::with_capacity(snap.docs.len());
        let mut changed: Vec<&[u8]> = Vec::new();
        let mut changed_ids = Vec::new();
        let mut deleted = Vec::new();
        let mut old = self.index.iter().peekable();
        for &(id, s, e) in &snap.docs {
            let doc = &snap.data[s..e];
            let h = hash8(doc);
            while let Some(&&(oid, _)) = old.peek() {
                if oid < id {
                    deleted.push(oid);
                    old.next();
                } else {
                    break;
                }
            }
            let same = matches!(old.peek(), Some(&&(oid, oh)) if oid == id && oh == h);
            if matches!(old.peek(), Some(&&(oid, _)) if oid == id) {
                old.next();
            }
            if !same {
                changed.push(doc);
                changed_ids.push(id);
            }
            index.push((id, h));
        }
        deleted.extend(old.map(|&(id, _)| id));
        if let Some((truth_changed, truth_deleted)) = self.truth.take() {
            assert_eq!(changed_ids, truth_changed, "changed documents");
            assert_eq!(deleted, truth_deleted, "deleted documents");
        }

        let base = self.backups.values().next_back().map(|b| b.base);
        let base_size = base.map(|b| self.backups[&b].size).unwrap_or(0);
        let mut backup = None;
        if base.is_some() {
            let (blob, raw) = self.encode_increment(&deleted, &changed);
            let size = age_size(blob.len() + MANIFEST_BYTES);
            if (self.chain_sum + size) as f64 <= self.threshold * base_size as f64 {
                self.chain_sum += size;
                backup = Some(DocBackup {
                    full: false,
                    base: base.unwrap(),
                    blob,
                    raw,
                    size,
                });
            }
        }
        let backup = backup.unwrap_or_else(|| {
            self.chain_sum = 0;
            let blob = self.comp.compress(&snap.data).expect("zstd");
            let size = age_size(blob.len() + MANIFEST_BYTES);
            DocBackup {
                full: true,
                base: day,
                blob,
                raw: snap.data.len(),
                size,
            }
        });
        io.uploaded += backup.size;
        io.writes += 1;
        self.backups.insert(day, backup);
        self.listed.insert(day);
        self.index = index;
    }

    fn retain(&mut self, keep: &BTreeSet<usize>, io: &mut Io) {
        self.listed.retain(|d| keep.contains(d));
        // What the listed backups need: each one and its chain back to its full.
        let needed = |backups: &BTreeMap<usize, DocBackup>, listed: &BTreeSet<usize>| {
            let mut needed = BTreeSet::new();
            for &d in listed {
                let base = backups[&d].base;
                needed.extend(backups.range(base..=d).map(|(&k, _)| k));
            }
            needed
        };
        if self.merge {
            // A forgotten increment that a listed backup needs is merged into its successor
            // (the merged file is uploaded, the two old ones deleted).
            loop {
                let needed = needed(&self.backups, &self.listed);
                let forgotten = needed
                    .iter()
                    .copied()
                    .find(|d| !self.listed.contains(d) && !self.backups[d].full);
                let Some(f) = forgotten else { break };
                let s = *needed.range(f + 1..).next().expect("a successor");
                let (fb, sb) = (&self.backups[&f], &self.backups[&s]);
                let mut overlay: BTreeMap<Id, Option<Vec<u8>>> = BTreeMap::new();
                for b in [fb, sb] {
                    let (dels, docs) = decode_increment(b);
                    for id in dels {
                        overlay.insert(id, None);
                    }
                    for doc in split_docs(&docs) {
                        overlay.insert(doc_id(doc), Some(doc.to_vec()));
                    }
                }
                let dels: Vec<Id> = overlay
                    .iter()
                    .filter(|(_, v)| v.is_none())
                    .map(|(k, _)| *k)
                    .collect();
                let docs: Vec<&[u8]> = overlay.values().flatten().map(|v| &v[..]).collect();
                let base = sb.base;
                let (blob, raw) = self.encode_increment(&dels, &docs);
                let size = age_size(blob.len() + MANIFEST_BYTES);
                io.uploaded += size;
                io.writes += 1;
                io.deletes += 2;
                self.backups.remove(&f);
                self.backups.insert(
                    s,
                    DocBackup {
                        full: false,
                        base,
                        blob,
                        raw,
                        size,
                    },
                );
            }
        }
        let needed = needed(&self.backups, &self.listed);
        let before = self.backups.len();
        self.backups.retain(|d, _| needed.contains(d));
        io.deletes += (before - self.backups.len()) as u32;
    }

    fn held(&self) -> u64 {
        self.backups.values().map(|b| b.size).sum()
    }

    fn restore_newest(&self) -> (Vec<u8>, u64) {
        let (&newest, nb) = self.backups.iter().next_back().unwrap();
        let chain: Vec<&DocBackup> = self
            .backups
            .range(nb.base..=newest)
            .map(|(_, b)| b)
            .collect();
        let downloaded = chain.iter().map(|b| b.size).sum();
        // The increments folded into one overlay, then merged with the full in `_id` order: each
        // document of the restored database is written once.
        let mut overlay: BTreeMap<Id, Option<Vec<u8>>> = BTreeMap::new();
        for b in &chain[1..] {
            let (dels, docs) = decode_increment(b);
            for id in dels {
                overlay.insert(id, None);
            }
            for doc in split_docs(&docs) {
                overlay.insert(doc_id(doc), Some(doc.to_vec()));
            }
        }
        let full = decompress(&chain[0].blob, chain[0].raw);
        let mut out = Vec::with_capacity(full.len() + full.len() / 4);
        let mut ov = overlay.into_iter().peekable();
        for doc in split_docs(&full) {
            let id = doc_id(doc);
            while let Some((oid, _)) = ov.peek() {
                if *oid >= id {
                    break;
                }
                if let Some((_, Some(d))) = ov.next() {
                    out.extend_from_slice(&d);
                }
            }
            match ov.peek() {
                Some((oid, _)) if *oid == id => {
                    if let Some((_, Some(d))) = ov.next() {
                        out.extend_from_slice(&d);
                    }
                }
                _ => out.extend_from_slice(doc),
            }
        }
        for (_, d) in ov {
            if let Some(d) = d {
                out.extend_from_slice(&d);
            }
        }
        (out, downloaded)
    }

    fn set_truth(&mut self, changed: &[Id], deleted: &[Id]) {
        self.truth = Some((changed.to_vec(), deleted.to_vec()));
    }

    fn notes(&self, _docs: usize) -> String {
        let chain = self.backups.values().next_back().map(|b| b.base).unwrap();
        let chain_len = self.backups.range(chain..).count();
        format!(
            "index {} B/doc = {:.1} MiB per million documents ({:.1} MiB here, in memory as \
             {}-byte entries); newest restore reads a chain of {} file(s)",
            DOC_INDEX_ENTRY,
            DOC_INDEX_ENTRY as f64 * 1e6 / MIB,
            (self.index.len() * DOC_INDEX_ENTRY) as f64 / MIB,
            std::mem::size_of::<(Id, u64)>(),
            chain_len,
        )
    }
}

/// Content-defined chunks stored once by hash.
struct Cdc {
    avg: usize,
    comp: zstd::bulk::Compressor<'static>,
    chunks: HashMap<[u8; 32], (Vec<u8>, u32)>,
    /// Each backup's chunk list and the size of its list file.
    backups: BTreeMap<usize, (Vec<[u8; 32]>, u64)>,
    /// Document ends, rebuilt per snapshot.
    ends: Vec<usize>,
}

impl Cdc {
    fn new(avg: usize) -> Self {
        Cdc {
            avg,
            comp: compressor(LEVEL),
            chunks: HashMap::new(),
            backups: BTreeMap::new(),
            ends: Vec::new(),
        }
    }
}

impl Candidate for Cdc {
    fn name(&self) -> String {
        format!("cdc {}K", self.avg / 1024)
    }

    fn backup(&mut self, day: usize, snap: &Snapshot, io: &mut Io) {
        self.ends.clear();
        self.ends.extend(snap.docs.iter().map(|&(_, _, e)| e));
        let data = &snap.data;
        let chunker = FastCDC::new(data, self.avg / 4, self.avg, self.avg * 4);
        let mut list = Vec::new();
        let mut packs: Vec<usize> = vec![0];
        let mut new_chunks = 0usize;
        let mut start = 0;
        while start < data.len() {
            let (_, cut) = chunker.cut(start, data.len() - start);
            // The cut moved to the next document boundary (the chunker restarts from there).
            let end = self.ends[self.ends.partition_point(|&e| e < cut)];
            let chunk = &data[start..end];
            start = end;
            let h: [u8; 32] = Sha256::digest(chunk).into();
            list.push(h);
            if !self.chunks.contains_key(&h) {
                let c = self.comp.compress(chunk).expect("zstd");
                if *packs.last().unwrap() + c.len() > PACK_BYTES {
                    packs.push(0);
                }
                *packs.last_mut().unwrap() += c.len();
                new_chunks += 1;
                self.chunks.insert(h, (c, chunk.len() as u32));
            }
        }
        let packs: Vec<usize> = packs.into_iter().filter(|&p| p > 0).collect();
        let list_size = age_size(32 * list.len() + MANIFEST_BYTES);
        io.uploaded += packs.iter().map(|&p| age_size(p)).sum::<u64>()
            + list_size
            + age_size(new_chunks * CDC_INDEX_ENTRY);
        io.writes += packs.len() as u32 + 2;
        self.backups.insert(day, (list, list_size));
    }

    fn retain(&mut self, keep: &BTreeSet<usize>, io: &mut Io) {
        let before = self.backups.len();
        self.backups.retain(|d, _| keep.contains(d));
        io.deletes += (before - self.backups.len()) as u32;
        let referenced: HashSet<&[u8; 32]> =
            self.backups.values().flat_map(|(l, _)| l.iter()).collect();
        self.chunks.retain(|h, _| referenced.contains(h));
    }

    fn held(&self) -> u64 {
        let chunks: usize = self.chunks.values().map(|(c, _)| c.len()).sum();
        let packs = chunks.div_ceil(PACK_BYTES);
        let lists: u64 = self.backups.values().map(|(_, s)| s).sum();
        chunks as u64
            + packs as u64 * age_size(0)
            + 16 * chunks.div_ceil(65536) as u64
            + lists
            + age_size(self.chunks.len() * CDC_INDEX_ENTRY)
    }

    fn restore_newest(&self) -> (Vec<u8>, u64) {
        let (list, list_size) = self.backups.values().next_back().unwrap();
        let mut out = Vec::new();
        let mut downloaded = *list_size;
        let mut dec = zstd::bulk::Decompressor::new().expect("zstd");
        for h in list {
            let (c, raw) = &self.chunks[h];
            downloaded += c.len() as u64;
            out.extend_from_slice(&dec.decompress(c, *raw as usize).expect("zstd"));
        }
        (out, downloaded)
    }

    fn notes(&self, _docs: usize) -> String {
        let newest = self
            .backups
            .values()
            .next_back()
            .map(|(l, _)| l.len())
            .unwrap();
        format!(
            "{} chunks per backup, {} chunks held; index {:.1} MiB ({} B/chunk)",
            newest,
            self.chunks.len(),
            (self.chunks.len() * CDC_INDEX_ENTRY) as f64 / MIB,
            CDC_INDEX_ENTRY
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The run

struct Row {
    day: usize,
    changed: u64,
    io: Io,
    held: u64,
    backup_s: f64,
    restore_s: f64,
    restore_bytes: u64,
}

struct Run {
    candidate: Box<dyn Candidate>,
    rows: Vec<Row>,
    cpu: f64,
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .ok()
                .unwrap_or_else(|| panic!("bad value for {name}"))
        })
        .unwrap_or(default)
}

fn mib(b: u64) -> String {
    format!("{:.2}", b as f64 / MIB)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let days: usize = arg(&args, "--days", 30);
    assert!(days >= 1, "--days: at least one day after the first backup");
    let entries: usize = arg(&args, "--docs", 200_000);
    let seed: u64 = arg(&args, "--seed", 42);
    let which: String = arg(&args, "--candidates", String::from("all"));
    let mut policy = RetentionPolicy::default();
    let p: String = arg(&args, "--policy", String::new());
    if !p.is_empty() {
        let v: Vec<u32> = p.split(',').map(|x| x.parse().expect("--policy")).collect();
        (policy.daily, policy.weekly, policy.monthly) = (v[0], v[1], v[2]);
    }
    check_age_size();

    // The last backup is on 2026-12-04 at 02:00 UTC; the first `days` days before.
    let last = Utc.with_ymd_and_hms(2026, 12, 4, 2, 0, 0).unwrap();
    let first = last - Duration::days(days as i64);
    let started = Instant::now();
    let mut db = Database::new(seed, entries, first);

    let mut candidates: Vec<Box<dyn Candidate>> = vec![
        Box::new(Full::new(10)),
        Box::new(Full::new(3)),
        Box::new(DocIncr::new(0.25, false)),
        Box::new(DocIncr::new(0.5, false)),
        Box::new(DocIncr::new(1.0, false)),
        Box::new(DocIncr::new(0.5, true)),
        Box::new(DocIncr::new(1.0, true)),
        Box::new(Cdc::new(4 * 1024)),
        Box::new(Cdc::new(16 * 1024)),
        Box::new(Cdc::new(64 * 1024)),
    ];
    if which != "all" {
        candidates.retain(|c| which.split(',').any(|w| c.name().starts_with(w)));
    }
    let mut runs: Vec<Run> = candidates
        .into_iter()
        .map(|candidate| Run {
            candidate,
            rows: Vec::new(),
            cpu: 0.0,
        })
        .collect();

    let mut listing: Vec<StoredBackup> = Vec::new();
    let mut full_l10 = 0u64;
    // Each day's full backup (zstd 10), when full-L10 runs: what restore reads is compared to it.
    let mut full_sizes: HashMap<usize, u64> = HashMap::new();
    let mut changed_comp = compressor(LEVEL);
    for day in 0..=days {
        let now = first + Duration::days(day as i64);
        let change = (day > 0).then(|| db.day(now));
        let snap = db.snapshot();
        let changed = match &change {
            Some(c) => {
                let mut raw = Vec::new();
                for id in &c.changed {
                    raw.extend_from_slice(&db.docs[id]);
                }
                changed_comp.compress(&raw).expect("zstd").len() as u64
            }
            None => 0,
        };

        // The retention plan of the engine, on the listing plus today's backup.
        let id = format!("{:08x}", day);
        listing.push(StoredBackup {
            file: manifest::backup_file_name("timetrack", now, &id),
            id,
            bytes: 0,
            created: now,
            database: "timetrack".into(),
            documents: snap.docs.len() as u64,
            status: BackupStatus::Complete,
            sha256: String::new(),
            signature: None,
            link: None,
        });
        let plan = retention::plan(&listing, &policy, now, &Utc);
        let keep: BTreeSet<usize> = plan
            .iter()
            .filter(|d| d.keep)
            .map(|d| usize::from_str_radix(&d.backup.id, 16).unwrap())
            .collect();
        listing.retain(|b| keep.contains(&usize::from_str_radix(&b.id, 16).unwrap()));

        for run in &mut runs {
            if let Some(c) = &change {
                run.candidate.set_truth(&c.changed, &c.deleted);
            }
            let mut io = Io::default();
            let t0 = cpu_now();
            run.candidate.backup(day, &snap, &mut io);
            run.candidate.retain(&keep, &mut io);
            let backup_s = cpu_now() - t0;
            run.cpu += backup_s;
            let t1 = cpu_now();
            let (restored, restore_bytes) = run.candidate.restore_newest();
            let restore_s = cpu_now() - t1;
            assert!(
                restored == snap.data,
                "{}: the newest backup of day {day} restores exactly",
                run.candidate.name()
            );
            if run.candidate.name() == "full-L10" {
                full_l10 = io.uploaded;
                full_sizes.insert(day, io.uploaded);
            }
            run.rows.push(Row {
                day,
                changed,
                io,
                held: run.candidate.held(),
                backup_s,
                restore_s,
                restore_bytes,
            });
        }
        eprintln!(
            "day {day}: {} documents, {:.1} MiB, kept {:?} ({:.0} s)",
            snap.docs.len(),
            snap.data.len() as f64 / MIB,
            keep,
            started.elapsed().as_secs_f64()
        );
    }

    if full_l10 == 0 {
        let snap = db.snapshot();
        full_l10 = age_size(compressor(LEVEL).compress(&snap.data).unwrap().len() + MANIFEST_BYTES);
    }
    let docs = db.docs.len();
    let bytes: usize = db.docs.values().map(Vec::len).sum();
    println!(
        "# Incremental backup simulation: {entries} documents, {days} days, seed {seed}\n\n\
         Retention: daily {}, weekly {}, monthly {}, keep_last {}. Day 0 is the first backup \
         ({}), day {days} is {}. End state: {docs} documents, {:.1} MiB of BSON ({:.0} B/document); \
         one full backup (zstd {LEVEL}, age) = {} MiB.\n",
        policy.daily,
        policy.weekly,
        policy.monthly,
        policy.keep_last,
        first.format("%Y-%m-%d"),
        last.format("%Y-%m-%d"),
        bytes as f64 / MIB,
        bytes as f64 / docs as f64,
        mib(full_l10),
    );
    for run in &runs {
        println!("## {}\n", run.candidate.name());
        println!(
            "| day | changed MiB | uploaded MiB | files written | deleted | held MiB | backup CPU s | restore newest CPU s | restore reads MiB |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for r in &run.rows {
            println!(
                "| {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {} |",
                r.day,
                mib(r.changed),
                mib(r.io.uploaded),
                r.io.writes,
                r.io.deletes,
                mib(r.held),
                r.backup_s,
                r.restore_s,
                mib(r.restore_bytes)
            );
        }
        println!(
            "\nCPU for the whole run (backups and retention): {:.1} s\n",
            run.cpu
        );
    }

    println!("## Summary (days 1-{days}; day 0, the first full backup, left out)\n");
    println!(
        "| candidate | mean uploaded / changed | days within 2x changed + 1 MiB | worst uploaded / target | held after {days} days / one full | mean files written (deleted) per day | mean backup CPU s | restore newest: mean CPU s, mean / max reads per full | CPU s, whole run |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for run in &runs {
        let rows = &run.rows[1..];
        let n = rows.len() as f64;
        let up: u64 = rows.iter().map(|r| r.io.uploaded).sum();
        let ch: u64 = rows.iter().map(|r| r.changed).sum();
        let target = |r: &Row| 2.0 * r.changed as f64 + MIB;
        let within = rows
            .iter()
            .filter(|r| r.io.uploaded as f64 <= target(r))
            .count();
        let worst = rows
            .iter()
            .map(|r| r.io.uploaded as f64 / target(r))
            .fold(0.0, f64::max);
        let last = rows.last().unwrap();
        let mean_restore: f64 = rows.iter().map(|r| r.restore_s).sum::<f64>() / n;
        let reads: Vec<f64> = rows
            .iter()
            .map(|r| r.restore_bytes as f64 / *full_sizes.get(&r.day).unwrap_or(&full_l10) as f64)
            .collect();
        println!(
            "| {} | {:.2} | {}/{} | {:.2} | {:.2} | {:.1} ({:.1}) | {:.2} | {:.2}, {:.2} / {:.2} | {:.1} |",
            run.candidate.name(),
            up as f64 / ch as f64,
            within,
            rows.len(),
            worst,
            last.held as f64 / full_l10 as f64,
            rows.iter().map(|r| r.io.writes as f64).sum::<f64>() / n,
            rows.iter().map(|r| r.io.deletes as f64).sum::<f64>() / n,
            rows.iter().map(|r| r.backup_s).sum::<f64>() / n,
            mean_restore,
            reads.iter().sum::<f64>() / n,
            reads.iter().copied().fold(0.0, f64::max),
            run.cpu
        );
    }
    println!();
    for run in &runs {
        println!("- {}: {}", run.candidate.name(), run.candidate.notes(docs));
    }
    eprintln!("done in {:.0} s", started.elapsed().as_secs_f64());
}
