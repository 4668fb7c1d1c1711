//! A seeded randomized model test of the whole incremental cycle: a simulated collection changes
//! every day; each day's backup walks it against the previous day's index file, and a restore of
//! every day merges the full backup and the increments up to it. The model (a sorted map) says
//! what each step must give.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::convert::Infallible;

use bson::oid::ObjectId;
use bson::{doc, Bson, RawDocument, RawDocumentBuf};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

/// The collection as the server holds it: by key, the `_id` value and the raw document.
type Collection = BTreeMap<IdKey, (Bson, Vec<u8>)>;

/// One backup of the chain: the documents it holds and the keys it deletes.
#[derive(Default)]
struct Backup {
    docs: Vec<(IdKey, Vec<u8>)>,
    deleted: Vec<IdKey>,
}

fn random_string(rng: &mut StdRng, max: usize) -> String {
    const ALPHABET: [char; 10] = ['a', 'b', 'z', 'A', '0', ' ', '\0', 'é', '€', '😀'];
    let n = rng.gen_range(0..=max);
    (0..n)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
        .collect()
}

/// A numeric `_id` of value `v`, as one of the types the server treats as equal.
fn number_as_any_type(rng: &mut StdRng, v: i64) -> Bson {
    match rng.gen_range(0..3) {
        0 => match i32::try_from(v) {
            Ok(small) => Bson::Int32(small),
            Err(_) => Bson::Int64(v),
        },
        1 => Bson::Int64(v),
        _ => Bson::Double(v as f64),
    }
}

fn random_id(rng: &mut StdRng, day: u32) -> Bson {
    match rng.gen_range(0..10) {
        0..=3 => {
            let v = rng.gen_range(-2_000..2_000);
            number_as_any_type(rng, v)
        }
        4 => Bson::Int64(rng.gen()),
        5..=8 => {
            // Like real ObjectIds, mostly increasing with the day (inserts sort last), with some
            // random ones to insert in the middle.
            let mut bytes: [u8; 12] = rng.gen();
            if rng.gen_bool(0.8) {
                bytes[..4].copy_from_slice(&(1_700_000_000 + day * 86_400).to_be_bytes());
            }
            Bson::ObjectId(ObjectId::from_bytes(bytes))
        }
        _ => Bson::String(random_string(rng, 6)),
    }
}

fn make_doc(rng: &mut StdRng, id: &Bson) -> Vec<u8> {
    let mut d = doc! { "_id": id.clone(), "v": rng.gen_range(0..4) };
    if rng.gen_bool(0.7) {
        d.insert("note", random_string(rng, 12));
    }
    let mut bytes = Vec::new();
    d.to_writer(&mut bytes).expect("serialize");
    bytes
}

/// Another representation of the same numeric `_id` (the document deleted and inserted again
/// with `1.0` for `1`), if the `_id` is a number.
fn retyped(rng: &mut StdRng, id: &Bson) -> Option<Bson> {
    let v = match id {
        Bson::Int32(v) => i64::from(*v),
        Bson::Int64(v) if v.unsigned_abs() <= 1 << 53 => *v,
        Bson::Double(d) => *d as i64,
        _ => return None,
    };
    Some(number_as_any_type(rng, v))
}

/// A day of changes: updates (some rewriting identical bytes, some changing the numeric type
/// of the `_id`), inserts and deletes, at rates that vary by day.
fn mutate(rng: &mut StdRng, model: &mut Collection, day: u32) {
    let keys: Vec<IdKey> = model.keys().cloned().collect();
    let delete_rate = match rng.gen_range(0..10) {
        0 => 0.0,
        1 => 0.5,
        _ => 0.03,
    };
    for k in &keys {
        let r: f64 = rng.gen();
        if r < delete_rate {
            model.remove(k);
        } else if r < delete_rate + 0.08 {
            let Some((id, old)) = model.get(k).cloned() else {
                continue;
            };
            let (id, raw) = match rng.gen_range(0..5) {
                0 => (id, old),
                1 => match retyped(rng, &id) {
                    Some(other) => {
                        let raw = make_doc(rng, &other);
                        (other, raw)
                    }
                    None => {
                        let raw = make_doc(rng, &id);
                        (id, raw)
                    }
                },
                _ => {
                    let raw = make_doc(rng, &id);
                    (id, raw)
                }
            };
            model.insert(k.clone(), (id, raw));
        }
    }
    let inserts = rng.gen_range(0..=(keys.len() / 20 + 5));
    for _ in 0..inserts {
        let id = random_id(rng, day);
        let k = IdKey::from_bson(&id).expect("supported id");
        if let Entry::Vacant(slot) = model.entry(k) {
            let raw = make_doc(rng, &id);
            slot.insert((id, raw));
        }
    }
}

/// What the walk must find between two days.
fn expected_changes(prev: &Collection, now: &Collection) -> (DiffCounts, Vec<IdKey>, Vec<IdKey>) {
    let mut counts = DiffCounts::default();
    let mut written = Vec::new();
    for (k, (_, raw)) in now {
        match prev.get(k) {
            Some((_, old)) if old == raw => counts.unchanged += 1,
            Some(_) => {
                counts.changed += 1;
                written.push(k.clone());
            }
            None => {
                counts.inserted += 1;
                written.push(k.clone());
            }
        }
    }
    let deleted: Vec<IdKey> = prev
        .keys()
        .filter(|k| !now.contains_key(*k))
        .cloned()
        .collect();
    counts.deleted = deleted.len() as u64;
    (counts, written, deleted)
}

