//! The incremental backup's `_id` order, checked against a real server: `IdKey` claims that the
//! `memcmp` order of its bytes is the server's `sort({_id: 1})` order (simple collation) for
//! numbers, strings, ObjectIds, booleans and dates, so these tests insert such `_id`s, read them
//! back sorted by the server, and compare. Then a two-day walk over a real collection
//! (`Differ`) must find exactly the changes made on the server, and the chain merge
//! (`ChainMerge`) of day 1 and the day-2 increment must give back the collection byte for byte.
//! No CLI, no keyring: only the engine's library and the server.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::convert::Infallible;
use std::path::Path;

use bson::RawDocumentBuf;
use bson::{doc, oid::ObjectId, spec::BinarySubtype, Binary, Bson, DateTime, Decimal128, Document};
use common::*;
use driveback_engine::incremental::{
    interleave, promote, ChainMerge, Change, DiffCounts, DiffError, Differ, IdKey, IdKeyError,
    IndexHeader, IndexReader, IndexWriter, Item,
};
use futures_util::TryStreamExt;
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::Collection;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// 2^53, the largest magnitude up to which every integer is a double.
const TWO_53: i64 = 1 << 53;

/// Every document of `coll` as raw bytes, as the server returns `find({}).sort({_id: 1})`.
async fn read_sorted(coll: &Collection<Document>) -> Vec<RawDocumentBuf> {
    coll.clone_with_type::<RawDocumentBuf>()
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .await
        .expect("find sorted by _id")
        .try_collect()
        .await
        .expect("read the cursor")
}

/// A raw document's `_id`, with its BSON type.
fn id_of(raw: &RawDocumentBuf) -> Bson {
    raw.to_document()
        .expect("a valid document")
        .get("_id")
        .cloned()
        .expect("an _id")
}

fn key_of(v: &Bson) -> IdKey {
    IdKey::from_bson(v).unwrap_or_else(|e| panic!("{v:?}: {e}"))
}

/// What `IdKey::to_bson` gives back for a supported `_id`: numbers by value, as `Int32` when
/// they fit and `Int64` otherwise; any other type unchanged.
fn normalized(v: &Bson) -> Bson {
    let n = match v {
        Bson::Int32(n) => i64::from(*n),
        Bson::Int64(n) => *n,
        Bson::Double(d) => {
            assert!(d.fract() == 0.0 && d.abs() <= TWO_53 as f64, "{d}");
            *d as i64
        }
        other => return other.clone(),
    };
    match i32::try_from(n) {
        Ok(small) => Bson::Int32(small),
        Err(_) => Bson::Int64(n),
    }
}

fn date(ms: i64) -> Bson {
    Bson::DateTime(DateTime::from_millis(ms))
}

fn oid(hex: &str) -> Bson {
    Bson::ObjectId(ObjectId::parse_str(hex).expect("ObjectId hex"))
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    matches!(
        e.kind.as_ref(),
        ErrorKind::Write(WriteFailure::WriteError(we)) if we.code == 11000
    )
}

fn header(backup_id: &str, collection: &str) -> IndexHeader {
    IndexHeader {
        backup_id: backup_id.into(),
        backup_sha256: None,
        collection: collection.into(),
    }
}

/// What one walk over a collection found.
struct Walk {
    changes: Vec<Change>,
    deleted: Vec<IdKey>,
    counts: DiffCounts,
}