/// The chain's merge, as the restore would run it.
fn restore(chain: &[Backup]) -> Vec<(IdKey, Vec<u8>)> {
    let sources: Vec<_> = chain
        .iter()
        .map(|b| {
            interleave(
                b.docs.iter().cloned().map(Ok::<_, Infallible>),
                b.deleted.iter().cloned().map(Ok::<_, Infallible>),
            )
        })
        .collect();
    ChainMerge::new(sources)
        .map(|r| r.expect("merge"))
        .collect()
}

fn run_chain(seed: u64, days: u32, initial: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let index_path = dir.path().join("things.idx");
    let next_path = dir.path().join("things.idx.next");

    let mut model = Collection::new();
    for _ in 0..initial {
        let id = random_id(&mut rng, 0);
        let raw = make_doc(&mut rng, &id);
        model.insert(IdKey::from_bson(&id).expect("supported id"), (id, raw));
    }
    let mut prev = Collection::new();
    let mut chain: Vec<Backup> = Vec::new();

    for day in 0..=days {
        if day > 0 {
            mutate(&mut rng, &mut model, day);
        }
        let (want_counts, want_written, want_deleted) = expected_changes(&prev, &model);

        let old = if day == 0 {
            None
        } else {
            let reader = IndexReader::open(&index_path).expect("open the previous index");
            assert_eq!(reader.header().backup_id, format!("day-{}", day - 1));
            Some(reader)
        };
        let header = IndexHeader {
            backup_id: format!("day-{day}"),
            backup_sha256: None,
            collection: "things".into(),
        };
        let writer = IndexWriter::create(&next_path, &header).expect("create the next index");
        let mut differ = Differ::new(old, writer).expect("differ");

        let mut backup = Backup::default();
        for (k, (_, raw)) in &model {
            let doc = RawDocument::from_bytes(raw).expect("raw");
            let deleted = &mut backup.deleted;
            let change = differ
                .push(doc, |gone| {
                    deleted.push(gone);
                    Ok::<(), DiffError>(())
                })
                .expect("push");
            let want = match prev.get(k) {
                Some((_, old)) if old == raw => Change::Unchanged,
                Some(_) => Change::Changed,
                None => Change::Inserted,
            };
            assert_eq!(change, want, "seed {seed} day {day} key {k:?}");
            if change != Change::Unchanged {
                backup.docs.push((k.clone(), raw.clone()));
            }
        }
        let deleted = &mut backup.deleted;
        let counts = differ
            .finish(|gone| {
                deleted.push(gone);
                Ok::<(), DiffError>(())
            })
            .expect("finish");

        // (a) The walk found exactly the model's changes.
        assert_eq!(counts, want_counts, "seed {seed} day {day}");
        let written: Vec<IdKey> = backup.docs.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(written, want_written, "seed {seed} day {day}");
        assert_eq!(backup.deleted, want_deleted, "seed {seed} day {day}");
        if day == 0 {
            assert_eq!(counts.inserted, model.len() as u64);
        }

        // The backup is "uploaded": record its SHA-256, then promote the index.
        let sha: [u8; 32] = rng.gen();
        set_backup_sha256(&next_path, &sha).expect("set sha");
        promote(&next_path, &index_path).expect("promote");

        // The promoted index lists the collection exactly.
        let reader = IndexReader::open(&index_path).expect("open");
        assert_eq!(reader.header().backup_sha256, Some(sha));
        let entries: Vec<IndexEntry> = reader.map(|e| e.expect("entry")).collect();
        let want_entries: Vec<IndexEntry> = model
            .iter()
            .map(|(k, (_, raw))| IndexEntry {
                key: k.clone(),
                hash: doc_hash(raw),
            })
            .collect();
        assert_eq!(entries, want_entries, "seed {seed} day {day}");

        // (b) The chain's merge restores the collection byte for byte, in order.
        chain.push(backup);
        let restored = restore(&chain);
        let want: Vec<(IdKey, Vec<u8>)> = model
            .iter()
            .map(|(k, (_, raw))| (k.clone(), raw.clone()))
            .collect();
        assert_eq!(restored.len(), want.len(), "seed {seed} day {day}");
        assert!(
            restored == want,
            "seed {seed} day {day}: the restore differs"
        );

        // And every restored document's own _id gives back its key.
        for (k, raw) in &restored {
            let doc = RawDocumentBuf::from_bytes(raw.clone()).expect("raw");
            assert_eq!(&IdKey::from_document(&doc).expect("key"), k);
        }

        prev = model.clone();
    }
}

#[test]
fn a_randomized_chain_of_daily_increments_matches_the_model() {
    for seed in [1, 2, 3, 0x0D81_5EED] {
        run_chain(seed, 20, 400);
    }
}

#[test]
fn a_chain_that_starts_empty_matches_the_model() {
    run_chain(99, 20, 0);
}