/// The backup's walk: every document (in the server's order) pushed into a `Differ` against the
/// index at `old` (if any), writing `next`; finished, not promoted.
fn walk(
    old: Option<&Path>,
    next: &Path,
    hdr: &IndexHeader,
    documents: &[RawDocumentBuf],
) -> Result<Walk, DiffError> {
    let old = old.map(|p| IndexReader::open(p).expect("open the previous index"));
    let writer = IndexWriter::create(next, hdr).expect("create the next index");
    let mut differ = Differ::new(old, writer)?;
    let mut changes = Vec::with_capacity(documents.len());
    let mut deleted = Vec::new();
    for d in documents {
        changes.push(differ.push(d, |k| {
            deleted.push(k);
            Ok::<(), DiffError>(())
        })?);
    }
    let counts = differ.finish(|k| {
        deleted.push(k);
        Ok::<(), DiffError>(())
    })?;
    Ok(Walk {
        changes,
        deleted,
        counts,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn ids_sort_on_the_server_as_their_keys_sort() {
    let server = mongo();
    let client = server.client().await;
    let db = server.fresh_db("idorder");
    let coll = client.database(&db).collection::<Document>("ids");

    // Numbers of all three types, compared by value; no two equal (equal numbers are one _id).
    let numbers = vec![
        Bson::Int64(i64::MIN),
        Bson::Int64(i64::MIN + 1),
        Bson::Int64(-TWO_53 - 1),
        Bson::Double(-(TWO_53 as f64)),
        Bson::Int64(-TWO_53 + 1),
        Bson::Double(-4_294_967_296.0),
        Bson::Int64(i64::from(i32::MIN) - 1),
        Bson::Int32(i32::MIN),
        Bson::Int32(i32::MIN + 1),
        Bson::Int32(-256),
        Bson::Double(-255.0),
        Bson::Double(-2.0),
        Bson::Int32(-1),
        Bson::Int32(0),
        Bson::Int64(1),
        Bson::Int32(2),
        Bson::Double(3.0),
        Bson::Int64(4),
        Bson::Int32(255),
        Bson::Double(256.0),
        Bson::Int32(i32::MAX - 1),
        Bson::Int32(i32::MAX),
        Bson::Int64(i64::from(i32::MAX) + 1),
        Bson::Int64(4_294_967_295),
        Bson::Double(4_294_967_296.0),
        Bson::Int64(4_294_967_297),
        Bson::Double(1e15),
        Bson::Int64(1_000_000_000_000_001),
        Bson::Int64(TWO_53 - 2),
        Bson::Double((TWO_53 - 1) as f64),
        Bson::Double(TWO_53 as f64),
        Bson::Int64(TWO_53 + 1),
        Bson::Int64(TWO_53 + 2),
        Bson::Int64(i64::MAX - 1),
        Bson::Int64(i64::MAX),
    ];
    // Strings by their UTF-8 bytes: prefixes, case, non-ASCII of every UTF-8 length.
    let strings: Vec<Bson> = [
        "",
        "\x01",
        " ",
        "0",
        "09",
        "9",
        "A",
        "B",
        "Z",
        "a",
        "a\x01",
        "aB",
        "ab",
        "abc",
        "abd",
        "b",
        "e",
        "e\u{301}",
        "f",
        "\x7f",
        "\u{80}",
        "Ä",
        "é",
        "éa",
        "\u{7FF}",
        "\u{800}",
        "€",
        "中文",
        "日本",
        "\u{FFFD}",
        "\u{FFFF}",
        "😀",
        "😀a",
        "\u{10FFFF}",
    ]
    .iter()
    .map(|s| Bson::String(s.to_string()))
    .collect();
    // ObjectIds differing in early and late bytes, around the sign bit of a byte.
    let oids: Vec<Bson> = [
        "000000000000000000000000",
        "000000000000000000000001",
        "00000000000000000000007f",
        "000000000000000000000080",
        "0000000000000000000000ff",
        "00000000000000000000ff00",
        "00ffffffffffffffffffffff",
        "010000000000000000000000",
        "65a000000000000000000000",
        "65a0000000000000000000ff",
        "65a100000000000000000000",
        "7fffffffffffffffffffffff",
        "800000000000000000000000",
        "ffffffffffffffffffffff00",
        "ffffffffffffffffffffffff",
    ]
    .iter()
    .map(|h| oid(h))
    .collect();
    let booleans = vec![Bson::Boolean(false), Bson::Boolean(true)];
    // Dates before and after the epoch, within years 1 to 9999.
    let dates = vec![
        date(-62_135_596_800_000), // 0001-01-01
        date(-86_400_000),
        date(-1_000),
        date(-1),
        date(0),
        date(1),
        date(1_000),
        date(1_700_000_000_000),
        date(253_402_300_799_999), // 9999-12-31T23:59:59.999
    ];

    let mut required: Vec<Bson> = Vec::new();
    for group in [&numbers, &strings, &oids, &booleans, &dates] {
        required.extend(group.iter().cloned());
    }
    let mut rng = StdRng::seed_from_u64(0x1d_0de7);
    required.shuffle(&mut rng);
    coll.insert_many(
        required
            .iter()
            .enumerate()
            .map(|(i, id)| doc! { "_id": id.clone(), "i": i as i32 }),
    )
    .await
    .expect("insert the required _ids");

    // Strings holding "\0" go in only if the server takes them. The full range of dates is
    // valid BSON and real MongoDB takes it; the test server decodes dates as Python datetimes,
    // which stop at years 1 and 9999, and refuses the rest ("year ... is out of range"), so
    // there they are skipped, and on a real mongod (MONGODB_TEST_URI) they are required.
    let nul_strings: Vec<Bson> = ["\0", "\0\0", "\0a", "a\0", "a\0\0", "a\0b"]
        .iter()
        .map(|s| Bson::String(s.to_string()))
        .collect();
    let extreme_dates = vec![
        date(i64::MIN),
        date(i64::MIN + 1),
        date(-62_135_596_800_001),
        date(253_402_300_800_000),
        date(i64::MAX - 1),
        date(i64::MAX),
    ];
    let mut optional: Vec<(Bson, bool)> = nul_strings.into_iter().map(|v| (v, false)).collect();
    optional.extend(
        extreme_dates
            .into_iter()
            .map(|v| (v, !server.is_test_server)),
    );
    optional.shuffle(&mut rng);
    let mut inserted = required.clone();
    let mut refused = Vec::new();
    for (id, strict) in optional {
        match coll.insert_one(doc! { "_id": id.clone(), "i": -1 }).await {
            Ok(_) => inserted.push(id),
            Err(e) => {
                assert!(!strict, "the server refused the _id {id:?}: {e}");
                refused.push(id);
            }
        }
    }
    eprintln!("_ids the server refused (skipped): {refused:?}");

    // The server's equality of numbers across types is the key's: inserting a number equal to
    // one already there, as another type, is a duplicate key.
    for (there, same) in [
        (Bson::Double(3.0), Bson::Int32(3)),
        (Bson::Double(3.0), Bson::Int64(3)),
        (Bson::Int32(-1), Bson::Double(-1.0)),
        (Bson::Int32(0), Bson::Double(-0.0)),
        (Bson::Int32(0), Bson::Int64(0)),
        (Bson::Int64(1), Bson::Double(1.0)),
        (Bson::Int32(i32::MIN), Bson::Int64(i64::from(i32::MIN))),
        (Bson::Double(TWO_53 as f64), Bson::Int64(TWO_53)),
        (Bson::Double(-(TWO_53 as f64)), Bson::Int64(-TWO_53)),
        (Bson::Double(4_294_967_296.0), Bson::Int64(4_294_967_296)),
    ] {
        assert!(inserted.contains(&there), "{there:?}");
        assert_eq!(key_of(&there), key_of(&same), "{there:?} = {same:?}");
        let err = coll
            .insert_one(doc! { "_id": same.clone(), "i": -2 })
            .await
            .expect_err(&format!("{same:?} is the same _id as {there:?}"));
        assert!(is_duplicate_key(&err), "{same:?}: {err}");
    }

    let docs = read_sorted(&coll).await;
    assert_eq!(docs.len(), inserted.len(), "every document read back");
    let server_ids: Vec<Bson> = docs.iter().map(id_of).collect();
    let keys: Vec<IdKey> = docs
        .iter()
        .map(|d| IdKey::from_document(d).unwrap_or_else(|e| panic!("{:?}: {e}", id_of(d))))
        .collect();
    let disagreements: Vec<String> = keys
        .windows(2)
        .zip(server_ids.windows(2))
        .filter(|(k, _)| k[0] >= k[1])
        .map(|(_, ids)| format!("server: {:?} before {:?}", ids[0], ids[1]))
        .collect();
    assert!(
        disagreements.is_empty(),
        "the keys are not strictly increasing in the server's order:\n{}",
        disagreements.join("\n")
    );

    // The same order the other way: the inserted _ids sorted by key are the server's order.
    let mut by_key = inserted.clone();
    by_key.sort_by_key(key_of);
    assert_eq!(by_key, server_ids, "inserted _ids sorted by IdKey");

    // And each key decodes to the _id (numbers by value).
    for (k, id) in keys.iter().zip(&server_ids) {
        assert_eq!(k.to_bson().expect("decodes"), normalized(id), "{id:?}");
    }
}

/// The `_id` of day-1 document `i` of the walk test: a mix of every supported class.
fn mixed_id(i: usize, rng: &mut StdRng) -> Bson {
    let n = i as i64;
    match i % 7 {
        0 => Bson::Int32((i as i32) * 7 - 5000),
        1 => Bson::Int64((1 << 40) + n * 1000),
        2 => Bson::Double(-1e12 - n as f64),
        3 => Bson::String(format!("{}{}", ["a", "a/", "é", "z😀"][i % 4], i)),
        4 => Bson::ObjectId(ObjectId::from_bytes(rng.gen())),
        5 => date(n * 86_400_000 - 1_000_000_000_000),
        _ => Bson::Int64(-(1 << 35) - n),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_walk_over_the_server_finds_exactly_what_changed() {
    let server = mongo();
    let client = server.client().await;
    let db = server.fresh_db("idwalk");
    let name = "things";
    let coll = client.database(&db).collection::<Document>(name);
    let mut rng = StdRng::seed_from_u64(0x5eed_0002);

    let mut ids: Vec<Bson> = (0..1998).map(|i| mixed_id(i, &mut rng)).collect();
    ids.push(Bson::Boolean(false));
    ids.push(Bson::Boolean(true));
    let mut day1_docs: Vec<Document> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            doc! {
                "_id": id.clone(),
                "n": i as i32,
                "v": format!("value {i}"),
                "tags": ["x", (i % 5) as i32],
            }
        })
        .collect();
    day1_docs.shuffle(&mut rng);
    for chunk in day1_docs.chunks(500) {
        coll.insert_many(chunk.to_vec())
            .await
            .expect("insert day 1");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let index = dir.path().join(format!("{name}.idx"));
    let next = dir.path().join(format!("{name}.idx.next"));

    // Day 1: the first backup of the chain, everything inserted.
    let day1 = read_sorted(&coll).await;
    assert_eq!(day1.len(), 2000);
    let w1 = walk(None, &next, &header("day1", name), &day1).expect("day-1 walk");
    assert!(w1.changes.iter().all(|c| *c == Change::Inserted));
    assert!(w1.deleted.is_empty());
    assert_eq!(
        w1.counts,
        DiffCounts {
            inserted: 2000,
            ..DiffCounts::default()
        }
    );
    promote(&next, &index).expect("promote day 1");

    // On the server: disjoint sets of documents, in the server's order; the first and the last
    // document are among the deleted (a deletion before the first push and one at the finish).
    let day1_ids: Vec<Bson> = day1.iter().map(id_of).collect();
    let mut middle: Vec<usize> = (1..day1.len() - 1).collect();
    middle.shuffle(&mut rng);
    let updated: Vec<usize> = middle[..50].to_vec();
    let identical: Vec<usize> = middle[50..55].to_vec();
    let mut deleted: Vec<usize> = vec![0, day1.len() - 1];
    deleted.extend_from_slice(&middle[55..73]);

    for &i in &updated {
        let r = if i % 2 == 0 {
            coll.update_one(
                doc! { "_id": day1_ids[i].clone() },
                doc! { "$inc": { "n": 1 } },
            )
            .await
        } else {
            coll.update_one(
                doc! { "_id": day1_ids[i].clone() },
                doc! { "$set": { "v": "changed", "new_field": true } },
            )
            .await
        };
        assert_eq!(r.expect("update").modified_count, 1, "{:?}", day1_ids[i]);
    }
    for (j, &i) in identical.iter().enumerate() {
        let current = day1[i].to_document().expect("document");
        if j < 3 {
            // A field set to the value it has: no change.
            let v = current.get_str("v").expect("v").to_owned();
            let r = coll
                .update_one(
                    doc! { "_id": day1_ids[i].clone() },
                    doc! { "$set": { "v": v } },
                )
                .await
                .expect("no-op update");
            assert_eq!(r.matched_count, 1);
            assert_eq!(r.modified_count, 0, "{:?}", day1_ids[i]);
        } else {
            // The whole document replaced by itself.
            let r = coll
                .replace_one(doc! { "_id": day1_ids[i].clone() }, current)
                .await
                .expect("identical replace");
            assert_eq!(r.matched_count, 1);
        }
    }
    // A number deleted by another type of the same value is the same _id (what a deletion by
    // `IdKey::to_bson` relies on): delete the doubles by their integer value.
    for &i in &deleted {
        let filter_id = match &day1_ids[i] {
            Bson::Double(_) => normalized(&day1_ids[i]),
            other => other.clone(),
        };
        let r = coll
            .delete_one(doc! { "_id": filter_id.clone() })
            .await
            .expect("delete");
        assert_eq!(r.deleted_count, 1, "{filter_id:?} for {:?}", day1_ids[i]);
    }
    // New _ids of several types, some between existing ones, one before all and one after all.
    let mut new_ids: Vec<Bson> = vec![Bson::Int64(i64::MIN), date(253_402_300_799_999)];
    for j in 0..5_i32 {
        new_ids.push(Bson::Int32(-4999 + 49 * j)); // between the day-1 Int32s
        new_ids.push(Bson::Double(-1e12 - f64::from(7 * j + 3))); // between the day-1 doubles
        new_ids.push(Bson::String(format!("a{}.5", 3 + 28 * j)));
        new_ids.push(Bson::ObjectId(ObjectId::from_bytes(rng.gen())));
        new_ids.push(date(i64::from(j) * 86_400_000 * 7 - 1_000_000_000_000 + 1));
    }
    new_ids.extend([
        Bson::String(String::new()),
        Bson::String("é".into()),
        Bson::Int64(1 << 50),
    ]);
    let existing: HashSet<IdKey> = day1_ids.iter().map(key_of).collect();
    for id in &new_ids {
        assert!(!existing.contains(&key_of(id)), "{id:?} is new");
    }
    assert_eq!(new_ids.len(), 30);
    let mut shuffled_new = new_ids.clone();
    shuffled_new.shuffle(&mut rng);
    coll.insert_many(
        shuffled_new
            .iter()
            .map(|id| doc! { "_id": id.clone(), "n": -1, "v": "inserted on day 2" }),
    )
    .await
    .expect("insert day 2");

    // Day 2: the walk against day 1's index.
    let day2 = read_sorted(&coll).await;
    assert_eq!(day2.len(), 2000 - 20 + 30);
    let w2 = walk(Some(&index), &next, &header("day2", name), &day2)
        .unwrap_or_else(|e| panic!("day-2 walk: {e:?}"));
    assert_eq!(
        w2.counts,
        DiffCounts {
            changed: 50,
            inserted: 30,
            deleted: 20,
            unchanged: 2000 - 50 - 20,
        }
    );
    let by_change = |which: Change| -> BTreeSet<IdKey> {
        day2.iter()
            .zip(&w2.changes)
            .filter(|(_, c)| **c == which)
            .map(|(d, _)| IdKey::from_document(d).expect("key"))
            .collect()
    };
    let keys_of =
        |idx: &[usize]| -> BTreeSet<IdKey> { idx.iter().map(|&i| key_of(&day1_ids[i])).collect() };
    assert_eq!(by_change(Change::Changed), keys_of(&updated));
    assert_eq!(
        by_change(Change::Inserted),
        new_ids.iter().map(key_of).collect()
    );
    let unchanged = by_change(Change::Unchanged);
    for &i in &identical {
        assert!(
            unchanged.contains(&key_of(&day1_ids[i])),
            "{:?}",
            day1_ids[i]
        );
    }
    // The deletions came in ascending order and decode to exactly the deleted _ids.
    let mut expected_deleted: Vec<&Bson> = deleted.iter().map(|&i| &day1_ids[i]).collect();
    expected_deleted.sort_by_key(|v| key_of(v));
    let decoded: Vec<Bson> = w2
        .deleted
        .iter()
        .map(|k| k.to_bson().expect("decode"))
        .collect();
    let expected_decoded: Vec<Bson> = expected_deleted.iter().map(|v| normalized(v)).collect();
    assert_eq!(decoded, expected_decoded);
    assert!(w2.deleted.windows(2).all(|p| p[0] < p[1]));
    promote(&next, &index).expect("promote day 2");
    let entries: Vec<IdKey> = IndexReader::open(&index)
        .expect("open day 2's index")
        .map(|e| e.expect("entry").key)
        .collect();
    let day2_keys: Vec<IdKey> = day2
        .iter()
        .map(|d| IdKey::from_document(d).expect("key"))
        .collect();
    assert_eq!(entries, day2_keys);

    // The restore's merge of day 1 and the day-2 increment gives the collection back.
    type Source = Box<dyn Iterator<Item = Result<Item, Infallible>>>;
    let full: Source = Box::new(
        day1.iter()
            .map(|d| {
                Ok(Item::Doc(
                    IdKey::from_document(d).expect("key"),
                    d.as_bytes().to_vec(),
                ))
            })
            .collect::<Vec<_>>()
            .into_iter(),
    );
    let increment_docs: Vec<Result<(IdKey, Vec<u8>), Infallible>> = day2
        .iter()
        .zip(&w2.changes)
        .filter(|(_, c)| **c != Change::Unchanged)
        .map(|(d, _)| Ok((IdKey::from_document(d).expect("key"), d.as_bytes().to_vec())))
        .collect();
    assert_eq!(increment_docs.len(), 80);
    let increment_deleted: Vec<Result<IdKey, Infallible>> =
        w2.deleted.iter().cloned().map(Ok).collect();
    let increment: Source = Box::new(interleave(increment_docs, increment_deleted));
    let merged: Vec<(IdKey, Vec<u8>)> = ChainMerge::new(vec![full, increment])
        .map(|r| r.expect("merge"))
        .collect();
    let fresh = read_sorted(&coll).await;
    assert_eq!(merged.len(), fresh.len());
    for (i, ((k, bytes), d)) in merged.iter().zip(&fresh).enumerate() {
        assert_eq!(
            k,
            &IdKey::from_document(d).expect("key"),
            "document {i} of the merge"
        );
        assert_eq!(
            bytes.as_slice(),
            d.as_bytes(),
            "document {i} ({:?}) of the merge",
            id_of(d)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsupported_id_is_reported_not_misordered() {
    let server = mongo();
    let client = server.client().await;
    let db = server.fresh_db("idunsup");
    let dir = tempfile::tempdir().expect("tempdir");

    let binary = Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: vec![1, 2, 3],
    });
    let decimal = Bson::Decimal128("1.5".parse::<Decimal128>().expect("decimal"));
    let cases: Vec<(&str, Bson, &str)> = vec![
        (
            "object",
            Bson::Document(doc! { "a": 1, "b": "x" }),
            "object",
        ),
        ("fraction", Bson::Double(2.5), "double"),
        ("negative_fraction", Bson::Double(-0.5), "double"),
        ("beyond_2_53", Bson::Double(2f64.powi(55)), "double"),
        ("decimal", decimal, "decimal"),
        ("binary", binary, "binData"),
        ("null", Bson::Null, "null"),
    ];
    for (name, bad, bson_type) in cases {
        let coll = client.database(&db).collection::<Document>(name);
        let mut ids = vec![
            Bson::Int32(1),
            Bson::Int64(2),
            Bson::Double(3.0),
            Bson::Int64(1 << 56),
            Bson::String("s".into()),
            oid("65a000000000000000000001"),
            Bson::Boolean(true),
            date(1_700_000_000_000),
            bad.clone(),
        ];
        ids.shuffle(&mut StdRng::seed_from_u64(name.len() as u64));
        coll.insert_many(ids.iter().map(|id| doc! { "_id": id.clone(), "v": 1 }))
            .await
            .unwrap_or_else(|e| panic!("{name}: insert: {e}"));

        let docs = read_sorted(&coll).await;
        assert_eq!(docs.len(), ids.len(), "{name}");
        let position = docs
            .iter()
            .position(|d| id_of(d) == bad)
            .unwrap_or_else(|| panic!("{name}: the unsupported _id is read back"));

        let next = dir.path().join(format!("{name}.idx.next"));
        let mut differ = Differ::new(
            None,
            IndexWriter::create(&next, &header("b", name)).expect("create"),
        )
        .expect("differ");
        let mut pushed = 0;
        let mut error = None;
        for d in &docs {
            match differ.push(d, |_| Ok::<(), DiffError>(())) {
                Ok(change) => {
                    assert_eq!(change, Change::Inserted);
                    pushed += 1;
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        // Every document before the unsupported one (in the server's order) was in key order;
        // the unsupported one is reported by its type, not as out of order.
        assert_eq!(
            pushed, position,
            "{name}: documents before the unsupported _id"
        );
        match error {
            Some(DiffError::Id(IdKeyError::Unsupported { bson_type: t, .. })) => {
                assert_eq!(t, bson_type, "{name}")
            }
            other => panic!("{name}: expected Unsupported {bson_type}, got {other:?}"),
        }
        // The walk is over: the caller backs the collection up in full.
        assert!(matches!(
            differ.push(&docs[docs.len() - 1], |_| Ok::<(), DiffError>(())),
            Err(DiffError::Failed)
        ));
        assert!(matches!(
            differ.finish(|_| Ok::<(), DiffError>(())),
            Err(DiffError::Failed)
        ));
        assert!(matches!(
            IdKey::from_bson(&bad),
            Err(IdKeyError::Unsupported { .. })
        ));
    }
}
